//! What every mechanism of the chain is: a [`Module`] owning its messages, its tables, its checks, its
//! effects and its end-block hook. The chain core ([`crate::state`]) authenticates transactions, routes
//! each message to its module, runs the hooks in registration order and derives the block's writes and
//! app hash from the modules' tables; it knows nothing else about any mechanism.
//!
//! A module's functions are pure: they read and write the [`State`] they are given and nothing else
//! (no clock, no I/O, no randomness but block data). They may read any module's state and call the
//! public functions of the modules below them (`bank` and `hosts` are below everything that moves money
//! or reads power); money only ever moves through `bank`.

use std::fmt::Debug;

use gonka_primitives::codec::{Decode, Encode};
use gonka_primitives::{AccountPublicKey, Address, Amount, Hash};

use crate::event::Event;
use crate::genesis::Genesis;
use crate::state::{GenesisError, State};
use crate::table::Tables;
use crate::tx::TxError;

/// A message type of one module (implemented by `messages!`).
pub trait Message: Encode + Decode + Clone + PartialEq + Eq + Debug + serde::Serialize {
    /// Stable snake_case name, as in JSON and errors.
    fn name(&self) -> &'static str;
    /// Whether a host's operational key may sign it for the host account. Moving funds, changing keys
    /// and changing parameters always need the account key itself.
    fn is_routine(&self) -> bool;
}

/// Who sent a message, and the block it is checked for or applied in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxContext {
    /// The transaction's account.
    pub sender: Address,
    /// The key that signed (the account's own or its operational key).
    pub signer: AccountPublicKey,
    /// Height of the block the message lands in (the next block when checked for the mempool).
    pub height: u64,
}

/// The block whose end-block hooks are running; the state's meta already holds its height and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockContext {
    /// The block's height.
    pub height: u64,
    /// Height of the block before it.
    pub previous_height: u64,
    /// The block's time (the proposer's clock, never below the previous block's).
    pub time_ms: u64,
    /// The block's hash.
    pub block_hash: Hash,
}

/// A rule of the state that does not hold: a bug or corrupted state, never a user error. The node
/// stops on it (it cannot know which of its records are wrong) and the simulator reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant `{invariant}` broken: {detail}")]
pub struct InvariantViolation {
    /// The rule's name (`supply_conserved`, `escrow_matches_record`, …).
    pub invariant: &'static str,
    /// What was found.
    pub detail: String,
}

impl InvariantViolation {
    /// A violation of `invariant` with `detail`.
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> InvariantViolation {
        InvariantViolation { invariant, detail: detail.into() }
    }
}

/// One mechanism of the chain. Registered with one line in [`crate::state`]; its tables are
/// declared with `tables!`, its messages with `messages!`.
///
/// Contract:
/// - [`Module::check`] only reads: it decides whether the message may apply on top of `state` (for the
///   mempool, `state` is the last committed state and `tx.height` the next height). It must refuse
///   everything [`Module::apply`] would refuse, so that a refusal in a block is rare and cheap.
/// - [`Module::apply`] runs only after `check` passed on the same state; if it returns an error, every
///   write of the transaction is undone by the caller.
/// - [`Module::end_block`] runs once per block after all transactions, in registration order; an error
///   there is an [`InvariantViolation`] and stops the node.
pub trait Module: Tables + Default {
    /// The module's wire tag in messages and its prefix in the store; never reused.
    const ID: u8;
    /// Its name in docs and errors.
    const NAME: &'static str;
    /// Its messages.
    type Msg: Message;
    /// Why one of its messages is refused.
    type Error: Into<TxError>;

    /// Fills the module's tables from genesis (after the modules registered before it).
    fn init_genesis(_state: &mut State, _genesis: &Genesis) -> Result<(), GenesisError> {
        Ok(())
    }

    /// Read-only checks of `msg` from `tx.sender`.
    fn check(state: &State, tx: &TxContext, msg: &Self::Msg) -> Result<(), Self::Error>;

    /// What `msg` would take from spendable balances if it applied now: (account, amount) pairs. The
    /// mempool adds up the debits of the transactions waiting and admits one only if every account it
    /// debits still covers them (`docs/spec/inference.md` §4.1): a developer cannot promise the same
    /// balance to two escrows, or to an escrow and a transfer, within one mempool.
    fn debits(_state: &State, _tx: &TxContext, _msg: &Self::Msg) -> Vec<(Address, Amount)> {
        Vec::new()
    }

    /// Applies a checked `msg`; returns what it did.
    fn apply(state: &mut State, tx: &TxContext, msg: &Self::Msg) -> Result<Vec<Event>, Self::Error>;

    /// Block-level transitions after the block's transactions.
    fn end_block(_state: &mut State, _block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        Ok(Vec::new())
    }

    /// Every rule of the module's state, checked from scratch (O(state)): at genesis, when the store
    /// is loaded and after every simulated block.
    fn check_invariants(_state: &State) -> Result<(), InvariantViolation> {
        Ok(())
    }
}
