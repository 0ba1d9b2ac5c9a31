//! Account keys (secp256k1 ECDSA over SHA-256, low-s, RFC 6979 nonces) and validator keys (ed25519).

use std::fmt;

use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use rand_core::OsRng;

use crate::Address;

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Secret key bytes are not a valid scalar.
    #[error("invalid secret key")]
    InvalidSecret,
    /// Public key bytes are not a point on the curve in the expected encoding.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// The signature does not verify, is malformed, or has a high s.
    #[error("invalid signature")]
    InvalidSignature,
}

/// A secp256k1 account secret key. Never logged: `Debug` prints the address only.
#[derive(Clone)]
pub struct AccountKey(SigningKey);

/// A compressed secp256k1 public key (33 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountPublicKey(pub [u8; 33]);

/// A compact ECDSA signature `r ‖ s` with low s (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountSignature(pub [u8; 64]);

/// A recoverable ECDSA signature `r ‖ s ‖ v` with low s (65 bytes): the signer's public key can be
/// recovered from it and the message, so a verifier needs only the signer's address. Developers sign
/// inference requests with it, which lets any funded account use the network without registering a key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoverableSignature(pub [u8; 65]);

impl AccountKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> AccountKey {
        AccountKey(SigningKey::random(&mut OsRng))
    }

    /// The key with these 32 secret bytes.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<AccountKey, KeyError> {
        SigningKey::from_bytes(bytes.into()).map(AccountKey).map_err(|_| KeyError::InvalidSecret)
    }

    /// A deterministic key for tests and devnet fixtures: the secret is SHA-256 of `seed`.
    pub fn from_seed(seed: &[u8]) -> AccountKey {
        let secret = crate::Hash::digest(seed).0;
        // A SHA-256 output is zero or above the group order with probability ~2^-128.
        AccountKey::from_secret_bytes(&secret).expect("sha256 output is a valid secp256k1 scalar")
    }

    /// The 32 secret bytes (for export into a key file; handle with care).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The compressed public key.
    pub fn public_key(&self) -> AccountPublicKey {
        let point = self.0.verifying_key().to_encoded_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(point.as_bytes());
        AccountPublicKey(out)
    }

    /// The account address of this key.
    pub fn address(&self) -> Address {
        self.public_key().address()
    }

    /// Signs SHA-256(`message`) with an RFC 6979 deterministic nonce; the result has low s.
    pub fn sign(&self, message: &[u8]) -> AccountSignature {
        let signature: Signature = self.0.sign(message);
        let signature = signature.normalize_s().unwrap_or(signature);
        AccountSignature(signature.to_bytes().into())
    }
}

impl AccountKey {
    /// Signs SHA-256(`message`) with an RFC 6979 nonce, low s, with the recovery id appended.
    pub fn sign_recoverable(&self, message: &[u8]) -> RecoverableSignature {
        let mut out = [0u8; 65];
        // Signing a SHA-256 digest with a valid key cannot fail: the only errors are for invalid scalars.
        let (signature, recovery) =
            self.0.sign_recoverable(message).expect("signing with a valid secp256k1 key succeeds");
        let (signature, recovery) = match signature.normalize_s() {
            Some(low) => (low, RecoveryId::new(!recovery.is_y_odd(), recovery.is_x_reduced())),
            None => (signature, recovery),
        };
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = recovery.to_byte();
        RecoverableSignature(out)
    }
}

impl RecoverableSignature {
    /// The public key that signed SHA-256(`message`). High-s signatures are refused, so each signed
    /// message has one valid encoding.
    pub fn recover(&self, message: &[u8]) -> Result<AccountPublicKey, KeyError> {
        let key = crate::hash::Hash::digest_parts(&[b"gonka/memo/recover", &self.0, message]);
        match crate::memo::remembered(key, || match self.recover_uncached(message) {
            Ok(key) => crate::memo::Outcome::Recovered(key.0),
            Err(error) => crate::memo::Outcome::Invalid(error),
        }) {
            crate::memo::Outcome::Recovered(key) => Ok(AccountPublicKey(key)),
            crate::memo::Outcome::Invalid(error) => Err(error),
            crate::memo::Outcome::Valid | crate::memo::Outcome::VrfOutput(_) => {
                Err(KeyError::InvalidSignature)
            }
        }
    }

