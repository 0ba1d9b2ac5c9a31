//! The economy through the state machine (`docs/spec/economy.md`): an epoch's settlement of work and
//! subsidy, claims that reveal the epoch seed and prove validation duty, vesting, and the burns of
//! unclaimed, forfeited and INVALID hosts' coins — with the supply accounted after every block.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;

use common::net::*;
use common::{host, model};

use gonka_chain::rewards::{
    self, ClaimStatus, RewardsMsg, claim_deadline, settlement_height, split_pro_rata,
};
use gonka_chain::validation::{SELECTION_CONTEXT, selection_message, selects};
use gonka_chain::{Hold, Msg, views};
use gonka_primitives::{Address, Amount, Hash, VrfProof};

const GNK: u128 = rewards::GNK;

impl Net {
    /// Blocks until `height`, every invariant checked after each, and the supply view balanced.
    fn run_to(&mut self, height: u64) {
        while self.state.height() < height {
            self.block(&[]);
            assert_eq!(self.state.check_invariants(), Ok(()), "after block {}", self.state.height());
            assert!(views::supply(&self.state).balanced, "supply view at {}", self.state.height());
        }
    }

    /// Every host selected to validate `id` (of `executor`), with its proof.
    fn all_selected(&self, id: &Hash, executor: usize) -> Vec<(usize, VrfProof)> {
        (0..HOSTS)
            .filter(|&i| i != executor)
            .filter_map(|i| {
                let (output, proof) = key(i).prove(SELECTION_CONTEXT, &selection_message(CHAIN, 0, id));
                selects(&self.state, 0, &host(executor).address(), &host(i).address(), output)
                    .then_some((i, proof))
            })
            .collect()
    }

    /// A finished answer every selected host passes, except `skipper` if it is selected.
    fn served(&mut self, skipper: Option<usize>) -> (Hash, Vec<usize>) {
        let (id, executor, _, _) = self.finished_and_selected();
        let selected = self.all_selected(&id, executor);
        for (validator, proof) in &selected {
            if Some(*validator) != skipper {
                self.validate(*validator, id, *proof, pass()).unwrap();
            }
        }
        (id, selected.into_iter().map(|(v, _)| v).collect())
    }

    fn claim(
        &mut self,
        i: usize,
        epoch: u64,
        seed: gonka_primitives::AccountSignature,
    ) -> Result<(), String> {
        self.deliver(i, Msg::Rewards(RewardsMsg::Claim { epoch, seed }))
    }

    fn owed_in(&self, epoch: u64, i: usize) -> u128 {
        self.state.bank.held(&Hold::Owed(epoch, host(i).address())).0
    }

    fn settled(&self, i: usize) -> u128 {
        self.state.bank.held(&Hold::Settled(host(i).address())).0
    }

    fn spendable(&self, i: usize) -> u128 {
        self.state.account(&host(i).address()).balance.0
    }

    fn settle_epoch_0(&mut self) -> [u128; HOSTS] {
        let height = settlement_height(&self.state, 0).unwrap();
        self.run_to(height - 1);
        assert_eq!(
            self.state.rewards.totals().last_settled,
            None,
            "not before every fee of the epoch is final"
        );
        let owed = std::array::from_fn(|i| self.owed_in(0, i));
        self.run_to(height);
        assert_eq!(self.state.rewards.totals().last_settled, Some(0));
        owed
    }
}

/// The epoch's weights in address order (as the chain splits), `skip` at zero.
fn weights(skip: Option<usize>) -> Vec<(Address, u64)> {
    let mut weights: Vec<(Address, u64)> =
        (0..HOSTS).map(|i| (host(i).address(), if Some(i) == skip { 0 } else { 100 })).collect();
    weights.sort();
    weights
}

fn share(i: usize, skip: Option<usize>) -> u128 {
    let shares = split_pro_rata(Amount(1_000 * GNK), &weights(skip)).unwrap();
    shares.iter().find(|(a, _)| *a == host(i).address()).map_or(0, |(_, s)| s.0)
}

