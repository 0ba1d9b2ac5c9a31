//! Blocks: a header that chains to the previous block and the previous app hash, and the raw
//! transactions the proposer chose.

use gonka_primitives::codec::{Bytes, Encode};
use gonka_primitives::{Hash, ValidatorPublicKey, codec_struct};

/// A block header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// The chain id.
    pub chain_id: String,
    /// Height, one more than the previous block's (genesis is height 0 and has no block).
    pub height: u64,
    /// The proposer's clock in milliseconds since the Unix epoch; never below the previous block's.
    /// The state machine never reads a clock: this is the only time it knows.
    pub time_ms: u64,
    /// The proposer's consensus key.
    pub proposer: ValidatorPublicKey,
    /// Hash of the previous block's header (zero for height 1).
    pub previous_block_hash: Hash,
    /// App hash after the previous block (the genesis app hash for height 1). A node that computed a
    /// different one refuses the block, so state divergence stops consensus instead of spreading.
    pub previous_app_hash: Hash,
    /// SHA-256 of the encoded transaction list.
    pub txs_hash: Hash,
}
codec_struct!(Header {
    chain_id,
    height,
    time_ms,
    proposer,
    previous_block_hash,
    previous_app_hash,
    txs_hash
});

/// A block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// Encoded transactions, in the order they apply. Each may be invalid: it then fails in the block.
    pub txs: Vec<Bytes>,
}
codec_struct!(Block { header, txs });

impl Block {
    /// SHA-256 of the encoded transaction list, as committed in the header.
    pub fn txs_hash(txs: &[Bytes]) -> Hash {
        let mut out = Vec::new();
        txs.to_vec().encode(&mut out);
        Hash::digest(&out)
    }

    /// The block's id: SHA-256 of its header.
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.header.to_bytes())
    }
}
