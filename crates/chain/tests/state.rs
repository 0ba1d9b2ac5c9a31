//! State machine behaviour: authentication, replay protection, atomic failure, supply conservation.

use gonka_chain::{
    AuthorityMsg, BankMsg, Block, Genesis, GenesisAccount, GenesisParticipant, HostsMsg, InferenceMsg, Msg,
    Params, State, Tx, TxBody, TxError,
};
use gonka_primitives::codec::{Bytes, Encode};
use gonka_primitives::{AccountKey, Address, Amount, ValidatorKey};
use proptest::prelude::*;

const CHAIN: &str = "gonka-test";

/// The per-message fee of ordinary transactions here.
const FEE: u128 = 10;

fn key(name: &str) -> AccountKey {
    AccountKey::from_seed(name.as_bytes())
}

fn genesis() -> Genesis {
    let host = key("host");
    let mut params = Params::devnet(key("authority").address());
    params.fees.per_message = Amount(FEE);
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 1_000,
        params,
        accounts: ["alice", "bob", "host", "authority"]
            .iter()
            .map(|n| GenesisAccount { address: key(n).address(), balance: Amount(1_000) })
            .collect(),
        participants: vec![GenesisParticipant {
            address: host.address(),
            account_key: host.public_key(),
            api_url: "http://127.0.0.1:9000".into(),
            validator_key: ValidatorKey::from_secret_bytes([1; 32]).public_key(),
            operational_key: key("host-ops").public_key(),
            weight: 10,
            collateral: gonka_primitives::Amount::ZERO,
            validation_key: None,
        }],
        developers: vec![],
        tokenomics: gonka_chain::Tokenomics::default(),
    }
}

fn block(state: &State, txs: &[Tx]) -> Block {
    let txs: Vec<Bytes> = txs.iter().map(|t| Bytes(t.to_bytes())).collect();
    let header = state.next_header(
        ValidatorKey::from_secret_bytes([1; 32]).public_key(),
        state.meta.time_ms + 1000,
        &txs,
    );
    Block { header, txs }
}

fn apply(state: &mut State, txs: &[Tx]) -> Vec<gonka_chain::TxResult> {
    let b = block(state, txs);
    state.apply_block(&b, &|_| false).expect("valid block").results
}

fn send(from: &str, seq: u64, to: &str, amount: u128) -> Tx {
    Tx::new(
        CHAIN,
        &key(from),
        seq,
        vec![Msg::Bank(BankMsg::Send { to: key(to).address(), amount: Amount(amount) })],
    )
}

fn total(state: &State) -> u128 {
    state.bank.accounts().values().map(|a| a.balance.0).sum()
}

#[test]
fn transfer_moves_funds_and_advances_sequence() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let results = apply(&mut state, &[send("alice", 0, "carol", 300)]);
    assert!(results[0].ok, "{:?}", results[0].error);
    assert_eq!(state.account(&key("alice").address()).balance, Amount(700 - FEE));
    assert_eq!(state.account(&key("carol").address()).balance, Amount(300));
    assert_eq!(state.account(&key("alice").address()).sequence, 1);
    assert_eq!(results[0].events[0].kind, "fee_burned");
    assert_eq!(results[0].events[1].kind, "transfer");
}

#[test]
fn check_rejects_bad_signature_wrong_chain_and_replay() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let tx = send("alice", 0, "bob", 1);

    let mut forged = tx.clone();
    forged.signature.0[10] ^= 1;
    assert!(matches!(state.check_tx(&forged.to_bytes(), None), Err(TxError::InvalidSignature)));

    let mut tampered = tx.clone();
    tampered.body.messages = vec![Msg::Bank(BankMsg::Send { to: key("bob").address(), amount: Amount(999) })];
    assert!(matches!(state.check_tx(&tampered.to_bytes(), None), Err(TxError::InvalidSignature)));

    let other_chain = Tx::new("other-chain", &key("alice"), 0, tx.body.messages.clone());
    assert!(matches!(state.check_tx(&other_chain.to_bytes(), None), Err(TxError::WrongChainId { .. })));

    assert!(state.check_tx(&tx.to_bytes(), None).is_ok());
    apply(&mut state, std::slice::from_ref(&tx));
    assert!(matches!(
        state.check_tx(&tx.to_bytes(), None),
        Err(TxError::WrongSequence { expected: 1, got: 0, .. })
    ));
    // A replay that reaches a block anyway fails there and changes nothing.
    let before = state.clone();
    let results = apply(&mut state, &[tx]);
    assert!(!results[0].ok);
    assert_eq!(state.bank, before.bank);
}

