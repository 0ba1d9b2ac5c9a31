//! Epochs and phases, computed from heights alone (reference §2.2, `docs/spec/chain.md` §4).
//!
//! An epoch is the period between two PoC starts. Epoch 0 is genesis: it never runs PoC and its phase
//! is always [`EpochPhase::Inference`]. Epoch `n ≥ 1` starts its PoC at
//! `S(n) = (epoch_length − epoch_shift) + (n − 1) × epoch_length`, and every stage boundary is a
//! fixed offset from `S(n)`. The module has no messages and no tables: its end-block hook announces
//! phase changes and the effective epoch.

use gonka_primitives::codec_struct;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::State;
use crate::tx::TxError;

messages! {
    /// The epoch clock takes no messages.
    pub enum EpochMsg {}
}

tables! {
    /// The epoch clock keeps no state: everything follows from the height and the params.
    pub struct Epoch {}
}

impl Module for Epoch {
    const ID: u8 = 6;
    const NAME: &'static str = "epoch";
    type Msg = EpochMsg;
    type Error = TxError;

    fn check(_state: &State, _tx: &TxContext, msg: &EpochMsg) -> Result<(), TxError> {
        match *msg {}
    }

    fn apply(_state: &mut State, _tx: &TxContext, msg: &EpochMsg) -> Result<Vec<Event>, TxError> {
        match *msg {}
    }

    /// Events for the phase or effective epoch changing between the previous height and this one.
    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        let epoch = state.params().epoch;
        let (height, previous) = (block.height, block.previous_height);
        let mut events = Vec::new();
        let phase = epoch.phase_at(height);
        if height == 1
            || phase != epoch.phase_at(previous)
            || epoch.poc_epoch_at(height) != epoch.poc_epoch_at(previous)
        {
            events.push(
                Event::new("phase_changed")
                    .with("epoch", epoch.poc_epoch_at(height))
                    .with("phase", phase.name())
                    .with("height", height),
            );
        }
        let effective = epoch.effective_epoch_at(height);
        if effective != epoch.effective_epoch_at(previous) {
            events.push(Event::new("epoch_effective").with("epoch", effective).with("height", height));
        }
        Ok(events)
    }
}

/// Epoch timing parameters, all in blocks (reference §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochParams {
    /// Blocks between PoC starts.
    pub epoch_length: u64,
    /// The first PoC starts at `epoch_length − epoch_shift`.
    pub epoch_shift: u64,
    /// PoC generation blocks.
    pub poc_stage_duration: u64,
    /// Blocks after generation during which batches are still accepted.
    pub poc_exchange_duration: u64,
    /// Gap between the end of generation and the start of validation.
    pub poc_validation_delay: u64,
    /// PoC validation blocks.
    pub poc_validation_duration: u64,
    /// Blocks after the end of validation until the new validator set becomes effective.
    pub set_new_validators_delay: u64,
    /// Inferences finished in the last N blocks before the next PoC are exempt from mandatory validation.
    pub inference_validation_cutoff: u64,
}
codec_struct!(EpochParams {
    epoch_length,
    epoch_shift,
    poc_stage_duration,
    poc_exchange_duration,
    poc_validation_delay,
    poc_validation_duration,
    set_new_validators_delay,
    inference_validation_cutoff,
});

/// The phase a height is in (reference §2.2 `EpochPhase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochPhase {
    /// `[S, generation wind-down)`: hosts race nonces.
    PocGenerate,
    /// `[generation wind-down, start of validation)`: includes the exchange and delay gap.
    PocGenerateWindDown,
    /// `[start of validation, validation wind-down)`.
    PocValidate,
    /// `[validation wind-down, end of validation)`.
    PocValidateWindDown,
    /// Everything else: hosts serve inference.
    Inference,
}

impl EpochPhase {
    /// Stable snake_case name, as in the JSON API and events.
    pub fn name(self) -> &'static str {
        match self {
            EpochPhase::PocGenerate => "poc_generate",
            EpochPhase::PocGenerateWindDown => "poc_generate_wind_down",
            EpochPhase::PocValidate => "poc_validate",
            EpochPhase::PocValidateWindDown => "poc_validate_wind_down",
            EpochPhase::Inference => "inference",
        }
    }
}

