//! Compact hand-written binary codec for everything Malachite puts on the wire or in the WAL,
//! plus gonka's commit-certificate bytes.
//!
//! Layout: big-endian fixed-width integers, `u32` length prefixes for byte strings and lists,
//! one tag byte for enums. Decoding never panics: every read is bounds-checked, lengths are
//! checked against the remaining input before allocating, list lengths are capped, and a
//! message must be consumed exactly (no trailing bytes).

use bytes::Bytes;
use thiserror::Error;

use malachitebft_app_channel::app::consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal,
    PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType, RoundSignature,
    SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_signing_ed25519::Signature;
use malachitebft_sync::{ValueRequest, ValueResponse};

use crate::context::{
    ADDRESS_LEN, Address, BlockHash, GonkaContext, Height, Proposal, ProposalInit, ProposalPart, Vote,
};

type Ctx = GonkaContext;

/// Most signatures accepted in one certificate.
pub(crate) const MAX_SIGNATURES: usize = 10_000;
/// Most decided values accepted in one sync response.
pub(crate) const MAX_SYNC_VALUES: usize = 1_000;
/// Longest stream id accepted.
const MAX_STREAM_ID: usize = 64;
/// Longest public key / peer id accepted in a validator proof or status.
const MAX_KEY_BYTES: usize = 128;

/// A decoding (or, never in practice, encoding) failure.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// Input ended early.
    #[error("unexpected end of input")]
    Eof,
    /// Bytes left after the message.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// Unknown enum tag.
    #[error("invalid tag {tag} for {what}")]
    Tag {
        /// The type being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A length or count over its limit.
    #[error("{what} too long: {len}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// Its declared length.
        len: usize,
    },
    /// A structurally invalid field.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(Vec::with_capacity(128))
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn len(&mut self, n: usize) {
        // Every length we write came from a decoded or locally built value far below 4 GiB;
        // saturate rather than wrap so a pathological value fails to decode instead of aliasing.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.raw(b);
    }

    fn height(&mut self, h: Height) {
        self.u64(h.0);
    }

    fn round(&mut self, r: Round) {
        match r.as_u32() {
            None => self.u8(0),
            Some(r) => {
                self.u8(1);
                self.u32(r);
            }
        }
    }

    fn address(&mut self, a: &Address) {
        self.raw(&a.0);
    }

    fn hash(&mut self, h: &BlockHash) {
        self.raw(&h.0);
    }

    fn signature(&mut self, s: &Signature) {
        self.raw(&s.to_bytes());
    }

    fn nil_or_val(&mut self, v: &NilOrVal<BlockHash>) {
        match v {
            NilOrVal::Nil => self.u8(0),
            NilOrVal::Val(h) => {
                self.u8(1);
                self.hash(h);
            }
        }
    }

    fn vote_type(&mut self, t: VoteType) {
        self.u8(match t {
            VoteType::Prevote => 0,
            VoteType::Precommit => 1,
        });
    }

    fn finish(self) -> Bytes {
        Bytes::from(self.0)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Eof);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A length prefix that must fit in the remaining input (each item at least `min_item` bytes)
    /// and under `max`.
    fn len(&mut self, what: &'static str, min_item: usize, max: usize) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(CodecError::TooLong { what, len: n });
        }
        if n.saturating_mul(min_item.max(1)) > self.buf.len() {
            return Err(CodecError::Eof);
        }
        Ok(n)
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], CodecError> {
        let n = self.len(what, 1, max)?;
        self.take(n)
    }

    fn height(&mut self) -> Result<Height, CodecError> {
        Ok(Height(self.u64()?))
    }

    fn round(&mut self) -> Result<Round, CodecError> {
        match self.u8()? {
            0 => Ok(Round::Nil),
            1 => Ok(Round::new(self.u32()?)),
            tag => Err(CodecError::Tag { what: "round", tag }),
        }
    }

    fn address(&mut self) -> Result<Address, CodecError> {
        Ok(Address(self.array::<ADDRESS_LEN>()?))
    }

    fn hash(&mut self) -> Result<BlockHash, CodecError> {
        Ok(BlockHash(self.array::<32>()?))
    }

    fn signature(&mut self) -> Result<Signature, CodecError> {
        Ok(Signature::from_bytes(self.array::<64>()?))
    }

    fn nil_or_val(&mut self) -> Result<NilOrVal<BlockHash>, CodecError> {
        match self.u8()? {
            0 => Ok(NilOrVal::Nil),
            1 => Ok(NilOrVal::Val(self.hash()?)),
            tag => Err(CodecError::Tag { what: "nil-or-value", tag }),
        }
    }

    fn vote_type(&mut self) -> Result<VoteType, CodecError> {
        match self.u8()? {
            0 => Ok(VoteType::Prevote),
            1 => Ok(VoteType::Precommit),
            tag => Err(CodecError::Tag { what: "vote type", tag }),
        }
    }

    fn finish<T>(self, value: T) -> Result<T, CodecError> {
        if self.buf.is_empty() { Ok(value) } else { Err(CodecError::Trailing(self.buf.len())) }
    }
}

