//! A bounded, process-wide memo of signature checks.
//!
//! Checking a signature is a pure function of its bytes, and the same signature is checked several
//! times: when a transaction enters the mempool and again when its block applies (VRF proofs too), a developer's
//! request signature in both of its receipts, and in the simulator at every simulated node. The memo
//! returns exactly what recomputing would, so it changes nothing but time. It is bounded (oldest
//! entries leave first), so a flood of distinct signatures costs memory of at most [`CAPACITY`]
//! entries (about 13 MiB): more than the message-level signatures of a full 50,000-transaction mempool
//! (one request signature per receipt), so the mempool's recheck after a block hits it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use crate::hash::Hash;

/// Most results remembered.
pub(crate) const CAPACITY: usize = 131_072;

/// What a check found: the recovered key, or a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `recover` succeeded with this key.
    Recovered([u8; 33]),
    /// `verify` succeeded.
    Valid,
    /// A VRF proof verified, with this output.
    VrfOutput(u64),
    /// The check failed, for this reason.
    Invalid(crate::keys::KeyError),
}

#[derive(Default)]
struct Memo {
    results: BTreeMap<Hash, Outcome>,
    order: VecDeque<Hash>,
}

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(Memo::default()))
}

/// The remembered outcome of check `key`, computing (and remembering) it with `check` if absent.
pub(crate) fn remembered(key: Hash, check: impl FnOnce() -> Outcome) -> Outcome {
    if let Some(outcome) = memo().lock().unwrap_or_else(|p| p.into_inner()).results.get(&key) {
        return outcome.clone();
    }
    let outcome = check();
    let mut memo = memo().lock().unwrap_or_else(|p| p.into_inner());
    if memo.results.insert(key, outcome.clone()).is_none() {
        memo.order.push_back(key);
        while memo.order.len() > CAPACITY {
            if let Some(old) = memo.order.pop_front() {
                memo.results.remove(&old);
            }
        }
    }
    outcome
}
