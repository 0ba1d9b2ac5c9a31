//! The fault schedule of a run, drawn from its seed: crash-and-restart windows, a partition of a
//! minority, a gossip-loss window, and message delays. Windows are in rounds (block intervals of
//! simulated time, whether or not a block is decided in them), so a fault that stops the chain still
//! heals. Every window closes before the last rounds, so a run has a safety phase (faults) and then a
//! liveness phase (healed) in which laggards catch up.

use std::collections::BTreeSet;

use crate::config::{BLOCK_INTERVAL_MS, Faults};
use crate::rng::SimRng;

/// A range of rounds `[from, to)` during which a fault holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First height of the fault.
    pub from: u64,
    /// First height after it.
    pub to: u64,
}

impl Window {
    /// Whether `height` is inside.
    pub fn contains(&self, height: u64) -> bool {
        (self.from..self.to).contains(&height)
    }

    /// Whether it overlaps `[from, to]`.
    pub fn overlaps(&self, from: u64, to: u64) -> bool {
        self.from <= to && from < self.to
    }
}

/// The faults of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Hosts that crash, and when; they restart from their store at the window's end.
    pub crashes: Vec<(usize, Window)>,
    /// A minority cut off from the rest, and when.
    pub partition: Option<(BTreeSet<usize>, Window)>,
    /// When gossip is lost, and with what probability (per mille).
    pub drop: Option<(Window, u64)>,
    /// Largest delay of a message, in ms (a fixed 5 ms without the delay fault).
    pub delay_max_ms: u64,
}

/// Heights at the end of a run left without faults, so every node can catch up.
const LIVENESS_BLOCKS: u64 = 10;

fn window(rng: &mut SimRng, blocks: u64) -> Option<Window> {
    let last = blocks.checked_sub(LIVENESS_BLOCKS)?;
    if last < 4 {
        return None;
    }
    let from = rng.range(2..last - 2);
    let to = (from + rng.range(2..10)).min(last);
    Some(Window { from, to })
}

impl FaultPlan {
    /// The plan for `faults` over `blocks` heights of `hosts`.
    pub fn draw(faults: Faults, hosts: usize, blocks: u64, rng: &mut SimRng) -> FaultPlan {
        let mut plan = FaultPlan { delay_max_ms: 5, ..FaultPlan::default() };
        // At most f = ⌊(n − 1) / 3⌋ hosts are down or cut off at once, so the rest can decide.
        let tolerated = (hosts.saturating_sub(1)) / 3;
        if faults.crash && tolerated > 0 {
            let count = 1 + rng.below(tolerated as u64) as usize;
            let mut chosen = BTreeSet::new();
            while chosen.len() < count {
                chosen.insert(rng.below(hosts as u64) as usize);
            }
            let shared = window(rng, blocks);
            plan.crashes = chosen.into_iter().filter_map(|host| shared.map(|w| (host, w))).collect();
        }
        if faults.partition && tolerated > 0 {
            let size = 1 + rng.below(tolerated as u64) as usize;
            let mut minority = BTreeSet::new();
            while minority.len() < size {
                minority.insert(rng.below(hosts as u64) as usize);
            }
            // Never while a crash holds: a crashed host plus a cut-off minority could exceed f.
            let crash = plan.crashes.first().map(|(_, w)| *w);
            let apart = (0..8)
                .filter_map(|_| window(rng, blocks))
                .find(|w| crash.is_none_or(|c| !c.overlaps(w.from, w.to)));
            plan.partition = apart.map(|w| (minority, w));
        }
        if faults.drop {
            plan.drop = window(rng, blocks).map(|w| (w, 100 + rng.below(300)));
        }
        if faults.delay {
            plan.delay_max_ms = BLOCK_INTERVAL_MS * 7 / 10;
        }
        plan
    }

    /// Whether `host` is down in `round`.
    pub fn crashed(&self, host: usize, round: u64) -> bool {
        self.crashes.iter().any(|(h, w)| *h == host && w.contains(round))
    }

    /// Whether `a` and `b` can talk in `round`.
    pub fn connected(&self, a: usize, b: usize, round: u64) -> bool {
        match &self.partition {
            Some((minority, w)) if w.contains(round) => minority.contains(&a) == minority.contains(&b),
            _ => true,
        }
    }

    /// The gossip loss (per mille) in `round`.
    pub fn drop_per_mille(&self, round: u64) -> u64 {
        match self.drop {
            Some((w, p)) if w.contains(round) => p,
            _ => 0,
        }
    }

    /// Whether `host` is down or cut off from the majority in some round of `[from, to]`.
    pub fn isolated(&self, host: usize, from: u64, to: u64) -> bool {
        self.crashes.iter().any(|(h, w)| *h == host && w.overlaps(from, to))
            || self
                .partition
                .as_ref()
                .is_some_and(|(minority, w)| minority.contains(&host) && w.overlaps(from, to))
    }

    /// Whether any crash, partition or loss overlaps rounds `[from, to]`.
    pub fn any_between(&self, from: u64, to: u64) -> bool {
        self.crashes.iter().any(|(_, w)| w.overlaps(from, to))
            || self.partition.as_ref().is_some_and(|(_, w)| w.overlaps(from, to))
            || self.drop.is_some_and(|(w, _)| w.overlaps(from, to))
    }
}
