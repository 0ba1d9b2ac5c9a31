//! Proposal streaming: splitting a block into `Init, Data.., Fin(signature)` parts and
//! reassembling streams received from peers, with bounds on everything a peer controls.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_app_channel::app::types::core::Round;
use malachitebft_signing_ed25519::Signature;

use crate::context::{Height, ProposalInit, ProposalPart};

/// Size of one data part.
pub(crate) const PART_CHUNK: usize = 256 * 1024;
/// Most in-flight streams per validator (publishers are validators only): beyond it the validator's
/// own oldest is evicted, never another's. So the buffer holds at most validators × this many
/// streams, each at most a block.
const MAX_STREAMS_PER_PEER: usize = 4;
/// Highest sequence number accepted in a stream.
const MAX_SEQUENCE: u64 = 1 << 16;

/// Stream id: height, round and a per-node nonce, so a restream never collides with an
/// earlier stream of the same proposal.
pub(crate) fn stream_id(height: Height, round: Round, nonce: u64) -> StreamId {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&height.0.to_be_bytes());
    b.extend_from_slice(&round.as_u32().unwrap_or(u32::MAX).to_be_bytes());
    b.extend_from_slice(&nonce.to_be_bytes());
    StreamId::new(Bytes::from(b))
}

/// The messages of one proposal stream.
pub(crate) fn make_stream(
    id: &StreamId,
    init: ProposalInit,
    block: &Bytes,
    signature: Signature,
) -> Vec<StreamMessage<ProposalPart>> {
    let mut msgs = Vec::with_capacity(block.len() / PART_CHUNK + 4);
    let mut seq = 0u64;
    let mut push = |content| {
        msgs.push(StreamMessage::new(id.clone(), seq, content));
        seq += 1;
    };
    push(StreamContent::Data(ProposalPart::Init(init)));
    let mut offset = 0;
    while offset < block.len() {
        let end = (offset + PART_CHUNK).min(block.len());
        push(StreamContent::Data(ProposalPart::Data(block.slice(offset..end))));
        offset = end;
    }
    push(StreamContent::Data(ProposalPart::Fin(signature)));
    push(StreamContent::Fin);
    msgs
}

/// A fully received stream (signature not yet checked).
#[derive(Clone, Debug)]
pub(crate) struct CompletedStream {
    pub(crate) init: ProposalInit,
    pub(crate) block: Bytes,
    pub(crate) signature: Signature,
}

#[derive(Default)]
struct StreamState {
    order: u64,
    init: Option<ProposalInit>,
    data: BTreeMap<u64, Bytes>,
    data_bytes: usize,
    fin: Option<(u64, Signature)>,
    end: Option<u64>,
}

/// Reassembles streams, keyed by publisher and stream id. Only streams published by a current
/// validator are buffered (issue 12, item 9): gossipsub signs each message with its publisher's p2p
/// key, which for a validator is its consensus key, so a peer cannot publish under a validator's
/// identity, and made-up identities are not validators.
pub(crate) struct PartStreams {
    streams: HashMap<(PeerId, StreamId), StreamState>,
    next_order: u64,
    max_block_bytes: usize,
}

impl PartStreams {
    pub(crate) fn new(max_block_bytes: usize) -> Self {
        Self { streams: HashMap::new(), next_order: 0, max_block_bytes }
    }

    /// Add one message from `publisher`, which `is_validator` says is (the p2p identity of) a
    /// current validator. `Ok(Some)` when it completes a stream, `Err` when the stream breaks a rule
    /// (it is then dropped) or its publisher is not a validator (nothing is kept).
    pub(crate) fn insert(
        &mut self,
        publisher: PeerId,
        is_validator: bool,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<CompletedStream>, &'static str> {
        let key = (publisher, msg.stream_id.clone());
        if !self.streams.contains_key(&key) {
            if !is_validator {
                return Err("publisher is not a current validator");
            }
            let own = self.streams.keys().filter(|(p, _)| *p == publisher).count();
            let victim =
                if own >= MAX_STREAMS_PER_PEER { self.oldest(|(p, _)| *p == publisher) } else { None };
            if let Some(victim) = victim {
                self.streams.remove(&victim);
            }
            self.next_order += 1;
            self.streams.insert(key.clone(), StreamState { order: self.next_order, ..Default::default() });
        }
        let result = match self.streams.get_mut(&key) {
            Some(state) => Self::apply(state, msg, self.max_block_bytes),
            None => Err("stream state missing"),
        };
        match result {
            Ok(Some(done)) => {
                self.streams.remove(&key);
                Ok(Some(done))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.streams.remove(&key);
                Err(e)
            }
        }
    }

