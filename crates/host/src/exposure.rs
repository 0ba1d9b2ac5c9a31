//! What an executor risks on each transfer agent (`docs/spec/inference.md` §4.1): the executor serves a
//! forwarded request before the chain holds its escrow, so it counts, per TA, the worst-case charges
//! of the requests it served whose payment the chain does not hold yet, and serves a TA only while
//! that stays within its share of the TA's collateral:
//!
//! ```text
//! outstanding(ta) + escrow ≤ collateral(ta) × power(me) / total power
//! ```
//!
//! The shares of all executors sum to the collateral, so whatever the developers and the TA do, the
//! chain can pay every answer served for that TA: from the escrow once the Start lands, or from the
//! requester's balance and then the TA's collateral when the Finish comes first
//! (`gonka_chain::collateral::charge_vouched`). An entry leaves once the chain holds a record for the
//! inference (escrowed or settled) or once the request time left the window (no receipt can land).

use std::collections::BTreeMap;

use gonka_chain::{SignedRequest, State};
use gonka_primitives::{Address, Amount, Hash};

/// Why an executor will not serve a TA's request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
    /// The TA locked no collateral, or this executor has no power (403).
    #[error("transfer agent {0} has no collateral vouching for its requests at this executor")]
    NoCollateral(Address),
    /// The TA's share of collateral here is taken by requests not yet paid on chain (429: retry after
    /// a block).
    #[error(
        "transfer agent {ta} vouches for {outstanding} ngonka not yet on chain here; its share of collateral is {allowance}, this request needs {needed}"
    )]
    Exceeded {
        /// The TA.
        ta: Address,
        /// Its collateral share at this executor.
        allowance: u128,
        /// What is outstanding.
        outstanding: u128,
        /// What this request may cost.
        needed: u128,
    },
    /// Too many requests outstanding in all (429).
    #[error("this executor holds {0} requests not yet on chain")]
    Full(usize),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ta: Address,
    amount: u128,
    /// Request time (ms): once the window has passed it, no receipt can land.
    timestamp_ms: u64,
}

/// The executor's outstanding exposure, per TA.
#[derive(Debug, Clone, Default)]
pub struct ExposureBook {
    by_id: BTreeMap<Hash, Entry>,
    by_ta: BTreeMap<Address, u128>,
    capacity: usize,
}

/// `ta`'s collateral share at executor `me`: `collateral × power(me) / total power`, rounded down.
pub fn allowance(chain: &State, ta: &Address, me: &Address) -> u128 {
    let collateral = gonka_chain::collateral::collateral_of(chain, ta).0;
    let total = chain.hosts.total_power();
    let mine = chain.hosts.participant(me).map_or(0, |p| u128::from(p.weight));
    if total == 0 {
        return 0;
    }
    // collateral < 2^128 and mine ≤ total < 2^64·hosts: split to avoid overflow.
    (collateral / total)
        .saturating_mul(mine)
        .saturating_add((collateral % total).saturating_mul(mine) / total)
}

impl ExposureBook {
    /// A book holding at most `capacity` outstanding requests.
    pub fn new(capacity: usize) -> ExposureBook {
        ExposureBook { capacity: capacity.max(1), ..ExposureBook::default() }
    }

    /// What `ta`'s requests served here may still cost before the chain holds their payment.
    pub fn outstanding(&self, ta: &Address) -> u128 {
        self.by_ta.get(ta).copied().unwrap_or(0)
    }

    /// Requests outstanding.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is outstanding.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Takes `needed` of `ta`'s share at executor `me` for request `id` (request time `timestamp_ms`),
    /// after forgetting what the chain already settled.
    pub fn reserve(
        &mut self,
        chain: &State,
        me: &Address,
        ta: Address,
        id: Hash,
        needed: Amount,
        timestamp_ms: u64,
    ) -> Result<(), ExposureError> {
        self.settle(chain);
        let allowance = allowance(chain, &ta, me);
        if allowance == 0 {
            return Err(ExposureError::NoCollateral(ta));
        }
        let outstanding = self.outstanding(&ta);
        if outstanding.saturating_add(needed.0) > allowance {
            return Err(ExposureError::Exceeded { ta, allowance, outstanding, needed: needed.0 });
        }
        if self.by_id.len() >= self.capacity {
            return Err(ExposureError::Full(self.by_id.len()));
        }
        if self.by_id.insert(id, Entry { ta, amount: needed.0, timestamp_ms }).is_none() {
            *self.by_ta.entry(ta).or_insert(0) += needed.0;
        }
        Ok(())
    }

    /// Takes, from the share of `request`'s TA at executor `me`, the most any receipt for it may
    /// charge ([`gonka_chain::InferenceParams::charge_max`]).
    pub fn reserve_request(
        &mut self,
        chain: &State,
        me: &Address,
        request: &SignedRequest,
    ) -> Result<(), ExposureError> {
        let needed = chain.params().inference.charge_max(request);
        let timestamp_ms = request.timestamp_ns / 1_000_000;
        self.reserve(chain, me, request.transfer_agent, request.id(), needed, timestamp_ms)
    }

    /// Gives back the reservation of `id` (the request was not served after all).
    pub fn release(&mut self, id: &Hash) {
        if let Some(entry) = self.by_id.remove(id) {
            self.take(entry);
        }
    }

    /// Forgets the requests the chain holds a record of (their escrow or their payment is on chain)
    /// and those whose request time left the window (no receipt can land any more).
    pub fn settle(&mut self, chain: &State) {
        let oldest_ms = chain.meta.time_ms.saturating_sub(chain.params().inference.timestamp_expiration_ms);
        let done: Vec<Hash> = self
            .by_id
            .iter()
            .filter(|(id, entry)| entry.timestamp_ms < oldest_ms || chain.inference.record(id).is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.release(&id);
        }
    }

    fn take(&mut self, entry: Entry) {
        if let Some(total) = self.by_ta.get_mut(&entry.ta) {
            *total = total.saturating_sub(entry.amount);
            if *total == 0 {
                self.by_ta.remove(&entry.ta);
            }
        }
    }
}
