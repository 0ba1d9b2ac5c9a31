//! Seeded token sampling (temperature, top-k, top-p), its replay for validators, and log-probability
//! helpers.
//!
//! A [`Sampler`] draws position `j` of a request with the protocol's uniform for (seed, `j`)
//! ([`gonka_engine_api::sampling_uniform`]), so the same seed and logits give the same tokens whatever
//! else the engine is doing, and a validator replays any position on its own ([`replay`]). Ties between
//! equal logits are broken by the lower token id, so the order of candidates never depends on a sort's
//! stability.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use gonka_engine_api::{Replay, draw_candidates, greedy_replay, sampling_uniform};

use crate::SamplingParams;
use crate::constraint::{Constraint, Mask};

/// Temperatures at or below this are treated as greedy decoding.
const GREEDY_TEMPERATURE_MAX: f32 = 1e-5;

/// Draws tokens for one request.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    /// The request's grammar state, when its output is constrained.
    constraint: Option<Constraint>,
    /// The position of the next token drawn (completion tokens so far).
    position: u64,
    /// How many times each token was drawn so far (kept only when the request has penalties).
    counts: BTreeMap<u32, u32>,
    /// The adjusted copy of a position's logits (reused; empty when nothing is adjusted).
    adjusted: Vec<f32>,
}

/// Order by logit descending, then id ascending; NaN sorts last.
fn by_logit_desc(logits: &[f32]) -> impl Fn(&u32, &u32) -> Ordering + '_ {
    move |a, b| {
        let (la, lb) = (logits[*a as usize], logits[*b as usize]);
        let la = if la.is_nan() { f32::NEG_INFINITY } else { la };
        let lb = if lb.is_nan() { f32::NEG_INFINITY } else { lb };
        lb.total_cmp(&la).then(a.cmp(b))
    }
}

/// Logits per chunk of [`top_k_scan`]'s skip test.
const TOP_K_SCAN_CHUNK: usize = 64;

/// Above this `k`, [`top_k_ids`] partitions the whole vocabulary instead of scanning with a small buffer.
const TOP_K_SCAN_MAX: usize = 64;

/// The `k` best token ids by logit, best first (ties: lower id first; NaN ranks as −∞).
pub fn top_k_ids(logits: &[f32], k: usize) -> Vec<u32> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    if k <= TOP_K_SCAN_MAX {
        return top_k_scan(logits, k);
    }
    #[allow(clippy::cast_possible_truncation)]
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let cmp = by_logit_desc(logits);
    if k < ids.len() {
        ids.select_nth_unstable_by(k - 1, &cmp);
        ids.truncate(k);
    }
    ids.sort_unstable_by(&cmp);
    ids
}

/// One pass keeping the `k` best seen so far, sorted. Ids arrive in increasing order, so a logit equal to
/// the current k-th best never displaces it: ties keep the lower id, as the full sort does.
fn top_k_scan(logits: &[f32], k: usize) -> Vec<u32> {
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (c, chunk) in logits.chunks(TOP_K_SCAN_CHUNK).enumerate() {
        // Most chunks hold nothing better than the current k-th best: one vector max skips them whole
        // (NaN, which ranks as −∞, is ignored by `max`).
        if best.len() == k && crate::kernels::max(chunk) <= best[k - 1].0 {
            continue;
        }
        for (i, &logit) in chunk.iter().enumerate() {
            let logit = if logit.is_nan() { f32::NEG_INFINITY } else { logit };
            if best.len() == k && logit <= best[k - 1].0 {
                continue;
            }
            let at = best.partition_point(|(b, _)| *b >= logit);
            #[allow(clippy::cast_possible_truncation)]
            best.insert(at, (logit, (c * TOP_K_SCAN_CHUNK + i) as u32));
            best.truncate(k);
        }
    }
    best.into_iter().map(|(_, id)| id).collect()
}

