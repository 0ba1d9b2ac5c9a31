//! Which claimed nonces a validator recomputes (reference §3.8 step 2).
//!
//! The original seeds each validator's sample with `SHA-256("{validatorPubKeyHex}:{blockHash}:{S}")`.
//! Anyone can recompute that afterwards to audit a validator, but the validator's key is public, so the
//! participant can compute the sample too, as soon as the block hash of `S` is known — before it
//! submits — and fake every nonce that no validator will check.
//!
//! gonka-rs seeds the sample with a **signature** instead: the validator signs
//! [`sample_seed_message`] with its own key (deterministic ECDSA, RFC 6979, or Ed25519) and passes the
//! signature bytes as the `seed` of [`validation_sample`]. Only the validator can produce it, so no one
//! can predict its sample before it publishes; once it publishes the signature with its vote, anyone can
//! verify the signature against the validator's public key and recompute the sample to audit the vote.
//!
//! A validator could in principle grind for a sample it likes, since ECDSA and Ed25519 signatures are not
//! verifiably unique (a signer may pick another nonce `k`). That gives it nothing: its vote is already
//! its own choice. What matters — that the *participant* cannot predict the sample — holds for any
//! signature. A unique signature (BLS, or an ECVRF per RFC 9381) would also remove grinding.

use gonka_primitives::Hash;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::rng::bounded_u64;

/// Domain tag of the message a validator signs to seed its sample.
const SAMPLE_SEED_DOMAIN: &[u8] = b"gonka/poc/validation-sample/v1";

/// The bytes a validator signs to seed its sample of `participant`'s nonces for the PoC that started at
/// height `poc_start_height` with block hash `block_hash`:
/// `"gonka/poc/validation-sample/v1" ‖ 0x00 ‖ block_hash ‖ poc_start_height (u64 big-endian) ‖ participant`.
pub fn sample_seed_message(block_hash: &Hash, poc_start_height: u64, participant: &[u8; 33]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SAMPLE_SEED_DOMAIN.len() + 1 + 32 + 8 + 33);
    message.extend_from_slice(SAMPLE_SEED_DOMAIN);
    message.push(0);
    message.extend_from_slice(&block_hash.0);
    message.extend_from_slice(&poc_start_height.to_be_bytes());
    message.extend_from_slice(participant);
    message
}

/// Up to `n` distinct nonces of `claimed`, chosen uniformly by a ChaCha20 stream keyed by
/// `SHA-256(seed)` (the seed: the validator's signature over [`sample_seed_message`]). Duplicates in
/// `claimed` count once and its order does not matter; when it holds at most `n` distinct nonces they are
/// all returned. The result is sorted ascending.
pub fn validation_sample(seed: &[u8], claimed: &[u64], n: usize) -> Vec<u64> {
    let mut pool = claimed.to_vec();
    pool.sort_unstable();
    pool.dedup();
    if pool.len() <= n {
        return pool;
    }
    // Partial Fisher–Yates: position i receives a uniform pick among the nonces not yet taken.
    let mut rng = ChaCha20Rng::from_seed(Hash::digest(seed).0);
    for i in 0..n {
        let j = i + bounded_u64(&mut rng, (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool.sort_unstable();
    pool
}