/// The absolute stage heights of one epoch `n ≥ 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStages {
    /// Epoch index.
    pub epoch_index: u64,
    /// `S`: PoC start.
    pub poc_start: u64,
    /// `S + floor(0.8 × poc_stage_duration)`.
    pub generation_wind_down: u64,
    /// `S + poc_stage_duration`.
    pub end_of_generation: u64,
    /// `end_of_generation + poc_exchange_duration`: last height a PoC batch is accepted.
    pub exchange_deadline: u64,
    /// `end_of_generation + poc_validation_delay`.
    pub start_of_validation: u64,
    /// `start_of_validation + floor(0.8 × poc_validation_duration)`.
    pub validation_wind_down: u64,
    /// `start_of_validation + poc_validation_duration`.
    pub end_of_validation: u64,
    /// `end_of_validation + set_new_validators_delay`: this epoch becomes effective.
    pub set_new_validators: u64,
    /// `set_new_validators + 1`.
    pub claim_money: u64,
    /// `S + epoch_length`.
    pub next_poc_start: u64,
    /// `next_poc_start − inference_validation_cutoff`.
    pub inference_validation_cutoff: u64,
}

impl EpochStages {
    /// Heights at which a PoC batch is accepted: `[S+1, exchange deadline]`.
    pub fn batch_window(&self) -> std::ops::RangeInclusive<u64> {
        self.poc_start + 1..=self.exchange_deadline
    }

    /// Heights at which a PoC validation is accepted: `[start of validation + 1, end of validation]`.
    pub fn validation_window(&self) -> std::ops::RangeInclusive<u64> {
        self.start_of_validation + 1..=self.end_of_validation
    }

    /// The phase of `height`, which must lie in `[S, next PoC start)`.
    fn phase_of(&self, height: u64) -> EpochPhase {
        if height < self.generation_wind_down {
            EpochPhase::PocGenerate
        } else if height < self.start_of_validation {
            EpochPhase::PocGenerateWindDown
        } else if height < self.validation_wind_down {
            EpochPhase::PocValidate
        } else if height < self.end_of_validation {
            EpochPhase::PocValidateWindDown
        } else {
            EpochPhase::Inference
        }
    }
}

/// Why epoch parameters are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochParamsError {
    /// `epoch_length` is zero or `epoch_shift ≥ epoch_length`.
    #[error("epoch_length must be positive and epoch_shift smaller than it")]
    BadLength,
    /// The stages of one epoch, up to ClaimMoney, do not fit before the next PoC starts.
    #[error("PoC stages and set_new_validators_delay ({0} blocks) must end before the next PoC start")]
    StagesTooLong(u64),
    /// The cutoff is longer than the epoch.
    #[error("inference_validation_cutoff must not exceed epoch_length")]
    CutoffTooLong,
    /// Batches would still be accepted after validators sampled the nonces.
    #[error(
        "poc_exchange_duration must not exceed poc_validation_delay: batches close before validation samples"
    )]
    ExchangeAfterValidation,
    /// A stage without a single height: no sprint, or no block to vote in.
    #[error("poc_stage_duration and poc_validation_duration must be at least one block")]
    EmptyStage,
}

impl EpochParams {
    /// Devnet profile (DESIGN.md §6): ~1 s blocks, a 3-minute epoch, first PoC at block 30.
    pub fn devnet() -> EpochParams {
        EpochParams {
            epoch_length: 180,
            epoch_shift: 150,
            poc_stage_duration: 30,
            poc_exchange_duration: 3,
            poc_validation_delay: 3,
            poc_validation_duration: 15,
            set_new_validators_delay: 3,
            inference_validation_cutoff: 10,
        }
    }

    /// Mainnet profile: the original network's mainnet genesis (reference §2.1).
    pub fn mainnet() -> EpochParams {
        EpochParams {
            epoch_length: 17280,
            epoch_shift: 16980,
            poc_stage_duration: 60,
            poc_exchange_duration: 5,
            poc_validation_delay: 5,
            poc_validation_duration: 20,
            set_new_validators_delay: 120,
            inference_validation_cutoff: 80,
        }
    }

    /// Checks that every stage fits inside one epoch, in order: the exchange of batches closes before
    /// validation samples them (a later batch would go unvalidated), and every window has a height.
    pub fn validate(&self) -> Result<(), EpochParamsError> {
        if self.epoch_length == 0 || self.epoch_shift >= self.epoch_length {
            return Err(EpochParamsError::BadLength);
        }
        if self.poc_stage_duration == 0 || self.poc_validation_duration == 0 {
            return Err(EpochParamsError::EmptyStage);
        }
        if self.poc_exchange_duration > self.poc_validation_delay {
            return Err(EpochParamsError::ExchangeAfterValidation);
        }
        let span = [
            self.poc_stage_duration,
            self.poc_validation_delay,
            self.poc_validation_duration,
            self.set_new_validators_delay,
            1,
        ]
        .iter()
        .try_fold(0u64, |sum, d| sum.checked_add(*d))
        .unwrap_or(u64::MAX);
        if span >= self.epoch_length {
            return Err(EpochParamsError::StagesTooLong(span));
        }
        if self.inference_validation_cutoff > self.epoch_length {
            return Err(EpochParamsError::CutoffTooLong);
        }
        Ok(())
    }

