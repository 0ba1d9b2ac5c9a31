//! The replicated state and the two functions consensus needs from it: [`State::check_tx`] for the
//! mempool and [`State::apply_block`] for decided blocks.
//!
//! What an invalid transaction does in a block (see also `docs/spec/chain.md`):
//! - If it cannot be authenticated (malformed, wrong chain id, bad signature, unauthorized signer,
//!   unknown account, wrong sequence) it is recorded as failed and changes nothing.
//! - If it is authenticated but a message fails (insufficient funds, bad URL...), the account's
//!   sequence still advances — so the same signed bytes can never be retried — and every effect of
//!   its messages is rolled back. There are no fees yet, so nothing else changes.

use std::collections::{BTreeMap, BTreeSet};

use gonka_poc::Distance;

use gonka_primitives::codec::{Encode, decode_exact};
use gonka_primitives::{AccountPublicKey, Address, Amount, Hash, ValidatorPublicKey, codec_struct};
use serde::Serialize;

use crate::block::{Block, Header};
use crate::epoch::EpochPhase;
use crate::event::Event;
use crate::genesis::Genesis;
use crate::inference::{Inference, Receipt};
use crate::params::{Params, ParamsError};
use crate::poc::{ClaimKey, NonceKey, PocClaim, PocStage, PocVote, VoteKey};
use crate::table::Table;
use crate::tx::{Msg, Tx, TxError};

const APP_HASH_DOMAIN: &[u8] = b"gonka/app/v1\0";
const GENESIS_HASH_DOMAIN: &[u8] = b"gonka/genesis/v1\0";

/// An account: balance and the sequence its next transaction must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Account {
    /// Balance in ngonka.
    pub balance: Amount,
    /// Number of transactions included so far.
    pub sequence: u64,
}
codec_struct!(Account { balance, sequence });

/// A registered host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    /// Public API base URL.
    pub api_url: String,
    /// The account's own public key: PoC nonces are bound to it (reference §3.3).
    pub account_key: AccountPublicKey,
    /// Ed25519 consensus key.
    pub validator_key: ValidatorPublicKey,
    /// Key allowed to sign routine messages for the host.
    pub operational_key: AccountPublicKey,
    /// Voting power: genesis power, then the capped PoC weight of the effective epoch.
    pub weight: u64,
    /// Accepted distinct nonces of the last settled PoC, before capping.
    pub poc_weight: u64,
    /// Voting power settled at the end of PoC validation, applied at SetNewValidators.
    pub next_weight: Option<u64>,
    /// Voting power before the last change (executor draws made just before it stay valid briefly).
    pub previous_weight: u64,
    /// Fees earned as an executor and not yet claimed, in ngonka (held by the chain).
    pub owed: Amount,
    /// Inferences finished as executor.
    pub inferences: u64,
    /// Inferences assigned to this host that expired unfinished.
    pub missed: u64,
    /// Height at which the host registered (0 for genesis hosts).
    pub joined_height: u64,
}
codec_struct!(Participant {
    api_url,
    account_key,
    validator_key,
    operational_key,
    weight,
    poc_weight,
    next_weight,
    previous_weight,
    owed,
    inferences,
    missed,
    joined_height
});

/// A registered developer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Developer {
    /// Height of registration (0 for genesis developers).
    pub registered_height: u64,
}
codec_struct!(Developer { registered_height });

/// The scalar part of the state, persisted as one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// Chain id.
    pub chain_id: String,
    /// Height of the last applied block (0 = genesis).
    pub height: u64,
    /// Time of the last applied block (genesis time at height 0).
    pub time_ms: u64,
    /// Hash of the last applied block (zero at genesis).
    pub last_block_hash: Hash,
    /// App hash after the last applied block.
    pub app_hash: Hash,
    /// Parameters.
    pub params: Params,
    /// Sum of all balances.
    pub supply: Amount,
    /// The running (or last) PoC stage.
    pub poc_stage: Option<PocStage>,
    /// Height of the last change of voting power.
    pub power_changed_height: u64,
}
codec_struct!(Meta {
    chain_id,
    height,
    time_ms,
    last_block_hash,
    app_hash,
    params,
    supply,
    poc_stage,
    power_changed_height
});

