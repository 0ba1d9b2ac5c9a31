//! Apply blocks of transactions to the gonka chain state, deterministically.
//!
//! This crate is the replicated state machine that every validator runs: given the same genesis and
//! the same decided blocks, every node reaches the same state and the same app hash. It does no I/O,
//! reads no clock and has no randomness; maps are `BTreeMap`s and amounts are integers. The node
//! feeds it blocks that consensus decided ([`State::apply_block`]), asks it whether a transaction may
//! enter the mempool ([`State::check_tx`]), and persists the writes each block returns.
//!
//! The protocol as built is described in `docs/spec/chain.md`.
#![deny(missing_docs)]

pub mod block;
pub mod epoch;
pub mod event;
pub mod genesis;
pub mod inference;
pub mod params;
pub mod poc;
pub mod state;
pub mod table;
pub mod tx;

pub use block::{Block, Header};
pub use epoch::{EpochParams, EpochPhase, EpochStages};
pub use event::Event;
pub use genesis::{Genesis, GenesisAccount, GenesisParticipant};
pub use inference::{
    Inference, InferenceError, InferenceParams, InferenceStatus, ModelPrice, SignedRequest, inference_id,
    request_message,
};
pub use params::{Limits, Params, PocParams};
pub use poc::{ClaimKey, NonceKey, PocClaim, PocError, PocStage, PocVote, VoteKey};
pub use state::{Account, BlockOutcome, CheckedTx, Developer, Participant, State, StateWrites, TxResult};
pub use table::Table;
pub use tx::{Msg, PocNonce, Tx, TxBody, TxError};