#[test]
fn an_honest_epoch_settles_work_and_subsidy_and_claims_vest_to_the_ngonka() {
    let mut net = Net::new();
    for _ in 0..4 {
        net.served(None);
    }
    let supply_before = net.state.bank.supply().total.0;
    let owed = net.settle_epoch_0();
    assert!(owed.iter().sum::<u128>() > 0, "fees were earned");
    let totals = net.state.rewards.totals();
    // Reference §6.3: R(0) minted, split by equal weights, the remainder to the first paid.
    assert_eq!(totals.minted.0, 1_000 * GNK);
    assert_eq!(net.state.bank.supply().total.0, supply_before + 1_000 * GNK);
    for i in 0..HOSTS {
        assert_eq!(net.owed_in(0, i), 0, "the epoch's fees left Owed");
        assert_eq!(net.settled(i), owed[i] + share(i, None), "host {i}: work + reward");
        let summary = net.state.rewards.summary(0, &host(i).address()).unwrap();
        assert_eq!(
            (summary.work.0, summary.reward.0, summary.claim),
            (owed[i], share(i, None), ClaimStatus::Pending)
        );
        assert_eq!(summary.weight, 100);
    }
    let balances: [u128; HOSTS] = std::array::from_fn(|i| net.spendable(i));
    for i in 0..HOSTS {
        net.claim(i, 0, seed(i)).unwrap();
        assert_eq!(net.settled(i), 0);
        // Devnet vests over 2 settlements: ⌊x/2⌋ each, the remainder in the first.
        let schedule = net.state.rewards.vesting_of(&host(i).address());
        let (work, reward) = (owed[i], share(i, None));
        let first = work / 2 + work % 2 + reward / 2 + reward % 2;
        assert_eq!(schedule, vec![(1, Amount(first)), (2, Amount(work / 2 + reward / 2))], "host {i}");
        assert_eq!(net.spendable(i), balances[i], "nothing spendable before the next settlement");
        assert!(net.claim(i, 0, seed(i)).unwrap_err().contains("no settled rewards"), "claimed once");
    }
    assert_eq!(net.state.rewards.totals().work_claimed.0, owed.iter().sum::<u128>());
    let height = settlement_height(&net.state, 1).unwrap();
    net.run_to(height);
    for i in 0..HOSTS {
        let (work, reward) = (owed[i], share(i, None));
        let first = work / 2 + work % 2 + reward / 2 + reward % 2;
        assert_eq!(net.spendable(i), balances[i] + first, "host {i}: the first slot released, to the ngonka");
        assert_eq!(net.state.rewards.summary(0, &host(i).address()).unwrap().claim, ClaimStatus::Claimed);
    }
    let height = settlement_height(&net.state, 2).unwrap();
    net.run_to(height);
    for i in 0..HOSTS {
        assert_eq!(net.spendable(i), balances[i] + owed[i] + share(i, None), "host {i}: all of it");
        assert!(net.state.rewards.vesting_of(&host(i).address()).is_empty());
    }
    // Nothing of epoch 0 burned; epoch 1 (the hosts kept their genesis power) was settled and, never
    // claimed, burned at epoch 2's settlement.
    let totals = net.state.rewards.totals();
    assert_eq!((totals.burned_forfeited, totals.burned_invalid), (Amount::ZERO, Amount::ZERO));
    let epoch_1: u128 = net.state.rewards.summaries_in(1).map(|(_, s)| s.work.0 + s.reward.0).sum();
    assert!(epoch_1 > 0);
    assert_eq!(totals.burned_unclaimed.0, epoch_1);
}

