//! Validation parameters: windows, the expected number of validators per inference (reference §5.1),
//! reputation (§7.1) and the evidence that makes a host INVALID (§7.2, Appendix A).

use gonka_primitives::codec_struct;
use serde::{Deserialize, Serialize};

use crate::epoch::EpochParams;
use crate::params::ParamsError;

/// Parts per million: the unit of every probability and share here.
pub const PPM: u64 = 1_000_000;

/// Validation parameters (`docs/spec/validation.md` §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationParams {
    /// Blocks after an inference's Finish during which selected hosts may submit their validation.
    pub validation_window_blocks: u64,
    /// Blocks a vote on a failed inference stays open.
    pub vote_window_blocks: u64,
    /// Expected validations per inference at full traffic, for a host of reputation 100 (ppm).
    pub min_validation_average_ppm: u64,
    /// Expected validations at half the full traffic (the floor's knee), in ppm.
    pub mid_validation_average_ppm: u64,
    /// Expected validations of an inference by a host of reputation 0, or at low traffic (ppm).
    pub max_validation_average_ppm: u64,
    /// Inferences in the previous epoch from which the floor is `min_validation_average`.
    pub full_traffic: u64,
    /// Inferences in the previous epoch at or below which every inference expects the maximum.
    pub low_traffic: u64,
    /// Clean epochs that earn reputation 100.
    pub epochs_to_max_reputation: u64,
    /// Missed share of an epoch's inferences above which the epoch counts against reputation (ppm).
    pub miss_cutoff_ppm: u64,
    /// How much of an epoch's credit a missed share above the cutoff costs, per unit of share (ppm).
    pub miss_penalty_ppm: u64,
    /// Evidence an invalidated inference (or an overturned verdict) adds: `ln(P1/P0)` in thousandths,
    /// with P0 the honest failure rate and P1 a cheater's (`docs/spec/validation.md` §6).
    pub failure_evidence_milli: u64,
    /// Evidence a validated inference removes: `−ln((1−P1)/(1−P0))` in thousandths.
    pub success_evidence_milli: u64,
    /// Evidence at which a host becomes INVALID, in thousandths.
    pub invalid_evidence_milli: u64,
    /// Top logprobs the executor records per completion position, whatever the developer asked.
    pub recorded_top_k: u32,
}
codec_struct!(ValidationParams {
    validation_window_blocks,
    vote_window_blocks,
    min_validation_average_ppm,
    mid_validation_average_ppm,
    max_validation_average_ppm,
    full_traffic,
    low_traffic,
    epochs_to_max_reputation,
    miss_cutoff_ppm,
    miss_penalty_ppm,
    failure_evidence_milli,
    success_evidence_milli,
    invalid_evidence_milli,
    recorded_top_k,
});

impl Default for ValidationParams {
    /// The devnet profile: the reference's rates and rules; 20 s to validate and 10 s to vote on ~1 s
    /// blocks, short enough for test epochs of 40 blocks.
    fn default() -> Self {
        ValidationParams {
            validation_window_blocks: 20,
            vote_window_blocks: 10,
            min_validation_average_ppm: 10_000,
            mid_validation_average_ppm: 50_000,
            max_validation_average_ppm: PPM,
            full_traffic: 10_000,
            low_traffic: 100,
            epochs_to_max_reputation: 30,
            miss_cutoff_ppm: 10_000,
            miss_penalty_ppm: PPM,
            // P0 = 0.05, P1 = 0.20: ln 4 = 1.386, −ln(0.80 / 0.95) = 0.172; a threshold of 4 is three
            // invalidations in a row (reference Appendix A uses the same test and threshold).
            failure_evidence_milli: 1_386,
            success_evidence_milli: 172,
            invalid_evidence_milli: 4_000,
            recorded_top_k: 5,
        }
    }
}

impl ValidationParams {
    /// The mainnet profile: an hour of 6-second blocks to validate, the original's 4-minute vote.
    pub fn mainnet() -> ValidationParams {
        ValidationParams {
            validation_window_blocks: 600,
            vote_window_blocks: 40,
            ..ValidationParams::default()
        }
    }

    /// The height at which the fee of an inference finished at `height` settles (`docs/spec/
    /// validation.md` §5.3): after its validation window, and not before its epoch has ended, so a host
    /// found INVALID at any time in the epoch earns nothing for it. A vote still open then postpones it.
    pub fn settle_height(&self, epoch: &EpochParams, height: u64) -> u64 {
        let window_end = height.saturating_add(self.validation_window_blocks).saturating_add(1);
        window_end.max(epoch_end(epoch, epoch.effective_epoch_at(height)))
    }

    /// Expected validations of one inference (ppm) when the previous epoch had `traffic` inferences
    /// and the executor's reputation is `reputation` (0..=100): reference §5.1's floor, raised
    /// toward the maximum as reputation falls.
    pub fn expected_validations_ppm(&self, traffic: u64, reputation: u8) -> u64 {
        let floor = self.validation_floor_ppm(traffic);
        let rest = self.max_validation_average_ppm.saturating_sub(floor);
        floor + rest * (100 - u64::from(reputation.min(100))) / 100
    }

