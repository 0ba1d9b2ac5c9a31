//! Persist the chain in redb: one ACID transaction per block, so a crash at any moment leaves either
//! the whole block (block, certificate, results, tx index and state writes) or none of it.
//!
//! Tables:
//! - `blocks`, `certificates`, `results`: by height, the encoded block, its commit certificate (opaque
//!   bytes from consensus) and its [`BlockResults`];
//! - `tx_index`: tx hash → (height, index in block);
//! - `accounts`, `participants`, `developers`: the state maps, one row per entry, keyed by address;
//! - `poc_claims`, `poc_nonces`, `poc_votes`, `inferences`, `inference_deadlines`, `inference_prunes`:
//!   the PoC and inference maps, keyed by their encoded keys (big-endian
//!   integers, so byte order is key order);
//! - `meta`: the state's scalar record ([`gonka_chain::state::Meta`]) under the key `meta`.
//!
//! On start the node rebuilds the in-memory [`State`] from the state tables ([`Store::load_state`]);
//! the scalar record carries the height and app hash, so a restart gives the same app hash as before.
#![deny(missing_docs)]

use std::path::Path;

use gonka_chain::state::Meta;
use std::collections::BTreeMap;

use gonka_chain::{BlockOutcome, Event, State, StateWrites, Table, TxResult};
use gonka_primitives::codec::{DecodeError, Encode, decode_exact};
use gonka_primitives::{Address, Hash, codec_struct};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const CERTIFICATES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("certificates");
const RESULTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("results");
const TX_INDEX: TableDefinition<'_, &[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
const ACCOUNTS: TableDefinition<'_, &[u8; 20], &[u8]> = TableDefinition::new("accounts");
const PARTICIPANTS: TableDefinition<'_, &[u8; 20], &[u8]> = TableDefinition::new("participants");
const DEVELOPERS: TableDefinition<'_, &[u8; 20], &[u8]> = TableDefinition::new("developers");
const POC_CLAIMS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("poc_claims");
const POC_NONCES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("poc_nonces");
const POC_VOTES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("poc_votes");
const INFERENCES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("inferences");
const INFERENCE_DEADLINES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("inference_deadlines");
const INFERENCE_PRUNES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("inference_prunes");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// Largest record the store will decode (a block is bounded by params far below this).
const MAX_RECORD_BYTES: usize = 256 << 20;

/// What went wrong in the store. Any of these on a committed record means local corruption: the node
/// stops loudly rather than running on a state it cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, another process holding the file).
    #[error("database: {0}")]
    Database(String),
    /// A stored record does not decode.
    #[error("corrupt record in {table}: {error}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Decode error.
        error: DecodeError,
    },
    /// The state tables are missing their scalar record (half-initialized store).
    #[error("store has state rows but no meta record")]
    MissingMeta,
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(error: $t) -> StoreError {
                StoreError::Database(error.to_string())
            }
        }
    )*};
}
db_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Per-block results: each tx's result and the block-level events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockResults {
    /// Per-transaction results, in block order.
    pub txs: Vec<TxResult>,
    /// Block-level events.
    pub events: Vec<Event>,
    /// App hash after this block.
    pub app_hash: Hash,
}
codec_struct!(BlockResults { txs, events, app_hash });

/// An encoded block and its encoded commit certificate.
pub type StoredBlock = (Vec<u8>, Vec<u8>);

/// The redb-backed store of one node.
pub struct Store {
    db: Database,
}

fn decode<T: gonka_primitives::codec::Decode>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_exact(bytes, MAX_RECORD_BYTES).map_err(|error| StoreError::Corrupt { table, error })
}

