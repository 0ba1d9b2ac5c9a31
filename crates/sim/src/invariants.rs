//! The invariants checked after every simulated block (`docs/spec/sim.md` §3). Each is a function of
//! plain inputs — states, app hashes, the ledger — so the checker itself is tested on hand-made inputs
//! that break each rule.

use std::collections::BTreeMap;

use gonka_chain::{ClaimStatus, Hold, State};
use gonka_poc::capping::effective_max_share;
use gonka_primitives::{Address, Amount, Hash};
use serde::Serialize;

use crate::ledger::Ledger;

/// Every live node has the same app hash as every other node at the same height.
pub const APP_HASH_AGREEMENT: &str = "app_hash_agreement";
/// `supply = Σ balances + Σ holds`, recounted from the rows, equals the genesis supply plus the
/// subsidy minted less what was burned, minted never exceeds the cap, and every module invariant holds.
pub const SUPPLY_CONSERVED: &str = "supply_conserved";
/// No inference is charged more than once.
pub const NO_DOUBLE_CHARGE: &str = "no_double_charge";
/// No answer is finally charged more than what was served (tokens × the price locked at its first
/// receipt) once a validator judged it, no price is locked above the bound its developer signed, and
/// nothing is charged for an answer never served (`docs/spec/sim.md` §3, `docs/spec/economy.md` §7).
pub const NO_OVERCHARGE: &str = "no_overcharge";
/// No honest answer is invalidated or refunded, and no honest host is found INVALID — unless its
/// executor was down or cut off in the answer's validation window and could not hand over the payload.
pub const HONEST_ANSWERS_STAND: &str = "honest_answers_stand";
/// A cheated answer a validator judged is never paid to its executor: it is refunded.
pub const SAMPLED_CHEATS_REFUNDED: &str = "sampled_cheats_refunded";
/// An executor with [`CAUGHT_INVALIDATIONS`] answers invalidated is INVALID.
pub const CHEATERS_MADE_INVALID: &str = "cheaters_made_invalid";

/// Invalidations after which a cheating executor must be INVALID: the chain's evidence threshold is
/// three in a row; two more leave room for answers of its that passed in between.
pub const CAUGHT_INVALIDATIONS: usize = 5;
/// Every delivered answer is paid in full by its settlement deadline.
pub const DELIVERED_ANSWERS_PAID: &str = "delivered_answers_paid";
/// After a settlement no host holds more than the capped share of the settled power.
pub const WEIGHTS_CAPPED: &str = "weights_capped";
/// A host that cheated at PoC has no voting power once the stage's weights apply.
pub const CHEATER_WEIGHT_ZERO: &str = "cheater_weight_zero";
/// In a stage without faults, every honest host is accepted and its share of the honest weight is
/// within [`COMPUTE_SHARE_TOLERANCE`] (relative) of its share of the honest compute.
pub const HONEST_WEIGHT_TRACKS_COMPUTE: &str = "honest_weight_tracks_compute";

/// A stage settles no host more power than the previous stage confirmed for it, or than it holds
/// today: a host new to the set gets none, and no single PoC window can hand over the validator set
/// (`docs/spec/poc.md` §5.1).
pub const POWER_MOVES_BOUNDED: &str = "power_moves_bounded";
/// An honest host that was never down nor cut off claims every epoch settled to it, and no claim of
/// its is forfeited for missed validations (`docs/spec/economy.md` §4); nothing settles to a host found
/// INVALID in the epoch.
pub const HONEST_HOSTS_PAID: &str = "honest_hosts_paid";

/// Every invariant, in report order.
pub const ALL: [&str; 13] = [
    APP_HASH_AGREEMENT,
    SUPPLY_CONSERVED,
    NO_DOUBLE_CHARGE,
    NO_OVERCHARGE,
    DELIVERED_ANSWERS_PAID,
    HONEST_ANSWERS_STAND,
    SAMPLED_CHEATS_REFUNDED,
    CHEATERS_MADE_INVALID,
    WEIGHTS_CAPPED,
    CHEATER_WEIGHT_ZERO,
    HONEST_WEIGHT_TRACKS_COMPUTE,
    POWER_MOVES_BOUNDED,
    HONEST_HOSTS_PAID,
];

