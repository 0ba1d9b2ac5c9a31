//! Simulate whole gonka networks, honest and Byzantine, deterministically in one process.
//!
//! A run builds N hosts, each with the real chain application of a node (`gonka_node::Chain` on an
//! in-memory redb store, mempool included, driven through the consensus `Application` trait), the real
//! host planners (`gonka_host`) and fake engines, plus developers sending paid requests through the real
//! admission logic. Blocks are ordered by a seeded simulated network and proposer: messages are delayed
//! or lost, minorities are cut off, hosts crash and restart from their store. Byzantine hosts are
//! ordinary modules (`byzantine`). After every block the invariants (`invariants`) are checked against
//! ground truth only the simulator has (`ledger`: which answers were really served and delivered). The
//! same configuration always gives the same [`Report::digest`].
//!
//! The protocol the simulator checks, its invariants and the violations known today are described in
//! `docs/spec/sim.md`.
#![deny(missing_docs)]

pub mod answers;
pub mod byzantine;
pub mod config;
pub mod fake_poc;
pub mod faults;
pub mod invariants;
pub mod ledger;
pub mod node;
pub mod report;
pub mod rng;
pub mod world;

pub use config::{ByzantineKind, Faults, SimConfig};
pub use report::Report;
pub use world::Sim;

/// Runs one simulation.
pub fn run(config: SimConfig) -> Result<Report, String> {
    Ok(Sim::new(config)?.run())
}
