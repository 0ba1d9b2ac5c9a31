//! Signing and verification: canonical, domain-separated preimages for every signed message,
//! and the ed25519 [`Signer`]/[`Verifier`] Malachite calls.

use async_trait::async_trait;

use malachitebft_app_channel::app::types::core::{
    NilOrVal, Round, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use malachitebft_app_channel::{Signer, Verifier};
use malachitebft_signing::{Error as SigningError, VerificationResult};
use malachitebft_signing_ed25519::{Ed25519, PrivateKey, PublicKey, Signature};

use crate::context::{Address, BlockHash, GonkaContext, Height, Proposal, ProposalInit, Vote};

use malachitebft_app_channel::app::types::core::SigningScheme as _;

const PROPOSAL_DOMAIN: &[u8] = b"gonka-consensus/proposal/v1";
const EXTENSION_DOMAIN: &[u8] = b"gonka-consensus/vote-extension/v1";
const FIN_DOMAIN: &[u8] = b"gonka-consensus/proposal-fin/v1";

fn put_round(out: &mut Vec<u8>, round: Round) {
    match round.as_u32() {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            out.extend_from_slice(&r.to_be_bytes());
        }
    }
}

/// Bytes signed for a vote ([`gonka_primitives::consensus::vote_sign_bytes`], which the chain checks
/// double-vote evidence with). The extension is excluded (Malachite requires it).
pub(crate) fn vote_sign_bytes(vote: &Vote) -> Vec<u8> {
    let kind = match vote.vote_type {
        VoteType::Prevote => gonka_primitives::consensus::PREVOTE,
        VoteType::Precommit => gonka_primitives::consensus::PRECOMMIT,
    };
    let value = match &vote.value {
        NilOrVal::Nil => None,
        NilOrVal::Val(hash) => Some(&hash.0),
    };
    gonka_primitives::consensus::vote_sign_bytes(
        kind,
        vote.height.0,
        vote.round.as_u32(),
        value,
        &vote.validator.0,
    )
}

/// Bytes signed for a proposal.
pub(crate) fn proposal_sign_bytes(p: &Proposal) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROPOSAL_DOMAIN.len() + 80);
    out.extend_from_slice(PROPOSAL_DOMAIN);
    out.extend_from_slice(&p.height.0.to_be_bytes());
    put_round(&mut out, p.round);
    out.extend_from_slice(&p.value.0);
    put_round(&mut out, p.pol_round);
    out.extend_from_slice(&p.proposer.0);
    out
}

/// Bytes signed for a vote extension, bound to its precommit scope.
pub(crate) fn extension_sign_bytes(scope: &VoteExtensionScope<GonkaContext>, extension: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXTENSION_DOMAIN.len() + 80 + extension.len());
    out.extend_from_slice(EXTENSION_DOMAIN);
    out.extend_from_slice(&scope.height.0.to_be_bytes());
    put_round(&mut out, scope.round);
    out.extend_from_slice(&scope.value_id.0);
    out.extend_from_slice(&scope.validator_address.0);
    out.extend_from_slice(&(extension.len() as u64).to_be_bytes());
    out.extend_from_slice(extension);
    out
}

/// Bytes the proposer signs in the `Fin` part of a proposal stream: the init metadata and the
/// hash of the reassembled block.
pub(crate) fn fin_sign_bytes(init: &ProposalInit, block_hash: &BlockHash) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIN_DOMAIN.len() + 100);
    out.extend_from_slice(FIN_DOMAIN);
    out.extend_from_slice(&init.height.0.to_be_bytes());
    put_round(&mut out, init.round);
    put_round(&mut out, init.pol_round);
    out.extend_from_slice(&init.proposer.0);
    out.extend_from_slice(&init.block_len.to_be_bytes());
    out.extend_from_slice(&block_hash.0);
    out
}

/// Bytes a precommit for `value` by `validator` signs (what a commit certificate holds).
pub(crate) fn precommit_sign_bytes(
    height: Height,
    round: Round,
    value: BlockHash,
    validator: Address,
) -> Vec<u8> {
    vote_sign_bytes(&Vote {
        vote_type: VoteType::Precommit,
        height,
        round,
        value: NilOrVal::Val(value),
        validator,
        extension: None,
    })
}

fn verify(public_key: &PublicKey, msg: &[u8], signature: &Signature) -> VerificationResult {
    VerificationResult::from_bool(public_key.verify(msg, signature).is_ok())
}

/// ed25519 signer and verifier for [`GonkaContext`].
#[derive(Clone)]
pub struct Ed25519Provider {
    key: PrivateKey,
}

impl Ed25519Provider {
    /// A provider signing with `key`.
    pub fn new(key: PrivateKey) -> Self {
        Self { key }
    }

    /// Sign raw bytes.
    pub fn sign_bytes(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }
}

/// Verifies signatures only; holds no key.
#[derive(Copy, Clone, Debug, Default)]
pub struct Ed25519Verifier;

#[async_trait]
impl Verifier<GonkaContext> for Ed25519Verifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verify(public_key, &vote_sign_bytes(vote), signature))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verify(public_key, &proposal_sign_bytes(proposal), signature))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<GonkaContext>,
        extension: &bytes::Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(verify(public_key, &extension_sign_bytes(scope, extension), signature))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<GonkaContext>,
    ) -> Result<VerificationResult, SigningError> {
        let Ok(public_key) = Ed25519::decode_public_key(&proof.public_key) else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(verify(&public_key, &proof.preimage(), &proof.signature))
    }
}

#[async_trait]
impl Verifier<GonkaContext> for Ed25519Provider {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ed25519Verifier.verify_signed_vote(vote, signature, public_key).await
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ed25519Verifier.verify_signed_proposal(proposal, signature, public_key).await
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<GonkaContext>,
        extension: &bytes::Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ed25519Verifier.verify_signed_vote_extension(scope, extension, signature, public_key).await
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<GonkaContext>,
    ) -> Result<VerificationResult, SigningError> {
        Ed25519Verifier.verify_validator_proof(proof).await
    }
}

#[async_trait]
impl Signer<GonkaContext> for Ed25519Provider {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<GonkaContext, Vote>, SigningError> {
        let signature = self.key.sign(&vote_sign_bytes(&vote));
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<GonkaContext, Proposal>, SigningError> {
        let signature = self.key.sign(&proposal_sign_bytes(&proposal));
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<GonkaContext>,
        extension: bytes::Bytes,
    ) -> Result<SignedMessage<GonkaContext, bytes::Bytes>, SigningError> {
        let signature = self.key.sign(&extension_sign_bytes(&scope, &extension));
        Ok(SignedMessage::new(extension, signature))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<GonkaContext>, SigningError> {
        let signature = self.key.sign(&ValidatorProof::<GonkaContext>::signing_bytes(&public_key, &peer_id));
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}
