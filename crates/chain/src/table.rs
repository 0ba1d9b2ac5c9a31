//! State tables: sorted maps that remember what the current block touched and can undo a failed
//! transaction, and the type-erased view through which the chain, the app hash and the store handle
//! every table alike.
//!
//! Every map of the [`crate::State`] is a [`Table`] (or an [`Item`], a table of one record). Reads go
//! through `Deref` to the underlying `BTreeMap` (sorted iteration only); writes go through
//! [`Table::insert`], [`Table::remove`] and [`Table::update`], which record the key as touched (for the
//! block's writes and app hash) and keep the previous value until the transaction ends
//! ([`Table::commit_tx`]) or is undone ([`Table::roll_back_tx`]).
//!
//! A module declares its tables once with `tables!`; that declaration implements [`Tables`], which
//! visits each table with its id, so commit, undo, writes, genesis rows and store loading are derived
//! from it and never listed by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use gonka_primitives::codec::{Bytes, Decode, DecodeError, Encode, decode_exact};
use gonka_primitives::codec_struct;

/// Largest encoded row a table will load (a row is bounded by block limits far below this).
const MAX_ROW_BYTES: usize = 64 << 20;

/// Where a table lives: its module's id and its own id within the module. Both are part of the store
/// key and of the app hash, so they are never reused or renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    /// The owning module ([`crate::module::Module::ID`]).
    pub module: u8,
    /// The table within the module.
    pub table: u8,
}
codec_struct!(TableId { module, table });

/// Encoded rows of one table: encoded key → encoded value (None = removed), in key-byte order.
pub type EncodedRows = BTreeMap<Bytes, Option<Bytes>>;

/// One table seen without its key and value types: what the chain needs to end or undo a
/// transaction, to collect a block's writes, and what the store needs to persist and reload it.
pub trait TableRows {
    /// Ends the current transaction: its writes stay.
    fn commit_tx(&mut self);
    /// Undoes every write since the transaction began.
    fn roll_back_tx(&mut self);
    /// Every row touched since the last call, encoded, with its current value.
    fn take_encoded_writes(&mut self) -> EncodedRows;
    /// Every row, encoded (genesis and a fresh store).
    fn encoded_rows(&self) -> EncodedRows;
    /// Loads one stored row without tracking it.
    fn load_encoded(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError>;
    /// Number of rows.
    fn row_count(&self) -> usize;
}

/// A module's tables, visited with their ids (implemented by `tables!`).
pub trait Tables {
    /// Calls `visit(table id, field name, table)` for every table.
    fn visit(&self, visit: &mut dyn FnMut(u8, &'static str, &dyn TableRows));
    /// Calls `visit(table id, field name, table)` for every table, mutably.
    fn visit_mut(&mut self, visit: &mut dyn FnMut(u8, &'static str, &mut dyn TableRows));
}

/// A sorted map with per-block write tracking and per-transaction undo.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    rows: BTreeMap<K, V>,
    /// Keys written since the last [`Table::take_writes`].
    touched: BTreeSet<K>,
    /// Values before the current transaction's first write to each key (None = absent).
    undo: BTreeMap<K, Option<V>>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table { rows: BTreeMap::new(), touched: BTreeSet::new(), undo: BTreeMap::new() }
    }
}

/// Two tables are equal when their rows are: write tracking is transient bookkeeping.
impl<K: PartialEq, V: PartialEq> PartialEq for Table<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows
    }
}
impl<K: Eq, V: Eq> Eq for Table<K, V> {}

impl<K, V> Deref for Table<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.rows
    }
}

impl<K: Ord, V> From<BTreeMap<K, V>> for Table<K, V> {
    fn from(rows: BTreeMap<K, V>) -> Self {
        Table { rows, ..Table::default() }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for Table<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Table::from(iter.into_iter().collect::<BTreeMap<K, V>>())
    }
}

impl<K: Ord + Clone, V: Clone> Table<K, V> {
    fn remember(&mut self, key: &K) {
        if !self.undo.contains_key(key) {
            self.undo.insert(key.clone(), self.rows.get(key).cloned());
        }
        self.touched.insert(key.clone());
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: K, value: V) {
        self.remember(&key);
        self.rows.insert(key, value);
    }

    /// Removes `key`; nothing happens (and nothing is recorded) when it is absent.
    pub fn remove(&mut self, key: &K) {
        if self.rows.contains_key(key) {
            self.remember(key);
            self.rows.remove(key);
        }
    }

    /// Changes the value at `key` in place; returns false (and records nothing) when it is absent.
    pub fn update(&mut self, key: &K, change: impl FnOnce(&mut V)) -> bool {
        if !self.rows.contains_key(key) {
            return false;
        }
        self.remember(key);
        self.rows.get_mut(key).is_some_and(|value| {
            change(value);
            true
        })
    }

    /// Changes the value at `key`, starting from `V::default()` when it is absent.
    pub fn upsert(&mut self, key: K, change: impl FnOnce(&mut V))
    where
        V: Default,
    {
        self.remember(&key);
        change(self.rows.entry(key).or_default());
    }

    /// Ends the current transaction: its writes stay.
    pub fn commit_tx(&mut self) {
        self.undo.clear();
    }

    /// Undoes every write since the transaction began. The keys stay touched: the block's writes
    /// carry their (restored) values.
    pub fn roll_back_tx(&mut self) {
        for (key, value) in std::mem::take(&mut self.undo) {
            match value {
                Some(value) => self.rows.insert(key, value),
                None => self.rows.remove(&key),
            };
        }
    }