    /// Height of the first PoC start (epoch 1).
    pub fn first_poc_start(&self) -> u64 {
        self.epoch_length - self.epoch_shift
    }

    /// PoC start height of epoch `index`; None for epoch 0, which has no PoC.
    pub fn poc_start(&self, index: u64) -> Option<u64> {
        let offset = index.checked_sub(1)?.checked_mul(self.epoch_length)?;
        self.first_poc_start().checked_add(offset)
    }

    /// The index of the latest epoch whose PoC started at or before `height` (0 before the first PoC).
    pub fn poc_epoch_at(&self, height: u64) -> u64 {
        match height.checked_sub(self.first_poc_start()) {
            None => 0,
            Some(since_first) => since_first / self.epoch_length + 1,
        }
    }

    /// All stage heights of epoch `index`; None for epoch 0 and for an epoch whose heights would not
    /// fit in a `u64` (every stage lies before the next PoC start, so checking that one bounds them all
    /// for validated parameters; each sum is checked anyway).
    pub fn stages(&self, index: u64) -> Option<EpochStages> {
        let s = self.poc_start(index)?;
        let next_poc_start = s.checked_add(self.epoch_length)?;
        let end_of_generation = s.checked_add(self.poc_stage_duration)?;
        let start_of_validation = end_of_generation.checked_add(self.poc_validation_delay)?;
        let end_of_validation = start_of_validation.checked_add(self.poc_validation_duration)?;
        let set_new_validators = end_of_validation.checked_add(self.set_new_validators_delay)?;
        Some(EpochStages {
            epoch_index: index,
            poc_start: s,
            // ⌊0.8 d⌋ = d − ⌈d / 5⌉, without the overflow of `d * 4`.
            generation_wind_down: end_of_generation - self.poc_stage_duration.div_ceil(5),
            end_of_generation,
            exchange_deadline: end_of_generation.checked_add(self.poc_exchange_duration)?,
            start_of_validation,
            validation_wind_down: end_of_validation - self.poc_validation_duration.div_ceil(5),
            end_of_validation,
            set_new_validators,
            claim_money: set_new_validators.checked_add(1)?,
            next_poc_start,
            inference_validation_cutoff: next_poc_start.saturating_sub(self.inference_validation_cutoff),
        })
    }

    /// The phase of `height`.
    pub fn phase_at(&self, height: u64) -> EpochPhase {
        match self.stages(self.poc_epoch_at(height)) {
            None => EpochPhase::Inference,
            Some(stages) => stages.phase_of(height),
        }
    }

