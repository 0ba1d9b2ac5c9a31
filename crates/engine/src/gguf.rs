//! Typed reads of GGUF metadata, with errors that name the missing or mistyped key.

use candle_core::quantized::gguf_file::{Content, Value};

/// A GGUF file lacks a key the engine needs, or holds it with the wrong type.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The key is absent.
    #[error("GGUF metadata key `{0}` is missing")]
    Missing(String),
    /// The key has another type than expected.
    #[error("GGUF metadata key `{key}` should be {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What it should have been.
        expected: &'static str,
    },
}

fn get<'a>(content: &'a Content, key: &str) -> Result<&'a Value, MetadataError> {
    content.metadata.get(key).ok_or_else(|| MetadataError::Missing(key.to_string()))
}

fn wrong(key: &str, expected: &'static str) -> MetadataError {
    MetadataError::WrongType { key: key.to_string(), expected }
}

/// An unsigned integer of any width.
pub(crate) fn read_usize(content: &Content, key: &str) -> Result<usize, MetadataError> {
    let value = get(content, key)?;
    let n = match value {
        Value::U8(v) => u64::from(*v),
        Value::U16(v) => u64::from(*v),
        Value::U32(v) => u64::from(*v),
        Value::U64(v) => *v,
        Value::I32(v) if *v >= 0 => u64::from(v.unsigned_abs()),
        Value::I64(v) if *v >= 0 => v.unsigned_abs(),
        _ => return Err(wrong(key, "an unsigned integer")),
    };
    usize::try_from(n).map_err(|_| wrong(key, "an integer that fits usize"))
}

/// A float (f32 or f64).
pub(crate) fn read_f32(content: &Content, key: &str) -> Result<f32, MetadataError> {
    match get(content, key)? {
        Value::F32(v) => Ok(*v),
        #[allow(clippy::cast_possible_truncation)]
        Value::F64(v) => Ok(*v as f32),
        _ => Err(wrong(key, "a float")),
    }
}

/// A string.
pub(crate) fn read_string<'a>(content: &'a Content, key: &str) -> Result<&'a str, MetadataError> {
    match get(content, key)? {
        Value::String(s) => Ok(s),
        _ => Err(wrong(key, "a string")),
    }
}

/// An array of strings.
pub(crate) fn read_strings<'a>(content: &'a Content, key: &str) -> Result<Vec<&'a str>, MetadataError> {
    let Value::Array(items) = get(content, key)? else { return Err(wrong(key, "an array")) };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(wrong(key, "an array of strings")),
        })
        .collect()
}

/// An array of signed or unsigned 32-bit integers.
pub(crate) fn read_i32s(content: &Content, key: &str) -> Result<Vec<i32>, MetadataError> {
    let Value::Array(items) = get(content, key)? else { return Err(wrong(key, "an array")) };
    items
        .iter()
        .map(|v| match v {
            Value::I32(n) => Ok(*n),
            Value::U32(n) => i32::try_from(*n).map_err(|_| wrong(key, "an array of i32")),
            _ => Err(wrong(key, "an array of integers")),
        })
        .collect()
}

/// An optional unsigned integer.
pub(crate) fn read_usize_opt(content: &Content, key: &str) -> Result<Option<usize>, MetadataError> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(_) => read_usize(content, key).map(Some),
    }
}