#[test]
fn a_missed_validation_forfeits_the_claim_and_burns_at_the_next_settlement() {
    let mut net = Net::new();
    // Serve until some host is selected and skips its check, early in the epoch (before the cutoff).
    let skipper = loop {
        let (_, selected) = net.served(Some(1));
        if selected.contains(&1) {
            break 1;
        }
    };
    net.settle_epoch_0();
    let amount = net.settled(skipper);
    assert!(amount >= share(skipper, None), "the skipper was settled like everyone");
    // The claim lands (the seed is right) but pays nothing: the duty check found the miss.
    let supply = net.state.bank.supply().total.0;
    net.claim(skipper, 0, seed(skipper)).unwrap();
    let settlement = *net.state.rewards.settlement(&host(skipper).address()).unwrap();
    assert!(matches!(settlement.status, ClaimStatus::Forfeited { missed: 1.., .. }), "{settlement:?}");
    assert_eq!(net.settled(skipper), amount, "still held until the next settlement");
    assert!(net.claim(skipper, 0, seed(skipper)).unwrap_err().contains("forfeited"), "no second try");
    for i in (0..HOSTS).filter(|&i| i != skipper) {
        net.claim(i, 0, seed(i)).unwrap();
    }
    let height = settlement_height(&net.state, 1).unwrap();
    net.run_to(height);
    let epoch_1 = *net.state.rewards.summary(1, &host(skipper).address()).unwrap();
    assert_eq!(net.settled(skipper), epoch_1.work.0 + epoch_1.reward.0, "only epoch 1's settlement waits");
    assert_eq!(net.state.rewards.totals().burned_forfeited.0, amount, "burned, to the ngonka");
    assert!(net.state.bank.supply().total.0 <= supply - amount + net.state.rewards.totals().minted.0);
    assert!(net.state.rewards.vesting_of(&host(skipper).address()).is_empty(), "nothing vests");
}

#[test]
fn an_invalid_host_is_paid_nothing_for_its_epoch_and_loses_a_fifth_of_its_collateral() {
    let cheater = 3;
    let mut genesis = genesis();
    genesis.participants[cheater].collateral = Amount(500);
    let mut net = Net::from_genesis(&genesis);
    // The cheater passes an honest answer first, then is caught cheating three times in the epoch.
    loop {
        let (_, selected) = net.served(None);
        if selected.contains(&cheater) {
            break;
        }
    }
    net.invalidate(cheater, 3);
    assert!(net.state.validation.is_invalid(&host(cheater).address()));
    // Reference §6.7: 20 % of the collateral burns on becoming INVALID.
    assert_eq!(net.state.bank.held(&Hold::Collateral(host(cheater).address())).0, 400);
    assert_eq!(net.state.rewards.totals().burned_slashed.0, 100);
    let owed = net.settle_epoch_0();
    // Found INVALID in the epoch: its answers were refunded and its verdict shares went to the
    // executors (`docs/spec/validation.md` §5.3), so nothing is owed to it; its weight counts for nothing.
    assert_eq!(owed[cheater], 0);
    let summary = *net.state.rewards.summary(0, &host(cheater).address()).unwrap();
    assert!(summary.invalid);
    assert_eq!(summary.invalidated, 3);
    assert_eq!(
        (summary.work, summary.reward, summary.claim),
        (Amount::ZERO, Amount::ZERO, ClaimStatus::Nothing)
    );
    assert!(net.state.rewards.settlement(&host(cheater).address()).is_none());
    for i in (0..HOSTS).filter(|&i| i != cheater) {
        assert_eq!(net.settled(i), owed[i] + share(i, Some(cheater)), "host {i}: the others split it all");
    }
    assert_eq!(net.state.rewards.totals().minted.0, 1_000 * GNK);
}

#[test]
fn claims_with_a_wrong_seed_epoch_or_after_the_window_are_refused_and_unclaimed_coins_burn() {
    let mut net = Net::new();
    net.served(None);
    net.settle_epoch_0();
    assert!(net.claim(0, 0, seed(1)).unwrap_err().contains("does not match"));
    assert!(net.claim(0, 1, seed(0)).unwrap_err().contains("not 1"));
    let unclaimed: u128 = (0..HOSTS).map(|i| net.settled(i)).sum();
    let deadline = claim_deadline(&net.state, 0);
    net.run_to(deadline - 1);
    assert!(net.claim(0, 0, seed(0)).unwrap_err().contains("claim window"), "refused at the deadline");
    let supply = net.state.bank.supply().total.0;
    let height = settlement_height(&net.state, 1).unwrap();
    net.run_to(height);
    let totals = net.state.rewards.totals();
    assert_eq!(totals.burned_unclaimed.0, unclaimed);
    assert_eq!(net.state.bank.supply().total.0, supply - unclaimed + (totals.minted.0 - 1_000 * GNK));
    for i in 0..HOSTS {
        assert_eq!(net.state.rewards.summary(0, &host(i).address()).unwrap().claim, ClaimStatus::Unclaimed);
    }
}

