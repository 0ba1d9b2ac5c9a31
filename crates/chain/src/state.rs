//! The replicated state and the chain core: authentication, routing each message to its module, the
//! end-block hooks in registration order, the block's writes and the app hash
//! (`docs/spec/chain.md` §2–§3, §8).
//!
//! What an invalid transaction does in a block:
//! - If it cannot be authenticated (malformed, wrong chain id, bad signature, unauthorized signer,
//!   unknown account, wrong sequence) it is recorded as failed and changes nothing.
//! - If its account cannot pay its fee (an ordinary transaction's, [`crate::params::Fees`]) it is
//!   recorded as failed and changes nothing either.
//! - If it is authenticated but a message fails (insufficient funds, bad URL...), the account's
//!   sequence still advances — so the same signed bytes can never be retried — its fee is still burned,
//!   and every effect of its messages is rolled back.
//! - If a message breaks an invariant (a bug), the block cannot be applied: [`BlockError::Invariant`]
//!   stops the node.
//!
//! # Modules
//!
//! Every mechanism is one module registered below with one line. Registration order is the order of
//! the end-block hooks; a module's id (its `Module::ID`) is the wire tag of its messages and the
//! prefix of its tables, and never changes.

use std::collections::BTreeMap;

use gonka_primitives::codec::{Bytes, Decode, DecodeError, Encode, Reader, decode_exact};
use gonka_primitives::{Address, Amount, Hash, ValidatorPublicKey, codec_struct};
use serde::Serialize;

use crate::block::{Block, Header};
use crate::event::Event;
use crate::genesis::Genesis;
use crate::module::{BlockContext, InvariantViolation, Message, Module, TxContext};
use crate::params::{Params, ParamsError};
use crate::table::{EncodedRows, TableId, TableRows, Tables};
use crate::tx::{Tx, TxError};

const APP_HASH_DOMAIN: &[u8] = b"gonka/app/v2\0";
const GENESIS_HASH_DOMAIN: &[u8] = b"gonka/genesis/v2\0";

