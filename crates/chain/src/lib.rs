//! Apply blocks of transactions to the gonka chain state, deterministically.
//!
//! This crate is the replicated state machine that every validator runs: given the same genesis and
//! the same decided blocks, every node reaches the same state and the same app hash. It does no I/O,
//! reads no clock and has no randomness; maps are `BTreeMap`s and amounts are integers. The node
//! feeds it blocks that consensus decided ([`State::apply_block`]), asks it whether a transaction may
//! enter the mempool ([`State::check_tx`]), and persists the writes each block returns.
//!
//! Each mechanism is one [`module::Module`] in its own folder — [`authority`], [`bank`], [`hosts`],
//! [`inference`], [`poc`], [`collateral`], [`epoch`] — owning its messages, tables, params, errors, checks, effects and
//! end-block hook; [`state`] registers them with one line each and is the only place that knows them
//! all. The protocol as built is described in `docs/spec/chain.md`.
#![deny(missing_docs)]

#[macro_use]
mod macros;

pub mod authority;
pub mod bank;
pub mod block;
pub mod collateral;
pub mod epoch;
pub mod event;
pub mod genesis;
pub mod hosts;
pub mod inference;
pub mod module;
pub mod params;
pub mod poc;
pub mod pricing;
pub mod rewards;
pub mod state;
pub mod table;
pub mod tx;
pub mod validation;
pub mod views;

pub use authority::{AuthorityError, AuthorityMsg};
pub use bank::{Account, BankError, BankMsg, Hold, Supply};
pub use block::{Block, Header};
pub use collateral::{CollateralError, CollateralMsg, CollateralParams};
pub use epoch::{EpochParams, EpochPhase, EpochStages};
pub use event::Event;
pub use genesis::{Genesis, GenesisAccount, GenesisParticipant};
pub use hosts::{HostsError, HostsMsg, Participant};
pub use inference::{
    Developer, EpochStats, FULL_PRICE_PPM, HostStats, Inference, InferenceError, InferenceMsg,
    InferenceParams, InferenceStatus, ModelPrice, RequestTerms, SignedRequest, inference_id, request_message,
};
pub use module::{InvariantViolation, Module};
pub use params::{Fees, Limits, Params};
pub use poc::{
    ClaimKey, NonceKey, PocClaim, PocError, PocMsg, PocNonce, PocParams, PocStage, PocVote, VoteKey,
};
pub use pricing::{ModelPricing, PricingParams};
pub use rewards::{
    ClaimStatus, EpochSummary, RewardParams, RewardsError, RewardsMsg, Settlement, Tokenomics,
};
pub use state::{BlockError, BlockOutcome, CheckedTx, GenesisError, Meta, Msg, State, StateWrites, TxResult};
pub use table::{Item, Table, TableId};
pub use tx::{Tx, TxBody, TxError};
pub use validation::{Failure, HostStatus, ValidationError, ValidationMsg, ValidationParams, Verdict};
