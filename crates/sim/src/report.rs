//! What a run reports: the digest that two runs of the same seed share, every broken invariant, and
//! figures that say what the network did.

use std::collections::BTreeMap;

use gonka_primitives::Hash;
use serde::Serialize;

use crate::invariants::Violation;

/// Most violations kept per invariant (the count is always exact).
const KEPT_PER_INVARIANT: usize = 5;

/// One host at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSummary {
    /// Its index.
    pub host: usize,
    /// Its behaviour (`honest` or a Byzantine kind).
    pub behaviour: String,
    /// Nonces per block its engine computed.
    pub speed: u64,
    /// Its committed height (None while down).
    pub height: Option<u64>,
    /// Its voting power at the end.
    pub power: u64,
    /// Its last settled PoC weight.
    pub poc_weight: u64,
}

/// What the paid path did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrafficSummary {
    /// Requests developers sent.
    pub requests: u64,
    /// Requests a transfer agent admitted.
    pub admitted: u64,
    /// Answers executors generated.
    pub served: u64,
    /// Prompt tokens of those answers their executors' prefix caches served (billed at the cached share).
    pub cached_tokens: u64,
    /// Answers developers received.
    pub delivered: u64,
    /// Inferences charged on chain.
    pub charged: u64,
    /// Σ worth of delivered answers, ngonka, but those still in flight.
    pub delivered_worth: u128,
    /// Σ charged for them, ngonka.
    pub delivered_charged: u128,
    /// Delivered answers not charged yet whose settlement deadline is still ahead at the end.
    pub delivered_in_flight: u64,
    /// What validation did.
    #[serde(flatten)]
    pub validation: ValidationTotals,
}

/// What validation did in a run, as the chain's events tell (`ledger::Ledger::validation_totals`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ValidationTotals {
    /// Verdicts validators submitted.
    pub verdicts: u64,
    /// Answers with at least one verdict.
    pub judged: u64,
    /// Answers invalidated by a vote.
    pub invalidated: u64,
    /// Answers whose fee settled to their executor and validators.
    pub settled: u64,
    /// Answers an executor cheated on.
    pub cheated: u64,
    /// Of those, answers a validator judged.
    pub cheated_judged: u64,
    /// Of those, answers refunded (invalidated, or their executor found INVALID).
    pub cheated_refunded: u64,
    /// Cheated answers whose fee settled to the executor although no validator had judged them: the
    /// residual of sampled validation.
    pub cheated_paid_unjudged: u64,
    /// Hosts found INVALID.
    pub invalid_hosts: u64,
}

/// What the economy did in a run, from the last state (`docs/spec/economy.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EconomyTotals {
    /// Epochs settled.
    pub epochs_settled: u64,
    /// Subsidy minted, ngonka.
    pub minted: u128,
    /// Work and reward coins claimed, ngonka.
    pub claimed: u128,
    /// Burned: unclaimed, forfeited, INVALID hosts' owed fees, ngonka.
    pub burned: u128,
    /// Host-epochs claimed.
    pub claims: u64,
    /// Host-epochs forfeited for missed validations.
    pub forfeited: u64,
    /// Host-epochs left unclaimed.
    pub unclaimed: u64,
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Hosts.
    pub hosts: usize,
    /// Heights decided.
    pub blocks: u64,
    /// Rounds (block intervals) that decided nothing.
    pub failed_rounds: u64,
    /// `SHA-256` of every height's app hash, each node's final height and app hash, and the
    /// violations: equal for two runs of the same configuration.
    pub digest: Hash,
    /// The last app hash.
    pub app_hash: Hash,
    /// How many times each invariant broke.
    pub violation_counts: BTreeMap<&'static str, u64>,
    /// The first few violations of each invariant.
    pub violations: Vec<Violation>,
    /// Each host at the end.
    pub host_summaries: Vec<HostSummary>,
    /// The paid path.
    pub traffic: TrafficSummary,
    /// PoC stages whose weights were checked against compute (fault-free ones).
    pub stages_checked: u64,
    /// The fault schedule, as drawn.
    pub faults: String,
    /// What the economy did.
    pub economy: EconomyTotals,
}

