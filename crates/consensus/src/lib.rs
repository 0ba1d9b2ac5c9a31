//! gonka's consensus: hosts the Malachite BFT (Tendermint) engine and connects it to the chain.
//!
//! # Design
//!
//! * **Context** ([`types`]): heights are `u64`, a validator's address is the first 20 bytes of
//!   sha256(ed25519 public key), and the value consensus votes on is the sha256 of the encoded
//!   block ([`types::BlockHash`]). Validator sets come from [`Application::validator_set`] for
//!   every height, sorted by power (descending) then address; voting power is weighted.
//! * **Proposer selection**: round 0 of a height picks a validator with probability proportional to
//!   its power (a point derived from sha256 of the height in the cumulative power order); each later
//!   round moves to the next validator, so a dead proposer costs one round.
//! * **Proposals** are streamed as `Init, Data.., Fin` parts (256 KiB chunks). `Fin` carries the
//!   proposer's signature over the init metadata and the block hash; receivers check the proposer
//!   is the expected one for (height, round) and verify the signature before asking
//!   [`Application::check_block`]. Streams are bounded (count, bytes, sequence numbers).
//! * **Undecided blocks** (ours, received, synced) are kept in a bounded store, mirrored to
//!   `<home>/undecided/`, until their height commits; they serve `StartedRound` replays,
//!   `RestreamProposal`, and the decision itself. Decided blocks come from the application.
//! * **Decisions**: on `Decided` the block and an encoded commit certificate go to
//!   [`Application::commit_block`]; a failure restarts the height. `Finalized` starts the next
//!   height.
//! * **Block interval**: each height is started with `target_time = block_interval_ms`, so the
//!   engine waits until that much time has passed since the height started before moving on
//!   (empty blocks included). Heights decided through sync move on immediately.
//! * **Sync**: Malachite's value sync; peers are served from [`Application::committed_block`],
//!   and a synced block must hash to the certified value and pass `check_block` at its height.
//! * **Persistence**: the engine's write-ahead log lives at `<home>/wal/consensus.wal`.
//! * **Codec**: a compact hand-written binary format ([`WireCodec`]) for gossip, sync and the WAL;
//!   decoding is bounds-checked and never panics on peer input.
//!
//! # Usage
//!
//! ```ignore
//! let handle = ConsensusHandle::new();             // keep a clone for status pages
//! let (stop, stop_rx) = tokio::sync::watch::channel(false);
//! let task = tokio::spawn(gonka_consensus::run(config, app, handle.clone(), stop_rx));
//! // ... handle.height(), handle.round(), handle.peers() ...
//! stop.send(true)?;                                // graceful stop; WAL and port are released
//! task.await??;
//! ```
//!
//! `run` needs a multi-threaded tokio runtime (the engine is a set of ractor actors).

#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use thiserror::Error;

mod codec;
mod context;
mod host;
mod node;
mod signing;
mod store;
mod streaming;

pub use codec::{CodecError, WireCodec, decode_commit_certificate, encode_commit_certificate};
pub use node::{peer_multiaddr, run};

/// The Malachite types gonka instantiates (context, values, votes, proposals, validator sets).
pub mod types {
    pub use crate::context::{
        ADDRESS_LEN, Address, BlockHash, GonkaContext, Height, Proposal, ProposalInit, ProposalPart,
        Validator, ValidatorSet, Vote,
    };
    pub use crate::signing::{Ed25519Provider, Ed25519Verifier};
}

/// A validator as consensus sees it: ed25519 public key and voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorInfo {
    /// ed25519 public key.
    pub public_key: [u8; 32],
    /// Voting power; validators with 0 are ignored.
    pub voting_power: u64,
}

/// The ed25519 key of the validator consensus asks to propose at (`height`, `round`) among
/// `validators` ([`types::ValidatorSet::proposer`]); None for a set with no valid validator. For the
/// simulator, which orders blocks itself by the same rule.
pub fn proposer_of(validators: &[ValidatorInfo], height: u64, round: u32) -> Option<[u8; 32]> {
    let set = host::to_validator_set(validators)?;
    let round = malachitebft_app_channel::app::types::core::Round::new(round);
    Some(*set.proposer(types::Height(height), round).public_key.as_bytes())
}

/// Two conflicting votes one validator signed for one height, round and kind, as the engine saw them:
/// what the chain slashes on (`docs/spec/economy.md` §5). The signed bytes are
/// [`gonka_primitives::consensus::vote_sign_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleVoteEvidence {
    /// The validator's ed25519 public key.
    pub public_key: [u8; 32],
    /// [`gonka_primitives::consensus::PREVOTE`] or [`gonka_primitives::consensus::PRECOMMIT`].
    pub kind: u8,
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// The first vote's block hash (None: nil) and signature.
    pub first: (Option<[u8; 32]>, [u8; 64]),
    /// The second vote's.
    pub second: (Option<[u8; 32]>, [u8; 64]),
}

