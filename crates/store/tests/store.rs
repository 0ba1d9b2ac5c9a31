//! Store round trips: genesis, committed blocks, state reload with the same app hash.

use gonka_chain::{BankMsg, Block, Genesis, GenesisAccount, GenesisParticipant, Msg, Params, State, Tx};
use gonka_primitives::codec::{Bytes, Encode};
use gonka_primitives::{AccountKey, Amount, ValidatorKey};
use gonka_store::Store;

fn genesis() -> Genesis {
    let alice = AccountKey::from_seed(b"alice");
    Genesis {
        chain_id: "store-test".into(),
        genesis_time_ms: 0,
        params: Params::devnet(alice.address()),
        accounts: vec![GenesisAccount { address: alice.address(), balance: Amount(1_000_000) }],
        participants: vec![GenesisParticipant {
            address: alice.address(),
            account_key: alice.public_key(),
            api_url: "http://127.0.0.1:1".into(),
            validator_key: ValidatorKey::from_secret_bytes([3; 32]).public_key(),
            operational_key: alice.public_key(),
            weight: 1,
            collateral: gonka_primitives::Amount::ZERO,
            validation_key: None,
        }],
        developers: vec![],
        tokenomics: Default::default(),
    }
}

#[test]
fn reopened_store_gives_the_same_state_blocks_and_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let alice = AccountKey::from_seed(b"alice");
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    let mut hashes = Vec::new();
    {
        let store = Store::open(&path).expect("open");
        assert!(store.load_state().expect("load").is_none());
        store.init_genesis(&state).expect("genesis");
        for seq in 0..20u64 {
            let to = AccountKey::from_seed(&seq.to_be_bytes()).address();
            let tx = Tx::new(
                "store-test",
                &alice,
                seq,
                vec![Msg::Bank(BankMsg::Send { to, amount: Amount(10 + u128::from(seq)) })],
            );
            hashes.push(tx.hash());
            let txs = vec![Bytes(tx.to_bytes())];
            let header =
                state.next_header(ValidatorKey::from_secret_bytes([3; 32]).public_key(), seq * 1000, &txs);
            let block = Block { header, txs };
            let outcome = state.apply_block(&block, &|_| false).expect("applies");
            store.commit_block(state.height(), &block.to_bytes(), b"cert", &outcome).expect("commit");
        }
    }
    let store = Store::open(&path).expect("reopen");
    let reloaded = store.load_state().expect("load").expect("state present");
    assert_eq!(reloaded, state);
    assert_eq!(store.block_count().expect("count"), 20);
    assert_eq!(store.tx_location(&hashes[7]).expect("index"), Some((8, 0)));
    let (_, certificate) = store.block(8).expect("read").expect("block 8");
    assert_eq!(certificate, b"cert");
    let results = store.results(8).expect("read").expect("results");
    assert!(results.txs[0].ok);
    assert!(store.block(21).expect("read").is_none());
}

#[test]
fn an_in_memory_store_survives_dropping_the_state_that_wrote_it() {
    let store = Store::in_memory().expect("memory store");
    let state = State::from_genesis(&genesis()).expect("genesis");
    store.init_genesis(&state).expect("genesis");
    let disk = store.clone();
    drop(store);
    assert_eq!(disk.load_state().expect("load"), Some(state));
}

#[test]
fn rows_of_an_unknown_table_are_refused_on_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let state = State::from_genesis(&genesis()).expect("genesis");
    Store::open(&path).expect("open").init_genesis(&state).expect("genesis");
    {
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        {
            let definition: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("state");
            let mut table = txn.open_table(definition).expect("state table");
            table.insert([250u8, 1, 0].as_slice(), [0u8].as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let error = Store::open(&path).expect("reopen").load_state().expect_err("refused");
    assert!(error.to_string().contains("unknown table"), "{error}");
}

/// Applies a block of one transfer (sequence `seq`) and commits it with its one result rewritten to
/// stand for the transaction `hash` included again, applying or failing as `applied` says.
fn commit_as(store: &Store, state: &mut State, seq: u64, hash: gonka_primitives::Hash, applied: bool) {
    let alice = AccountKey::from_seed(b"alice");
    let to = AccountKey::from_seed(b"bob").address();
    let tx = Tx::new("store-test", &alice, seq, vec![Msg::Bank(BankMsg::Send { to, amount: Amount(5) })]);
    let txs = vec![Bytes(tx.to_bytes())];
    let header = state.next_header(ValidatorKey::from_secret_bytes([3; 32]).public_key(), seq * 1000, &txs);
    let block = Block { header, txs };
    let mut outcome = state.apply_block(&block, &|_| false).expect("applies");
    outcome.results[0].hash = hash;
    outcome.results[0].ok = applied;
    store.commit_block(state.height(), &block.to_bytes(), b"cert", &outcome).expect("commit");
}

#[test]
fn the_index_keeps_the_inclusion_that_applied_over_failed_ones() {
    let store = Store::in_memory().expect("memory store");
    let mut state = State::from_genesis(&genesis()).expect("genesis");
    store.init_genesis(&state).expect("genesis");
    let hash = gonka_primitives::Hash::digest(b"the same bytes, included four times");
    commit_as(&store, &mut state, 0, hash, false);
    assert_eq!(store.tx_location(&hash).expect("index"), Some((1, 0)), "a failure is indexed while alone");
    commit_as(&store, &mut state, 1, hash, false);
    assert_eq!(store.tx_location(&hash).expect("index"), Some((1, 0)), "the first failure stays");
    commit_as(&store, &mut state, 2, hash, true);
    assert_eq!(store.tx_location(&hash).expect("index"), Some((3, 0)), "the inclusion that applied wins");
    commit_as(&store, &mut state, 3, hash, false);
    assert_eq!(store.tx_location(&hash).expect("index"), Some((3, 0)), "a failed replay after it does not");
}