/// The whole chain state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Scalars.
    pub meta: Meta,
    /// Accounts that ever received funds.
    pub accounts: Table<Address, Account>,
    /// Registered hosts.
    pub participants: Table<Address, Participant>,
    /// Registered developers.
    pub developers: Table<Address, Developer>,
    /// PoC claims per (stage, participant): seed commitment and distinct nonce count.
    pub poc_claims: Table<ClaimKey, PocClaim>,
    /// Claimed nonces per (stage, participant, nonce) with their claimed distance.
    pub poc_nonces: Table<NonceKey, Distance>,
    /// Validators' verdicts per (stage, participant, validator).
    pub poc_votes: Table<VoteKey, PocVote>,
    /// Inference receipts by inference id.
    pub inferences: Table<Hash, Inference>,
    /// Started inferences by (deadline height, id).
    pub inference_deadlines: Table<(u64, Hash), u8>,
    /// Inference records by (time after which they are pruned, id).
    pub inference_prunes: Table<(u64, Hash), u8>,
}

/// Every entry a block changed (None = removed), and the new scalars: what the store persists and
/// what the app hash commits to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateWrites {
    /// New scalars (always written).
    pub meta: Option<Meta>,
    /// Changed accounts.
    pub accounts: BTreeMap<Address, Option<Account>>,
    /// Changed participants.
    pub participants: BTreeMap<Address, Option<Participant>>,
    /// Changed developers.
    pub developers: BTreeMap<Address, Option<Developer>>,
    /// Changed PoC claims.
    pub poc_claims: BTreeMap<ClaimKey, Option<PocClaim>>,
    /// Changed PoC nonces.
    pub poc_nonces: BTreeMap<NonceKey, Option<Distance>>,
    /// Changed PoC verdicts.
    pub poc_votes: BTreeMap<VoteKey, Option<PocVote>>,
    /// Changed inference receipts.
    pub inferences: BTreeMap<Hash, Option<Inference>>,
    /// Changed deadline index entries.
    pub inference_deadlines: BTreeMap<(u64, Hash), Option<u8>>,
    /// Changed prune index entries.
    pub inference_prunes: BTreeMap<(u64, Hash), Option<u8>>,
}
codec_struct!(StateWrites {
    meta,
    accounts,
    participants,
    developers,
    poc_claims,
    poc_nonces,
    poc_votes,
    inferences,
    inference_deadlines,
    inference_prunes
});

/// The result of one transaction in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxResult {
    /// The transaction's hash.
    pub hash: Hash,
    /// Whether its messages applied.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// What it did.
    pub events: Vec<Event>,
}
codec_struct!(TxResult { hash, ok, error, events });

/// What applying a block produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Per-transaction results, in block order.
    pub results: Vec<TxResult>,
    /// Block-level events (phase changes).
    pub events: Vec<Event>,
    /// Changed entries, for the store.
    pub writes: StateWrites,
    /// Whether the validator set (keys or weights) changed.
    pub validator_set_changed: bool,
}

/// A transaction that passed [`State::check_tx`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTx {
    /// The decoded transaction.
    pub tx: Tx,
    /// Its hash.
    pub hash: Hash,
}

/// Why a block cannot be applied at all (consensus must never decide one; the node stops if it does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Header fields do not follow the current state.
    #[error("block header invalid: {0}")]
    Header(String),
    /// Too many or too large transactions.
    #[error("block exceeds limits: {0}")]
    Limits(String),
}

/// Why a genesis document is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Bad parameters.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// Something else is inconsistent.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

