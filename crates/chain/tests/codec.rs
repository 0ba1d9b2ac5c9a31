//! The consensus byte formats: transactions and blocks round-trip, arbitrary or mutated bytes are
//! refused with an error (never a panic), and the encoding of a fixed transaction is pinned.

use gonka_chain::{
    AuthorityMsg, BankMsg, Block, Genesis, GenesisAccount, GenesisParticipant, HostsMsg, InferenceMsg, Msg,
    Params, PocMsg, PocNonce, SignedRequest, State, Tx,
};
use gonka_primitives::codec::{Bytes, Encode, decode_exact};
use gonka_primitives::{AccountKey, Address, Amount, ValidatorKey};
use proptest::prelude::*;

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (any::<[u8; 20]>(), any::<u128>())
            .prop_map(|(to, amount)| Msg::Bank(BankMsg::Send { to: Address(to), amount: Amount(amount) })),
        ("http://[a-z]{1,20}", any::<[u8; 32]>()).prop_map(|(api_url, seed)| Msg::Hosts(
            HostsMsg::Register {
                api_url,
                validator_key: ValidatorKey::from_secret_bytes(seed).public_key(),
                operational_key: AccountKey::from_seed(&seed).public_key(),
            }
        )),
        Just(Msg::Inference(InferenceMsg::RegisterDeveloper)),
        "https://[a-z0-9.]{1,30}".prop_map(|api_url| Msg::Hosts(HostsMsg::UpdateUrl { api_url })),
        any::<[u8; 20]>().prop_map(|a| Msg::Authority(AuthorityMsg::UpdateParams {
            params: Box::new(Params::mainnet(Address(a)))
        })),
    ]
}

fn tx() -> impl Strategy<Value = Tx> {
    ("[a-z-]{1,16}", any::<[u8; 8]>(), any::<u64>(), proptest::collection::vec(msg(), 0..4)).prop_map(
        |(chain, seed, sequence, messages)| {
            Tx::new(&chain, &AccountKey::from_seed(&seed), sequence, messages)
        },
    )
}

fn state() -> State {
    let key = AccountKey::from_seed(b"fuzz");
    State::from_genesis(&Genesis {
        chain_id: "fuzz".into(),
        genesis_time_ms: 0,
        params: Params::devnet(key.address()),
        accounts: vec![GenesisAccount { address: key.address(), balance: Amount(10) }],
        participants: vec![GenesisParticipant {
            address: key.address(),
            account_key: key.public_key(),
            api_url: "http://a".into(),
            validator_key: ValidatorKey::from_secret_bytes([5; 32]).public_key(),
            operational_key: key.public_key(),
            weight: 1,
            collateral: gonka_primitives::Amount::ZERO,
            validation_key: None,
        }],
        developers: vec![],
        tokenomics: Default::default(),
    })
    .expect("genesis")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn transactions_round_trip(tx in tx()) {
        let bytes = tx.to_bytes();
        prop_assert_eq!(decode_exact::<Tx>(&bytes, 1 << 20), Ok(tx));
    }

    #[test]
    fn blocks_round_trip(txs in proptest::collection::vec(tx(), 0..5), height in 1u64..1000, time in any::<u64>()) {
        let txs: Vec<Bytes> = txs.iter().map(|t| Bytes(t.to_bytes())).collect();
        let mut header = state().next_header(ValidatorKey::from_secret_bytes([5; 32]).public_key(), time, &txs);
        header.height = height;
        let block = Block { header, txs };
        prop_assert_eq!(decode_exact::<Block>(&block.to_bytes(), 1 << 24), Ok(block));
    }

    #[test]
    fn arbitrary_bytes_are_refused_not_panicked_on(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let state = state();
        prop_assert!(state.check_tx(&bytes, None).is_err());
        let _ = decode_exact::<Block>(&bytes, 1 << 20);
    }

    #[test]
    fn mutated_transactions_never_pass_and_never_panic(tx in tx(), position in any::<usize>(), flip in 1u8..=255) {
        let mut bytes = tx.to_bytes();
        let position = position % bytes.len();
        bytes[position] ^= flip;
        let state = state();
        // A flipped bit breaks the decoding, the chain id, the account, or the signature.
        prop_assert!(state.check_tx(&bytes, None).is_err());
        // A block holding it applies without panicking and without effect.
        let mut next = state.clone();
        let txs = vec![Bytes(bytes)];
        let header = state.next_header(ValidatorKey::from_secret_bytes([5; 32]).public_key(), 1, &txs);
        let outcome = next.apply_block(&Block { header, txs }, &|_| false).expect("valid block");
        prop_assert!(!outcome.results[0].ok);
        prop_assert_eq!(next.bank, state.bank);
    }
}

