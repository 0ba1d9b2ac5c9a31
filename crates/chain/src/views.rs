//! Typed views of the state: what the node's REST API returns, what `gonka query` reads back and what
//! the explorer will show. Each is a plain struct built from a [`State`] by one function here, so the
//! three readers agree on every field and no reader reaches into the tables itself.

use gonka_poc::Distance;
use gonka_primitives::{AccountSignature, Address, Amount, Hash, ValidatorPublicKey};
use serde::{Deserialize, Serialize};

use crate::bank::{Hold, Supply};
use crate::block::Header;
use crate::epoch::EpochStages;
use crate::event::Event;
use crate::hosts::Participant;
use crate::inference::Inference;
use crate::poc::PocStage;
use crate::state::{State, TxResult};
use crate::tx::TxBody;

/// Where the chain is: height, hashes, time, epoch and phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    /// Chain id.
    pub chain_id: String,
    /// Height of the last committed block.
    pub height: u64,
    /// App hash after it.
    pub app_hash: Hash,
    /// Its hash.
    pub last_block_hash: Hash,
    /// Its time (ms since the Unix epoch).
    pub time_ms: u64,
    /// The latest epoch whose PoC started.
    pub epoch: u64,
    /// The epoch whose weights are in force.
    pub effective_epoch: u64,
    /// The phase (`inference`, `poc_generate`, …).
    pub phase: String,
}

/// A host with what other modules keep about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// The host's account.
    pub address: Address,
    /// Its registry record.
    #[serde(flatten)]
    pub participant: Participant,
    /// Fees earned as executor and held for it.
    pub owed: Amount,
    /// Collateral vouching for the requests it forwards as a TA.
    #[serde(default)]
    pub collateral: Amount,
    /// Withdrawn collateral still unbonding (answerable for what it vouched for).
    #[serde(default)]
    pub unbonding: Amount,
    /// Inferences finished as executor.
    pub inferences: u64,
    /// Inferences it was drawn for that expired unfinished.
    pub missed: u64,
    /// Its standing as answer validation judged it (`docs/spec/validation.md` §6).
    #[serde(default)]
    pub standing: StandingView,
}

/// A host's standing: status, reputation, and what validation found of its answers and verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StandingView {
    /// `active` or `invalid`.
    pub status: String,
    /// The epoch in which it was last found INVALID.
    pub invalid_epoch: Option<u64>,
    /// Reputation 0..=100 (lowers how often its answers are validated).
    pub reputation: u8,
    /// Evidence of cheating, in thousandths (INVALID at the threshold).
    pub evidence_milli: u64,
    /// Invalidations since its last validated answer.
    pub consecutive_invalidations: u32,
    /// Its answers validated, over its life.
    pub validated: u64,
    /// Its answers invalidated, over its life.
    pub invalidated: u64,
    /// This effective epoch: its validations of others' answers.
    pub epoch_validations: u64,
    /// This effective epoch: its answers validated and invalidated, its verdicts overturned.
    pub epoch_stats: crate::inference::EpochStats,
}

/// Every registered host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsView {
    /// In address order.
    pub participants: Vec<HostView>,
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// Its address.
    pub address: Address,
    /// Spendable balance.
    pub balance: Amount,
    /// The sequence its next transaction must carry.
    pub sequence: u64,
    /// Whether it registered as a developer.
    pub developer: bool,
    /// Its host record, if it is a host.
    pub host: Option<HostView>,
}

/// One consensus validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorView {
    /// Consensus key.
    pub validator_key: ValidatorPublicKey,
    /// Voting power.
    pub voting_power: u64,
}

/// The validator set deciding the next height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorsView {
    /// The height it decides.
    pub height: u64,
    /// Sorted by key.
    pub validators: Vec<ValidatorView>,
}

/// The epoch clock at the last committed height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochView {
    /// The height.
    pub height: u64,
    /// The latest epoch whose PoC started.
    pub epoch: u64,
    /// The epoch in force.
    pub effective_epoch: u64,
    /// The phase.
    pub phase: String,
    /// The stage heights of `epoch` (none for epoch 0).
    pub stages: Option<EpochStages>,
    /// The stage heights of the next epoch.
    pub next_stages: Option<EpochStages>,
}

