//! Answer validation through the state machine (`docs/spec/validation.md` §2, §5–§6): selection by
//! VRF proof, verdicts, power-weighted votes, refunds exact to the ngonka, fee settlement, the INVALID
//! status, and the selections recomputed from a revealed seed.
#![allow(clippy::unwrap_used)]

mod common;

use common::host;
use common::net::*;

use gonka_chain::validation::{SELECTION_CONTEXT, selected_inferences, selection_message, selects};
use gonka_chain::{Hold, InferenceMsg, InferenceStatus, Verdict, inference};
use gonka_primitives::{Amount, Hash};

#[test]
fn a_pass_validates_the_answer_and_the_fee_is_shared_once_validation_is_over() {
    let mut net = Net::new();
    let (id, executor, validator, proof) = net.finished_and_selected();
    assert_eq!(net.state.bank.held(&Hold::Fee(id)).0, 32 * PRICE, "the fee is held while validation runs");
    net.validate(validator, id, proof, pass()).unwrap();
    assert_eq!(net.status(&id), InferenceStatus::Validated);
    net.settle(&id);
    // Reference §5.5 ShareWork: equal shares of the executor and its passing validators.
    assert_eq!((net.owed(executor), net.owed(validator)), (160, 160));
    assert_eq!(net.state.bank.held(&Hold::Fee(id)).0, 0);
    assert_eq!(net.state.validation.standing(&host(executor).address()).validated, 1);
}

#[test]
fn a_failure_opens_a_vote_whose_majority_invalidates_and_refunds_to_the_ngonka() {
    let mut net = Net::new();
    let before = net.balance();
    let (id, executor, validator, proof) = net.finished_and_selected();
    assert_eq!(net.balance(), before - 32 * PRICE);
    net.validate(validator, id, proof, fail()).unwrap();
    assert_eq!(net.status(&id), InferenceStatus::Voting);
    // The accuser's verdict is one third of the eligible power; one more "invalid" is a majority.
    let voter = others(executor, validator)[0];
    net.vote(voter, id, false).unwrap();
    assert_eq!(net.status(&id), InferenceStatus::Invalidated);
    assert_eq!(net.balance(), before, "refunded the whole cost");
    assert_eq!(net.state.bank.held(&Hold::Fee(id)).0, 0);
    net.settle(&id);
    assert_eq!(net.owed(executor), 0, "an invalidated answer earns nothing");
    let standing = net.state.validation.standing(&host(executor).address());
    assert_eq!((standing.invalidated, standing.consecutive_invalidations), (1, 1));
}

#[test]
fn a_vote_that_finds_the_answer_valid_revalidates_it_and_counts_against_the_accuser() {
    let mut net = Net::new();
    let (id, executor, accuser, proof) = net.finished_and_selected();
    net.validate(accuser, id, proof, fail()).unwrap();
    for voter in others(executor, accuser) {
        net.vote(voter, id, true).unwrap();
    }
    assert_eq!(net.status(&id), InferenceStatus::Validated);
    let accuser_address = host(accuser).address();
    assert_eq!(net.state.inference.epoch_stats(0, &accuser_address).overturned, 1);
    assert!(net.state.validation.standing(&accuser_address).evidence_milli > 0);
    net.settle(&id);
    assert_eq!(net.owed(executor), 32 * PRICE, "the failing verdict earns no share");
}

#[test]
fn a_vote_without_a_majority_at_its_deadline_needs_more_than_a_third_to_invalidate() {
    // Alone, the accuser holds a third of the eligible power: not more than a third, so the answer
    // stands when nobody else votes (no coalition under a third can invalidate an honest answer).
    let mut net = Net::new();
    let (id, _, accuser, proof) = net.finished_and_selected();
    net.validate(accuser, id, proof, fail()).unwrap();
    let deadline = net.state.validation.dispute(&id).unwrap().deadline;
    while net.state.height() < deadline {
        assert_eq!(net.status(&id), InferenceStatus::Voting);
        net.block(&[]);
    }
    assert_eq!(net.status(&id), InferenceStatus::Validated);
    assert_eq!(net.state.validation.dispute(&id).unwrap().outcome, Some(true));
}