impl Store {
    /// Opens (or creates) the store at `path`.
    /// Every table is created here, so readers never meet a missing table on a fresh store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(BLOCKS)?;
        txn.open_table(CERTIFICATES)?;
        txn.open_table(RESULTS)?;
        txn.open_table(TX_INDEX)?;
        txn.open_table(ACCOUNTS)?;
        txn.open_table(PARTICIPANTS)?;
        txn.open_table(DEVELOPERS)?;
        txn.open_table(POC_CLAIMS)?;
        txn.open_table(POC_NONCES)?;
        txn.open_table(POC_VOTES)?;
        txn.open_table(INFERENCES)?;
        txn.open_table(INFERENCE_DEADLINES)?;
        txn.open_table(INFERENCE_PRUNES)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Store { db })
    }

    /// Writes the genesis state into an empty store.
    pub fn init_genesis(&self, state: &State) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        write_state(&txn, &state.full_writes())?;
        txn.commit()?;
        Ok(())
    }

    /// The stored state, or None for an empty store.
    pub fn load_state(&self) -> Result<Option<State>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(META)?.get("meta")? {
            Some(bytes) => decode::<Meta>("meta", bytes.value())?,
            None => return Ok(None),
        };
        fn by_address<V: gonka_primitives::codec::Decode>(
            txn: &redb::ReadTransaction,
            table: TableDefinition<'_, &[u8; 20], &[u8]>,
            name: &'static str,
        ) -> Result<Table<Address, V>, StoreError> {
            let mut rows = BTreeMap::new();
            for row in txn.open_table(table)?.iter()? {
                let (key, value) = row?;
                rows.insert(Address(*key.value()), decode(name, value.value())?);
            }
            Ok(Table::from(rows))
        }
        fn by_encoded_key<K: gonka_primitives::codec::Decode + Ord, V: gonka_primitives::codec::Decode>(
            txn: &redb::ReadTransaction,
            table: TableDefinition<'_, &[u8], &[u8]>,
            name: &'static str,
        ) -> Result<Table<K, V>, StoreError> {
            let mut rows = BTreeMap::new();
            for row in txn.open_table(table)?.iter()? {
                let (key, value) = row?;
                rows.insert(decode(name, key.value())?, decode(name, value.value())?);
            }
            Ok(Table::from(rows))
        }
        Ok(Some(State {
            meta,
            accounts: by_address(&txn, ACCOUNTS, "accounts")?,
            participants: by_address(&txn, PARTICIPANTS, "participants")?,
            developers: by_address(&txn, DEVELOPERS, "developers")?,
            poc_claims: by_encoded_key(&txn, POC_CLAIMS, "poc_claims")?,
            poc_nonces: by_encoded_key(&txn, POC_NONCES, "poc_nonces")?,
            poc_votes: by_encoded_key(&txn, POC_VOTES, "poc_votes")?,
            inferences: by_encoded_key(&txn, INFERENCES, "inferences")?,
            inference_deadlines: by_encoded_key(&txn, INFERENCE_DEADLINES, "inference_deadlines")?,
            inference_prunes: by_encoded_key(&txn, INFERENCE_PRUNES, "inference_prunes")?,
        }))
    }

    /// Durably commits one decided block with everything it produced, in a single transaction.
    pub fn commit_block(
        &self,
        height: u64,
        block_bytes: &[u8],
        certificate: &[u8],
        outcome: &BlockOutcome,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(BLOCKS)?.insert(height, block_bytes)?;
            txn.open_table(CERTIFICATES)?.insert(height, certificate)?;
            let app_hash = outcome.writes.meta.as_ref().map_or(Hash::ZERO, |m| m.app_hash);
            let results =
                BlockResults { txs: outcome.results.clone(), events: outcome.events.clone(), app_hash };
            txn.open_table(RESULTS)?.insert(height, results.to_bytes().as_slice())?;
            let mut index = txn.open_table(TX_INDEX)?;
            for (position, result) in outcome.results.iter().enumerate() {
                // The first inclusion wins: a byte-identical replay later fails and is not indexed.
                if index.get(&result.hash.0)?.is_none() {
                    index.insert(&result.hash.0, (height, position as u32))?;
                }
            }
        }
        write_state(&txn, &outcome.writes)?;
        txn.commit()?;
        Ok(())
    }

    /// The encoded block and certificate at `height`.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(block) = txn.open_table(BLOCKS)?.get(height)? else { return Ok(None) };
        let certificate =
            txn.open_table(CERTIFICATES)?.get(height)?.map(|c| c.value().to_vec()).unwrap_or_default();
        Ok(Some((block.value().to_vec(), certificate)))
    }

    /// The results of the block at `height`.
    pub fn results(&self, height: u64) -> Result<Option<BlockResults>, StoreError> {
        let txn = self.db.begin_read()?;
        let results = txn.open_table(RESULTS)?.get(height)?;
        results.map(|bytes| decode("results", bytes.value())).transpose()
    }

    /// Where a transaction was included: (height, index in block).
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<(u64, u32)>, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(TX_INDEX)?.get(&hash.0)?.map(|v| v.value()))
    }

    /// Number of stored blocks.
    pub fn block_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(BLOCKS)?.len()?)
    }
}

fn write_state(txn: &redb::WriteTransaction, writes: &StateWrites) -> Result<(), StoreError> {
    fn apply<V: Encode>(
        txn: &redb::WriteTransaction,
        table: TableDefinition<'_, &[u8; 20], &[u8]>,
        rows: &BTreeMap<Address, Option<V>>,
    ) -> Result<(), StoreError> {
        let mut table = txn.open_table(table)?;
        for (address, value) in rows {
            match value {
                Some(value) => table.insert(&address.0, value.to_bytes().as_slice())?,
                None => table.remove(&address.0)?,
            };
        }
        Ok(())
    }
    fn apply_encoded<K: Encode, V: Encode>(
        txn: &redb::WriteTransaction,
        table: TableDefinition<'_, &[u8], &[u8]>,
        rows: &BTreeMap<K, Option<V>>,
    ) -> Result<(), StoreError> {
        let mut table = txn.open_table(table)?;
        for (key, value) in rows {
            let key = key.to_bytes();
            match value {
                Some(value) => table.insert(key.as_slice(), value.to_bytes().as_slice())?,
                None => table.remove(key.as_slice())?,
            };
        }
        Ok(())
    }
    apply(txn, ACCOUNTS, &writes.accounts)?;
    apply(txn, PARTICIPANTS, &writes.participants)?;
    apply(txn, DEVELOPERS, &writes.developers)?;
    apply_encoded(txn, POC_CLAIMS, &writes.poc_claims)?;
    apply_encoded(txn, POC_NONCES, &writes.poc_nonces)?;
    apply_encoded(txn, POC_VOTES, &writes.poc_votes)?;
    apply_encoded(txn, INFERENCES, &writes.inferences)?;
    apply_encoded(txn, INFERENCE_DEADLINES, &writes.inference_deadlines)?;
    apply_encoded(txn, INFERENCE_PRUNES, &writes.inference_prunes)?;
    if let Some(meta) = &writes.meta {
        txn.open_table(META)?.insert("meta", meta.to_bytes().as_slice())?;
    }
    Ok(())
}
