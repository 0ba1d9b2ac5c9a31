//! Dynamic per-token prices (`docs/spec/economy.md` §7; reference §6.8).
//!
//! Each served model has a price that follows its load. Every Finish adds the answer's tokens to the
//! model's usage of the block; at the end of each block the model's utilisation over the blocks of the
//! last `window_ms` of block time (the reference's 60 s) is
//!
//! ```text
//! u = tokens in the window / (capacity per second × window seconds)
//! capacity per second = total voting power × capacity_per_weight_ppm / 10⁶  (fallback when no power)
//! ```
//!
//! and the price moves: unchanged inside the stability zone `[low, high]`; below it down by
//! `(low − u) × elasticity`, above it up by `(u − high) × elasticity`, each step at most `max_step`,
//! never under `min_price`. Until the grace period ends every model costs `grace_price` (the reference
//! serves free inference for its first 90 epochs); then prices start from the model's base price in the
//! params and float.
//!
//! Prices are kept in micro-ngonka so that small steps accumulate instead of rounding away; what an
//! inference pays is the whole-ngonka part. The developer signs the most it pays per token
//! ([`crate::RequestTerms::max_price_per_token`]); an inference locks `min(price, that bound)` at its
//! first receipt, so a price that rose between the request and its receipt never charges the developer
//! more than it signed, and the hosts' admission (which refuses bounds below the current price) makes
//! that case a few blocks' drift at most.

use gonka_primitives::{Amount, Hash, codec_struct};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::State;
use crate::table::Table;
use crate::tx::TxError;

/// Price sub-units per ngonka.
pub const PRICE_SCALE: u128 = 1_000_000;

/// Parts per million.
const PPM: u128 = 1_000_000;

/// The highest price any model may reach, in ngonka per token (10⁶ GNK): an arithmetic bound, never
/// a market one.
pub const PRICE_CEILING: u128 = 1_000_000 * crate::rewards::GNK;

/// Utilisation above this (ppm, 10×) counts as 10×: it already asks for the largest step.
const UTILISATION_CAP_PPM: u128 = 10 * PPM;

/// Pricing parameters (reference §6.8 `DynamicPricingParams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingParams {
    /// Block time the utilisation is measured over, ms (the reference's 60 s).
    pub window_ms: u64,
    /// Tokens per second one unit of voting power is taken to serve, ppm (the model group's capacity;
    /// the reference counts one token per second per unit of weight).
    pub capacity_per_weight_ppm: u64,
    /// Capacity in tokens per second when no host has power (the reference's 1,000).
    pub fallback_capacity_tokens: u64,
    /// Low edge of the stability zone, ppm of capacity (0.40).
    pub stability_low_ppm: u64,
    /// High edge of the stability zone, ppm (0.60).
    pub stability_high_ppm: u64,
    /// Price change per unit of utilisation outside the zone, ppm (0.05).
    pub elasticity_ppm: u64,
    /// Largest change per block, ppm (0.02).
    pub max_step_ppm: u64,
    /// The floor, ngonka per token.
    pub min_price: Amount,
    /// Epochs before prices float (reference `grace_period_end_epoch`, 90 on mainnet).
    pub grace_epochs: u64,
    /// The price of every model during the grace period (reference 0: free inference).
    pub grace_price: Amount,
}
codec_struct!(PricingParams {
    window_ms,
    capacity_per_weight_ppm,
    fallback_capacity_tokens,
    stability_low_ppm,
    stability_high_ppm,
    elasticity_ppm,
    max_step_ppm,
    min_price,
    grace_epochs,
    grace_price
});

impl Default for PricingParams {
    /// The devnet: a ten-second window, the reference's one token per second per unit of weight, no
    /// grace period, the reference's zone and steps.
    fn default() -> PricingParams {
        PricingParams {
            window_ms: 10_000,
            capacity_per_weight_ppm: 1_000_000,
            fallback_capacity_tokens: 1_000,
            stability_low_ppm: 400_000,
            stability_high_ppm: 600_000,
            elasticity_ppm: 50_000,
            max_step_ppm: 20_000,
            min_price: Amount(1),
            grace_epochs: 0,
            grace_price: Amount::ZERO,
        }
    }
}