impl Report {
    /// Whether `invariant` broke.
    pub fn violated(&self, invariant: &str) -> bool {
        self.violation_counts.get(invariant).is_some_and(|n| *n > 0)
    }

    /// The invariants that broke.
    pub fn broken(&self) -> Vec<&'static str> {
        self.violation_counts.iter().filter(|(_, n)| **n > 0).map(|(name, _)| *name).collect()
    }

    /// A few lines for a terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "seed {} · {} hosts · {} blocks ({} failed rounds) · digest {}\n",
            self.seed, self.hosts, self.blocks, self.failed_rounds, self.digest
        );
        out.push_str(&format!("faults: {}\n", self.faults));
        let t = &self.traffic;
        out.push_str(&format!(
            "traffic: {} requests, {} admitted, {} served, {} delivered (worth {}, charged {}, {} in flight), {} charged on chain\n",
            t.requests,
            t.admitted,
            t.served,
            t.delivered,
            t.delivered_worth,
            t.delivered_charged,
            t.delivered_in_flight,
            t.charged
        ));
        let v = &t.validation;
        out.push_str(&format!(
            "validation: {} verdicts on {} answers, {} invalidated, {} fees settled; {} cheated answers ({} judged, {} refunded, {} paid unjudged), {} hosts found INVALID\n",
            v.verdicts,
            v.judged,
            v.invalidated,
            v.settled,
            v.cheated,
            v.cheated_judged,
            v.cheated_refunded,
            v.cheated_paid_unjudged,
            v.invalid_hosts
        ));
        let e = &self.economy;
        out.push_str(&format!(
            "economy: {} epochs settled, {} minted, {} claimed, {} burned; {} claims, {} forfeited, {} unclaimed\n",
            e.epochs_settled, e.minted, e.claimed, e.burned, e.claims, e.forfeited, e.unclaimed
        ));
        for host in &self.host_summaries {
            out.push_str(&format!(
                "  host {:<2} {:<15} speed {:<4} height {:<5} power {:<6} poc weight {}\n",
                host.host,
                host.behaviour,
                host.speed,
                host.height.map_or("down".to_string(), |h| h.to_string()),
                host.power,
                host.poc_weight
            ));
        }
        if self.violations.is_empty() {
            out.push_str("invariants: all held\n");
        } else {
            for (name, count) in &self.violation_counts {
                out.push_str(&format!("VIOLATED {name}: {count} times\n"));
            }
            for v in &self.violations {
                out.push_str(&format!("  at {} {}: {}\n", v.height, v.invariant, v.detail));
            }
        }
        out
    }
}

/// Collects violations: every one counted, the first few of each kept, each distinct one once.
#[derive(Debug, Default)]
pub struct Violations {
    counts: BTreeMap<&'static str, u64>,
    kept: Vec<Violation>,
    seen: std::collections::BTreeSet<(&'static str, String)>,
}

impl Violations {
    /// Records `found`, ignoring ones already seen (the same broken rule found again next block).
    pub fn record(&mut self, found: Vec<Violation>) {
        for violation in found {
            if !self.seen.insert((violation.invariant, violation.detail.clone())) {
                continue;
            }
            let count = self.counts.entry(violation.invariant).or_default();
            *count += 1;
            if *count as usize <= KEPT_PER_INVARIANT {
                self.kept.push(violation);
            }
        }
    }

    /// The counts and the kept violations.
    pub fn into_parts(self) -> (BTreeMap<&'static str, u64>, Vec<Violation>) {
        (self.counts, self.kept)
    }

    /// The kept violations so far.
    pub fn kept(&self) -> &[Violation] {
        &self.kept
    }
}
