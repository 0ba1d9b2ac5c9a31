//! The one canonical binary codec for everything consensus agrees on: transactions, blocks, state.
//!
//! Rules, chosen so that every value has exactly one encoding:
//! - integers are fixed-width big-endian; `bool` is one byte 0 or 1; `Option` is a 0/1 tag then the value;
//! - byte strings, strings and sequences are a `u32` big-endian length then the items;
//! - maps are sequences of (key, value) pairs in strictly increasing key order;
//! - enums are a one-byte tag then the variant's fields, in declaration order.
//!
//! Decoding never panics and never allocates more than the input could hold: every length is
//! checked against the bytes that remain, strings against [`MAX_STRING_BYTES`], and
//! [`decode_exact`] refuses oversized input before reading it and trailing bytes after.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    AccountPublicKey, AccountSignature, Address, Amount, Decimal, Hash, RecoverableSignature,
    ValidatorPublicKey, ValidatorSignature, VrfProof, VrfPublicKey,
};

/// Longest string (in bytes) any decoded field may hold.
pub const MAX_STRING_BYTES: usize = 4096;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A complete value was read but bytes remain.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The input or a field is longer than its limit.
    #[error("{what} is {found} bytes, limit {limit}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its size.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// An enum or option tag with no meaning.
    #[error("invalid tag {tag} for {what}")]
    InvalidTag {
        /// The type being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A string field is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// The bytes decode but are not the canonical encoding (e.g. unsorted map keys).
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
}

/// A cursor over input bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// Takes exactly `N` bytes as an array.
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a `u32` length and checks it against the remaining input.
    pub fn length(&mut self) -> Result<usize, DecodeError> {
        let length = u32::decode(self)? as usize;
        if length > self.remaining() {
            return Err(DecodeError::UnexpectedEnd);
        }
        Ok(length)
    }
}

/// A value with a canonical byte form.
pub trait Encode {
    /// Appends the canonical encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The canonical encoding as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A value that can be read back from its canonical byte form.
pub trait Decode: Sized {
    /// Reads one value from `reader`.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Decodes one value that must fill `bytes` exactly, refusing input longer than `max_bytes` up front.
pub fn decode_exact<T: Decode>(bytes: &[u8], max_bytes: usize) -> Result<T, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLong { what: "input", found: bytes.len(), limit: max_bytes });
    }
    let mut reader = Reader::new(bytes);
    let value = T::decode(&mut reader)?;
    match reader.remaining() {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Decode for $t {
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(reader.take_array()?))
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64, u128, i64, i128);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match u8::decode(reader)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::InvalidTag { what: "bool", tag }),
        }
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> Decode for [u8; N] {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.take_array()
    }
}

fn encode_length(length: usize, out: &mut Vec<u8>) {
    // Every encoded container comes from a value that passed a size limit far below 4 GiB.
    let length = u32::try_from(length).expect("encoded lengths are bounded far below u32::MAX");
    length.encode(out);
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        out.extend_from_slice(self.as_bytes());
    }
}

impl Decode for String {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let length = reader.length()?;
        if length > MAX_STRING_BYTES {
            return Err(DecodeError::TooLong { what: "string", found: length, limit: MAX_STRING_BYTES });
        }
        let bytes = reader.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        for item in self {
            item.encode(out);
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = u32::decode(reader)? as usize;
        // Never reserve more than the input could hold, whatever the length prefix claims.
        let mut items = Vec::with_capacity(count.min(reader.remaining()));
        for _ in 0..count {
            items.push(T::decode(reader)?);
        }
        Ok(items)
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode(out);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match u8::decode(reader)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(reader)?)),
            tag => Err(DecodeError::InvalidTag { what: "option", tag }),
        }
    }
}

/// The unit value encodes to nothing: the key of a table that holds one record.
impl Encode for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
}

impl Decode for () {
    fn decode(_reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(())
    }
}

/// A boxed value encodes as the value (messages box their large fields to keep enums small).
impl<T: Encode> Encode for Box<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<T: Decode> Decode for Box<T> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode(reader).map(Box::new)
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok((A::decode(reader)?, B::decode(reader)?))
    }
}

impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        for (key, value) in self {
            key.encode(out);
            value.encode(out);
        }
    }
}

impl<K: Decode + Ord, V: Decode> Decode for BTreeMap<K, V> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = u32::decode(reader)? as usize;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key = K::decode(reader)?;
            if map.last_key_value().is_some_and(|(last, _)| *last >= key) {
                return Err(DecodeError::NonCanonical("map keys must be strictly increasing"));
            }
            let value = V::decode(reader)?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

impl<K: Encode> Encode for BTreeSet<K> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        for key in self {
            key.encode(out);
        }
    }
}

impl<K: Decode + Ord> Decode for BTreeSet<K> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = u32::decode(reader)? as usize;
        let mut set = BTreeSet::new();
        for _ in 0..count {
            let key = K::decode(reader)?;
            if set.last().is_some_and(|last| *last >= key) {
                return Err(DecodeError::NonCanonical("set items must be strictly increasing"));
            }
            set.insert(key);
        }
        Ok(set)
    }
}

/// Byte strings (`Vec<u8>` would also work but encodes item by item; this is the bulk form).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Bytes(pub Vec<u8>);

