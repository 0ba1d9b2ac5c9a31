//! Paid inference through the state machine: executor draw, escrow, settlement, expiry, replays, and
//! the invariant that no ngonka is created or lost in any order of Start, Finish and expiry.
#![allow(clippy::unwrap_used)]

mod common;

use common::{FEE, host, model, participant, priced_params};

use gonka_chain::{
    Genesis, GenesisAccount, Hold, InferenceMsg, InferenceStatus, Msg, RequestTerms, SignedRequest, State,
    Tx, TxResult, inference, inference_id,
};
use gonka_primitives::{AccountKey, Address, Amount, Hash};
use proptest::prelude::*;

const CHAIN: &str = "gonka-inference-test";
const PRICE: u128 = 10;
const WEIGHTS: [u64; 3] = [100, 200, 300];
const DEVELOPER_FUNDS: u128 = 1_000_000;

fn developer() -> AccountKey {
    AccountKey::from_seed(b"developer")
}

fn genesis() -> Genesis {
    let mut params = priced_params(PRICE);
    params.inference.expiry_base_blocks = 3;
    params.inference.expiry_tokens_per_block = 10;
    let mut accounts: Vec<GenesisAccount> =
        (0..3).map(|i| GenesisAccount { address: host(i).address(), balance: Amount(1_000) }).collect();
    accounts.push(GenesisAccount { address: developer().address(), balance: Amount(DEVELOPER_FUNDS) });
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 1_000_000,
        params,
        accounts,
        participants: (0..3).map(|i| participant(i, WEIGHTS[i])).collect(),
        developers: vec![developer().address()],
        tokenomics: Default::default(),
    }
}

struct Net {
    state: State,
    sequences: [u64; 3],
}

impl Net {
    fn new() -> Net {
        Net::from(&genesis())
    }

    fn from(genesis: &Genesis) -> Net {
        Net { state: State::from_genesis(genesis).unwrap(), sequences: [0; 3] }
    }

    fn tx(&mut self, from: usize, msg: Msg) -> Tx {
        let tx = Tx::new(CHAIN, &host(from), self.sequences[from], vec![msg]);
        self.sequences[from] += 1;
        tx
    }

    fn block(&mut self, txs: &[Tx]) -> Vec<TxResult> {
        common::apply_block(&mut self.state, txs)
    }

    fn deliver(&mut self, from: usize, msg: Msg) -> Result<(), String> {
        let tx = self.tx(from, msg);
        let result = self.block(&[tx]).remove(0);
        if result.ok { Ok(()) } else { Err(result.error.unwrap_or_default()) }
    }

    fn index_of(&self, address: Address) -> usize {
        (0..3).find(|&i| host(i).address() == address).unwrap()
    }

    /// A developer request for TA `ta` signed now, and its executor's index.
    fn request(&self, body: &[u8], ta: usize, max_tokens: u32) -> (SignedRequest, usize) {
        let timestamp_ns = self.state.meta.time_ms * 1_000_000;
        let transfer_agent = host(ta).address();
        let terms = RequestTerms {
            transfer_agent,
            body_hash: Hash::digest(body),
            body_len: body.len() as u32,
            timestamp_ns,
            model: model(),
            max_tokens,
            // Twice the model's price: always within the bound.
            max_price_per_token: Amount(2 * self.state.params().inference.models[0].price_per_token.0),
        };
        let request = SignedRequest::sign(&developer(), &self.state.meta.chain_id, terms);
        let executor = inference::executor_for(&self.state, &request.id()).unwrap();
        (request, self.index_of(executor))
    }

    fn balance(&self) -> u128 {
        self.state.account(&developer().address()).balance.0
    }

    /// What host `i` earned as executor: fees owed to it, and fees of its answers still held while
    /// their validation runs (`docs/spec/validation.md` §5.3).
    fn owed(&self, i: usize) -> u128 {
        let address = host(i).address();
        let pending: u128 = self
            .state
            .inference
            .records()
            .iter()
            .filter(|(_, r)| r.executor == address)
            .map(|(id, _)| self.state.bank.held(&Hold::Fee(*id)).0)
            .sum();
        common::earned(&self.state, &address) + pending
    }

    /// Σ balances + Σ escrows + Σ owed, counted from the rows: must always equal the supply.
    fn accounted(&self) -> u128 {
        let balances: u128 = self.state.bank.accounts().values().map(|a| a.balance.0).sum();
        let held: u128 = self.state.bank.holds().values().map(|a| a.0).sum();
        balances + held
    }

