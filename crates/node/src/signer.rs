//! Signs and submits the host's own transactions (PoC and inference receipts) with its operational key.

use std::sync::{Arc, Mutex};

use gonka_chain::{Msg, TxBody};
use gonka_primitives::codec::Encode;
use gonka_primitives::{AccountKey, Address, Hash};
use tokio::sync::mpsc;

use crate::chain::Chain;

/// The keys a host acts with.
pub struct HostKeys {
    /// The host's account.
    pub account: Address,
    /// Its operational key: signs routine transactions, sample seeds and forwarded requests.
    pub operational: AccountKey,
}

/// Submits transactions for the host account, one at a time so sequences never collide.
pub struct HostSigner {
    chain: Arc<Chain>,
    gossip: mpsc::Sender<crate::gossip::Outgoing>,
    keys: HostKeys,
    /// Held from reading the next sequence until the transaction is in the mempool.
    submitting: Mutex<()>,
}

impl HostSigner {
    /// A signer for `keys.account` on `chain`, gossiping through `gossip`.
    pub fn new(
        chain: Arc<Chain>,
        gossip: mpsc::Sender<crate::gossip::Outgoing>,
        keys: HostKeys,
    ) -> HostSigner {
        HostSigner { chain, gossip, keys, submitting: Mutex::new(()) }
    }

    /// The host account.
    pub fn account(&self) -> Address {
        self.keys.account
    }

    /// The operational key.
    pub fn key(&self) -> &AccountKey {
        &self.keys.operational
    }

    /// The chain.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// Signs `messages` at the account's next sequence (pending transactions counted), admits the
    /// transaction to this node's mempool and gossips it.
    pub fn submit(&self, messages: Vec<Msg>) -> anyhow::Result<Hash> {
        let _turn = self.submitting.lock().unwrap_or_else(|p| p.into_inner());
        let chain_id = self.chain.with_state(|s| s.meta.chain_id.clone());
        let tx = TxBody {
            chain_id,
            account: self.keys.account,
            signer: self.keys.operational.public_key(),
            sequence: self.chain.next_sequence(&self.keys.account),
            messages,
        }
        .sign(&self.keys.operational);
        let bytes = tx.to_bytes();
        let hash = self.chain.submit(bytes.clone())?;
        // A full gossip queue only delays the transaction until this node proposes.
        let _ = self.gossip.try_send(bytes.into());
        Ok(hash)
    }
}