#[test]
fn three_invalidations_make_the_executor_invalid_without_power_draws_or_fees() {
    let mut net = Net::new();
    let cheater = 1;
    let (mut invalidated, mut unjudged) = (0, None);
    while invalidated < 3 || unjudged.is_none() {
        let (id, executor, validator, proof) = net.finished_and_selected();
        if executor != cheater {
            continue;
        }
        if unjudged.is_none() {
            unjudged = Some(id);
            continue;
        }
        net.validate(validator, id, proof, fail()).unwrap();
        net.vote(others(executor, validator)[0], id, false).unwrap();
        invalidated += 1;
    }
    let address = host(cheater).address();
    assert!(net.state.validation.is_invalid(&address), "ln 4 × 3 passes the threshold of 4");
    assert_eq!(net.state.hosts.participant(&address).unwrap().weight, 0, "out of the validator set");
    assert_eq!(net.state.validator_set().len(), HOSTS - 1);
    for i in 0..200u64 {
        let drawn = inference::executor_for(&net.state, &Hash::digest(&i.to_be_bytes())).unwrap();
        assert_ne!(drawn, address, "out of the executor draw");
    }
    // Its answers of the epoch that were not invalidated (the one nobody judged among them) go back to
    // their payer when they settle.
    let pending: Vec<Hash> = net
        .state
        .inference
        .records()
        .iter()
        .filter(|(_, r)| r.executor == address && !r.fee_settled)
        .map(|(id, _)| *id)
        .collect();
    assert!(pending.contains(&unjudged.unwrap()));
    let before = net.balance();
    for id in &pending {
        net.settle(id);
    }
    assert_eq!(net.balance(), before + pending.len() as u128 * 32 * PRICE);
    assert_eq!(net.owed(cheater), 0);
}

#[test]
fn an_answer_started_before_its_draw_moved_is_paid_when_it_finishes_after_the_grace_period() {
    // Power moves when a host is made INVALID (and at every epoch's new weights); a request whose Start
    // landed under the old power is the executor's to finish, even after the grace period for new
    // draws: the Start proved the draw, and a delivered answer is paid (issue 12, item 1).
    let mut genesis = genesis();
    genesis.params.inference.executor_grace_blocks = 2;
    let mut net = Net::from_genesis(&genesis);
    let cheater = 1;
    net.invalidate(cheater, 2);
    let cheater_address = host(cheater).address();
    let (request, executor) = (0u64..)
        .find_map(|i| {
            let request = net.request(&format!("moved {i}"));
            let now = inference::executor_for(&net.state, &request.id())?;
            let without_cheater = net.state.hosts.powers().filter(|(a, _)| *a != cheater_address);
            let later = inference::draw_executor(&request.id(), without_cheater)?;
            (now != cheater_address && later != now).then_some((request, net.index_of(now)))
        })
        .unwrap();
    let id = request.id();
    let start = InferenceMsg::Start { request, executor: host(executor).address(), prompt_tokens: 20 };
    net.deliver(0, start.into()).unwrap();
    net.invalidate(cheater, 1);
    assert!(net.state.validation.is_invalid(&cheater_address));
    for _ in 0..3 {
        net.block(&[]);
    }
    let height = net.state.height() + 1;
    assert_ne!(inference::executor_for(&net.state, &id), Some(host(executor).address()), "the draw moved");
    assert_eq!(inference::previous_executor_for(&net.state, &id, height), None, "the grace is over");
    let before = net.balance();
    net.deliver(executor, finish(request, executor)).unwrap();
    assert_eq!(net.status(&id), InferenceStatus::Finished);
    assert_eq!(net.state.inference.record(&id).unwrap().cost, Amount(32 * PRICE));
    assert_eq!(net.balance(), before + 50 * PRICE + 20 * PRICE - 32 * PRICE, "escrow back, the cost paid");
}

