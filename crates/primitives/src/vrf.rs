//! A verifiable random function on Ristretto (schnorrkel's VRF): who validates which inference
//! (`docs/spec/validation.md` §2).
//!
//! A host derives one [`VrfKey`] per epoch from its secret epoch seed and commits to its public key when
//! PoC starts. Its output for an inference is a number only the key holder can compute, that anyone can
//! check against the public key with the [`VrfProof`] the holder shows, and that is unique: the holder
//! cannot try several outputs for the same input. Once the seed is revealed, anyone can recompute every
//! output without proofs ([`VrfKey::output`]).

use std::fmt;

use schnorrkel::context::attach_rng;
use schnorrkel::vrf::{VRFPreOut, VRFProof};
use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey, PublicKey, signing_context};

use crate::KeyError;

/// Bytes of a [`VrfProof`]: the VRF pre-output (32) then the DLEQ proof (64).
pub const VRF_PROOF_BYTES: usize = 96;

/// Domain of the key derivation from a seed.
const KEY_DOMAIN: &[u8] = b"gonka/vrf-key/v1";
/// Domain of the 8 output bytes taken from a VRF evaluation.
const OUTPUT_DOMAIN: &[u8] = b"gonka/vrf-output/v1";

/// A VRF secret key. Never logged: `Debug` prints the public key only.
#[derive(Clone)]
pub struct VrfKey(Keypair);

/// A VRF public key (a compressed Ristretto point, 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VrfPublicKey(pub [u8; 32]);

/// A VRF proof: the pre-output and the proof that it is the key's evaluation of the input.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VrfProof(pub [u8; VRF_PROOF_BYTES]);

impl VrfKey {
    /// The key derived from `seed` (any length): the secret is SHA-256 of a domain and the seed, so the
    /// same seed always gives the same key and revealing the seed reveals the key.
    pub fn from_seed(seed: &[u8]) -> VrfKey {
        let secret = crate::Hash::digest_parts(&[KEY_DOMAIN, seed]).0;
        let mini = MiniSecretKey::from_bytes(&secret).expect("a 32-byte mini secret key is always valid");
        VrfKey(mini.expand_to_keypair(ExpansionMode::Ed25519))
    }

    /// The public key.
    pub fn public_key(&self) -> VrfPublicKey {
        VrfPublicKey(self.0.public.to_bytes())
    }

    /// The output for `message` under `context`, and a proof of it for the public key. The proof is
    /// deterministic: its nonce comes from the transcript rekeyed with the secret key, with no added
    /// entropy (as RFC 6979 does for ECDSA), so the same key and message always give the same bytes —
    /// what a replicated, replayable network needs.
    pub fn prove(&self, context: &'static [u8], message: &[u8]) -> (u64, VrfProof) {
        // The DLEQ proof is made over the "extra" transcript, which `vrf_sign` would leave with the
        // thread's RNG: both get none (its label is the one `vrf_verify` uses).
        let transcript = attach_rng(signing_context(context).bytes(message), NoExtraEntropy);
        let extra = attach_rng(merlin::Transcript::new(b"VRF"), NoExtraEntropy);
        let (inout, proof, _) = self.0.vrf_sign_extra(transcript, extra);
        let mut bytes = [0u8; VRF_PROOF_BYTES];
        bytes[..32].copy_from_slice(&inout.to_preout().to_bytes());
        bytes[32..].copy_from_slice(&proof.to_bytes());
        (output_of(&inout), VrfProof(bytes))
    }

    /// The output for `message` under `context`, without a proof (what anyone holding the revealed seed
    /// computes; the same number [`VrfKey::prove`] gives).
    pub fn output(&self, context: &'static [u8], message: &[u8]) -> u64 {
        output_of(&self.0.vrf_create_hash(signing_context(context).bytes(message)))
    }
}

/// An RNG that adds nothing: the proof's nonce is then a function of the secret key and the transcript.
struct NoExtraEntropy;

impl rand_core::RngCore for NoExtraEntropy {
    fn next_u32(&mut self) -> u32 {
        0
    }

    fn next_u64(&mut self) -> u64 {
        0
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        dest.fill(0);
        Ok(())
    }
}

impl rand_core::CryptoRng for NoExtraEntropy {}

fn output_of(inout: &schnorrkel::vrf::VRFInOut) -> u64 {
    u64::from_be_bytes(inout.make_bytes::<[u8; 8]>(OUTPUT_DOMAIN))
}

