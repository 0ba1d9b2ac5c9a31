//! What a validator signs for a consensus vote, shared by the consensus engine that signs and checks
//! votes (`gonka-consensus`) and the chain that slashes a validator for two conflicting ones
//! (`docs/spec/economy.md` §5): one definition, so evidence the engine saw is evidence the state
//! machine can verify.

use sha2::{Digest, Sha256};

use crate::ValidatorPublicKey;

/// Domain of a vote's signed bytes.
pub const VOTE_DOMAIN: &[u8] = b"gonka-consensus/vote/v1";

/// A prevote.
pub const PREVOTE: u8 = 0;
/// A precommit.
pub const PRECOMMIT: u8 = 1;

/// A validator's consensus address: the first 20 bytes of SHA-256 of its ed25519 public key.
pub fn validator_address(key: &ValidatorPublicKey) -> [u8; 20] {
    let digest = Sha256::digest(key.0);
    let mut out = [0u8; 20];
    out.copy_from_slice(&digest[..20]);
    out
}

/// The bytes signed for a vote: domain ‖ kind (0 prevote, 1 precommit) ‖ height (u64) ‖ round
/// (0, or 1 ‖ u32) ‖ value (0 for nil, or 1 ‖ block hash) ‖ validator address, integers big-endian.
/// Vote extensions are not signed here (the engine signs them apart).
pub fn vote_sign_bytes(
    kind: u8,
    height: u64,
    round: Option<u32>,
    value: Option<&[u8; 32]>,
    validator: &[u8; 20],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(VOTE_DOMAIN.len() + 80);
    out.extend_from_slice(VOTE_DOMAIN);
    out.push(kind);
    out.extend_from_slice(&height.to_be_bytes());
    match round {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            out.extend_from_slice(&r.to_be_bytes());
        }
    }
    match value {
        None => out.push(0),
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(hash);
        }
    }
    out.extend_from_slice(validator);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidatorKey;

    #[test]
    fn a_signed_vote_verifies_only_for_its_own_bytes() {
        let key = ValidatorKey::from_secret_bytes([3; 32]);
        let address = validator_address(&key.public_key());
        let bytes = vote_sign_bytes(PRECOMMIT, 7, Some(0), Some(&[9; 32]), &address);
        let signature = key.sign(&bytes);
        assert_eq!(key.public_key().verify(&bytes, &signature), Ok(()));
        let other = vote_sign_bytes(PRECOMMIT, 7, Some(0), None, &address);
        assert!(key.public_key().verify(&other, &signature).is_err());
        // Pinned: the engine's votes are these bytes.
        let fields = &bytes[VOTE_DOMAIN.len()..];
        assert_eq!(hex::encode(&fields[..14]), "0100000000000000070100000000", "kind, height, round");
        assert_eq!((fields[14], fields[15], &fields[47..]), (1, 9, &address[..]), "value, validator");
    }
}