/// Declares the chain's modules, one line each (`Variant => field: Type`), and derives from that list
/// the [`State`] struct, the [`Msg`] enum and its codec, message routing, the end-block order, genesis,
/// invariants and the table fan-out.
macro_rules! chain_modules {
    ($( $(#[$doc:meta])* $variant:ident => $field:ident : $module:ty ),* $(,)?) => {
        /// The whole chain state: chain-level scalars and one state per module.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct State {
            /// Chain-level scalars.
            pub meta: Meta,
            $( $(#[$doc])* pub $field: $module, )*
        }

        /// One state change a transaction asks for, routed to the module that owns it. In JSON it is
        /// the module's message itself: `{"type": "bank_send", …}`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
        #[serde(untagged)]
        // The largest variant is an inference receipt, the commonest message there is: boxing it
        // would add an allocation to most messages and save nothing. Rare large ones are boxed.
        #[allow(clippy::large_enum_variant)]
        pub enum Msg {
            $( $(#[$doc])* $variant(<$module as Module>::Msg), )*
        }

        $(
            impl From<<$module as Module>::Msg> for Msg {
                fn from(msg: <$module as Module>::Msg) -> Msg {
                    Msg::$variant(msg)
                }
            }
        )*

        impl Encode for Msg {
            fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $( Msg::$variant(msg) => {
                        out.push(<$module as Module>::ID);
                        msg.encode(out);
                    } )*
                }
            }
        }

        impl Decode for Msg {
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let tag = u8::decode(reader)?;
                $( if tag == <$module as Module>::ID {
                    return Ok(Msg::$variant(Decode::decode(reader)?));
                } )*
                Err(DecodeError::InvalidTag { what: "module", tag })
            }
        }

        impl Msg {
            /// Stable snake_case name of the message type.
            pub fn name(&self) -> &'static str {
                match self { $( Msg::$variant(msg) => msg.name(), )* }
            }

            /// Whether a host's operational key may sign this message for the host account.
            pub fn is_routine(&self) -> bool {
                match self { $( Msg::$variant(msg) => msg.is_routine(), )* }
            }

            /// The module the message belongs to.
            pub fn module(&self) -> &'static str {
                match self { $( Msg::$variant(_) => <$module as Module>::NAME, )* }
            }
        }

        impl State {
            /// A state with no rows at all: what the store fills while loading.
            pub fn empty(meta: Meta) -> State {
                State { meta, $( $field: <$module>::default(), )* }
            }

            fn init_modules(&mut self, genesis: &Genesis) -> Result<(), GenesisError> {
                $( <$module as Module>::init_genesis(self, genesis)?; )*
                Ok(())
            }

            fn check_message(&self, tx: &TxContext, msg: &Msg) -> Result<(), TxError> {
                match msg { $( Msg::$variant(msg) => <$module as Module>::check(self, tx, msg).map_err(Into::into), )* }
            }

            fn message_debits(&self, tx: &TxContext, msg: &Msg) -> Vec<(Address, Amount)> {
                match msg { $( Msg::$variant(msg) => <$module as Module>::debits(self, tx, msg), )* }
            }

            fn apply_message(&mut self, tx: &TxContext, msg: &Msg) -> Result<Vec<Event>, TxError> {
                match msg { $( Msg::$variant(msg) => <$module as Module>::apply(self, tx, msg).map_err(Into::into), )* }
            }

            fn end_block(&mut self, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
                let mut events = Vec::new();
                $( events.extend(<$module as Module>::end_block(self, block)?); )*
                Ok(events)
            }

            /// Every rule of every module, from scratch (O(state)).
            pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
                $( <$module as Module>::check_invariants(self)?; )*
                Ok(())
            }

            /// Visits every table of every module with its id and name.
            pub fn visit_tables(&self, visit: &mut dyn FnMut(TableId, &'static str, &dyn TableRows)) {
                $(
                    let module = <$module as Module>::ID;
                    self.$field.visit(&mut |table, name, rows| visit(TableId { module, table }, name, rows));
                )*
            }

            /// Visits every table of every module with its id and name, mutably.
            pub fn visit_tables_mut(&mut self, visit: &mut dyn FnMut(TableId, &'static str, &mut dyn TableRows)) {
                $(
                    let module = <$module as Module>::ID;
                    self.$field.visit_mut(&mut |table, name, rows| visit(TableId { module, table }, name, rows));
                )*
            }

            /// The registered modules: (id, name), in registration order.
            pub fn modules() -> Vec<(u8, &'static str)> {
                vec![ $( (<$module as Module>::ID, <$module as Module>::NAME), )* ]
            }
        }
    };
}

chain_modules! {
    /// The parameters and the authority that may change them.
    Authority => authority: crate::authority::Authority,
    /// Balances, holds and the supply.
    Bank => bank: crate::bank::Bank,
    /// Registered hosts and their voting power.
    Hosts => hosts: crate::hosts::Hosts,
    /// Receipts, escrow, expiry and developers.
    Inference => inference: crate::inference::Inferences,
    /// Proof of Compute stages, claims, verdicts and weights.
    Poc => poc: crate::poc::Poc,
    /// Host collateral and its unbonding.
    Collateral => collateral: crate::collateral::Collateral,
    /// Epoch phases.
    Epoch => epoch: crate::epoch::Epoch,
    /// Answer validation: epoch rosters, verdicts, votes, fee settlement and host standing.
    Validation => validation: crate::validation::Validation,
    /// Epoch settlement, the subsidy, claims and vesting.
    Rewards => rewards: crate::rewards::Rewards,
    /// Per-model prices that follow load.
    Pricing => pricing: crate::pricing::Pricing,
}

/// The chain-level scalars, persisted as one record (the modules' scalars are their own tables).
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
}
codec_struct!(Meta { chain_id, height, time_ms, last_block_hash, app_hash });

/// Every row a block changed (None = removed), by table, encoded: what the store persists and what the
/// app hash commits to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateWrites {
    /// Changed rows of each table that changed.
    pub tables: BTreeMap<TableId, EncodedRows>,
}
codec_struct!(StateWrites { tables });

impl StateWrites {
    /// Number of rows written.
    pub fn row_count(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }
}

