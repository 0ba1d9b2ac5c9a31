//! Inference parameters: the models served with their price, expiry, the accepted request-time window
//! and the size bounds of a request.

use std::ops::RangeInclusive;

use gonka_primitives::{Amount, Hash, codec_struct};
use serde::{Deserialize, Serialize};

use super::msg::{InferenceError, SignedRequest};
use crate::params::ParamsError;

/// A served model and its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// The name clients use in `model`.
    pub name: String,
    /// SHA-256 of the model file every host serves: the model's identity.
    pub content_hash: Hash,
    /// Price of one prompt or completion token, in ngonka.
    pub price_per_token: Amount,
    /// What one prompt token the executor served from its prefix cache costs, in millionths of the
    /// token price (`docs/spec/inference.md` §4.2): 1,000,000 bills it in full, 0 gives it away.
    #[serde(default = "full_price_ppm")]
    pub cached_price_ppm: u32,
    /// How closely validators' re-scoring must match the model's answers.
    #[serde(default)]
    pub validation: ModelValidation,
}
codec_struct!(ModelPrice { name, content_hash, price_per_token, cached_price_ppm, validation });

/// One million ppm: the whole price.
pub const FULL_PRICE_PPM: u32 = 1_000_000;

fn full_price_ppm() -> u32 {
    FULL_PRICE_PPM
}

/// A model's validation thresholds (`docs/spec/validation.md` §3): what validators allow between an
/// executor's recorded answer and their own re-scoring. The embedded engine is bit-identical between
/// generation and scoring on every x86-64 CPU, so both are 0 for it; engines that are not (GPUs of
/// different makes) need a measured band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelValidation {
    /// Largest distance between reported and re-scored top-k logprobs, ppm.
    pub distance_max_ppm: u32,
    /// Largest replay margin accepted at a position, ppm of probability mass.
    pub replay_tolerance_ppm: u32,
}
codec_struct!(ModelValidation { distance_max_ppm, replay_tolerance_ppm });

/// Inference parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferenceParams {
    /// Models hosts serve, with their price.
    pub models: Vec<ModelPrice>,
    /// Blocks every inference gets before it expires…
    pub expiry_base_blocks: u64,
    /// …plus one block per this many `max_tokens` (long answers are not punished, §12.17).
    pub expiry_tokens_per_block: u64,
    /// Requests dated earlier than block time minus this are refused.
    pub timestamp_expiration_ms: u64,
    /// Requests dated later than block time plus this are refused.
    pub timestamp_advance_ms: u64,
    /// Largest `max_tokens` a request may reserve.
    pub max_tokens_cap: u32,
    /// Largest prompt a request may claim, in tokens.
    pub max_prompt_tokens: u32,
    /// Tokens the chat template may add to a body's text (role markers, a default system prompt): a
    /// receipt's prompt count is at most the signed body length in bytes plus this, since every text
    /// token covers at least one byte of the body.
    pub prompt_overhead_tokens: u32,
    /// Blocks after a voting-power change in which the previous set's executor is still accepted.
    pub executor_grace_blocks: u64,
}
codec_struct!(InferenceParams {
    models,
    expiry_base_blocks,
    expiry_tokens_per_block,
    timestamp_expiration_ms,
    timestamp_advance_ms,
    max_tokens_cap,
    max_prompt_tokens,
    prompt_overhead_tokens,
    executor_grace_blocks,
});

impl Default for InferenceParams {
    fn default() -> Self {
        InferenceParams {
            models: Vec::new(),
            expiry_base_blocks: 20,
            expiry_tokens_per_block: 16,
            timestamp_expiration_ms: 60_000,
            timestamp_advance_ms: 30_000,
            max_tokens_cap: 8192,
            max_prompt_tokens: 32_768,
            prompt_overhead_tokens: 256,
            executor_grace_blocks: 20,
        }
    }
}

/// The widest request-time window either side of block time.
const MAX_WINDOW_MS: u64 = 86_400_000;
/// The longest expiry base or executor grace, in blocks.
const MAX_BLOCKS: u64 = 1_000_000;

impl InferenceParams {
    /// The model with this content hash.
    pub fn model(&self, content_hash: &Hash) -> Option<&ModelPrice> {
        self.models.iter().find(|m| m.content_hash == *content_hash)
    }

    /// The model clients call `name`.
    pub fn model_named(&self, name: &str) -> Option<&ModelPrice> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The most prompt tokens a receipt may claim for a request whose signed body is `body_len` bytes.
    pub fn prompt_tokens_max(&self, body_len: u32) -> u32 {
        body_len.saturating_add(self.prompt_overhead_tokens).min(self.max_prompt_tokens)
    }

