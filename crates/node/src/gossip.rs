//! Transaction gossip: transactions admitted from clients are forwarded in batches to every peer's
//! REST API, so whichever validator proposes next has them. Peers admit gossiped transactions
//! without forwarding them again (every node knows every peer), so each transaction crosses each
//! link once — and again, from every node holding it, if it is still waiting a few blocks later
//! ([`rebroadcast`]), so a lost batch delays a transaction instead of losing it.

use std::time::Duration;

use tokio::sync::mpsc;

/// Largest batch sent in one request.
const MAX_BATCH_TXS: usize = 2_000;
/// How long transactions wait to be batched.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Transactions queued for gossip before new ones are dropped (they still reach a block through this
/// node's own proposals).
pub const GOSSIP_QUEUE: usize = 100_000;

/// The JSON body of `POST /gossip/txs` and `POST /txs/batch`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TxBatch {
    /// Hex-encoded transactions.
    pub txs: Vec<String>,
}

/// After every committed block, queues the mempool's long-waiting transactions for gossip again.
pub async fn rebroadcast(chain: std::sync::Arc<crate::chain::Chain>, queue: mpsc::Sender<Vec<u8>>) {
    let mut blocks = chain.subscribe();
    while let Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) = blocks.recv().await {
        for tx in chain.rebroadcast() {
            // A full queue drops the offer; the next block offers it again.
            if queue.try_send(tx).is_err() {
                break;
            }
        }
    }
}

/// Forwards queued transactions to `peers` until the queue closes.
pub async fn run(peers: Vec<String>, mut queue: mpsc::Receiver<Vec<u8>>) {
    if peers.is_empty() {
        while queue.recv().await.is_some() {}
        return;
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    while let Some(first) = queue.recv().await {
        let mut batch = vec![hex::encode(first)];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH_TXS {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(tx)) => batch.push(hex::encode(tx)),
                _ => break,
            }
        }
        let body = TxBatch { txs: batch };
        let sends = peers.iter().map(|peer| {
            let request = client.post(format!("{peer}/gossip/txs")).json(&body).send();
            async move {
                if let Err(error) = request.await {
                    tracing::debug!(%peer, %error, "gossip to peer failed");
                }
            }
        });
        futures::future::join_all(sends).await;
    }
}
