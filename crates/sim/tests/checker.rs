//! The checker itself: a hand-made input that breaks each invariant is reported, and one that keeps
//! it is not. Broken states are made the way a corrupt store would present them: rows loaded over a
//! valid genesis state.

use gonka_chain::{
    Account, Genesis, GenesisAccount, GenesisParticipant, Module, Params, Participant, State, TableId,
};
use gonka_primitives::codec::Encode;
use gonka_primitives::{AccountKey, Address, Amount, Hash, ValidatorKey};
use gonka_sim::invariants::{self, Violation};
use gonka_sim::ledger::{Charge, Ledger, Served};

fn host(i: usize) -> AccountKey {
    AccountKey::from_seed(format!("checker-{i}").as_bytes())
}

fn genesis_state() -> State {
    let genesis = Genesis {
        chain_id: "checker".into(),
        genesis_time_ms: 0,
        params: Params::devnet(host(0).address()),
        accounts: (0..4)
            .map(|i| GenesisAccount { address: host(i).address(), balance: Amount(1_000) })
            .collect(),
        participants: (0..4)
            .map(|i| GenesisParticipant {
                address: host(i).address(),
                account_key: host(i).public_key(),
                api_url: format!("http://h{i}"),
                validator_key: ValidatorKey::from_secret_bytes([i as u8 + 1; 32]).public_key(),
                operational_key: host(i).public_key(),
                weight: 100,
                collateral: gonka_primitives::Amount::ZERO,
                validation_key: None,
            })
            .collect(),
        developers: vec![],
        tokenomics: gonka_chain::Tokenomics::default(),
    };
    State::from_genesis(&genesis).expect("genesis")
}

fn names(found: &[Violation]) -> Vec<&'static str> {
    found.iter().map(|v| v.invariant).collect()
}

/// The state with host `i`'s registry record changed by `change`, loaded as a store would.
fn with_participant(mut state: State, i: usize, change: impl FnOnce(&mut Participant)) -> State {
    let address = host(i).address();
    let mut participant = state.hosts.participant(&address).expect("a genesis host").clone();
    change(&mut participant);
    let table = TableId { module: gonka_chain::hosts::Hosts::ID, table: 1 };
    state.load_row(table, &address.to_bytes(), &participant.to_bytes()).expect("loads");
    state
}

#[test]
fn diverging_app_hashes_are_reported() {
    let (a, b) = (Hash::digest(b"a"), Hash::digest(b"b"));
    assert!(invariants::app_hashes(&[(0, 2, b), (1, 2, b)], &[a, b]).is_empty());
    let found = invariants::app_hashes(&[(0, 2, b), (1, 2, a), (2, 1, a)], &[a, b]);
    assert_eq!(names(&found), [invariants::APP_HASH_AGREEMENT]);
    assert!(found[0].detail.contains("host 1"));
}

#[test]
fn money_appearing_in_a_balance_breaks_supply_conservation() {
    let state = genesis_state();
    assert!(invariants::supply(&state, Amount(4_000)).is_empty());
    let mut broken = state.clone();
    let table = TableId { module: gonka_chain::bank::Bank::ID, table: 1 };
    let rich = Account { balance: Amount(1_000_000), sequence: 0 };
    broken.load_row(table, &host(1).address().to_bytes(), &rich.to_bytes()).expect("loads");
    assert_eq!(names(&invariants::supply(&broken, Amount(4_000))), [invariants::SUPPLY_CONSERVED]);
    assert_eq!(
        names(&invariants::supply(&state, Amount(5_000))),
        [invariants::SUPPLY_CONSERVED],
        "a minted total"
    );
}

fn served(tokens: u64, delivered: bool) -> Served {
    Served {
        developer: Address([1; 20]),
        executor: Address([2; 20]),
        tokens,
        cached: 0,
        cached_price_ppm: 1_000_000,
        price_bound: Amount(10),
        height: 5,
        settle_by: 20,
        delivered,
        excused: false,
        cheated: false,
        custody_lapsed: false,
    }
}

fn ledger(entries: &[(u8, Option<Served>, &[u128])]) -> Ledger {
    let mut ledger = Ledger::default();
    for (id, served, charges) in entries {
        let id = Hash([*id; 32]);
        if let Some(served) = served {
            ledger.serve(id, served.clone());
        }
        for cost in *charges {
            // Locked at the bound: 10 per token.
            ledger.charges.entry(id).or_default().push(Charge {
                height: 9,
                cost: Amount(*cost),
                price: Amount(10),
            });
        }
    }
    ledger
}

#[test]
fn a_price_locked_above_the_signed_bound_is_an_overcharge() {
    let mut above = ledger(&[(1, Some(served(10, true)), &[])]);
    above.charges.entry(Hash([1; 32])).or_default().push(Charge {
        height: 9,
        cost: Amount(110),
        price: Amount(11),
    });
    assert_eq!(names(&invariants::charges(&above, 30)), [invariants::NO_OVERCHARGE]);
}

