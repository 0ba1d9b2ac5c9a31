//! `censor`: from the block before a PoC stage until the end of its validation, streams valid transfers
//! from accounts it funded into every other node's mempool — a full pool at first, then a block's worth
//! each block, faster than anyone else's transactions arrive — while its own node refuses everyone
//! else's transactions and keeps room for its own PoC transactions. Transactions are free and the
//! mempool is first-come first-served, so honest seed commitments, batches and votes are refused, and
//! the censor's blocks carry only its own: it can become the only validator. A known violation (issue
//! 12 adds fees, quotas and reserved room for PoC transactions).

use std::collections::BTreeMap;

use gonka_chain::{BankMsg, Tx};
use gonka_primitives::codec::Encode;
use gonka_primitives::{AccountKey, Address, Amount};

use super::{Byzantine, HostView};
use crate::config::ByzantineKind;

/// Senders of one censor's flood.
pub const FLOOD_ACCOUNTS: usize = 8;
/// Transfers kept in flight per sender: together more than a mempool holds.
const WINDOW_PER_ACCOUNT: u64 = 72;

/// The censoring host.
#[derive(Debug)]
pub struct Censor {
    senders: Vec<AccountKey>,
    /// Signed transfers by (sender, sequence): the same bytes every time they are offered, so a
    /// node that holds one answers "duplicate" and a node that missed one fills the gap.
    signed: BTreeMap<(usize, u64), Vec<u8>>,
}

impl Censor {
    /// The censor of host `index` in run `seed`, with its senders.
    pub fn new(seed: u64, index: usize) -> Censor {
        let senders = (0..FLOOD_ACCOUNTS)
            .map(|i| AccountKey::from_seed(format!("sim-{seed}-censor-{index}-{i}").as_bytes()))
            .collect();
        Censor { senders, signed: BTreeMap::new() }
    }
}

impl Byzantine for Censor {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::Censor
    }

    fn refuses_gossip(&self, state: &gonka_chain::State) -> bool {
        censoring(state)
    }

    /// Each sender's next `WINDOW_PER_ACCOUNT` transfers after its committed sequence: every pool stays
    /// full however many the last block took.
    fn flood(&mut self, view: &mut HostView<'_>) -> Vec<Vec<u8>> {
        let state = view.state;
        if !censoring(state) {
            return Vec::new();
        }
        let mut txs = Vec::new();
        for (i, sender) in self.senders.iter().enumerate() {
            let committed = state.account(&sender.address()).sequence;
            self.signed.retain(|(s, sequence), _| *s != i || *sequence >= committed);
            for sequence in committed..committed + WINDOW_PER_ACCOUNT {
                let bytes = self.signed.entry((i, sequence)).or_insert_with(|| {
                    let msg = BankMsg::Send { to: sender.address(), amount: Amount(1) };
                    Tx::new(&state.meta.chain_id, sender, sequence, vec![msg.into()]).to_bytes()
                });
                txs.push(bytes.clone());
            }
        }
        txs
    }

    fn funded_accounts(&self) -> Vec<Address> {
        self.senders.iter().map(AccountKey::address).collect()
    }
}

/// Whether the censor floods after the block at `state`'s height: from the block before a PoC stage
/// until the end of its validation.
fn censoring(state: &gonka_chain::State) -> bool {
    let epoch = state.params().epoch;
    let height = state.height();
    epoch
        .stages(epoch.poc_epoch_at(height + 1))
        .is_some_and(|s| (s.poc_start - 1..s.end_of_validation).contains(&height))
}