/// Issue 14, item 7 (`docs/spec/economy.md` §8): ordinary transactions burn their fee per message,
/// a staked host's duties are free, and a transaction whose account cannot pay changes nothing.
#[test]
fn ordinary_transactions_burn_their_fee_and_duties_are_free() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let supply = state.bank.supply().total.0;
    let two = Tx::new(
        CHAIN,
        &key("alice"),
        0,
        vec![
            Msg::Bank(BankMsg::Send { to: key("bob").address(), amount: Amount(100) }),
            Msg::Bank(BankMsg::Send { to: key("bob").address(), amount: Amount(100) }),
        ],
    );
    let checked = state.check_tx(&two.to_bytes(), None).expect("payable");
    assert_eq!(checked.debits[&key("alice").address()], Amount(200 + 2 * FEE), "the fee is a debit");
    assert!(apply(&mut state, &[two])[0].ok);
    assert_eq!(state.account(&key("alice").address()).balance, Amount(800 - 2 * FEE));
    assert_eq!(state.bank.supply().total.0, supply - 2 * FEE);
    assert_eq!(state.rewards.totals().burned_fees, Amount(2 * FEE));
    assert_eq!(gonka_chain::views::supply(&state).burned, Amount(2 * FEE));
    assert!(gonka_chain::views::supply(&state).balanced);

    // A duty of a staked host (weight 10) pays nothing, even with no balance left.
    let host = key("host");
    let everything = send("host", 0, "bob", 1_000 - FEE);
    assert!(apply(&mut state, &[everything])[0].ok);
    assert_eq!(state.account(&host.address()).balance, Amount::ZERO);
    let commit = Msg::Poc(gonka_chain::PocMsg::SeedCommit {
        epoch: 1,
        commitment: gonka_primitives::VrfKey::from_seed(&[7; 64]).public_key(),
    });
    let duty = Tx::new(CHAIN, &host, 1, vec![commit]);
    assert!(state.is_duty(&duty));
    assert_eq!(state.fee(&duty, true), Amount::ZERO);

    // An ordinary transaction its account cannot pay for is refused by the mempool and, in a block,
    // fails without using its sequence.
    let url = Msg::Hosts(HostsMsg::UpdateUrl { api_url: "http://127.0.0.1:9001".into() });
    let unpaid = Tx::new(CHAIN, &host, 1, vec![url]);
    assert!(!state.is_duty(&unpaid));
    assert!(matches!(state.check_tx(&unpaid.to_bytes(), None), Err(TxError::CannotPayFee { .. })));
    let before = state.bank.clone();
    let results = apply(&mut state, &[unpaid]);
    assert!(results[0].error.as_deref().unwrap_or("").contains("cannot pay the fee"), "{results:?}");
    assert_eq!(state.bank, before);
}

#[test]
fn malformed_and_oversized_bytes_are_rejected_without_panic() {
    let state = State::from_genesis(&genesis()).expect("genesis");
    assert!(matches!(state.check_tx(&[], None), Err(TxError::Malformed(_))));
    assert!(matches!(state.check_tx(&[0xff; 100], None), Err(TxError::Malformed(_))));
    let huge = vec![0u8; state.params().limits.max_tx_bytes as usize + 1];
    assert!(matches!(state.check_tx(&huge, None), Err(TxError::Malformed(_))));
}