impl Encode for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.0.len(), out);
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Bytes {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let length = reader.length()?;
        Ok(Bytes(reader.take(length)?.to_vec()))
    }
}

macro_rules! newtype_codec {
    ($($t:ident($inner:ty)),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out);
            }
        }
        impl Decode for $t {
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($t(<$inner>::decode(reader)?))
            }
        }
    )*};
}
newtype_codec!(
    Hash([u8; 32]),
    Address([u8; 20]),
    Amount(u128),
    AccountPublicKey([u8; 33]),
    AccountSignature([u8; 64]),
    RecoverableSignature([u8; 65]),
    ValidatorPublicKey([u8; 32]),
    ValidatorSignature([u8; 64]),
    VrfPublicKey([u8; 32]),
    VrfProof([u8; 96])
);

impl Encode for Decimal {
    fn encode(&self, out: &mut Vec<u8>) {
        self.raw().encode(out);
    }
}

impl Decode for Decimal {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Decimal::from_raw(i128::decode(reader)?))
    }
}

/// Implements [`Encode`] and [`Decode`] for a struct by encoding its fields in the order listed.
/// List every field, in declaration order: the order is the wire format.
#[macro_export]
macro_rules! codec_struct {
    ($t:ident { $($field:ident),* $(,)? }) => {
        impl $crate::codec::Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::codec::Encode::encode(&self.$field, out); )*
            }
        }
        impl $crate::codec::Decode for $t {
            fn decode(reader: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::DecodeError> {
                Ok($t { $( $field: $crate::codec::Decode::decode(reader)?, )* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        id: u64,
        name: String,
        owner: Address,
        tags: Vec<u32>,
        balances: BTreeMap<Address, Amount>,
        note: Option<Bytes>,
        flag: bool,
        rate: Decimal,
    }
    codec_struct!(Sample { id, name, owner, tags, balances, note, flag, rate });

    fn sample() -> impl Strategy<Value = Sample> {
        (
            any::<u64>(),
            "[a-z]{0,20}",
            any::<[u8; 20]>(),
            proptest::collection::vec(any::<u32>(), 0..8),
            proptest::collection::btree_map(
                any::<[u8; 20]>().prop_map(Address),
                any::<u128>().prop_map(Amount),
                0..5,
            ),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes)),
            any::<bool>(),
            any::<i128>().prop_map(Decimal::from_raw),
        )
            .prop_map(|(id, name, owner, tags, balances, note, flag, rate)| Sample {
                id,
                name,
                owner: Address(owner),
                tags,
                balances,
                note,
                flag,
                rate,
            })
    }

    proptest! {
        #[test]
        fn round_trips(value in sample()) {
            let bytes = value.to_bytes();
            prop_assert_eq!(decode_exact::<Sample>(&bytes, bytes.len()), Ok(value));
        }

        #[test]
        fn truncated_input_is_an_error(value in sample(), cut in 0usize..1000) {
            let bytes = value.to_bytes();
            let cut = cut % bytes.len().max(1);
            prop_assert!(decode_exact::<Sample>(&bytes[..cut], usize::MAX).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_exact::<Sample>(&bytes, 1 << 20);
        }
    }

    #[test]
    fn oversized_input_and_trailing_bytes_are_refused() {
        let bytes = 7u64.to_bytes();
        assert!(matches!(decode_exact::<u64>(&bytes, 4), Err(DecodeError::TooLong { .. })));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_exact::<u64>(&longer, 100), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn hostile_length_prefixes_do_not_allocate_or_panic() {
        let huge = u32::MAX.to_bytes();
        assert_eq!(decode_exact::<Vec<u64>>(&huge, 100), Err(DecodeError::UnexpectedEnd));
        assert_eq!(decode_exact::<String>(&huge, 100), Err(DecodeError::UnexpectedEnd));
        assert_eq!(decode_exact::<Bytes>(&huge, 100), Err(DecodeError::UnexpectedEnd));
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        assert_eq!(decode_exact::<bool>(&[2], 1), Err(DecodeError::InvalidTag { what: "bool", tag: 2 }));
        let mut unsorted = 2u32.to_bytes();
        for key in [[2u8; 20], [1u8; 20]] {
            key.encode(&mut unsorted);
            Amount(1).encode(&mut unsorted);
        }
        assert!(matches!(
            decode_exact::<BTreeMap<Address, Amount>>(&unsorted, 1000),
            Err(DecodeError::NonCanonical(_))
        ));
        let mut bad_utf8 = 1u32.to_bytes();
        bad_utf8.push(0xff);
        assert_eq!(decode_exact::<String>(&bad_utf8, 10), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn encoding_is_pinned() {
        // A change to this fixture is a change of the consensus wire format: review it as one.
        let value = Sample {
            id: 1,
            name: "ab".into(),
            owner: Address([0xaa; 20]),
            tags: vec![5],
            balances: BTreeMap::from([(Address([1; 20]), Amount(2))]),
            note: None,
            flag: true,
            rate: Decimal::ONE,
        };
        assert_eq!(
            hex::encode(value.to_bytes()),
            concat!(
                "0000000000000001",
                "000000026162",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "0000000100000005",
                "00000001",
                "0101010101010101010101010101010101010101",
                "00000000000000000000000000000002",
                "00",
                "01",
                "00000000000000000de0b6b3a7640000"
            )
        );
    }
}