    fn escrow(&self, request: &SignedRequest) -> u128 {
        self.state.bank.held(&Hold::Escrow(inference_id(&request.signature))).0
    }
}

fn start(request: SignedRequest, executor: usize, prompt_tokens: u32) -> Msg {
    Msg::Inference(InferenceMsg::Start { request, executor: host(executor).address(), prompt_tokens })
}

/// The Finish of `executor`, carrying the forward signature of the request's TA (its account key).
fn finish(executor: usize, request: SignedRequest, prompt_tokens: u32, completion_tokens: u32) -> Msg {
    finish_cached(executor, request, prompt_tokens, 0, completion_tokens)
}

/// A Finish of which `cached_tokens` prompt tokens came from the executor's prefix cache.
fn finish_cached(
    executor: usize,
    request: SignedRequest,
    prompt_tokens: u32,
    cached_tokens: u32,
    completion_tokens: u32,
) -> Msg {
    let ta = (0..3).find(|&i| host(i).address() == request.transfer_agent).unwrap();
    let message =
        inference::forward_message(CHAIN, &request.id(), &host(executor).address(), request.max_tokens);
    Msg::Inference(InferenceMsg::Finish {
        request,
        ta_signature: host(ta).sign_recoverable(&message),
        prompt_tokens,
        cached_tokens,
        completion_tokens,
        response_hash: Hash::digest(b"answer"),
        seed: 7,
        logprobs_hash: Hash::digest(b"logprobs"),
    })
}

#[test]
fn the_executor_draw_is_deterministic_and_weight_proportional() {
    let net = Net::new();
    let mut counts = [0u64; 3];
    for i in 0..6_000u64 {
        let id = Hash::digest(&i.to_be_bytes());
        let executor = inference::executor_for(&net.state, &id).unwrap();
        assert_eq!(inference::executor_for(&net.state, &id), Some(executor));
        counts[net.index_of(executor)] += 1;
    }
    // Expected 1000 / 2000 / 3000: chi-square with 2 degrees of freedom below 13.8 (p = 0.001).
    let chi: f64 = counts
        .iter()
        .zip(WEIGHTS)
        .map(|(&c, w)| {
            let expected = 6_000.0 * w as f64 / 600.0;
            (c as f64 - expected).powi(2) / expected
        })
        .sum();
    assert!(chi < 13.8, "counts {counts:?}, chi-square {chi}");
}

#[test]
fn start_then_finish_charges_exactly_the_tokens_used_and_credits_the_executor() {
    let mut net = Net::new();
    net.block(&[]);
    let (request, executor) = net.request(b"hello", 0, 50);
    net.deliver(0, start(request, executor, 20)).unwrap();
    assert_eq!(net.balance(), DEVELOPER_FUNDS - 70 * PRICE, "escrow (prompt + max_tokens) × price");
    net.deliver(executor, finish(executor, request, 20, 12)).unwrap();
    assert_eq!(net.balance(), DEVELOPER_FUNDS - 32 * PRICE);
    assert_eq!(net.owed(executor), 32 * PRICE);
    let id = inference_id(&request.signature);
    let record = &net.state.inference.records()[&id];
    assert_eq!((record.status, record.cost.0, net.escrow(&request)), (InferenceStatus::Finished, 320, 0));
    assert_eq!(net.accounted(), net.state.bank.supply().total.0);
}

