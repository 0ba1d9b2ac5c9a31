//! Transactions: a list of messages signed by an account's key (or its host's operational key), bound
//! to one chain id and one per-account sequence number so it can be included at most once.

use gonka_poc::Distance;

use crate::inference::SignedRequest;
use gonka_primitives::codec::{Decode, DecodeError, Encode, Reader};
use gonka_primitives::{
    AccountKey, AccountPublicKey, AccountSignature, Address, Amount, Hash, ValidatorPublicKey, codec_struct,
};
use serde::Serialize;

use crate::params::Params;

/// Domain separator prefixed to the body before signing, so a tx signature can never be replayed as
/// a signature over anything else.
pub const TX_SIGN_DOMAIN: &[u8] = b"gonka/tx/v1\0";

/// One state change a transaction asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// Move `amount` from the transaction's account to `to`.
    BankSend {
        /// Recipient.
        to: Address,
        /// Amount in ngonka, positive.
        amount: Amount,
    },
    /// Make the account a host: its public API URL, its consensus key, and the operational key that may
    /// sign routine transactions for it. Registering again updates all three.
    RegisterHost {
        /// Public API base URL (`http://` or `https://`).
        api_url: String,
        /// Ed25519 consensus key.
        validator_key: ValidatorPublicKey,
        /// Key allowed to sign routine messages on the account's behalf.
        operational_key: AccountPublicKey,
    },
    /// Mark the account as a developer (a consumer of inference).
    RegisterDeveloper,
    /// Replace all parameters; only the genesis authority may send it.
    UpdateParams {
        /// The new parameters, validated before they apply.
        params: Params,
    },
    /// Change a registered host's public API URL. Routine: the operational key may sign it.
    UpdateHostUrl {
        /// New public API base URL.
        api_url: String,
    },
    /// Commit to the host's secret seed for the epoch whose PoC is running (reference §2.4, §5.2): the
    /// SHA-256 of a seed revealed when the epoch's rewards are claimed. A participant without a
    /// commitment is not given weight. Routine.
    SubmitSeedCommit {
        /// The epoch whose PoC is running.
        epoch: u64,
        /// SHA-256 of the secret seed.
        commitment: Hash,
    },
    /// Valid nonces the host found in the PoC that started at `poc_start` (reference §3.7). Accepted in
    /// `[S+1, exchange deadline]`; every distance must be below `r_target`; nonces the host already
    /// claimed count once. Routine.
    SubmitPocBatch {
        /// The PoC start height `S`.
        poc_start: u64,
        /// The nonces and their claimed distances.
        nonces: Vec<PocNonce>,
    },
    /// A validator's verdict on one participant's claims (reference §3.8): how many of its sampled
    /// nonces mismatched. The sample is seeded by `sample_seed`, the validator's signature over
    /// [`gonka_poc::sample_seed_message`], which the chain verifies, so anyone can recompute the
    /// sample afterwards and nobody could predict it before. The chain applies the binomial test.
    /// Accepted in the validation window, once per (validator, participant). Routine.
    SubmitPocValidation {
        /// The PoC start height `S`.
        poc_start: u64,
        /// The participant whose claims were checked.
        participant: Address,
        /// Nonces recomputed: `min(validation_sample_size, distinct nonces claimed)`.
        sampled: u32,
        /// Sampled nonces that mismatched.
        mismatches: u32,
        /// The signer's signature over the sample-seed message.
        sample_seed: AccountSignature,
    },
    /// The transfer agent's receipt: the developer's signed request, the executor the chain draws for
    /// it, and the prompt's token count. Escrows `(prompt + max_tokens) × price` unless the Finish came
    /// first. Routine.
    StartInference {
        /// The signed request.
        request: SignedRequest,
        /// The assigned executor.
        executor: Address,
        /// Prompt tokens (chat template applied).
        prompt_tokens: u32,
    },
    /// The executor's receipt: token counts and the SHA-256 of the completion text. Routine.
    FinishInference {
        /// The signed request.
        request: SignedRequest,
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Completion tokens.
        completion_tokens: u32,
        /// SHA-256 of the completion text.
        response_hash: Hash,
    },
}

/// One claimed nonce of a PoC batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PocNonce {
    /// The nonce.
    pub nonce: u64,
    /// Its claimed distance.
    pub distance: Distance,
}
codec_struct!(PocNonce { nonce, distance });