/// One inference's receipts and money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferenceView {
    /// The inference id.
    pub id: Hash,
    /// The receipt.
    #[serde(flatten)]
    pub record: Inference,
    /// The escrow held while it is started.
    pub escrow: Amount,
    /// Its fee, held until validation is over (`docs/spec/validation.md` §5.3).
    #[serde(default)]
    pub fee_held: Amount,
    /// The verdicts of the hosts selected to validate it.
    #[serde(default)]
    pub validations: Vec<ValidationView>,
    /// The vote over it, if a validator failed it.
    #[serde(default)]
    pub dispute: Option<DisputeView>,
}

/// One validator's verdict on an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationView {
    /// The validator.
    pub validator: Address,
    /// Whether it passed.
    pub passed: bool,
    /// The verdict's figures.
    #[serde(flatten)]
    pub verdict: crate::validation::Verdict,
}

/// The vote over a failed answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeView {
    /// The vote's state.
    #[serde(flatten)]
    pub dispute: crate::validation::Dispute,
    /// The ballots: (host, valid).
    pub votes: Vec<(Address, bool)>,
}

/// A validator's PoC verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocVoteView {
    /// The validator.
    pub validator: Address,
    /// Nonces recomputed.
    pub sampled: u32,
    /// Of which mismatched.
    pub mismatches: u32,
    /// The chain's binomial verdict.
    pub fraud: bool,
    /// The seed of the sample.
    pub sample_seed: AccountSignature,
}

/// One participant's claim in the running stage, with its verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocClaimView {
    /// The participant.
    pub participant: Address,
    /// Distinct nonces claimed.
    pub nonces: u64,
    /// Whether it committed to its epoch seed.
    pub seed_committed: bool,
    /// Verdicts on it, by validator.
    pub votes: Vec<PocVoteView>,
}

/// A host's PoC weight and power.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocWeightView {
    /// The host.
    pub participant: Address,
    /// Accepted nonces of the last settled stage.
    pub poc_weight: u64,
    /// Power settled for the next SetNewValidators.
    pub next_power: Option<u64>,
    /// Power in force.
    pub power: u64,
}

/// The running PoC stage: claims, verdicts, weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocView {
    /// The stage, if one ever started.
    pub stage: Option<PocStage>,
    /// Its heights.
    pub stages: Option<EpochStages>,
    /// Claims of the stage.
    pub claims: Vec<PocClaimView>,
    /// Every host's weight and power.
    pub weights: Vec<PocWeightView>,
}

/// One claimed nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceView {
    /// The nonce.
    pub nonce: u64,
    /// Its claimed distance.
    pub distance: Distance,
}

/// A participant's claimed nonces in the running stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocNoncesView {
    /// The stage's start height.
    pub stage: Option<u64>,
    /// The participant.
    pub participant: Address,
    /// In nonce order: one page.
    pub nonces: Vec<NonceView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<u64>,
}

/// The supply and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyView {
    /// Totals.
    #[serde(flatten)]
    pub supply: Supply,
    /// Σ escrows of started inferences.
    pub escrowed: Amount,
    /// Σ fees owed to hosts.
    pub owed: Amount,
    /// Σ host collateral.
    pub collateral: Amount,
    /// Σ withdrawn collateral still unbonding.
    pub unbonding: Amount,
    /// Σ fees of finished inferences still under validation.
    #[serde(default)]
    pub fees_pending: Amount,
    /// Σ settled work and reward coins waiting for their claims.
    #[serde(default)]
    pub settled: Amount,
    /// Σ claimed coins still vesting.
    #[serde(default)]
    pub vesting: Amount,
    /// The supply genesis created.
    #[serde(default)]
    pub genesis_supply: Amount,
    /// Subsidy minted so far, and the most it may ever be.
    #[serde(default)]
    pub minted: Amount,
    /// The subsidy cap (genesis-only).
    #[serde(default)]
    pub subsidy_cap: Amount,
    /// Burned so far (unclaimed, forfeited and INVALID hosts' work).
    #[serde(default)]
    pub burned: Amount,
    /// `total = balances + every hold` and `total = genesis + minted − burned`, and `minted ≤ cap`.
    #[serde(default)]
    pub balanced: bool,
}