impl State {
    /// The state at height 0.
    pub fn from_genesis(genesis: &Genesis) -> Result<State, GenesisError> {
        genesis.params.validate()?;
        let invalid = |m: String| GenesisError::Invalid(m);
        if genesis.chain_id.is_empty() || genesis.chain_id.len() > 64 {
            return Err(invalid("chain_id must be 1 to 64 bytes".into()));
        }
        let mut accounts = Table::default();
        let mut supply = Amount::ZERO;
        for entry in &genesis.accounts {
            if accounts.contains_key(&entry.address) {
                return Err(invalid(format!("account {} listed twice", entry.address)));
            }
            accounts.insert(entry.address, Account { balance: entry.balance, sequence: 0 });
            supply = supply.checked_add(entry.balance).ok_or_else(|| invalid("supply overflows".into()))?;
        }
        let mut participants = Table::default();
        let mut keys = BTreeSet::new();
        for p in &genesis.participants {
            if p.account_key.address() != p.address {
                return Err(invalid(format!(
                    "participant {}: account key does not match the address",
                    p.address
                )));
            }
            check_url(&p.api_url, genesis.params.limits.max_url_bytes).map_err(invalid)?;
            ValidatorPublicKey::from_bytes(p.validator_key.0).map_err(|e| invalid(e.to_string()))?;
            if !keys.insert(p.validator_key) {
                return Err(invalid(format!("validator key {} used twice", p.validator_key)));
            }
            let participant = Participant {
                api_url: p.api_url.clone(),
                account_key: p.account_key,
                validator_key: p.validator_key,
                operational_key: p.operational_key,
                weight: p.weight,
                poc_weight: 0,
                next_weight: None,
                previous_weight: 0,
                owed: Amount::ZERO,
                inferences: 0,
                missed: 0,
                joined_height: 0,
            };
            if participants.contains_key(&p.address) {
                return Err(invalid(format!("participant {} listed twice", p.address)));
            }
            participants.insert(p.address, participant);
        }
        if !participants.values().any(|p: &Participant| p.weight > 0) {
            return Err(invalid("at least one participant needs a positive weight".into()));
        }
        let developers =
            genesis.developers.iter().map(|a| (*a, Developer { registered_height: 0 })).collect();
        let mut state = State {
            meta: Meta {
                chain_id: genesis.chain_id.clone(),
                height: 0,
                time_ms: genesis.genesis_time_ms,
                last_block_hash: Hash::ZERO,
                app_hash: Hash::ZERO,
                params: genesis.params.clone(),
                supply,
                poc_stage: None,
                power_changed_height: 0,
            },
            accounts,
            participants,
            developers,
            poc_claims: Table::default(),
            poc_nonces: Table::default(),
            poc_votes: Table::default(),
            inferences: Table::default(),
            inference_deadlines: Table::default(),
            inference_prunes: Table::default(),
        };
        // Genesis rows are committed by the genesis hash below, not tracked as a block's writes.
        state.take_writes();
        state.meta.app_hash = Hash::digest_parts(&[GENESIS_HASH_DOMAIN, &state.full_writes().to_bytes()]);
        Ok(state)
    }

    /// The whole state as writes (every entry present): what genesis commits to and what a fresh
    /// store is loaded with.
    pub fn full_writes(&self) -> StateWrites {
        StateWrites {
            meta: Some(self.meta.clone()),
            accounts: self.accounts.full_writes(),
            participants: self.participants.full_writes(),
            developers: self.developers.full_writes(),
            poc_claims: self.poc_claims.full_writes(),
            poc_nonces: self.poc_nonces.full_writes(),
            poc_votes: self.poc_votes.full_writes(),
            inferences: self.inferences.full_writes(),
            inference_deadlines: self.inference_deadlines.full_writes(),
            inference_prunes: self.inference_prunes.full_writes(),
        }
    }

    /// Every entry written since the last call (the scalars not included).
    fn take_writes(&mut self) -> StateWrites {
        StateWrites {
            meta: None,
            accounts: self.accounts.take_writes(),
            participants: self.participants.take_writes(),
            developers: self.developers.take_writes(),
            poc_claims: self.poc_claims.take_writes(),
            poc_nonces: self.poc_nonces.take_writes(),
            poc_votes: self.poc_votes.take_writes(),
            inferences: self.inferences.take_writes(),
            inference_deadlines: self.inference_deadlines.take_writes(),
            inference_prunes: self.inference_prunes.take_writes(),
        }
    }

    /// Ends a transaction's undo scope in every table.
    fn commit_tx(&mut self) {
        self.accounts.commit_tx();
        self.participants.commit_tx();
        self.developers.commit_tx();
        self.poc_claims.commit_tx();
        self.poc_nonces.commit_tx();
        self.poc_votes.commit_tx();
        self.inferences.commit_tx();
        self.inference_deadlines.commit_tx();
        self.inference_prunes.commit_tx();
    }

