//! Undecided blocks: every block this node proposed, received through a verified stream or got
//! through sync, kept until its height is committed.
//!
//! Bounded in entries and bytes (the oldest entries that are not our own go first). Each entry is
//! also written to `<home>/undecided/` so that after a crash the bytes of a value that the WAL
//! remembers (and that consensus may decide without re-downloading) are still available.
//! Disk writes are best effort: a failure is logged and the entry stays in memory.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tracing::{debug, warn};

use malachitebft_app_channel::app::types::ProposedValue;
use malachitebft_app_channel::app::types::core::{Round, Validity};

use crate::context::{ADDRESS_LEN, Address, BlockHash, GonkaContext, Height};

const MAGIC: &[u8; 6] = b"GBLK01";
const MAX_ENTRIES: usize = 64;

/// One undecided block.
#[derive(Clone, Debug)]
pub(crate) struct StoredBlock {
    pub(crate) height: Height,
    pub(crate) round: Round,
    pub(crate) valid_round: Round,
    pub(crate) proposer: Address,
    pub(crate) hash: BlockHash,
    pub(crate) block: Bytes,
    pub(crate) validity: Validity,
    /// Built by this node.
    pub(crate) own: bool,
}

impl StoredBlock {
    pub(crate) fn proposed_value(&self) -> ProposedValue<GonkaContext> {
        ProposedValue {
            height: self.height,
            round: self.round,
            valid_round: self.valid_round,
            proposer: self.proposer,
            value: self.hash,
            validity: self.validity,
        }
    }

    fn file_name(&self) -> String {
        let round = self.round.as_u32().map_or_else(|| "nil".to_string(), |r| r.to_string());
        format!("{:020}-{}-{}.blk", self.height.0, round, self.hash)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.block.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.height.0.to_be_bytes());
        out.extend_from_slice(&self.round.as_i64().to_be_bytes());
        out.extend_from_slice(&self.valid_round.as_i64().to_be_bytes());
        out.extend_from_slice(&self.proposer.0);
        out.push(u8::from(self.validity.is_valid()));
        out.push(u8::from(self.own));
        out.extend_from_slice(&self.block);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (h, rest) = rest.split_first_chunk::<8>()?;
        let (r, rest) = rest.split_first_chunk::<8>()?;
        let (vr, rest) = rest.split_first_chunk::<8>()?;
        let (p, rest) = rest.split_first_chunk::<ADDRESS_LEN>()?;
        let (&[valid, own], block) = rest.split_first_chunk::<2>()?;
        let round_of = |b: &[u8; 8]| {
            let v = i64::from_be_bytes(*b);
            if v < 0 { Some(Round::Nil) } else { u32::try_from(v).ok().map(Round::new) }
        };
        let block = Bytes::copy_from_slice(block);
        Some(Self {
            height: Height(u64::from_be_bytes(*h)),
            round: round_of(r)?,
            valid_round: round_of(vr)?,
            proposer: Address(*p),
            hash: BlockHash::of(&block),
            block,
            validity: if valid == 1 { Validity::Valid } else { Validity::Invalid },
            own: own == 1,
        })
    }
}

/// The bounded undecided-block store.
pub(crate) struct BlockStore {
    entries: Vec<StoredBlock>,
    bytes: usize,
    max_bytes: usize,
    dir: Option<PathBuf>,
}

impl BlockStore {
    /// Open the store, reloading entries above `last_committed` from `dir` and deleting the rest.
    pub(crate) fn open(dir: Option<&Path>, last_committed: u64, max_block_bytes: usize) -> Self {
        let mut store = Self {
            entries: Vec::new(),
            bytes: 0,
            max_bytes: max_block_bytes.saturating_mul(8).max(8 << 20),
            dir: dir.map(Path::to_path_buf),
        };
        let Some(dir) = dir else { return store };
        if let Err(e) = fs::create_dir_all(dir) {
            warn!(dir = %dir.display(), "cannot create undecided-block directory, keeping blocks in memory only: {e}");
            store.dir = None;
            return store;
        }
        let Ok(read) = fs::read_dir(dir) else { return store };
        let mut loaded: Vec<StoredBlock> = Vec::new();
        for entry in read.flatten() {
            let path = entry.path();
            let parsed = fs::read(&path).ok().and_then(|b| StoredBlock::decode(&b));
            match parsed {
                Some(b) if b.height.0 > last_committed && b.block.len() <= max_block_bytes => loaded.push(b),
                _ => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        loaded.sort_by_key(|b| (b.height, b.round));
        for b in loaded {
            debug!(height = %b.height, round = %b.round, hash = %b.hash, "reloaded undecided block");
            store.insert_memory(b);
        }
        store
    }

    fn path_of(&self, b: &StoredBlock) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(b.file_name()))
    }

