//! The host planners on a real chain state: what a host does at each stage of a PoC, how its
//! receipts are resubmitted until the chain holds them, and what an executor risks per TA.

use gonka_chain::{
    Block, EpochParams, Genesis, GenesisAccount, GenesisParticipant, InferenceMsg, Msg, Params, PocMsg,
    RequestTerms, SignedRequest, State, Tx, inference,
};
use gonka_host::poc::{HostKey, PocAction, PocHost, PocInput, RESUBMIT_AFTER_BLOCKS};
use gonka_host::receipts::Outbox;
use gonka_poc::Distance;
use gonka_primitives::codec::{Bytes, Encode};
use gonka_primitives::{AccountKey, Amount, Hash, ValidatorKey};

const CHAIN: &str = "planners";

fn host(i: usize) -> AccountKey {
    AccountKey::from_seed(format!("planner-host-{i}").as_bytes())
}

fn genesis() -> Genesis {
    genesis_of(3, 3)
}

/// `hosts` hosts, the first `powered` with power 100 and the rest registered with none; all funded and
/// holding collateral above the PoC entry.
fn genesis_of(hosts: usize, powered: usize) -> Genesis {
    let mut params = Params::devnet(host(0).address());
    params.epoch = EpochParams {
        epoch_length: 40,
        epoch_shift: 35,
        poc_stage_duration: 8,
        poc_exchange_duration: 2,
        poc_validation_delay: 2,
        poc_validation_duration: 6,
        set_new_validators_delay: 2,
        inference_validation_cutoff: 2,
    };
    params.poc.entry_collateral = Amount(100_000);
    params.inference.models.push(gonka_chain::ModelPrice {
        name: "m".into(),
        content_hash: Hash::digest(b"m"),
        price_per_token: Amount(1),
        cached_price_ppm: gonka_chain::FULL_PRICE_PPM,
        validation: Default::default(),
    });
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 1_000_000,
        params,
        accounts: (0..hosts)
            .map(|i| GenesisAccount { address: host(i).address(), balance: Amount(1_000_000) })
            .collect(),
        participants: (0..hosts)
            .map(|i| GenesisParticipant {
                address: host(i).address(),
                account_key: host(i).public_key(),
                api_url: format!("http://h{i}"),
                validator_key: ValidatorKey::from_secret_bytes([i as u8 + 1; 32]).public_key(),
                operational_key: host(i).public_key(),
                weight: if i < powered { 100 } else { 0 },
                collateral: Amount(500_000),
                validation_key: None,
            })
            .collect(),
        developers: vec![],
        tokenomics: Default::default(),
    }
}

fn apply(state: &mut State, txs: &[Tx]) {
    let txs: Vec<Bytes> = txs.iter().map(|t| Bytes(t.to_bytes())).collect();
    let header = state.next_header(
        ValidatorKey::from_secret_bytes([1; 32]).public_key(),
        state.meta.time_ms + 1000,
        &txs,
    );
    let outcome = state.apply_block(&Block { header, txs }, &|_| false).expect("applies");
    assert!(outcome.results.iter().all(|r| r.ok), "{:?}", outcome.results);
}

fn advance_to(state: &mut State, height: u64) {
    while state.height() < height {
        apply(state, &[]);
    }
}

fn key(i: usize) -> HostKey {
    HostKey { account: host(i).address(), operational: host(i) }
}

fn submitted(actions: &[PocAction]) -> Vec<&'static str> {
    actions
        .iter()
        .filter_map(|a| if let PocAction::Submit(m) = a { Some(m[0].name()) } else { None })
        .collect()
}

#[test]
fn at_the_stage_start_a_host_commits_its_seed_and_sprints_once() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let mut planner = PocHost::new(true);
    advance_to(&mut state, 4);
    assert!(planner.plan(&state, &key(0), &|_| false, PocInput::Block).is_empty(), "no stage yet");
    advance_to(&mut state, 5);
    let actions = planner.plan(&state, &key(0), &|_| false, PocInput::Block);
    assert_eq!(submitted(&actions), ["submit_seed_commit"]);
    assert!(actions.iter().any(|a| matches!(a, PocAction::StartSprint { .. })));
    let again = planner.plan(&state, &key(0), &|_| false, PocInput::Block);
    assert!(again.is_empty(), "nothing twice: {again:?}");
    // The commitment never landed: it is submitted again after a few blocks.
    advance_to(&mut state, 5 + RESUBMIT_AFTER_BLOCKS);
    assert_eq!(
        submitted(&planner.plan(&state, &key(0), &|_| false, PocInput::Block)),
        ["submit_seed_commit"]
    );
}