/// `log(sum(exp(logits)))`, computed stably: shifted by the maximum, terms summed in f64 (see
/// [`crate::kernels::sum_exp_shifted`]).
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = crate::kernels::max(logits);
    if max == f32::NEG_INFINITY {
        return max;
    }
    // NaN logits count as e^-87 against a sum of at least 1: nothing.
    let sum = crate::kernels::sum_exp_shifted(logits, max);
    #[allow(clippy::cast_possible_truncation)]
    let lse = (f64::from(max) + sum.ln()) as f32;
    lse
}

impl Sampler {
    /// A sampler for a request's first completion position.
    pub fn new(params: SamplingParams) -> Self {
        Self::constrained(params, None)
    }

    /// A sampler whose draws stay inside `constraint` (compiled from `params.grammar`).
    pub fn constrained(params: SamplingParams, constraint: Option<Constraint>) -> Self {
        Self { params, constraint, position: 0, counts: BTreeMap::new(), adjusted: Vec::new() }
    }

    /// Pick the next token from the model's logits (penalties and biases of the request, then its
    /// grammar's mask, applied to a copy).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let adjustments = &self.params.adjustments;
        let drawn = if adjustments.is_none() && self.constraint.is_none() {
            draw(&self.params, logits, self.position, None).drawn
        } else {
            self.adjusted.clear();
            self.adjusted.extend_from_slice(logits);
            adjustments.apply(&mut self.adjusted, &self.counts);
            if let Some(constraint) = &mut self.constraint {
                constraint.mask().apply(&mut self.adjusted);
            }
            draw(&self.params, &self.adjusted, self.position, None).drawn
        };
        if adjustments.penalizes() {
            *self.counts.entry(drawn).or_insert(0) += 1;
        }
        if let Some(constraint) = &mut self.constraint {
            constraint.commit(drawn);
        }
        self.position += 1;
        drawn
    }
}

/// What the seeded sampler of `params` draws at completion position `position` from the model's
/// `logits` after the completion tokens `previous` (the request's penalties count them) under the
/// grammar's `mask` there (when the request is constrained), and how far `token` is from being drawn
/// there: what a validator checks at every position of an answer (`docs/spec/validation.md` §3, §3.2).
/// Generation draws through the same code. A token the mask refuses could not have been drawn at all.
pub fn replay(
    params: &SamplingParams,
    logits: &[f32],
    position: u64,
    token: u32,
    previous: &[u32],
    mask: Option<&Mask>,
) -> Replay {
    let adjustments = &params.adjustments;
    if adjustments.is_none() && mask.is_none() {
        return draw(params, logits, position, Some(token));
    }
    let mut adjusted = logits.to_vec();
    adjustments.apply(&mut adjusted, &adjustments.counts(previous));
    if let Some(mask) = mask {
        mask.apply(&mut adjusted);
        if !mask.allows(token) {
            return Replay { drawn: draw(params, &adjusted, position, None).drawn, margin: 1.0 };
        }
    }
    draw(params, &adjusted, position, Some(token))
}