    fn insert_memory(&mut self, b: StoredBlock) {
        while !self.entries.is_empty()
            && (self.entries.len() >= MAX_ENTRIES || self.bytes + b.block.len() > self.max_bytes)
        {
            let victim = self.entries.iter().position(|e| !e.own).unwrap_or(0);
            let removed = self.entries.remove(victim);
            self.bytes -= removed.block.len();
            if let Some(path) = self.path_of(&removed) {
                let _ = fs::remove_file(path);
            }
        }
        self.bytes += b.block.len();
        self.entries.push(b);
    }

    /// Store a block (no-op if the same height, round and hash is already stored).
    pub(crate) fn insert(&mut self, b: StoredBlock) {
        if self.get(b.height, b.round, &b.hash).is_some() {
            return;
        }
        if let Some(path) = self.path_of(&b) {
            let tmp = path.with_extension("tmp");
            if let Err(e) = fs::write(&tmp, b.encode()).and_then(|()| fs::rename(&tmp, &path)) {
                warn!(path = %path.display(), "cannot persist undecided block: {e}");
            }
        }
        self.insert_memory(b);
    }

    /// The block stored for exactly this height, round and hash.
    pub(crate) fn get(&self, height: Height, round: Round, hash: &BlockHash) -> Option<&StoredBlock> {
        self.entries.iter().find(|e| e.height == height && e.round == round && &e.hash == hash)
    }

    /// Any stored block with this hash at this height.
    pub(crate) fn find(&self, height: Height, hash: &BlockHash) -> Option<&StoredBlock> {
        self.entries.iter().find(|e| e.height == height && &e.hash == hash)
    }

    /// Our own block for this height and round, if we built one.
    pub(crate) fn own_at(&self, height: Height, round: Round) -> Option<&StoredBlock> {
        self.entries.iter().find(|e| e.own && e.height == height && e.round == round)
    }

    /// All blocks for this height and round.
    pub(crate) fn at(&self, height: Height, round: Round) -> impl Iterator<Item = &StoredBlock> {
        self.entries.iter().filter(move |e| e.height == height && e.round == round)
    }

    /// Drop everything at or below `height` (it is committed).
    pub(crate) fn prune_through(&mut self, height: Height) {
        let (drop, keep): (Vec<_>, Vec<_>) = self.entries.drain(..).partition(|e| e.height <= height);
        self.entries = keep;
        for b in drop {
            self.bytes -= b.block.len();
            if let Some(path) = self.path_of(&b) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(h: u64, r: u32, data: &[u8]) -> StoredBlock {
        StoredBlock {
            height: Height(h),
            round: Round::new(r),
            valid_round: Round::Nil,
            proposer: Address([1; 20]),
            hash: BlockHash::of(data),
            block: Bytes::copy_from_slice(data),
            validity: Validity::Valid,
            own: false,
        }
    }

    #[test]
    fn persists_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BlockStore::open(Some(dir.path()), 0, 1024);
        s.insert(block(1, 0, b"a"));
        s.insert(block(2, 1, b"b"));
        drop(s);
        let mut s = BlockStore::open(Some(dir.path()), 1, 1024);
        assert!(s.find(Height(1), &BlockHash::of(b"a")).is_none());
        let b = s.find(Height(2), &BlockHash::of(b"b")).unwrap();
        assert_eq!(b.round, Round::new(1));
        assert_eq!(b.valid_round, Round::Nil);
        s.prune_through(Height(2));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bounded() {
        let mut s = BlockStore::open(None, 0, 1024);
        for i in 0..200u64 {
            s.insert(block(i, 0, &i.to_be_bytes()));
        }
        assert!(s.entries.len() <= MAX_ENTRIES);
        assert!(s.find(Height(199), &BlockHash::of(&199u64.to_be_bytes())).is_some());
    }
}