    fn recover_uncached(&self, message: &[u8]) -> Result<AccountPublicKey, KeyError> {
        let signature = Signature::from_slice(&self.0[..64]).map_err(|_| KeyError::InvalidSignature)?;
        if signature.normalize_s().is_some() {
            return Err(KeyError::InvalidSignature);
        }
        let recovery = RecoveryId::from_byte(self.0[64]).ok_or(KeyError::InvalidSignature)?;
        let key = VerifyingKey::recover_from_msg(message, &signature, recovery)
            .map_err(|_| KeyError::InvalidSignature)?;
        let point = key.to_encoded_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(point.as_bytes());
        Ok(AccountPublicKey(out))
    }

    /// Parses 130 hex digits.
    pub fn from_hex(text: &str) -> Result<RecoverableSignature, KeyError> {
        let mut out = [0u8; 65];
        hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::InvalidSignature)?;
        Ok(RecoverableSignature(out))
    }
}

impl fmt::Display for RecoverableSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RecoverableSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoverableSignature({self})")
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountKey({})", self.address())
    }
}

impl AccountPublicKey {
    /// The account address of this key.
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.0)
    }

    /// Verifies a signature over SHA-256(`message`). High-s signatures are refused, so every
    /// signed message has exactly one valid signature encoding per nonce.
    pub fn verify(&self, message: &[u8], signature: &AccountSignature) -> Result<(), KeyError> {
        let memo_key =
            crate::hash::Hash::digest_parts(&[b"gonka/memo/verify", &self.0, &signature.0, message]);
        match crate::memo::remembered(memo_key, || match self.verify_uncached(message, signature) {
            Ok(()) => crate::memo::Outcome::Valid,
            Err(error) => crate::memo::Outcome::Invalid(error),
        }) {
            crate::memo::Outcome::Valid => Ok(()),
            crate::memo::Outcome::Invalid(error) => Err(error),
            crate::memo::Outcome::Recovered(_) | crate::memo::Outcome::VrfOutput(_) => {
                Err(KeyError::InvalidSignature)
            }
        }
    }

    fn verify_uncached(&self, message: &[u8], signature: &AccountSignature) -> Result<(), KeyError> {
        let key = VerifyingKey::from_sec1_bytes(&self.0).map_err(|_| KeyError::InvalidPublicKey)?;
        let signature = Signature::from_slice(&signature.0).map_err(|_| KeyError::InvalidSignature)?;
        if signature.normalize_s().is_some() {
            return Err(KeyError::InvalidSignature);
        }
        key.verify(message, &signature).map_err(|_| KeyError::InvalidSignature)
    }

    /// Parses 66 hex digits.
    pub fn from_hex(text: &str) -> Result<AccountPublicKey, KeyError> {
        let mut out = [0u8; 33];
        hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::InvalidPublicKey)?;
        VerifyingKey::from_sec1_bytes(&out).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(AccountPublicKey(out))
    }
}

impl fmt::Display for AccountPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AccountPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountPublicKey({self})")
    }
}

impl AccountSignature {
    /// Parses 128 hex digits (`r ‖ s`).
    pub fn from_hex(text: &str) -> Result<AccountSignature, KeyError> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::InvalidSignature)?;
        Ok(AccountSignature(out))
    }
}

impl fmt::Display for AccountSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AccountSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountSignature({})", hex::encode(self.0))
    }
}

/// An ed25519 validator (consensus) secret key. Never logged.
#[derive(Clone)]
pub struct ValidatorKey(ed25519_consensus::SigningKey);

/// An ed25519 validator public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidatorPublicKey(pub [u8; 32]);

/// An ed25519 signature by a validator key (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValidatorSignature(pub [u8; 64]);

impl ValidatorKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> ValidatorKey {
        ValidatorKey(ed25519_consensus::SigningKey::new(OsRng))
    }

    /// The key with these 32 secret bytes.
    pub fn from_secret_bytes(bytes: [u8; 32]) -> ValidatorKey {
        ValidatorKey(ed25519_consensus::SigningKey::from(bytes))
    }

    /// The 32 secret bytes.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> ValidatorPublicKey {
        ValidatorPublicKey(self.0.verification_key().to_bytes())
    }

    /// Signs `message` (what consensus signs with it: [`crate::consensus`]).
    pub fn sign(&self, message: &[u8]) -> ValidatorSignature {
        ValidatorSignature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValidatorKey({})", self.public_key())
    }
}

