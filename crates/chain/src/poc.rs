//! Proof of Compute on chain (reference §3.7–§3.10, DESIGN.md §4.3; `docs/spec/poc.md`).
//!
//! - At `S(n)` the stage opens: the block hash of `S` seeds the model every host races, and the
//!   previous stage's claims, nonces and votes are pruned.
//! - In `[S+1, exchange deadline]` hosts commit to their epoch seed and submit batches of nonces. Every
//!   claimed distance must be below `r_target`; each nonce counts once per participant per stage.
//! - In the validation window each host submits one verdict per participant: the chain verifies the
//!   signature that seeded its sample, checks the sample size and applies the binomial test itself.
//! - At the end of validation the weights are computed: a participant is accepted when validators
//!   holding more than half of the current weight found no fraud (silence counts as no); its weight is
//!   its distinct nonce count, then capped. They become voting power at SetNewValidators.

use gonka_poc::{Distance, MismatchRule};
use gonka_primitives::{AccountPublicKey, AccountSignature, Address, Hash, codec_struct};
use serde::Serialize;

use crate::epoch::EpochStages;
use crate::event::Event;
use crate::state::State;
use crate::tx::PocNonce;

/// The PoC stage in progress or last run: what hosts race and validators check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PocStage {
    /// The epoch whose weights this stage decides.
    pub epoch: u64,
    /// `S`: the stage's start height.
    pub start_height: u64,
    /// Hash of block `S`: the seed of the model, the inputs and the target.
    pub block_hash: Hash,
}
codec_struct!(PocStage { epoch, start_height, block_hash });

/// Key of a participant's claim record: (stage start, participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ClaimKey {
    /// Stage start height.
    pub stage: u64,
    /// The participant.
    pub participant: Address,
}
codec_struct!(ClaimKey { stage, participant });

/// What a participant submitted in one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PocClaim {
    /// SHA-256 of the participant's secret seed for the epoch.
    pub seed_commitment: Option<Hash>,
    /// Distinct nonces claimed.
    pub nonce_count: u64,
}
codec_struct!(PocClaim { seed_commitment, nonce_count });

/// Key of one claimed nonce: (stage start, participant, nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NonceKey {
    /// Stage start height.
    pub stage: u64,
    /// The participant.
    pub participant: Address,
    /// The nonce.
    pub nonce: u64,
}
codec_struct!(NonceKey { stage, participant, nonce });

/// Key of one verdict: (stage start, participant checked, validator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct VoteKey {
    /// Stage start height.
    pub stage: u64,
    /// The participant whose claims were checked.
    pub participant: Address,
    /// The validator.
    pub validator: Address,
}
codec_struct!(VoteKey { stage, participant, validator });

/// A validator's verdict on one participant, kept so anyone can audit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PocVote {
    /// Nonces recomputed.
    pub sampled: u32,
    /// Of which mismatched.
    pub mismatches: u32,
    /// The binomial test's verdict, computed by the chain.
    pub fraud: bool,
    /// The key that signed the sample seed (the validator's account or operational key).
    pub signer: AccountPublicKey,
    /// The sample seed: recompute the sample with [`gonka_poc::validation_sample`].
    pub sample_seed: AccountSignature,
}
codec_struct!(PocVote { sampled, mismatches, fraud, signer, sample_seed });

/// Why a PoC message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PocError {
    /// No PoC stage has started yet, or the message names another one.
    #[error("no PoC stage started at height {0}")]
    WrongStage(u64),
    /// The message names another epoch than the running stage's.
    #[error("seed commitments are for epoch {expected}, not {got}")]
    WrongEpoch {
        /// The running stage's epoch.
        expected: u64,
        /// The message's.
        got: u64,
    },
    /// The height is outside the window that accepts this message.
    #[error("{what} is accepted at heights {first}..={last}, not at {height}")]
    OutsideWindow {
        /// The message kind.
        what: &'static str,
        /// First accepted height.
        first: u64,
        /// Last accepted height.
        last: u64,
        /// The block height.
        height: u64,
    },
    /// A batch holds no nonces, or more than the limit.
    #[error("a batch must hold 1 to {limit} nonces, found {found}")]
    BatchSize {
        /// Nonces found.
        found: usize,
        /// The limit.
        limit: u32,
    },
    /// A claimed distance is not below `r_target`.
    #[error("nonce {nonce} claims distance {distance}, not below r_target {r_target}")]
    DistanceNotBelowTarget {
        /// The nonce.
        nonce: u64,
        /// Its claimed distance.
        distance: Distance,
        /// The target.
        r_target: Distance,
    },
    /// The participant would exceed its nonce limit for the stage.
    #[error("participant would hold {count} nonces this stage, limit {limit}")]
    TooManyNonces {
        /// Count after this batch.
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// The participant already committed to a seed this stage.
    #[error("a seed commitment for this epoch already exists")]
    SeedAlreadyCommitted,
    /// The checked participant claimed nothing this stage.
    #[error("{0} claimed no nonces in this stage")]
    NoClaims(Address),
    /// The validator already voted on this participant this stage.
    #[error("a validation of {0} by this validator already exists")]
    AlreadyValidated(Address),
    /// The sample size is not `min(validation_sample_size, claimed)`, or mismatches exceed it.
    #[error("sample of {sampled} with {mismatches} mismatches; expected a sample of {expected}")]
    BadSample {
        /// Claimed sample size.
        sampled: u32,
        /// Claimed mismatches.
        mismatches: u32,
        /// The size the rules require.
        expected: u32,
    },
    /// The sample seed is not the signer's signature over the sample-seed message.
    #[error("sample seed does not verify against the signer's key")]
    BadSampleSeed,
    /// The binomial test could not be computed (bad parameters).
    #[error("binomial test: {0}")]
    Binomial(String),
}

