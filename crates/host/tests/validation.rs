//! The validation planner on a real chain state (`docs/spec/validation.md` §4): it checks exactly the
//! answers its VRF selects it for, submits the verdict, judges a payload withheld to the window's end as
//! a failure, votes on other validators' failures, and payload custody follows the selection.

use gonka_chain::{
    Block, Failure, Genesis, GenesisAccount, GenesisParticipant, InferenceMsg, InferenceStatus, Msg, Params,
    RequestTerms, SignedRequest, State, Tx, ValidationMsg, Verdict, inference,
};
use gonka_host::poc::HostKey;
use gonka_host::protocol::validation_key;
use gonka_host::validation::{ValidationAction, ValidationHost, ValidationInput, may_read_payload};
use gonka_primitives::codec::{Bytes, Encode};
use gonka_primitives::{AccountKey, Amount, Hash, ValidatorKey};

const CHAIN: &str = "validation-planner";
const HOSTS: usize = 4;

fn host(i: usize) -> AccountKey {
    AccountKey::from_seed(format!("validation-host-{i}").as_bytes())
}

fn developer() -> AccountKey {
    AccountKey::from_seed(b"validation-developer")
}

fn genesis() -> Genesis {
    let mut params = Params::devnet(host(0).address());
    params.inference.models.push(gonka_chain::ModelPrice {
        name: "m".into(),
        content_hash: Hash::digest(b"m"),
        price_per_token: Amount(1),
        cached_price_ppm: gonka_chain::FULL_PRICE_PPM,
        validation: Default::default(),
    });
    let mut accounts: Vec<GenesisAccount> = (0..HOSTS)
        .map(|i| GenesisAccount { address: host(i).address(), balance: Amount(1_000_000) })
        .collect();
    accounts.push(GenesisAccount { address: developer().address(), balance: Amount(1_000_000_000) });
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 1_000_000,
        params,
        accounts,
        participants: (0..HOSTS)
            .map(|i| GenesisParticipant {
                address: host(i).address(),
                account_key: host(i).public_key(),
                api_url: format!("http://h{i}"),
                validator_key: ValidatorKey::from_secret_bytes([i as u8 + 1; 32]).public_key(),
                operational_key: host(i).public_key(),
                weight: 100,
                collateral: Amount(500_000),
                validation_key: Some(validation_key(&host(i), CHAIN, 0).public_key()),
            })
            .collect(),
        developers: vec![developer().address()],
        tokenomics: Default::default(),
    }
}

fn key(i: usize) -> HostKey {
    HostKey { account: host(i).address(), operational: host(i) }
}

struct Net {
    state: State,
    sequences: [u64; HOSTS],
    requests: u64,
}

impl Net {
    fn new() -> Net {
        let mut net = Net {
            state: State::from_genesis(&genesis()).expect("genesis"),
            sequences: [0; HOSTS],
            requests: 0,
        };
        net.apply(&[]);
        net
    }

    fn apply(&mut self, msgs: &[(usize, Msg)]) {
        let txs: Vec<Bytes> = msgs
            .iter()
            .map(|(from, msg)| {
                let tx = Tx::new(CHAIN, &host(*from), self.sequences[*from], vec![msg.clone()]);
                self.sequences[*from] += 1;
                Bytes(tx.to_bytes())
            })
            .collect();
        let header = self.state.next_header(
            ValidatorKey::from_secret_bytes([1; 32]).public_key(),
            self.state.meta.time_ms + 1000,
            &txs,
        );
        let outcome = self.state.apply_block(&Block { header, txs }, &|_| false).expect("applies");
        assert!(outcome.results.iter().all(|r| r.ok), "{:?}", outcome.results);
    }

    /// Starts and finishes one request; returns its id and executor.
    fn finish_one(&mut self) -> (Hash, usize) {
        self.requests += 1;
        let body = format!("q{}", self.requests);
        let terms = RequestTerms {
            transfer_agent: host(0).address(),
            body_hash: Hash::digest(body.as_bytes()),
            body_len: body.len() as u32,
            timestamp_ns: self.state.meta.time_ms * 1_000_000,
            model: Hash::digest(b"m"),
            max_tokens: 8,
            max_price_per_token: gonka_primitives::Amount(1),
        };
        let request = SignedRequest::sign(&developer(), CHAIN, terms);
        let id = request.id();
        let executor_address = inference::executor_for(&self.state, &id).expect("drawn");
        let executor = (0..HOSTS).find(|&i| host(i).address() == executor_address).expect("a host");
        let start = InferenceMsg::Start { request, executor: executor_address, prompt_tokens: 4 };
        let forward = inference::forward_message(CHAIN, &id, &executor_address, 8);
        let finish = InferenceMsg::Finish {
            request,
            ta_signature: host(0).sign_recoverable(&forward),
            prompt_tokens: 4,
            cached_tokens: 0,
            completion_tokens: 2,
            response_hash: Hash::digest(b"a"),
            seed: 1,
            logprobs_hash: Hash::digest(b"r"),
        };
        self.apply(&[(0, start.into())]);
        self.apply(&[(executor, finish.into())]);
        (id, executor)
    }

    /// Runs host `i`'s planner on `input`.
    fn plan(&self, planner: &mut ValidationHost, i: usize, input: ValidationInput) -> Vec<ValidationAction> {
        planner.plan(&self.state, &key(i), &|_| false, input)
    }
}

