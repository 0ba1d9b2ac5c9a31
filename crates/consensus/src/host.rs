//! The application side of the engine: answers every `AppMsg` Malachite sends, calling into the
//! [`Application`] for blocks, validator sets and commits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use malachitebft_app_channel::app::consensus::VoteExtensionError;
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::core::ExtendedCommitCertificate;
use malachitebft_app_channel::app::types::core::{LinearTimeouts, Round, Validity};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{
    LocallyProposedValue, MisbehaviorEvidence, PeerId, ProposedValue,
};
use malachitebft_app_channel::{AppMsg, NetworkMsg};
use malachitebft_signing_ed25519::PublicKey;

use crate::codec::{decode_commit_certificate, encode_commit_certificate};
use crate::context::{
    Address, BlockHash, GonkaContext, Height, ProposalInit, ProposalPart, Validator, ValidatorSet,
};
use crate::signing::{Ed25519Provider, fin_sign_bytes};
use crate::store::{BlockStore, StoredBlock};
use crate::streaming::{CompletedStream, PartStreams, make_stream, stream_id};
use crate::{Application, ConsensusHandle, ValidatorInfo};

type Ctx = GonkaContext;

/// Most completed streams for future heights kept until their height starts.
const MAX_PENDING: usize = 16;
/// How far ahead of the current height a completed stream is kept.
const PENDING_LOOKAHEAD: u64 = 2;
/// Most decided values served in one sync response.
const MAX_SYNC_BATCH: u64 = 64;

/// Convert the application's validator list into a [`ValidatorSet`]; invalid keys are skipped.
/// The libp2p peer id of the node whose p2p key is the ed25519 key `public_key`.
pub(crate) fn peer_id_of(public_key: &[u8]) -> Option<PeerId> {
    let key = libp2p_identity::ed25519::PublicKey::try_from_bytes(public_key).ok()?;
    let peer = libp2p_identity::PublicKey::from(key).to_peer_id();
    PeerId::from_bytes(&peer.to_bytes()).ok()
}

pub(crate) fn to_validator_set(infos: &[ValidatorInfo]) -> Option<ValidatorSet> {
    let validators = infos.iter().filter_map(|v| match PublicKey::from_bytes(v.public_key) {
        Ok(pk) => Some(Validator::new(pk, v.voting_power)),
        Err(_) => {
            warn!(key = %hex::encode(v.public_key), "ignoring validator with an invalid ed25519 key");
            None
        }
    });
    ValidatorSet::new(validators)
}

/// The double votes of `evidence` whose signer is in the validator set of `height`, in the chain's terms.
fn double_votes_of(
    validators: &[ValidatorInfo],
    evidence: &MisbehaviorEvidence<Ctx>,
) -> Vec<crate::DoubleVoteEvidence> {
    use malachitebft_app_channel::app::types::core::{NilOrVal, VoteType};
    let value = |v: &NilOrVal<BlockHash>| match v {
        NilOrVal::Nil => None,
        NilOrVal::Val(hash) => Some(hash.0),
    };
    let mut found = Vec::new();
    for (address, pairs) in &evidence.votes {
        let Some(info) = validators.iter().find(|v| Address::from_public_key(&v.public_key) == *address)
        else {
            continue;
        };
        for (first, second) in pairs {
            let vote = &first.message;
            found.push(crate::DoubleVoteEvidence {
                public_key: info.public_key,
                kind: match vote.vote_type {
                    VoteType::Prevote => gonka_primitives::consensus::PREVOTE,
                    VoteType::Precommit => gonka_primitives::consensus::PRECOMMIT,
                },
                height: vote.height.0,
                round: round_u32(vote.round),
                first: (value(&vote.value), first.signature.to_bytes()),
                second: (value(&second.message.value), second.signature.to_bytes()),
            });
        }
    }
    found
}

fn round_u32(round: Round) -> u32 {
    round.as_u32().unwrap_or(0)
}

