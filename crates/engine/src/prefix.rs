//! Prefix caching (issue 16): the KV rows of a prompt's leading full blocks of [`BLOCK_TOKENS`] tokens,
//! kept after its prefill and copied into later prompts that start with the same tokens, whose prefill
//! then starts after them. Every chat request shares the template's system prefix; agents resend long
//! instructions.
//!
//! A position's KV rows depend only on the tokens up to it (every kernel works row by row, bit-identical
//! whatever the batch or the prefill chunk), so an answer is bit-identical with and without the cache.
//! Blocks are keyed by a hash chained over every token from the prompt's start, and a hit also compares
//! the block's own tokens and its parent's key. The least recently used blocks are evicted beyond the
//! configured number of tokens; a block whose parent is gone is never reached again and ages out.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::model::KvCache;

/// Tokens per cached block.
pub const BLOCK_TOKENS: usize = 64;

struct Block {
    parent: u64,
    tokens: Vec<u32>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    /// When it was last kept or restored (a counter, not a clock).
    used: u64,
    /// Its place in its prompt (0 for the first block): among blocks last used together, the deepest
    /// are evicted first, so a prefix shrinks from its end and what is left still matches.
    depth: usize,
}

/// The engine's prefix cache.
pub struct PrefixCache {
    blocks: HashMap<u64, Block>,
    capacity_blocks: usize,
    tick: u64,
}

impl std::fmt::Debug for PrefixCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixCache").field("blocks", &self.blocks.len()).finish_non_exhaustive()
    }
}

fn key(parent: u64, tokens: &[u32]) -> u64 {
    let mut hasher = DefaultHasher::new();
    parent.hash(&mut hasher);
    tokens.hash(&mut hasher);
    hasher.finish()
}

impl PrefixCache {
    /// A cache holding the KV rows of at most `capacity_tokens` prompt tokens (0 disables it).
    pub fn new(capacity_tokens: usize) -> Self {
        Self { blocks: HashMap::new(), capacity_blocks: capacity_tokens / BLOCK_TOKENS, tick: 0 }
    }

    /// Copies into the empty `cache` the KV rows of the longest run of cached blocks `prompt` starts
    /// with, always leaving the prompt's last token to compute (its logits start the answer); returns
    /// the tokens restored.
    pub fn restore(&mut self, prompt: &[u32], cache: &mut KvCache) -> usize {
        if self.capacity_blocks == 0 || !cache.is_empty() {
            return 0;
        }
        self.tick += 1;
        let reusable = prompt.len().saturating_sub(1) / BLOCK_TOKENS;
        let mut parent = 0;
        let mut restored = 0;
        for tokens in prompt.chunks_exact(BLOCK_TOKENS).take(reusable) {
            let block_key = key(parent, tokens);
            let Some(block) = self.blocks.get_mut(&block_key) else { break };
            if block.parent != parent || block.tokens != tokens {
                break;
            }
            block.used = self.tick;
            cache.extend_rows(&block.keys, &block.values, BLOCK_TOKENS);
            restored += BLOCK_TOKENS;
            parent = block_key;
        }
        restored
    }

    /// Keeps the full blocks of `prompt` from `cache` (which holds at least the prompt's rows), then
    /// evicts the least recently used blocks beyond the capacity.
    pub fn keep(&mut self, prompt: &[u32], cache: &KvCache) {
        if self.capacity_blocks == 0 {
            return;
        }
        self.tick += 1;
        let mut parent = 0;
        for (index, tokens) in prompt.chunks_exact(BLOCK_TOKENS).enumerate() {
            let block_key = key(parent, tokens);
            let tick = self.tick;
            match self.blocks.get_mut(&block_key) {
                Some(block) if block.parent == parent && block.tokens == tokens => block.used = tick,
                // A hash collision with another prefix: keep the one already there.
                Some(_) => break,
                None => {
                    let start = index * BLOCK_TOKENS;
                    let (keys, values) = cache.rows(start, start + BLOCK_TOKENS);
                    let block =
                        Block { parent, tokens: tokens.to_vec(), keys, values, used: tick, depth: index };
                    self.blocks.insert(block_key, block);
                }
            }
            parent = block_key;
        }
        if self.blocks.len() > self.capacity_blocks {
            let mut by_age: Vec<(u64, std::cmp::Reverse<usize>, u64)> =
                self.blocks.iter().map(|(k, b)| (b.used, std::cmp::Reverse(b.depth), *k)).collect();
            by_age.sort_unstable();
            let excess = self.blocks.len() - self.capacity_blocks;
            for (_, _, block_key) in by_age.into_iter().take(excess) {
                self.blocks.remove(&block_key);
            }
        }
    }
}