    /// Undoes a failed transaction's writes in every table.
    fn roll_back_tx(&mut self) {
        self.accounts.roll_back_tx();
        self.participants.roll_back_tx();
        self.developers.roll_back_tx();
        self.poc_claims.roll_back_tx();
        self.poc_nonces.roll_back_tx();
        self.poc_votes.roll_back_tx();
        self.inferences.roll_back_tx();
        self.inference_deadlines.roll_back_tx();
        self.inference_prunes.roll_back_tx();
    }

    /// Height of the last applied block.
    pub fn height(&self) -> u64 {
        self.meta.height
    }

    /// The account at `address`, or an empty one.
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Consensus validators: hosts with positive weight, sorted by key.
    pub fn validator_set(&self) -> Vec<(ValidatorPublicKey, u64)> {
        let mut set: Vec<_> = self
            .participants
            .values()
            .filter(|p| p.weight > 0)
            .map(|p| (p.validator_key, p.weight))
            .collect();
        set.sort();
        set
    }

    /// Whether `bytes` may enter the mempool. `expected_sequence` is the sequence the mempool expects
    /// next for the account (its pending transactions counted); None means the account's state
    /// sequence. Cheap checks run first, the signature last.
    pub fn check_tx(&self, bytes: &[u8], expected_sequence: Option<u64>) -> Result<CheckedTx, TxError> {
        let tx = self.authenticate(bytes, expected_sequence, false)?;
        for msg in &tx.body.messages {
            self.check_message(tx.body.account, &tx.body.signer, msg)?;
        }
        Ok(CheckedTx { hash: Hash::digest(bytes), tx })
    }

    /// Decodes a transaction and checks everything that decides whether it may touch its account:
    /// chain id, message count, account, sequence, signer authority and (unless already verified) the
    /// signature.
    fn authenticate(
        &self,
        bytes: &[u8],
        expected_sequence: Option<u64>,
        verified: bool,
    ) -> Result<Tx, TxError> {
        let limits = &self.meta.params.limits;
        let tx: Tx = decode_exact(bytes, limits.max_tx_bytes as usize)?;
        let body = &tx.body;
        if body.chain_id != self.meta.chain_id {
            return Err(TxError::WrongChainId {
                expected: self.meta.chain_id.clone(),
                got: body.chain_id.clone(),
            });
        }
        let count = body.messages.len();
        if count == 0 || count > limits.max_messages_per_tx as usize {
            return Err(TxError::MessageCount { found: count, limit: limits.max_messages_per_tx });
        }
        let account = self.accounts.get(&body.account).ok_or(TxError::UnknownAccount(body.account))?;
        let expected = expected_sequence.unwrap_or(account.sequence);
        if body.sequence != expected {
            return Err(TxError::WrongSequence { account: body.account, expected, got: body.sequence });
        }
        let signer = body.signer.address();
        if signer != body.account {
            let unauthorized = |detail| TxError::Unauthorized { signer, account: body.account, detail };
            let participant = self.participants.get(&body.account).ok_or(unauthorized(""))?;
            if participant.operational_key != body.signer {
                return Err(unauthorized(""));
            }
            if !body.messages.iter().all(Msg::is_routine) {
                return Err(unauthorized(" (the operational key signs routine messages only)"));
            }
        }
        if !verified {
            body.signer.verify(&body.sign_bytes(), &tx.signature).map_err(|_| TxError::InvalidSignature)?;
        }
        Ok(tx)
    }