    fn oldest(&self, filter: impl Fn(&(PeerId, StreamId)) -> bool) -> Option<(PeerId, StreamId)> {
        self.streams.iter().filter(|(k, _)| filter(k)).min_by_key(|(_, s)| s.order).map(|(k, _)| k.clone())
    }

    fn apply(
        s: &mut StreamState,
        msg: StreamMessage<ProposalPart>,
        max_block_bytes: usize,
    ) -> Result<Option<CompletedStream>, &'static str> {
        let seq = msg.sequence;
        if seq > MAX_SEQUENCE {
            return Err("sequence too large");
        }
        match msg.content {
            StreamContent::Fin => {
                if s.end.is_some_and(|e| e != seq) {
                    return Err("conflicting stream end");
                }
                s.end = Some(seq);
            }
            StreamContent::Data(ProposalPart::Init(init)) => {
                if seq != 0 {
                    return Err("init part not first");
                }
                if init.block_len > max_block_bytes as u64 {
                    return Err("declared block too large");
                }
                if s.init.is_none() {
                    s.init = Some(init);
                }
            }
            StreamContent::Data(ProposalPart::Data(bytes)) => {
                if seq == 0 {
                    return Err("data part first");
                }
                if !s.data.contains_key(&seq) {
                    s.data_bytes = s.data_bytes.saturating_add(bytes.len());
                    if s.data_bytes > max_block_bytes {
                        return Err("block too large");
                    }
                    s.data.insert(seq, bytes);
                }
            }
            StreamContent::Data(ProposalPart::Fin(sig)) => {
                if seq == 0 {
                    return Err("fin part first");
                }
                if s.fin.is_some_and(|(f, _)| f != seq) {
                    return Err("conflicting fin part");
                }
                s.fin = Some((seq, sig));
            }
        }

        // Structural checks that can be made as soon as the fin part is known.
        if let Some((fin_seq, _)) = s.fin {
            if s.end.is_some_and(|e| e != fin_seq + 1) {
                return Err("fin part not last");
            }
            if s.data.keys().next_back().is_some_and(|&last| last >= fin_seq) {
                return Err("data after fin part");
            }
        }
        if let Some(end) = s.end
            && s.data.keys().next_back().is_some_and(|&last| last >= end)
        {
            return Err("data after stream end");
        }