impl PricingParams {
    /// Mainnet: the reference's 60 s window, one token per second per unit of weight, free inference for
    /// the first 90 epochs.
    pub fn mainnet() -> PricingParams {
        PricingParams {
            window_ms: 60_000,
            capacity_per_weight_ppm: 1_000_000,
            grace_epochs: 90,
            ..Default::default()
        }
    }

    /// Whether the parameters are in range.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.window_ms < 1_000 || self.window_ms > 3_600_000 {
            return Err("pricing.window_ms (1 s to 1 h)");
        }
        if self.stability_low_ppm > self.stability_high_ppm {
            return Err("pricing.stability_low_ppm above stability_high_ppm");
        }
        if self.max_step_ppm >= 1_000_000 || self.elasticity_ppm > 1_000_000 {
            return Err("pricing.max_step_ppm (below 1,000,000) or elasticity_ppm (at most 1,000,000)");
        }
        if self.fallback_capacity_tokens == 0 {
            return Err("pricing.fallback_capacity_tokens (positive)");
        }
        if self.min_price.0 > PRICE_CEILING || self.grace_price.0 > PRICE_CEILING {
            return Err("pricing.min_price and grace_price (at most 10⁶ GNK per token)");
        }
        Ok(())
    }
}

/// A model's floating price and its usage window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelPricing {
    /// The price, in 10⁻⁶ ngonka per token.
    pub price_micro: u128,
    /// Tokens finished in the window's blocks before this one.
    pub window_tokens: u64,
    /// Tokens finished in the current block so far.
    pub block_tokens: u64,
    /// Utilisation measured at the last block, ppm (capped at 10×).
    pub utilisation_ppm: u64,
}
codec_struct!(ModelPricing { price_micro, window_tokens, block_tokens, utilisation_ppm });

impl ModelPricing {
    /// The price in whole ngonka per token.
    pub fn price(&self) -> Amount {
        Amount(self.price_micro / PRICE_SCALE)
    }
}

messages! {
    /// Prices take no messages: they follow usage.
    pub enum PricingMsg {}
}

tables! {
    /// The pricing module's state.
    pub struct Pricing {
        /// Per model (content hash): its price and window.
        models: Table<Hash, ModelPricing> = 1,
        /// Per (model, block time ms): tokens finished in the blocks of that time, kept for the window.
        usage: Table<(Hash, u64), u64> = 2,
    }
}

impl Pricing {
    /// A model's pricing row, if it was ever priced.
    pub fn model(&self, model: &Hash) -> Option<&ModelPricing> {
        self.models.get(model)
    }
}

/// The price of `model` for the next block's receipts, in ngonka per token: the grace price during
/// the grace period, else its floating price (its base price before any block moved it). None for a
/// model the params do not serve.
pub fn price(state: &State, model: &Hash) -> Option<Amount> {
    let served = state.params().inference.model(model)?;
    let params = &state.params().pricing;
    let next_epoch = state.params().epoch.effective_epoch_at(state.height() + 1);
    if next_epoch < params.grace_epochs {
        return Some(params.grace_price);
    }
    Some(state.pricing.models.get(model).map_or(floored(served.price_per_token, params), ModelPricing::price))
}

/// What an inference of `model` locks per token at its first receipt: the price, but never more than
/// the developer signed (`docs/spec/economy.md` §7).
pub fn locked_price(state: &State, model: &Hash, bound: Amount) -> Option<Amount> {
    price(state, model).map(|price| price.min(bound))
}