pub(crate) struct Host<A> {
    app: A,
    signer: Ed25519Provider,
    address: Address,
    public_key: [u8; 32],
    timeouts: LinearTimeouts,
    target_time: Duration,
    max_block_bytes: usize,
    handle: ConsensusHandle,
    height: Height,
    blocks: BlockStore,
    streams: PartStreams,
    pending: Vec<CompletedStream>,
    nonce: u64,
    failed_commit: Option<Height>,
    valsets: BTreeMap<u64, ValidatorSet>,
    /// The p2p identities of the validators of a height and the next (see `is_validator_peer`).
    validator_peers: Option<(Height, BTreeSet<PeerId>)>,
    /// When the current height started, and the target time it was given.
    height_started: Option<(std::time::Instant, Duration)>,
}

pub(crate) struct HostParams {
    pub(crate) signer: Ed25519Provider,
    pub(crate) address: Address,
    pub(crate) public_key: [u8; 32],
    pub(crate) timeouts: LinearTimeouts,
    pub(crate) target_time: Duration,
    pub(crate) max_block_bytes: usize,
    pub(crate) handle: ConsensusHandle,
    pub(crate) blocks: BlockStore,
    pub(crate) nonce: u64,
}

impl<A: Application> Host<A> {
    pub(crate) fn new(app: A, p: HostParams) -> Self {
        Self {
            app,
            signer: p.signer,
            address: p.address,
            public_key: p.public_key,
            timeouts: p.timeouts,
            target_time: p.target_time,
            max_block_bytes: p.max_block_bytes,
            handle: p.handle,
            height: Height(0),
            blocks: p.blocks,
            streams: PartStreams::new(p.max_block_bytes),
            pending: Vec::new(),
            nonce: p.nonce,
            failed_commit: None,
            valsets: BTreeMap::new(),
            validator_peers: None,
            height_started: None,
        }
    }

    /// Whether the engine has asked for the start height yet.
    pub(crate) fn is_ready(&self) -> bool {
        self.height.0 > 0
    }

    fn validator_set(&mut self, height: Height) -> Option<ValidatorSet> {
        if let Some(set) = self.valsets.get(&height.0) {
            return Some(set.clone());
        }
        let set = to_validator_set(&self.app.validator_set(height.0)?)?;
        if self.valsets.len() >= 8 {
            self.valsets.pop_first();
        }
        self.valsets.insert(height.0, set.clone());
        Some(set)
    }

    fn height_params(&mut self, height: Height) -> anyhow::Result<HeightParams<Ctx>> {
        let set = self.validator_set(height).ok_or_else(|| {
            anyhow::anyhow!("application has no (non-empty, valid) validator set for height {height}")
        })?;
        Ok(HeightParams::new(set, self.timeouts, Some(self.paced_target_time())))
    }

    /// The target time for the height about to start. The engine counts it from the height's start,
    /// but a height also spends time after its target (finalizing, committing, or a slow round), so
    /// the interval between block starts would drift above `block_interval_ms`. Each height's target
    /// is shortened by how much the previous height overran its own, never below half the interval,
    /// which keeps the average interval at the configured one.
    fn paced_target_time(&mut self) -> Duration {
        let now = std::time::Instant::now();
        let target = match self.height_started {
            Some((started, given)) => {
                let overrun = now.duration_since(started).saturating_sub(given);
                self.target_time.saturating_sub(overrun.min(self.target_time / 2))
            }
            None => self.target_time,
        };
        self.height_started = Some((now, target));
        target
    }

