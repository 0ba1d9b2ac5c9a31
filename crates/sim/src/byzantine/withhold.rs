//! `withhold-votes`: races honestly but never submits a validation vote, so acceptance rests on the
//! other validators (more than half of the weight must vote "valid").

use gonka_chain::{Msg, PocMsg};
use gonka_host::poc::PocAction;

use super::Byzantine;
use crate::config::ByzantineKind;

/// The withholding host.
#[derive(Debug)]
pub struct Withholder;

impl Byzantine for Withholder {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::WithholdVotes
    }

    fn poc_actions(&mut self, actions: Vec<PocAction>) -> Vec<PocAction> {
        actions
            .into_iter()
            .filter(|a| match a {
                PocAction::Submit(messages) => {
                    !messages.iter().all(|m| matches!(m, Msg::Poc(PocMsg::Validation { .. })))
                }
                _ => true,
            })
            .collect()
    }
}