/// Cached prompt tokens cost the model's `cached_price_ppm` of the price, rounded down once over the
/// whole cached count, whichever receipt comes first, at the share locked by that first receipt
/// (`docs/spec/inference.md` §4.2); a Finish claiming more cached tokens than prompt tokens is refused.
#[test]
fn cached_prompt_tokens_are_charged_at_the_models_cached_share_in_either_order() {
    let mut genesis = genesis();
    // 10 % of a 10-ngonka token, plus a remainder that shows the rounding: 0.1234 × 10 = 1.234 each.
    genesis.params.inference.models[0].cached_price_ppm = 123_400;
    for start_first in [true, false] {
        let mut net = Net::from(&genesis);
        net.block(&[]);
        let (request, executor) = net.request(b"a long shared system prompt and a question", 0, 50);
        if start_first {
            net.deliver(0, start(request, executor, 40)).unwrap();
            // The cached share is locked with the price at the first receipt: a change after it does
            // not reach this inference.
            let mut params = net.state.params().clone();
            params.inference.models[0].cached_price_ppm = 1_000_000;
            let update = gonka_chain::AuthorityMsg::UpdateParams { params: Box::new(params) };
            net.deliver(0, Msg::Authority(update)).unwrap();
        }
        let refused = net.deliver(executor, finish_cached(executor, request, 40, 41, 12));
        assert!(refused.unwrap_err().contains("cached_tokens 41 above prompt_tokens 40"));
        net.deliver(executor, finish_cached(executor, request, 40, 32, 12)).unwrap();
        // (40 − 32 + 12) × 10 + ⌊32 × 10 × 0.1234⌋ = 200 + ⌊39.488⌋.
        let cost = 200 + 39;
        assert_eq!(net.balance(), DEVELOPER_FUNDS - cost, "start first: {start_first}");
        let record = &net.state.inference.records()[&inference_id(&request.signature)];
        assert_eq!((record.cost.0, record.cached_tokens, record.prompt_tokens), (cost, 32, 40));
        assert_eq!(record.cached_price_ppm, 123_400);
        assert_eq!(net.owed(executor), cost);
        assert_eq!(net.accounted(), net.state.bank.supply().total.0);
    }
    genesis.params.inference.models[0].cached_price_ppm = 1_000_001;
    assert!(genesis.params.validate().is_err(), "more than the whole price");
}

#[test]
fn finish_before_start_settles_the_same_way() {
    let mut net = Net::new();
    net.block(&[]);
    let (request, executor) = net.request(b"hello", 1, 50);
    net.deliver(executor, finish(executor, request, 20, 12)).unwrap();
    assert_eq!(net.balance(), DEVELOPER_FUNDS - 32 * PRICE);
    net.deliver(1, start(request, executor, 20)).unwrap();
    assert_eq!(net.balance(), DEVELOPER_FUNDS - 32 * PRICE, "the late Start moves no money");
    assert_eq!(net.owed(executor), 32 * PRICE);
    let record = &net.state.inference.records()[&inference_id(&request.signature)];
    assert_eq!(record.transfer_agent, Some(host(1).address()));
    assert_eq!(net.accounted(), net.state.bank.supply().total.0);
}

#[test]
fn an_unfinished_start_expires_with_a_full_refund_and_a_late_finish_is_refused() {
    let mut net = Net::new();
    net.block(&[]);
    let (request, executor) = net.request(b"slow", 0, 25);
    net.deliver(0, start(request, executor, 5)).unwrap();
    let deadline = net.state.inference.records()[&inference_id(&request.signature)].deadline;
    assert_eq!(deadline, net.state.height() + 3 + 3, "base 3 blocks + ⌈25/10⌉");
    while net.state.height() < deadline {
        net.block(&[]);
    }
    assert_eq!(net.balance(), DEVELOPER_FUNDS);
    assert_eq!(net.state.inference.host_stats(&host(executor).address()).missed, 1);
    assert_eq!(
        net.state.inference.records()[&inference_id(&request.signature)].status,
        InferenceStatus::Expired
    );
    assert!(net.deliver(executor, finish(executor, request, 5, 3)).unwrap_err().contains("expired"));
    assert_eq!(net.accounted(), net.state.bank.supply().total.0);
}

#[test]
fn receipts_naming_the_wrong_executor_or_role_are_rejected() {
    let mut net = Net::new();
    net.block(&[]);
    let (request, executor) = net.request(b"steer", 0, 10);
    let other = (executor + 1) % 3;
    assert!(net.deliver(0, start(request, other, 5)).unwrap_err().contains("is not the assigned executor"));
    assert!(
        net.deliver(other, finish(other, request, 5, 5))
            .unwrap_err()
            .contains("is not the assigned executor")
    );
    assert!(net.deliver(1, start(request, executor, 5)).unwrap_err().contains("transfer agent named"));
    let mut forged = request;
    forged.body_hash = Hash::digest(b"another body");
    assert!(net.deliver(0, start(forged, executor, 5)).unwrap_err().contains("developer signature"));
    assert_eq!(net.balance(), DEVELOPER_FUNDS, "nothing moved");
}

#[test]
fn replays_and_stale_requests_are_rejected_on_chain() {
    let mut net = Net::new();
    net.block(&[]);
    let (request, executor) = net.request(b"once", 0, 10);
    net.deliver(0, start(request, executor, 5)).unwrap();
    assert!(net.deliver(0, start(request, executor, 5)).unwrap_err().contains("already has this receipt"));
    net.deliver(executor, finish(executor, request, 5, 5)).unwrap();
    assert!(
        net.deliver(executor, finish(executor, request, 5, 5))
            .unwrap_err()
            .contains("already has this receipt")
    );
    assert_eq!(net.balance(), DEVELOPER_FUNDS - 10 * PRICE, "charged once");
    // A request older than the window is refused.
    let (old, old_executor) = net.request(b"old", 0, 10);
    for _ in 0..61 {
        net.block(&[]);
    }
    assert!(net.deliver(0, start(old, old_executor, 5)).unwrap_err().contains("outside"));
}