fn draw(p: &SamplingParams, logits: &[f32], position: u64, given: Option<u32>) -> Replay {
    if p.temperature <= GREEDY_TEMPERATURE_MAX || p.top_k == 1 {
        let best = top_k_ids(logits, 1).first().copied().unwrap_or(0);
        return match given {
            None => Replay { drawn: best, margin: 0.0 },
            Some(token) => {
                let lse = log_sum_exp(logits);
                let logprob = |id: u32| logits.get(id as usize).map_or(f32::NEG_INFINITY, |l| l - lse);
                greedy_replay((best, logprob(best)), token, logprob(token))
            }
        };
    }
    let uniform = sampling_uniform(p.seed, position);
    let inv_t = 1.0 / f64::from(p.temperature);
    let weight = |id: u32, max: f32| (f64::from(logits[id as usize] - max) * inv_t).exp();
    let vocab = logits.len();
    let k_limit = if p.top_k == 0 { vocab } else { p.top_k.min(vocab) };

    if k_limit == vocab && p.top_p >= 1.0 {
        // Plain temperature sampling: no ordering needed, walk ids in order.
        let max = logits.iter().copied().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max);
        #[allow(clippy::cast_possible_truncation)]
        let ids = (0..vocab as u32).filter(|id| !logits[*id as usize].is_nan());
        let total: f64 = ids.clone().map(|id| weight(id, max)).sum();
        return draw_candidates(ids.map(|id| (id, weight(id, max))), total, uniform, given);
    }

    // Grow the candidate set until it holds `top_k` tokens or the nucleus mass, whichever is smaller;
    // most distributions concentrate in a few dozen tokens, so this rarely sorts the whole vocabulary.
    let mut k = k_limit.min(64);
    loop {
        let ids = top_k_ids(logits, k);
        let max = logits[ids[0] as usize];
        let weights: Vec<f64> = ids.iter().map(|id| weight(*id, max)).collect();
        let all_total: f64 = if k == vocab {
            weights.iter().sum()
        } else {
            #[allow(clippy::cast_possible_truncation)]
            (0..vocab as u32).filter(|id| !logits[*id as usize].is_nan()).map(|id| weight(id, max)).sum()
        };
        // Mass of the candidates relative to the distribution after top-k filtering.
        let filtered_total = if k == k_limit { weights.iter().sum::<f64>() } else { all_total };
        let target = f64::from(p.top_p.clamp(0.0, 1.0)) * filtered_total;
        let mut cumulative = 0.0;
        let mut keep = ids.len();
        for (i, w) in weights.iter().enumerate() {
            cumulative += w;
            if cumulative >= target {
                keep = i + 1;
                break;
            }
        }
        if cumulative >= target || k == k_limit {
            let total: f64 = weights[..keep].iter().sum();
            let candidates = ids[..keep].iter().copied().zip(weights[..keep].iter().copied());
            return draw_candidates(candidates, total, uniform, given);
        }
        k = (k * 8).min(k_limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonka_engine_api::LogitAdjustments;

    fn params(temperature: f32, top_p: f32, top_k: usize, seed: u64) -> SamplingParams {
        SamplingParams { temperature, top_p, top_k, seed, ..SamplingParams::default() }
    }

    fn logits() -> Vec<f32> {
        (0..1000).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect()
    }

    #[test]
    fn greedy_picks_argmax_and_breaks_ties_by_lower_id() {
        let mut s = Sampler::new(params(0.0, 1.0, 0, 1));
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
        assert_eq!(s.sample(&[f32::NAN, 2.0, 1.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens_different_seed_differs() {
        let l = logits();
        let run = |seed| {
            let mut s = Sampler::new(params(1.0, 1.0, 0, seed));
            (0..50).map(|_| s.sample(&l)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let l = logits();
        let mut s = Sampler::new(params(5.0, 1.0, 1, 3));
        let best = top_k_ids(&l, 1)[0];
        assert!((0..20).all(|_| s.sample(&l) == best));
    }

    #[test]
    fn top_k_restricts_to_the_k_best() {
        let l = logits();
        let best: Vec<u32> = top_k_ids(&l, 3);
        let mut s = Sampler::new(params(100.0, 1.0, 3, 9));
        assert!((0..200).all(|_| best.contains(&s.sample(&l))));
    }

    #[test]
    fn tiny_top_p_keeps_only_the_best_token() {
        let l = logits();
        let best = top_k_ids(&l, 1)[0];
        let mut s = Sampler::new(params(1.0, 1e-9, 0, 5));
        assert!((0..50).all(|_| s.sample(&l) == best));
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // Two tokens hold ~all the mass; top_p 0.5 keeps only the first.
        let mut l = vec![-50.0f32; 100];
        l[10] = 10.0;
        l[20] = 9.9;
        let mut s = Sampler::new(params(1.0, 0.5, 0, 11));
        assert!((0..100).all(|_| s.sample(&l) == 10));
        let mut s = Sampler::new(params(1.0, 0.99, 0, 11));
        let picks: Vec<u32> = (0..200).map(|_| s.sample(&l)).collect();
        assert!(picks.iter().all(|p| *p == 10 || *p == 20));
        assert!(picks.contains(&20));
    }

    #[test]
    fn top_p_one_and_k_zero_can_reach_every_token() {
        let l = vec![0.0f32; 4];
        let mut s = Sampler::new(params(1.0, 1.0, 0, 2));
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[s.sample(&l) as usize] = true;
        }
        assert!(seen.iter().all(|x| *x));
    }

    /// Replays each drawn position of `params` over `l` and checks the replay agrees with the draw.
    fn replay_agrees(params: &SamplingParams, l: &[f32], positions: u64) {
        let mut s = Sampler::new(params.clone());
        let mut previous = Vec::new();
        for position in 0..positions {
            let token = s.sample(l);
            assert_eq!(
                replay(params, l, position, token, &previous, None),
                Replay { drawn: token, margin: 0.0 }
            );
            previous.push(token);
        }
    }

    #[test]
    fn replaying_a_draw_gives_the_drawn_token_at_every_position() {
        let l = logits();
        replay_agrees(&params(1.0, 1.0, 0, 3), &l, 50);
        replay_agrees(&params(0.7, 0.9, 0, 4), &l, 50);
        replay_agrees(&params(1.3, 1.0, 40, 5), &l, 50);
        replay_agrees(&params(0.0, 1.0, 0, 6), &l, 5);
    }

    #[test]
    fn replay_of_another_token_reports_how_far_it_is_from_the_draw() {
        // Two tokens of equal mass: the seeded draw takes one; the other sits on the far side of it.
        let mut l = vec![-50.0f32; 10];
        l[2] = 5.0;
        l[7] = 5.0;
        let p = params(1.0, 1.0, 0, 21);
        let drawn = Sampler::new(p.clone()).sample(&l);
        let other = if drawn == 2 { 7 } else { 2 };
        let r = replay(&p, &l, 0, other, &[], None);
        assert_eq!(r.drawn, drawn);
        assert!(r.margin > 0.0 && r.margin < 0.5, "margin {}", r.margin);
        // A token outside the nucleus cannot be drawn at all.
        let nucleus = params(1.0, 0.4, 0, 21);
        let best = top_k_ids(&l, 1)[0];
        assert_eq!(replay(&nucleus, &l, 0, 7, &[], None).margin, if best == 7 { 0.0 } else { 1.0 });
    }

    #[test]
    fn greedy_replay_measures_the_probability_gap_and_ties_go_to_the_lower_id() {
        let l = [0.0f32, 2.0, 2.0, 1.0];
        let p = params(0.0, 1.0, 0, 1);
        assert_eq!(replay(&p, &l, 0, 1, &[], None), Replay { drawn: 1, margin: 0.0 });
        let tie = replay(&p, &l, 0, 2, &[], None);
        assert_eq!(tie.drawn, 1);
        assert!(tie.margin > 0.0 && tie.margin < 1e-6, "a tie is a hair from being drawn: {}", tie.margin);
        let third = replay(&p, &l, 0, 3, &[], None);
        let lse = log_sum_exp(&l);
        let gap = (2.0 - lse).exp() - (1.0 - lse).exp();
        assert!((third.margin - gap).abs() < 1e-6);
    }

    fn adjusted(
        params: &SamplingParams,
        presence: f32,
        frequency: f32,
        bias: &[(u32, f32)],
    ) -> SamplingParams {
        let adjustments = LogitAdjustments {
            presence_penalty: presence,
            frequency_penalty: frequency,
            logit_bias: bias.to_vec(),
        };
        SamplingParams { adjustments, ..params.clone() }
    }

    #[test]
    fn logit_bias_bans_and_forces_tokens() {
        let l = logits();
        let best = top_k_ids(&l, 1)[0];
        let banned = adjusted(&params(0.0, 1.0, 0, 1), 0.0, 0.0, &[(best, -100.0)]);
        assert_ne!(Sampler::new(banned).sample(&l), best);
        let forced = adjusted(&params(1.0, 1.0, 0, 1), 0.0, 0.0, &[(17, 100.0)]);
        let mut s = Sampler::new(forced);
        assert!((0..50).all(|_| s.sample(&l) == 17));
    }

    #[test]
    fn penalties_push_greedy_away_from_repeating_itself() {
        // Greedy repeats the best token for ever; a presence penalty larger than the gap to the second
        // best moves it to that token once, and a frequency penalty keeps growing with each use.
        let mut l = vec![0.0f32; 10];
        l[3] = 2.0;
        l[5] = 1.5;
        let greedy = params(0.0, 1.0, 0, 1);
        let mut plain = Sampler::new(greedy.clone());
        assert!((0..5).all(|_| plain.sample(&l) == 3));
        let mut presence = Sampler::new(adjusted(&greedy, 1.0, 0.0, &[]));
        let drawn: Vec<u32> = (0..4).map(|_| presence.sample(&l)).collect();
        assert_eq!(drawn, [3, 5, 3, 3], "after both were used once the penalty no longer grows");
        let mut frequency = Sampler::new(adjusted(&greedy, 0.0, 1.0, &[]));
        let drawn: Vec<u32> = (0..4).map(|_| frequency.sample(&l)).collect();
        assert_eq!(drawn, [3, 5, 3, 5]);
    }

    #[test]
    fn replay_with_adjustments_rebuilds_the_distribution_from_the_previous_tokens() {
        let l = logits();
        for p in [
            adjusted(&params(1.0, 1.0, 0, 3), 0.5, 0.3, &[(5, 2.0), (900, -3.0)]),
            adjusted(&params(0.7, 0.9, 40, 4), 1.5, 0.0, &[]),
            adjusted(&params(0.0, 1.0, 0, 6), 0.0, 2.0, &[(1, 1.0)]),
            adjusted(&params(1.0, 1.0, 0, 7), -2.0, 0.0, &[]),
        ] {
            replay_agrees(&p, &l, 40);
        }
        // Replayed without the history, a penalized answer no longer matches: the penalty is checked.
        let p = adjusted(&params(0.0, 1.0, 0, 1), 0.0, 10.0, &[]);
        let mut s = Sampler::new(p.clone());
        let first = s.sample(&l);
        let second = s.sample(&l);
        assert_ne!(first, second);
        assert!(replay(&p, &l, 1, second, &[], None).margin > 0.0);
        assert_eq!(replay(&p, &l, 1, second, &[first], None).margin, 0.0);
    }

    #[test]
    fn top_k_ids_orders_best_first() {
        assert_eq!(top_k_ids(&[1.0, 5.0, 3.0, 5.0], 3), vec![1, 3, 2]);
        assert_eq!(top_k_ids(&[1.0], 5), vec![0]);
        assert!(top_k_ids(&[1.0], 0).is_empty());
    }

    #[test]
    fn scanning_top_k_equals_the_full_sort() {
        let mut l = logits();
        l[3] = f32::NAN;
        l[500] = l[10];
        for k in [1, 2, 5, 20, 64] {
            let mut ids: Vec<u32> = (0..l.len() as u32).collect();
            ids.sort_by(by_logit_desc(&l));
            assert_eq!(top_k_scan(&l, k), ids[..k].to_vec(), "k = {k}");
        }
    }

    #[test]
    fn log_sum_exp_matches_direct_sum() {
        let l = [0.5f32, -1.0, 2.0];
        let direct = l.iter().map(|v| f64::from(*v).exp()).sum::<f64>().ln();
        assert!((f64::from(log_sum_exp(&l)) - direct).abs() < 1e-6);
    }
}