    /// Reference §5.1's traffic-dependent floor, interpolated linearly between its knees.
    fn validation_floor_ppm(&self, traffic: u64) -> u64 {
        let (full, low) = (self.full_traffic, self.low_traffic);
        let half = full / 2;
        let (min, mid, max) = (
            self.min_validation_average_ppm,
            self.mid_validation_average_ppm,
            self.max_validation_average_ppm,
        );
        if traffic >= full {
            min
        } else if traffic >= half {
            min + (mid - min) * (full - traffic) / (full - half).max(1)
        } else if traffic > low {
            mid + (max - mid) * (half - traffic) / (half - low).max(1)
        } else {
            max
        }
    }

    /// Checks the parameters are usable with `epoch`'s timing.
    pub fn validate(&self, epoch: &EpochParams) -> Result<(), ParamsError> {
        let averages = self.min_validation_average_ppm <= self.mid_validation_average_ppm
            && self.mid_validation_average_ppm <= self.max_validation_average_ppm
            && self.max_validation_average_ppm <= 10 * PPM
            && self.min_validation_average_ppm > 0;
        if !averages {
            return Err(ParamsError::Limit("validation averages (0 < min ≤ mid ≤ max ≤ 10)"));
        }
        if self.low_traffic >= self.full_traffic / 2 {
            return Err(ParamsError::Limit("validation traffic knees (low < full / 2)"));
        }
        // Every validation and vote of an epoch's inferences is over before the epoch after next
        // starts, when their records leave (`docs/spec/validation.md` §5.4).
        let windows = self.validation_window_blocks.saturating_add(self.vote_window_blocks).saturating_add(2);
        if self.validation_window_blocks == 0 || self.vote_window_blocks == 0 || windows >= epoch.epoch_length
        {
            return Err(ParamsError::Limit(
                "validation and vote windows (positive, together under an epoch)",
            ));
        }
        if self.epochs_to_max_reputation == 0 || self.miss_cutoff_ppm > PPM {
            return Err(ParamsError::Limit("reputation parameters"));
        }
        if self.invalid_evidence_milli == 0 || self.failure_evidence_milli == 0 {
            return Err(ParamsError::Limit("status evidence (positive)"));
        }
        if !(5..=20).contains(&self.recorded_top_k) {
            return Err(ParamsError::Limit("recorded_top_k (5 to 20)"));
        }
        Ok(())
    }
}

/// The first height after epoch `index`: the SetNewValidators height of the next epoch.
pub fn epoch_end(epoch: &EpochParams, index: u64) -> u64 {
    index.checked_add(1).and_then(|next| epoch.stages(next)).map_or(u64::MAX, |s| s.set_new_validators)
}

/// The first height of epoch `index` (1 for epoch 0).
pub fn epoch_start(epoch: &EpochParams, index: u64) -> u64 {
    match index {
        0 => 1,
        _ => epoch.stages(index).map_or(u64::MAX, |s| s.set_new_validators),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_validations_follow_the_reference_table() {
        let p = ValidationParams::default();
        // (traffic, reputation, expected ppm): reference §5.1.
        let table = [
            (0, 0, 1_000_000),
            (100, 100, 1_000_000),
            (101, 100, 999_806),
            (2_550, 100, 525_000),
            (5_000, 100, 50_000),
            (7_500, 100, 30_000),
            (10_000, 100, 10_000),
            (50_000, 100, 10_000),
            (10_000, 0, 1_000_000),
            (10_000, 50, 505_000),
        ];
        for (traffic, reputation, expected) in table {
            assert_eq!(p.expected_validations_ppm(traffic, reputation), expected, "{traffic} {reputation}");
        }
    }

    #[test]
    fn fees_settle_after_the_window_and_the_epoch() {
        let p = ValidationParams::default();
        let e = EpochParams::devnet();
        let stages = e.stages(1).expect("epoch 1");
        // Early in epoch 0: at the end of epoch 0.
        assert_eq!(p.settle_height(&e, 5), stages.set_new_validators);
        // Near its end: after the window.
        let late = stages.set_new_validators - 2;
        assert_eq!(p.settle_height(&e, late), late + 21);
        assert_eq!(epoch_start(&e, 0), 1);
        assert_eq!(epoch_start(&e, 1), stages.set_new_validators);
    }

    #[test]
    fn windows_must_fit_an_epoch() {
        let e = EpochParams::devnet();
        assert_eq!(ValidationParams::default().validate(&e), Ok(()));
        let long = ValidationParams { validation_window_blocks: 170, ..ValidationParams::default() };
        assert!(long.validate(&e).is_err());
        let small_k = ValidationParams { recorded_top_k: 4, ..ValidationParams::default() };
        assert!(small_k.validate(&e).is_err());
    }
}