impl Net {
    /// A request drawn to `executor`, started by host 0 and never finished: it expires as a miss.
    fn started_only(&mut self, executor: usize) {
        loop {
            self.requests += 1;
            let request = self.request(&format!("abandoned {}", self.requests));
            let drawn =
                self.index_of(gonka_chain::inference::executor_for(&self.state, &request.id()).unwrap());
            if drawn != executor {
                continue;
            }
            self.start(request, executor);
            return;
        }
    }
}

#[test]
fn downtime_above_the_threshold_is_slashed_at_the_settlement_and_at_it_is_not() {
    // A 25 % threshold for a short test: host 1 misses 1 of 4 drawn (25 %, not above), host 2 misses 1
    // of 3 (33 %); each holds 1,000 collateral, and downtime costs 10 % (reference §6.7).
    let mut genesis = genesis();
    genesis.params.collateral.downtime_missed_ppm = 250_000;
    for i in [1, 2] {
        genesis.participants[i].collateral = Amount(1_000);
    }
    let mut net = Net::from_genesis(&genesis);
    for (executor, finished) in [(1, 3), (2, 2)] {
        for _ in 0..finished {
            net.finished_by(Some(executor));
        }
        net.started_only(executor);
    }
    net.settle_epoch_0();
    for (i, finished, missed, collateral) in [(1, 3, 1, 1_000), (2, 2, 1, 900)] {
        let summary = net.state.rewards.summary(0, &host(i).address()).unwrap();
        assert_eq!((summary.inferences, summary.missed), (finished, missed), "host {i}");
        assert_eq!(net.state.bank.held(&Hold::Collateral(host(i).address())).0, collateral, "host {i}");
    }
    assert_eq!(net.state.rewards.totals().burned_slashed.0, 100);
}

#[test]
fn withdrawn_collateral_is_still_slashed_while_it_unbonds() {
    let cheater = 3;
    let mut genesis = genesis();
    genesis.participants[cheater].collateral = Amount(1_000);
    genesis.accounts[cheater].balance = Amount(1_000 + common::FEE);
    let mut net = Net::from_genesis(&genesis);
    let withdraw = gonka_chain::CollateralMsg::Withdraw { amount: Amount(600) };
    net.deliver(cheater, Msg::Collateral(withdraw)).unwrap();
    net.invalidate(cheater, 3);
    let address = host(cheater).address();
    // 20 % of both: 400 → 320 active, 600 → 480 unbonding.
    assert_eq!(net.state.bank.held(&Hold::Collateral(address)).0, 320);
    assert_eq!(net.state.bank.held(&Hold::Unbonding(address)).0, 480);
    assert_eq!(net.state.rewards.totals().burned_slashed.0, 200);
    let withdrawals = views::collateral(&net.state, &address).withdrawals;
    assert_eq!(
        withdrawals.iter().map(|(_, a)| a.0).collect::<Vec<_>>(),
        vec![480],
        "the withdrawal shrank too"
    );
    net.run_to(net.state.height() + 1);
}

/// One step of a random economy history.
#[derive(Debug, Clone)]
enum Step {
    /// Host `from` sends `amount` to host `to` (refused when short: fine).
    Transfer { from: usize, to: usize, amount: u128 },
    /// Host `host` deposits collateral.
    Deposit { host: usize, amount: u128 },
    /// Host `host` withdraws collateral (refused when short: fine).
    Withdraw { host: usize, amount: u128 },
    /// An answer; its selected validators pass it, or the first fails it and the others vote invalid.
    Answer { cheated: bool },
    /// Every host with a waiting settlement claims it (`skip`: one host does not).
    Claims { skip: Option<usize> },
    /// Empty blocks.
    Wait { blocks: u64 },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0..HOSTS, 0..HOSTS, 1u128..600).prop_map(|(from, to, amount)| Step::Transfer { from, to, amount }),
        (0..HOSTS, 1u128..400).prop_map(|(host, amount)| Step::Deposit { host, amount }),
        (0..HOSTS, 1u128..400).prop_map(|(host, amount)| Step::Withdraw { host, amount }),
        proptest::bool::weighted(0.2).prop_map(|cheated| Step::Answer { cheated }),
        proptest::option::of(0..HOSTS).prop_map(|skip| Step::Claims { skip }),
        (1u64..40).prop_map(|blocks| Step::Wait { blocks }),
    ]
}

