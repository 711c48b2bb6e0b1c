//! The scripts against a real redis-server (a child process on a unix socket).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::commands::Commands;

use super::{MEMBER, REAP, SUBS};

struct Redis {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn redis() -> (Redis, Commands) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("herald-redis-scripts-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("redis.sock");
    let child = Command::new("redis-server")
        .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
        .arg(&sock)
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let server = Redis { child, dir };
    let client = redis::Client::open(format!("redis+unix://{}", sock.display())).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            return (server, c.into());
        }
        assert!(tokio::time::Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn subscription_totals_add_up_over_nodes() {
    let (_r, mut c) = redis().await;
    let run = async |c: &mut Commands, node: &str, n: &str| -> (usize, usize) {
        SUBS.run(c, &["s"], &[node, n]).await.unwrap()
    };
    assert_eq!(run(&mut c, "a", "1").await, (0, 1));
    assert_eq!(run(&mut c, "b", "2").await, (1, 3));
    assert_eq!(run(&mut c, "a", "3").await, (3, 5));
    assert_eq!(run(&mut c, "a", "0").await, (5, 2));
    assert_eq!(run(&mut c, "a", "0").await, (2, 2), "repeating a count changes nothing");
    assert_eq!(run(&mut c, "b", "0").await, (2, 0));
    let left: bool = redis::cmd("EXISTS").arg("s").query_async(&mut c).await.unwrap();
    assert!(!left, "an empty channel leaves no key");
}

#[tokio::test]
async fn a_member_is_added_by_its_first_node_and_removed_by_its_last() {
    let (_r, mut c) = redis().await;
    let run = async |c: &mut Commands, node: &str, user: &str, op: &str| -> i64 {
        MEMBER.run(c, &["users", node, "info"], &[user, op, r#"{"n":1}"#]).await.unwrap()
    };
    assert_eq!(run(&mut c, "n:a", "u", "+").await, 1);
    assert_eq!(run(&mut c, "n:a", "u", "+").await, 0, "the same node twice is one presence");
    assert_eq!(run(&mut c, "n:b", "u", "+").await, 0);
    let info: Option<String> = redis::cmd("HGET").arg("info").arg("u").query_async(&mut c).await.unwrap();
    assert_eq!(info.as_deref(), Some(r#"{"n":1}"#));
    assert_eq!(run(&mut c, "n:a", "u", "-").await, 0);
    assert_eq!(run(&mut c, "n:a", "u", "-").await, 0, "a node that left cannot leave twice");
    assert_eq!(run(&mut c, "n:b", "u", "-").await, 1);
    let info: Option<String> = redis::cmd("HGET").arg("info").arg("u").query_async(&mut c).await.unwrap();
    assert_eq!(info, None);
    // Without an info hash (signed-in users).
    let on: i64 = MEMBER.run(&mut c, &["on", "on:a"], &["u", "+", ""]).await.unwrap();
    assert_eq!(on, 1);
}

#[tokio::test]
async fn a_reap_takes_a_nodes_share_once() {
    let (_r, mut c) = redis().await;
    let _: (usize, usize) = SUBS.run(&mut c, &["subs"], &["a", "2"]).await.unwrap();
    let _: (usize, usize) = SUBS.run(&mut c, &["subs"], &["b", "1"]).await.unwrap();
    for (node, user) in [("n:a", "only-a"), ("n:a", "both"), ("n:b", "both"), ("n:b", "only-b")] {
        let _: i64 = MEMBER.run(&mut c, &["users", node, "info"], &[user, "+", "{}"]).await.unwrap();
    }
    let keys = ["users", "n:a", "info", "subs"];
    let (before, after, removed): (usize, usize, Vec<String>) = REAP.run(&mut c, &keys, &["a"]).await.unwrap();
    assert_eq!((before, after, removed), (3, 1, vec!["only-a".to_owned()]));
    let (before, after, removed): (usize, usize, Vec<String>) = REAP.run(&mut c, &keys, &["a"]).await.unwrap();
    assert_eq!((before, after, removed), (1, 1, vec![]), "a second reap finds nothing");
    let users: Vec<String> = redis::cmd("HKEYS").arg("users").query_async(&mut c).await.unwrap();
    let mut users = users;
    users.sort();
    assert_eq!(users, ["both", "only-b"]);
    let keys = ["users", "n:b", "info", "subs"];
    let (before, after, mut removed): (usize, usize, Vec<String>) = REAP.run(&mut c, &keys, &["b"]).await.unwrap();
    removed.sort();
    assert_eq!((before, after, removed), (1, 0, vec!["both".to_owned(), "only-b".to_owned()]));
}

#[tokio::test]
async fn scripts_load_again_after_redis_forgot_them() {
    let (_r, mut c) = redis().await;
    let _: (usize, usize) = SUBS.run(&mut c, &["s1"], &["a", "1"]).await.unwrap();
    let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut c).await.unwrap();
    let r: (usize, usize) = SUBS.run(&mut c, &["s1"], &["a", "2"]).await.unwrap();
    assert_eq!(r, (1, 2));
}

#[tokio::test]
async fn a_script_and_its_companion_command_go_in_one_pipeline() {
    let (_r, mut c) = redis().await;
    let mut sadd = redis::cmd("SADD");
    sadd.arg("set").arg("x");
    let r: (usize, usize) = SUBS.run_then(&mut c, &["s2"], &["a", "4"], &sadd).await.unwrap();
    assert_eq!(r, (0, 4));
    let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut c).await.unwrap();
    let r: (usize, usize) = SUBS.run_then(&mut c, &["s2"], &["b", "1"], &sadd).await.unwrap();
    assert_eq!(r, (4, 5), "loaded again after NOSCRIPT");
    let members: Vec<String> = redis::cmd("SMEMBERS").arg("set").query_async(&mut c).await.unwrap();
    assert_eq!(members, ["x"]);
}

/// `history.lua` numbers a channel's publications once each, appends them positioned to the app
/// stream and the channel's history, and `SharedHistory` hands out what follows a position.
#[tokio::test]
async fn history_sequences_each_envelope_once_and_is_read_back_after_a_position() {
    use herald_core::app::HistoryPolicy;
    use herald_core::backend::FetchError;
    use herald_core::history::RecoverError;
    use herald_core::{Publication, PublicationData};
    use herald_protocol::cluster::Envelope;
    use herald_protocol::pusher::channel_name::ChannelName;

    use crate::acked::Sequenced;
    use crate::history::SharedHistory;
    use crate::publisher::sequence;

    let (server, mut c) = redis().await;
    let policy = HistoryPolicy { max_messages: 3, max_age: Duration::from_secs(60) };
    let sha = super::HISTORY.sha(&mut c).await.unwrap();
    let channel = ChannelName::topic("history-x", 200).unwrap();
    let mut run = async |seq: u64, data: &str| -> u64 {
        let p = Publication::new(channel.clone(), "ev", PublicationData::Str(data.into()));
        let bytes = crate::publication::encode(7, seq, &p);
        let s = Sequenced { channel: "history-x".into(), seq, policy };
        sequence(&sha, "t:1", &bytes, &s, 7).query_async(&mut c).await.unwrap()
    };
    assert_eq!(run(1, "a").await, 1);
    assert_eq!(run(2, "b").await, 2);
    // The same envelope again (a batch resent after a lost reply): not numbered twice.
    assert_eq!(run(2, "b").await, 0);
    assert_eq!(run(3, "c").await, 3);
    assert_eq!(run(4, "d").await, 4);

    // The app stream got each once, positioned, in order.
    let entries: redis::Value = redis::cmd("XRANGE").arg("t:1").arg("-").arg("+").query_async(&mut c).await.unwrap();
    let read = crate::stream::parse_read(redis::Value::Array(vec![redis::Value::Array(vec![
        redis::Value::BulkString(b"t:1".to_vec()),
        entries,
    ])]))
    .unwrap();
    let positions: Vec<(String, u64)> = read[0]
        .1
        .iter()
        .map(|(_, e)| {
            let (epoch, serial) = Envelope::decode(e.as_deref().unwrap()).unwrap().position.unwrap();
            (epoch.to_owned(), serial)
        })
        .collect();
    assert_eq!(positions.iter().map(|p| p.1).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let epoch = positions[0].0.clone();
    assert!(positions.iter().all(|p| p.0 == epoch));
    // Each key expires with the channel's age limit.
    let ttl: i64 = redis::cmd("PTTL").arg("t:1:h:history-x").query_async(&mut c).await.unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");

    let client = redis::Client::open(format!("redis+unix://{}", server.dir.join("redis.sock").display())).unwrap();
    let history = SharedHistory::new(client);
    let data = |v: Vec<std::sync::Arc<Publication>>| -> Vec<(u64, String)> {
        v.iter()
            .map(|p| {
                let PublicationData::Str(s) = &p.data else { panic!("{:?}", p.data) };
                (p.position().unwrap().serial, s.to_string())
            })
            .collect()
    };
    // max_messages = 3: serials 2..=4 are held.
    assert_eq!(
        data(history.after("t:1", "history-x", policy, &epoch, 1).await.unwrap()),
        [(2, "b".to_owned()), (3, "c".to_owned()), (4, "d".to_owned())]
    );
    assert_eq!(data(history.after("t:1", "history-x", policy, &epoch, 3).await.unwrap()), [(4, "d".to_owned())]);
    assert!(history.after("t:1", "history-x", policy, &epoch, 4).await.unwrap().is_empty());
    let err = |r: Result<_, FetchError>| r.err().unwrap();
    assert_eq!(err(history.after("t:1", "history-x", policy, &epoch, 0).await), FetchError::Recover(RecoverError::Gap));
    assert_eq!(
        err(history.after("t:1", "history-x", policy, &epoch, 9).await),
        FetchError::Recover(RecoverError::Ahead)
    );
    assert_eq!(
        err(history.after("t:1", "history-x", policy, "other", 1).await),
        FetchError::Recover(RecoverError::UnknownEpoch)
    );
    assert_eq!(
        err(history.after("t:1", "history-y", policy, &epoch, 1).await),
        FetchError::Recover(RecoverError::UnknownEpoch)
    );
    assert_eq!(history.fetches.load(std::sync::atomic::Ordering::Relaxed), 7);
}