// ---- per-type encoders/decoders -------------------------------------------------------------

fn put_vote(w: &mut Writer, v: &Vote) {
    w.vote_type(v.vote_type);
    w.height(v.height);
    w.round(v.round);
    w.nil_or_val(&v.value);
    w.address(&v.validator);
    match &v.extension {
        None => w.u8(0),
        Some(ext) => {
            w.u8(1);
            w.bytes(&ext.message);
            w.signature(&ext.signature);
        }
    }
}

fn get_vote(r: &mut Reader<'_>) -> Result<Vote, CodecError> {
    let vote_type = r.vote_type()?;
    let height = r.height()?;
    let round = r.round()?;
    let value = r.nil_or_val()?;
    let validator = r.address()?;
    let extension = match r.u8()? {
        0 => None,
        1 => {
            let msg = Bytes::copy_from_slice(r.bytes("vote extension", usize::MAX)?);
            let sig = r.signature()?;
            Some(SignedMessage::new(msg, sig))
        }
        tag => return Err(CodecError::Tag { what: "vote extension", tag }),
    };
    Ok(Vote { vote_type, height, round, value, validator, extension })
}

fn put_proposal(w: &mut Writer, p: &Proposal) {
    w.height(p.height);
    w.round(p.round);
    w.hash(&p.value);
    w.round(p.pol_round);
    w.address(&p.proposer);
}

fn get_proposal(r: &mut Reader<'_>) -> Result<Proposal, CodecError> {
    Ok(Proposal {
        height: r.height()?,
        round: r.round()?,
        value: r.hash()?,
        pol_round: r.round()?,
        proposer: r.address()?,
    })
}

fn put_part(w: &mut Writer, p: &ProposalPart) {
    match p {
        ProposalPart::Init(i) => {
            w.u8(0);
            w.height(i.height);
            w.round(i.round);
            w.round(i.pol_round);
            w.address(&i.proposer);
            w.u64(i.block_len);
        }
        ProposalPart::Data(d) => {
            w.u8(1);
            w.bytes(d);
        }
        ProposalPart::Fin(s) => {
            w.u8(2);
            w.signature(s);
        }
    }
}

fn get_part(r: &mut Reader<'_>) -> Result<ProposalPart, CodecError> {
    match r.u8()? {
        0 => Ok(ProposalPart::Init(ProposalInit {
            height: r.height()?,
            round: r.round()?,
            pol_round: r.round()?,
            proposer: r.address()?,
            block_len: r.u64()?,
        })),
        1 => Ok(ProposalPart::Data(Bytes::copy_from_slice(r.bytes("proposal data", usize::MAX)?))),
        2 => Ok(ProposalPart::Fin(r.signature()?)),
        tag => Err(CodecError::Tag { what: "proposal part", tag }),
    }
}

fn put_polka(w: &mut Writer, c: &PolkaCertificate<Ctx>) {
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.polka_signatures.len());
    for s in &c.polka_signatures {
        w.address(&s.address);
        w.signature(&s.signature);
    }
}

