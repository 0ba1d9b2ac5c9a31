//! Transaction gossip (`docs/spec/network.md` §2): every transaction a node admits for the first time
//! — from a client, from its own host logic, or from a peer — is forwarded in batches to the REST API
//! of every peer it knows: the `gossip_peers` of its config and the API URL of every registered host
//! with voting power (the host registry is the peer exchange; a URL there is anyone's to write, so it
//! gets the executor URLs' guard: public addresses only unless the node is on a private network, no
//! redirects). A batch names the peers it is known to reach (`covered`: the sender's own peers and
//! whatever its senders covered), and a receiver forwards only to peers outside that set, so on a
//! full mesh each transaction crosses each link once and a node that knows a single peer still reaches
//! everyone through it. A transaction a node already holds, or one the chain refuses, is not
//! forwarded. Each peer has its own lane (a task posting its batches in order, 64 at most waiting): a
//! slow or dead peer falls behind alone, and past that misses batches (and is not named as covered for
//! them) instead of holding up the others.
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
/// Most peer URLs a batch's `covered` may name; a sender names no more, a receiver reads no more.
pub const MAX_COVERED: usize = 2_048;
/// Longest peer URL gossiped to or named in `covered`.
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

/// The `covered` list of a received batch as a set: its first [`MAX_COVERED`] URLs, over-long ones
/// left out (a peer left out is sent the transaction again: more traffic, never a lost transaction).
pub fn covered_set(covered: &[String]) -> Arc<BTreeSet<String>> {
    Arc::new(
        covered.iter().take(MAX_COVERED).filter(|u| u.len() <= MAX_URL_BYTES).map(|u| normalize(u)).collect(),
    )
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

/// Who this node gossips to: its configured peers and every registered host with power but itself.
#[derive(Clone)]
pub struct Peers {
    /// `gossip_peers` from the config (the operator's choice: no address guard).
    pub configured: Vec<String>,
    /// The chain whose host registry names the rest.
    pub chain: Arc<Chain>,
    /// This node's host account, whose own URL is left out.
    pub me: Option<Address>,
    /// Whether registered URLs may be private addresses (a LAN, a devnet, a test's namespaces).
    pub private_network: bool,
}

impl Peers {
    /// The peer URLs now (each with whether it came from the registry), and this node's own URL.
    fn current(&self) -> (BTreeSet<(String, bool)>, Option<String>) {
        let configured: BTreeSet<String> = self.configured.iter().map(|u| normalize(u)).collect();
        let (registered, own) = self.chain.with_state(|s| {
            let registered: Vec<String> = s
                .hosts
                .powers()
                .filter_map(|(address, _)| s.hosts.participant(&address))
                .map(|p| normalize(&p.api_url))
                .collect();
            (registered, self.me.and_then(|me| s.hosts.participant(&me)).map(|p| normalize(&p.api_url)))
        });
        let mut peers: BTreeSet<(String, bool)> = configured.iter().map(|u| (u.clone(), false)).collect();
        for url in registered {
            let usable = url.len() <= MAX_URL_BYTES
                && crate::inference::outbound::check_url(&url, self.private_network).is_ok()
                && !configured.contains(&url);
            if usable {
                peers.insert((url, true));
            }
        }
        peers.retain(|(url, _)| Some(url) != own.as_ref());
        (peers, own)
    }
}

/// Batches waiting for one peer; a peer this far behind misses the next batches (and is not named as
/// covered for them) until it catches up.
const PEER_QUEUE_BATCHES: usize = 64;

/// One peer's lane: a task that posts its batches in order, one request at a time.
fn spawn_lane(peer: String, client: reqwest::Client, timeout: Duration) -> mpsc::Sender<TxBatch> {
    let (lane, mut batches) = mpsc::channel::<TxBatch>(PEER_QUEUE_BATCHES);
    tokio::spawn(async move {
        while let Some(body) = batches.recv().await {
            let sent = client.post(format!("{peer}/gossip/txs")).timeout(timeout).json(&body).send().await;
            if let Err(error) = sent {
                tracing::debug!(%peer, %error, "gossip to peer failed");
            }
        }
    });
    lane
}

/// Forwards queued transactions to the peers until the queue closes.
pub async fn run(peers: Peers, mut queue: mpsc::Receiver<Outgoing>) {
    let timeout = Duration::from_secs(5);
    let build = |guarded: bool| {
        let client = if guarded {
            crate::inference::outbound::client(timeout, peers.private_network)
        } else {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                .build()
        };
        client.unwrap_or_default()
    };
    let (configured_client, registry_client) = (build(false), build(true));
    let mut lanes: std::collections::BTreeMap<String, mpsc::Sender<TxBatch>> = Default::default();
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
        // A place in each peer's lane; a peer whose lane is full is skipped this time.
        let mut permits = Vec::new();
        for (peer, registered) in targets {
            let client = if registered { &registry_client } else { &configured_client };
            let lane = lanes
                .entry(peer.clone())
                .or_insert_with(|| spawn_lane(peer.clone(), client.clone(), timeout));
            if let Ok(permit) = lane.clone().try_reserve_owned() {
                permits.push((peer, permit));
            }
        }
        // What every transaction of the batch reaches: the peers sent to now, this node, and what all
        // of them were already known to reach.
        let mut covered: BTreeSet<String> = permits.iter().map(|(url, _)| url.clone()).collect();
        covered.extend(own);
        let mut upstream = batch.iter().map(|o| o.covered.as_ref());
        if let Some(first) = upstream.next() {
            covered.extend(first.iter().filter(|url| upstream.clone().all(|c| c.contains(*url))).cloned());
        }
        let covered: Vec<String> = covered.into_iter().take(MAX_COVERED).collect();
        for (peer, permit) in permits {
            let txs: Vec<String> =
                batch.iter().filter(|o| !o.covered.contains(&peer)).map(|o| hex::encode(&o.tx)).collect();
            if !txs.is_empty() {
                permit.send(TxBatch { txs, covered: covered.clone() });
            }
        }
    }
}
