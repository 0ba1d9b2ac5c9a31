//! Account addresses: bech32 `gonka1…` of ripemd160(sha256(compressed secp256k1 public key)), as in Cosmos.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32, Hrp};
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

/// The human-readable part of every account address.
pub const ADDRESS_PREFIX: &str = "gonka";

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not valid bech32 (bad characters, checksum, case mix).
    #[error("invalid bech32 address: {0}")]
    Bech32(String),
    /// Valid bech32 with another prefix.
    #[error("address prefix must be `{ADDRESS_PREFIX}`, found `{0}`")]
    WrongPrefix(String),
    /// The payload is not 20 bytes.
    #[error("address payload must be 20 bytes, found {0}")]
    WrongLength(usize),
}

impl Address {
    /// The address of a compressed secp256k1 public key (33 bytes).
    pub fn from_public_key(compressed: &[u8; 33]) -> Address {
        let sha = Sha256::digest(compressed);
        Address(Ripemd160::digest(sha).into())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(ADDRESS_PREFIX);
        match bech32::encode::<Bech32>(hrp, &self.0) {
            Ok(text) => f.write_str(&text),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        let (hrp, data) = bech32::decode(text).map_err(|e| AddressError::Bech32(e.to_string()))?;
        if hrp.as_str() != ADDRESS_PREFIX {
            return Err(AddressError::WrongPrefix(hrp.to_string()));
        }
        let bytes: [u8; 20] =
            data.as_slice().try_into().map_err(|_| AddressError::WrongLength(data.len()))?;
        Ok(Address(bytes))
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_bech32() {
        let address = Address([7; 20]);
        let text = address.to_string();
        assert!(text.starts_with("gonka1"));
        assert_eq!(text.parse::<Address>(), Ok(address));
    }

    #[test]
    fn rejects_other_prefixes_and_bad_checksums() {
        let cosmos = bech32::encode::<Bech32>(Hrp::parse_unchecked("cosmos"), &[1; 20]).expect("encodes");
        assert!(matches!(cosmos.parse::<Address>(), Err(AddressError::WrongPrefix(_))));
        let mut text = Address([1; 20]).to_string();
        text.pop();
        text.push('q');
        assert!(matches!(text.parse::<Address>(), Err(AddressError::Bech32(_))));
        let short = bech32::encode::<Bech32>(Hrp::parse_unchecked("gonka"), &[1; 19]).expect("encodes");
        assert_eq!(short.parse::<Address>(), Err(AddressError::WrongLength(19)));
    }

    #[test]
    fn derives_the_cosmos_address_of_a_known_key() {
        // The secp256k1 generator point G, compressed; its Cosmos account id is well known.
        let g =
            hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").expect("hex");
        let key: [u8; 33] = g.as_slice().try_into().expect("33 bytes");
        let address = Address::from_public_key(&key);
        assert_eq!(hex::encode(address.0), "751e76e8199196d454941c45d1b3a323f1433bd6");
    }
}
