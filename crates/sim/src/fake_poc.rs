//! The simulator's PoC "engine": a nonce's distance is a hash of (stage block hash, host key, nonce)
//! spread over [1.1, 1.6), so with the simulated target 1.35 about half of all nonces are valid, a
//! validator recomputes exactly what an honest host found, and a nonce computed with another key, or
//! made up, recomputes to something else. A sprint computes a fixed number of nonces per block (the
//! host's compute speed).

use gonka_poc::Distance;
use gonka_primitives::{AccountPublicKey, Hash};

/// The distance of `nonce` for `key` in the stage seeded by `block_hash`.
pub fn distance(block_hash: &Hash, key: &AccountPublicKey, nonce: u64) -> Distance {
    let digest = Hash::digest_parts(&[b"gonka/sim/poc", &block_hash.0, &key.0, &nonce.to_be_bytes()]);
    let unit = u64::from_be_bytes(digest.0[..8].try_into().expect("8 bytes")) % 500_000_000;
    Distance(1_100_000_000 + unit as u32)
}

/// A running fake sprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSprint {
    /// The stage's block hash.
    pub block_hash: Hash,
    /// The host's key.
    pub key: AccountPublicKey,
    /// The target.
    pub r_target: Distance,
    /// The next nonce to compute.
    pub next_nonce: u64,
}

impl FakeSprint {
    /// Computes `count` more nonces; returns the valid ones.
    pub fn compute(&mut self, count: u64) -> Vec<(u64, Distance)> {
        let start = self.next_nonce;
        self.next_nonce += count;
        (start..self.next_nonce)
            .map(|nonce| (nonce, distance(&self.block_hash, &self.key, nonce)))
            .filter(|(_, d)| *d < self.r_target)
            .collect()
    }
}
