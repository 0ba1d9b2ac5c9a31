//! Decide what a host does, as pure functions of the chain, the host's local memory and what just
//! happened.
//!
//! Every host duty is a planner: `plan(chain view, local state, input) -> Vec<Action>`. A planner reads
//! a committed [`gonka_chain::State`], updates the small local memory it is given (what it already
//! asked for, what its engine found) and returns actions: transactions to submit, engine work to start
//! or stop, requests to forward. It does no I/O and reads no clock; the node's async shell performs the
//! actions and feeds their results back as inputs, and the simulator does the same with a fake engine,
//! so a host's behaviour is tested without processes or sockets.
//!
//! - [`poc`]: the PoC duties — seed commitment, sprint start and stop, nonce batches, validation votes.
//! - [`admission`]: the checks a transfer agent and an executor run on a signed request (one function
//!   for both roles), and the replay guard they keep.
//! - [`receipts`]: the outbox of Start and Finish receipts, resubmitted until the chain holds them.
//! - [`protocol`]: the off-chain messages hosts and developers sign and the HTTP headers carrying them.
//! - [`rewards`]: the claim of each settled epoch, revealing its seed.
//! - [`validation`]: the validation duties — selection by VRF, checks of others' answers, verdicts
//!   and votes; [`verdict`]: the payload an executor keeps and the pure verdict on it.
#![deny(missing_docs)]

pub mod admission;
pub mod exposure;
pub mod poc;
pub mod protocol;
pub mod receipts;
pub mod rewards;
pub mod validation;
pub mod verdict;
