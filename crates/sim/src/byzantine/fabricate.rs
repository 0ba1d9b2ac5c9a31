//! `fabricate-poc`: claims nonces it never computed — as many as an honest host of its speed would
//! find, far above the nonces it would have tried, with plausible distances just below the target.

use gonka_chain::poc;
use gonka_poc::Distance;

use super::{Byzantine, HostView};
use crate::config::ByzantineKind;

/// The fabricating host.
#[derive(Debug, Default)]
pub struct Fabricator {
    next: u64,
}

impl Byzantine for Fabricator {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::FabricatePoc
    }

    fn computes(&self) -> bool {
        false
    }

    fn found(&mut self, view: &mut HostView<'_>, _found: Vec<(u64, Distance)>) -> Vec<(u64, Distance)> {
        let r_target = poc::mismatch_rule(view.state.params()).r_target;
        (0..view.speed)
            .map(|_| {
                self.next += 1;
                let below = 1 + view.rng.below(200_000_000) as u32;
                (1 << 40 | self.next, Distance(r_target.0.saturating_sub(below)))
            })
            .collect()
    }
}
