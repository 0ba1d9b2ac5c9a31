//! The byte-level BPE tokenizer of a GGUF model, built from its metadata (the SmolLM2 GGUF ships no
//! `tokenizer.json`).
//!
//! Pre-tokenization follows the model's `tokenizer.ggml.pre`: `smollm` splits every digit on its own and
//! then applies the GPT-2 byte-level regex. Control tokens (`token_type` 3) and user-defined tokens (4) are
//! matched atomically before BPE, as llama.cpp does when parsing special tokens.

use candle_core::quantized::gguf_file::Content;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use crate::gguf::{self, MetadataError};

/// GGUF `token_type` of a control token such as `<|im_end|>`.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF `token_type` of a user-defined token.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The tokenizer could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// Required metadata is absent or malformed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The GGUF names a tokenizer family the engine does not implement.
    #[error("unsupported tokenizer: model `{model}`, pre-tokenizer `{pre}`")]
    Unsupported {
        /// `tokenizer.ggml.model`.
        model: String,
        /// `tokenizer.ggml.pre`.
        pre: String,
    },
    /// A merge line is not two tokens separated by one space.
    #[error("malformed merge rule #{index}: {rule:?}")]
    BadMerge {
        /// Position in the merge list.
        index: usize,
        /// The rule text.
        rule: String,
    },
    /// The BPE library rejected the vocabulary or failed to encode.
    #[error("tokenizer: {0}")]
    Library(String),
}

/// A GGUF model's tokenizer: text to ids, ids to raw bytes.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Raw bytes of every token id (byte-level symbols decoded; control tokens as their UTF-8 text).
    token_bytes: Vec<Vec<u8>>,
    /// Id of the end-of-sequence token.
    eos_id: u32,
    /// Ids that end a turn: eos plus control tokens the template closes turns with.
    stop_ids: Vec<u32>,
    /// Whether each id is a control or user-defined token (matched atomically, never spelled out).
    special: Vec<bool>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.token_bytes.len())
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

impl Tokenizer {
    /// Build the tokenizer from GGUF metadata.
    pub fn from_gguf(content: &Content) -> Result<Self, TokenizerError> {
        let model = gguf::read_string(content, "tokenizer.ggml.model")?;
        let pre = gguf::read_string(content, "tokenizer.ggml.pre").unwrap_or("default");
        let split_digits = match (model, pre) {
            ("gpt2", "smollm") => true,
            ("gpt2", "gpt2" | "default") => false,
            _ => return Err(TokenizerError::Unsupported { model: model.into(), pre: pre.into() }),
        };
        let tokens = gguf::read_strings(content, "tokenizer.ggml.tokens")?;
        let token_types = gguf::read_i32s(content, "tokenizer.ggml.token_type")?;
        let merges = gguf::read_strings(content, "tokenizer.ggml.merges")?;
        let eos_id = to_u32(gguf::read_usize(content, "tokenizer.ggml.eos_token_id")?)?;

        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| Ok(((*t).to_string(), to_u32(id)?)))
            .collect::<Result<_, TokenizerError>>()?;
        let merges = merges
            .iter()
            .enumerate()
            .map(|(index, rule)| match rule.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
                _ => Err(TokenizerError::BadMerge { index, rule: (*rule).to_string() }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| TokenizerError::Library(e.to_string()))?;

        let mut inner = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, false, true);
        let pre_tokenizer: PreTokenizerWrapper = if split_digits {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        } else {
            byte_level.into()
        };
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let mut special = Vec::new();
        let mut token_bytes = Vec::with_capacity(tokens.len());
        let mut is_special = Vec::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            let kind = token_types.get(id).copied().unwrap_or(1);
            let atomic = kind == TOKEN_TYPE_CONTROL || kind == TOKEN_TYPE_USER_DEFINED;
            if atomic {
                special.push(AddedToken::from((*token).to_string(), kind == TOKEN_TYPE_CONTROL));
                token_bytes.push(token.as_bytes().to_vec());
            } else {
                token_bytes.push(byte_level_decode(token));
            }
            is_special.push(atomic);
        }
        inner.add_special_tokens(special).map_err(|e| TokenizerError::Library(e.to_string()))?;

        let mut stop_ids = vec![eos_id];
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(id) = tokens.iter().position(|t| *t == name) {
                let id = to_u32(id)?;
                if !stop_ids.contains(&id) {
                    stop_ids.push(id);
                }
            }
        }
        Ok(Self { inner, token_bytes, eos_id, stop_ids, special: is_special })
    }

    /// Token ids of `text`, with control tokens in the text matched atomically.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self.inner.encode(text, false).map_err(|e| TokenizerError::Library(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Raw bytes of one token (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Concatenated bytes of `ids`, lossily decoded as UTF-8.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|id| self.token_bytes(*id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The end-of-sequence token.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Tokens that end generation.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Whether `id` is a control or user-defined token such as `<|im_start|>`: its text is a name,
    /// not bytes of the output.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
}

fn to_u32(n: usize) -> Result<u32, TokenizerError> {
    u32::try_from(n).map_err(|_| TokenizerError::Library(format!("token id {n} exceeds u32")))
}

/// Inverse of GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68
/// bytes were shifted to U+0100.. in byte order.
fn byte_level_decode(token: &str) -> Vec<u8> {
    token.chars().map(|c| unicode_to_byte(c).unwrap_or(b'?')).collect()
}

fn unicode_to_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    let is_direct = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    if code <= 255 && is_direct(code) {
        return u8::try_from(code).ok();
    }
    // The shifted bytes, in increasing byte order, were mapped to 256, 257, …
    let shifted_index = code.checked_sub(256)?;
    (0u32..=255).filter(|b| !is_direct(*b)).nth(shifted_index as usize).and_then(|b| u8::try_from(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_symbols_map_back_to_bytes() {
        assert_eq!(byte_level_decode("Ġhello"), b" hello");
        assert_eq!(byte_level_decode("Ċ"), b"\n");
        assert_eq!(byte_level_decode("ĉ"), b"\t");
        assert_eq!(byte_level_decode("Ã©"), "é".as_bytes());
        assert_eq!(unicode_to_byte('\u{100}'), Some(0));
        assert_eq!(unicode_to_byte('\u{143}'), Some(173));
    }
}