/// Largest relative gap between an honest host's weight share and its compute share: about five
/// standard deviations of the binomial noise of ~150 valid nonces per host.
pub const COMPUTE_SHARE_TOLERANCE: f64 = 0.25;

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Violation {
    /// Which rule.
    pub invariant: &'static str,
    /// The height at which it was found.
    pub height: u64,
    /// What was found.
    pub detail: String,
}

fn violation(invariant: &'static str, height: u64, detail: String) -> Violation {
    Violation { invariant, height, detail }
}

/// Each node's `(name, height, app hash)` against the first app hash recorded at that height
/// (`canonical[h - 1]`).
pub fn app_hashes(nodes: &[(usize, u64, Hash)], canonical: &[Hash]) -> Vec<Violation> {
    nodes
        .iter()
        .filter_map(|&(node, height, app_hash)| {
            let expected = height.checked_sub(1).and_then(|i| canonical.get(i as usize))?;
            (*expected != app_hash).then(|| {
                violation(
                    APP_HASH_AGREEMENT,
                    height,
                    format!("host {node} has {app_hash}, others {expected}"),
                )
            })
        })
        .collect()
}

/// The supply rule and every module invariant of one node's state.
pub fn supply(state: &State, genesis_supply: Amount) -> Vec<Violation> {
    let height = state.height();
    let mut found = Vec::new();
    if let Err(broken) = state.check_invariants() {
        found.push(violation(SUPPLY_CONSERVED, height, broken.to_string()));
    }
    let total = state.bank.supply().total;
    let totals = state.rewards.totals();
    let expected = (genesis_supply.0 + totals.minted.0).checked_sub(totals.burned().0);
    if expected != Some(total.0) || totals.genesis_supply != genesis_supply {
        found.push(violation(
            SUPPLY_CONSERVED,
            height,
            format!(
                "supply {total}, genesis supply {genesis_supply} + minted {} − burned {}",
                totals.minted,
                totals.burned()
            ),
        ));
    }
    found
}

/// The economy's rules over `state` (`docs/spec/economy.md`): no claim of a host in `honest` (never down
/// nor cut off, not Byzantine) is forfeited, or left unclaimed once its window closed; no host found
/// INVALID in an epoch has anything settled for it.
pub fn economy(state: &State, honest: &[Address]) -> Vec<Violation> {
    let height = state.height();
    let mut found = Vec::new();
    for (&(epoch, host), summary) in state.rewards.summaries().iter() {
        // INVALID in the epoch or the one before it (it lasts through the next epoch).
        let found_invalid =
            state.validation.standing(&host).invalid_epoch.is_some_and(|e| e <= epoch && epoch <= e + 1);
        if found_invalid && (summary.work.0 > 0 || summary.reward.0 > 0) {
            found.push(violation(
                HONEST_HOSTS_PAID,
                height,
                format!("{host} INVALID was settled epoch {epoch}"),
            ));
        }
        if !honest.contains(&host) {
            continue;
        }
        match summary.claim {
            ClaimStatus::Forfeited { missed, selected } => found.push(violation(
                HONEST_HOSTS_PAID,
                height,
                format!("honest {host} forfeited epoch {epoch}: {missed} of {selected} validations missed"),
            )),
            ClaimStatus::Unclaimed => found.push(violation(
                HONEST_HOSTS_PAID,
                height,
                format!("honest {host} did not claim epoch {epoch}"),
            )),
            _ => {}
        }
    }
    found
}