#[test]
fn a_requester_who_cannot_pay_the_escrow_is_refused() {
    let mut net = Net::new();
    net.block(&[]);
    let (request, executor) = net.request(b"big", 0, 8000);
    let error = net.deliver(0, start(request, executor, 200_000)).unwrap_err();
    assert!(error.contains("prompt_tokens"), "{error}");
    let mut pricey = genesis();
    pricey.params.inference.models[0].price_per_token = Amount(1_000);
    let mut net = Net::from(&pricey);
    net.block(&[]);
    let (request, executor) = net.request(b"costly", 0, 8192);
    let error = net.deliver(0, start(request, executor, 100)).unwrap_err();
    assert!(error.contains("cannot cover escrow"), "{error}");
}

/// One step of a random schedule over a few requests.
#[derive(Debug, Clone)]
enum Step {
    Start(usize),
    Finish(usize, u32),
    Blocks(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..4).prop_map(Step::Start),
        (0usize..4, 0u32..60).prop_map(|(i, c)| Step::Finish(i, c)),
        (1u8..5).prop_map(Step::Blocks),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn no_ngonka_is_created_or_lost_in_any_order_of_start_finish_and_expiry(
        steps in proptest::collection::vec(step(), 1..30),
        max_tokens in proptest::collection::vec(1u32..50, 4),
        prompts in proptest::collection::vec(0u32..40, 4),
    ) {
        let mut net = Net::new();
        net.block(&[]);
        let supply = net.state.bank.supply().total.0;
        let requests: Vec<(SignedRequest, usize)> =
            (0..4).map(|i| net.request(format!("body {i}").as_bytes(), i % 3, max_tokens[i])).collect();
        for step in steps {
            match step {
                Step::Start(i) => {
                    let (request, executor) = requests[i];
                    let _ = net.deliver(i % 3, start(request, executor, prompts[i]));
                }
                Step::Finish(i, completion) => {
                    let (request, executor) = requests[i];
                    let _ = net.deliver(executor, finish(executor, request, prompts[i], completion));
                }
                Step::Blocks(n) => {
                    for _ in 0..n {
                        net.block(&[]);
                    }
                }
            }
            prop_assert_eq!(net.accounted(), supply);
            prop_assert_eq!(net.state.bank.supply().total.0, supply);
            prop_assert_eq!(net.state.check_invariants(), Ok(()));
        }
        // Whatever happened, a finished request cost exactly its tokens (capped by its escrow when
        // started first), and an expired one nothing.
        for (request, _) in &requests {
            if let Some(record) = net.state.inference.record(&inference_id(&request.signature)) {
                let tokens = u128::from(record.prompt_tokens + record.completion_tokens);
                match record.status {
                    InferenceStatus::Finished => prop_assert!(record.cost.0 <= tokens * PRICE),
                    InferenceStatus::Expired => prop_assert_eq!(record.cost.0, 0),
                    InferenceStatus::Started => prop_assert!(net.escrow(request) > 0 || record.max_tokens == 0),
                    // No validator takes part here.
                    status => prop_assert!(false, "{status:?} without a validator"),
                }
            }
        }
    }
}