    /// Handle one message from the engine. An error is fatal for the node.
    pub(crate) async fn handle(
        &mut self,
        msg: AppMsg<Ctx>,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
    ) -> anyhow::Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let start = Height(self.app.last_committed_height().saturating_add(1));
                let params = self.height_params(start)?;
                info!(height = %start, validators = params.validator_set.validators().len(), "consensus ready");
                self.height = start;
                self.handle.set_height(start.0, -1);
                self.handle.set_committed(start.0.saturating_sub(1));
                if reply.send((start, params)).is_err() {
                    warn!("engine dropped the ConsensusReady reply");
                }
            }

            AppMsg::StartedRound { height, round, proposer, role, reply_value } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                if height != self.height {
                    self.height = height;
                    self.streams.prune(height);
                }
                self.handle.set_height(height.0, round.as_i64());
                let ready: Vec<CompletedStream> = {
                    self.pending.retain(|c| c.init.height >= height);
                    let (now, later) =
                        std::mem::take(&mut self.pending).into_iter().partition(|c| c.init.height == height);
                    self.pending = later;
                    now
                };
                for c in ready {
                    let _ = self.accept_stream(c);
                }
                let values: Vec<ProposedValue<Ctx>> =
                    self.blocks.at(height, round).map(StoredBlock::proposed_value).collect();
                if !values.is_empty() {
                    debug!(%height, %round, count = values.len(), "replaying undecided values");
                }
                if reply_value.send(values).is_err() {
                    warn!("engine dropped the StartedRound reply");
                }
            }

            AppMsg::GetValue { height, round, timeout: _, reply } => {
                let stored = match self.blocks.own_at(height, round) {
                    Some(b) => b.clone(),
                    None => {
                        let block =
                            Bytes::from(self.app.build_block(height.0, round_u32(round), self.public_key));
                        if block.len() > self.max_block_bytes {
                            error!(%height, len = block.len(), max = self.max_block_bytes, "built block exceeds max_block_bytes; peers will reject it");
                        }
                        let b = StoredBlock {
                            height,
                            round,
                            valid_round: Round::Nil,
                            proposer: self.address,
                            hash: BlockHash::of(&block),
                            block,
                            validity: Validity::Valid,
                            own: true,
                        };
                        self.blocks.insert(b.clone());
                        b
                    }
                };
                info!(%height, %round, hash = %stored.hash, len = stored.block.len(), "proposing block");
                if reply.send(LocallyProposedValue::new(height, round, stored.hash)).is_err() {
                    warn!("engine dropped the GetValue reply");
                }
                self.publish(network, height, round, Round::Nil, &stored.block).await;
            }

            AppMsg::ExtendVote { reply, .. } => {
                if reply.send(None).is_err() {
                    warn!("engine dropped the ExtendVote reply");
                }
            }

            AppMsg::VerifyVoteExtensions { extensions, reply, .. } => {
                // gonka disables vote extensions at every height: none is acceptable.
                let verdicts = extensions
                    .into_iter()
                    .map(|(a, _)| (a, Err(VoteExtensionError::InvalidVoteExtension)))
                    .collect();
                if reply.send(verdicts).is_err() {
                    warn!("engine dropped the VerifyVoteExtensions reply");
                }
            }

            AppMsg::RestreamProposal { height, round, valid_round, address, value_id } => {
                if address != self.address {
                    debug!(%height, %round, %address, "not restreaming another validator's proposal");
                    return Ok(());
                }
                match self.blocks.find(height, &value_id).map(|b| b.block.clone()) {
                    Some(block) => {
                        info!(%height, %round, %valid_round, hash = %value_id, "restreaming proposal");
                        self.publish(network, height, round, valid_round, &block).await;
                    }
                    None => warn!(%height, %round, hash = %value_id, "cannot restream: block not available"),
                }
            }

            AppMsg::GetHistoryMinHeight { reply } => {
                let min = Height(self.app.history_min_height().max(1));
                if reply.send(min).is_err() {
                    warn!("engine dropped the GetHistoryMinHeight reply");
                }
            }

            AppMsg::ReceivedProposalPart { from, published_by, part, reply } => {
                // gossipsub signs every message with its publisher's key (strict validation), so
                // `published_by` is authenticated; `from` is the connection it came over.
                let value = self.received_part(published_by.unwrap_or(from), part);
                if reply.send(value).is_err() {
                    warn!("engine dropped the ReceivedProposalPart reply");
                }
            }

            AppMsg::Decided { certificate, extensions: _, reply } => {
                let height = certificate.height;
                let round = certificate.round;
                let Some(block) = self.blocks.find(height, &certificate.value_id).map(|b| b.block.clone())
                else {
                    error!(%height, %round, hash = %certificate.value_id,
                        "DECIDED BLOCK NOT AVAILABLE LOCALLY: cannot commit, the height will be restarted and fetched through sync");
                    self.failed_commit = Some(height);
                    return Ok(());
                };
                let cert = encode_commit_certificate(&certificate);
                match self.app.commit_block(height.0, round_u32(round), &block, &cert) {
                    Ok(()) => {
                        info!(%height, %round, hash = %certificate.value_id, signatures = certificate.commit_signatures.len(), "committed block");
                        self.failed_commit = None;
                        self.blocks.prune_through(height);
                        self.valsets.clear();
                        self.handle.set_committed(height.0);
                        if reply.send(()).is_err() {
                            warn!("engine dropped the Decided reply");
                        }
                    }
                    Err(e) => {
                        error!(%height, %round, "COMMIT FAILED, the height will be restarted: {e:#}");
                        self.failed_commit = Some(height);
                    }
                }
            }

            AppMsg::Finalized { certificate, evidence, reply, .. } => {
                let height = certificate.height;
                if !evidence.votes.is_empty() {
                    let found = self.double_votes(height, &evidence);
                    warn!(%height, count = found.len(), "validators signed conflicting votes: reporting them");
                    self.app.report_double_votes(found);
                }
                let next = if self.failed_commit == Some(height) {
                    self.failed_commit = None;
                    warn!(%height, "restarting height after a failed commit");
                    Next::Restart(height, self.height_params(height)?)
                } else {
                    let next = Height(height.0.saturating_add(1));
                    Next::Start(next, self.height_params(next)?)
                };
                if reply.send(next).is_err() {
                    warn!("engine dropped the Finalized reply");
                }
            }

            AppMsg::GetDecidedValues { range, reply } => {
                let values = self.decided_values(range.start().0, range.end().0);
                if reply.send(values).is_err() {
                    warn!("engine dropped the GetDecidedValues reply");
                }
            }

            AppMsg::ProcessSyncedValue { height, round, proposer, value_bytes, reply } => {
                let outcome = self.synced_value(height, round, proposer, value_bytes);
                if reply.send(outcome).is_err() {
                    warn!("engine dropped the ProcessSyncedValue reply");
                }
            }
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        network: &mpsc::Sender<NetworkMsg<Ctx>>,
        height: Height,
        round: Round,
        pol_round: Round,
        block: &Bytes,
    ) {
        let hash = BlockHash::of(block);
        let init =
            ProposalInit { height, round, pol_round, proposer: self.address, block_len: block.len() as u64 };
        let signature = self.signer.sign_bytes(&fin_sign_bytes(&init, &hash));
        self.nonce = self.nonce.wrapping_add(1);
        let id = stream_id(height, round, self.nonce);
        for msg in make_stream(&id, init, block, signature) {
            if network.send(NetworkMsg::PublishProposalPart(msg)).await.is_err() {
                warn!(%height, %round, "network gone, proposal not published");
                return;
            }
        }
    }

    fn received_part(
        &mut self,
        publisher: PeerId,
        part: StreamMessage<ProposalPart>,
    ) -> Option<ProposedValue<Ctx>> {
        let is_validator = self.is_validator_peer(&publisher);
        let completed = match self.streams.insert(publisher, is_validator, part) {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            Err(reason) => {
                warn!(%publisher, "dropping proposal stream: {reason}");
                return None;
            }
        };
        let h = completed.init.height;
        if h < self.height {
            debug!(height = %h, current = %self.height, "ignoring proposal for a past height");
            None
        } else if h > self.height {
            if h.0 > self.height.0.saturating_add(PENDING_LOOKAHEAD) {
                debug!(height = %h, current = %self.height, "ignoring proposal far ahead");
                return None;
            }
            // Drop forgeries now when the validator set of that height is already known (the
            // pending buffer is small); otherwise the check happens when the height starts.
            if self.validator_set(h).is_some() && self.verify_stream(&completed).is_none() {
                return None;
            }
            if self.pending.len() >= MAX_PENDING {
                self.pending.remove(0);
            }
            debug!(height = %h, "keeping proposal for a future height");
            self.pending.push(completed);
            None
        } else {
            self.accept_stream(completed)
        }
    }

    /// Whether `peer` is the p2p identity of a validator of the current or the next height (a
    /// validator's p2p key is its consensus key, `node.rs`). Cached per height.
    fn is_validator_peer(&mut self, peer: &PeerId) -> bool {
        if self.validator_peers.as_ref().is_none_or(|(h, _)| *h != self.height) {
            let mut peers = BTreeSet::new();
            for height in [self.height, Height(self.height.0 + 1)] {
                let Some(set) = self.validator_set(height) else { continue };
                peers.extend(set.validators().iter().filter_map(|v| peer_id_of(v.public_key.as_bytes())));
            }
            self.validator_peers = Some((self.height, peers));
        }
        self.validator_peers.as_ref().is_some_and(|(_, peers)| peers.contains(peer))
    }

    /// Check that a complete stream comes from the expected proposer of its (height, round) and
    /// carries its valid signature. Returns the proposer and the block hash.
    fn verify_stream(&mut self, c: &CompletedStream) -> Option<(Validator, BlockHash)> {
        let init = &c.init;
        let Some(set) = self.validator_set(init.height) else {
            debug!(height = %init.height, "no validator set for proposal height");
            return None;
        };
        let expected = set.proposer(init.height, init.round).clone();
        if expected.address != init.proposer {
            warn!(height = %init.height, round = %init.round, claimed = %init.proposer, expected = %expected.address, "proposal from the wrong proposer");
            return None;
        }
        let hash = BlockHash::of(&c.block);
        if expected.public_key.verify(&fin_sign_bytes(init, &hash), &c.signature).is_err() {
            warn!(height = %init.height, round = %init.round, proposer = %init.proposer, "invalid proposal signature");
            return None;
        }
        Some((expected, hash))
    }

    /// Check a complete stream for the current height and store it as an undecided block.
    fn accept_stream(&mut self, c: CompletedStream) -> Option<ProposedValue<Ctx>> {
        let (expected, hash) = self.verify_stream(&c)?;
        let init = c.init;
        if let Some(existing) = self.blocks.get(init.height, init.round, &hash) {
            return Some(existing.proposed_value());
        }
        let valid = c.block.len() <= self.max_block_bytes
            && self.app.check_block(init.height.0, *expected.public_key.as_bytes(), &c.block);
        if !valid {
            warn!(height = %init.height, round = %init.round, %hash, "application rejected proposed block");
        }
        let stored = StoredBlock {
            height: init.height,
            round: init.round,
            valid_round: init.pol_round,
            proposer: init.proposer,
            hash,
            block: c.block,
            validity: Validity::from_bool(valid),
            own: false,
        };
        let value = stored.proposed_value();
        self.blocks.insert(stored);
        Some(value)
    }

    /// The double votes Malachite reported at the finalization of `height`, with their signers' keys.
    fn double_votes(
        &self,
        height: Height,
        evidence: &MisbehaviorEvidence<Ctx>,
    ) -> Vec<crate::DoubleVoteEvidence> {
        self.app
            .validator_set(height.0)
            .map_or_else(Vec::new, |validators| double_votes_of(&validators, evidence))
    }

    fn decided_values(&mut self, start: u64, end: u64) -> Vec<RawDecidedValue<Ctx>> {
        let mut out = Vec::new();
        if start == 0 || start > end || start < self.app.history_min_height() {
            return out;
        }
        let end = end.min(start.saturating_add(MAX_SYNC_BATCH - 1)).min(self.app.last_committed_height());
        for h in start..=end {
            let Some((block, cert)) = self.app.committed_block(h) else { break };
            let certificate = match decode_commit_certificate(&cert) {
                Ok(c) if c.height.0 == h => c,
                Ok(c) => {
                    error!(height = h, cert_height = %c.height, "stored certificate is for another height");
                    break;
                }
                Err(e) => {
                    error!(height = h, "stored certificate does not decode: {e}");
                    break;
                }
            };
            let certificate = ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                certificate,
                Default::default(),
            );
            out.push(RawDecidedValue::new(Bytes::from(block), certificate));
        }
        out
    }

    fn synced_value(
        &mut self,
        height: Height,
        round: Round,
        proposer: Address,
        bytes: Bytes,
    ) -> SyncedValueOutcome<Ctx> {
        if bytes.len() > self.max_block_bytes {
            warn!(%height, len = bytes.len(), "synced block exceeds max_block_bytes");
            return SyncedValueOutcome::PeerFault;
        }
        if height != self.height {
            warn!(%height, current = %self.height, "synced value for another height");
        }
        let Some(set) = self.validator_set(height) else {
            warn!(%height, "no validator set for synced value");
            return SyncedValueOutcome::LocalTransientError;
        };
        let Some(pk) = set.get(&proposer).map(|v| *v.public_key.as_bytes()) else {
            warn!(%height, %proposer, "synced value proposer is not a validator");
            return SyncedValueOutcome::LocalTransientError;
        };
        let hash = BlockHash::of(&bytes);
        let validity = match self.blocks.find(height, &hash) {
            Some(b) => b.validity,
            None => Validity::from_bool(self.app.check_block(height.0, pk, &bytes)),
        };
        if validity.is_invalid() {
            error!(%height, %hash, "application rejects a synced (already decided) block");
        }
        let stored = StoredBlock {
            height,
            round,
            valid_round: Round::Nil,
            proposer,
            hash,
            block: bytes,
            validity,
            own: false,
        };
        let value = ProposedValue { valid_round: Round::Nil, ..stored.proposed_value() };
        self.blocks.insert(stored);
        debug!(%height, %round, %hash, "processed synced value");
        SyncedValueOutcome::Verdict(value)
    }
}

