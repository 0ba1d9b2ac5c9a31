//! The mempool: checked transactions waiting for a block, bounded in count and bytes, ordered by
//! arrival, with per-account sequences tracked so an account may queue several transactions.
//!
//! Two lanes (issue 12, item 7; `docs/spec/chain.md` §6): a staked host's duties (PoC commitments,
//! batches and votes, inference receipts — [`gonka_chain::State::is_duty`]), at most
//! [`DUTIES_PER_ACCOUNT`] waiting per account, and everything else. A duty that finds the pool full
//! evicts ordinary transactions (or the duties of whoever holds the most), and blocks give duties
//! three quarters first and ordinary transactions at least the rest; within each lane accounts take
//! turns, so a flood delays only its own lane's other senders by its share of accounts.
//!
//! Gossip is one hop and a lost message is not resent, and a peer that missed one transaction of an
//! account refuses the account's later ones (their sequence is ahead). So the node offers waiting
//! transactions again ([`Mempool::due_for_rebroadcast`]) once they have waited a few blocks, each with
//! every later waiting transaction of its account: a peer that has them answers "duplicate", one that
//! missed them fills the gap and takes the rest in the same pass.

use std::collections::BTreeMap;

use gonka_chain::{State, TxError};
use gonka_primitives::codec::Bytes;
use gonka_primitives::{Address, Amount, Hash};

/// Mempool bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MempoolLimits {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most bytes held.
    pub max_bytes: usize,
    /// Most transactions one account may have waiting.
    pub max_per_account: usize,
}

