//! Transaction gossip (`docs/spec/network.md` §2): every transaction a node admits for the first time
//! — from a client, from its own host logic, or from a peer — is forwarded in batches to the REST API
//! of every peer it knows: the `gossip_peers` of its config and every registered host's API URL on
//! chain (the host registry is the peer exchange). A batch names the peers it is known to reach
//! (`covered`: the sender's own peers and whatever its senders covered), and a receiver forwards only
//! to peers outside that set, so on a full mesh each transaction crosses each link once and a node
//! that knows a single peer still reaches everyone through it. A transaction a node already holds, or
//! one the chain refuses, is not forwarded: flooding costs a valid, fee-paying transaction per hop.
//! Transactions this node originated are offered again while they wait ([`rebroadcast`]), so a lost
//! batch delays a transaction instead of losing it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gonka_primitives::Address;
use tokio::sync::mpsc;

use crate::chain::Chain;

/// Largest batch sent in one request.
const MAX_BATCH_TXS: usize = 2_000;
/// How long transactions wait to be batched.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Transactions queued for gossip before new ones are dropped (they still reach a block through this
/// node's own proposals).
pub const GOSSIP_QUEUE: usize = 100_000;
/// Most peer URLs a batch's `covered` may name; a longer list is ignored (the receiver then forwards
/// to all its peers: more traffic, never a lost transaction).
pub const MAX_COVERED: usize = 512;
/// Longest peer URL kept in `covered`.
const MAX_URL_BYTES: usize = 512;

/// The JSON body of `POST /gossip/txs` and `POST /txs/batch`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TxBatch {
    /// Hex-encoded transactions.
    pub txs: Vec<String>,
    /// REST base URLs the sender knows these transactions reach (gossip only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covered: Vec<String>,
}

/// A transaction to forward, and the peers known to have it already.
#[derive(Debug)]
pub struct Outgoing {
    /// The encoded transaction.
    pub tx: Vec<u8>,
    /// Peer URLs (normalized) that need not be sent it.
    pub covered: Arc<BTreeSet<String>>,
}

impl From<Vec<u8>> for Outgoing {
    /// A transaction this node originates: no peer has it yet.
    fn from(tx: Vec<u8>) -> Outgoing {
        Outgoing { tx, covered: Arc::default() }
    }
}

/// A peer URL as gossip compares them: no trailing slash.
pub fn normalize(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// The `covered` list of a received batch as a set, or empty when it is oversized.
pub fn covered_set(covered: &[String]) -> Arc<BTreeSet<String>> {
    if covered.len() > MAX_COVERED || covered.iter().any(|u| u.len() > MAX_URL_BYTES) {
        return Arc::default();
    }
    Arc::new(covered.iter().map(|u| normalize(u)).collect())
}

/// After every committed block, queues the mempool's long-waiting transactions for gossip again.
pub async fn rebroadcast(chain: Arc<Chain>, queue: mpsc::Sender<Outgoing>) {
    let mut blocks = chain.subscribe();
    while let Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) = blocks.recv().await {
        for tx in chain.rebroadcast() {
            // A full queue drops the offer; the next block offers it again.
            if queue.try_send(tx.into()).is_err() {
                break;
            }
        }
    }
}

/// Who this node gossips to: its configured peers and every registered host's API URL but its own.
#[derive(Clone)]
pub struct Peers {
    /// `gossip_peers` from the config.
    pub configured: Vec<String>,
    /// The chain whose host registry names the rest.
    pub chain: Arc<Chain>,
    /// This node's host account, whose own URL is left out.
    pub me: Option<Address>,
}

impl Peers {
    /// The peer URLs now, and this node's own registered URL.
    fn current(&self) -> (BTreeSet<String>, Option<String>) {
        let mut peers: BTreeSet<String> = self.configured.iter().map(|u| normalize(u)).collect();
        let own = self.chain.with_state(|s| {
            for (_, participant) in s.hosts.participants().iter() {
                peers.insert(normalize(&participant.api_url));
            }
            self.me.and_then(|me| s.hosts.participant(&me)).map(|p| normalize(&p.api_url))
        });
        if let Some(own) = &own {
            peers.remove(own);
        }
        (peers, own)
    }
}

/// Forwards queued transactions to the peers until the queue closes.
pub async fn run(peers: Peers, mut queue: mpsc::Receiver<Outgoing>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH_TXS {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(tx)) => batch.push(tx),
                _ => break,
            }
        }
        let (targets, own) = peers.current();
        // What every transaction of the batch reaches: this node's peers, itself, and what all of
        // them were already known to reach.
        let mut covered = targets.clone();
        covered.extend(own);
        let mut upstream = batch.iter().map(|o| o.covered.as_ref());
        if let Some(first) = upstream.next() {
            covered.extend(first.iter().filter(|url| upstream.clone().all(|c| c.contains(*url))).cloned());
        }
        let covered: Vec<String> = covered.into_iter().take(MAX_COVERED).collect();
        let sends = targets.iter().filter_map(|peer| {
            let txs: Vec<String> =
                batch.iter().filter(|o| !o.covered.contains(peer)).map(|o| hex::encode(&o.tx)).collect();
            if txs.is_empty() {
                return None;
            }
            let body = TxBatch { txs, covered: covered.clone() };
            let request = client.post(format!("{peer}/gossip/txs")).json(&body).send();
            Some(async move {
                if let Err(error) = request.await {
                    tracing::debug!(%peer, %error, "gossip to peer failed");
                }
            })
        });
        futures::future::join_all(sends).await;
    }
}