    /// The epoch in effect at `height`: epoch `n` becomes effective at its SetNewValidators height, so
    /// from `S(n)` until then the effective epoch is still `n − 1`.
    pub fn effective_epoch_at(&self, height: u64) -> u64 {
        let latest = self.poc_epoch_at(height);
        match self.stages(latest) {
            Some(stages) if height < stages.set_new_validators => latest - 1,
            _ => latest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EpochPhase::*;
    use super::*;

    /// Mainnet: S(1) = 17280 − 16980 = 300; offsets from the reference §2.2 timeline.
    #[test]
    fn mainnet_phase_table() {
        let p = EpochParams::mainnet();
        let s = 300;
        let table: &[(u64, EpochPhase, u64, u64)] = &[
            // (height, phase, poc epoch, effective epoch)
            (0, Inference, 0, 0),
            (1, Inference, 0, 0),
            (299, Inference, 0, 0),
            (s, PocGenerate, 1, 0),
            (s + 1, PocGenerate, 1, 0),
            (s + 47, PocGenerate, 1, 0),
            (s + 48, PocGenerateWindDown, 1, 0),
            (s + 60, PocGenerateWindDown, 1, 0),
            (s + 64, PocGenerateWindDown, 1, 0),
            (s + 65, PocValidate, 1, 0),
            (s + 80, PocValidate, 1, 0),
            (s + 81, PocValidateWindDown, 1, 0),
            (s + 84, PocValidateWindDown, 1, 0),
            (s + 85, Inference, 1, 0),
            (s + 204, Inference, 1, 0),
            (s + 205, Inference, 1, 1),
            (s + 17279, Inference, 1, 1),
            (s + 17280, PocGenerate, 2, 1),
            (s + 17280 + 48, PocGenerateWindDown, 2, 1),
            (s + 17280 + 205, Inference, 2, 2),
        ];
        for &(height, phase, poc_epoch, effective) in table {
            assert_eq!(p.phase_at(height), phase, "phase at {height}");
            assert_eq!(p.poc_epoch_at(height), poc_epoch, "poc epoch at {height}");
            assert_eq!(p.effective_epoch_at(height), effective, "effective epoch at {height}");
        }
    }

    #[test]
    fn mainnet_stage_heights_match_the_reference_timeline() {
        let stages = EpochParams::mainnet().stages(1).expect("epoch 1 has stages");
        assert_eq!(
            stages,
            EpochStages {
                epoch_index: 1,
                poc_start: 300,
                generation_wind_down: 348,
                end_of_generation: 360,
                exchange_deadline: 365,
                start_of_validation: 365,
                validation_wind_down: 381,
                end_of_validation: 385,
                set_new_validators: 505,
                claim_money: 506,
                next_poc_start: 17580,
                inference_validation_cutoff: 17500,
            }
        );
        assert_eq!(stages.batch_window(), 301..=365);
        assert_eq!(stages.validation_window(), 366..=385);
        assert_eq!(EpochParams::mainnet().stages(0), None);
    }

    /// Devnet: S(1) = 30, stage 30 (wind-down at 24), exchange 3, delay 3, validation 15 (wind-down 12).
    #[test]
    fn devnet_phase_table() {
        let p = EpochParams::devnet();
        let table: &[(u64, EpochPhase, u64)] = &[
            (0, Inference, 0),
            (29, Inference, 0),
            (30, PocGenerate, 1),
            (53, PocGenerate, 1),
            (54, PocGenerateWindDown, 1),
            (60, PocGenerateWindDown, 1),
            (62, PocGenerateWindDown, 1),
            (63, PocValidate, 1),
            (74, PocValidate, 1),
            (75, PocValidateWindDown, 1),
            (77, PocValidateWindDown, 1),
            (78, Inference, 1),
            (80, Inference, 1),
            (81, Inference, 1),
            (209, Inference, 1),
            (210, PocGenerate, 2),
            (234, PocGenerateWindDown, 2),
            (243, PocValidate, 2),
            (258, Inference, 2),
        ];
        for &(height, phase, epoch) in table {
            assert_eq!(p.phase_at(height), phase, "phase at {height}");
            assert_eq!(p.poc_epoch_at(height), epoch, "epoch at {height}");
        }
        let stages = p.stages(1).expect("epoch 1");
        assert_eq!((stages.exchange_deadline, stages.set_new_validators, stages.claim_money), (63, 81, 82));
        assert_eq!(p.effective_epoch_at(80), 0);
        assert_eq!(p.effective_epoch_at(81), 1);
        assert_eq!(p.effective_epoch_at(210), 1);
    }

    #[test]
    fn both_profiles_are_valid_and_bad_ones_are_refused() {
        assert_eq!(EpochParams::devnet().validate(), Ok(()));
        assert_eq!(EpochParams::mainnet().validate(), Ok(()));
        let mut p = EpochParams::devnet();
        p.epoch_shift = p.epoch_length;
        assert_eq!(p.validate(), Err(EpochParamsError::BadLength));
        let mut p = EpochParams::devnet();
        p.poc_validation_duration = 1000;
        assert!(matches!(p.validate(), Err(EpochParamsError::StagesTooLong(_))));
        let mut p = EpochParams::devnet();
        p.poc_stage_duration = u64::MAX;
        assert!(matches!(p.validate(), Err(EpochParamsError::StagesTooLong(_))));
    }

    #[test]
    fn batches_close_before_validation_samples_and_every_stage_has_a_height() {
        let late_exchange = EpochParams { poc_exchange_duration: 4, ..EpochParams::devnet() };
        assert_eq!(late_exchange.validate(), Err(EpochParamsError::ExchangeAfterValidation));
        let no_votes = EpochParams { poc_validation_duration: 0, ..EpochParams::devnet() };
        assert_eq!(no_votes.validate(), Err(EpochParamsError::EmptyStage));
        let no_sprint = EpochParams { poc_stage_duration: 0, ..EpochParams::devnet() };
        assert_eq!(no_sprint.validate(), Err(EpochParamsError::EmptyStage));
        assert_eq!(EpochParams::devnet().validate(), Ok(()));
        assert_eq!(EpochParams::mainnet().validate(), Ok(()));
    }

    #[test]
    fn stage_arithmetic_never_overflows() {
        let p = EpochParams::mainnet();
        let last = u64::MAX / p.epoch_length;
        assert_eq!(p.stages(last + 1), None, "beyond u64: no stages, no wrap");
        assert!(p.stages(last - 1).is_some());
        assert_eq!(p.phase_at(u64::MAX), p.phase_at(u64::MAX), "answers without panicking");
        let huge = EpochParams { set_new_validators_delay: u64::MAX, ..p };
        assert!(huge.validate().is_err());
        assert_eq!(huge.stages(1), None);
    }
}