fn get_polka(r: &mut Reader<'_>) -> Result<PolkaCertificate<Ctx>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let value_id = r.hash()?;
    let n = r.len("polka signatures", ADDRESS_LEN + 64, MAX_SIGNATURES)?;
    let mut polka_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        polka_signatures.push(PolkaSignature::new(r.address()?, r.signature()?));
    }
    Ok(PolkaCertificate { height, round, value_id, polka_signatures })
}

fn put_round_cert(w: &mut Writer, c: &RoundCertificate<Ctx>) {
    w.height(c.height);
    w.round(c.round);
    w.u8(match c.cert_type {
        RoundCertificateType::Skip => 0,
        RoundCertificateType::Precommit => 1,
    });
    w.len(c.round_signatures.len());
    for s in &c.round_signatures {
        w.vote_type(s.vote_type);
        w.nil_or_val(&s.value_id);
        w.address(&s.address);
        w.signature(&s.signature);
    }
}

fn get_round_cert(r: &mut Reader<'_>) -> Result<RoundCertificate<Ctx>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let cert_type = match r.u8()? {
        0 => RoundCertificateType::Skip,
        1 => RoundCertificateType::Precommit,
        tag => return Err(CodecError::Tag { what: "round certificate type", tag }),
    };
    let n = r.len("round signatures", 2 + ADDRESS_LEN + 64, MAX_SIGNATURES)?;
    let mut round_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let vote_type = r.vote_type()?;
        let value_id = r.nil_or_val()?;
        round_signatures.push(RoundSignature::new(vote_type, value_id, r.address()?, r.signature()?));
    }
    Ok(RoundCertificate { height, round, cert_type, round_signatures })
}

fn put_commit(w: &mut Writer, c: &CommitCertificate<Ctx>) {
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.commit_signatures.len());
    for s in &c.commit_signatures {
        w.address(&s.address);
        w.signature(&s.signature);
    }
}

fn get_commit(r: &mut Reader<'_>) -> Result<CommitCertificate<Ctx>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let value_id = r.hash()?;
    let n = r.len("commit signatures", ADDRESS_LEN + 64, MAX_SIGNATURES)?;
    let mut commit_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        commit_signatures.push(CommitSignature::new(r.address()?, r.signature()?));
    }
    Ok(CommitCertificate { height, round, value_id, commit_signatures })
}

fn put_ext_commit(w: &mut Writer, c: &ExtendedCommitCertificate<Ctx>) {
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.commit_signatures.len());
    for s in &c.commit_signatures {
        w.address(&s.address);
        w.signature(&s.signature);
        match &s.extension {
            None => w.u8(0),
            Some(ext) => {
                w.u8(1);
                w.bytes(&ext.message);
                w.signature(&ext.signature);
            }
        }
    }
}

fn get_ext_commit(r: &mut Reader<'_>) -> Result<ExtendedCommitCertificate<Ctx>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let value_id = r.hash()?;
    let n = r.len("commit signatures", ADDRESS_LEN + 65, MAX_SIGNATURES)?;
    let mut commit_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let address = r.address()?;
        let signature = r.signature()?;
        let extension = match r.u8()? {
            0 => None,
            1 => {
                let msg = Bytes::copy_from_slice(r.bytes("vote extension", usize::MAX)?);
                Some(SignedMessage::new(msg, r.signature()?))
            }
            tag => return Err(CodecError::Tag { what: "vote extension", tag }),
        };
        commit_signatures.push(ExtendedCommitSignature::new(address, signature, extension));
    }
    Ok(ExtendedCommitCertificate { height, round, value_id, commit_signatures })
}

fn put_response(w: &mut Writer, resp: &Response<Ctx>) {
    let Response::ValueResponse(v) = resp;
    w.u8(0);
    w.height(v.start_height);
    w.len(v.values.len());
    for value in &v.values {
        w.bytes(&value.value_bytes);
        put_ext_commit(w, &value.certificate);
    }
}

fn decode_with<T>(
    bytes: &[u8],
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    let mut r = Reader::new(bytes);
    let value = f(&mut r)?;
    r.finish(value)
}

