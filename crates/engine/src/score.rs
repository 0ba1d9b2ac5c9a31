//! Teacher-forced scoring: the logprob of every given completion token, and its top alternatives, from
//! one batched pass. This is what a validator runs to re-check an answer.

use std::sync::Mutex;

use crate::SamplingParams;
pub use crate::ScoredPosition;
use crate::constraint::Constraint;
use crate::model::{KvCache, Llama, ModelError, Outputs, Segment};
use crate::sampler::{log_sum_exp, replay, top_k_ids};

/// Tokens per forward chunk while scoring (bounds activation memory).
const SCORE_CHUNK_TOKENS: usize = 512;
/// Rows per output-projection call (bounds logits memory: rows × vocab floats).
const LOGITS_CHUNK_ROWS: usize = 64;

/// Score `completion` as a continuation of `prompt`; with `sampling`, also replay the seeded sampler at
/// every position (under `constraint`'s masks, rebuilt from the completion's own tokens, when the
/// sampling names a grammar).
pub fn score(
    model: &Llama,
    prompt: &[u32],
    completion: &[u32],
    top_k: usize,
    sampling: Option<&SamplingParams>,
    mut constraint: Option<Constraint>,
) -> Result<Vec<ScoredPosition>, ModelError> {
    if prompt.is_empty() || completion.is_empty() {
        return Ok(Vec::new());
    }
    let dim = model.config().dim;
    // The hidden state at position p predicts token p + 1: feed the prompt and all completion tokens but
    // the last, and keep the rows from the prompt's last token on.
    let tokens: Vec<u32> = prompt.iter().chain(&completion[..completion.len() - 1]).copied().collect();
    let first_row = prompt.len() - 1;
    let mut cache = KvCache::new(model);
    let mut hidden = Vec::with_capacity(completion.len() * dim);
    for (chunk_index, chunk) in tokens.chunks(SCORE_CHUNK_TOKENS).enumerate() {
        let start = chunk_index * SCORE_CHUNK_TOKENS;
        let end = start + chunk.len();
        let outputs = if end > first_row { Outputs::All } else { Outputs::None };
        let out = model.forward(&mut [Segment { cache: &mut cache, tokens: chunk, outputs }])?;
        if outputs == Outputs::All {
            let skip = first_row.saturating_sub(start);
            hidden.extend_from_slice(&out[0][skip * dim..]);
        }
    }
    let mut scored = Vec::with_capacity(completion.len());
    for (rows_index, rows) in hidden.chunks(LOGITS_CHUNK_ROWS * dim).enumerate() {
        let logits = model.logits(rows)?;
        let n_rows = rows.len() / dim;
        let vocab = logits.len() / n_rows;
        let tokens = &completion[rows_index * LOGITS_CHUNK_ROWS..][..n_rows];
        // The softmax statistics and top-k of each position are independent: spread them over the pool.
        let slots: Vec<Mutex<Option<ScoredPosition>>> = (0..n_rows).map(|_| Mutex::new(None)).collect();
        let first_position = rows_index * LOGITS_CHUNK_ROWS;
        // Masks follow the grammar token by token: built in order here, then used in parallel.
        let masks: Vec<_> = match &mut constraint {
            Some(constraint) => tokens.iter().map(|&token| Some(constraint.step(token))).collect(),
            None => vec![None; n_rows],
        };
        model.pool().run(n_rows, |i| {
            let row = &logits[i * vocab..][..vocab];
            let mut position = score_position(row, tokens[i], top_k);
            let at = first_position + i;
            position.replay =
                sampling.map(|s| replay(s, row, at as u64, tokens[i], &completion[..at], masks[i].as_ref()));
            if let Ok(mut slot) = slots[i].lock() {
                *slot = Some(position);
            }
        });
        for slot in slots {
            let position = slot.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            scored.push(position.expect("every position is scored by the pool run"));
        }
    }
    Ok(scored)
}

/// The logprob of `token` and the `top_k` best alternatives at one position. Generation reports its
/// logprobs through this same function, so a validator's numbers and the executor's come from one code path.
pub(crate) fn score_position(logits: &[f32], token: u32, top_k: usize) -> ScoredPosition {
    let lse = log_sum_exp(logits);
    let top = top_k_ids(logits, top_k).into_iter().map(|id| (id, logits[id as usize] - lse)).collect();
    let logit = logits.get(token as usize).copied().unwrap_or(f32::NEG_INFINITY);
    let above = logits.iter().filter(|&&l| l > logit).count();
    let rank = u32::try_from(above + 1).unwrap_or(u32::MAX);
    ScoredPosition { token, logprob: logit - lse, top, rank, replay: None }
}