impl Msg {
    /// Whether a host's operational key may sign this message for the host account. Moving funds,
    /// changing keys and governance always need the account key itself.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            Msg::UpdateHostUrl { .. }
                | Msg::SubmitSeedCommit { .. }
                | Msg::SubmitPocBatch { .. }
                | Msg::SubmitPocValidation { .. }
                | Msg::StartInference { .. }
                | Msg::FinishInference { .. }
        )
    }

    /// Stable snake_case name of the message type.
    pub fn name(&self) -> &'static str {
        match self {
            Msg::BankSend { .. } => "bank_send",
            Msg::RegisterHost { .. } => "register_host",
            Msg::RegisterDeveloper => "register_developer",
            Msg::UpdateParams { .. } => "update_params",
            Msg::UpdateHostUrl { .. } => "update_host_url",
            Msg::SubmitSeedCommit { .. } => "submit_seed_commit",
            Msg::SubmitPocBatch { .. } => "submit_poc_batch",
            Msg::SubmitPocValidation { .. } => "submit_poc_validation",
            Msg::StartInference { .. } => "start_inference",
            Msg::FinishInference { .. } => "finish_inference",
        }
    }
}

impl Encode for Msg {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Msg::BankSend { to, amount } => {
                out.push(0);
                to.encode(out);
                amount.encode(out);
            }
            Msg::RegisterHost { api_url, validator_key, operational_key } => {
                out.push(1);
                api_url.encode(out);
                validator_key.encode(out);
                operational_key.encode(out);
            }
            Msg::RegisterDeveloper => out.push(2),
            Msg::UpdateParams { params } => {
                out.push(3);
                params.encode(out);
            }
            Msg::UpdateHostUrl { api_url } => {
                out.push(4);
                api_url.encode(out);
            }
            Msg::SubmitSeedCommit { epoch, commitment } => {
                out.push(5);
                epoch.encode(out);
                commitment.encode(out);
            }
            Msg::SubmitPocBatch { poc_start, nonces } => {
                out.push(6);
                poc_start.encode(out);
                nonces.encode(out);
            }
            Msg::SubmitPocValidation { poc_start, participant, sampled, mismatches, sample_seed } => {
                out.push(7);
                poc_start.encode(out);
                participant.encode(out);
                sampled.encode(out);
                mismatches.encode(out);
                sample_seed.encode(out);
            }
            Msg::StartInference { request, executor, prompt_tokens } => {
                out.push(8);
                request.encode(out);
                executor.encode(out);
                prompt_tokens.encode(out);
            }
            Msg::FinishInference { request, prompt_tokens, completion_tokens, response_hash } => {
                out.push(9);
                request.encode(out);
                prompt_tokens.encode(out);
                completion_tokens.encode(out);
                response_hash.encode(out);
            }
        }
    }
}

impl Decode for Msg {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match u8::decode(reader)? {
            0 => Msg::BankSend { to: Decode::decode(reader)?, amount: Decode::decode(reader)? },
            1 => Msg::RegisterHost {
                api_url: Decode::decode(reader)?,
                validator_key: Decode::decode(reader)?,
                operational_key: Decode::decode(reader)?,
            },
            2 => Msg::RegisterDeveloper,
            3 => Msg::UpdateParams { params: Decode::decode(reader)? },
            4 => Msg::UpdateHostUrl { api_url: Decode::decode(reader)? },
            5 => {
                Msg::SubmitSeedCommit { epoch: Decode::decode(reader)?, commitment: Decode::decode(reader)? }
            }
            6 => Msg::SubmitPocBatch { poc_start: Decode::decode(reader)?, nonces: Decode::decode(reader)? },
            7 => Msg::SubmitPocValidation {
                poc_start: Decode::decode(reader)?,
                participant: Decode::decode(reader)?,
                sampled: Decode::decode(reader)?,
                mismatches: Decode::decode(reader)?,
                sample_seed: Decode::decode(reader)?,
            },
            8 => Msg::StartInference {
                request: Decode::decode(reader)?,
                executor: Decode::decode(reader)?,
                prompt_tokens: Decode::decode(reader)?,
            },
            9 => Msg::FinishInference {
                request: Decode::decode(reader)?,
                prompt_tokens: Decode::decode(reader)?,
                completion_tokens: Decode::decode(reader)?,
                response_hash: Decode::decode(reader)?,
            },
            tag => return Err(DecodeError::InvalidTag { what: "msg", tag }),
        })
    }
}