#[test]
fn found_nonces_are_batched_in_the_window_and_the_sprint_stops_at_the_end_of_generation() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let mut planner = PocHost::new(true);
    advance_to(&mut state, 5);
    let actions = planner.plan(&state, &key(0), &|_| false, PocInput::Block);
    let Some(PocAction::Submit(commit)) = actions.first() else { panic!("a commitment: {actions:?}") };
    let commit = Tx::new(CHAIN, &host(0), 0, commit.clone());
    let found = vec![(3, Distance(1_200_000_000)), (9, Distance(1_300_000_000))];
    let actions = planner.plan(&state, &key(0), &|_| false, PocInput::Found(found));
    assert!(submitted(&actions).is_empty(), "nonces wait for the seed commitment: {actions:?}");
    apply(&mut state, &[commit]);
    let actions = planner.plan(&state, &key(0), &|_| false, PocInput::Block);
    assert!(
        matches!(&actions[..], [PocAction::Submit(m)] if matches!(&m[0], Msg::Poc(PocMsg::Batch { nonces, .. }) if nonces.len() == 2))
    );
    advance_to(&mut state, 13);
    let actions = planner.plan(&state, &key(0), &|_| false, PocInput::Block);
    assert!(actions.contains(&PocAction::StopSprint), "{actions:?}");
    advance_to(&mut state, 16);
    let late =
        planner.plan(&state, &key(0), &|_| false, PocInput::Found(vec![(11, Distance(1_200_000_000))]));
    assert!(submitted(&late).is_empty(), "after the exchange deadline nothing is submitted: {late:?}");
}