    /// Read-only checks of one message from `sender` (signed by `signer`) for the next block, against
    /// the state as it is (earlier messages of the same transaction included).
    fn check_message(&self, sender: Address, signer: &AccountPublicKey, msg: &Msg) -> Result<(), TxError> {
        let invalid = |msg: &Msg, reason: String| TxError::InvalidMessage { msg: msg.name(), reason };
        let max_url = self.meta.params.limits.max_url_bytes;
        match msg {
            Msg::BankSend { amount, .. } if amount.0 == 0 => {
                Err(invalid(msg, "amount must be positive".into()))
            }
            Msg::BankSend { .. } | Msg::RegisterDeveloper => Ok(()),
            Msg::RegisterHost { api_url, validator_key, operational_key } => {
                check_url(api_url, max_url).map_err(|r| invalid(msg, r))?;
                ValidatorPublicKey::from_bytes(validator_key.0).map_err(|e| invalid(msg, e.to_string()))?;
                AccountPublicKey::from_hex(&operational_key.to_string())
                    .map_err(|e| invalid(msg, e.to_string()))?;
                Ok(())
            }
            Msg::UpdateHostUrl { api_url } => check_url(api_url, max_url).map_err(|r| invalid(msg, r)),
            Msg::UpdateParams { params } => params.validate().map_err(|e| invalid(msg, e.to_string())),
            Msg::SubmitSeedCommit { .. } | Msg::SubmitPocBatch { .. } | Msg::SubmitPocValidation { .. } => {
                if !self.participants.contains_key(&sender) {
                    return Err(TxError::NotAHost(sender));
                }
                Ok(self.check_poc_message(sender, signer, msg, self.meta.height + 1)?)
            }
            Msg::StartInference { .. } | Msg::FinishInference { .. } => {
                if !self.participants.contains_key(&sender) {
                    return Err(TxError::NotAHost(sender));
                }
                let receipt = receipt_of(msg).ok_or(TxError::NotAHost(sender))?;
                self.check_receipt(sender, &receipt, self.meta.height + 1)?;
                Ok(())
            }
        }
    }

    /// Checks a proposed block's header and sizes against this state (the state after the previous
    /// block). Individual transactions are not checked: an invalid one fails inside the block.
    pub fn validate_block(&self, block: &Block, encoded_len: usize) -> Result<(), BlockError> {
        let header = &block.header;
        let meta = &self.meta;
        let bad = |m: String| Err(BlockError::Header(m));
        if header.chain_id != meta.chain_id {
            return bad(format!("chain id {}", header.chain_id));
        }
        if header.height != meta.height + 1 {
            return bad(format!("height {} after {}", header.height, meta.height));
        }
        if header.previous_block_hash != meta.last_block_hash {
            return bad("previous block hash differs".into());
        }
        if header.previous_app_hash != meta.app_hash {
            return bad(format!(
                "previous app hash {} differs from ours {}",
                header.previous_app_hash, meta.app_hash
            ));
        }
        if header.time_ms < meta.time_ms {
            return bad(format!("time {} before previous block time {}", header.time_ms, meta.time_ms));
        }
        if header.txs_hash != Block::txs_hash(&block.txs) {
            return bad("txs hash differs".into());
        }
        let limits = &meta.params.limits;
        if block.txs.len() > limits.max_block_txs as usize || encoded_len > limits.max_block_bytes as usize {
            return Err(BlockError::Limits(format!("{} txs, {encoded_len} bytes", block.txs.len())));
        }
        Ok(())
    }

    /// Applies a decided block. `verified(hash)` tells which transactions already had their signature
    /// verified by this node's mempool; since verification is a pure function of the bytes, skipping
    /// it for those changes nothing but time.
    pub fn apply_block(
        &mut self,
        block: &Block,
        verified: &dyn Fn(&Hash) -> bool,
    ) -> Result<BlockOutcome, BlockError> {
        self.validate_block(block, block.to_bytes().len())?;
        let validators_before = self.validator_set();
        let previous_height = self.meta.height;
        let mut results = Vec::with_capacity(block.txs.len());
        for bytes in &block.txs {
            results.push(self.deliver_tx(&bytes.0, block.header.height, verified));
        }
        self.meta.height = block.header.height;
        self.meta.time_ms = block.header.time_ms;
        self.meta.last_block_hash = block.hash();
        let mut events = self.inference_end_block(self.meta.height);
        events.extend(self.poc_end_block(self.meta.height, self.meta.last_block_hash));
        events.extend(self.phase_events(previous_height));
        let mut writes = self.take_writes();
        let diff = writes.to_bytes();
        self.meta.app_hash = Hash::digest_parts(&[
            APP_HASH_DOMAIN,
            &self.meta.app_hash.0,
            &self.meta.last_block_hash.0,
            &diff,
        ]);
        writes.meta = Some(self.meta.clone());
        let validator_set_changed = self.validator_set() != validators_before;
        Ok(BlockOutcome { results, events, writes, validator_set_changed })
    }

