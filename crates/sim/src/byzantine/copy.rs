//! `copy-poc`: computes nothing of its own; it resubmits the valid nonces of another host (computed
//! with that host's key), hoping validators recompute them the same way.

use gonka_chain::poc;
use gonka_poc::Distance;

use super::{Byzantine, HostView};
use crate::config::ByzantineKind;
use crate::fake_poc::FakeSprint;

/// The copying host.
#[derive(Debug, Default)]
pub struct Copier {
    sprint: Option<FakeSprint>,
}

impl Byzantine for Copier {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::CopyPoc
    }

    fn computes(&self) -> bool {
        false
    }

    fn found(&mut self, view: &mut HostView<'_>, _found: Vec<(u64, Distance)>) -> Vec<(u64, Distance)> {
        let Some(stage) = view.state.poc.stage() else { return Vec::new() };
        let Some((_, victim)) = view.peers.first() else { return Vec::new() };
        let r_target = poc::mismatch_rule(view.state.params()).r_target;
        let fresh = FakeSprint { block_hash: stage.block_hash, key: *victim, r_target, next_nonce: 0 };
        let sprint = self.sprint.get_or_insert(fresh.clone());
        if sprint.block_hash != stage.block_hash {
            *sprint = fresh;
        }
        sprint.compute(view.speed)
    }
}
