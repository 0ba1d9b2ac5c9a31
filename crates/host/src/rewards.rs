//! The claim planner (`docs/spec/economy.md` §4): once the host's epoch is settled, claim it with the
//! epoch's secret seed, inside the claim window, resubmitting while the chain has not taken it.

use gonka_chain::rewards::{ClaimStatus, RewardsMsg, claim_deadline};
use gonka_chain::{Msg, State};

use crate::poc::HostKey;
use crate::protocol::epoch_seed;

/// Blocks before a claim still missing from the chain (and from the mempool) is sent again.
const RESUBMIT_AFTER_BLOCKS: u64 = 5;

/// The claim planner's memory: the last claim sent, by (epoch, height).
#[derive(Debug, Clone, Default)]
pub struct ClaimHost {
    sent: Option<(u64, u64)>,
}

impl ClaimHost {
    /// A planner.
    pub fn new() -> ClaimHost {
        ClaimHost::default()
    }

    /// The claim to submit now, if any: the host's settlement is pending, its window open, and no claim
    /// of it waits in the mempool or was sent in the last few blocks.
    pub fn plan(&mut self, chain: &State, me: &HostKey, waiting: &dyn Fn(&Msg) -> bool) -> Option<Msg> {
        let settlement = chain.rewards.settlement(&me.account)?;
        if settlement.status != ClaimStatus::Pending {
            return None;
        }
        let height = chain.height();
        if height.saturating_add(1) >= claim_deadline(chain, settlement.epoch) {
            return None;
        }
        let seed = epoch_seed(&me.operational, &chain.meta.chain_id, settlement.epoch);
        let msg = Msg::Rewards(RewardsMsg::Claim { epoch: settlement.epoch, seed });
        let recent = self
            .sent
            .is_some_and(|(epoch, at)| epoch == settlement.epoch && height < at + RESUBMIT_AFTER_BLOCKS);
        if waiting(&msg) || recent {
            return None;
        }
        self.sent = Some((settlement.epoch, height));
        Some(msg)
    }
}