    /// Applies one transaction of a block; see the module docs for what failure means.
    fn deliver_tx(&mut self, bytes: &[u8], height: u64, verified: &dyn Fn(&Hash) -> bool) -> TxResult {
        let hash = Hash::digest(bytes);
        let failed =
            |error: TxError| TxResult { hash, ok: false, error: Some(error.to_string()), events: Vec::new() };
        let tx = match self.authenticate(bytes, None, verified(&hash)) {
            Ok(tx) => tx,
            Err(error) => return failed(error),
        };
        let (account, signer) = (tx.body.account, tx.body.signer);
        self.accounts.update(&account, |a| a.sequence += 1);
        // The sequence bump stays whatever the messages do.
        self.commit_tx();
        let params_before = self.meta.params.clone();
        let mut events = Vec::new();
        for msg in &tx.body.messages {
            let outcome = self
                .check_message(account, &signer, msg)
                .and_then(|()| self.execute(account, &signer, msg, height));
            match outcome {
                Ok(event) => events.extend(event),
                Err(error) => {
                    self.roll_back_tx();
                    self.meta.params = params_before;
                    return failed(error);
                }
            }
        }
        self.commit_tx();
        TxResult { hash, ok: true, error: None, events }
    }

    fn execute(
        &mut self,
        sender: Address,
        signer: &AccountPublicKey,
        msg: &Msg,
        height: u64,
    ) -> Result<Option<Event>, TxError> {
        match msg {
            Msg::BankSend { to, amount } => {
                let balance = self.account(&sender).balance;
                let remaining = balance
                    .checked_sub(*amount)
                    .ok_or(TxError::InsufficientFunds { balance, needed: *amount })?;
                self.accounts.upsert(sender, |a| a.balance = remaining);
                // Read the recipient after the debit, so a transfer to oneself nets to zero. An overflow
                // error here is rolled back by the caller together with the debit.
                let received = self.account(to).balance.checked_add(*amount).ok_or(TxError::Overflow)?;
                self.accounts.upsert(*to, |a| a.balance = received);
                Ok(Some(Event::new("transfer").with("from", sender).with("to", to).with("amount", amount.0)))
            }
            Msg::RegisterHost { api_url, validator_key, operational_key } => {
                if self.participants.iter().any(|(a, p)| *a != sender && p.validator_key == *validator_key) {
                    return Err(TxError::DuplicateValidatorKey(*validator_key));
                }
                let previous = self.participants.get(&sender).cloned();
                // Not routine, so the signer is the account's own key.
                let participant = Participant {
                    api_url: api_url.clone(),
                    account_key: *signer,
                    validator_key: *validator_key,
                    operational_key: *operational_key,
                    weight: previous.as_ref().map_or(0, |p| p.weight),
                    poc_weight: previous.as_ref().map_or(0, |p| p.poc_weight),
                    next_weight: previous.as_ref().and_then(|p| p.next_weight),
                    previous_weight: previous.as_ref().map_or(0, |p| p.previous_weight),
                    owed: previous.as_ref().map_or(Amount::ZERO, |p| p.owed),
                    inferences: previous.as_ref().map_or(0, |p| p.inferences),
                    missed: previous.as_ref().map_or(0, |p| p.missed),
                    joined_height: previous.as_ref().map_or(height, |p| p.joined_height),
                };
                self.participants.insert(sender, participant);
                Ok(Some(
                    Event::new("host_registered")
                        .with("address", sender)
                        .with("api_url", api_url)
                        .with("validator_key", validator_key),
                ))
            }
            Msg::RegisterDeveloper => {
                if self.developers.contains_key(&sender) {
                    return Ok(None);
                }
                self.developers.insert(sender, Developer { registered_height: height });
                Ok(Some(Event::new("developer_registered").with("address", sender)))
            }
            Msg::UpdateParams { params } => {
                if sender != self.meta.params.authority {
                    return Err(TxError::NotAuthority);
                }
                self.meta.params = params.clone();
                Ok(Some(Event::new("params_updated").with("authority", params.authority)))
            }
            Msg::UpdateHostUrl { api_url } => {
                if !self.participants.update(&sender, |p| p.api_url = api_url.clone()) {
                    return Err(TxError::NotAHost(sender));
                }
                Ok(Some(Event::new("host_url_updated").with("address", sender).with("api_url", api_url)))
            }
            Msg::SubmitSeedCommit { .. } | Msg::SubmitPocBatch { .. } | Msg::SubmitPocValidation { .. } => {
                Ok(self.execute_poc_message(sender, signer, msg)?)
            }
            Msg::StartInference { .. } | Msg::FinishInference { .. } => {
                let receipt = receipt_of(msg).ok_or(TxError::NotAHost(sender))?;
                let id = self.check_receipt(sender, &receipt, height)?;
                Ok(Some(self.execute_receipt(sender, &receipt, id, height)?))
            }
        }
    }