#[test]
fn failed_message_rolls_back_earlier_messages_but_consumes_the_sequence() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let tx = Tx::new(
        CHAIN,
        &key("alice"),
        0,
        vec![
            Msg::Bank(BankMsg::Send { to: key("bob").address(), amount: Amount(600) }),
            Msg::Bank(BankMsg::Send { to: key("carol").address(), amount: Amount(600) }),
        ],
    );
    let results = apply(&mut state, &[tx]);
    assert!(!results[0].ok);
    assert!(results[0].error.as_deref().unwrap_or("").contains("insufficient funds"));
    // The fee of both messages stays burned: a failing transaction is not free.
    assert_eq!(
        state.account(&key("alice").address()),
        gonka_chain::Account { balance: Amount(1000 - 2 * FEE), sequence: 1 }
    );
    assert_eq!(state.account(&key("bob").address()).balance, Amount(1000));
    assert!(!state.bank.has_account(&key("carol").address()));
}

#[test]
fn operational_key_signs_routine_messages_only() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let host = key("host").address();
    let ops = key("host-ops");
    let routine = TxBody {
        chain_id: CHAIN.into(),
        account: host,
        signer: ops.public_key(),
        sequence: 0,
        messages: vec![Msg::Hosts(HostsMsg::UpdateUrl { api_url: "https://host.example:8443".into() })],
    }
    .sign(&ops);
    assert!(state.check_tx(&routine.to_bytes(), None).is_ok());
    let results = apply(&mut state, &[routine]);
    assert!(results[0].ok, "{:?}", results[0].error);
    assert_eq!(state.hosts.participants()[&host].api_url, "https://host.example:8443");

    let theft = TxBody {
        chain_id: CHAIN.into(),
        account: host,
        signer: ops.public_key(),
        sequence: 1,
        messages: vec![Msg::Bank(BankMsg::Send { to: ops.address(), amount: Amount(1) })],
    }
    .sign(&ops);
    assert!(matches!(state.check_tx(&theft.to_bytes(), None), Err(TxError::Unauthorized { .. })));
    let stranger = key("mallory");
    let impostor = TxBody {
        chain_id: CHAIN.into(),
        account: host,
        signer: stranger.public_key(),
        sequence: 1,
        messages: vec![Msg::Hosts(HostsMsg::UpdateUrl { api_url: "http://evil".into() })],
    }
    .sign(&stranger);
    assert!(matches!(state.check_tx(&impostor.to_bytes(), None), Err(TxError::Unauthorized { .. })));
}

#[test]
fn register_host_developer_and_params_by_authority_only() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let register = Tx::new(
        CHAIN,
        &key("bob"),
        0,
        vec![
            Msg::Hosts(HostsMsg::Register {
                api_url: "http://127.0.0.1:9100".into(),
                validator_key: ValidatorKey::from_secret_bytes([2; 32]).public_key(),
                operational_key: key("bob-ops").public_key(),
            }),
            Msg::Inference(InferenceMsg::RegisterDeveloper),
        ],
    );
    let duplicate_key = Tx::new(
        CHAIN,
        &key("alice"),
        0,
        vec![Msg::Hosts(HostsMsg::Register {
            api_url: "http://127.0.0.1:9200".into(),
            validator_key: ValidatorKey::from_secret_bytes([1; 32]).public_key(),
            operational_key: key("alice-ops").public_key(),
        })],
    );
    let mut params = state.params().clone();
    params.epoch.epoch_length = 200;
    let by_stranger = Tx::new(
        CHAIN,
        &key("alice"),
        1,
        vec![Msg::Authority(AuthorityMsg::UpdateParams { params: Box::new(params.clone()) })],
    );
    let by_authority = Tx::new(
        CHAIN,
        &key("authority"),
        0,
        vec![Msg::Authority(AuthorityMsg::UpdateParams { params: Box::new(params) })],
    );
    let results = apply(&mut state, &[register, duplicate_key, by_stranger, by_authority]);
    let oks: Vec<bool> = results.iter().map(|r| r.ok).collect();
    assert_eq!(oks, [true, false, false, true], "{results:?}");
    assert_eq!(
        state.hosts.participants()[&key("bob").address()].weight,
        0,
        "new hosts get weight from PoC, not registration"
    );
    assert!(state.inference.is_developer(&key("bob").address()));
    assert_eq!(state.params().epoch.epoch_length, 200);
    assert_eq!(state.validator_set().len(), 1);
}