/// A host's rewards: what waits for its claim, what vests, and its settled epochs
/// (`docs/spec/economy.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardsView {
    /// The host.
    pub address: Address,
    /// Fees earned in epochs not settled yet, by epoch.
    pub owed: Vec<(u64, Amount)>,
    /// The settlement waiting for its claim (epoch, work, reward, status).
    pub claimable: Option<crate::rewards::Settlement>,
    /// The last height its claim is accepted at + 1.
    pub claim_deadline: Option<u64>,
    /// Vesting schedule: (epoch whose settlement releases it, amount).
    pub vesting: Vec<(u64, Amount)>,
    /// Σ vesting.
    pub vesting_total: Amount,
    /// Spendable balance.
    pub balance: Amount,
    /// Settled epochs, oldest first.
    pub epochs: Vec<(u64, crate::rewards::EpochSummary)>,
}

/// A committed block with its results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash,
    /// Header.
    pub header: Header,
    /// App hash after the block.
    pub app_hash: Option<Hash>,
    /// Per-transaction results.
    pub txs: Vec<TxResult>,
    /// Block-level events.
    pub events: Vec<Event>,
    /// The commit certificate, hex.
    pub certificate: String,
}

/// A signed transaction as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTxView {
    /// The signed body.
    pub body: TxBody,
    /// The signature, hex.
    pub signature: String,
}

/// A committed transaction with its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    /// Its hash.
    pub hash: Hash,
    /// The block that included it.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
    /// Its result.
    pub result: Option<TxResult>,
    /// The decoded transaction.
    pub tx: Option<SignedTxView>,
}

/// Where the chain is.
pub fn chain_status(state: &State) -> ChainStatus {
    let epoch = &state.params().epoch;
    let height = state.height();
    ChainStatus {
        chain_id: state.meta.chain_id.clone(),
        height,
        app_hash: state.meta.app_hash,
        last_block_hash: state.meta.last_block_hash,
        time_ms: state.meta.time_ms,
        epoch: epoch.poc_epoch_at(height),
        effective_epoch: epoch.effective_epoch_at(height),
        phase: epoch.phase_at(height).name().to_string(),
    }
}

/// The host at `address`, with its fees and counts.
pub fn host(state: &State, address: &Address) -> Option<HostView> {
    let participant = state.hosts.participant(address)?.clone();
    let stats = state.inference.host_stats(address);
    Some(HostView {
        address: *address,
        participant,
        owed: owed_to(state, address).iter().fold(Amount::ZERO, |sum, (_, a)| Amount(sum.0 + a.0)),
        collateral: state.bank.held(&Hold::Collateral(*address)),
        unbonding: state.bank.held(&Hold::Unbonding(*address)),
        inferences: stats.finished,
        missed: stats.missed,
        standing: standing(state, address),
    })
}

/// `address`'s standing in answer validation.
pub fn standing(state: &State, address: &Address) -> StandingView {
    let standing = state.validation.standing(address);
    let epoch = state.params().epoch.effective_epoch_at(state.height());
    let epoch_stats = state.inference.epoch_stats(epoch, address);
    StandingView {
        status: standing.status.name().to_string(),
        invalid_epoch: standing.invalid_epoch,
        reputation: crate::validation::reputation(&state.params().validation, &standing),
        evidence_milli: standing.evidence_milli,
        consecutive_invalidations: standing.consecutive_invalidations,
        validated: standing.validated,
        invalidated: standing.invalidated,
        epoch_validations: epoch_stats.validations,
        epoch_stats,
    }
}

/// Every host.
pub fn hosts(state: &State) -> HostsView {
    HostsView { participants: state.hosts.participants().keys().filter_map(|a| host(state, a)).collect() }
}

/// The account at `address` (empty if it never received funds).
pub fn account(state: &State, address: &Address) -> AccountView {
    let account = state.bank.account(address);
    AccountView {
        address: *address,
        balance: account.balance,
        sequence: account.sequence,
        developer: state.inference.is_developer(address),
        host: host(state, address),
    }
}

/// The validator set deciding the next height.
pub fn validators(state: &State) -> ValidatorsView {
    let validators = state
        .validator_set()
        .into_iter()
        .map(|(validator_key, voting_power)| ValidatorView { validator_key, voting_power })
        .collect();
    ValidatorsView { height: state.height() + 1, validators }
}

