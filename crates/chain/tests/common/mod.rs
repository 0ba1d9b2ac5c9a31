//! What the chain's scenario tests share: host keys, genesis participants, and applying a block of
//! transactions on top of a state.
#![allow(dead_code, unreachable_pub)]

pub mod net;

use gonka_chain::{Block, GenesisParticipant, Hold, State, Tx, TxResult};
use gonka_primitives::codec::{Bytes, Encode};
use gonka_primitives::{AccountKey, ValidatorKey};

/// The account key of test host `i`.
pub fn host(i: usize) -> AccountKey {
    AccountKey::from_seed(format!("host-{i}").as_bytes())
}

/// Host `i` as a genesis participant with `weight`: validator key `[i + 1; 32]`, API on port 9000 + i.
pub fn participant(i: usize, weight: u64) -> GenesisParticipant {
    GenesisParticipant {
        address: host(i).address(),
        account_key: host(i).public_key(),
        api_url: format!("http://127.0.0.1:{}", 9000 + i),
        validator_key: ValidatorKey::from_secret_bytes([u8::try_from(i + 1).expect("a small index"); 32])
            .public_key(),
        operational_key: AccountKey::from_seed(format!("ops-{i}").as_bytes()).public_key(),
        weight,
        collateral: gonka_primitives::Amount::ZERO,
        validation_key: None,
    }
}

/// Applies one block holding `txs`, one second after the previous block, proposed by validator key
/// `[1; 32]`; returns the transactions' results.
pub fn apply_block(state: &mut State, txs: &[Tx]) -> Vec<TxResult> {
    let txs: Vec<Bytes> = txs.iter().map(|t| Bytes(t.to_bytes())).collect();
    let proposer = ValidatorKey::from_secret_bytes([1; 32]).public_key();
    let header = state.next_header(proposer, state.meta.time_ms + 1000, &txs);
    state.apply_block(&Block { header, txs }, &|_| false).expect("a valid block").results
}

/// What `host` earned and was not paid yet: its fees of epochs not settled (`Owed`) and its settlement
/// waiting for a claim (`Settled`).
pub fn earned(state: &State, host: &gonka_primitives::Address) -> u128 {
    state
        .bank
        .holds()
        .iter()
        .filter(|(hold, _)| match hold {
            Hold::Owed(_, h) | Hold::Settled(h) => h == host,
            _ => false,
        })
        .map(|(_, amount)| amount.0)
        .sum()
}

/// The content hash of the test model `m`.
pub fn model() -> gonka_primitives::Hash {
    gonka_primitives::Hash::digest(b"model")
}

/// Devnet params (authority host 0) serving model `m` at `price` ngonka per token.
pub fn priced_params(price: u128) -> gonka_chain::Params {
    let mut params = gonka_chain::Params::devnet(host(0).address());
    params.inference.models.push(gonka_chain::ModelPrice {
        name: "m".into(),
        content_hash: model(),
        price_per_token: gonka_primitives::Amount(price),
        cached_price_ppm: gonka_chain::FULL_PRICE_PPM,
        validation: Default::default(),
    });
    // A fee the hosts' 1,000-ngonka test balances can pay a few times over.
    params.fees.per_message = gonka_primitives::Amount(FEE);
    // A fixed price, so scenarios count ngonka by hand; the pricing tests let it float.
    params.pricing.elasticity_ppm = 0;
    params
}

/// The per-message fee of ordinary transactions in the priced test params.
pub const FEE: u128 = 10;