/// The money rules over the ledger at `height`: double charges, overcharges, and delivered answers
/// unpaid past their deadline or paid less than they are worth.
///
/// A charge is provisional until the answer's validation is over: an overcharge is one that settles
/// (its fee paid to the executor and validators) above what was served although a validator judged
/// the answer. An answer no host was selected to validate can settle overcharged — the residual of
/// sampled validation, counted in the report (`overcharged_unjudged`) — but its executor is not paid
/// once validation finds it INVALID in that epoch or a later one before the fee settles.
pub fn charges(ledger: &Ledger, height: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    for (id, charges) in &ledger.charges {
        if charges.len() > 1 {
            found.push(violation(NO_DOUBLE_CHARGE, height, format!("{id} charged {} times", charges.len())));
        }
        let charged: u128 = charges.iter().map(|c| c.cost.0).sum();
        let judged = ledger.judged.get(id);
        let settled_judged = judged.is_some_and(|j| j.settled.is_some() && !j.verdicts.is_empty());
        let net = ledger.net_charge(id);
        match ledger.served.get(id) {
            Some(served) if charges.iter().any(|c| c.price > served.price_bound) => found.push(violation(
                NO_OVERCHARGE,
                height,
                format!("{id} locked a price above the {} its developer signed", served.price_bound),
            )),
            Some(served) if settled_judged && net > ledger.worth(id, served).0 => found.push(violation(
                NO_OVERCHARGE,
                height,
                format!(
                    "{id} settled at {net} for {} tokens worth {}",
                    served.tokens,
                    ledger.worth(id, served)
                ),
            )),
            None if charged > 0 => {
                found.push(violation(
                    NO_OVERCHARGE,
                    height,
                    format!("{id} charged {charged} but never served"),
                ));
            }
            _ => {}
        }
    }
    for (id, served) in ledger.served.iter().filter(|(_, s)| s.delivered) {
        let charged: Option<u128> = ledger.charges.get(id).map(|c| c.iter().map(|c| c.cost.0).sum());
        match charged {
            Some(charged) if charged < ledger.worth(id, served).0 && !served.cheated => {
                found.push(violation(
                    DELIVERED_ANSWERS_PAID,
                    height,
                    format!(
                        "{id} delivered {} tokens worth {}, paid {charged}",
                        served.tokens,
                        ledger.worth(id, served)
                    ),
                ));
            }
            None if height > served.settle_by && !served.excused => found.push(violation(
                DELIVERED_ANSWERS_PAID,
                height,
                format!(
                    "{id} of {}{} delivered at {} worth {}, unpaid by {}",
                    served.executor,
                    if served.cheated { " (cheated)" } else { "" },
                    served.height,
                    ledger.worth(id, served),
                    served.settle_by
                ),
            )),
            _ => {}
        }
    }
    found
}

/// The validation rules over the ledger at `height`: honest answers stand, judged cheats are refunded,
/// and an executor caught often enough is INVALID. `cheaters` are the hosts that cheat on answers.
pub fn validation(ledger: &Ledger, cheaters: &[Address], height: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut invalidated: BTreeMap<Address, usize> = BTreeMap::new();
    let mut lapsed_hosts: Vec<Address> = Vec::new();
    for (id, judged) in &ledger.judged {
        let Some(served) = ledger.served.get(id) else { continue };
        if judged.invalidated {
            *invalidated.entry(served.executor).or_default() += 1;
        }
        let honest = !served.cheated && !cheaters.contains(&served.executor);
        if served.custody_lapsed {
            lapsed_hosts.push(served.executor);
        }
        if honest && judged.refunded.is_some() && !served.custody_lapsed {
            found.push(violation(
                HONEST_ANSWERS_STAND,
                height,
                format!("honest answer {id} of {} was refunded", served.executor),
            ));
        }
        if served.cheated && judged.settled.is_some() && !judged.verdicts.is_empty() {
            found.push(violation(
                SAMPLED_CHEATS_REFUNDED,
                height,
                format!("cheated answer {id} of {} was judged and still paid", served.executor),
            ));
        }
    }
    for host in ledger.invalid_hosts.keys() {
        if !cheaters.contains(host) && !lapsed_hosts.contains(host) {
            found.push(violation(
                HONEST_ANSWERS_STAND,
                height,
                format!("honest host {host} was found INVALID"),
            ));
        }
    }
    for (host, count) in invalidated {
        if count >= CAUGHT_INVALIDATIONS && !ledger.invalid_hosts.contains_key(&host) {
            found.push(violation(
                CHEATERS_MADE_INVALID,
                height,
                format!("{host} had {count} answers invalidated and is not INVALID"),
            ));
        }
    }
    found
}