/// What the chain provides to consensus. Methods are called from the consensus task and must
/// return quickly.
pub trait Application: Send + 'static {
    /// Height of the last committed block (0 = nothing committed yet, genesis only).
    /// Consensus starts at this + 1.
    fn last_committed_height(&self) -> u64;
    /// The validator set that decides `height`; None if the app cannot know it (height too far
    /// ahead).
    fn validator_set(&self, height: u64) -> Option<Vec<ValidatorInfo>>;
    /// Build the encoded block this node proposes at (height, round). `proposer` is this node's
    /// ed25519 public key.
    fn build_block(&mut self, height: u64, round: u32, proposer: [u8; 32]) -> Vec<u8>;
    /// Whether a block proposed by `proposer` for `height` is acceptable (decodes, header
    /// checks). false => the value is invalid.
    fn check_block(&mut self, height: u64, proposer: [u8; 32], block: &[u8]) -> bool;
    /// Apply and durably persist a decided block with its commit certificate (opaque bytes
    /// produced by this crate, see [`decode_commit_certificate`] / [`verify_commit`]).
    /// Must be durable when it returns Ok. Err => consensus restarts the height.
    fn commit_block(
        &mut self,
        height: u64,
        round: u32,
        block: &[u8],
        certificate: &[u8],
    ) -> anyhow::Result<()>;
    /// A committed block and its certificate, served to peers that sync.
    fn committed_block(&self, height: u64) -> Option<(Vec<u8>, Vec<u8>)>;
    /// Earliest height still stored (1 if all history is kept).
    fn history_min_height(&self) -> u64;
    /// Double votes the engine observed since the last decision: the application may report them to
    /// the chain. By default they are only logged.
    fn report_double_votes(&mut self, _evidence: Vec<DoubleVoteEvidence>) {}
}

/// Consensus step timeouts. Each grows by `delta` per round, capped at `max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to wait for a proposal before prevoting nil.
    pub propose: Duration,
    /// How long to wait after +2/3 prevotes for anything.
    pub prevote: Duration,
    /// How long to wait after +2/3 precommits for anything.
    pub precommit: Duration,
    /// How long after entering a round the node starts rebroadcasting its votes.
    pub rebroadcast: Duration,
    /// Increase of propose/prevote/precommit timeouts per round.
    pub delta: Duration,
    /// Upper bound for any per-round timeout.
    pub max: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            propose: Duration::from_secs(3),
            prevote: Duration::from_secs(1),
            precommit: Duration::from_secs(1),
            rebroadcast: Duration::from_secs(5),
            delta: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

/// Node configuration for [`run`].
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// Directory for the WAL and anything consensus persists.
    pub home: PathBuf,
    /// ed25519 secret key bytes (ed25519-consensus `SigningKey` seed).
    pub private_key: [u8; 32],
    /// p2p listen address (TCP).
    pub listen: SocketAddr,
    /// Persistent peers: `IP:PORT` or `DNS-NAME:PORT`.
    pub peers: Vec<String>,
    /// Learn more peers from the connected ones (Malachite's peer discovery), so a node that names one
    /// peer finds the rest.
    pub discovery: bool,
    /// Target interval between blocks; blocks still come at this pace with nothing to do.
    pub block_interval_ms: u64,
    /// Step timeouts.
    pub timeouts: Timeouts,
    /// Proposals (and synced blocks) larger than this are rejected.
    pub max_block_bytes: usize,
}

impl ConsensusConfig {
    /// A config with default interval (1 s), timeouts, 4 MiB blocks and no peers.
    pub fn new(home: PathBuf, private_key: [u8; 32], listen: SocketAddr) -> Self {
        Self {
            home,
            private_key,
            listen,
            peers: Vec::new(),
            discovery: true,
            block_interval_ms: 1000,
            timeouts: Timeouts::default(),
            max_block_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, Default)]
struct HandleState {
    running: AtomicBool,
    peers: AtomicUsize,
    height: AtomicU64,
    round: AtomicI64,
    committed: AtomicU64,
}

/// Live view of a running consensus for status pages. Create it with
/// [`ConsensusHandle::new`], keep a clone, and pass it to [`run`].
#[derive(Clone, Debug, Default)]
pub struct ConsensusHandle {
    inner: Arc<HandleState>,
}

impl ConsensusHandle {
    /// A handle for a node that has not started yet (all zeros, round -1).
    pub fn new() -> Self {
        let h = Self::default();
        h.inner.round.store(-1, Ordering::Relaxed);
        h
    }

