//! Ids, hashes, addresses, keys and signatures, amounts, fixed-point decimals and the canonical codec.
//!
//! Everything here is pure: no I/O, no clock, no async. The chain state machine and the node build on
//! these types, and every byte that consensus agrees on is produced by [`codec`].
#![deny(missing_docs)]

pub mod address;
pub mod amount;
pub mod codec;
pub mod consensus;
pub mod decimal;
pub mod hash;
pub mod keys;
mod memo;
pub mod vrf;

pub use address::{Address, AddressError};
pub use amount::Amount;
pub use codec::{Decode, DecodeError, Encode, Reader};
pub use decimal::Decimal;
pub use hash::Hash;
pub use keys::{
    AccountKey, AccountPublicKey, AccountSignature, KeyError, RecoverableSignature, ValidatorKey,
    ValidatorPublicKey, ValidatorSignature,
};
pub use vrf::{VrfKey, VrfProof, VrfPublicKey};