/// A host's claim and verdicts at the end of validation, and what the chain decided.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    participant: Address,
    nonce_count: u64,
    valid_weight: u128,
    accepted: bool,
}

impl State {
    /// The running (or last) PoC stage, if one ever started.
    pub fn poc_stage(&self) -> Option<PocStage> {
        self.meta.poc_stage
    }

    /// The stages of the running PoC stage's epoch, when `poc_start` names it.
    fn stage_named(&self, poc_start: u64) -> Result<(PocStage, EpochStages), PocError> {
        let stage = self.meta.poc_stage.filter(|s| s.start_height == poc_start);
        let stages = stage.and_then(|s| self.meta.params.epoch.stages(s.epoch));
        match (stage, stages) {
            (Some(stage), Some(stages)) if stages.poc_start == poc_start => Ok((stage, stages)),
            _ => Err(PocError::WrongStage(poc_start)),
        }
    }

    /// The claimed nonces of `participant` in the stage starting at `stage`, in nonce order.
    pub fn poc_claimed_nonces(&self, stage: u64, participant: Address) -> Vec<(u64, Distance)> {
        let from = NonceKey { stage, participant, nonce: 0 };
        self.poc_nonces
            .range(from..)
            .take_while(|(key, _)| key.stage == stage && key.participant == participant)
            .map(|(key, distance)| (key.nonce, *distance))
            .collect()
    }

    /// The rule validators apply to sampled nonces under the current params.
    pub fn poc_mismatch_rule(&self) -> MismatchRule {
        let poc = &self.meta.params.poc;
        MismatchRule {
            r_target: Distance::from_decimal(poc.r_target),
            tolerance: Distance::from_decimal(poc.distance_tolerance),
        }
    }

    /// Read-only checks of a PoC message from `sender` (signed by `signer`) in the block at `height`.
    pub(crate) fn check_poc_message(
        &self,
        sender: Address,
        signer: &AccountPublicKey,
        msg: &crate::tx::Msg,
        height: u64,
    ) -> Result<(), PocError> {
        use crate::tx::Msg;
        let in_window = |what, window: std::ops::RangeInclusive<u64>| {
            if window.contains(&height) {
                Ok(())
            } else {
                Err(PocError::OutsideWindow { what, first: *window.start(), last: *window.end(), height })
            }
        };
        match msg {
            Msg::SubmitSeedCommit { epoch, .. } => {
                let stage = self.meta.poc_stage.ok_or(PocError::WrongStage(0))?;
                if stage.epoch != *epoch {
                    return Err(PocError::WrongEpoch { expected: stage.epoch, got: *epoch });
                }
                let (_, stages) = self.stage_named(stage.start_height)?;
                in_window("a seed commitment", stages.batch_window())?;
                let key = ClaimKey { stage: stage.start_height, participant: sender };
                if self.poc_claims.get(&key).is_some_and(|c| c.seed_commitment.is_some()) {
                    return Err(PocError::SeedAlreadyCommitted);
                }
                Ok(())
            }
            Msg::SubmitPocBatch { poc_start, nonces } => {
                let (_, stages) = self.stage_named(*poc_start)?;
                in_window("a PoC batch", stages.batch_window())?;
                let poc = &self.meta.params.poc;
                if nonces.is_empty() || nonces.len() > poc.max_nonces_per_batch as usize {
                    return Err(PocError::BatchSize { found: nonces.len(), limit: poc.max_nonces_per_batch });
                }
                let r_target = Distance::from_decimal(poc.r_target);
                match nonces.iter().find(|n| n.distance >= r_target) {
                    Some(n) => Err(PocError::DistanceNotBelowTarget {
                        nonce: n.nonce,
                        distance: n.distance,
                        r_target,
                    }),
                    None => Ok(()),
                }
            }
            Msg::SubmitPocValidation { poc_start, participant, sampled, mismatches, sample_seed } => {
                let (stage, stages) = self.stage_named(*poc_start)?;
                in_window("a PoC validation", stages.validation_window())?;
                let claim = self
                    .poc_claims
                    .get(&ClaimKey { stage: *poc_start, participant: *participant })
                    .filter(|c| c.nonce_count > 0)
                    .ok_or(PocError::NoClaims(*participant))?;
                let vote_key = VoteKey { stage: *poc_start, participant: *participant, validator: sender };
                if self.poc_votes.contains_key(&vote_key) {
                    return Err(PocError::AlreadyValidated(*participant));
                }
                let sample_size = self.meta.params.poc.validation_sample_size;
                let expected = claim.nonce_count.min(u64::from(sample_size)) as u32;
                if *sampled != expected || mismatches > sampled {
                    return Err(PocError::BadSample { sampled: *sampled, mismatches: *mismatches, expected });
                }
                let participant_key = self
                    .participants
                    .get(participant)
                    .map(|p| p.account_key)
                    .ok_or(PocError::NoClaims(*participant))?;
                let message =
                    gonka_poc::sample_seed_message(&stage.block_hash, *poc_start, &participant_key.0);
                signer.verify(&message, sample_seed).map_err(|_| PocError::BadSampleSeed)
            }
            _ => Ok(()),
        }
    }