/// The epoch clock.
pub fn epoch(state: &State) -> EpochView {
    let params = &state.params().epoch;
    let height = state.height();
    let index = params.poc_epoch_at(height);
    EpochView {
        height,
        epoch: index,
        effective_epoch: params.effective_epoch_at(height),
        phase: params.phase_at(height).name().to_string(),
        stages: params.stages(index),
        next_stages: params.stages(index + 1),
    }
}

/// The inference `id`, while its record is kept.
pub fn inference(state: &State, id: &Hash) -> Option<InferenceView> {
    let record = state.inference.record(id)?.clone();
    let validations = state
        .validation
        .verdicts_on(id)
        .map(|(validator, verdict)| ValidationView { validator, passed: verdict.passed(), verdict: *verdict })
        .collect();
    let dispute = state
        .validation
        .dispute(id)
        .map(|d| DisputeView { dispute: *d, votes: state.validation.votes_on(id).collect() });
    Some(InferenceView {
        id: *id,
        record,
        escrow: state.bank.held(&Hold::Escrow(*id)),
        fee_held: state.bank.held(&Hold::Fee(*id)),
        validations,
        dispute,
    })
}

/// The running PoC stage.
pub fn poc(state: &State) -> PocView {
    let weights = state
        .hosts
        .participants()
        .iter()
        .map(|(address, p)| PocWeightView {
            participant: *address,
            poc_weight: p.poc_weight,
            next_power: p.next_weight,
            power: p.weight,
        })
        .collect();
    let Some(stage) = state.poc.stage() else {
        return PocView { stage: None, stages: None, claims: Vec::new(), weights };
    };
    let claims = state
        .poc
        .stage_claims(stage.start_height)
        .map(|(key, claim)| PocClaimView {
            participant: key.participant,
            nonces: claim.nonce_count,
            seed_committed: claim.seed_commitment.is_some(),
            votes: state
                .poc
                .votes_on(key.stage, key.participant)
                .map(|(vote_key, vote)| PocVoteView {
                    validator: vote_key.validator,
                    sampled: vote.sampled,
                    mismatches: vote.mismatches,
                    fraud: vote.fraud,
                    sample_seed: vote.sample_seed,
                })
                .collect(),
        })
        .collect();
    PocView { stage: Some(stage), stages: state.params().epoch.stages(stage.epoch), claims, weights }
}

/// `participant`'s claimed nonces in the running stage.
pub fn poc_nonces(state: &State, participant: &Address, after: Option<u64>, limit: usize) -> PocNoncesView {
    let stage = state.poc.stage().map(|s| s.start_height);
    let nonces: Vec<NonceView> = stage
        .map(|s| state.poc.nonces_page(s, *participant, after, limit))
        .unwrap_or_default()
        .into_iter()
        .map(|(nonce, distance)| NonceView { nonce, distance })
        .collect();
    let next_after = (nonces.len() == limit).then(|| nonces.last().map(|n| n.nonce)).flatten();
    PocNoncesView { stage, participant: *participant, nonces, next_after }
}

/// A host's collateral: what vouches and what slashing takes (`docs/spec/economy.md` §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollateralView {
    /// The host.
    pub address: Address,
    /// Active collateral.
    pub collateral: Amount,
    /// Withdrawn collateral still unbonding (and slashable).
    pub unbonding: Amount,
    /// Withdrawals waiting: (release time ms, amount).
    pub withdrawals: Vec<(u64, Amount)>,
}

/// A model's price and the load behind it (`docs/spec/economy.md` §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceView {
    /// The name clients call it by.
    pub model: String,
    /// Its content hash.
    pub content_hash: Hash,
    /// What an inference started now locks per token, ngonka (before the developer's bound).
    pub price_per_token: Amount,
    /// The base price in the params (where the floating price started).
    pub base_price: Amount,
    /// A prompt token served from the executor's prefix cache costs this share of the locked price,
    /// ppm (`docs/spec/inference.md` §4.2).
    pub cached_price_ppm: u32,
    /// Tokens finished in the window.
    pub window_tokens: u64,
    /// The window, in blocks.
    pub window_ms: u64,
    /// The network's capacity, tokens per second.
    pub capacity_per_second: u128,
    /// Utilisation over the window at the last block, ppm.
    pub utilisation_ppm: u64,
    /// Whether the grace period's price applies.
    pub grace: bool,
}