#[test]
fn transaction_encoding_is_pinned() {
    // A change here changes every signature and tx hash: review it as a protocol change.
    let key = AccountKey::from_seed(b"pinned");
    let tx = Tx::new(
        "gonka-mainnet",
        &key,
        7,
        vec![Msg::Bank(BankMsg::Send { to: Address([0x11; 20]), amount: Amount(1_000_000_000) })],
    );
    let body = hex::encode(tx.body.to_bytes());
    assert_eq!(
        body,
        format!(
            "0000000d676f6e6b612d6d61696e6e6574{}{}{}{}",
            hex::encode(key.address().0),
            hex::encode(key.public_key().0),
            "0000000000000007",
            "00000001010011111111111111111111111111111111111111110000000000000000000000003b9aca00"
        )
    );
    assert_eq!(tx.to_bytes().len(), body.len() / 2 + 64);
}

#[test]
fn every_message_has_a_pinned_module_and_message_tag() {
    // (name, module id, message tag): the first two bytes of every encoded message. Reusing or
    // renumbering one is a protocol change.
    let request = SignedRequest {
        requester: Address([1; 20]),
        transfer_agent: Address([2; 20]),
        body_hash: gonka_primitives::Hash([3; 32]),
        body_len: 3,
        timestamp_ns: 4,
        signature: gonka_primitives::RecoverableSignature([5; 65]),
        model: gonka_primitives::Hash([6; 32]),
        max_tokens: 7,
        max_price_per_token: Amount(8),
    };
    let key = AccountKey::from_seed(b"tags");
    let messages: Vec<(Msg, &str, [u8; 2])> = vec![
        (BankMsg::Send { to: Address([0; 20]), amount: Amount(1) }.into(), "bank_send", [1, 0]),
        (
            HostsMsg::Register {
                api_url: "http://a".into(),
                validator_key: ValidatorKey::from_secret_bytes([1; 32]).public_key(),
                operational_key: key.public_key(),
            }
            .into(),
            "register_host",
            [2, 0],
        ),
        (HostsMsg::UpdateUrl { api_url: "http://b".into() }.into(), "update_host_url", [2, 1]),
        (
            AuthorityMsg::UpdateParams { params: Box::new(Params::devnet(Address([0; 20]))) }.into(),
            "update_params",
            [3, 0],
        ),
        (
            PocMsg::SeedCommit { epoch: 1, commitment: gonka_primitives::VrfPublicKey([0; 32]) }.into(),
            "submit_seed_commit",
            [4, 0],
        ),
        (
            PocMsg::Batch {
                poc_start: 1,
                nonces: vec![PocNonce { nonce: 1, distance: gonka_poc::Distance(1) }],
            }
            .into(),
            "submit_poc_batch",
            [4, 1],
        ),
        (
            PocMsg::Validation {
                poc_start: 1,
                participant: Address([0; 20]),
                sampled: 1,
                mismatches: 0,
                sample_seed: key.sign(b"seed"),
            }
            .into(),
            "submit_poc_validation",
            [4, 2],
        ),
        (InferenceMsg::RegisterDeveloper.into(), "register_developer", [5, 0]),
        (
            InferenceMsg::Start { request, executor: Address([0; 20]), prompt_tokens: 1 }.into(),
            "start_inference",
            [5, 1],
        ),
        (
            InferenceMsg::Finish {
                request,
                ta_signature: gonka_primitives::RecoverableSignature([3; 65]),
                prompt_tokens: 1,
                cached_tokens: 0,
                completion_tokens: 1,
                response_hash: gonka_primitives::Hash([0; 32]),
                seed: 0,
                logprobs_hash: gonka_primitives::Hash([0; 32]),
            }
            .into(),
            "finish_inference",
            [5, 2],
        ),
        (
            gonka_chain::ValidationMsg::Validate {
                inference: gonka_primitives::Hash([1; 32]),
                proof: gonka_primitives::VrfProof([2; 96]),
                verdict: gonka_chain::Verdict::failed(gonka_chain::Failure::Replay),
            }
            .into(),
            "submit_validation",
            [8, 0],
        ),
        (
            gonka_chain::ValidationMsg::Vote { inference: gonka_primitives::Hash([1; 32]), valid: false }
                .into(),
            "submit_validation_vote",
            [8, 1],
        ),
    ];
    for (msg, name, tags) in messages {
        let bytes = msg.to_bytes();
        assert_eq!((msg.name(), [bytes[0], bytes[1]]), (name, tags));
        assert_eq!(decode_exact::<Msg>(&bytes, 1 << 20), Ok(msg.clone()), "{name} round-trips");
        let json = serde_json::to_value(&msg).expect("serializes");
        assert_eq!(json["type"], name, "JSON names the message");
        assert_eq!(serde_json::from_value::<Msg>(json).expect("deserializes"), msg);
    }
}
