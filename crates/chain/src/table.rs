//! One state map that remembers what the current block touched and can undo a failed transaction.
//!
//! Every map of the [`crate::State`] is a [`Table`]. Reads go through `Deref` to the underlying
//! `BTreeMap` (sorted iteration only); writes go through [`Table::insert`], [`Table::remove`] and
//! [`Table::update`], which record the key as touched (for the block's writes and app hash) and keep
//! the previous value until the transaction ends ([`Table::commit_tx`]) or is undone
//! ([`Table::roll_back_tx`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

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

    /// Every row as a write: what genesis commits to and what a fresh store is loaded with.
    pub fn full_writes(&self) -> BTreeMap<K, Option<V>> {
        self.rows.iter().map(|(key, value)| (key.clone(), Some(value.clone()))).collect()
    }

    /// Applies stored writes without tracking them (the store rebuilding state on start).
    pub fn apply_writes(&mut self, writes: BTreeMap<K, Option<V>>) {
        for (key, value) in writes {
            match value {
                Some(value) => self.rows.insert(key, value),
                None => self.rows.remove(&key),
            };
        }
    }

    /// Removes every row whose key lies in `range`, tracking each removal.
    pub fn remove_range<R: std::ops::RangeBounds<K>>(&mut self, range: R) {
        let keys: Vec<K> = self.rows.range(range).map(|(key, _)| key.clone()).collect();
        for key in &keys {
            self.remove(key);
        }
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
}
