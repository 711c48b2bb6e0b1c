//! Which shard a channel goes to, and the Redis keys of a shard.
//!
//! Every key of shard `k` of app `A` starts with `{prefix}:{A:k}`: the prefix has no braces (the
//! configuration refuses them), so the first `{…}` of each key, the hash tag Redis Cluster
//! places it by, is `{A:k}`, and a shard's stream, last-id key and channel share one slot (the
//! publish script needs them together). Different shards of one app land on different slots,
//! and so on different masters.

/// Shards per app. A constant: every node must map a channel to the same shard, and changing it
/// moves channels between shards (a rolling restart across a change reorders them once).
pub(crate) const SHARDS: u16 = 16;

/// The shard of `channel`: FNV-1a of its name, so every node (and every release) agrees.
pub(crate) fn shard_of(channel: &str) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in channel.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    // The remainder is below SHARDS, which fits u16.
    u16::try_from(hash % u32::from(SHARDS)).unwrap_or(0)
}

/// The Redis names of one shard of one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardKeys {
    /// The sharded pub/sub channel (`SSUBSCRIBE`d by every node).
    pub(crate) channel: String,
    /// The stream every publication of the shard is appended to.
    pub(crate) log: String,
    /// The id of the newest entry of `log`, swapped by every publish.
    pub(crate) last: String,
}

impl ShardKeys {
    pub(crate) fn new(prefix: &str, app: &str, k: u16) -> ShardKeys {
        let tagged = format!("{prefix}:{{{app}:{k}}}");
        ShardKeys { log: format!("{tagged}:log"), last: format!("{tagged}:last"), channel: tagged }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_a_channel_is_stable() {
        // FNV-1a's published values ("" 0x811c9dc5, "a" 0xe40c292c, "b" 0xe70c2de5, "foobar"
        // 0xbf9cf968), modulo 16: a change here moves channels between shards across a rolling
        // upgrade.
        let known: Vec<u16> = ["", "a", "b", "foobar"].iter().map(|c| shard_of(c)).collect();
        assert_eq!(known, [5, 12, 5, 8]);
    }

    #[test]
    fn channels_spread_over_every_shard() {
        let mut counts = [0u32; SHARDS as usize];
        for i in 0..16_000 {
            counts[usize::from(shard_of(&format!("channel-{i}")))] += 1;
        }
        // 1000 expected per shard.
        assert!(counts.iter().all(|&n| (800..1200).contains(&n)), "{counts:?}");
    }

    #[test]
    fn every_key_of_a_shard_has_the_same_first_hash_tag() {
        let k = ShardKeys::new("herald:eu", "app-1", 7);
        assert_eq!(k.channel, "herald:eu:{app-1:7}");
        assert_eq!(k.log, "herald:eu:{app-1:7}:log");
        assert_eq!(k.last, "herald:eu:{app-1:7}:last");
        let tag = |key: &str| {
            let open = key.find('{').unwrap_or(0);
            let close = key[open..].find('}').map_or(0, |c| open + c);
            key[open + 1..close].to_owned()
        };
        assert!([&k.log, &k.last].iter().all(|key| tag(key) == tag(&k.channel)));
        assert_ne!(tag(&ShardKeys::new("herald", "app-1", 8).log), tag(&k.log));
    }
}
