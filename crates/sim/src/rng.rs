//! The simulator's one source of randomness: a ChaCha stream keyed by the seed, split into named
//! streams so adding a draw in one part (traffic) does not shift another (proposers).

use gonka_primitives::Hash;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// A seeded random stream.
#[derive(Debug, Clone)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// The stream `name` of seed `seed`.
    pub fn new(seed: u64, name: &str) -> SimRng {
        SimRng(ChaCha8Rng::from_seed(
            Hash::digest_parts(&[b"gonka/sim/rng", &seed.to_be_bytes(), name.as_bytes()]).0,
        ))
    }

    /// A uniform `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `range`.
    pub fn range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.below(range.end.saturating_sub(range.start))
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }
}