#[test]
fn charging_twice_is_reported() {
    assert!(invariants::charges(&ledger(&[(1, Some(served(10, true)), &[100])]), 30).is_empty());
    let found = invariants::charges(&ledger(&[(1, Some(served(10, true)), &[50, 50])]), 30);
    assert_eq!(names(&found), [invariants::NO_DOUBLE_CHARGE]);
}

/// `ledger` with inference `id` judged by `verdicts` and then settled (fee paid) or refunded.
fn judged(mut ledger: Ledger, id: u8, verdicts: &[bool], settled: bool, refund: Option<u128>) -> Ledger {
    let judged = ledger.judged.entry(Hash([id; 32])).or_default();
    judged.verdicts = verdicts.iter().map(|passed| (Address([9; 20]), *passed)).collect();
    judged.settled = settled.then_some(25);
    judged.refunded = refund.map(|r| (25, Amount(r)));
    judged.invalidated = refund.is_some();
    ledger
}

#[test]
fn charging_more_than_was_served_is_reported_once_judged_and_settled() {
    let over = ledger(&[(1, Some(served(10, true)), &[101]), (2, None, &[5])]);
    // Provisional until validation is over; an unjudged settlement is sampling's residual (reported as
    // a figure, not a violation); a judged one is a violation; a refund brings it back in line.
    assert_eq!(names(&invariants::charges(&over, 30)), [invariants::NO_OVERCHARGE]);
    let unjudged = judged(over.clone(), 1, &[], true, None);
    assert_eq!(names(&invariants::charges(&unjudged, 30)), [invariants::NO_OVERCHARGE]);
    let settled = judged(over.clone(), 1, &[false], true, None);
    assert_eq!(
        names(&invariants::charges(&settled, 30)),
        [invariants::NO_OVERCHARGE, invariants::NO_OVERCHARGE]
    );
    let refunded = judged(over, 1, &[false], false, Some(101));
    assert_eq!(names(&invariants::charges(&refunded, 30)), [invariants::NO_OVERCHARGE]);
}

#[test]
fn an_honest_answer_refunded_or_an_honest_host_made_invalid_is_reported() {
    let honest = ledger(&[(1, Some(served(10, true)), &[100])]);
    assert!(invariants::validation(&judged(honest.clone(), 1, &[true], true, None), &[], 30).is_empty());
    let refunded = judged(honest.clone(), 1, &[false], false, Some(100));
    assert_eq!(names(&invariants::validation(&refunded, &[], 30)), [invariants::HONEST_ANSWERS_STAND]);
    // The executor was down in the window: the payload could not be handed over; its loss.
    let mut lapsed = refunded.clone();
    lapsed.served.values_mut().for_each(|s| s.custody_lapsed = true);
    assert!(invariants::validation(&lapsed, &[], 30).is_empty());
    let mut invalid = honest;
    invalid.invalid_hosts.insert(Address([2; 20]), 28);
    assert_eq!(names(&invariants::validation(&invalid, &[], 30)), [invariants::HONEST_ANSWERS_STAND]);
    assert!(invariants::validation(&invalid, &[Address([2; 20])], 30).is_empty(), "a cheater may be");
}

#[test]
fn a_judged_cheat_paid_or_a_caught_cheater_left_valid_is_reported() {
    let cheat = Served { cheated: true, ..served(10, true) };
    let cheater = [Address([2; 20])];
    let paid = judged(ledger(&[(1, Some(cheat.clone()), &[100])]), 1, &[false], true, None);
    assert_eq!(names(&invariants::validation(&paid, &cheater, 30)), [invariants::SAMPLED_CHEATS_REFUNDED]);
    let unjudged = judged(ledger(&[(1, Some(cheat.clone()), &[100])]), 1, &[], true, None);
    assert!(invariants::validation(&unjudged, &cheater, 30).is_empty(), "sampling's residual");
    let entries: Vec<(u8, Option<Served>, &[u128])> =
        (1..=5).map(|i| (i, Some(cheat.clone()), &[100u128][..])).collect();
    let caught = (1..=5).fold(ledger(&entries), |l, i| judged(l, i, &[false], false, Some(100)));
    assert_eq!(names(&invariants::validation(&caught, &cheater, 30)), [invariants::CHEATERS_MADE_INVALID]);
    let mut made_invalid = caught;
    made_invalid.invalid_hosts.insert(cheater[0], 29);
    assert!(invariants::validation(&made_invalid, &cheater, 30).is_empty());
}