#[test]
fn receipts_are_bounded_by_what_the_developer_signed() {
    // Issue 12, items 3 and 4: the model, max_tokens, body length and chain id are signed, so a
    // Finish that lands first cannot charge another model, more tokens, or a request from elsewhere.
    let mut net = Net::new();
    net.block(&[]);
    let (request, executor) = net.request(b"hello", 1, 50);
    let mut more_tokens = request;
    more_tokens.max_tokens = 5_000;
    assert!(
        net.deliver(executor, finish(executor, more_tokens, 20, 4_000))
            .unwrap_err()
            .contains("developer signature")
    );
    let mut other_model = request;
    other_model.model = Hash::digest(b"a pricier model");
    assert!(
        net.deliver(executor, finish(executor, other_model, 20, 12))
            .unwrap_err()
            .contains("developer signature")
    );
    let mut longer_body = request;
    longer_body.body_len = 30_000;
    assert!(
        net.deliver(executor, finish(executor, longer_body, 20_000, 12))
            .unwrap_err()
            .contains("developer signature")
    );
    let prompt_max = net.state.params().inference.prompt_tokens_max(request.body_len);
    assert!(
        net.deliver(executor, finish(executor, request, prompt_max + 1, 12))
            .unwrap_err()
            .contains("prompt_tokens")
    );
    let elsewhere = SignedRequest::sign(&developer(), "another-chain", request.terms());
    let elsewhere_executor = net.index_of(inference::executor_for(&net.state, &elsewhere.id()).unwrap());
    assert!(
        net.deliver(elsewhere_executor, finish(elsewhere_executor, elsewhere, 20, 12))
            .unwrap_err()
            .contains("developer signature")
    );
    assert_eq!(net.balance(), DEVELOPER_FUNDS, "nothing moved");
    net.deliver(executor, finish(executor, request, prompt_max, 12)).unwrap();
    assert_eq!(
        net.balance(),
        DEVELOPER_FUNDS - u128::from(prompt_max + 12) * PRICE,
        "the bound itself is paid"
    );
}

/// Issue 12, items 1–2: a genesis where each host locks `collateral` and the developer holds `funds`.
fn vouched(collateral: u128, funds: u128) -> Net {
    let mut genesis = genesis();
    for host in &mut genesis.participants {
        host.collateral = Amount(collateral);
    }
    for account in &mut genesis.accounts {
        if account.address == developer().address() {
            account.balance = Amount(funds);
        }
    }
    let mut net = Net::from(&genesis);
    net.block(&[]);
    net
}

fn collateral(net: &Net, i: usize) -> (u128, u128) {
    let address = host(i).address();
    (net.state.bank.held(&Hold::Collateral(address)).0, net.state.bank.held(&Hold::Unbonding(address)).0)
}

/// Delivers `msg` from host `from` and returns its `inference_finished` event's attributes.
fn finished(net: &mut Net, from: usize, msg: Msg) -> (u128, u128, u128) {
    let tx = net.tx(from, msg);
    let result = net.block(&[tx]).remove(0);
    assert!(result.ok, "{:?}", result.error);
    let event = result.events.iter().find(|e| e.kind == "inference_finished").expect("finished");
    let get = |key| event.get(key).unwrap().parse::<u128>().unwrap();
    (get("cost"), get("requester_paid"), get("transfer_agent_paid"))
}

#[test]
fn a_finish_the_requester_cannot_pay_is_charged_to_the_vouching_transfer_agent() {
    // 32 tokens at 10: the developer holds 100 of the 320, the TA's collateral pays the other 220.
    let mut net = vouched(1_000, 100);
    let (request, executor) = net.request(b"hello", 1, 50);
    let ta = 1;
    let owed = net.owed(executor);
    let collateral_before = collateral(&net, ta).0;
    assert_eq!(finished(&mut net, executor, finish(executor, request, 20, 12)), (320, 100, 220));
    assert_eq!(net.balance(), 0);
    assert_eq!(net.owed(executor) - owed, 320, "the executor is paid in full");
    assert_eq!(collateral(&net, ta).0, collateral_before - 220);
    // The late Start of the same request moves nothing and cannot refund the TA twice.
    net.deliver(ta, start(request, executor, 20)).unwrap();
    assert_eq!((net.balance(), collateral(&net, ta).0), (0, collateral_before - 220));
    assert_eq!(net.state.check_invariants(), Ok(()));
}

#[test]
fn a_ta_without_collateral_leaves_the_shortfall_unpaid_so_executors_refuse_it() {
    // The chain takes what there is; serving beyond it is what the executor's exposure book refuses.
    let mut net = vouched(0, 100);
    let (request, executor) = net.request(b"hello", 2, 50);
    assert_eq!(finished(&mut net, executor, finish(executor, request, 20, 12)), (100, 100, 0));
}

