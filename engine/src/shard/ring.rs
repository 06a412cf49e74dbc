//! Who owns a shard: rendezvous (highest-random-weight) hashing over the live replicas.
//!
//! Every replica computes the same table from the same member list, with no coordination:
//! shard `s` belongs to the member `m` with the highest `weight(m, s)`. When a member leaves,
//! only its shards move (each to the member with the next-highest weight); when one joins, it
//! takes about `1/R` of the shards from the others and nothing else moves.

use std::collections::BTreeSet;

/// The weight of `member` for `shard`: FNV-1a (64-bit) over the name and the shard number,
/// then a SplitMix64 finaliser so that close names do not give close weights. Written out (not
/// `std`'s hasher) because replicas of different versions must agree on it.
pub fn weight(member: &str, shard: u32) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in member.bytes().chain([0xff]).chain(shard.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The owner of `shard` among `members` (ties broken by name; `None` without members).
pub fn owner(shard: u32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .max_by(|a, b| {
            weight(a, shard)
                .cmp(&weight(b, shard))
                .then_with(|| b.cmp(a))
        })
        .map(String::as_str)
}

/// The shards of `0..shards` that `me` owns among `members`.
pub fn owned_by(me: &str, shards: u32, members: &[String]) -> BTreeSet<u32> {
    (0..shards.max(1))
        .filter(|s| owner(*s, members) == Some(me))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("netwarden-engine-{i}")).collect()
    }

    #[test]
    fn every_shard_has_exactly_one_owner() {
        for r in 1..=5 {
            let members = names(r);
            let mut all = BTreeSet::new();
            let mut total = 0;
            for m in &members {
                let owned = owned_by(m, 64, &members);
                total += owned.len();
                all.extend(owned);
            }
            assert_eq!((total, all.len()), (64, 64), "r = {r}");
        }
    }

    #[test]
    fn the_table_is_balanced_enough() {
        let members = names(3);
        for m in &members {
            let n = owned_by(m, 64, &members).len();
            assert!((10..=35).contains(&n), "{m} owns {n} of 64");
        }
    }

    #[test]
    fn a_leaving_member_moves_only_its_shards() {
        let three = names(3);
        let two: Vec<String> = three[..2].to_vec();
        for s in 0..64 {
            let before = owner(s, &three).unwrap();
            let after = owner(s, &two).unwrap();
            if before != three[2] {
                assert_eq!(before, after, "shard {s} moved needlessly");
            }
        }
    }

    #[test]
    fn order_of_members_does_not_matter() {
        let mut members = names(4);
        let a: Vec<_> = (0..64)
            .map(|s| owner(s, &members).unwrap().to_owned())
            .collect();
        members.reverse();
        let b: Vec<_> = (0..64)
            .map(|s| owner(s, &members).unwrap().to_owned())
            .collect();
        assert_eq!(a, b);
        assert_eq!(owner(0, &[]), None);
    }
}
