//! A Lua script run with `EVALSHA`: loaded once (`SCRIPT LOAD`), loaded again when Redis
//! answers `NOSCRIPT` (a restarted or flushed Redis forgets its scripts). On a Redis Cluster
//! `SCRIPT LOAD` goes to every node and `EVALSHA` to the master of the first key's slot: each
//! script's keys share one hash tag.

use parking_lot::Mutex;
use redis::{FromRedisValue, RedisResult};

use crate::commands::Commands;

/// One script and the SHA1 Redis gave it.
pub(crate) struct Lua {
    src: &'static str,
    sha: Mutex<Option<String>>,
}

pub(crate) static SUBS: Lua = Lua::new(include_str!("scripts/subs.lua"));
pub(crate) static MEMBER: Lua = Lua::new(include_str!("scripts/member.lua"));
pub(crate) static REAP: Lua = Lua::new(include_str!("scripts/reap.lua"));
pub(crate) static HISTORY: Lua = Lua::new(include_str!("scripts/history.lua"));

impl Lua {
    const fn new(src: &'static str) -> Self {
        Self { src, sha: Mutex::new(None) }
    }

    /// Runs the script on `keys` and `args`: one round trip once loaded.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        conn: &mut Commands,
        keys: &[&str],
        args: &[&str],
    ) -> RedisResult<T> {
        let known = self.sha.lock().clone();
        if let Some(sha) = known {
            match evalsha(&sha, keys, args).query_async(conn).await {
                Err(e) if e.code() == Some("NOSCRIPT") => {}
                other => return other,
            }
        }
        let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(self.src).query_async(conn).await?;
        *self.sha.lock() = Some(sha.clone());
        evalsha(&sha, keys, args).query_async(conn).await
    }
}

impl Lua {
    /// The script's SHA1, loading it first when this process has not yet (for pipelines).
    pub(crate) async fn sha(&self, conn: &mut Commands) -> RedisResult<String> {
        if let Some(sha) = self.sha.lock().clone() {
            return Ok(sha);
        }
        let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(self.src).query_async(conn).await?;
        *self.sha.lock() = Some(sha.clone());
        Ok(sha)
    }

    /// Forgets the SHA1 (Redis answered `NOSCRIPT`: it restarted or was flushed).
    pub(crate) fn forget(&self) {
        *self.sha.lock() = None;
    }

    /// `EVALSHA` of the script with `sha` (from [`Lua::sha`]), for a pipeline.
    pub(crate) fn cmd(sha: &str, keys: &[&str], args: &[&str]) -> redis::Cmd {
        evalsha(sha, keys, args)
    }
}

impl Lua {
    /// Runs the script, then `then` (an idempotent command whose answer is ignored), in one
    /// pipeline on one Redis: one round trip for both.
    pub(crate) async fn run_then<T: FromRedisValue>(
        &self,
        conn: &mut Commands,
        keys: &[&str],
        args: &[&str],
        then: &redis::Cmd,
    ) -> RedisResult<T> {
        if conn.is_cluster() {
            // `then` is about another slot (the node's set of the app): a cluster pipeline
            // must stay within one, so it is a second round trip there.
            let t = self.run(conn, keys, args).await?;
            then.query_async::<redis::Value>(conn).await?;
            return Ok(t);
        }
        let known = self.sha.lock().clone();
        if let Some(sha) = known {
            match pipeline(&sha, keys, args, then).query_async::<(T, redis::Value)>(conn).await {
                Err(e) if e.code() == Some("NOSCRIPT") => {}
                other => return other.map(|(t, _)| t),
            }
        }
        let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(self.src).query_async(conn).await?;
        *self.sha.lock() = Some(sha.clone());
        pipeline(&sha, keys, args, then).query_async::<(T, redis::Value)>(conn).await.map(|(t, _)| t)
    }
}

fn pipeline(sha: &str, keys: &[&str], args: &[&str], then: &redis::Cmd) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.add_command(evalsha(sha, keys, args)).add_command(then.clone());
    pipe
}

fn evalsha(sha: &str, keys: &[&str], args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys.len()).arg(keys).arg(args);
    cmd
}

#[cfg(test)]
mod tests;