    /// Applies a checked PoC message; returns its event.
    pub(crate) fn execute_poc_message(
        &mut self,
        sender: Address,
        signer: &AccountPublicKey,
        msg: &crate::tx::Msg,
    ) -> Result<Option<Event>, PocError> {
        use crate::tx::Msg;
        match msg {
            Msg::SubmitSeedCommit { epoch, commitment } => {
                let stage = self.meta.poc_stage.ok_or(PocError::WrongStage(0))?;
                let key = ClaimKey { stage: stage.start_height, participant: sender };
                self.poc_claims.upsert(key, |claim| claim.seed_commitment = Some(*commitment));
                Ok(Some(Event::new("poc_seed_committed").with("participant", sender).with("epoch", epoch)))
            }
            Msg::SubmitPocBatch { poc_start, nonces } => self.add_batch(sender, *poc_start, nonces).map(Some),
            Msg::SubmitPocValidation { poc_start, participant, sampled, mismatches, sample_seed } => {
                let fraud = self
                    .meta
                    .params
                    .poc
                    .is_fraud(*sampled, *mismatches)
                    .map_err(|e| PocError::Binomial(e.to_string()))?;
                let key = VoteKey { stage: *poc_start, participant: *participant, validator: sender };
                let vote = PocVote {
                    sampled: *sampled,
                    mismatches: *mismatches,
                    fraud,
                    signer: *signer,
                    sample_seed: *sample_seed,
                };
                self.poc_votes.insert(key, vote);
                Ok(Some(
                    Event::new("poc_validation")
                        .with("validator", sender)
                        .with("participant", participant)
                        .with("sampled", sampled)
                        .with("mismatches", mismatches)
                        .with("fraud", fraud),
                ))
            }
            _ => Ok(None),
        }
    }

    /// Adds the batch's new nonces (duplicates, within the batch or with earlier ones, count once).
    fn add_batch(&mut self, sender: Address, stage: u64, nonces: &[PocNonce]) -> Result<Event, PocError> {
        let claim_key = ClaimKey { stage, participant: sender };
        let before = self.poc_claims.get(&claim_key).map_or(0, |c| c.nonce_count);
        let mut added = 0u64;
        for n in nonces {
            let key = NonceKey { stage, participant: sender, nonce: n.nonce };
            if !self.poc_nonces.contains_key(&key) {
                self.poc_nonces.insert(key, n.distance);
                added += 1;
            }
        }
        let count = before + added;
        let limit = self.meta.params.poc.max_nonces_per_stage;
        if count > limit {
            return Err(PocError::TooManyNonces { count, limit });
        }
        self.poc_claims.upsert(claim_key, |claim| claim.nonce_count = count);
        Ok(Event::new("poc_batch")
            .with("participant", sender)
            .with("nonces", nonces.len())
            .with("new", added)
            .with("total", count))
    }

    /// Block-level PoC transitions at `height` (after the block's transactions).
    pub(crate) fn poc_end_block(&mut self, height: u64, block_hash: Hash) -> Vec<Event> {
        let epoch = &self.meta.params.epoch;
        let index = epoch.poc_epoch_at(height);
        let Some(stages) = epoch.stages(index) else { return Vec::new() };
        if height == stages.poc_start {
            self.open_stage(index, height, block_hash)
        } else if height == stages.end_of_validation {
            self.settle_weights(stages.poc_start)
        } else if height == stages.set_new_validators {
            self.apply_next_weights(index)
        } else {
            Vec::new()
        }
    }