    /// Number of connected peers.
    pub fn peers(&self) -> usize {
        self.inner.peers.load(Ordering::Relaxed)
    }

    /// Height consensus is working on (0 before start).
    pub fn height(&self) -> u64 {
        self.inner.height.load(Ordering::Relaxed)
    }

    /// Current round (-1 when none).
    pub fn round(&self) -> i64 {
        self.inner.round.load(Ordering::Relaxed)
    }

    /// Last height this node committed.
    pub fn last_committed_height(&self) -> u64 {
        self.inner.committed.load(Ordering::Relaxed)
    }

    /// Whether the engine is running.
    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::Relaxed)
    }

    pub(crate) fn set_peers(&self, n: usize) {
        self.inner.peers.store(n, Ordering::Relaxed);
    }

    pub(crate) fn set_height(&self, height: u64, round: i64) {
        self.inner.height.store(height, Ordering::Relaxed);
        self.inner.round.store(round, Ordering::Relaxed);
    }

    pub(crate) fn set_committed(&self, height: u64) {
        self.inner.committed.store(height, Ordering::Relaxed);
    }

    pub(crate) fn set_running(&self, running: bool) {
        self.inner.running.store(running, Ordering::Relaxed);
    }
}

/// The address consensus derives from an ed25519 public key (first 20 bytes of its sha256).
pub fn validator_address(public_key: &[u8; 32]) -> [u8; 20] {
    context::Address::from_public_key(public_key).0
}

/// What a commit certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// Committed height.
    pub height: u64,
    /// Round of the decision.
    pub round: u32,
    /// sha256 of the committed block.
    pub block_hash: [u8; 32],
    /// Addresses of the validators whose precommits the certificate holds.
    pub signers: Vec<[u8; 20]>,
}

/// Why a commit certificate was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CertificateError {
    /// The bytes do not decode.
    #[error("certificate does not decode: {0}")]
    Decode(#[from] CodecError),
    /// Certificate for another height.
    #[error("certificate is for height {found}, expected {expected}")]
    WrongHeight {
        /// Expected height.
        expected: u64,
        /// Height in the certificate.
        found: u64,
    },
    /// Certificate for another block.
    #[error("certificate is for another block")]
    WrongBlock,
    /// A signer is not in the validator set.
    #[error("signer {0} is not a validator")]
    UnknownSigner(String),
    /// A signer appears twice.
    #[error("signer {0} appears twice")]
    DuplicateSigner(String),
    /// A signature does not verify.
    #[error("invalid signature from {0}")]
    BadSignature(String),
    /// Less than 2/3 of the power signed.
    #[error("not enough voting power: {signed} of {total}")]
    InsufficientPower {
        /// Power that signed.
        signed: u64,
        /// Total power.
        total: u64,
    },
    /// The validator set is empty or invalid.
    #[error("empty validator set")]
    EmptyValidatorSet,
}

/// Decode a certificate produced by this crate.
pub fn commit_info(certificate: &[u8]) -> Result<CommitInfo, CodecError> {
    let c = decode_commit_certificate(certificate)?;
    Ok(CommitInfo {
        height: c.height.0,
        round: c.round.as_u32().unwrap_or(0),
        block_hash: c.value_id.0,
        signers: c.commit_signatures.iter().map(|s| s.address.0).collect(),
    })
}