/// Right after a settlement: the settled powers respect the cap.
pub fn weights_capped(state: &State) -> Vec<Violation> {
    let powers: Vec<u64> =
        state.hosts.participants().values().filter_map(|p| p.next_weight).filter(|w| *w > 0).collect();
    let total: u128 = powers.iter().map(|w| u128::from(*w)).sum();
    let Some(max) = powers.iter().max() else { return Vec::new() };
    let share = effective_max_share(powers.len(), state.params().poc.max_individual_power);
    let limit = share.raw().unsigned_abs();
    if u128::from(*max) * 1_000_000_000_000_000_000 > limit * total {
        return vec![violation(
            WEIGHTS_CAPPED,
            state.height(),
            format!("power {max} of {total} exceeds the share {share} among {} hosts", powers.len()),
        )];
    }
    Vec::new()
}

/// Each host's `(power, poc_weight)` in `state`, for [`power_moves`] to compare the next settlement
/// with.
pub fn confirmed(state: &State) -> BTreeMap<Address, (u64, u64)> {
    state.hosts.participants().iter().map(|(a, p)| (*a, (p.weight, p.poc_weight))).collect()
}

/// Right after a settlement: every host's settled power against `before`, what [`confirmed`] read
/// from a state before the settling block (a host missing there confirmed nothing).
pub fn power_moves(state: &State, before: &BTreeMap<Address, (u64, u64)>) -> Vec<Violation> {
    state
        .hosts
        .participants()
        .iter()
        .filter_map(|(address, p)| {
            let settled = p.next_weight?;
            let (power, poc_weight) = before.get(address).copied().unwrap_or((0, 0));
            let ceiling = power.max(poc_weight);
            (settled > ceiling).then(|| {
                violation(
                    POWER_MOVES_BOUNDED,
                    state.height(),
                    format!(
                        "host {address} was settled power {settled}; it held {power} and its last confirmed weight was {poc_weight}"
                    ),
                )
            })
        })
        .collect()
}

/// Right after a settlement: every cheater is settled no power for the next epoch (its `next_weight`,
/// which becomes its voting power at SetNewValidators).
pub fn cheaters_settled_no_power(state: &State, cheaters: &[Address]) -> Vec<Violation> {
    cheaters
        .iter()
        .filter_map(|cheater| {
            let power = state.hosts.participant(cheater).and_then(|p| p.next_weight).unwrap_or(0);
            (power > 0).then(|| {
                violation(
                    CHEATER_WEIGHT_ZERO,
                    state.height(),
                    format!("cheater {cheater} was settled power {power}"),
                )
            })
        })
        .collect()
}

/// Right after a fault-free stage's settlement: every honest host `(address, compute speed)` is
/// accepted, and its share of the honest PoC weight is within the tolerance of its compute share.
pub fn compute_share(state: &State, honest: &[(Address, u64)]) -> Vec<Violation> {
    let weights: Vec<(Address, u64, u64)> = honest
        .iter()
        .map(|(a, speed)| (*a, *speed, state.hosts.participant(a).map_or(0, |p| p.poc_weight)))
        .collect();
    let total_weight: u64 = weights.iter().map(|(_, _, w)| w).sum();
    let total_speed: u64 = weights.iter().map(|(_, s, _)| s).sum();
    let mut found = Vec::new();
    for (address, speed, weight) in &weights {
        if *weight == 0 {
            found.push(violation(
                HONEST_WEIGHT_TRACKS_COMPUTE,
                state.height(),
                format!("honest host {address} (speed {speed}) was given no weight"),
            ));
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let (weight_share, compute_share) =
            (*weight as f64 / total_weight as f64, *speed as f64 / total_speed.max(1) as f64);
        if (weight_share - compute_share).abs() > COMPUTE_SHARE_TOLERANCE * compute_share {
            found.push(violation(
                HONEST_WEIGHT_TRACKS_COMPUTE,
                state.height(),
                format!(
                    "honest host {address}: weight share {weight_share:.3}, compute share {compute_share:.3}"
                ),
            ));
        }
    }
    found
}

/// Σ of every escrow hold (for reports).
pub fn escrowed(state: &State) -> Amount {
    Amount(state.bank.holds().iter().filter(|(h, _)| matches!(h, Hold::Escrow(_))).map(|(_, a)| a.0).sum())
}