impl ValidatorPublicKey {
    /// Parses 64 hex digits and checks the bytes are a valid ed25519 point encoding.
    pub fn from_hex(text: &str) -> Result<ValidatorPublicKey, KeyError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::InvalidPublicKey)?;
        ValidatorPublicKey::from_bytes(out)
    }

    /// Checks the bytes are a valid ed25519 point encoding.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<ValidatorPublicKey, KeyError> {
        ed25519_consensus::VerificationKey::try_from(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(ValidatorPublicKey(bytes))
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &ValidatorSignature) -> Result<(), KeyError> {
        let key =
            ed25519_consensus::VerificationKey::try_from(self.0).map_err(|_| KeyError::InvalidPublicKey)?;
        key.verify(&ed25519_consensus::Signature::from(signature.0), message)
            .map_err(|_| KeyError::InvalidSignature)
    }
}

impl ValidatorSignature {
    /// Parses 128 hex digits.
    pub fn from_hex(text: &str) -> Result<ValidatorSignature, KeyError> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::InvalidSignature)?;
        Ok(ValidatorSignature(out))
    }
}

impl fmt::Display for ValidatorSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ValidatorSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValidatorSignature({self})")
    }
}

impl fmt::Display for ValidatorPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ValidatorPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValidatorPublicKey({self})")
    }
}

macro_rules! hex_serde {
    ($type:ty, $parse:expr) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
hex_serde!(AccountPublicKey, AccountPublicKey::from_hex);
hex_serde!(ValidatorPublicKey, ValidatorPublicKey::from_hex);
hex_serde!(AccountSignature, AccountSignature::from_hex);
hex_serde!(ValidatorSignature, ValidatorSignature::from_hex);
hex_serde!(RecoverableSignature, RecoverableSignature::from_hex);
hex_serde!(crate::VrfPublicKey, crate::VrfPublicKey::from_hex);
hex_serde!(crate::VrfProof, crate::VrfProof::from_hex);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_deterministic_low_s_and_verify() {
        let key = AccountKey::from_seed(b"alice");
        let first = key.sign(b"message");
        assert_eq!(first, key.sign(b"message"));
        let signature = Signature::from_slice(&first.0).expect("64 bytes");
        assert!(signature.normalize_s().is_none(), "s must already be low");
        assert_eq!(key.public_key().verify(b"message", &first), Ok(()));
        assert_eq!(key.public_key().verify(b"other", &first), Err(KeyError::InvalidSignature));
    }

    #[test]
    fn recoverable_signatures_give_back_the_signer_and_nothing_else() {
        for seed in [&b"dev-1"[..], b"dev-2", b"dev-3", b"dev-4"] {
            let key = AccountKey::from_seed(seed);
            for message in [&b"request"[..], b"another request", b""] {
                let signature = key.sign_recoverable(message);
                assert_eq!(signature, key.sign_recoverable(message), "deterministic");
                assert_eq!(signature.recover(message), Ok(key.public_key()));
                assert_ne!(signature.recover(b"tampered"), Ok(key.public_key()));
                let low = Signature::from_slice(&signature.0[..64]).expect("64 bytes");
                assert!(low.normalize_s().is_none(), "s must be low");
            }
        }
        let mut bad = AccountKey::from_seed(b"dev").sign_recoverable(b"m");
        bad.0[64] = 9;
        assert_eq!(bad.recover(b"m"), Err(KeyError::InvalidSignature));
    }

    #[test]
    fn high_s_twin_of_a_valid_signature_is_refused() {
        let key = AccountKey::from_seed(b"bob");
        let low = Signature::from_slice(&key.sign(b"m").0).expect("64 bytes");
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r, -*s).expect("valid scalars");
        let high = AccountSignature(high.to_bytes().into());
        assert_eq!(key.public_key().verify(b"m", &high), Err(KeyError::InvalidSignature));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let key = AccountKey::from_seed(b"carol");
        let secret = hex::encode(key.secret_bytes());
        assert!(!format!("{key:?}").contains(&secret));
        let validator = ValidatorKey::from_secret_bytes([9; 32]);
        assert!(!format!("{validator:?}").contains(&hex::encode([9u8; 32])));
    }
}