/// The price of the served model called `name` or with content hash `name` (hex), if served.
pub fn price(state: &State, name: &str) -> Option<PriceView> {
    let models = &state.params().inference;
    let served = models.model_named(name).or_else(|| Hash::from_hex(name).and_then(|h| models.model(&h)))?;
    let row = state.pricing.model(&served.content_hash).copied().unwrap_or_default();
    let params = &state.params().pricing;
    Some(PriceView {
        model: served.name.clone(),
        content_hash: served.content_hash,
        price_per_token: crate::pricing::price(state, &served.content_hash)?,
        base_price: served.price_per_token,
        cached_price_ppm: served.cached_price_ppm,
        window_tokens: row.window_tokens,
        window_ms: params.window_ms,
        capacity_per_second: crate::pricing::capacity_per_second(state),
        utilisation_ppm: row.utilisation_ppm,
        grace: state.params().epoch.effective_epoch_at(state.height() + 1) < params.grace_epochs,
    })
}

/// Every served model's price.
pub fn prices(state: &State) -> Vec<PriceView> {
    state.params().inference.models.iter().filter_map(|m| price(state, &m.name)).collect()
}

/// `address`'s collateral.
pub fn collateral(state: &State, address: &Address) -> CollateralView {
    CollateralView {
        address: *address,
        collateral: state.bank.held(&Hold::Collateral(*address)),
        unbonding: state.bank.held(&Hold::Unbonding(*address)),
        withdrawals: state
            .collateral
            .unbonding()
            .iter()
            .filter(|((_, host), _)| host == address)
            .map(|((at, _), amount)| (*at, *amount))
            .collect(),
    }
}

/// The fees owed to `address` for epochs not settled yet, by epoch.
fn owed_to(state: &State, address: &Address) -> Vec<(u64, Amount)> {
    state
        .bank
        .holds()
        .range(Hold::Owed(0, Address([0; 20]))..=Hold::Owed(u64::MAX, Address([0xff; 20])))
        .filter_map(|(hold, amount)| match hold {
            Hold::Owed(epoch, host) if host == address => Some((*epoch, *amount)),
            _ => None,
        })
        .collect()
}

/// `address`'s rewards.
pub fn rewards(state: &State, address: &Address) -> RewardsView {
    let vesting = state.rewards.vesting_of(address);
    let claimable = state.rewards.settlement(address).copied();
    RewardsView {
        address: *address,
        owed: owed_to(state, address),
        claim_deadline: claimable.map(|c| crate::rewards::claim_deadline(state, c.epoch)),
        claimable,
        vesting_total: state.bank.held(&Hold::Vesting(*address)),
        vesting,
        balance: state.bank.balance(address),
        epochs: state.rewards.summaries_of(address),
    }
}

/// The supply and where it is: every pool, and whether it balances.
pub fn supply(state: &State) -> SupplyView {
    let mut sums = [0u128; 7];
    for (hold, amount) in state.bank.holds().iter() {
        let slot = match hold {
            Hold::Escrow(_) => 0,
            Hold::Owed(..) => 1,
            Hold::Collateral(_) => 2,
            Hold::Unbonding(_) => 3,
            Hold::Fee(_) => 4,
            Hold::Settled(_) => 5,
            Hold::Vesting(_) => 6,
        };
        sums[slot] += amount.0;
    }
    let supply = state.bank.supply();
    let totals = state.rewards.totals();
    let balanced = state.bank.check_supply().is_ok()
        && supply.held.0 == sums.iter().sum::<u128>()
        && crate::rewards::check_supply(state).is_ok();
    SupplyView {
        supply,
        escrowed: Amount(sums[0]),
        owed: Amount(sums[1]),
        collateral: Amount(sums[2]),
        unbonding: Amount(sums[3]),
        fees_pending: Amount(sums[4]),
        settled: Amount(sums[5]),
        vesting: Amount(sums[6]),
        genesis_supply: totals.genesis_supply,
        minted: totals.minted,
        subsidy_cap: totals.subsidy_cap,
        burned: totals.burned(),
        balanced,
    }
}
