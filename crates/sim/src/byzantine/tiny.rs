//! `tiny-claims`: claims one fabricated nonce per stage. Its sample is that one nonce, and one
//! mismatch in one is not enough for the devnet binomial test to call fraud (reference §12.2), so the
//! chain gives it weight without compute — a known violation (issue 12 fixes it).

use gonka_chain::poc;
use gonka_poc::Distance;
use gonka_primitives::Hash;

use super::{Byzantine, HostView};
use crate::config::ByzantineKind;

/// The tiny claimer.
#[derive(Debug, Default)]
pub struct TinyClaimer {
    claimed_in: Option<Hash>,
}

impl Byzantine for TinyClaimer {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::TinyClaims
    }

    fn computes(&self) -> bool {
        false
    }

    fn found(&mut self, view: &mut HostView<'_>, _found: Vec<(u64, Distance)>) -> Vec<(u64, Distance)> {
        let Some(stage) = view.state.poc.stage() else { return Vec::new() };
        if self.claimed_in == Some(stage.block_hash) {
            return Vec::new();
        }
        self.claimed_in = Some(stage.block_hash);
        let r_target = poc::mismatch_rule(view.state.params()).r_target;
        vec![(7, Distance(r_target.0 - 1_000))]
    }
}