fn encode_with(f: impl FnOnce(&mut Writer)) -> Bytes {
    let mut w = Writer::new();
    f(&mut w);
    w.finish()
}

/// Encode a commit certificate into the opaque bytes handed to `Application::commit_block`.
pub fn encode_commit_certificate(certificate: &CommitCertificate<Ctx>) -> Vec<u8> {
    encode_with(|w| {
        w.u8(1); // format version
        put_commit(w, certificate);
    })
    .to_vec()
}

/// Decode bytes produced by [`encode_commit_certificate`].
pub fn decode_commit_certificate(bytes: &[u8]) -> Result<CommitCertificate<Ctx>, CodecError> {
    decode_with(bytes, |r| match r.u8()? {
        1 => get_commit(r),
        tag => Err(CodecError::Tag { what: "certificate version", tag }),
    })
}

/// The codec Malachite uses for gossip, sync and the WAL.
#[derive(Copy, Clone, Debug, Default)]
pub struct WireCodec;

macro_rules! impl_codec {
    ($ty:ty, |$w:ident, $v:ident| $enc:block, |$r:ident| $dec:block) => {
        impl Codec<$ty> for WireCodec {
            type Error = CodecError;

            fn decode(&self, bytes: Bytes) -> Result<$ty, CodecError> {
                decode_with(&bytes, |$r| $dec)
            }

            fn encode(&self, $v: &$ty) -> Result<Bytes, CodecError> {
                Ok(encode_with(|$w| $enc))
            }
        }
    };
}

impl_codec!(ProposalPart, |w, v| { put_part(w, v) }, |r| { get_part(r) });

impl_codec!(
    SignedConsensusMsg<Ctx>,
    |w, v| {
        match v {
            SignedConsensusMsg::Vote(sv) => {
                w.u8(0);
                put_vote(w, &sv.message);
                w.signature(&sv.signature);
            }
            SignedConsensusMsg::Proposal(sp) => {
                w.u8(1);
                put_proposal(w, &sp.message);
                w.signature(&sp.signature);
            }
        }
    },
    |r| {
        match r.u8()? {
            0 => {
                let vote = get_vote(r)?;
                Ok(SignedConsensusMsg::Vote(SignedMessage::new(vote, r.signature()?)))
            }
            1 => {
                let proposal = get_proposal(r)?;
                Ok(SignedConsensusMsg::Proposal(SignedMessage::new(proposal, r.signature()?)))
            }
            tag => Err(CodecError::Tag { what: "consensus message", tag }),
        }
    }
);

impl_codec!(
    LivenessMsg<Ctx>,
    |w, v| {
        match v {
            LivenessMsg::Vote(sv) => {
                w.u8(0);
                put_vote(w, &sv.message);
                w.signature(&sv.signature);
            }
            LivenessMsg::PolkaCertificate(c) => {
                w.u8(1);
                put_polka(w, c);
            }
            LivenessMsg::SkipRoundCertificate(c) => {
                w.u8(2);
                put_round_cert(w, c);
            }
        }
    },
    |r| {
        match r.u8()? {
            0 => {
                let vote = get_vote(r)?;
                Ok(LivenessMsg::Vote(SignedMessage::new(vote, r.signature()?)))
            }
            1 => Ok(LivenessMsg::PolkaCertificate(get_polka(r)?)),
            2 => Ok(LivenessMsg::SkipRoundCertificate(get_round_cert(r)?)),
            tag => Err(CodecError::Tag { what: "liveness message", tag }),
        }
    }
);

impl_codec!(
    StreamMessage<ProposalPart>,
    |w, v| {
        w.bytes(&v.stream_id.to_bytes());
        w.u64(v.sequence);
        match &v.content {
            StreamContent::Data(part) => {
                w.u8(0);
                put_part(w, part);
            }
            StreamContent::Fin => w.u8(1),
        }
    },
    |r| {
        let stream_id = StreamId::new(Bytes::copy_from_slice(r.bytes("stream id", MAX_STREAM_ID)?));
        let sequence = r.u64()?;
        let content = match r.u8()? {
            0 => StreamContent::Data(get_part(r)?),
            1 => StreamContent::Fin,
            tag => return Err(CodecError::Tag { what: "stream content", tag }),
        };
        Ok(StreamMessage::new(stream_id, sequence, content))
    }
);