impl Default for MempoolLimits {
    fn default() -> MempoolLimits {
        MempoolLimits { max_txs: 50_000, max_bytes: 64 << 20, max_per_account: 1_000 }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// It failed the state machine's check.
    #[error(transparent)]
    Check(#[from] TxError),
    /// Already waiting.
    #[error("transaction already in the mempool")]
    Duplicate,
    /// The mempool (or the account's share of it) is full.
    #[error("mempool full: {0}")]
    Full(&'static str),
    /// An account it debits cannot cover it on top of what waiting transactions already take from it.
    #[error(
        "account {account} has {balance} ngonka, {pending} of it promised to waiting transactions; this one needs {needed}"
    )]
    Overdrawn {
        /// The debited account.
        account: Address,
        /// Its committed spendable balance.
        balance: Amount,
        /// What waiting transactions take from it.
        pending: Amount,
        /// What this one takes.
        needed: Amount,
    },
}

struct Entry {
    hash: Hash,
    bytes: Bytes,
    account: Address,
    sequence: u64,
    /// What it takes from spendable balances (`Module::debits`).
    debits: BTreeMap<Address, Amount>,
    /// Height of the state when it was last offered to peers.
    offered_height: u64,
    /// Whether this node originated it (only the origin offers it again).
    local: bool,
    /// A staked host's duty ([`gonka_chain::CheckedTx::duty`]).
    duty: bool,
}

/// The pool of pending transactions.
pub struct Mempool {
    limits: MempoolLimits,
    next_arrival: u64,
    entries: BTreeMap<u64, Entry>,
    by_hash: BTreeMap<Hash, u64>,
    /// Per account: the next sequence expected and how many of its transactions wait.
    accounts: BTreeMap<Address, (u64, usize)>,
    /// Per account: what waiting transactions take from its balance. A transaction is admitted only if
    /// every account it debits covers this plus its own debit (`docs/spec/inference.md` §4.1).
    pending_debits: BTreeMap<Address, Amount>,
    /// Per account: how many of its waiting transactions are in the duty lane.
    duties: BTreeMap<Address, usize>,
    bytes: usize,
}

/// Duties one account may have waiting in the duty lane; later ones wait in the ordinary lane. A host's
/// duties per stage are one seed commitment, a few batch transactions and its votes, plus a receipt per
/// inference in flight: the quota leaves room for all of that and bounds what one staked host can push
/// ahead of everyone.
pub const DUTIES_PER_ACCOUNT: usize = 128;

impl Mempool {
    /// An empty mempool.
    pub fn new(limits: MempoolLimits) -> Mempool {
        Mempool {
            limits,
            next_arrival: 0,
            entries: BTreeMap::new(),
            by_hash: BTreeMap::new(),
            accounts: BTreeMap::new(),
            pending_debits: BTreeMap::new(),
            duties: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// Number of waiting transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sequence the next transaction of `account` must carry, counting the ones waiting here;
    /// None when none wait (the account's state sequence applies).
    pub fn next_sequence(&self, account: &Address) -> Option<u64> {
        self.accounts.get(account).map(|(next, _)| *next)
    }

    /// Whether the transaction with this hash waits here (its signature was verified on admission).
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Checks `bytes` against `state` and admits them; `local` when this node originated them. A full
    /// pool refuses an ordinary transaction, and makes room for a duty (see [`Mempool::make_room`]).
    pub fn insert(&mut self, state: &State, bytes: Vec<u8>, local: bool) -> Result<Hash, MempoolError> {
        let hash = Hash::digest(&bytes);
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        if bytes.len() > self.limits.max_bytes {
            return Err(MempoolError::Full("too many bytes"));
        }
        let account_hint = peek_account(&bytes);
        let pending = account_hint.and_then(|a| self.accounts.get(&a).copied());
        if pending.is_some_and(|(_, count)| count >= self.limits.max_per_account) {
            return Err(MempoolError::Full("too many transactions from this account"));
        }
        // The cheap refusal first: a full pool and bytes that cannot be a staked host's duty.
        if let Some(reason) = self.full(bytes.len())
            && account_hint.is_none_or(|a| !state.is_staked_host(&a))
        {
            return Err(MempoolError::Full(reason));
        }
        let checked = state.check_tx(&bytes, pending.map(|(next, _)| next))?;
        // Before anything is evicted for it: a duty that cannot be paid for evicts nothing.
        covered(state, &self.pending_debits, &checked.debits)?;
        let account = checked.tx.body.account;
        // Past its quota an account's duties wait in the ordinary lane.
        let duty = checked.duty && self.duties.get(&account).copied().unwrap_or(0) < DUTIES_PER_ACCOUNT;
        if let Some(reason) = self.full(bytes.len())
            && !(duty && self.make_room(bytes.len(), account))
        {
            return Err(MempoolError::Full(reason));
        }
        add_debits(&mut self.pending_debits, &checked.debits);
        let sequence = checked.tx.body.sequence;
        let slot = self.accounts.entry(account).or_insert((sequence, 0));
        *slot = (sequence + 1, slot.1 + 1);
        if duty {
            *self.duties.entry(account).or_default() += 1;
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.bytes += bytes.len();
        self.by_hash.insert(hash, arrival);
        let offered_height = state.height();
        let debits = checked.debits;
        self.entries.insert(
            arrival,
            Entry { hash, bytes: Bytes(bytes), account, sequence, debits, offered_height, local, duty },
        );
        Ok(hash)
    }

    /// Why `incoming` more bytes (one transaction) do not fit, if they do not.
    fn full(&self, incoming: usize) -> Option<&'static str> {
        if self.entries.len() >= self.limits.max_txs {
            Some("too many transactions")
        } else if self.bytes + incoming > self.limits.max_bytes {
            Some("too many bytes")
        } else {
            None
        }
    }

    /// Evicts until a duty of `incoming` bytes from `keep` fits, each time the newest transaction of
    /// the account other than `keep` with the most ordinary transactions waiting (if that newest one
    /// is ordinary: the tail of the account's run, so no sequence gap is left); when no ordinary tail
    /// is left, the newest duty of the account with the most duties, if it holds more than `keep`
    /// will. Whether it fits now. One pass over the pool, then `O(log accounts)` per eviction.
    fn make_room(&mut self, incoming: usize, keep: Address) -> bool {
        let mut runs: BTreeMap<Address, Vec<u64>> = BTreeMap::new();
        for (arrival, entry) in &self.entries {
            runs.entry(entry.account).or_default().push(*arrival);
        }
        let mine = self.duties.get(&keep).copied().unwrap_or(0);
        // (tier, count): 1 for an ordinary tail ranked by its ordinary count, 0 for a duty tail.
        let rank = |pool: &Mempool, account: &Address, arrivals: &[u64]| -> Option<(u8, usize)> {
            let tail = pool.entries.get(arrivals.last()?)?;
            let duties = pool.duties.get(account).copied().unwrap_or(0);
            if !tail.duty {
                Some((1, arrivals.len() - duties))
            } else if duties > mine + 1 {
                Some((0, duties))
            } else {
                None
            }
        };
        let mut candidates: std::collections::BTreeSet<(u8, usize, Address)> = runs
            .iter()
            .filter(|(account, _)| **account != keep)
            .filter_map(|(account, arrivals)| rank(self, account, arrivals).map(|(t, c)| (t, c, *account)))
            .collect();
        while self.full(incoming).is_some() {
            let Some((_, _, account)) = candidates.pop_last() else { return false };
            let Some(arrivals) = runs.get_mut(&account) else { continue };
            let Some(arrival) = arrivals.pop() else { continue };
            self.remove_tail(arrival);
            if let Some((tier, count)) = rank(self, &account, arrivals) {
                candidates.insert((tier, count, account));
            }
        }
        true
    }

    /// Removes the entry at `arrival`, the newest of its account, with everything counted for it.
    fn remove_tail(&mut self, arrival: u64) {
        let Some(entry) = self.entries.remove(&arrival) else { return };
        self.by_hash.remove(&entry.hash);
        self.bytes -= entry.bytes.0.len();
        for (account, amount) in &entry.debits {
            if let Some(total) = self.pending_debits.get_mut(account) {
                *total = Amount(total.0.saturating_sub(amount.0));
            }
        }
        match self.accounts.get_mut(&entry.account) {
            Some(slot) if slot.1 > 1 => *slot = (entry.sequence, slot.1 - 1),
            _ => {
                self.accounts.remove(&entry.account);
            }
        }
        if entry.duty
            && let Some(count) = self.duties.get_mut(&entry.account)
        {
            *count = count.saturating_sub(1);
        }
    }

    /// Transactions for the next block within the block limits, in three passes: duties, up to
    /// three quarters of the block; then ordinary transactions; then duties again in what is left.
    /// So duties always get most of a block and ordinary senders always get a quarter of it when
    /// they wait. In each pass accounts take turns (in order of their oldest waiting transaction),
    /// each account's in sequence order: an account whose next transaction is not of the pass's
    /// lane sits that pass out, so nothing is proposed out of sequence.
    pub fn reap(&self, max_txs: usize, max_bytes: usize) -> Vec<Bytes> {
        let mut queues: Vec<std::collections::VecDeque<&Entry>> = Vec::new();
        let mut slot_of: BTreeMap<Address, usize> = BTreeMap::new();
        for entry in self.entries.values() {
            let slot = *slot_of.entry(entry.account).or_insert_with(|| {
                queues.push(std::collections::VecDeque::new());
                queues.len() - 1
            });
            queues[slot].push_back(entry);
        }
        let passes = [
            (true, max_txs - max_txs / 4, max_bytes - max_bytes / 4),
            (false, max_txs, max_bytes),
            (true, max_txs, max_bytes),
        ];
        let mut total = 0usize;
        let mut out = Vec::new();
        for (duties, cap_txs, cap_bytes) in passes {
            let mut blocked = vec![false; queues.len()];
            let mut progressed = true;
            while progressed && out.len() < cap_txs {
                progressed = false;
                for (queue, blocked) in queues.iter_mut().zip(blocked.iter_mut()) {
                    let Some(entry) = queue.front() else { continue };
                    if *blocked || entry.duty != duties || out.len() >= cap_txs {
                        continue;
                    }
                    // Per-tx overhead in the block encoding is a 4-byte length prefix.
                    let size = entry.bytes.0.len() + 4;
                    if total + size > cap_bytes {
                        // Too big for what this pass has left: the account waits.
                        *blocked = true;
                        continue;
                    }
                    total += size;
                    out.push(entry.bytes.clone());
                    queue.pop_front();
                    progressed = true;
                }
            }
        }
        out
    }

    /// Waiting transactions this node originated, last offered to peers at least `after_blocks` before
    /// `height`, oldest first, at most `max`; they count as offered now. A due transaction brings every
    /// later waiting one of its account along, due or not: a peer that missed it refused those as out of
    /// sequence, and would wait another `after_blocks` for each (found by the simulator: under message
    /// loss one lost transaction held an executor's receipts back past their deadline).
    pub fn due_for_rebroadcast(&mut self, height: u64, after_blocks: u64, max: usize) -> Vec<Bytes> {
        let mut due = Vec::new();
        let mut behind_due: std::collections::BTreeSet<Address> = std::collections::BTreeSet::new();
        for entry in self.entries.values_mut() {
            if due.len() >= max {
                break;
            }
            if !entry.local {
                continue;
            }
            if height >= entry.offered_height + after_blocks || behind_due.contains(&entry.account) {
                entry.offered_height = height;
                behind_due.insert(entry.account);
                due.push(entry.bytes.clone());
            }
        }
        due
    }

    /// The encoded messages of `account`'s waiting transactions.
    pub fn pending_messages(&self, account: &Address) -> std::collections::BTreeSet<Vec<u8>> {
        use gonka_primitives::codec::Encode;
        self.entries
            .values()
            .filter(|e| e.account == *account)
            .filter_map(|e| {
                gonka_primitives::codec::decode_exact::<gonka_chain::Tx>(&e.bytes.0, usize::MAX).ok()
            })
            .flat_map(|tx| tx.body.messages.into_iter().map(|m| m.to_bytes()))
            .collect()
    }

    /// After a block: drops included transactions, then checks every waiting one again against the new
    /// state (a PoC batch whose window closed, a receipt the block already holds, a debit the new
    /// balances no longer cover, oldest first) and drops those that fail, with every later transaction
    /// of the same account (their sequence now has a gap). Like
    /// CometBFT's recheck: a transaction that can no longer apply must not sit in front of its account's
    /// next ones, which peers would refuse as out of sequence. The transaction signature is not checked
    /// again (it was at admission); message-level signatures hit the primitives' memo. Cost: a decode
    /// and the message checks per waiting transaction.
    pub fn on_block_committed(&mut self, state: &State, included: &[Hash]) {
        for hash in included {
            if let Some(entry) = self.by_hash.remove(hash).and_then(|arrival| self.entries.remove(&arrival)) {
                self.bytes -= entry.bytes.0.len();
            }
        }
        let mut expected: BTreeMap<Address, u64> = BTreeMap::new();
        let mut dropped = Vec::new();
        let mut debits: BTreeMap<Address, Amount> = BTreeMap::new();
        let mut rechecked: Vec<(u64, BTreeMap<Address, Amount>, bool)> = Vec::new();
        for (arrival, entry) in &self.entries {
            let next =
                expected.entry(entry.account).or_insert_with(|| state.account(&entry.account).sequence);
            let checked = (entry.sequence == *next)
                .then(|| state.recheck_tx(&entry.bytes.0, Some(*next)).ok())
                .flatten()
                .filter(|checked| covered(state, &debits, &checked.debits).is_ok());
            match checked {
                Some(checked) => {
                    *next += 1;
                    add_debits(&mut debits, &checked.debits);
                    rechecked.push((*arrival, checked.debits, checked.duty));
                }
                None => dropped.push(*arrival),
            }
        }
        for arrival in dropped {
            if let Some(entry) = self.entries.remove(&arrival) {
                self.by_hash.remove(&entry.hash);
                self.bytes -= entry.bytes.0.len();
            }
        }
        for (arrival, fresh, duty) in rechecked {
            if let Some(entry) = self.entries.get_mut(&arrival) {
                entry.debits = fresh;
                entry.duty = duty;
            }
        }
        self.pending_debits = debits;
        self.accounts.clear();
        self.duties.clear();
        for entry in self.entries.values_mut() {
            let slot = self.accounts.entry(entry.account).or_insert((entry.sequence, 0));
            *slot = (entry.sequence + 1, slot.1 + 1);
            let duties = self.duties.entry(entry.account).or_default();
            entry.duty = entry.duty && *duties < DUTIES_PER_ACCOUNT;
            *duties += usize::from(entry.duty);
        }
    }
}

/// Whether every account in `debits` covers its debit on top of `pending`.
fn covered(
    state: &State,
    pending: &BTreeMap<Address, Amount>,
    debits: &BTreeMap<Address, Amount>,
) -> Result<(), MempoolError> {
    for (account, needed) in debits {
        let balance = state.bank.balance(account);
        let promised = pending.get(account).copied().unwrap_or(Amount::ZERO);
        if promised.0.saturating_add(needed.0) > balance.0 {
            return Err(MempoolError::Overdrawn {
                account: *account,
                balance,
                pending: promised,
                needed: *needed,
            });
        }
    }
    Ok(())
}

fn add_debits(pending: &mut BTreeMap<Address, Amount>, debits: &BTreeMap<Address, Amount>) {
    for (account, amount) in debits {
        let total = pending.entry(*account).or_insert(Amount::ZERO);
        *total = Amount(total.0.saturating_add(amount.0));
    }
}

/// The account a transaction acts for, read without verifying anything (for the per-account bound).
fn peek_account(bytes: &[u8]) -> Option<Address> {
    // Layout: u32 chain-id length, chain id, then the 20-byte account.
    let length = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let start = 4usize.checked_add(length)?;
    Some(Address(bytes.get(start..start + 20)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use gonka_chain::{BankMsg, Genesis, GenesisAccount, GenesisParticipant, Msg, Params, Tx};
    use gonka_primitives::codec::Encode;
    use gonka_primitives::{AccountKey, Amount, ValidatorKey};

    use super::*;

    /// Alice: the one host, funded 1,000.
    fn genesis() -> Genesis {
        let alice = AccountKey::from_seed(b"alice");
        Genesis {
            chain_id: "mempool".into(),
            genesis_time_ms: 0,
            // No fees: these tests count debits by hand (fees are the chain's tests).
            params: Params { fees: gonka_chain::Fees::FREE, ..Params::devnet(alice.address()) },
            accounts: vec![GenesisAccount { address: alice.address(), balance: Amount(1_000) }],
            participants: vec![GenesisParticipant {
                address: alice.address(),
                account_key: alice.public_key(),
                api_url: "http://a".into(),
                validator_key: ValidatorKey::from_secret_bytes([1; 32]).public_key(),
                operational_key: alice.public_key(),
                weight: 1,
                collateral: gonka_primitives::Amount::ZERO,
                validation_key: None,
            }],
            developers: vec![],
            tokenomics: gonka_chain::Tokenomics::default(),
        }
    }

    fn state() -> State {
        State::from_genesis(&genesis()).expect("genesis")
    }

    fn send(sequence: u64) -> Vec<u8> {
        send_amount(sequence, 1)
    }

    fn send_amount(sequence: u64, amount: u128) -> Vec<u8> {
        let to = AccountKey::from_seed(b"bob").address();
        Tx::new(
            "mempool",
            &AccountKey::from_seed(b"alice"),
            sequence,
            vec![Msg::Bank(BankMsg::Send { to, amount: Amount(amount) })],
        )
        .to_bytes()
    }

    #[test]
    fn queues_consecutive_sequences_and_refuses_gaps_and_duplicates() {
        let state = state();
        let mut pool = Mempool::new(MempoolLimits::default());
        pool.insert(&state, send(0), true).expect("seq 0");
        pool.insert(&state, send(1), true).expect("seq 1 queues behind 0");
        assert_eq!(pool.insert(&state, send(1), true), Err(MempoolError::Duplicate));
        assert!(matches!(
            pool.insert(&state, send(3), true),
            Err(MempoolError::Check(TxError::WrongSequence { expected: 2, .. }))
        ));
        assert_eq!(pool.reap(10, 1 << 20).len(), 2);
        assert_eq!(pool.reap(1, 1 << 20).len(), 1, "the block tx limit is respected");
    }

    #[test]
    fn committed_and_stale_transactions_leave_after_a_block() {
        let mut state = state();
        let mut pool = Mempool::new(MempoolLimits::default());
        let first = pool.insert(&state, send(0), true).expect("seq 0");
        pool.insert(&state, send(1), true).expect("seq 1");
        // Another node's block included a different tx with sequence 0 and one with sequence 1.
        let txs = vec![Bytes(send_amount(0, 2)), Bytes(send_amount(1, 3))];
        let proposer = ValidatorKey::from_secret_bytes([1; 32]).public_key();
        let header = state.next_header(proposer, 1_000, &txs);
        let outcome = state.apply_block(&gonka_chain::Block { header, txs }, &|_| false).expect("applies");
        assert!(outcome.results.iter().all(|r| r.ok), "{:?}", outcome.results);
        assert_eq!(state.account(&AccountKey::from_seed(b"alice").address()).sequence, 2);
        pool.on_block_committed(&state, &[first]);
        assert!(pool.is_empty(), "sequence 1 became stale");
        pool.insert(&state, send(2), true).expect("the account's next sequence is accepted again");
    }

    #[test]
    fn waiting_transactions_are_offered_again_after_a_few_blocks() {
        let state = state();
        let mut pool = Mempool::new(MempoolLimits::default());
        pool.insert(&state, send(0), true).expect("seq 0");
        assert!(pool.due_for_rebroadcast(2, 3, 10).is_empty(), "too early");
        assert_eq!(pool.due_for_rebroadcast(3, 3, 10).len(), 1);
        assert!(pool.due_for_rebroadcast(4, 3, 10).is_empty(), "offered again only after another wait");
        assert_eq!(pool.due_for_rebroadcast(6, 3, 10).len(), 1);
    }

    #[test]
    fn a_due_transaction_brings_its_accounts_later_ones_along() {
        let mut state = state();
        let mut pool = Mempool::new(MempoolLimits::default());
        pool.insert(&state, send(0), true).expect("seq 0, offered at height 0");
        let proposer = ValidatorKey::from_secret_bytes([1; 32]).public_key();
        let header = state.next_header(proposer, 1_000, &[]);
        state.apply_block(&gonka_chain::Block { header, txs: vec![] }, &|_| false).expect("applies");
        pool.insert(&state, send(1), true).expect("seq 1, offered at height 1");
        assert_eq!(
            pool.due_for_rebroadcast(3, 3, 10).len(),
            2,
            "seq 0 is due; a peer that missed it refused seq 1, so seq 1 goes along"
        );
        assert!(pool.due_for_rebroadcast(5, 3, 10).is_empty(), "both count as offered at 3");
    }

    /// A TA's Starts for developer `dev` (funded 1,000) of a model at 10 per token: each escrows
    /// `(prompt + max_tokens) × 10`.
    fn start(state: &State, dev: &AccountKey, n: u64, prompt_tokens: u32, max_tokens: u32) -> Vec<u8> {
        let alice = AccountKey::from_seed(b"alice");
        let terms = gonka_chain::RequestTerms {
            transfer_agent: alice.address(),
            body_hash: Hash::digest(&n.to_be_bytes()),
            body_len: 100,
            timestamp_ns: state.meta.time_ms * 1_000_000,
            model: Hash::digest(b"m"),
            max_tokens,
            max_price_per_token: Amount(10),
        };
        let request = gonka_chain::SignedRequest::sign(dev, "mempool", terms);
        let start = gonka_chain::InferenceMsg::Start { request, executor: alice.address(), prompt_tokens };
        Tx::new("mempool", &alice, n, vec![start.into()]).to_bytes()
    }

    /// [`genesis`] with model `m` at 10 per token and developer `dev` funded with `balance`, at a
    /// genesis time request timestamps can follow.
    fn priced_genesis(dev: &AccountKey, balance: u128) -> Genesis {
        let mut genesis = genesis();
        genesis.genesis_time_ms = 1_000_000;
        genesis.params.inference.models.push(gonka_chain::ModelPrice {
            name: "m".into(),
            content_hash: Hash::digest(b"m"),
            price_per_token: Amount(10),
            cached_price_ppm: gonka_chain::FULL_PRICE_PPM,
            validation: Default::default(),
        });
        genesis.accounts.push(GenesisAccount { address: dev.address(), balance: Amount(balance) });
        genesis.developers.push(dev.address());
        genesis
    }

    #[test]
    fn pending_debits_cannot_overdraw_an_account() {
        // Issue 12, item 1: a developer funded for one escrow gets one Start admitted, not two, and
        // cannot send the same balance away meanwhile (docs/spec/inference.md §4.1).
        let dev = AccountKey::from_seed(b"dev");
        let alice = AccountKey::from_seed(b"alice");
        let mut genesis = priced_genesis(&dev, 1_000);
        genesis.participants[0].collateral = Amount(500);
        let state = State::from_genesis(&genesis).expect("genesis");
        let mut pool = Mempool::new(MempoolLimits::default());
        pool.insert(&state, start(&state, &dev, 0, 20, 40), true).expect("escrow 600 of 1,000");
        assert_eq!(
            pool.insert(&state, start(&state, &dev, 1, 20, 40), true),
            Err(MempoolError::Overdrawn {
                account: dev.address(),
                balance: Amount(1_000),
                pending: Amount(600),
                needed: Amount(600),
            })
        );
        let send = |amount| {
            Tx::new(
                "mempool",
                &dev,
                0,
                vec![Msg::Bank(BankMsg::Send { to: alice.address(), amount: Amount(amount) })],
            )
            .to_bytes()
        };
        assert!(matches!(pool.insert(&state, send(401), true), Err(MempoolError::Overdrawn { .. })));
        pool.insert(&state, send(400), true).expect("what the escrow leaves");
        // A smaller second request fits nothing either: the whole balance is promised.
        assert!(matches!(
            pool.insert(&state, start(&state, &dev, 1, 1, 1), true),
            Err(MempoolError::Overdrawn { .. })
        ));
        // The collateral module's deposit is a debit too: alice has 500 spendable, 300 then 201 is
        // refused though each alone would pass the module's own check.
        let deposit = |sequence, amount| {
            Tx::new(
                "mempool",
                &alice,
                sequence,
                vec![Msg::Collateral(gonka_chain::CollateralMsg::Deposit { amount: Amount(amount) })],
            )
            .to_bytes()
        };
        pool.insert(&state, deposit(1, 300), true).expect("300 of 500");
        let refused = pool.insert(&state, deposit(2, 201), true);
        assert!(matches!(refused, Err(MempoolError::Overdrawn { .. })), "{refused:?}");
        pool.insert(&state, deposit(2, 200), true).expect("the rest");
    }

    /// Genesis for the lane tests: alice the one host (staked by its power of 1), a developer funded
    /// for many small Starts, model `m`, and two funded flooders.
    fn lanes_genesis() -> (Genesis, AccountKey, [AccountKey; 2]) {
        let dev = AccountKey::from_seed(b"dev");
        let flooders = [AccountKey::from_seed(b"flood-0"), AccountKey::from_seed(b"flood-1")];
        let mut genesis = priced_genesis(&dev, 100_000);
        for f in &flooders {
            genesis.accounts.push(GenesisAccount { address: f.address(), balance: Amount(1_000) });
        }
        (genesis, dev, flooders)
    }

    fn flood(flooders: &[AccountKey; 2], i: usize, sequence: u64) -> Vec<u8> {
        let to = AccountKey::from_seed(b"alice").address();
        Tx::new("mempool", &flooders[i], sequence, vec![BankMsg::Send { to, amount: Amount(1) }.into()])
            .to_bytes()
    }

    #[test]
    fn a_flood_cannot_keep_a_staked_hosts_duties_out() {
        // Issue 12, item 7: two funded flooders fill the pool; the host's Start still gets in (evicting
        // the bigger flooder's newest) and is proposed first, then the flooders take turns.
        let (genesis, dev, flooders) = lanes_genesis();
        let state = State::from_genesis(&genesis).expect("genesis");
        let mut pool = Mempool::new(MempoolLimits { max_txs: 5, max_bytes: 1 << 20, max_per_account: 10 });
        for sequence in 0..3 {
            pool.insert(&state, flood(&flooders, 0, sequence), false).expect("flood 0");
        }
        for sequence in 0..2 {
            pool.insert(&state, flood(&flooders, 1, sequence), false).expect("flood 1");
        }
        let full = Err(MempoolError::Full("too many transactions"));
        assert_eq!(pool.insert(&state, flood(&flooders, 1, 2), false), full);
        let duty = start(&state, &dev, 0, 1, 1);
        pool.insert(&state, duty.clone(), true).expect("a duty makes room");
        assert_eq!(pool.len(), 5);
        assert_eq!(pool.next_sequence(&flooders[0].address()), Some(2), "flooder 0's newest was evicted");
        assert_eq!(pool.insert(&state, flood(&flooders, 0, 2), false), full, "and cannot come back");
        let block: Vec<Vec<u8>> = pool.reap(3, 1 << 20).into_iter().map(|b| b.0).collect();
        assert_eq!(block, [duty, flood(&flooders, 0, 0), flood(&flooders, 1, 0)], "duty first, then turns");

        // A URL update is routine but not a duty: it waits its turn like any transfer.
        let url = gonka_chain::HostsMsg::UpdateUrl { api_url: "http://a/2".into() };
        let alice = AccountKey::from_seed(b"alice");
        let update = Tx::new("mempool", &alice, 1, vec![url.into()]).to_bytes();
        assert_eq!(pool.insert(&state, update, true), full);

        // A registered host with no power and no collateral is not staked: no lane.
        let mut unstaked = genesis.clone();
        unstaked.participants[0].weight = 0;
        let bob = AccountKey::from_seed(b"bob");
        unstaked.accounts.push(GenesisAccount { address: bob.address(), balance: Amount(1) });
        unstaked.participants.push(GenesisParticipant {
            address: bob.address(),
            account_key: bob.public_key(),
            api_url: "http://b".into(),
            validator_key: ValidatorKey::from_secret_bytes([2; 32]).public_key(),
            operational_key: bob.public_key(),
            weight: 1,
            collateral: Amount::ZERO,
            validation_key: None,
        });
        let state = State::from_genesis(&unstaked).expect("genesis");
        let mut pool = Mempool::new(MempoolLimits { max_txs: 1, max_bytes: 1 << 20, max_per_account: 10 });
        pool.insert(&state, flood(&flooders, 0, 0), false).expect("flood");
        assert_eq!(pool.insert(&state, start(&state, &dev, 0, 1, 1), true), full);
    }

    #[test]
    fn duties_get_three_quarters_of_a_block_first_and_at_most_a_quota_each() {
        let (genesis, dev, flooders) = lanes_genesis();
        let state = State::from_genesis(&genesis).expect("genesis");
        // A block of 4 with 5 duties and 2 transfers waiting: 3 duties, then a transfer.
        let mut pool = Mempool::new(MempoolLimits::default());
        let duties: Vec<Vec<u8>> = (0..5).map(|n| start(&state, &dev, n, 1, 1)).collect();
        for duty in &duties {
            pool.insert(&state, duty.clone(), true).expect("duty");
        }
        pool.insert(&state, flood(&flooders, 0, 0), false).expect("flood");
        pool.insert(&state, flood(&flooders, 1, 0), false).expect("flood");
        let block: Vec<Vec<u8>> = pool.reap(4, 1 << 20).into_iter().map(|b| b.0).collect();
        let expected = [duties[0].clone(), duties[1].clone(), duties[2].clone(), flood(&flooders, 0, 0)];
        assert_eq!(block, expected);
        // With nothing ordinary waiting, duties fill the block.
        let mut only = Mempool::new(MempoolLimits::default());
        for duty in &duties {
            only.insert(&state, duty.clone(), true).expect("duty");
        }
        assert_eq!(only.reap(4, 1 << 20).len(), 4);

        // Past its quota an account's duties are ordinary: they can no longer evict anyone.
        let quota = DUTIES_PER_ACCOUNT as u64;
        let limits =
            MempoolLimits { max_txs: DUTIES_PER_ACCOUNT + 2, max_bytes: 1 << 24, max_per_account: 1_000 };
        let mut pool = Mempool::new(limits);
        for n in 0..quota {
            pool.insert(&state, start(&state, &dev, n, 1, 1), true).expect("within the quota");
        }
        pool.insert(&state, flood(&flooders, 0, 0), false).expect("flood");
        pool.insert(&state, flood(&flooders, 1, 0), false).expect("flood");
        assert_eq!(
            pool.insert(&state, start(&state, &dev, quota, 1, 1), true),
            Err(MempoolError::Full("too many transactions")),
            "the quota's next duty waits in the ordinary lane, which is full"
        );
    }

    #[test]
    fn after_a_block_what_no_longer_fits_leaves_oldest_first() {
        let bob = AccountKey::from_seed(b"bob");
        let mut state = state();
        let mut pool = Mempool::new(MempoolLimits::default());
        // Alice has 700 then 300 waiting; a block the pool never saw holds another sequence-0 send of
        // 900, so the waiting 0 goes stale and the waiting 1 no longer fits in the 100 left.
        pool.insert(&state, send_amount(0, 700), true).expect("700 of 1,000");
        pool.insert(&state, send_amount(1, 300), true).expect("300 more");
        assert!(matches!(pool.insert(&state, send_amount(2, 1), true), Err(MempoolError::Overdrawn { .. })));
        let txs = vec![Bytes(send_amount(0, 900))];
        let proposer = ValidatorKey::from_secret_bytes([1; 32]).public_key();
        let header = state.next_header(proposer, 1_000, &txs);
        state.apply_block(&gonka_chain::Block { header, txs }, &|_| false).expect("applies");
        assert_eq!(state.account(&bob.address()).balance, Amount(900));
        pool.on_block_committed(&state, &[]);
        assert!(pool.is_empty(), "sequence 0 went stale and 300 no longer fits in the 100 left");
        pool.insert(&state, send_amount(1, 100), true).expect("what is left");
    }

    #[test]
    fn limits_hold() {
        let state = state();
        let mut pool = Mempool::new(MempoolLimits { max_txs: 2, max_bytes: 1 << 20, max_per_account: 10 });
        pool.insert(&state, send(0), true).expect("0");
        pool.insert(&state, send(1), true).expect("1");
        assert_eq!(pool.insert(&state, send(2), true), Err(MempoolError::Full("too many transactions")));
        let mut per_account =
            Mempool::new(MempoolLimits { max_txs: 100, max_bytes: 1 << 20, max_per_account: 1 });
        per_account.insert(&state, send(0), true).expect("0");
        assert!(matches!(per_account.insert(&state, send(1), true), Err(MempoolError::Full(_))));
        let mut bytes = Mempool::new(MempoolLimits { max_txs: 100, max_bytes: 10, max_per_account: 10 });
        assert!(matches!(bytes.insert(&state, send(0), true), Err(MempoolError::Full(_))));
    }
}
