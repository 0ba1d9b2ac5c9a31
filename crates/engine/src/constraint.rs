//! Structured outputs (`docs/spec/validation.md` §3.2): an [`OutputGrammar`] compiled for this
//! tokenizer into a per-request [`Constraint`] whose [`Mask`] says which tokens may come next.
//!
//! The grammar engine is llguidance, pinned to one version in the workspace: the mask after a prefix is
//! a pure function of the grammar, the tokenizer and the prefix (its limits are counted in work units,
//! never in time), so the executor generating an answer and a validator replaying it compute the same
//! masks. Generation draws only among allowed tokens; scoring rebuilds each position's mask from the
//! answer's earlier tokens and replays the draw under it.

use std::sync::{Arc, OnceLock};

use gonka_engine_api::{EngineError, OutputGrammar};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use crate::tokenizer::Tokenizer;

/// How the JSON grammars lay out what the schema leaves free: compact, one space after `,` and `:`
/// (what models have read most), no other whitespace. A small model given free whitespace can spend
/// its whole budget on newlines.
const JSON_LAYOUT: &str = r#"{"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}"#;

/// The tokenizer as llguidance sees it: every token's bytes in a trie (control tokens behind
/// llguidance's special marker, so no grammar can spell them out as text).
struct Env {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, bytes: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(bytes).map(|text| self.tokenizer.encode(text)) {
            Ok(Ok(ids)) => ids,
            _ => self.trie.greedy_tokenize(bytes),
        }
    }
}

/// Compiles grammars for one tokenizer. The token trie and llguidance's precomputed token slices are
/// built on first use (tens of milliseconds), then shared by every request.
pub struct Grammars {
    tokenizer: Arc<Tokenizer>,
    factory: OnceLock<Result<ParserFactory, String>>,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammars").field("built", &self.factory.get().is_some()).finish()
    }
}

impl Grammars {
    /// Grammars over `tokenizer`'s vocabulary.
    pub fn new(tokenizer: Arc<Tokenizer>) -> Self {
        Self { tokenizer, factory: OnceLock::new() }
    }

    fn factory(&self) -> Result<&ParserFactory, EngineError> {
        let built = self.factory.get_or_init(|| {
            let tokenizer = &self.tokenizer;
            #[allow(clippy::cast_possible_truncation)]
            let vocab = tokenizer.vocab_size() as u32;
            let words: Vec<Vec<u8>> = (0..vocab)
                .map(|id| {
                    let bytes = tokenizer.token_bytes(id);
                    if tokenizer.is_special(id) {
                        [&[TokTrie::SPECIAL_TOKEN_MARKER], bytes].concat()
                    } else {
                        bytes.to_vec()
                    }
                })
                .collect();
            let trie = TokTrie::from(&TokRxInfo::new(vocab, tokenizer.eos_id()), &words);
            let env: TokEnv = Arc::new(Env { trie, tokenizer: Arc::clone(tokenizer) });
            let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
            factory.quiet();
            Ok(factory)
        });
        built.as_ref().map_err(|message| EngineError::Model(format!("grammar engine: {message}")))
    }

    /// A fresh constraint for one answer, or the reason `grammar` cannot be used (an invalid or
    /// unsupported schema: the request's error, named by [`OutputGrammar::param`]).
    pub fn compile(&self, grammar: &OutputGrammar) -> Result<Constraint, EngineError> {
        let factory = self.factory()?;
        let param = grammar.param();
        let top = match grammar {
            OutputGrammar::JsonSchema(text) => {
                let mut schema: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                    EngineError::InvalidParameter { param, message: format!("not JSON: {e}") }
                })?;
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(EngineError::InvalidParameter {
                        param,
                        message: "a JSON Schema is an object".into(),
                    });
                }
                if let Some(object) = schema.as_object_mut()
                    && !object.contains_key("x-guidance")
                {
                    let layout = serde_json::from_str(JSON_LAYOUT).expect("the layout is valid JSON");
                    object.insert("x-guidance".into(), layout);
                }
                TopLevelGrammar::from_json_schema(schema)
            }
            OutputGrammar::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
        };
        let parser = factory.create_parser(top).map_err(|e| EngineError::InvalidParameter {
            param,
            message: format!("unsupported or invalid schema: {}", first_line(&format!("{e:#}"))),
        })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(error) = matcher.get_error() {
            return Err(EngineError::InvalidParameter { param, message: first_line(&error).to_string() });
        }
        let tokenizer = &self.tokenizer;
        Ok(Constraint { matcher, eos: tokenizer.eos_id(), stops: tokenizer.stop_ids().to_vec() })
    }
}

/// llguidance's errors carry the grammar and parser state after the first line; the client needs the
/// first.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// One answer's grammar state: the tokens so far, and what may follow them.
pub struct Constraint {
    matcher: Matcher,
    eos: u32,
    stops: Vec<u32>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").field("stopped", &self.matcher.is_stopped()).finish()
    }
}

/// The tokens allowed at one position. Every end-of-turn token stands for the grammar's end: allowed
/// exactly where the output is complete.
#[derive(Debug, Clone)]
pub struct Mask {
    allowed: Option<SimpleVob>,
    end_allowed: bool,
    stops: Vec<u32>,
}

impl Mask {
    /// Whether `token` may be drawn here.
    pub fn allows(&self, token: u32) -> bool {
        if self.stops.contains(&token) {
            return self.end_allowed;
        }
        // Logits rows may be longer than the tokenizer's vocabulary: ids past it are never allowed.
        self.allowed.as_ref().is_some_and(|vob| (token as usize) < vob.len() && vob.is_allowed(token))
    }

    /// Sets every disallowed token's logit to −∞.
    pub fn apply(&self, logits: &mut [f32]) {
        for (id, logit) in logits.iter_mut().enumerate() {
            #[allow(clippy::cast_possible_truncation)]
            if !self.allows(id as u32) {
                *logit = f32::NEG_INFINITY;
            }
        }
    }
}

impl Constraint {
    /// The mask of the next position. A grammar the engine cannot advance any more (its work limit
    /// hit, or a token that broke it) allows only the end: the same on every host.
    pub fn mask(&mut self) -> Mask {
        let stops = self.stops.clone();
        match self.matcher.compute_mask_or_eos() {
            Ok(vob) => {
                let end_allowed = vob.is_allowed(self.eos);
                Mask { allowed: Some(vob), end_allowed, stops }
            }
            Err(_) => Mask { allowed: None, end_allowed: true, stops },
        }
    }

    /// Advances past `token` (an end-of-turn token as the grammar's end). A token the grammar refuses
    /// leaves it broken: every later mask allows only the end.
    pub fn commit(&mut self, token: u32) {
        let token = if self.stops.contains(&token) { self.eos } else { token };
        if !self.matcher.is_error() {
            let _ = self.matcher.consume_token(token);
        }
    }

    /// The mask of the next position, then advances past `token`: one step of a replay.
    pub fn step(&mut self, token: u32) -> Mask {
        let mask = self.mask();
        self.commit(token);
        mask
    }
}