fn checks(actions: &[ValidationAction]) -> Vec<Hash> {
    actions
        .iter()
        .filter_map(|a| if let ValidationAction::Check { id, .. } = a { Some(*id) } else { None })
        .collect()
}

fn submitted(actions: &[ValidationAction]) -> Vec<Msg> {
    actions
        .iter()
        .filter_map(|a| if let ValidationAction::Submit(m) = a { Some(m[0].clone()) } else { None })
        .collect()
}

fn pass() -> Verdict {
    Verdict {
        failure: Failure::None,
        distance_ppm: 0,
        replay_mismatches: 0,
        prompt_tokens: 4,
        completion_tokens: 2,
    }
}

#[test]
fn a_host_checks_exactly_what_it_is_selected_for_and_submits_its_verdict() {
    let mut net = Net::new();
    let mut planners: Vec<ValidationHost> = (0..HOSTS).map(|_| ValidationHost::new(true)).collect();
    let mut selected = Vec::new();
    for _ in 0..6 {
        let (id, executor) = net.finish_one();
        for (i, planner) in planners.iter_mut().enumerate() {
            let actions = net.plan(planner, i, ValidationInput::Block);
            for action in &actions {
                let ValidationAction::Check { id: checked, executor: e, proof } = action else { continue };
                assert_eq!((*checked, *e), (id, host(executor).address()), "only the new answer");
                assert_ne!(i, executor, "never its own");
                let proof = proof.expect("a selected validation carries its proof");
                assert_eq!(may_read_payload(&net.state, &id, &host(i).address(), Some(&proof)), Ok(()));
                selected.push((i, id));
            }
        }
    }
    assert!(!selected.is_empty(), "with four equal hosts about one validator per answer");
    // An unselected host cannot read a payload, even with a selected host's proof.
    let (validator, id) = selected[0];
    let other = (0..HOSTS)
        .find(|&i| i != validator && net.state.inference.record(&id).unwrap().executor != host(i).address())
        .unwrap();
    assert!(may_read_payload(&net.state, &id, &host(other).address(), None).is_err());
    // The verdict comes back: submitted once, and forgotten once on chain.
    let actions =
        net.plan(&mut planners[validator], validator, ValidationInput::Checked { id, verdict: pass() });
    let msgs = submitted(&actions);
    assert!(
        matches!(msgs.as_slice(), [Msg::Validation(ValidationMsg::Validate { inference, .. })] if *inference == id)
    );
    net.apply(&[(validator, msgs[0].clone())]);
    assert_eq!(net.state.inference.record(&id).unwrap().status, InferenceStatus::Validated);
    let again = net.plan(&mut planners[validator], validator, ValidationInput::Block);
    assert!(submitted(&again).is_empty() && !checks(&again).contains(&id));
}

#[test]
fn a_payload_withheld_to_the_windows_end_is_judged_a_failure_and_others_vote_on_it() {
    let mut net = Net::new();
    let mut planner = ValidationHost::new(true);
    let (id, validator) = loop {
        let (id, _) = net.finish_one();
        let found = (0..HOSTS).find(|&i| {
            let mut probe = ValidationHost::new(true);
            checks(&net.plan(&mut probe, i, ValidationInput::Block)).contains(&id)
        });
        if let Some(validator) = found {
            break (id, validator);
        }
    };
    assert!(checks(&net.plan(&mut planner, validator, ValidationInput::Block)).contains(&id));
    let refused = ValidationInput::CheckFailed { id, error: "403".into(), refused: true };
    assert!(submitted(&net.plan(&mut planner, validator, refused)).is_empty(), "tried again first");
    let finished = net.state.inference.record(&id).unwrap().finished_height;
    let window = net.state.params().validation.validation_window_blocks;
    let mut verdict = None;
    while net.state.height() < finished + window && verdict.is_none() {
        net.apply(&[]);
        let actions = net.plan(&mut planner, validator, ValidationInput::Block);
        if checks(&actions).contains(&id) {
            let refused = ValidationInput::CheckFailed { id, error: "403".into(), refused: true };
            verdict = submitted(&net.plan(&mut planner, validator, refused)).pop();
        } else {
            verdict = submitted(&actions).pop();
        }
    }
    let verdict = verdict.expect("judged before the window closed");
    assert!(matches!(
        &verdict,
        Msg::Validation(ValidationMsg::Validate {
            verdict: Verdict { failure: Failure::PayloadRefused, .. },
            ..
        })
    ));
    net.apply(&[(validator, verdict)]);
    assert_eq!(net.state.inference.record(&id).unwrap().status, InferenceStatus::Voting);
    // Every other host with power (not the executor) now checks it: as a voter, without a proof (a
    // host also selected for it checks with its proof, and its verdict counts as its vote).
    let executor = net.state.inference.record(&id).unwrap().executor;
    for i in (0..HOSTS).filter(|&i| i != validator && host(i).address() != executor) {
        let mut voter = ValidationHost::new(true);
        assert!(checks(&net.plan(&mut voter, i, ValidationInput::Block)).contains(&id));
        assert_eq!(may_read_payload(&net.state, &id, &host(i).address(), None), Ok(()));
        let fail = Verdict::failed(Failure::PayloadRefused);
        let judged = submitted(&net.plan(&mut voter, i, ValidationInput::Checked { id, verdict: fail }));
        assert!(matches!(
            judged.as_slice(),
            [Msg::Validation(ValidationMsg::Vote { valid: false, .. } | ValidationMsg::Validate { .. })]
        ));
    }
}
