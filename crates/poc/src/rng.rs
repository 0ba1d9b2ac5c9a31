//! The deterministic generator: ChaCha20 streams keyed by SHA-256, our own normal draws and bounded integers.
//!
//! The original draws with NumPy (PCG64, ziggurat normals; reference §3.3). gonka-rs does not reproduce
//! NumPy: every stream here is ChaCha20 (`rand_chacha`'s `ChaCha20Rng`, 20 rounds, stream 0) keyed by a
//! SHA-256 of the block hash and a name, and every transformation of its output is written out here, so
//! that the bits are fixed by this file and not by the version of a sampling library.
//!
//! **Normal draws** are Irwin–Hall sums: twelve independent uniform 16-bit integers `u_i` (two per
//! ChaCha `u32`, low half first) give `z = (Σ(2·u_i + 1) − 12·2^16) / 2^17`. The sum is an integer, so
//! it is exact; converting it (|sum| < 2^20) to `f64` is exact and dividing by 2^17 is exact; the only
//! rounding is the final `z × std` and the cast to `f32`, both correctly rounded by IEEE-754. No
//! logarithm, cosine or table lookup whose last bit depends on a platform's libm is involved, so the
//! values are identical on every x86 ISA, on ARM and on a GPU reimplementing it. `z` has mean exactly 0
//! (the `+1` centres each uniform), variance `1 − 2^-32`, and support `[−6, 6]` instead of the whole
//! line; for a random initialisation and random inputs the missing tails (probability 2·10^-9 beyond
//! 6σ) do not matter.

use gonka_primitives::Hash;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// The ChaCha20 stream for tensor (or stream) `name`: keyed by `SHA-256(block_hash ‖ 0x00 ‖ name)`.
pub fn tensor_rng(block_hash: &Hash, name: &str) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(Hash::digest_parts(&[&block_hash.0, &[0], name.as_bytes()]).0)
}

/// The stream for a per-miner, per-nonce quantity `name`:
/// keyed by `SHA-256(block_hash ‖ 0x00 ‖ name ‖ 0x00 ‖ public_key ‖ nonce as u64 big-endian)`.
/// Tensor names never contain a zero byte, so these keys never collide with [`tensor_rng`]'s.
pub(crate) fn nonce_rng(block_hash: &Hash, name: &str, public_key: &[u8; 33], nonce: u64) -> ChaCha20Rng {
    let key =
        Hash::digest_parts(&[&block_hash.0, &[0], name.as_bytes(), &[0], public_key, &nonce.to_be_bytes()]);
    ChaCha20Rng::from_seed(key.0)
}

/// One standard normal draw (Irwin–Hall of twelve 16-bit uniforms; see the module docs).
pub fn standard_normal(rng: &mut impl RngCore) -> f64 {
    let mut sum: i64 = 0;
    for _ in 0..6 {
        let word = rng.next_u32();
        sum += 2 * i64::from(word & 0xffff) + 1;
        sum += 2 * i64::from(word >> 16) + 1;
    }
    (sum - 12 * 65536) as f64 / 131_072.0
}

/// `count` normal draws with mean 0 and standard deviation `std`, as `f32`.
pub fn normal_f32(rng: &mut impl RngCore, count: usize, std: f64) -> Vec<f32> {
    (0..count).map(|_| (standard_normal(rng) * std) as f32).collect()
}

/// A uniform integer in `[0, bound)`, unbiased, by Lemire's multiply-and-reject method on 64-bit draws
/// (`next_u64` is two ChaCha words, low first). `bound` must be positive.
pub fn bounded_u64(rng: &mut impl RngCore, bound: u64) -> u64 {
    debug_assert!(bound > 0, "bounded_u64 needs a positive bound");
    let bound = bound.max(1);
    // Values of the low half below `2^64 mod bound` would over-represent some results: redraw them.
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_separated_by_name() {
        let hash = Hash::digest(b"block");
        let a: Vec<u32> = (0..4)
            .map({
                let mut rng = tensor_rng(&hash, "output");
                move |_| rng.next_u32()
            })
            .collect();
        let mut again = tensor_rng(&hash, "output");
        assert_eq!(a, (0..4).map(|_| again.next_u32()).collect::<Vec<_>>());
        let mut other = tensor_rng(&hash, "norm");
        assert_ne!(a, (0..4).map(|_| other.next_u32()).collect::<Vec<_>>());
    }

    #[test]
    fn chacha_stream_is_pinned() {
        // RFC 7539 §A.1 test vector #1: all-zero key, nonce and counter; keystream starts 76 b8 e0 ad.
        let mut rng = ChaCha20Rng::from_seed([0; 32]);
        assert_eq!(rng.next_u32(), 0xade0_b876);
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut rng = tensor_rng(&Hash::ZERO, "moments");
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        let var = draws.iter().map(|z| (z - mean) * (z - mean)).sum::<f64>() / f64::from(n);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!(draws.iter().all(|z| z.abs() <= 6.0));
    }

    #[test]
    fn bounded_integers_are_in_range_and_cover_it() {
        let mut rng = tensor_rng(&Hash::ZERO, "bounded");
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[bounded_u64(&mut rng, 7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(bounded_u64(&mut rng, 1), 0);
        assert!(bounded_u64(&mut rng, u64::MAX) < u64::MAX);
    }
}