/// Check a commit certificate: it is for `height` and `block`, every signature is a valid
/// precommit from a distinct member of `validators`, and more than 2/3 of the power signed.
pub fn verify_commit(
    certificate: &[u8],
    height: u64,
    block: &[u8],
    validators: &[ValidatorInfo],
) -> Result<CommitInfo, CertificateError> {
    use malachitebft_app_channel::app::types::core::ValidatorSet as _;

    let c = decode_commit_certificate(certificate)?;
    if c.height.0 != height {
        return Err(CertificateError::WrongHeight { expected: height, found: c.height.0 });
    }
    if c.value_id != context::BlockHash::of(block) {
        return Err(CertificateError::WrongBlock);
    }
    let set = host::to_validator_set(validators).ok_or(CertificateError::EmptyValidatorSet)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut signed: u64 = 0;
    for s in &c.commit_signatures {
        let v = set.get(&s.address).ok_or_else(|| CertificateError::UnknownSigner(s.address.to_string()))?;
        if !seen.insert(s.address) {
            return Err(CertificateError::DuplicateSigner(s.address.to_string()));
        }
        let msg = signing::precommit_sign_bytes(c.height, c.round, c.value_id, s.address);
        if v.public_key.verify(&msg, &s.signature).is_err() {
            return Err(CertificateError::BadSignature(s.address.to_string()));
        }
        signed = signed.saturating_add(v.voting_power);
    }
    let total = set.total_voting_power();
    if u128::from(signed) * 3 <= u128::from(total) * 2 {
        return Err(CertificateError::InsufficientPower { signed, total });
    }
    Ok(CommitInfo {
        height,
        round: c.round.as_u32().unwrap_or(0),
        block_hash: c.value_id.0,
        signers: c.commit_signatures.iter().map(|s| s.address.0).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Address, BlockHash, Height};
    use malachitebft_app_channel::app::types::core::{CommitCertificate, CommitSignature, Round};
    use malachitebft_signing_ed25519::PrivateKey;

    fn keys() -> Vec<PrivateKey> {
        (1..=4u8).map(|i| PrivateKey::from([i; 32])).collect()
    }

    fn validators(keys: &[PrivateKey]) -> Vec<ValidatorInfo> {
        keys.iter()
            .map(|k| ValidatorInfo { public_key: *k.public_key().as_bytes(), voting_power: 10 })
            .collect()
    }

    fn certificate(keys: &[PrivateKey], signers: usize, block: &[u8]) -> Vec<u8> {
        let value = BlockHash::of(block);
        let commit_signatures = keys[..signers]
            .iter()
            .map(|k| {
                let address = Address::from_public_key(k.public_key().as_bytes());
                let msg = signing::precommit_sign_bytes(Height(3), Round::new(1), value, address);
                CommitSignature::new(address, k.sign(&msg))
            })
            .collect();
        encode_commit_certificate(&CommitCertificate {
            height: Height(3),
            round: Round::new(1),
            value_id: value,
            commit_signatures,
        })
    }

    #[test]
    fn verify_commit_checks_quorum_block_and_height() {
        let keys = keys();
        let vals = validators(&keys);
        let ok = certificate(&keys, 3, b"block");
        let info = verify_commit(&ok, 3, b"block", &vals).unwrap();
        assert_eq!((info.height, info.round, info.signers.len()), (3, 1, 3));
        assert_eq!(
            verify_commit(&certificate(&keys, 2, b"block"), 3, b"block", &vals),
            Err(CertificateError::InsufficientPower { signed: 20, total: 40 })
        );
        assert_eq!(verify_commit(&ok, 3, b"other", &vals), Err(CertificateError::WrongBlock));
        assert!(matches!(verify_commit(&ok, 4, b"block", &vals), Err(CertificateError::WrongHeight { .. })));
        assert!(matches!(
            verify_commit(&ok[..ok.len() - 1], 3, b"block", &vals),
            Err(CertificateError::Decode(_))
        ));
        let mut bad = ok.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(verify_commit(&bad, 3, b"block", &vals), Err(CertificateError::BadSignature(_))));
    }

    #[test]
    fn proposer_is_weighted_by_power_never_repeats_below_38_percent_and_rounds_move_on() {
        let keys = keys();
        let mut vals = validators(&keys);
        for (i, v) in vals.iter_mut().enumerate() {
            v.voting_power = [1, 2, 3, 4][i];
        }
        let set = host::to_validator_set(&vals).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for h in 1..=10_000u64 {
            *counts.entry(set.proposer(Height(h), Round::new(0)).voting_power).or_insert(0u32) += 1;
        }
        for (power, count) in &counts {
            let expected = 10_000.0 * *power as f64 / 10.0;
            assert!(
                (f64::from(*count) - expected).abs() < 0.1 * expected,
                "power {power}: {count} vs {expected}"
            );
        }
        // Validators below 38.2 % of the power (here 10 %, 20 %, 30 %) never propose twice in a row.
        for h in 1..=10_000u64 {
            let (a, b) = (set.proposer(Height(h), Round::new(0)), set.proposer(Height(h + 1), Round::new(0)));
            assert!(
                a.address != b.address || a.voting_power == 4,
                "height {h}: power {} twice",
                a.voting_power
            );
        }
        let order = set.validators();
        let first = set.proposer(Height(7), Round::new(0)).address;
        let at = order.iter().position(|v| v.address == first).unwrap();
        assert_eq!(set.proposer(Height(7), Round::new(1)).address, order[(at + 1) % 4].address);
        assert_eq!(set.proposer(Height(7), Round::new(4)).address, first);
        // Zero power and duplicates are dropped; empty sets are refused.
        let mut vals = validators(&keys);
        vals.push(vals[0].clone());
        vals[1].voting_power = 0;
        assert_eq!(host::to_validator_set(&vals).unwrap().validators().len(), 3);
        assert!(host::to_validator_set(&[]).is_none());
    }
}