impl Net {
    fn apply(&mut self, step: &Step) {
        use gonka_chain::{BankMsg, CollateralMsg};
        // Refusals are part of the history: only invariants matter here.
        let _ = match *step {
            Step::Transfer { from, to, amount } => self
                .deliver(from, Msg::Bank(BankMsg::Send { to: host(to).address(), amount: Amount(amount) })),
            Step::Deposit { host, amount } => {
                self.deliver(host, Msg::Collateral(CollateralMsg::Deposit { amount: Amount(amount) }))
            }
            Step::Withdraw { host, amount } => {
                self.deliver(host, Msg::Collateral(CollateralMsg::Withdraw { amount: Amount(amount) }))
            }
            // Selection proofs are for epoch 0's keys: answers only while it is effective.
            Step::Answer { cheated } if self.state.height() < 70 => {
                let (id, executor, validator, proof) = self.finished_and_selected();
                if cheated {
                    let _ = self.validate(validator, id, proof, fail());
                    for voter in others(executor, validator) {
                        let _ = self.vote(voter, id, false);
                    }
                } else {
                    for (v, proof) in self.all_selected(&id, executor) {
                        let _ = self.validate(v, id, proof, pass());
                    }
                }
                Ok(())
            }
            Step::Answer { .. } => Ok(()),
            Step::Claims { skip } => {
                for i in (0..HOSTS).filter(|i| Some(*i) != skip) {
                    if let Some(s) = self.state.rewards.settlement(&host(i).address()).copied() {
                        // Hosts only know their epoch-0 seed here; later epochs have no key.
                        let _ = self.claim(i, s.epoch, seed(i));
                    }
                }
                Ok(())
            }
            Step::Wait { blocks } => {
                self.run_to(self.state.height() + blocks);
                Ok(())
            }
        };
        assert_eq!(self.state.check_invariants(), Ok(()), "after {step:?}");
        assert!(views::supply(&self.state).balanced, "after {step:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Issue 14: over random transfers, receipts, validations, invalidations (and the slashes they
    /// bring), settlements, claims, forfeits, deposits, withdrawals and vesting releases, both supply
    /// identities hold after every block and the cap is never passed.
    #[test]
    fn the_supply_balances_over_any_history(steps in proptest::collection::vec(step(), 1..40)) {
        let mut genesis = genesis();
        for p in &mut genesis.participants {
            p.collateral = Amount(200);
        }
        let mut net = Net::from_genesis(&genesis);
        for step in &steps {
            net.apply(step);
        }
        net.run_to(settlement_height(&net.state, 2).unwrap());
        let totals = net.state.rewards.totals();
        proptest::prop_assert!(totals.minted <= totals.subsidy_cap);
        proptest::prop_assert_eq!(
            net.state.bank.supply().total.0,
            totals.genesis_supply.0 + totals.minted.0 - totals.burned().0
        );
    }
}

#[test]
fn a_claim_must_be_alone_in_its_transaction() {
    let mut net = Net::new();
    net.served(None);
    net.settle_epoch_0();
    let claim = Msg::Rewards(RewardsMsg::Claim { epoch: 0, seed: seed(0) });
    let tx = gonka_chain::Tx::new(CHAIN, &host(0), net.sequence(0), vec![claim.clone(), claim]);
    let result = net.block(&[tx]).remove(0);
    assert!(result.error.unwrap_or_default().contains("only message"));
    assert!(net.state.rewards.settlement(&host(0).address()).is_some(), "nothing happened");
}

#[test]
fn a_validator_refused_more_payloads_than_it_may_dispute_still_did_its_duty() {
    let mut net = Net::new();
    let (executor, validator) = (0, 1);
    // Five answers of host 0 that host 1 is selected for; host 0 withholds every payload from it.
    let mut refused = 0;
    while refused < 5 {
        net.requests += 1;
        let request = net.request(&format!("withheld {}", net.requests));
        let id = request.id();
        let drawn = net.index_of(gonka_chain::inference::executor_for(&net.state, &id).unwrap());
        let Some((_, proof)) = net.all_selected(&id, drawn).into_iter().find(|(v, _)| *v == validator) else {
            continue;
        };
        if drawn != executor {
            continue;
        }
        net.start(request, executor);
        net.deliver(executor, finish(request, executor)).unwrap();
        let verdict = gonka_chain::Verdict { failure: gonka_chain::Failure::PayloadRefused, ..pass() };
        // The fifth opens no vote (four may be open at once) but is recorded: it is not refused.
        net.validate(validator, id, proof, verdict).unwrap();
        refused += 1;
    }
    net.settle_epoch_0();
    net.claim(validator, 0, seed(validator)).unwrap();
    assert_eq!(net.state.rewards.summary(0, &host(validator).address()).unwrap().claim, ClaimStatus::Claimed);
}

#[test]
fn a_host_without_a_key_in_the_epoch_claims_without_a_duty_check() {
    let mut genesis = genesis();
    genesis.participants[2].validation_key = None;
    let mut net = Net::from_genesis(&genesis);
    for _ in 0..3 {
        net.served(Some(2));
    }
    net.settle_epoch_0();
    assert!(net.settled(2) > 0, "host 2 earned its subsidy share");
    // Never selected (no key), so no seed to check: any seed claims.
    net.claim(2, 0, seed(3)).unwrap();
    assert_eq!(net.state.rewards.summary(0, &host(2).address()).unwrap().claim, ClaimStatus::Claimed);
}

/// Issue 14, item 6 (`docs/spec/economy.md` §7): under load the price rises, idle it falls, each block
/// by at most the step bound, never under the floor; an inference locks the price of its first receipt
/// but never more than its developer signed.
#[test]
fn the_price_rises_under_load_and_falls_when_idle_within_the_step_bounds() {
    use gonka_chain::pricing;
    let mut genesis = genesis();
    let p = &mut genesis.params.pricing;
    p.elasticity_ppm = 50_000;
    // 400 of power at 0.01 tokens a second each: 4 a second, 40 over the ten-second window (blocks
    // are a second apart here). Every
    // answer here is 32 tokens over two blocks: utilisation far above the zone.
    p.capacity_per_weight_ppm = 10_000;
    p.min_price = Amount(PRICE / 2);
    let max_step = u128::from(p.max_step_ppm);
    let mut net = Net::from_genesis(&genesis);
    // Prices in micro-ngonka, block by block.
    let micro =
        |net: &Net| net.state.pricing.model(&model()).map_or(PRICE * pricing::PRICE_SCALE, |r| r.price_micro);
    // At most `blocks` steps of the bound (rounding aside).
    let step_ok = |before: u128, after: u128, blocks: u128| {
        let bound = before * blocks * (max_step + max_step * max_step / 1_000_000) / 1_000_000 + blocks;
        before.abs_diff(after) <= bound
    };
    let mut last = micro(&net);
    let start = last;
    for _ in 0..10 {
        let height = net.state.height();
        net.finished_and_selected();
        let now = micro(&net);
        let blocks = u128::from(net.state.height() - height);
        assert!(step_ok(last, now, blocks), "{last} → {now} in {blocks} blocks");
        last = now;
    }
    assert!(last > start, "load raised the price: {start} → {last}");
    let busy = pricing::price(&net.state, &model()).unwrap();
    assert!(busy.0 > PRICE, "{busy}");
    // The record of an answer served now locks its developer's bound (2 × PRICE) if the price passed it.
    let (id, ..) = net.finished_and_selected();
    let locked = net.state.inference.record(&id).unwrap().price_per_token;
    assert_eq!(locked, pricing::locked_price(&net.state, &model(), Amount(2 * PRICE)).unwrap().min(locked));
    assert!(locked.0 <= 2 * PRICE);
    // Idle: once the busy blocks left the window it falls every block by at most the step, down to
    // the floor and no further.
    let window = net.state.params().pricing.window_ms / 1_000;
    let mut previous = micro(&net);
    for n in 0..200 {
        net.block(&[]);
        let now = micro(&net);
        assert!(step_ok(previous, now, 1), "{previous} → {now} idle");
        assert!(n < window || now <= previous, "{previous} → {now} idle past the window");
        previous = now;
    }
    assert_eq!(pricing::price(&net.state, &model()), Some(Amount(PRICE / 2)), "the floor");
    let view = gonka_chain::views::price(&net.state, "m").unwrap();
    assert_eq!(
        (view.price_per_token, view.window_tokens, view.base_price),
        (Amount(PRICE / 2), 0, Amount(PRICE))
    );
    assert_eq!(net.state.check_invariants(), Ok(()));
}

/// The grace period prices every model at the grace price, then the base price applies.
#[test]
fn the_grace_period_serves_at_the_grace_price() {
    use gonka_chain::pricing;
    let mut genesis = genesis();
    genesis.params.pricing.grace_epochs = 1;
    genesis.params.pricing.grace_price = Amount(1);
    let mut net = Net::from_genesis(&genesis);
    assert_eq!(pricing::price(&net.state, &model()), Some(Amount(1)));
    let (id, ..) = net.finished_and_selected();
    assert_eq!(net.state.inference.record(&id).unwrap().price_per_token, Amount(1));
    net.run_to(gonka_chain::validation::epoch_start(&net.state.params().epoch, 1));
    assert_eq!(pricing::price(&net.state, &model()), Some(Amount(PRICE)));
}

/// Issue 14, item 5: a validator that signs two different votes for one height, round and kind is
/// slashed `slash_double_sign_ppm` of its collateral when any host reports the pair — once; forged,
/// same-value, future and unknown-key evidence is refused.
#[test]
fn a_double_vote_reported_by_any_host_slashes_the_signer_once() {
    use gonka_chain::collateral::DoubleVote;
    use gonka_primitives::consensus::{PRECOMMIT, PREVOTE};
    let signer = 2;
    let mut genesis = genesis();
    genesis.participants[signer].collateral = Amount(1_000);
    let mut net = Net::from_genesis(&genesis);
    net.run_to(5);
    let key = gonka_primitives::ValidatorKey::from_secret_bytes([3; 32]);
    assert_eq!(key.public_key(), genesis.participants[signer].validator_key);
    let sign = |height: u64,
                kind: u8,
                first: Option<Hash>,
                second: Option<Hash>,
                key: &gonka_primitives::ValidatorKey| {
        let mut evidence = DoubleVote {
            validator: key.public_key(),
            kind,
            height,
            round: 0,
            first,
            first_signature: gonka_primitives::ValidatorSignature([0; 64]),
            second,
            second_signature: gonka_primitives::ValidatorSignature([0; 64]),
        };
        evidence.first_signature = key.sign(&evidence.sign_bytes(first.as_ref()));
        evidence.second_signature = key.sign(&evidence.sign_bytes(second.as_ref()));
        evidence
    };
    let report = |evidence| {
        Msg::Collateral(gonka_chain::CollateralMsg::ReportDoubleVote { evidence: Box::new(evidence) })
    };
    let (a, b) = (Some(Hash([1; 32])), Some(Hash([2; 32])));
    let refused = [
        (sign(4, PRECOMMIT, a, a, &key), "same value"),
        (sign(9, PRECOMMIT, a, b, &key), "past height"),
        (
            sign(4, PRECOMMIT, a, b, &gonka_primitives::ValidatorKey::from_secret_bytes([9; 32])),
            "validator key",
        ),
        (
            DoubleVote {
                second_signature: sign(4, PRECOMMIT, a, b, &key).first_signature,
                ..sign(4, PRECOMMIT, a, b, &key)
            },
            "signature",
        ),
    ];
    for (evidence, why) in refused {
        let error = net.deliver(0, report(evidence)).unwrap_err();
        assert!(error.contains(why), "{why}: {error}");
    }
    // A reporter's duty: free for a staked host.
    let balance = net.state.bank.balance(&host(0).address());
    net.deliver(0, report(sign(4, PRECOMMIT, a, None, &key))).unwrap();
    assert_eq!(net.state.bank.balance(&host(0).address()), balance);
    let address = host(signer).address();
    assert_eq!(net.state.bank.held(&Hold::Collateral(address)).0, 950, "5 % slashed");
    assert_eq!(net.state.rewards.totals().burned_slashed.0, 50);
    let again = net.deliver(1, report(sign(4, PRECOMMIT, None, a, &key))).unwrap_err();
    assert!(again.contains("already reported"), "{again}");
    // Another kind at the same height is another fault.
    net.deliver(1, report(sign(4, PREVOTE, a, b, &key))).unwrap();
    assert_eq!(net.state.bank.held(&Hold::Collateral(address)).0, 903);
    assert_eq!(net.state.check_invariants(), Ok(()));
}
