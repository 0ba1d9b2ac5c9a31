//! `surge`: a coalition that rents compute for a takeover. Its hosts race honestly, each at
//! [`COMPUTE_FACTOR`] times the compute it would otherwise have, so two surging hosts of seven
//! measure four fifths of a stage's weight — enough to hold more than 2/3 of the voting power if
//! one stage's weights became power at once. The chain settles at most the weight the previous stage
//! confirmed (`docs/spec/poc.md` §5.1), so the first stage's surge buys no power; only compute
//! sustained over a second stage does, as proof of compute intends.

use super::Byzantine;
use crate::config::ByzantineKind;

/// How many times its drawn compute speed a surging host races at.
pub const COMPUTE_FACTOR: u64 = 8;

/// A surging host.
#[derive(Debug)]
pub struct Surge;

impl Byzantine for Surge {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::Surge
    }

    fn compute_factor(&self) -> u64 {
        COMPUTE_FACTOR
    }
}
