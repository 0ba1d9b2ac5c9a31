//! `forge-ta`: a registered host that signs requests with fresh, never-funded keys, grinds their
//! timestamps until the executor draw names another host, and forwards them straight to that executor
//! with its own TA signature, without a Start. The executor checks the TA is a host, the signatures,
//! the time and the draw — not that anyone will pay — and serves: answers for free, a known
//! violation (issue 12 makes executors serve only paid-for requests).

use gonka_chain::{SignedRequest, inference};
use gonka_primitives::AccountKey;

use super::{Byzantine, Forged, HostView};
use crate::config::ByzantineKind;

/// Forged requests per block.
const PER_BLOCK: u64 = 2;

/// The forging host.
#[derive(Debug)]
pub struct Forger {
    seed: u64,
    index: usize,
    counter: u64,
}

impl Forger {
    /// The forger of host `index` in run `seed`.
    pub fn new(seed: u64, index: usize) -> Forger {
        Forger { seed, index, counter: 0 }
    }
}

impl Byzantine for Forger {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::ForgeTa
    }

    fn forge(&mut self, view: &mut HostView<'_>, now_ns: u64) -> Vec<Forged> {
        let mut forged = Vec::new();
        for _ in 0..PER_BLOCK {
            self.counter += 1;
            let key = AccountKey::from_seed(
                format!("sim-{}-forged-{}-{}", self.seed, self.index, self.counter).as_bytes(),
            );
            let content = format!("forged question {}", self.counter);
            // Grind the timestamp until the draw names someone else.
            for grind in 0..64u64 {
                let timestamp_ns = now_ns + grind;
                let terms = crate::world::request_terms(view.me, &content, timestamp_ns);
                let request = SignedRequest::sign(&key, &view.state.meta.chain_id, terms);
                let executor = inference::executor_for(view.state, &request.id());
                if executor.is_some_and(|e| e != view.me) {
                    forged.push(Forged { key: key.clone(), timestamp_ns, content: content.clone() });
                    break;
                }
            }
        }
        forged
    }
}