#[test]
fn a_finish_needs_the_transfer_agents_forward_signature_for_this_executor() {
    let mut net = vouched(1_000, DEVELOPER_FUNDS);
    let (request, executor) = net.request(b"hello", 1, 50);
    let message = |to: usize| inference::forward_message(CHAIN, &request.id(), &host(to).address(), 50);
    let with = |ta_signature| {
        Msg::Inference(InferenceMsg::Finish {
            request,
            ta_signature,
            prompt_tokens: 20,
            cached_tokens: 0,
            completion_tokens: 12,
            response_hash: Hash::digest(b"answer"),
            seed: 7,
            logprobs_hash: Hash::digest(b"logprobs"),
        })
    };
    let other = (executor + 1) % 3;
    // Not the TA, another executor, another chain, another max_tokens.
    let refusals = [
        developer().sign_recoverable(&message(executor)),
        host(0).sign_recoverable(&message(executor)),
        host(1).sign_recoverable(&message(other)),
        host(1).sign_recoverable(&inference::forward_message(
            "elsewhere",
            &request.id(),
            &host(executor).address(),
            50,
        )),
        host(1).sign_recoverable(&inference::forward_message(
            CHAIN,
            &request.id(),
            &host(executor).address(),
            51,
        )),
    ];
    for (n, signature) in refusals.into_iter().enumerate() {
        let error = net.deliver(executor, with(signature)).unwrap_err();
        assert!(error.contains("forward signature"), "{n}: {error}");
    }
    assert_eq!(net.balance(), DEVELOPER_FUNDS, "nothing moved");
    // The TA's operational key may sign for it.
    let operational = AccountKey::from_seed(b"ops-1");
    net.deliver(executor, with(operational.sign_recoverable(&message(executor)))).unwrap();
    assert_eq!(net.balance(), DEVELOPER_FUNDS - 320);
}

#[test]
fn withdrawn_collateral_still_vouches_while_it_unbonds_then_returns() {
    let mut net = vouched(600, 0);
    let ta = 1;
    let deposit = |amount| Msg::Collateral(gonka_chain::CollateralMsg::Deposit { amount: Amount(amount) });
    let withdraw = |amount| Msg::Collateral(gonka_chain::CollateralMsg::Withdraw { amount: Amount(amount) });
    // Every ordinary transaction burns its fee, even one whose message fails: 400 − 2 × FEE left.
    assert!(net.deliver(ta, deposit(0)).unwrap_err().contains("positive"));
    assert!(net.deliver(ta, deposit(400 - FEE)).is_err(), "more than the balance left after the fee");
    assert_eq!(net.state.account(&host(ta).address()).balance.0, 400 - 2 * FEE);
    let kept = 400 - 2 * FEE - FEE - 350;
    net.deliver(ta, deposit(350)).unwrap();
    assert_eq!((net.state.account(&host(ta).address()).balance.0, collateral(&net, ta)), (kept, (950, 0)));
    assert!(net.deliver(ta, withdraw(951)).unwrap_err().contains("cannot cover"));
    net.deliver(ta, withdraw(950)).unwrap();
    let release_at = net.state.meta.time_ms + net.state.params().collateral.unbonding_ms;
    assert_eq!(net.state.account(&host(ta).address()).balance.0, kept - 2 * FEE);
    assert_eq!(collateral(&net, ta), (0, 950), "unbonding, not spendable");
    assert_eq!(net.state.rewards.totals().burned_fees.0, 5 * FEE);
    // With nothing left for the fee, a transaction is refused and uses no sequence.
    let sequence = net.state.account(&host(ta).address()).sequence;
    assert!(net.deliver(ta, withdraw(1)).unwrap_err().contains("cannot pay the fee"));
    assert_eq!(net.state.account(&host(ta).address()).sequence, sequence);
    net.sequences[ta] = sequence;
    // A request the TA vouched for still gets paid from the unbonding collateral.
    let (request, executor) = net.request(b"hello", ta, 50);
    assert_eq!(finished(&mut net, executor, finish(executor, request, 20, 12)), (320, 0, 320));
    assert_eq!(collateral(&net, ta), (0, 630));
    while net.state.meta.time_ms + 1_000 < release_at - 2_000 {
        net.block(&[]);
    }
    assert_eq!(collateral(&net, ta), (0, 630), "not before its time");
    for _ in 0..4 {
        net.block(&[]);
    }
    assert_eq!(collateral(&net, ta), (0, 0));
    assert_eq!(net.state.account(&host(ta).address()).balance.0, 630, "what was left comes back");
    // Only hosts hold collateral.
    let funds = gonka_chain::BankMsg::Send { to: developer().address(), amount: Amount(100) };
    net.deliver(0, Msg::Bank(funds)).unwrap();
    let stranger = Tx::new(CHAIN, &developer(), 0, vec![deposit(1)]);
    let result = net.block(&[stranger]).remove(0);
    let error = result.error.unwrap_or_default();
    assert!(error.contains("not a registered host"), "{error}");
    assert_eq!(net.state.check_invariants(), Ok(()));
}