#[test]
fn a_validator_samples_each_claimant_and_votes_on_what_it_recomputed() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    advance_to(&mut state, 5);
    let stage = state.poc.stage().expect("stage");
    // Host 1 claims three nonces.
    let nonces: Vec<gonka_chain::PocNonce> =
        (0..3).map(|n| gonka_chain::PocNonce { nonce: n, distance: Distance(1_200_000_000) }).collect();
    let claim = Tx::new(
        CHAIN,
        &host(1),
        0,
        vec![
            PocMsg::SeedCommit {
                epoch: 1,
                commitment: gonka_primitives::VrfKey::from_seed(b"s").public_key(),
            }
            .into(),
            PocMsg::Batch { poc_start: stage.start_height, nonces }.into(),
        ],
    );
    apply(&mut state, &[claim]);
    advance_to(&mut state, 15);
    let mut planner = PocHost::new(true);
    let actions = planner.plan(&state, &key(0), &|_| false, PocInput::Block);
    let asked: Vec<_> = actions
        .iter()
        .filter_map(|a| {
            if let PocAction::Recompute { participant, nonces, .. } = a {
                Some((*participant, nonces.clone()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(asked, [(host(1).address(), vec![0, 1, 2])], "the sample is all of a small claim");
    // Nonce 2 recomputes elsewhere: one mismatch.
    let distances =
        vec![Some(Distance(1_200_000_000)), Some(Distance(1_200_000_000)), Some(Distance(1_000_000))];
    let actions = planner.plan(
        &state,
        &key(0),
        &|_| false,
        PocInput::Recomputed { participant: host(1).address(), distances },
    );
    let Some(PocAction::Submit(messages)) = actions.first() else { panic!("a vote: {actions:?}") };
    assert!(matches!(&messages[0], Msg::Poc(PocMsg::Validation { sampled: 3, mismatches: 1, .. })));
    // The vote lands and verifies on chain.
    let vote = Tx::new(CHAIN, &host(0), state.account(&host(0).address()).sequence, messages.clone());
    apply(&mut state, &[vote]);
    assert!(state.poc.vote(stage.start_height, host(1).address(), host(0).address()).is_some());
}

fn recomputes(actions: &[PocAction]) -> Vec<gonka_primitives::Address> {
    actions
        .iter()
        .filter_map(
            |a| if let PocAction::Recompute { participant, .. } = a { Some(*participant) } else { None },
        )
        .collect()
}

#[test]
fn a_validator_keeps_a_bounded_number_of_recomputations_in_flight_current_validators_first() {
    // Issue 12, item 6: eight claimants (two with power, six new) against a validator that may have
    // MAX_RECOMPUTING in flight. The ones with power go first; each result brings one more, and every
    // verdict is submitted as soon as its recomputation is back.
    let hosts = 9;
    let mut state = State::from_genesis(&genesis_of(hosts, 3)).expect("genesis");
    advance_to(&mut state, 5);
    let stage = state.poc.stage().expect("stage");
    let claims: Vec<Tx> = (1..hosts)
        .map(|i| {
            let nonces =
                (0..3).map(|n| gonka_chain::PocNonce { nonce: n, distance: Distance(1_200_000_000) });
            let messages = vec![
                PocMsg::SeedCommit {
                    epoch: 1,
                    commitment: gonka_primitives::VrfKey::from_seed(b"s").public_key(),
                }
                .into(),
                PocMsg::Batch { poc_start: stage.start_height, nonces: nonces.collect() }.into(),
            ];
            Tx::new(CHAIN, &host(i), 0, messages)
        })
        .collect();
    apply(&mut state, &claims);
    advance_to(&mut state, 15);
    let mut planner = PocHost::new(true);
    let first = recomputes(&planner.plan(&state, &key(0), &|_| false, PocInput::Block));
    assert_eq!(first.len(), gonka_host::poc::MAX_RECOMPUTING);
    let new_hosts: Vec<_> = (3..hosts).map(|i| host(i).address()).collect();
    let draw = |a: &gonka_primitives::Address| {
        Hash::digest_parts(&[b"gonka/poc/validation-order", &stage.block_hash.0, &a.0])
    };
    let mut powered = [host(1).address(), host(2).address()];
    powered.sort_by_key(draw);
    assert_eq!(first[..2], powered, "the claimants with power first");
    let mut drawn = new_hosts.clone();
    drawn.sort_by_key(draw);
    assert_eq!(first[2..], drawn[..2], "then the others in the stage's drawn order, not by address");
    assert!(recomputes(&planner.plan(&state, &key(0), &|_| false, PocInput::Block)).is_empty(), "full");
    let mut voted = 0;
    let mut queue = first;
    while let Some(participant) = queue.pop() {
        let distances = vec![Some(Distance(1_200_000_000)); 3];
        let actions =
            planner.plan(&state, &key(0), &|_| false, PocInput::Recomputed { participant, distances });
        assert_eq!(submitted(&actions), ["submit_poc_validation"], "the verdict goes out at once");
        voted += 1;
        let more = recomputes(&actions);
        assert!(more.len() <= 1, "one result, at most one more: {more:?}");
        queue.extend(more);
    }
    assert_eq!(voted, hosts - 1, "every claimant was validated");
}

fn request(state: &State) -> SignedRequest {
    let developer = host(2);
    let timestamp_ns = state.meta.time_ms * 1_000_000;
    let terms = RequestTerms {
        transfer_agent: host(0).address(),
        body_hash: Hash::digest(b"body"),
        body_len: 4,
        timestamp_ns,
        model: Hash::digest(b"m"),
        max_tokens: 8,
        max_price_per_token: gonka_primitives::Amount(1),
    };
    SignedRequest::sign(&developer, &state.meta.chain_id, terms)
}

/// A request forwarded by host 0, its drawn executor's index, and that executor's Finish carrying
/// host 0's forward signature.
fn forwarded_finish(state: &State) -> (SignedRequest, usize, InferenceMsg) {
    let request = request(state);
    let executor = inference::executor_for(state, &request.id()).expect("drawn");
    let index = (0..3).find(|&i| host(i).address() == executor).expect("a host");
    let forward = inference::forward_message(CHAIN, &request.id(), &executor, request.max_tokens);
    let finish = InferenceMsg::Finish {
        request,
        ta_signature: host(0).sign_recoverable(&forward),
        prompt_tokens: 4,
        cached_tokens: 0,
        completion_tokens: 2,
        response_hash: Hash::digest(b"a"),
        seed: 1,
        logprobs_hash: Hash::digest(b"l"),
    };
    (request, index, finish)
}

#[test]
fn a_receipt_is_resubmitted_until_the_chain_holds_it() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    apply(&mut state, &[]);
    let (_, index, finish) = forwarded_finish(&state);
    let mut outbox = Outbox::new();
    let key = outbox.add(finish.clone()).expect("a receipt");
    outbox.submitted(key, state.height());
    assert!(outbox.plan(&state, &|_| false).0.is_empty(), "just submitted");
    advance_to(&mut state, 1 + RESUBMIT_AFTER_BLOCKS);
    let (due, done) = outbox.plan(&state, &|_| false);
    assert_eq!((due.len(), done.len()), (1, 0), "lost: submitted again");
    apply(&mut state, &[Tx::new(CHAIN, &host(index), 0, due)]);
    let (due, done) = outbox.plan(&state, &|_| false);
    assert_eq!((due.len(), done), (0, vec![key]), "on chain: done");
    assert!(outbox.is_empty());
}

#[test]
fn a_receipt_the_chain_can_no_longer_take_is_forgotten() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    apply(&mut state, &[]);
    let mut outbox = Outbox::new();
    outbox.add(InferenceMsg::Finish {
        request: request(&state),
        ta_signature: gonka_primitives::RecoverableSignature([0; 65]),
        prompt_tokens: 1,
        cached_tokens: 0,
        completion_tokens: 1,
        response_hash: Hash::ZERO,
        seed: 0,
        logprobs_hash: Hash::ZERO,
    });
    // 61 blocks of 1 s: the request is older than the accepted window and never reached the chain.
    advance_to(&mut state, 62);
    let (due, done) = outbox.plan(&state, &|_| false);
    assert!(due.is_empty());
    assert_eq!(done.len(), 1);
}

#[test]
fn an_executor_serves_a_transfer_agent_only_within_its_share_of_the_collateral() {
    use gonka_host::exposure::{ExposureBook, ExposureError, allowance};
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    apply(&mut state, &[]);
    let (ta, me, other) = (host(0).address(), host(1).address(), host(2).address());
    // 500,000 of collateral, three hosts of equal power: a third each.
    assert_eq!(allowance(&state, &ta, &me), 166_666);
    let now_ms = state.meta.time_ms;
    let id = |n: u8| Hash::digest(&[n]);
    let mut book = ExposureBook::new(3);
    book.reserve(&state, &me, ta, id(1), Amount(100_000), now_ms).expect("within the share");
    book.reserve(&state, &me, ta, id(2), Amount(66_666), now_ms).expect("the rest of it");
    assert_eq!(
        book.reserve(&state, &me, ta, id(3), Amount(1), now_ms),
        Err(ExposureError::Exceeded { ta, allowance: 166_666, outstanding: 166_666, needed: 1 })
    );
    // Another executor's share is its own.
    let mut elsewhere = ExposureBook::new(3);
    elsewhere.reserve(&state, &other, ta, id(3), Amount(166_666), now_ms).expect("its own third");
    // A TA with no collateral (here: an account that is not a host) is served nothing.
    let stranger = AccountKey::from_seed(b"stranger").address();
    assert_eq!(
        book.reserve(&state, &me, stranger, id(4), Amount(1), now_ms),
        Err(ExposureError::NoCollateral(stranger))
    );
    // A reservation given back (the request was not served) frees its part.
    book.release(&id(2));
    assert_eq!(book.outstanding(&ta), 100_000);
    book.reserve(&state, &me, ta, id(5), Amount(10), now_ms).expect("room again");
    book.reserve(&state, &me, ta, id(6), Amount(10), now_ms).expect("a third entry");
    assert_eq!(book.reserve(&state, &me, ta, id(7), Amount(10), now_ms), Err(ExposureError::Full(3)));
    // Once the request time has left the window no receipt can land: the exposure ends.
    advance_to(&mut state, 70);
    book.settle(&state);
    assert!(book.is_empty());
}

#[test]
fn the_exposure_of_a_request_ends_once_the_chain_holds_its_payment() {
    use gonka_host::exposure::ExposureBook;
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    apply(&mut state, &[]);
    let (request, index, finish) = forwarded_finish(&state);
    let mut book = ExposureBook::new(10);
    book.reserve_request(&state, &host(index).address(), &request).expect("reserved");
    // (body 4 bytes + 256 prompt overhead + max_tokens 8) tokens at 1 ngonka, against host 0.
    assert_eq!(book.outstanding(&host(0).address()), 268);
    book.settle(&state);
    assert_eq!(book.len(), 1, "not on chain yet");
    apply(&mut state, &[Tx::new(CHAIN, &host(index), 0, vec![finish.into()])]);
    book.settle(&state);
    assert!(book.is_empty(), "paid on chain");
}