/// Counts `tokens` finished for `model` in the current block.
pub fn record_usage(state: &mut State, model: &Hash, tokens: u64) {
    let Some(base) = state.params().inference.model(model).map(|m| m.price_per_token) else { return };
    if tokens == 0 {
        return;
    }
    let mut row =
        state.pricing.models.get(model).copied().unwrap_or_else(|| initial(base, &state.params().pricing));
    row.block_tokens = row.block_tokens.saturating_add(tokens);
    state.pricing.models.insert(*model, row);
}

fn floored(price: Amount, params: &PricingParams) -> Amount {
    Amount(price.0.max(params.min_price.0).min(PRICE_CEILING))
}

fn initial(base: Amount, params: &PricingParams) -> ModelPricing {
    ModelPricing { price_micro: floored(base, params).0 * PRICE_SCALE, ..ModelPricing::default() }
}

/// Utilisation in ppm: `tokens / (capacity per second × window seconds)`, capped at 10×.
pub fn utilisation_ppm(tokens: u64, capacity_per_second: u128, window_ms: u64) -> u64 {
    let capacity_ms = capacity_per_second.max(1).saturating_mul(u128::from(window_ms.max(1)));
    let ppm = (u128::from(tokens) * PPM * 1_000 / capacity_ms).min(UTILISATION_CAP_PPM);
    ppm as u64
}

/// The price after one block at `utilisation_ppm` (reference §6.8): unchanged in the stability zone,
/// otherwise moved by the distance from the zone times the elasticity, at most `max_step`, never
/// under `min_price` nor over [`PRICE_CEILING`].
pub fn next_price(price_micro: u128, utilisation_ppm: u64, params: &PricingParams) -> u128 {
    let u = u128::from(utilisation_ppm);
    let (low, high) = (u128::from(params.stability_low_ppm), u128::from(params.stability_high_ppm));
    let step = |distance: u128| {
        (distance * u128::from(params.elasticity_ppm) / PPM).min(u128::from(params.max_step_ppm))
    };
    let moved = if u < low {
        let down = step(low - u);
        price_micro - price_micro / PPM * down - price_micro % PPM * down / PPM
    } else if u > high {
        let up = step(u - high);
        price_micro + price_micro / PPM * up + price_micro % PPM * up / PPM
    } else {
        price_micro
    };
    moved.clamp(params.min_price.0 * PRICE_SCALE, PRICE_CEILING * PRICE_SCALE)
}

/// The capacity of the served models in tokens per second: the network's voting power at
/// `capacity_per_weight`, or the fallback when nobody has power. All hosts serve every model, so each
/// model's group is the whole network.
pub fn capacity_per_second(state: &State) -> u128 {
    let params = &state.params().pricing;
    let capacity = state.hosts.total_power().saturating_mul(u128::from(params.capacity_per_weight_ppm)) / PPM;
    if capacity == 0 { u128::from(params.fallback_capacity_tokens) } else { capacity }
}

impl Module for Pricing {
    const ID: u8 = 10;
    const NAME: &'static str = "pricing";
    type Msg = PricingMsg;
    type Error = TxError;

    fn check(_state: &State, _tx: &TxContext, msg: &PricingMsg) -> Result<(), TxError> {
        match *msg {}
    }

    fn apply(_state: &mut State, _tx: &TxContext, msg: &PricingMsg) -> Result<Vec<Event>, TxError> {
        match *msg {}
    }