#[test]
fn app_hash_depends_on_every_write_and_replays_identically() {
    let mut a = State::from_genesis(&genesis()).expect("genesis");
    let mut b = a.clone();
    let block1 = block(&a, &[send("alice", 0, "bob", 5)]);
    a.apply_block(&block1, &|_| false).expect("applies");
    b.apply_block(&block1, &|_| true).expect("applies");
    assert_eq!(a, b, "skipping verified signatures must not change the result");
    let mut c = State::from_genesis(&genesis()).expect("genesis");
    let other = block(&c, &[send("alice", 0, "bob", 6)]);
    c.apply_block(&other, &|_| false).expect("applies");
    assert_ne!(a.meta.app_hash, c.meta.app_hash);
}

#[test]
fn blocks_with_wrong_links_are_refused() {
    let state = State::from_genesis(&genesis()).expect("genesis");
    let good = block(&state, &[]);
    let mut wrong_app_hash = good.clone();
    wrong_app_hash.header.previous_app_hash.0[0] ^= 1;
    assert!(state.validate_block(&wrong_app_hash, 100).is_err());
    let mut wrong_height = good.clone();
    wrong_height.header.height = 5;
    assert!(state.validate_block(&wrong_height, 100).is_err());
    let mut early = good.clone();
    early.header.time_ms = 0;
    assert!(state.validate_block(&early, 100).is_err());
    let mut extra_tx = good.clone();
    extra_tx.txs.push(Bytes(vec![1, 2, 3]));
    assert!(state.validate_block(&extra_tx, 100).is_err());
    assert!(state.validate_block(&good, 100).is_ok());
}

#[test]
fn phase_events_mark_the_first_poc() {
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let mut kinds = Vec::new();
    for _ in 0..30 {
        let b = block(&state, &[]);
        let outcome = state.apply_block(&b, &|_| false).expect("applies");
        kinds.extend(outcome.events.into_iter().map(|e| {
            let detail = e.get("phase").unwrap_or("");
            (state.height(), format!("{} {detail}", e.kind))
        }));
    }
    assert_eq!(
        kinds,
        [
            (1, "phase_changed inference".to_string()),
            (30, "poc_stage_started ".to_string()),
            (30, "phase_changed poc_generate".to_string())
        ]
    );
    let stage = state.poc.stage().expect("the first PoC started");
    assert_eq!((stage.epoch, stage.start_height), (1, 30));
    assert_eq!(stage.block_hash, state.meta.last_block_hash, "seeded by the hash of block S");
}

/// A random transfer between five accounts (some unknown, some over-spending, some replayed).
fn transfer() -> impl Strategy<Value = (usize, usize, u128, i8)> {
    (0usize..5, 0usize..6, 0u128..1500, -1i8..2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn supply_is_conserved_over_random_transfers(blocks in proptest::collection::vec(proptest::collection::vec(transfer(), 0..8), 1..6)) {
        let names = ["alice", "bob", "host", "authority", "nobody", "carol"];
        let mut state = State::from_genesis(&genesis()).expect("genesis");
        let supply = state.bank.supply().total;
        prop_assert_eq!(total(&state), supply.0);
        for txs in blocks {
            let mut next: std::collections::BTreeMap<Address, u64> = Default::default();
            let txs: Vec<Tx> = txs.iter().map(|&(from, to, amount, skew)| {
                let address = key(names[from]).address();
                let seq = next.entry(address).or_insert_with(|| state.account(&address).sequence);
                let used = seq.saturating_add_signed(i64::from(skew));
                if skew == 0 { *seq += 1; }
                send(names[from], used, names[to], amount)
            }).collect();
            let results = apply(&mut state, &txs);
            prop_assert_eq!(results.len(), txs.len());
            // Only fees leave the balances: burned, and counted as burned.
            let burned = state.rewards.totals().burned_fees.0;
            prop_assert_eq!(total(&state) + burned, supply.0);
            prop_assert_eq!(state.bank.supply().total.0 + burned, supply.0);
            prop_assert_eq!(state.check_invariants(), Ok(()));
        }
    }
}