#[cfg(test)]
mod tests {
    use malachitebft_app_channel::app::types::core::{NilOrVal, SignedMessage, VoteType};
    use malachitebft_signing_ed25519::PrivateKey;

    use super::*;
    use crate::context::Vote;
    use crate::signing::vote_sign_bytes;

    /// The double votes Malachite reports carry the engine's signatures over the bytes the chain
    /// checks evidence against (`gonka_primitives::consensus`).
    #[test]
    fn the_engines_double_votes_verify_as_the_chain_checks_them() {
        let key = PrivateKey::from([7u8; 32]);
        let public = *key.public_key().as_bytes();
        let provider = Ed25519Provider::new(key);
        let vote = |value| Vote {
            vote_type: VoteType::Precommit,
            height: Height(5),
            round: Round::new(1),
            value,
            validator: Address::from_public_key(&public),
            extension: None,
        };
        let signed = |vote: Vote| {
            let signature = provider.sign_bytes(&vote_sign_bytes(&vote));
            SignedMessage::new(vote, signature)
        };
        let mut evidence = MisbehaviorEvidence { proposals: Default::default(), votes: Default::default() };
        evidence.votes.add(signed(vote(NilOrVal::Val(BlockHash([1; 32])))), signed(vote(NilOrVal::Nil)));
        let validators = [ValidatorInfo { public_key: public, voting_power: 1 }];
        let found = double_votes_of(&validators, &evidence);
        assert_eq!(found.len(), 1);
        let e = &found[0];
        assert_eq!(
            (e.kind, e.height, e.round, e.first.0, e.second.0),
            (gonka_primitives::consensus::PRECOMMIT, 5, 1, Some([1; 32]), None)
        );
        let chain_key = gonka_primitives::ValidatorPublicKey(e.public_key);
        let address = gonka_primitives::consensus::validator_address(&chain_key);
        for (value, signature) in [e.first, e.second] {
            let bytes = gonka_primitives::consensus::vote_sign_bytes(
                e.kind,
                e.height,
                Some(e.round),
                value.as_ref(),
                &address,
            );
            assert_eq!(chain_key.verify(&bytes, &gonka_primitives::ValidatorSignature(signature)), Ok(()));
        }
        assert!(double_votes_of(&[], &evidence).is_empty(), "a signer outside the set is not reported");
    }
}