        let (Some(init), Some((fin_seq, signature)), Some(_)) = (&s.init, s.fin, s.end) else {
            return Ok(None);
        };
        let expected_data = fin_seq - 1;
        if s.data.len() as u64 != expected_data {
            return Ok(None);
        }
        // All of 1..fin_seq are present (keys are unique, all in range 1..fin_seq).
        if s.data_bytes as u64 != init.block_len {
            return Err("block length mismatch");
        }
        let mut block = Vec::with_capacity(s.data_bytes);
        for chunk in s.data.values() {
            block.extend_from_slice(chunk);
        }
        Ok(Some(CompletedStream { init: init.clone(), block: Bytes::from(block), signature }))
    }

    /// Forget streams for heights below `height`.
    pub(crate) fn prune(&mut self, height: Height) {
        self.streams.retain(|_, s| s.init.as_ref().is_none_or(|i| i.height >= height));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Address;
    use malachitebft_app_channel::app::types::Keypair;

    fn peer_n(n: u8) -> PeerId {
        let kp = Keypair::ed25519_from_bytes([n; 32]).unwrap();
        PeerId::from_bytes(&kp.public().to_peer_id().to_bytes()).unwrap()
    }

    fn peer() -> PeerId {
        let kp = Keypair::ed25519_from_bytes([1u8; 32]).unwrap();
        PeerId::from_bytes(&kp.public().to_peer_id().to_bytes()).unwrap()
    }

    fn init(len: usize) -> ProposalInit {
        ProposalInit {
            height: Height(3),
            round: Round::new(0),
            pol_round: Round::Nil,
            proposer: Address([1; 20]),
            block_len: len as u64,
        }
    }

    #[test]
    fn reassembles_out_of_order() {
        let block = Bytes::from(vec![7u8; PART_CHUNK * 2 + 5]);
        let msgs = make_stream(
            &stream_id(Height(3), Round::new(0), 1),
            init(block.len()),
            &block,
            Signature::from_bytes([0; 64]),
        );
        let mut streams = PartStreams::new(1 << 20);
        let peer = peer();
        let mut done = None;
        for m in msgs.into_iter().rev() {
            if let Some(d) = streams.insert(peer, true, m).unwrap() {
                done = Some(d);
            }
        }
        assert_eq!(done.unwrap().block, block);
    }

    #[test]
    fn rejects_oversized() {
        let block = Bytes::from(vec![7u8; 100]);
        let msgs = make_stream(
            &stream_id(Height(3), Round::new(0), 1),
            init(100),
            &block,
            Signature::from_bytes([0; 64]),
        );
        let mut streams = PartStreams::new(50);
        let peer = peer();
        assert!(msgs.into_iter().any(|m| streams.insert(peer, true, m).is_err()));
    }

    #[test]
    fn a_validators_peer_id_is_the_one_its_consensus_key_gives_its_node() {
        let secret = [5u8; 32];
        let node = Keypair::ed25519_from_bytes(secret).unwrap().public().to_peer_id();
        let public = malachitebft_signing_ed25519::PrivateKey::from(secret).public_key();
        assert_eq!(
            crate::host::peer_id_of(public.as_bytes()),
            Some(PeerId::from_bytes(&node.to_bytes()).unwrap())
        );
    }

    #[test]
    fn streams_of_publishers_that_are_not_validators_are_not_kept() {
        // Issue 12, item 9: made-up identities flooding Init parts used to evict the proposer's stream.
        let block = Bytes::from(vec![1u8; 10]);
        let mut streams = PartStreams::new(1 << 20);
        let honest = make_stream(
            &stream_id(Height(3), Round::new(0), 1),
            init(10),
            &block,
            Signature::from_bytes([0; 64]),
        );
        let (first, rest) = honest.split_first().unwrap();
        assert!(streams.insert(peer(), true, first.clone()).unwrap().is_none());
        for identity in 10..=255u8 {
            for nonce in 0..4 {
                let m = make_stream(
                    &stream_id(Height(3), Round::new(0), nonce),
                    init(10),
                    &block,
                    Signature::from_bytes([0; 64]),
                );
                assert!(streams.insert(peer_n(identity), false, m[0].clone()).is_err());
            }
        }
        assert_eq!(streams.streams.len(), 1, "nothing of theirs is buffered");
        let mut done = None;
        for m in rest {
            done = streams.insert(peer(), true, m.clone()).unwrap().or(done);
        }
        assert_eq!(done.unwrap().block, block);
    }

    #[test]
    fn one_peer_cannot_evict_others() {
        let block = Bytes::from(vec![1u8; 10]);
        let mut streams = PartStreams::new(1 << 20);
        let honest = make_stream(
            &stream_id(Height(3), Round::new(0), 1),
            init(10),
            &block,
            Signature::from_bytes([0; 64]),
        );
        let (first, rest) = honest.split_first().unwrap();
        assert!(streams.insert(peer(), true, first.clone()).unwrap().is_none());
        // A flood of half-open streams from another peer.
        for nonce in 0..1000 {
            let m = make_stream(
                &stream_id(Height(3), Round::new(0), nonce),
                init(10),
                &block,
                Signature::from_bytes([0; 64]),
            );
            streams.insert(peer_n(9), true, m[0].clone()).unwrap();
        }
        let mut done = None;
        for m in rest {
            done = streams.insert(peer(), true, m.clone()).unwrap().or(done);
        }
        assert_eq!(done.unwrap().block, block);
        assert!(streams.streams.len() <= MAX_STREAMS_PER_PEER + 1);
    }
}
