//! Proof-of-Compute parameters (reference §3.2, §3.6, §3.8, §3.10) and their devnet and mainnet
//! profiles.

use gonka_poc::ModelSpec;
use gonka_primitives::{Amount, Decimal, codec_struct};
use serde::{Deserialize, Serialize};

use crate::params::ParamsError;

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
    /// Collateral a host must hold to commit a seed and to be accepted at settlement: entering PoC is
    /// not free (`docs/spec/poc.md` §7).
    #[serde(default)]
    pub entry_collateral: Amount,
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
    entry_collateral,
});

/// `10^-exponent` as a decimal.
const fn decimal_e(mantissa: i128, exponent: u32) -> Decimal {
    Decimal::from_raw(mantissa * 10i128.pow(18 - exponent))
}

impl PocParams {
    /// Devnet: the small model, a difficulty giving a one-worker host thousands of valid nonces per sprint, a
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
            entry_collateral: Amount(10 * gonka_primitives::amount::NGONKA_PER_GNK),
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
            entry_collateral: Amount(10_000 * gonka_primitives::amount::NGONKA_PER_GNK),
        }
    }

    /// The smallest claim the binomial test rejects when every sampled nonce mismatches: the least `n`
    /// with `P[Binomial(n, p_mismatch) ≥ n] < fraud_threshold` (devnet 2, mainnet 3). A fully fabricated
    /// claim of at least this size is fraud whatever its size, since its sample is at least this
    /// large and all of it mismatches; smaller claims earn nothing (reference §12.2; issue 12, item 5).
    /// `None` when no claim up to the sample size would be rejected (invalid parameters).
    pub fn min_claim(&self) -> Option<u64> {
        (1..=u64::from(self.validation_sample_size)).find(|&n| {
            gonka_poc::fraud_detected(n, n, self.p_mismatch, self.fraud_threshold).unwrap_or(false)
        })
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
        // A fabricated claim must be rejectable at some size, and a small one (≤ 16): above that the
        // minimum would shut out small honest hosts.
        if self.min_claim().is_none_or(|n| n > 16) {
            return Err(ParamsError::Limit("poc.p_mismatch"));
        }
        Ok(())
    }
}

/// The devnet difficulty: about a third of the devnet model's nonces are valid, so a one-worker host
/// earns ~5,000 nonces of weight per sprint and the Poisson noise of weight against compute is ~1.4 %
/// (issue 12, item 8; `bench/poc-fairness.sh`, `docs/spec/poc.md` §9). At 1.35 (hit rate 2·10⁻³) a
/// host earned ~30 and equal hosts' weights differed by 20–40 %.
pub const DEVNET_R_TARGET: Decimal = Decimal::from_raw(1_405_000_000_000_000_000);