    /// Every key touched since the last call with its current value (None = removed), in key order.
    pub fn take_writes(&mut self) -> BTreeMap<K, Option<V>> {
        self.undo.clear();
        std::mem::take(&mut self.touched)
            .into_iter()
            .map(|key| (key.clone(), self.rows.get(&key).cloned()))
            .collect()
    }

    /// Removes every row whose key lies in `range`, tracking each removal.
    pub fn remove_range<R: std::ops::RangeBounds<K>>(&mut self, range: R) {
        let keys: Vec<K> = self.rows.range(range).map(|(key, _)| key.clone()).collect();
        for key in &keys {
            self.remove(key);
        }
    }
}

impl<K, V> TableRows for Table<K, V>
where
    K: Ord + Clone + Encode + Decode,
    V: Clone + Encode + Decode,
{
    fn commit_tx(&mut self) {
        Table::commit_tx(self);
    }

    fn roll_back_tx(&mut self) {
        Table::roll_back_tx(self);
    }

    fn take_encoded_writes(&mut self) -> EncodedRows {
        self.undo.clear();
        std::mem::take(&mut self.touched)
            .into_iter()
            .map(|key| {
                let value = self.rows.get(&key).map(|v| Bytes(v.to_bytes()));
                (Bytes(key.to_bytes()), value)
            })
            .collect()
    }

    fn encoded_rows(&self) -> EncodedRows {
        self.rows.iter().map(|(k, v)| (Bytes(k.to_bytes()), Some(Bytes(v.to_bytes())))).collect()
    }

    fn load_encoded(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
        let key: K = decode_exact(key, MAX_ROW_BYTES)?;
        let value: V = decode_exact(value, MAX_ROW_BYTES)?;
        self.rows.insert(key, value);
        Ok(())
    }

    fn row_count(&self) -> usize {
        self.rows.len()
    }
}

/// A table of at most one record (a module's scalar: the supply, the running PoC stage, the params).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<V>(Table<(), V>);

impl<V> Default for Item<V> {
    fn default() -> Self {
        Item(Table::default())
    }
}

impl<V: Clone> Item<V> {
    /// The record, if set.
    pub fn get(&self) -> Option<&V> {
        self.0.get(&())
    }

    /// Sets the record.
    pub fn set(&mut self, value: V) {
        self.0.insert((), value);
    }

    /// Changes the record in place, starting from `V::default()` when unset.
    pub fn update(&mut self, change: impl FnOnce(&mut V))
    where
        V: Default,
    {
        self.0.upsert((), change);
    }

    /// Removes the record.
    pub fn clear(&mut self) {
        self.0.remove(&());
    }
}

impl<V: Clone + Encode + Decode> TableRows for Item<V> {
    fn commit_tx(&mut self) {
        self.0.commit_tx();
    }

    fn roll_back_tx(&mut self) {
        self.0.roll_back_tx();
    }

    fn take_encoded_writes(&mut self) -> EncodedRows {
        self.0.take_encoded_writes()
    }

    fn encoded_rows(&self) -> EncodedRows {
        self.0.encoded_rows()
    }

    fn load_encoded(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
        self.0.load_encoded(key, value)
    }

    fn row_count(&self) -> usize {
        self.0.row_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_back_restores_values_and_keeps_keys_touched() {
        let mut table: Table<u8, u32> = [(1, 10), (2, 20)].into_iter().collect();
        table.insert(1, 11);
        table.commit_tx();
        table.insert(1, 12);
        table.remove(&2);
        table.insert(3, 30);
        assert!(table.update(&1, |v| *v += 1));
        assert!(!table.update(&9, |v| *v += 1));
        table.roll_back_tx();
        assert_eq!(*table, BTreeMap::from([(1, 11), (2, 20)]));
        assert_eq!(table.take_writes(), BTreeMap::from([(1, Some(11)), (2, Some(20)), (3, None)]));
        assert!(table.take_writes().is_empty());
    }

    #[test]
    fn remove_range_tracks_each_row() {
        let mut table: Table<(u8, u8), ()> = [((1, 1), ()), ((1, 2), ()), ((2, 1), ())].into_iter().collect();
        table.remove_range((1, 0)..(2, 0));
        assert_eq!(table.keys().copied().collect::<Vec<_>>(), vec![(2, 1)]);
        assert_eq!(table.take_writes(), BTreeMap::from([((1, 1), None), ((1, 2), None)]));
    }

    #[test]
    fn encoded_writes_round_trip_through_load() {
        let mut table: Table<u64, String> = Table::default();
        table.insert(7, "seven".into());
        table.insert(3, "three".into());
        let writes = TableRows::take_encoded_writes(&mut table);
        let mut loaded: Table<u64, String> = Table::default();
        for (key, value) in &writes {
            let value = value.as_ref().expect("inserted rows have values");
            loaded.load_encoded(&key.0, &value.0).expect("decodes");
        }
        assert_eq!(loaded, table);
        assert!(loaded.load_encoded(&[1, 2], &[0]).is_err(), "a short key is refused");
    }

    #[test]
    fn an_item_is_a_table_of_one_row() {
        let mut item: Item<u32> = Item::default();
        assert_eq!(item.get(), None);
        item.set(5);
        item.commit_tx();
        item.update(|v| *v += 1);
        TableRows::roll_back_tx(&mut item);
        assert_eq!(item.get(), Some(&5));
        assert_eq!(TableRows::take_encoded_writes(&mut item).len(), 1);
    }
}