#[test]
fn a_delivered_answer_unpaid_past_its_deadline_or_underpaid_is_reported() {
    let unpaid = ledger(&[(1, Some(served(10, true)), &[])]);
    assert!(invariants::charges(&unpaid, 20).is_empty(), "not yet due");
    assert_eq!(names(&invariants::charges(&unpaid, 21)), [invariants::DELIVERED_ANSWERS_PAID]);
    let underpaid = ledger(&[(1, Some(served(10, true)), &[99])]);
    assert_eq!(names(&invariants::charges(&underpaid, 10)), [invariants::DELIVERED_ANSWERS_PAID]);
    let undelivered = ledger(&[(1, Some(served(10, false)), &[])]);
    assert!(invariants::charges(&undelivered, 30).is_empty(), "only delivered answers must be paid");
    let mut excused = served(10, true);
    excused.excused = true;
    assert!(invariants::charges(&ledger(&[(1, Some(excused), &[])]), 30).is_empty());
}

#[test]
fn a_settled_power_above_the_cap_is_reported() {
    let capped = (0..4).fold(genesis_state(), |s, i| with_participant(s, i, |p| p.next_weight = Some(10)));
    assert!(invariants::weights_capped(&capped).is_empty());
    let over = with_participant(capped, 0, |p| p.next_weight = Some(1_000));
    assert_eq!(names(&invariants::weights_capped(&over)), [invariants::WEIGHTS_CAPPED]);
}

#[test]
fn a_cheater_settled_power_is_reported() {
    let cheater = [host(3).address()];
    let zero = with_participant(genesis_state(), 3, |p| p.next_weight = Some(0));
    assert!(invariants::cheaters_settled_no_power(&zero, &cheater).is_empty());
    let paid = with_participant(zero, 3, |p| p.next_weight = Some(1));
    assert_eq!(
        names(&invariants::cheaters_settled_no_power(&paid, &cheater)),
        [invariants::CHEATER_WEIGHT_ZERO]
    );
}

#[test]
fn honest_weight_off_its_compute_share_is_reported() {
    let speeds: Vec<(Address, u64)> = (0..2).map(|i| (host(i).address(), 100)).collect();
    let fair = [(0, 400), (1, 420)]
        .into_iter()
        .fold(genesis_state(), |s, (i, w)| with_participant(s, i, |p| p.poc_weight = w));
    assert!(invariants::compute_share(&fair, &speeds).is_empty());
    let starved = with_participant(fair.clone(), 1, |p| p.poc_weight = 0);
    let found = invariants::compute_share(&starved, &speeds);
    assert!(found.iter().any(|v| v.detail.contains("no weight")), "{found:?}");
    assert!(found.iter().all(|v| v.invariant == invariants::HONEST_WEIGHT_TRACKS_COMPUTE));
    let skewed = with_participant(fair, 1, |p| p.poc_weight = 1_200);
    assert_eq!(
        names(&invariants::compute_share(&skewed, &speeds)),
        [invariants::HONEST_WEIGHT_TRACKS_COMPUTE, invariants::HONEST_WEIGHT_TRACKS_COMPUTE]
    );
}

#[test]
fn power_settled_above_what_was_confirmed_is_reported() {
    // Before: host 2 held 100 with 300 confirmed; host 3 held 100 with nothing confirmed.
    let before = with_participant(with_participant(genesis_state(), 2, |p| p.poc_weight = 300), 3, |_| {});
    let confirmed = invariants::confirmed(&before);
    let within = with_participant(with_participant(before, 2, |p| p.next_weight = Some(300)), 3, |p| {
        p.next_weight = Some(100);
    });
    assert!(invariants::power_moves(&within, &confirmed).is_empty());
    let jumped = with_participant(within.clone(), 3, |p| p.next_weight = Some(101));
    assert_eq!(names(&invariants::power_moves(&jumped, &confirmed)), [invariants::POWER_MOVES_BOUNDED]);
    // A host unknown before (registered since) confirmed nothing.
    let mut unknown = confirmed.clone();
    unknown.remove(&host(2).address());
    assert_eq!(names(&invariants::power_moves(&within, &unknown)), [invariants::POWER_MOVES_BOUNDED]);
}

/// Cached prompt tokens are worth the model's cached share of the price, rounded down once over them
/// all: the ledger's sum, computed apart from the chain's (`docs/spec/inference.md` §4.2).
#[test]
fn cached_prompt_tokens_are_worth_the_cached_share() {
    let served = Served { cached: 8, cached_price_ppm: 123_400, ..served(20, true) };
    // 12 full tokens × 10 + ⌊8 × 10 × 0.1234⌋ = 120 + ⌊9.872⌋.
    assert_eq!(served.worth(Amount(10)), Amount(129));
    let full = Served { cached_price_ppm: 1_000_000, ..served };
    assert_eq!(full.worth(Amount(10)), Amount(200));
}