/// What the signer signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxBody {
    /// The chain this transaction is for; any other chain refuses it.
    pub chain_id: String,
    /// The account the transaction acts for (whose sequence and funds it uses).
    pub account: Address,
    /// The key that signed: the account's own key, or the host's operational key for routine messages.
    pub signer: AccountPublicKey,
    /// Must equal the account's sequence; it increases by one with every included transaction.
    pub sequence: u64,
    /// What to do, applied in order and atomically.
    pub messages: Vec<Msg>,
}
codec_struct!(TxBody { chain_id, account, signer, sequence, messages });

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    /// The signed content.
    pub body: TxBody,
    /// ECDSA signature over `TX_SIGN_DOMAIN ‖ encode(body)`.
    pub signature: AccountSignature,
}
codec_struct!(Tx { body, signature });

/// Why a transaction is refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Bytes are not a transaction, or exceed the size limit.
    #[error("malformed transaction: {0}")]
    Malformed(#[from] DecodeError),
    /// For another chain.
    #[error("wrong chain id: expected {expected}, got {got}")]
    WrongChainId {
        /// This chain's id.
        expected: String,
        /// The transaction's.
        got: String,
    },
    /// No messages, or more than the limit.
    #[error("a transaction must hold between 1 and {limit} messages, found {found}")]
    MessageCount {
        /// Messages found.
        found: usize,
        /// The limit.
        limit: u32,
    },
    /// The signature does not verify against the signer key.
    #[error("invalid signature")]
    InvalidSignature,
    /// The signer key may not act for the account (or not for these messages).
    #[error("signer {signer} may not sign for {account}{detail}")]
    Unauthorized {
        /// The signer's address.
        signer: Address,
        /// The account.
        account: Address,
        /// Extra context.
        detail: &'static str,
    },
    /// The account has never received funds.
    #[error("unknown account {0}")]
    UnknownAccount(Address),
    /// Sequence is not the account's next one (replay, or a gap).
    #[error("wrong sequence for {account}: expected {expected}, got {got}")]
    WrongSequence {
        /// The account.
        account: Address,
        /// Its next sequence.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// A message is invalid on its own (zero amount, bad URL...).
    #[error("invalid {msg} message: {reason}")]
    InvalidMessage {
        /// Message type.
        msg: &'static str,
        /// Why.
        reason: String,
    },
    /// Not enough funds.
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds {
        /// Available.
        balance: Amount,
        /// Needed.
        needed: Amount,
    },
    /// Only the genesis authority may do this.
    #[error("only the parameter authority may update params")]
    NotAuthority,
    /// The message needs a registered host.
    #[error("{0} is not a registered host")]
    NotAHost(Address),
    /// Another host already uses this validator key.
    #[error("validator key {0} is already registered by another host")]
    DuplicateValidatorKey(ValidatorPublicKey),
    /// Arithmetic overflow (a balance would exceed u128).
    #[error("amount overflow")]
    Overflow,
    /// A Proof-of-Compute message was refused.
    #[error(transparent)]
    Poc(#[from] crate::poc::PocError),
    /// An inference receipt was refused.
    #[error(transparent)]
    Inference(#[from] crate::inference::InferenceError),
}

impl TxBody {
    /// The bytes the signer signs.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let mut out = TX_SIGN_DOMAIN.to_vec();
        self.encode(&mut out);
        out
    }

    /// Signs the body with `key` (which must be `self.signer`).
    pub fn sign(self, key: &AccountKey) -> Tx {
        let signature = key.sign(&self.sign_bytes());
        Tx { body: self, signature }
    }
}

impl Tx {
    /// Hash identifying the transaction: SHA-256 of its encoding.
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.to_bytes())
    }

    /// Builds and signs a transaction for `key`'s own account.
    pub fn new(chain_id: &str, key: &AccountKey, sequence: u64, messages: Vec<Msg>) -> Tx {
        TxBody {
            chain_id: chain_id.to_string(),
            account: key.address(),
            signer: key.public_key(),
            sequence,
            messages,
        }
        .sign(key)
    }
}
