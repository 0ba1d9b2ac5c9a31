//! Chain parameters: epoch timing, size limits and the authority allowed to change them.

use gonka_poc::ModelSpec;
use gonka_primitives::{Address, Decimal, codec_struct};
use serde::{Deserialize, Serialize};

use crate::epoch::{EpochParams, EpochParamsError};
use crate::inference::InferenceParams;

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

/// Proof-of-Compute parameters (reference §3.2, §3.6, §3.8, §3.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocParams {
    /// The random transformer every host races.
    pub model: ModelSpec,
    /// A nonce is valid when its distance is below this (the difficulty).
    pub r_target: Decimal,
    /// Largest `|recomputed − claimed|` distance a validator accepts for a sampled nonce.
    pub distance_tolerance: Decimal,
    /// Nonces a validator recomputes per participant (all of them when fewer are claimed).
    pub validation_sample_size: u32,
    /// Mismatch rate expected of an honest host (hardware nondeterminism), for the binomial test.
    pub p_mismatch: Decimal,
    /// A validator declares fraud when `P[X ≥ mismatches] < fraud_threshold`.
    pub fraud_threshold: Decimal,
    /// Most nonces in one `SubmitPocBatch` message.
    pub max_nonces_per_batch: u32,
    /// Most distinct nonces one participant may claim in one stage (bounds state).
    pub max_nonces_per_stage: u64,
    /// Largest share of the total weight one participant may hold after capping, in `(0, 1]`.
    pub max_individual_power: Decimal,
}
codec_struct!(PocParams {
    model,
    r_target,
    distance_tolerance,
    validation_sample_size,
    p_mismatch,
    fraud_threshold,
    max_nonces_per_batch,
    max_nonces_per_stage,
    max_individual_power,
});

/// `10^-exponent` as a decimal.
const fn decimal_e(mantissa: i128, exponent: u32) -> Decimal {
    Decimal::from_raw(mantissa * 10i128.pow(18 - exponent))
}

impl PocParams {
    /// Devnet: the small model, a difficulty giving a 2-core host tens of valid nonces per sprint, a
    /// 50 % cap so a 4-host devnet's weights can differ (25 % would flatten any four hosts), and
    /// `p_mismatch` 10^-6: the CPU kernel is bit-identical across machines and claims are compared
    /// with a tolerance, so an honest host's mismatch rate is ~0, and two mismatches in 200 already
    /// prove fraud (the reference's 5·10^-4 needs five, letting ~1 % fabrication through, §12.2).
    pub fn devnet() -> PocParams {
        PocParams {
            model: ModelSpec::devnet(),
            r_target: DEVNET_R_TARGET,
            p_mismatch: decimal_e(1, 6),
            max_individual_power: decimal_e(5, 1),
            ..PocParams::mainnet()
        }
    }

    /// Mainnet: the original's `MainNetParams` model, `r_target` 1.4013564660458173, 200 sampled
    /// nonces, `p_mismatch` 5·10^-4, fraud threshold 10^-7, 25 % cap.
    pub fn mainnet() -> PocParams {
        PocParams {
            model: ModelSpec::mainnet(),
            r_target: Decimal::from_raw(1_401_356_466_045_817_300),
            distance_tolerance: decimal_e(1, 4),
            validation_sample_size: 200,
            p_mismatch: decimal_e(5, 4),
            fraud_threshold: decimal_e(1, 7),
            max_nonces_per_batch: 1000,
            max_nonces_per_stage: 1_000_000,
            max_individual_power: decimal_e(25, 2),
        }
    }

    /// The binomial verdict on a validator's count: whether `mismatches` of `sampled` is fraud.
    pub fn is_fraud(&self, sampled: u32, mismatches: u32) -> Result<bool, gonka_poc::BinomialError> {
        gonka_poc::fraud_detected(
            u64::from(sampled),
            u64::from(mismatches),
            self.p_mismatch,
            self.fraud_threshold,
        )
    }

    /// Checks every PoC parameter is in range.
    pub fn validate(&self) -> Result<(), ParamsError> {
        self.model.validate().map_err(|_| ParamsError::Limit("poc.model"))?;
        let two = Decimal::from_raw(2 * Decimal::ONE.raw());
        if self.r_target <= Decimal::ZERO || self.r_target > two {
            return Err(ParamsError::Limit("poc.r_target"));
        }
        if self.distance_tolerance.is_negative() || self.distance_tolerance > two {
            return Err(ParamsError::Limit("poc.distance_tolerance"));
        }
        if self.validation_sample_size == 0
            || u64::from(self.validation_sample_size) > gonka_poc::binomial::MAX_TRIALS
        {
            return Err(ParamsError::Limit("poc.validation_sample_size"));
        }
        if self.p_mismatch.is_negative() || self.p_mismatch > Decimal::ONE {
            return Err(ParamsError::Limit("poc.p_mismatch"));
        }
        if self.fraud_threshold <= Decimal::ZERO || self.fraud_threshold > Decimal::ONE {
            return Err(ParamsError::Limit("poc.fraud_threshold"));
        }
        if self.max_nonces_per_batch == 0 {
            return Err(ParamsError::Limit("poc.max_nonces_per_batch"));
        }
        if self.max_nonces_per_stage == 0 {
            return Err(ParamsError::Limit("poc.max_nonces_per_stage"));
        }
        if self.max_individual_power <= Decimal::ZERO || self.max_individual_power > Decimal::ONE {
            return Err(ParamsError::Limit("poc.max_individual_power"));
        }
        Ok(())
    }
}

/// The devnet difficulty, from `gonka poc calibrate` on the devnet model (see `docs/spec/poc.md`).
pub const DEVNET_R_TARGET: Decimal = Decimal::from_raw(1_350_000_000_000_000_000);

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
    /// The genesis authority: the only account allowed to send `UpdateParams` until governance exists.
    pub authority: Address,
}
codec_struct!(Params { epoch, limits, poc, inference, authority });

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
            authority,
        }
    }

    /// Checks every parameter is in range.
    pub fn validate(&self) -> Result<(), ParamsError> {
        self.epoch.validate()?;
        self.poc.validate()?;
        let i = &self.inference;
        if i.expiry_base_blocks == 0 || i.expiry_tokens_per_block == 0 || i.max_tokens_cap == 0 {
            return Err(ParamsError::Limit("inference expiry and max_tokens_cap"));
        }
        if i.models.len() > 64 || i.models.iter().any(|m| m.name.is_empty() || m.name.len() > 128) {
            return Err(ParamsError::Limit("inference.models"));
        }
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
        if l.max_url_bytes < 16 || l.max_url_bytes > 2048 {
            return Err(ParamsError::Limit("max_url_bytes"));
        }
        Ok(())
    }
}
