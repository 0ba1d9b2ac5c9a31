//! `tiny-claims`: claims the smallest fabricated claim the chain still validates, once per stage
//! (`PocParams::min_claim` nonces: 2 on the devnet). Before issue 12 it claimed one nonce, which the
//! binomial test could not call fraud (reference §12.2), and got weight without compute; now a claim
//! below the minimum earns nothing and one at it is all mismatches, which is fraud.

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
        let minimum = view.state.params().poc.min_claim().unwrap_or(1);
        (0..minimum).map(|i| (7 + i, Distance(r_target.0 - 1_000))).collect()
    }
}