    /// Events for the phase or effective epoch changing between the previous height and this one.
    fn phase_events(&self, previous_height: u64) -> Vec<Event> {
        let epoch = &self.meta.params.epoch;
        let height = self.meta.height;
        let mut events = Vec::new();
        let phase: EpochPhase = epoch.phase_at(height);
        if height == 1
            || phase != epoch.phase_at(previous_height)
            || epoch.poc_epoch_at(height) != epoch.poc_epoch_at(previous_height)
        {
            events.push(
                Event::new("phase_changed")
                    .with("epoch", epoch.poc_epoch_at(height))
                    .with("phase", phase.name())
                    .with("height", height),
            );
        }
        let effective = epoch.effective_epoch_at(height);
        if effective != epoch.effective_epoch_at(previous_height) {
            events.push(Event::new("epoch_effective").with("epoch", effective).with("height", height));
        }
        events
    }

    /// Builds the header for a block on top of this state.
    pub fn next_header(
        &self,
        proposer: ValidatorPublicKey,
        time_ms: u64,
        txs: &[gonka_primitives::codec::Bytes],
    ) -> Header {
        Header {
            chain_id: self.meta.chain_id.clone(),
            height: self.meta.height + 1,
            time_ms: time_ms.max(self.meta.time_ms),
            proposer,
            previous_block_hash: self.meta.last_block_hash,
            previous_app_hash: self.meta.app_hash,
            txs_hash: Block::txs_hash(txs),
        }
    }

    /// Applies stored writes on top of this state (used by the store to rebuild state on start).
    pub fn apply_writes(&mut self, writes: StateWrites) {
        if let Some(meta) = writes.meta {
            self.meta = meta;
        }
        self.accounts.apply_writes(writes.accounts);
        self.participants.apply_writes(writes.participants);
        self.developers.apply_writes(writes.developers);
        self.poc_claims.apply_writes(writes.poc_claims);
        self.poc_nonces.apply_writes(writes.poc_nonces);
        self.poc_votes.apply_writes(writes.poc_votes);
        self.inferences.apply_writes(writes.inferences);
        self.inference_deadlines.apply_writes(writes.inference_deadlines);
        self.inference_prunes.apply_writes(writes.inference_prunes);
    }
}

/// The receipt a Start or Finish message carries.
fn receipt_of(msg: &Msg) -> Option<Receipt<'_>> {
    match msg {
        Msg::StartInference { request, executor, prompt_tokens } => {
            Some(Receipt::Start { request, executor: *executor, prompt_tokens: *prompt_tokens })
        }
        Msg::FinishInference { request, prompt_tokens, completion_tokens, response_hash } => {
            Some(Receipt::Finish {
                request,
                prompt_tokens: *prompt_tokens,
                completion_tokens: *completion_tokens,
                response_hash: *response_hash,
            })
        }
        _ => None,
    }
}

/// A host URL: `http://` or `https://`, printable ASCII, within the length limit.
fn check_url(url: &str, max_bytes: u32) -> Result<(), String> {
    if url.len() > max_bytes as usize {
        return Err(format!("url longer than {max_bytes} bytes"));
    }
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && url.bytes().all(|b| b.is_ascii_graphic()) => Ok(()),
        _ => Err(format!("url must be http(s)://host[:port][/path] in printable ASCII, got {url:?}")),
    }
}