    /// Closes the block's usage into each served model's window, drops the blocks that left it, and
    /// moves the price (after the grace period).
    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        let params = state.params().pricing;
        let models: Vec<(Hash, Amount)> =
            state.params().inference.models.iter().map(|m| (m.content_hash, m.price_per_token)).collect();
        let capacity = capacity_per_second(state);
        let floating = state.params().epoch.effective_epoch_at(block.height + 1) >= params.grace_epochs;
        // Blocks whose time is within the window of this block's time stay.
        let oldest_kept = block.time_ms.saturating_sub(params.window_ms - 1);
        let mut events = Vec::new();
        for (model, base) in models {
            let mut row = state.pricing.models.get(&model).copied().unwrap_or_else(|| initial(base, &params));
            if row.block_tokens > 0 {
                let key = (model, block.time_ms);
                let same_ms = state.pricing.usage.get(&key).copied().unwrap_or(0);
                state.pricing.usage.insert(key, same_ms.saturating_add(row.block_tokens));
                row.window_tokens = row.window_tokens.saturating_add(row.block_tokens);
                row.block_tokens = 0;
            }
            let expired: Vec<((Hash, u64), u64)> =
                state.pricing.usage.range((model, 0)..(model, oldest_kept)).map(|(k, t)| (*k, *t)).collect();
            for (key, tokens) in expired {
                state.pricing.usage.remove(&key);
                row.window_tokens = row.window_tokens.saturating_sub(tokens);
            }
            row.utilisation_ppm = utilisation_ppm(row.window_tokens, capacity, params.window_ms);
            if floating {
                let before = row.price();
                row.price_micro = next_price(row.price_micro, row.utilisation_ppm, &params);
                if row.price() != before {
                    events.push(
                        Event::new("price_changed")
                            .with("model", model)
                            .with("price", row.price().0)
                            .with("utilisation_ppm", row.utilisation_ppm),
                    );
                }
            }
            if state.pricing.models.get(&model) != Some(&row) {
                state.pricing.models.insert(model, row);
            }
        }
        Ok(events)
    }

    /// Each model's window total is the sum of its kept blocks.
    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        for (model, row) in state.pricing.models.iter() {
            let kept: u64 =
                state.pricing.usage.range((*model, 0)..=(*model, u64::MAX)).map(|(_, t)| *t).sum();
            if kept != row.window_tokens {
                return Err(InvariantViolation::new(
                    "pricing_window",
                    format!("model {model}: window {} ≠ kept blocks {kept}", row.window_tokens),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u128 = 100 * PRICE_SCALE;

    /// Reference §6.8, table-driven: zone, steps, cap, floor.
    #[test]
    fn the_price_moves_outside_the_zone_by_bounded_steps() {
        let params = PricingParams::default();
        for (u, expected) in [
            (400_000, P), // the zone's edges leave it alone
            (500_000, P),
            (600_000, P),
            (0, P * 98 / 100),           // idle: −(0.40 × 0.05) = −2 %
            (200_000, P * 99 / 100),     // −(0.20 × 0.05) = −1 %
            (800_000, P * 101 / 100),    // +(0.20 × 0.05) = +1 %
            (1_000_000, P * 102 / 100),  // +2 %, the step's bound
            (10_000_000, P * 102 / 100), // still +2 %
        ] {
            assert_eq!(next_price(P, u, &params), expected, "u = {u} ppm");
        }
        // The floor holds, and a floored price can climb back.
        let floor = params.min_price.0 * PRICE_SCALE;
        assert_eq!(next_price(floor, 0, &params), floor);
        assert_eq!(next_price(floor, 1_000_000, &params), floor * 102 / 100);
        // The ceiling is arithmetic only.
        let top = PRICE_CEILING * PRICE_SCALE;
        assert_eq!(next_price(top, 10_000_000, &params), top);
    }

    #[test]
    fn utilisation_is_tokens_over_capacity_of_the_window() {
        assert_eq!(utilisation_ppm(50, 10, 10_000), 500_000, "50 tokens of 10 a second over 10 s");
        assert_eq!(utilisation_ppm(0, 10, 10_000), 0);
        assert_eq!(utilisation_ppm(u64::MAX, 1, 1_000), 10_000_000, "capped at 10×");
        assert_eq!(utilisation_ppm(5, 0, 1_000), 5_000_000, "a zero capacity counts as one token a second");
    }

    #[test]
    fn the_default_and_mainnet_params_are_valid() {
        assert_eq!(PricingParams::default().validate(), Ok(()));
        assert_eq!(PricingParams::mainnet().validate(), Ok(()));
        let bad = PricingParams { stability_low_ppm: 700_000, ..PricingParams::default() };
        assert!(bad.validate().is_err());
    }
}