impl_codec!(
    ValidatorProof<Ctx>,
    |w, v| {
        w.bytes(&v.public_key);
        w.bytes(&v.peer_id);
        w.signature(&v.signature);
    },
    |r| {
        let public_key = r.bytes("public key", MAX_KEY_BYTES)?.to_vec();
        let peer_id = r.bytes("peer id", MAX_KEY_BYTES)?.to_vec();
        Ok(ValidatorProof::new(public_key, peer_id, r.signature()?))
    }
);

impl_codec!(PolkaCertificate<Ctx>, |w, v| { put_polka(w, v) }, |r| { get_polka(r) });

impl_codec!(
    ProposedValue<Ctx>,
    |w, v| {
        w.height(v.height);
        w.round(v.round);
        w.round(v.valid_round);
        w.address(&v.proposer);
        w.hash(&v.value);
        w.u8(u8::from(v.validity.is_valid()));
    },
    |r| {
        let height = r.height()?;
        let round = r.round()?;
        let valid_round = r.round()?;
        let proposer = r.address()?;
        let value = r.hash()?;
        let validity = match r.u8()? {
            0 => Validity::Invalid,
            1 => Validity::Valid,
            tag => return Err(CodecError::Tag { what: "validity", tag }),
        };
        Ok(ProposedValue { height, round, valid_round, proposer, value, validity })
    }
);

impl_codec!(
    Status<Ctx>,
    |w, v| {
        w.bytes(&v.peer_id.to_bytes());
        w.height(v.tip_height);
        w.height(v.history_min_height);
    },
    |r| {
        let peer_id = PeerId::from_bytes(r.bytes("peer id", MAX_KEY_BYTES)?)
            .map_err(|_| CodecError::Invalid("peer id"))?;
        Ok(Status { peer_id, tip_height: r.height()?, history_min_height: r.height()? })
    }
);

impl_codec!(
    Request<Ctx>,
    |w, v| {
        let Request::ValueRequest(req) = v;
        w.u8(0);
        w.height(*req.range.start());
        w.height(*req.range.end());
    },
    |r| {
        match r.u8()? {
            0 => {
                let start = r.height()?;
                let end = r.height()?;
                Ok(Request::ValueRequest(ValueRequest::new(start..=end)))
            }
            tag => Err(CodecError::Tag { what: "sync request", tag }),
        }
    }
);

impl_codec!(Response<Ctx>, |w, v| { put_response(w, v) }, |r| {
    match r.u8()? {
        0 => {
            let start_height = r.height()?;
            let n = r.len("sync values", 4 + 8, MAX_SYNC_VALUES)?;
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                let value_bytes = Bytes::copy_from_slice(r.bytes("synced value", usize::MAX)?);
                let certificate = get_ext_commit(r)?;
                values.push(RawDecidedValue::new(value_bytes, certificate));
            }
            Ok(Response::ValueResponse(ValueResponse::new(start_height, values)))
        }
        tag => Err(CodecError::Tag { what: "sync response", tag }),
    }
});

fn round_len(r: Round) -> usize {
    if r.is_defined() { 5 } else { 1 }
}

