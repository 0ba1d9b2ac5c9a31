//! All chain parameters: each module's own parameter group, the size limits of the chain core and the
//! authority allowed to change them. They live in genesis and in the authority module's state.

use gonka_primitives::{Address, Amount, codec_struct};
use serde::{Deserialize, Serialize};

use crate::collateral::CollateralParams;
use crate::epoch::{EpochParams, EpochParamsError};
use crate::inference::InferenceParams;
use crate::poc::PocParams;
use crate::pricing::PricingParams;
use crate::rewards::RewardParams;
use crate::validation::ValidationParams;

/// Size limits that bound everything a block or transaction may carry (TigerBeetle style: a limit on
/// everything that comes from outside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest encoded transaction.
    pub max_tx_bytes: u32,
    /// Most messages in one transaction.
    pub max_messages_per_tx: u32,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Largest encoded block.
    pub max_block_bytes: u32,
    /// Longest host API URL.
    pub max_url_bytes: u32,
}
codec_struct!(Limits { max_tx_bytes, max_messages_per_tx, max_block_txs, max_block_bytes, max_url_bytes });

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_tx_bytes: 16 * 1024,
            max_messages_per_tx: 32,
            max_block_txs: 10_000,
            max_block_bytes: 4 * 1024 * 1024,
            max_url_bytes: 256,
        }
    }
}

/// Transaction fees (`docs/spec/economy.md` §8): what a transaction that is not a staked host's duty
/// pays per message, burned. Duties ([`crate::State::is_duty`]) pay nothing; the mempool's per-host duty
/// bound and the entry collateral behind every duty lane are their price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fees {
    /// Fee per message of an ordinary transaction, in ngonka.
    pub per_message: Amount,
}
codec_struct!(Fees { per_message });

impl Default for Fees {
    /// 10,000 ngonka (10⁻⁵ GNK) per message: a block full of ordinary spam (10,000 transactions of 32
    /// messages) burns 3.2 GNK, while a developer's transfer costs less than a 100-token answer.
    fn default() -> Fees {
        Fees { per_message: Amount(10_000) }
    }
}

impl Fees {
    /// No fees: what chain tests that count ngonka by hand use.
    pub const FREE: Fees = Fees { per_message: Amount::ZERO };

    /// The fee of an ordinary transaction of `messages` messages.
    pub fn for_messages(&self, messages: usize) -> Amount {
        Amount(self.per_message.0.saturating_mul(messages as u128))
    }
}

/// All chain parameters. They live in genesis and in state; `UpdateParams` replaces them as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Epoch and PoC stage timing.
    pub epoch: EpochParams,
    /// Size limits.
    pub limits: Limits,
    /// Proof of Compute.
    pub poc: PocParams,
    /// Paid inference.
    pub inference: InferenceParams,
    /// Host collateral.
    #[serde(default)]
    pub collateral: CollateralParams,
    /// Answer validation.
    #[serde(default)]
    pub validation: ValidationParams,
    /// Settlement, subsidy and vesting.
    #[serde(default)]
    pub rewards: RewardParams,
    /// Transaction fees.
    #[serde(default)]
    pub fees: Fees,
    /// Dynamic per-token prices.
    #[serde(default)]
    pub pricing: PricingParams,
    /// The genesis authority: the only account allowed to send `UpdateParams` until governance exists.
    pub authority: Address,
}
codec_struct!(Params {
    epoch,
    limits,
    poc,
    inference,
    collateral,
    validation,
    rewards,
    fees,
    pricing,
    authority
});

/// Why parameters are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Epoch timing is inconsistent.
    #[error(transparent)]
    Epoch(#[from] EpochParamsError),
    /// A limit is zero or too small to hold a single message.
    #[error("limit {0} is out of range")]
    Limit(&'static str),
}

impl Params {
    /// The devnet profile (DESIGN.md §6).
    pub fn devnet(authority: Address) -> Params {
        Params {
            epoch: EpochParams::devnet(),
            limits: Limits::default(),
            poc: PocParams::devnet(),
            inference: InferenceParams::default(),
            collateral: CollateralParams::default(),
            validation: ValidationParams::default(),
            rewards: RewardParams::devnet(),
            fees: Fees::default(),
            pricing: PricingParams::default(),
            authority,
        }
    }

    /// The mainnet profile.
    pub fn mainnet(authority: Address) -> Params {
        Params {
            epoch: EpochParams::mainnet(),
            limits: Limits::default(),
            poc: PocParams::mainnet(),
            inference: InferenceParams::default(),
            collateral: CollateralParams::mainnet(),
            validation: ValidationParams::mainnet(),
            rewards: RewardParams::mainnet(),
            fees: Fees::default(),
            pricing: PricingParams::mainnet(),
            authority,
        }
    }

    /// Checks every parameter is in range.
    pub fn validate(&self) -> Result<(), ParamsError> {
        self.epoch.validate()?;
        self.poc.validate()?;
        self.inference.validate()?;
        self.validation.validate(&self.epoch)?;
        self.rewards.validate()?;
        let l = &self.limits;
        if l.max_tx_bytes < 256 || l.max_tx_bytes > 1 << 20 {
            return Err(ParamsError::Limit("max_tx_bytes"));
        }
        if l.max_messages_per_tx == 0 {
            return Err(ParamsError::Limit("max_messages_per_tx"));
        }
        if l.max_block_txs == 0 {
            return Err(ParamsError::Limit("max_block_txs"));
        }
        if l.max_block_bytes < l.max_tx_bytes + 1024 || l.max_block_bytes > 64 << 20 {
            return Err(ParamsError::Limit("max_block_bytes"));
        }
        self.pricing.validate().map_err(ParamsError::Limit)?;
        if self.fees.per_message.0 > 1_000_000 * crate::rewards::GNK {
            return Err(ParamsError::Limit("fees.per_message (at most 1,000,000 GNK)"));
        }
        if l.max_url_bytes < 16 || l.max_url_bytes > 2048 {
            return Err(ParamsError::Limit("max_url_bytes"));
        }
        // Withdrawn collateral must stay answerable for every request it vouched for: past the whole
        // request window, and at most a week.
        let window =
            self.inference.timestamp_expiration_ms.saturating_add(self.inference.timestamp_advance_ms);
        if self.collateral.unbonding_ms <= window || self.collateral.unbonding_ms > 7 * 24 * 3_600_000 {
            return Err(ParamsError::Limit("collateral.unbonding_ms"));
        }
        let c = &self.collateral;
        if [
            c.slash_invalid_ppm,
            c.slash_downtime_ppm,
            c.downtime_missed_ppm,
            c.base_weight_ppm,
            c.slash_double_sign_ppm,
        ]
        .iter()
        .any(|p| *p > 1_000_000)
        {
            return Err(ParamsError::Limit(
                "collateral slash fractions, downtime threshold and base weight (ppm, at most 1,000,000)",
            ));
        }
        if c.collateral_per_weight_unit == gonka_primitives::Amount::ZERO {
            return Err(ParamsError::Limit("collateral.collateral_per_weight_unit (positive)"));
        }
        Ok(())
    }
}