    fn open_stage(&mut self, epoch: u64, height: u64, block_hash: Hash) -> Vec<Event> {
        // Keep one stage of history for audits; older claims, nonces and votes go.
        let keep_from = self.meta.poc_stage.map_or(0, |s| s.start_height);
        self.poc_claims.remove_range(..ClaimKey { stage: keep_from, participant: Address([0; 20]) });
        self.poc_nonces
            .remove_range(..NonceKey { stage: keep_from, participant: Address([0; 20]), nonce: 0 });
        self.poc_votes.remove_range(
            ..VoteKey { stage: keep_from, participant: Address([0; 20]), validator: Address([0; 20]) },
        );
        self.meta.poc_stage = Some(PocStage { epoch, start_height: height, block_hash });
        vec![
            Event::new("poc_stage_started")
                .with("epoch", epoch)
                .with("height", height)
                .with("block_hash", block_hash),
        ]
    }

    /// Reference §3.9 with de-duplicated nonces; see the module docs.
    fn verdicts(&self, stage: u64) -> Vec<Verdict> {
        let current: Vec<(Address, u64)> =
            self.participants.iter().filter(|(_, p)| p.weight > 0).map(|(a, p)| (*a, p.weight)).collect();
        let total: u128 = current.iter().map(|(_, w)| u128::from(*w)).sum();
        let from = ClaimKey { stage, participant: Address([0; 20]) };
        self.poc_claims
            .range(from..)
            .take_while(|(key, _)| key.stage == stage)
            .filter(|(key, _)| self.participants.contains_key(&key.participant))
            .map(|(key, claim)| {
                let valid_weight: u128 = current
                    .iter()
                    .filter(|(validator, _)| {
                        let vote = VoteKey { stage, participant: key.participant, validator: *validator };
                        self.poc_votes.get(&vote).is_some_and(|v| !v.fraud)
                    })
                    .map(|(_, w)| u128::from(*w))
                    .sum();
                // Bootstrap: with no weight anywhere there is nobody to ask, so claims stand.
                let majority = total == 0 || 2 * valid_weight > total;
                Verdict {
                    participant: key.participant,
                    nonce_count: claim.nonce_count,
                    valid_weight,
                    accepted: majority && claim.nonce_count > 0 && claim.seed_commitment.is_some(),
                }
            })
            .collect()
    }

    fn settle_weights(&mut self, stage: u64) -> Vec<Event> {
        let verdicts = self.verdicts(stage);
        let mut events: Vec<Event> = verdicts
            .iter()
            .map(|v| {
                Event::new("poc_verdict")
                    .with("participant", v.participant)
                    .with("nonces", v.nonce_count)
                    .with("valid_weight", v.valid_weight)
                    .with("accepted", v.accepted)
            })
            .collect();
        let accepted: Vec<(Address, u64)> =
            verdicts.iter().filter(|v| v.accepted).map(|v| (v.participant, v.nonce_count)).collect();
        if accepted.is_empty() {
            // Nobody proved compute: keeping the current set is the only way the chain stays live.
            events.push(Event::new("poc_weights_kept").with("stage", stage));
            return events;
        }
        let capped = match gonka_poc::cap_power(&accepted, self.meta.params.poc.max_individual_power) {
            Ok(capped) => capped,
            Err(error) => {
                events.push(Event::new("poc_weights_kept").with("stage", stage).with("error", error));
                return events;
            }
        };
        let addresses: Vec<Address> = self.participants.keys().copied().collect();
        for address in addresses {
            let poc_weight = accepted.iter().find(|(a, _)| *a == address).map_or(0, |(_, w)| *w);
            let power = capped.iter().find(|(a, _)| *a == address).map_or(0, |(_, w)| *w);
            self.participants.update(&address, |p| {
                p.poc_weight = poc_weight;
                p.next_weight = Some(power);
            });
            events.push(
                Event::new("poc_weight")
                    .with("participant", address)
                    .with("weight", poc_weight)
                    .with("power", power),
            );
        }
        events
    }

    fn apply_next_weights(&mut self, epoch: u64) -> Vec<Event> {
        let addresses: Vec<Address> =
            self.participants.iter().filter(|(_, p)| p.next_weight.is_some()).map(|(a, _)| *a).collect();
        for address in &addresses {
            self.participants.update(address, |p| {
                p.previous_weight = p.weight;
                p.weight = p.next_weight.take().unwrap_or(p.weight);
            });
        }
        if addresses.is_empty() {
            return Vec::new();
        }
        self.meta.power_changed_height = self.meta.height;
        vec![
            Event::new("validators_updated")
                .with("epoch", epoch)
                .with("validators", self.validator_set().len()),
        ]
    }
}