    /// The most any receipt may charge for `request`: `(prompt_tokens_max + max_tokens) × the price
    /// bound it signed`, 0 for a model not served (`docs/spec/inference.md` §2, `docs/spec/economy.md`
    /// §7: the locked price never exceeds the bound).
    pub fn charge_max(&self, request: &SignedRequest) -> Amount {
        if self.model(&request.model).is_none() {
            return Amount::ZERO;
        }
        let tokens = u128::from(self.prompt_tokens_max(request.body_len)) + u128::from(request.max_tokens);
        Amount(request.max_price_per_token.0.saturating_mul(tokens))
    }

    /// The deadline of an inference started at `height` reserving `max_tokens`.
    pub fn deadline(&self, height: u64, max_tokens: u32) -> u64 {
        height
            .saturating_add(self.expiry_base_blocks)
            .saturating_add(u64::from(max_tokens).div_ceil(self.expiry_tokens_per_block.max(1)))
    }

    /// Request times (ms) accepted when the last block's time is `now_ms`: the one window the chain,
    /// transfer agents and executors all apply.
    pub fn request_time_window_ms(&self, now_ms: u64) -> RangeInclusive<u64> {
        now_ms.saturating_sub(self.timestamp_expiration_ms)..=now_ms.saturating_add(self.timestamp_advance_ms)
    }

    /// `Ok` when a request signed at `timestamp_ns` is inside the window around `now_ms`.
    pub fn check_request_time(&self, now_ms: u64, timestamp_ns: u64) -> Result<(), InferenceError> {
        let window = self.request_time_window_ms(now_ms);
        let timestamp_ms = timestamp_ns / 1_000_000;
        if window.contains(&timestamp_ms) {
            Ok(())
        } else {
            Err(InferenceError::StaleTimestamp {
                timestamp_ms,
                earliest: *window.start(),
                latest: *window.end(),
            })
        }
    }

    /// How long a record is kept after its request time: well beyond the accepted window, so a
    /// replay of the same signed request always meets its record or a stale-time refusal.
    pub fn record_retention_ms(&self) -> u64 {
        self.timestamp_expiration_ms.saturating_add(self.timestamp_advance_ms).saturating_mul(2)
    }

    /// Checks the inference parameters are in range.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.expiry_base_blocks == 0 || self.expiry_tokens_per_block == 0 || self.max_tokens_cap == 0 {
            return Err(ParamsError::Limit("inference expiry and max_tokens_cap"));
        }
        // Bounds that keep every deadline, window and prune time far from overflow (a day of request
        // time either side; a million blocks of expiry or grace).
        if self.timestamp_expiration_ms > MAX_WINDOW_MS || self.timestamp_advance_ms > MAX_WINDOW_MS {
            return Err(ParamsError::Limit("inference request-time window (at most a day each side)"));
        }
        if self.expiry_base_blocks > MAX_BLOCKS || self.executor_grace_blocks > MAX_BLOCKS {
            return Err(ParamsError::Limit("inference expiry and grace blocks (at most 1,000,000)"));
        }
        if self.models.len() > 64 || self.models.iter().any(|m| m.name.is_empty() || m.name.len() > 128) {
            return Err(ParamsError::Limit("inference.models"));
        }
        if self.models.iter().any(|m| m.cached_price_ppm > FULL_PRICE_PPM) {
            return Err(ParamsError::Limit("inference.models cached_price_ppm (at most 1,000,000)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_expiries_are_bounded_so_deadlines_and_prunes_cannot_overflow() {
        assert_eq!(InferenceParams::default().validate(), Ok(()));
        let wide = InferenceParams { timestamp_expiration_ms: u64::MAX, ..InferenceParams::default() };
        assert!(wide.validate().is_err());
        let ahead = InferenceParams { timestamp_advance_ms: MAX_WINDOW_MS + 1, ..InferenceParams::default() };
        assert!(ahead.validate().is_err());
        let long = InferenceParams { expiry_base_blocks: MAX_BLOCKS + 1, ..InferenceParams::default() };
        assert!(long.validate().is_err());
        let grace = InferenceParams { executor_grace_blocks: u64::MAX, ..InferenceParams::default() };
        assert!(grace.validate().is_err());
        // Even unvalidated, the arithmetic saturates instead of wrapping.
        assert_eq!(wide.record_retention_ms(), u64::MAX);
        assert_eq!(long.deadline(u64::MAX - 1, u32::MAX), u64::MAX);
    }
}