#[test]
fn late_duplicate_unselected_forged_and_own_verdicts_and_votes_are_refused() {
    let mut net = Net::new();
    let (id, executor, validator, proof) = net.finished_and_selected();
    let refused = |r: Result<(), String>, what: &str| assert!(r.is_err(), "{what} must be refused");
    let mut forged = proof;
    forged.0[40] ^= 1;
    refused(net.validate(validator, id, forged, pass()), "a forged proof");
    refused(net.validate(executor, id, proof, pass()), "the executor's own verdict");
    let other = others(executor, validator)[0];
    refused(net.validate(other, id, proof, pass()), "another host's proof");
    refused(
        net.validate(validator, id, proof, Verdict { replay_mismatches: 1, ..pass() }),
        "a contradicting verdict",
    );
    refused(net.vote(other, id, false), "a vote while nobody failed it");
    net.validate(validator, id, proof, fail()).unwrap();
    refused(net.validate(validator, id, proof, fail()), "a duplicate verdict");
    refused(net.vote(executor, id, true), "the executor's vote");
    refused(net.vote(validator, id, false), "the accuser's second ballot");
    let deadline = net.state.validation.dispute(&id).unwrap().deadline;
    while net.state.height() < deadline {
        net.block(&[]);
    }
    refused(net.vote(other, id, false), "a vote after the deadline");
    // A verdict after the window.
    let (late, _, late_validator, late_proof) = net.finished_and_selected();
    let window = net.state.params().validation.validation_window_blocks;
    for _ in 0..=window {
        net.block(&[]);
    }
    refused(net.validate(late_validator, late, late_proof, pass()), "a verdict after the window");
}

#[test]
fn the_selected_validations_are_recomputed_from_the_revealed_seed() {
    let mut net = Net::new();
    let finished: Vec<(Hash, usize)> =
        (0..12).map(|_| net.finished_and_selected()).map(|(id, e, _, _)| (id, e)).collect();
    // Answers finished in the last blocks before the next PoC are exempt (reference §5.2).
    let epoch = net.state.params().epoch;
    let cutoff = epoch.poc_start(1).unwrap() - epoch.inference_validation_cutoff;
    assert!(
        finished.iter().any(|(id, _)| net.state.inference.record(id).unwrap().finished_height >= cutoff),
        "the scenario reaches past the cutoff"
    );
    for i in 0..HOSTS {
        let listed = selected_inferences(&net.state, 0, &host(i).address(), &seed(i).0).unwrap();
        // Exactly the inferences of others whose proof under host i's key selects it.
        let proved: Vec<Hash> = finished
            .iter()
            .filter(|(id, executor)| {
                let (output, proof) = key(i).prove(SELECTION_CONTEXT, &selection_message(CHAIN, 0, id));
                assert_eq!(
                    key(i).public_key().verify(SELECTION_CONTEXT, &selection_message(CHAIN, 0, id), &proof),
                    Ok(output)
                );
                *executor != i
                    && net.state.inference.record(id).unwrap().finished_height < cutoff
                    && selects(&net.state, 0, &host(*executor).address(), &host(i).address(), output)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        let mut proved_sorted = proved;
        proved_sorted.sort();
        assert_eq!(listed_sorted, proved_sorted, "host {i}");
        assert!(selected_inferences(&net.state, 0, &host(i).address(), b"another seed").is_err());
    }
}

#[test]
fn reputation_grows_with_clean_epochs_and_an_invalid_host_returns_after_the_next_epoch() {
    let mut net = Net::new();
    let cheater = 2;
    let mut invalidated = 0;
    while invalidated < 3 {
        let (id, executor, validator, proof) = net.finished_and_selected();
        if executor == cheater {
            net.validate(validator, id, proof, fail()).unwrap();
            net.vote(others(executor, validator)[0], id, false).unwrap();
            invalidated += 1;
        }
    }
    let address = host(cheater).address();
    let params = net.state.params().clone();
    let rep = |net: &Net, i: usize| {
        gonka_chain::validation::reputation(
            &params.validation,
            &net.state.validation.standing(&host(i).address()),
        )
    };
    let until = |net: &mut Net, epoch: u64| {
        while params.epoch.effective_epoch_at(net.state.height()) < epoch {
            net.block(&[]);
        }
    };
    until(&mut net, 1);
    // One clean epoch of thirty: reputation 3; the cheater's epoch was not clean.
    assert_eq!((rep(&net, 0), rep(&net, cheater)), (3, 0));
    assert!(
        net.state.validation.is_invalid(&address),
        "INVALID through the epoch after the one it was found in"
    );
    until(&mut net, 2);
    assert_eq!(rep(&net, 0), 6);
    assert!(!net.state.validation.is_invalid(&address), "back, without power until PoC gives it some");
    assert_eq!(net.state.hosts.participant(&address).unwrap().weight, 0);
    assert_eq!(net.state.check_invariants(), Ok(()));
}