/// The result of one transaction in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// Block-level events (phase changes, stage transitions, expiries).
    pub events: Vec<Event>,
    /// Changed rows, for the store.
    pub writes: StateWrites,
    /// The chain-level scalars after the block.
    pub meta: Meta,
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
    /// What its messages would take from spendable balances, summed per account
    /// ([`crate::module::Module::debits`]).
    pub debits: BTreeMap<Address, Amount>,
    /// Whether it is a staked host's duty ([`State::is_duty`]): proposers give such transactions room
    /// first and mempools make room for them (`docs/spec/chain.md` §6, issue 12 item 7).
    pub duty: bool,
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
    /// Applying it broke an invariant: the state is wrong and the node must stop.
    #[error(transparent)]
    Invariant(#[from] InvariantViolation),
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

/// Why stored rows cannot be loaded into a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The store holds a table no module declares.
    #[error("the store holds rows of unknown table {0:?}")]
    UnknownTable(TableId),
    /// A stored row does not decode.
    #[error("row of table {table} does not decode: {error}")]
    Corrupt {
        /// The table's name.
        table: &'static str,
        /// Why.
        error: DecodeError,
    },
}

impl State {
    /// The state at height 0.
    pub fn from_genesis(genesis: &Genesis) -> Result<State, GenesisError> {
        if genesis.chain_id.is_empty() || genesis.chain_id.len() > 64 {
            return Err(GenesisError::Invalid("chain_id must be 1 to 64 bytes".into()));
        }
        let mut state = State::empty(Meta {
            chain_id: genesis.chain_id.clone(),
            height: 0,
            time_ms: genesis.genesis_time_ms,
            last_block_hash: Hash::ZERO,
            app_hash: Hash::ZERO,
        });
        state.init_modules(genesis)?;
        state.check_invariants().map_err(|v| GenesisError::Invalid(v.to_string()))?;
        // Genesis rows are committed by the genesis hash below, not tracked as a block's writes.
        state.take_writes();
        state.meta.app_hash = Hash::digest_parts(&[
            GENESIS_HASH_DOMAIN,
            &state.meta.to_bytes(),
            &state.full_writes().to_bytes(),
        ]);
        Ok(state)
    }

    /// Every row as writes: what genesis commits to and what a fresh store is loaded with.
    pub fn full_writes(&self) -> StateWrites {
        let mut tables = BTreeMap::new();
        self.visit_tables(&mut |id, _, rows| {
            let encoded = rows.encoded_rows();
            if !encoded.is_empty() {
                tables.insert(id, encoded);
            }
        });
        StateWrites { tables }
    }

    /// Every row written since the last call.
    fn take_writes(&mut self) -> StateWrites {
        let mut tables = BTreeMap::new();
        self.visit_tables_mut(&mut |id, _, rows| {
            let encoded = rows.take_encoded_writes();
            if !encoded.is_empty() {
                tables.insert(id, encoded);
            }
        });
        StateWrites { tables }
    }

    /// Loads one stored row into the table `id` (the store rebuilding the state on start).
    pub fn load_row(&mut self, id: TableId, key: &[u8], value: &[u8]) -> Result<(), LoadError> {
        let mut outcome = Err(LoadError::UnknownTable(id));
        self.visit_tables_mut(&mut |table, name, rows| {
            if table == id {
                outcome =
                    rows.load_encoded(key, value).map_err(|error| LoadError::Corrupt { table: name, error });
            }
        });
        outcome
    }

    /// Ends a transaction's undo scope in every table.
    fn commit_tx(&mut self) {
        self.visit_tables_mut(&mut |_, _, rows| rows.commit_tx());
    }

    /// Undoes a failed transaction's writes in every table.
    fn roll_back_tx(&mut self) {
        self.visit_tables_mut(&mut |_, _, rows| rows.roll_back_tx());
    }

    /// Height of the last applied block.
    pub fn height(&self) -> u64 {
        self.meta.height
    }

    /// The parameters in force.
    pub fn params(&self) -> &Params {
        self.authority.params()
    }

    /// The account at `address`, or an empty one.
    pub fn account(&self, address: &Address) -> crate::bank::Account {
        self.bank.account(address)
    }

    /// Consensus validators: hosts with positive weight, sorted by key.
    pub fn validator_set(&self) -> Vec<(ValidatorPublicKey, u64)> {
        self.hosts.validator_set()
    }

    /// Whether `bytes` may enter the mempool. `expected_sequence` is the sequence the mempool expects
    /// next for the account (its pending transactions counted); None means the account's state
    /// sequence. Cheap checks run first, the signature last.
    pub fn check_tx(&self, bytes: &[u8], expected_sequence: Option<u64>) -> Result<CheckedTx, TxError> {
        self.check_tx_with(bytes, expected_sequence, false)
    }

