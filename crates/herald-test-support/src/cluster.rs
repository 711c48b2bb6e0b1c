//! Several herald child processes sharing one redis-server (or a Redis Cluster): a cluster whose nodes can be killed
//! with `SIGKILL` (`kill -9`) and started late, each with its own configuration file.

use std::net::SocketAddr;

use serde_json::Value;

use crate::http::http_on;
use crate::process::{Herald, TempDir};
use crate::redis::RedisServer;
use crate::redis_cluster::RedisCluster;
use crate::sign::signed_query;
use crate::ws::{Ws, next_json, pusher_path, send_json};

/// The app every node serves: id, key, secret.
pub const APP: (&str, &str, &str) = ("1", "key", "cluster-test-secret-0123456789");

/// The configuration directory of a cluster's nodes.
pub struct Cluster {
    /// Holds the configuration file; removed on drop.
    _dir: TempDir,
    config: String,
}

impl Cluster {
    /// Nodes of [`APP`] (client events, user sign-in and subscription counts enabled) on `redis`.
    pub fn new(redis: &RedisServer) -> Self {
        Self::with_app_extra(redis, "")
    }

    /// Like [`Cluster::new`], with `extra` TOML at the end of the app's `[[apps]]` table (for
    /// instance its `[[apps.webhooks]]`).
    pub fn with_app_extra(redis: &RedisServer, extra: &str) -> Self {
        Self::with_scale_out(&format!("redis_url = \"{}\"", redis.url()), extra)
    }

    /// Like [`Cluster::new`], the nodes sharing the Redis Cluster `redis` instead of one Redis.
    pub fn on_redis_cluster(redis: &RedisCluster) -> Self {
        let urls: Vec<String> = redis.urls().iter().map(|u| format!("\"{u}\"")).collect();
        Self::with_scale_out(&format!("redis_cluster = [{}]", urls.join(", ")), "")
    }

    /// The configuration with `scale_out` (the `[scale_out]` line naming the Redis).
    fn with_scale_out(scale_out: &str, extra: &str) -> Self {
        let dir = TempDir::new("cluster");
        let text = format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\nshutdown_grace = 2\n\n\
             [[apps]]\nid = \"{}\"\nkey = \"{}\"\nsecret = \"{}\"\nenable_client_messages = true\n\
             enable_user_authentication = true\nenable_subscription_count = true\ncache_ttl = 60\n{extra}\n\
             [scale_out]\n{scale_out}\nprefix = \"test\"\n",
            APP.0, APP.1, APP.2,
        );
        let config = dir.write("herald.toml", &text).display().to_string();
        Self { _dir: dir, config }
    }

    /// Starts one more node and returns once it listens (and is connected to Redis, which a
    /// node reaches before it binds).
    pub fn node(&self) -> Herald {
        Herald::spawn(&["serve", "-c", &self.config], 1).unwrap_or_else(|(code, err)| panic!("exit {code:?}: {err}"))
    }

    /// `n` nodes.
    pub fn nodes(&self, n: usize) -> Vec<Herald> {
        (0..n).map(|_| self.node()).collect()
    }
}

/// A Pusher client of [`APP`] on the node at `addr`, and its socket id.
pub async fn client(addr: SocketAddr) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{}", pusher_path(APP.1))).await.unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    let data: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    (ws, data["socket_id"].as_str().unwrap().to_owned())
}

/// Subscribes to presence `channel` as `user` and returns the acknowledgement's presence data.
pub async fn join_presence(ws: &mut Ws, socket_id: &str, channel: &str, user: &str) -> Value {
    join_presence_of(ws, (APP.1, APP.2), socket_id, channel, user).await
}

/// Like [`join_presence`] for the app with this `(key, secret)`; the member's `user_info` is
/// `{"name": user}`.
pub async fn join_presence_of(ws: &mut Ws, app: (&str, &str), socket_id: &str, channel: &str, user: &str) -> Value {
    let channel_data = serde_json::json!({"user_id": user, "user_info": {"name": user}}).to_string();
    let auth = crate::sign::channel_auth(app.0, app.1, socket_id, channel, Some(&channel_data));
    send_json(
        ws,
        serde_json::json!({"event": "pusher:subscribe",
            "data": {"channel": channel, "auth": auth, "channel_data": channel_data}}),
    )
    .await;
    loop {
        let ack = next_json(ws).await;
        if ack["event"] == "pusher_internal:subscription_succeeded" {
            let data: Value = serde_json::from_str(ack["data"].as_str().unwrap()).unwrap();
            return data["presence"].clone();
        }
    }
}

/// Signs the client in as `user` and waits for the success.
pub async fn sign_in(ws: &mut Ws, socket_id: &str, user: &str) {
    let user_data = serde_json::json!({"id": user}).to_string();
    let auth = herald_protocol::pusher::socket_auth::signin_auth(APP.1, APP.2, socket_id, &user_data);
    send_json(ws, serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await;
    loop {
        if next_json(ws).await["event"] == "pusher:signin_success" {
            return;
        }
    }
}

/// A signed HTTP API request of [`APP`] (`path` under `/apps/{id}`, `params` besides the
/// signature's); status and JSON body (`Null` when not JSON).
pub async fn api(addr: SocketAddr, method: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let path = format!("/apps/{}{path}", APP.0);
    let body = if method == "POST" { "{}" } else { "" };
    let q = signed_query(method, &path, params, body, APP.1, APP.2);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, text) = http_on(stream, method, &format!("{path}?{q}"), &[], body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The next `pusher_internal:member_*` event on `ws` (others skipped), within `wait`.
pub async fn next_member_event(ws: &mut Ws, wait: std::time::Duration) -> Value {
    tokio::time::timeout(wait, async {
        loop {
            let v = next_json(ws).await;
            if v["event"].as_str().is_some_and(|e| e.starts_with("pusher_internal:member_")) {
                return v;
            }
        }
    })
    .await
    .expect("a member event in time")
}
