//! Persist the chain in redb: one ACID transaction per block, so a crash at any moment leaves either
//! the whole block (block, certificate, results, tx index and state writes) or none of it.
//!
//! Tables:
//! - `blocks`, `certificates`, `results`: by height, the encoded block, its commit certificate (opaque
//!   bytes from consensus) and its [`BlockResults`];
//! - `tx_index`: tx hash → (height, index in block);
//! - `state`: every row of every module's tables, keyed by `module id ‖ table id ‖ encoded key`. The
//!   store knows no table by name: the chain's table registry ([`State::visit_tables`]) says which
//!   tables exist, so a new table needs no change here;
//! - `meta`: the chain-level scalar record ([`gonka_chain::Meta`]) under the key `meta`.
//!
//! On start the node rebuilds the in-memory [`State`] from the `state` rows ([`Store::load_state`]) and
//! checks every invariant of the result before using it; the scalar record carries the height and app
//! hash, so a restart gives the same app hash as before. [`Store::in_memory`] is the same store on a
//! memory backend: the simulator's disk, which survives a simulated crash.
#![deny(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use gonka_chain::{BlockOutcome, Event, Meta, State, StateWrites, TableId, TxResult};
use gonka_primitives::codec::{DecodeError, Encode, decode_exact};
use gonka_primitives::{Hash, codec_struct};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const CERTIFICATES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("certificates");
const RESULTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("results");
const TX_INDEX: TableDefinition<'_, &[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
const STATE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state");
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
    /// The stored rows do not form a valid state (unknown table, broken invariant).
    #[error("stored state is invalid: {0}")]
    InvalidState(String),
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

/// The redb-backed store of one node. Clones share the same database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

fn decode<T: gonka_primitives::codec::Decode>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_exact(bytes, MAX_RECORD_BYTES).map_err(|error| StoreError::Corrupt { table, error })
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::create_tables(Database::create(path)?)
    }

    /// A store in memory: what the simulator gives each node as its disk.
    pub fn in_memory() -> Result<Store, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Store::create_tables(db)
    }

    /// A store over any redb storage backend: how tests give a node a disk that fails on demand.
    pub fn with_backend(backend: impl redb::StorageBackend) -> Result<Store, StoreError> {
        Store::create_tables(Database::builder().create_with_backend(backend)?)
    }

    /// Every table is created here, so readers never meet a missing table on a fresh store.
    fn create_tables(db: Database) -> Result<Store, StoreError> {
        let txn = db.begin_write()?;
        txn.open_table(BLOCKS)?;
        txn.open_table(CERTIFICATES)?;
        txn.open_table(RESULTS)?;
        txn.open_table(TX_INDEX)?;
        txn.open_table(STATE)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Store { db: Arc::new(db) })
    }

    /// Writes the genesis state into an empty store.
    pub fn init_genesis(&self, state: &State) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        write_state(&txn, &state.full_writes(), &state.meta)?;
        txn.commit()?;
        Ok(())
    }

    /// The stored state, or None for an empty store. Every invariant of the loaded state is checked:
    /// a node never runs on a state it cannot trust.
    pub fn load_state(&self) -> Result<Option<State>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(META)?.get("meta")? {
            Some(bytes) => decode::<Meta>("meta", bytes.value())?,
            None => return Ok(None),
        };
        let mut state = State::empty(meta);
        for row in txn.open_table(STATE)?.iter()? {
            let (key, value) = row?;
            let key = key.value();
            let (Some(&module), Some(&table)) = (key.first(), key.get(1)) else {
                return Err(StoreError::Corrupt { table: "state", error: DecodeError::UnexpectedEnd });
            };
            state
                .load_row(TableId { module, table }, &key[2..], value.value())
                .map_err(|e| StoreError::InvalidState(e.to_string()))?;
        }
        state.check_invariants().map_err(|e| StoreError::InvalidState(e.to_string()))?;
        Ok(Some(state))
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
            let app_hash = outcome.meta.app_hash;
            let results =
                BlockResults { txs: outcome.results.clone(), events: outcome.events.clone(), app_hash };
            let mut stored = txn.open_table(RESULTS)?;
            stored.insert(height, results.to_bytes().as_slice())?;
            let mut index = txn.open_table(TX_INDEX)?;
            for (position, result) in outcome.results.iter().enumerate() {
                // The first successful inclusion wins, else the first: a failed attempt does not hide
                // the later inclusion of the same bytes that applied, and a failed replay after a
                // success is not indexed (issue 12, item 13).
                let earlier = index.get(&result.hash.0)?.map(|at| at.value());
                let replace = match earlier {
                    None => true,
                    Some((at_height, at_position)) => {
                        result.ok && !included_ok(&stored, at_height, at_position)?
                    }
                };
                if replace {
                    index.insert(&result.hash.0, (height, position as u32))?;
                }
            }
        }
        write_state(&txn, &outcome.writes, &outcome.meta)?;
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

    /// Where a transaction was included: (height, index in block) — its first inclusion that applied,
    /// else its first inclusion.
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

fn write_state(txn: &redb::WriteTransaction, writes: &StateWrites, meta: &Meta) -> Result<(), StoreError> {
    let mut table = txn.open_table(STATE)?;
    let mut key = Vec::new();
    for (id, rows) in &writes.tables {
        for (row_key, value) in rows {
            key.clear();
            key.extend_from_slice(&[id.module, id.table]);
            key.extend_from_slice(&row_key.0);
            match value {
                Some(value) => table.insert(key.as_slice(), value.0.as_slice())?,
                None => table.remove(key.as_slice())?,
            };
        }
    }
    txn.open_table(META)?.insert("meta", meta.to_bytes().as_slice())?;
    Ok(())
}

/// Whether the transaction at (`at_height`, `at_position`) applied, from the stored results (this
/// block's among them: they are written first in the same transaction).
fn included_ok(
    stored: &redb::Table<'_, u64, &[u8]>,
    at_height: u64,
    at_position: u32,
) -> Result<bool, StoreError> {
    let Some(bytes) = stored.get(at_height)? else { return Ok(false) };
    let results: BlockResults = decode("results", bytes.value())?;
    Ok(results.txs.get(at_position as usize).is_some_and(|r| r.ok))
}