    /// [`State::check_tx`] for a transaction whose signature this node already verified (the mempool
    /// checking its waiting transactions again after a block): everything but the signature.
    pub fn recheck_tx(&self, bytes: &[u8], expected_sequence: Option<u64>) -> Result<CheckedTx, TxError> {
        self.check_tx_with(bytes, expected_sequence, true)
    }

    fn check_tx_with(
        &self,
        bytes: &[u8],
        expected: Option<u64>,
        verified: bool,
    ) -> Result<CheckedTx, TxError> {
        let tx = self.authenticate(bytes, expected, verified)?;
        let context =
            TxContext { sender: tx.body.account, signer: tx.body.signer, height: self.meta.height + 1 };
        let mut debits: BTreeMap<Address, Amount> = BTreeMap::new();
        for msg in &tx.body.messages {
            self.check_message(&context, msg)?;
            for (account, amount) in self.message_debits(&context, msg) {
                let total = debits.entry(account).or_insert(Amount::ZERO);
                *total = Amount(total.0.saturating_add(amount.0));
            }
        }
        let duty = self.is_duty(&tx);
        let fee = self.fee(&tx, duty);
        if fee > Amount::ZERO {
            let total = debits.entry(tx.body.account).or_insert(Amount::ZERO);
            *total = Amount(total.0.saturating_add(fee.0));
            let balance = self.bank.balance(&tx.body.account);
            if balance < fee {
                return Err(TxError::CannotPayFee { account: tx.body.account, fee, balance });
            }
        }
        Ok(CheckedTx { hash: Hash::digest(bytes), tx, debits, duty })
    }

    /// What `tx` pays to be applied (`docs/spec/economy.md` §8): nothing for a staked host's duty,
    /// otherwise the per-message fee, burned.
    pub fn fee(&self, tx: &Tx, duty: bool) -> Amount {
        if duty { Amount::ZERO } else { self.params().fees.for_messages(tx.body.messages.len()) }
    }

    /// Whether `tx` is a host's duty: only the messages whose window or deadline the host's weight
    /// and fees depend on — PoC commitments, batches and votes, inference Start and Finish, answer
    /// validations and validation votes, reward claims, double-vote evidence — for a
    /// [staked](State::is_staked_host) host
    /// (`docs/spec/chain.md` §6). URL updates and everything else wait in the ordinary lane and pay
    /// the fee; duties are free (`docs/spec/economy.md` §8).
    pub fn is_duty(&self, tx: &Tx) -> bool {
        let timed = |msg: &Msg| {
            matches!(
                msg,
                Msg::Poc(_)
                    | Msg::Validation(_)
                    | Msg::Rewards(_)
                    | Msg::Collateral(crate::CollateralMsg::ReportDoubleVote { .. })
                    | Msg::Inference(crate::InferenceMsg::Start { .. } | crate::InferenceMsg::Finish { .. })
            )
        };
        self.is_staked_host(&tx.body.account) && tx.body.messages.iter().all(timed)
    }