impl VrfPublicKey {
    /// The output `proof` proves for `message` under `context`, if it verifies against this key.
    /// Remembered in the process-wide memo of signature checks: a verdict's proof is checked in the
    /// mempool and again when its block applies.
    pub fn verify(&self, context: &'static [u8], message: &[u8], proof: &VrfProof) -> Result<u64, KeyError> {
        let key = crate::Hash::digest_parts(&[b"gonka/memo/vrf", &self.0, context, message, &proof.0]);
        match crate::memo::remembered(key, || match self.verify_uncached(context, message, proof) {
            Ok(output) => crate::memo::Outcome::VrfOutput(output),
            Err(error) => crate::memo::Outcome::Invalid(error),
        }) {
            crate::memo::Outcome::VrfOutput(output) => Ok(output),
            crate::memo::Outcome::Invalid(error) => Err(error),
            _ => Err(KeyError::InvalidSignature),
        }
    }

    fn verify_uncached(
        &self,
        context: &'static [u8],
        message: &[u8],
        proof: &VrfProof,
    ) -> Result<u64, KeyError> {
        let public = PublicKey::from_bytes(&self.0).map_err(|_| KeyError::InvalidPublicKey)?;
        let preout = VRFPreOut::from_bytes(&proof.0[..32]).map_err(|_| KeyError::InvalidSignature)?;
        let dleq = VRFProof::from_bytes(&proof.0[32..]).map_err(|_| KeyError::InvalidSignature)?;
        let (inout, _) = public
            .vrf_verify(signing_context(context).bytes(message), &preout, &dleq)
            .map_err(|_| KeyError::InvalidSignature)?;
        Ok(output_of(&inout))
    }

    /// Parses 64 hex digits and checks they encode a Ristretto point.
    pub fn from_hex(text: &str) -> Result<VrfPublicKey, KeyError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::InvalidPublicKey)?;
        PublicKey::from_bytes(&out).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(VrfPublicKey(out))
    }
}

impl VrfProof {
    /// Parses 192 hex digits (the form in headers and JSON).
    pub fn from_hex(text: &str) -> Result<VrfProof, KeyError> {
        let mut out = [0u8; VRF_PROOF_BYTES];
        hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::InvalidSignature)?;
        Ok(VrfProof(out))
    }
}

impl fmt::Debug for VrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfKey({})", self.public_key())
    }
}

impl fmt::Display for VrfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for VrfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfPublicKey({self})")
    }
}

impl fmt::Display for VrfProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for VrfProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfProof({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &[u8] = b"gonka/test";

    #[test]
    fn a_proof_verifies_and_gives_the_output_the_seed_gives() {
        let key = VrfKey::from_seed(b"epoch seed");
        let (output, proof) = key.prove(CONTEXT, b"inference 1");
        assert_eq!(key.public_key().verify(CONTEXT, b"inference 1", &proof), Ok(output));
        assert_eq!(VrfKey::from_seed(b"epoch seed").output(CONTEXT, b"inference 1"), output);
        assert_eq!(VrfKey::from_seed(b"epoch seed").public_key(), key.public_key());
        assert_eq!(key.prove(CONTEXT, b"inference 1").1, proof, "proofs are deterministic");
        assert_ne!(key.output(CONTEXT, b"inference 2"), output);
    }

    #[test]
    fn a_proof_for_another_input_key_or_context_fails() {
        let key = VrfKey::from_seed(b"a");
        let (_, proof) = key.prove(CONTEXT, b"m");
        let public = key.public_key();
        assert!(public.verify(CONTEXT, b"other", &proof).is_err());
        assert!(public.verify(b"gonka/other", b"m", &proof).is_err());
        assert!(VrfKey::from_seed(b"b").public_key().verify(CONTEXT, b"m", &proof).is_err());
        let mut forged = proof;
        forged.0[0] ^= 1;
        assert!(public.verify(CONTEXT, b"m", &forged).is_err());
        assert!(public.verify(CONTEXT, b"m", &VrfProof([0; VRF_PROOF_BYTES])).is_err());
    }

    #[test]
    fn keys_and_proofs_round_trip_through_hex() {
        let key = VrfKey::from_seed(b"hex");
        let public = key.public_key();
        assert_eq!(VrfPublicKey::from_hex(&public.to_string()), Ok(public));
        let (_, proof) = key.prove(CONTEXT, b"m");
        assert_eq!(VrfProof::from_hex(&proof.to_string()), Ok(proof));
        assert!(VrfPublicKey::from_hex("00").is_err());
        assert!(!format!("{key:?}").contains("secret"));
    }
}