impl HasEncodedLen<Response<Ctx>> for WireCodec {
    fn encoded_len(&self, msg: &Response<Ctx>) -> Result<usize, CodecError> {
        let Response::ValueResponse(v) = msg;
        let mut len = 1 + 8 + 4;
        for value in &v.values {
            len += 4 + value.value_bytes.len();
            len += 8 + round_len(value.certificate.round) + 32 + 4;
            for s in &value.certificate.commit_signatures {
                len += ADDRESS_LEN + 64 + 1;
                if let Some(ext) = &s.extension {
                    len += 4 + ext.message.len() + 64;
                }
            }
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T>(v: &T)
    where
        WireCodec: Codec<T>,
        T: PartialEq + std::fmt::Debug,
        <WireCodec as Codec<T>>::Error: std::fmt::Debug,
    {
        let bytes = WireCodec.encode(v).unwrap();
        let back: T = WireCodec.decode(bytes.clone()).unwrap();
        assert_eq!(&back, v);
        // Every strict prefix fails cleanly, and a trailing byte is rejected.
        for cut in 0..bytes.len() {
            assert!(WireCodec.decode(bytes.slice(..cut)).is_err());
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(WireCodec.decode(Bytes::from(longer)).is_err());
    }

    fn sig(b: u8) -> Signature {
        Signature::from_bytes([b; 64])
    }

    #[test]
    fn roundtrips() {
        let vote = Vote {
            vote_type: VoteType::Precommit,
            height: Height(7),
            round: Round::new(2),
            value: NilOrVal::Val(BlockHash([3; 32])),
            validator: Address([4; 20]),
            extension: Some(SignedMessage::new(Bytes::from_static(b"ext"), sig(5))),
        };
        roundtrip(&SignedConsensusMsg::<Ctx>::Vote(SignedMessage::new(vote.clone(), sig(1))));
        let proposal = Proposal {
            height: Height(9),
            round: Round::new(0),
            value: BlockHash([1; 32]),
            pol_round: Round::Nil,
            proposer: Address([2; 20]),
        };
        roundtrip(&SignedConsensusMsg::<Ctx>::Proposal(SignedMessage::new(proposal, sig(2))));
        roundtrip(&ProposalPart::Data(Bytes::from_static(b"block")));
        roundtrip(&StreamMessage::new(
            StreamId::new(Bytes::from_static(b"sid")),
            3,
            StreamContent::Data(ProposalPart::Init(ProposalInit {
                height: Height(1),
                round: Round::new(1),
                pol_round: Round::new(0),
                proposer: Address([9; 20]),
                block_len: 5,
            })),
        ));
        let commit = CommitCertificate::<Ctx> {
            height: Height(5),
            round: Round::new(1),
            value_id: BlockHash([8; 32]),
            commit_signatures: vec![CommitSignature::new(Address([1; 20]), sig(3))],
        };
        let bytes = encode_commit_certificate(&commit);
        assert_eq!(decode_commit_certificate(&bytes).unwrap(), commit);
        let ext =
            ExtendedCommitCertificate::from_commit_certificate_and_extensions(commit, Default::default());
        let resp = Response::ValueResponse(ValueResponse::new(
            Height(5),
            vec![RawDecidedValue::new(Bytes::from_static(b"blk"), ext)],
        ));
        assert_eq!(WireCodec.encoded_len(&resp).unwrap(), WireCodec.encode(&resp).unwrap().len());
        roundtrip(&resp);
        roundtrip(&LivenessMsg::<Ctx>::Vote(SignedMessage::new(vote, sig(6))));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz over all decoders.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for len in 0..300usize {
            for _ in 0..20 {
                let mut buf = Vec::with_capacity(len);
                for _ in 0..len {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    buf.push((seed & 0xff) as u8);
                }
                let b = Bytes::from(buf);
                let _ = Codec::<ProposalPart>::decode(&WireCodec, b.clone());
                let _ = Codec::<SignedConsensusMsg<Ctx>>::decode(&WireCodec, b.clone());
                let _ = Codec::<LivenessMsg<Ctx>>::decode(&WireCodec, b.clone());
                let _ = Codec::<StreamMessage<ProposalPart>>::decode(&WireCodec, b.clone());
                let _ = Codec::<ValidatorProof<Ctx>>::decode(&WireCodec, b.clone());
                let _ = Codec::<PolkaCertificate<Ctx>>::decode(&WireCodec, b.clone());
                let _ = Codec::<ProposedValue<Ctx>>::decode(&WireCodec, b.clone());
                let _ = Codec::<Status<Ctx>>::decode(&WireCodec, b.clone());
                let _ = Codec::<Request<Ctx>>::decode(&WireCodec, b.clone());
                let _ = Codec::<Response<Ctx>>::decode(&WireCodec, b.clone());
                let _ = decode_commit_certificate(&b);
            }
        }
    }
}
