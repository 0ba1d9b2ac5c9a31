//! What the chain's scenario tests share: applying a block of transactions on top of a state.
#![allow(dead_code, unreachable_pub)]

use gonka_chain::{Block, State, Tx, TxResult};
use gonka_primitives::ValidatorKey;
use gonka_primitives::codec::{Bytes, Encode};

/// Applies one block holding `txs`, one second after the previous block, proposed by validator key
/// `[1; 32]`; returns the transactions' results.
pub fn apply_block(state: &mut State, txs: &[Tx]) -> Vec<TxResult> {
    let txs: Vec<Bytes> = txs.iter().map(|t| Bytes(t.to_bytes())).collect();
    let proposer = ValidatorKey::from_secret_bytes([1; 32]).public_key();
    let header = state.next_header(proposer, state.meta.time_ms + 1000, &txs);
    state.apply_block(&Block { header, txs }, &|_| false).expect("a valid block").results
}