    /// Whether `account` is a host with something at stake: voting power now, or at least the PoC
    /// entry collateral locked. The stake is what makes the duty lane unfloodable: a fresh key or a
    /// free registration gets none.
    pub fn is_staked_host(&self, account: &Address) -> bool {
        self.hosts.participant(account).is_some_and(|host| {
            host.weight > 0
                || crate::collateral::collateral_of(self, account) >= self.params().poc.entry_collateral
        })
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
        let limits = &self.params().limits;
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
        // A claim's duty check is the costliest message there is; alone in its transaction it runs at
        // most once per host and epoch (a later message failing would roll back the forfeit it records,
        // and the claim could be sent again: `docs/spec/economy.md` §4).
        if count > 1 && body.messages.iter().any(|m| matches!(m, Msg::Rewards(_))) {
            return Err(TxError::ClaimNotAlone);
        }
        if !self.bank.has_account(&body.account) {
            return Err(TxError::UnknownAccount(body.account));
        }
        let expected = expected_sequence.unwrap_or(self.bank.account(&body.account).sequence);
        if body.sequence != expected {
            return Err(TxError::WrongSequence { account: body.account, expected, got: body.sequence });
        }
        let signer = body.signer.address();
        if signer != body.account {
            let unauthorized = |detail| TxError::Unauthorized { signer, account: body.account, detail };
            let participant = self.hosts.participant(&body.account).ok_or(unauthorized(""))?;
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
        let limits = &self.params().limits;
        if block.txs.len() > limits.max_block_txs as usize || encoded_len > limits.max_block_bytes as usize {
            return Err(BlockError::Limits(format!("{} txs, {encoded_len} bytes", block.txs.len())));
        }
        Ok(())
    }

    /// Applies a decided block. `verified(hash)` tells which transactions already had their signature
    /// verified by this node's mempool; since verification is a pure function of the bytes, skipping
    /// it for those changes nothing but time.
    ///
    /// Order (`docs/spec/chain.md` §3): the block's transactions, then every module's end-block hook
    /// in registration order, then the supply check, then the writes and the app hash.
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
            results.push(self.deliver_tx(&bytes.0, block.header.height, verified)?);
        }
        self.meta.height = block.header.height;
        self.meta.time_ms = block.header.time_ms;
        self.meta.last_block_hash = block.hash();
        let context = BlockContext {
            height: self.meta.height,
            previous_height,
            time_ms: self.meta.time_ms,
            block_hash: self.meta.last_block_hash,
        };
        let events = self.end_block(&context)?;
        self.bank.check_supply()?;
        let writes = self.take_writes();
        self.meta.app_hash = Hash::digest_parts(&[
            APP_HASH_DOMAIN,
            &self.meta.app_hash.0,
            &self.meta.last_block_hash.0,
            &writes.to_bytes(),
        ]);
        let validator_set_changed = self.validator_set() != validators_before;
        Ok(BlockOutcome { results, events, writes, meta: self.meta.clone(), validator_set_changed })
    }

    /// Applies one transaction of a block; see the module docs for what failure means.
    fn deliver_tx(
        &mut self,
        bytes: &[u8],
        height: u64,
        verified: &dyn Fn(&Hash) -> bool,
    ) -> Result<TxResult, InvariantViolation> {
        let hash = Hash::digest(bytes);
        let failed =
            |error: TxError| TxResult { hash, ok: false, error: Some(error.to_string()), events: Vec::new() };
        let tx = match self.authenticate(bytes, None, verified(&hash)) {
            Ok(tx) => tx,
            Err(error) => return Ok(failed(error)),
        };
        let context = TxContext { sender: tx.body.account, signer: tx.body.signer, height };
        let fee = self.fee(&tx, self.is_duty(&tx));
        let balance = self.bank.balance(&context.sender);
        if balance < fee {
            return Ok(failed(TxError::CannotPayFee { account: context.sender, fee, balance }));
        }
        self.bank.bump_sequence(&context.sender);
        let mut events = Vec::new();
        if fee > Amount::ZERO {
            self.bank
                .burn(context.sender, fee)
                .map_err(|e| InvariantViolation::new("fee_paid", e.to_string()))?;
            crate::rewards::record_fee(self, fee);
            events.push(Event::new("fee_burned").with("account", context.sender).with("amount", fee.0));
        }
        // The sequence bump and the fee stay whatever the messages do.
        self.commit_tx();
        for msg in &tx.body.messages {
            match self.check_message(&context, msg).and_then(|()| self.apply_message(&context, msg)) {
                Ok(effects) => events.extend(effects),
                Err(error) => {
                    self.roll_back_tx();
                    if let Some(violation) = error.invariant() {
                        return Err(violation.clone());
                    }
                    return Ok(failed(error));
                }
            }
        }
        self.commit_tx();
        Ok(TxResult { hash, ok: true, error: None, events })
    }

    /// Builds the header for a block on top of this state.
    pub fn next_header(&self, proposer: ValidatorPublicKey, time_ms: u64, txs: &[Bytes]) -> Header {
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
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn module_ids_and_table_ids_are_unique() {
        let modules = State::modules();
        let ids: BTreeSet<u8> = modules.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), modules.len(), "{modules:?}");
        let state = State::empty(Meta {
            chain_id: "t".into(),
            height: 0,
            time_ms: 0,
            last_block_hash: Hash::ZERO,
            app_hash: Hash::ZERO,
        });
        let mut tables = Vec::new();
        state.visit_tables(&mut |id, name, _| tables.push((id, name)));
        let unique: BTreeSet<TableId> = tables.iter().map(|(id, _)| *id).collect();
        assert_eq!(unique.len(), tables.len(), "{tables:?}");
        assert!(tables.iter().all(|(id, _)| ids.contains(&id.module)));
    }
}
