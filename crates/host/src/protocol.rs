//! The off-chain protocol between developers, transfer agents, executors and validators
//! (`docs/spec/inference.md` §1–§2): what each signs and the HTTP headers that carry it.
//!
//! Headers (reference §4.1): `Authorization` carries the developer's recoverable signature (base64 of
//! 65 bytes; a `Bearer ` prefix is tolerated), `X-Requester-Address` the paying account, `X-Timestamp`
//! the request time in Unix nanoseconds, and `X-Transfer-Address` the TA the developer signed for
//! (optional at the TA: its own address by default). The TA adds `X-TA-Signature` and `X-Max-Tokens`
//! when it forwards.

use base64::Engine as _;
pub use gonka_chain::inference::forward_message;
use gonka_chain::inference::push_chain_id;
use gonka_primitives::{AccountKey, Address, Hash, RecoverableSignature};

/// The paying account.
pub const HEADER_REQUESTER: &str = "x-requester-address";
/// Request time, Unix nanoseconds.
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
/// The TA the developer signed for.
pub const HEADER_TRANSFER_ADDRESS: &str = "x-transfer-address";
/// The TA's signature over the forwarded request.
pub const HEADER_TA_SIGNATURE: &str = "x-ta-signature";
/// `max_tokens` the developer signed for (and the TA escrowed for, covered by its signature).
pub const HEADER_MAX_TOKENS: &str = "x-max-tokens";
/// The most the developer pays per token, ngonka (signed: `docs/spec/economy.md` §7).
pub const HEADER_MAX_PRICE: &str = "x-max-price";
/// Response header: the inference id (SHA-256 of the developer's signature).
pub const HEADER_INFERENCE_ID: &str = "x-inference-id";
/// Response header: the executor the chain drew.
pub const HEADER_EXECUTOR: &str = "x-executor-address";
/// The host asking for a payload.
pub const HEADER_HOST: &str = "x-host-address";
/// A payload request's selection proof: the requesting host's VRF proof for the inference, hex
/// (`docs/spec/validation.md` §4.1).
pub const HEADER_VALIDATION_PROOF: &str = "x-validation-proof";

const PAYLOAD_DOMAIN: &[u8] = b"gonka/payload-request/v2\0";
/// Domain of the message whose signature is a host's secret seed for an epoch.
const SEED_DOMAIN: &[u8] = b"gonka/epoch-seed/v1\0";

/// A signature as it travels in a header: base64 of its 65 bytes.
pub fn encode_signature(signature: &RecoverableSignature) -> String {
    base64::engine::general_purpose::STANDARD.encode(signature.0)
}

/// Parses a header signature (base64, optionally after `Bearer `).
pub fn decode_signature(text: &str) -> Option<RecoverableSignature> {
    let text = text.trim();
    let text = text.strip_prefix("Bearer ").unwrap_or(text).trim();
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    Some(RecoverableSignature(bytes.try_into().ok()?))
}

/// What a host signs to fetch a payload: domain ‖ chain id ‖ inference id ‖ the host asked (the
/// executor that serves it) ‖ timestamp (ns, big-endian). Naming the serving host and the chain keeps a
/// captured request from being replayed at another host or on another network; the serving host keeps
/// a replay cache for the rest.
pub fn payload_request_message(
    chain_id: &str,
    id: &Hash,
    serving_host: &Address,
    timestamp_ns: u64,
) -> Vec<u8> {
    let mut message = PAYLOAD_DOMAIN.to_vec();
    push_chain_id(&mut message, chain_id);
    message.extend_from_slice(&id.0);
    message.extend_from_slice(&serving_host.0);
    message.extend_from_slice(&timestamp_ns.to_be_bytes());
    message
}

/// The host's secret seed for `epoch`: its deterministic (RFC 6979) signature over the domain, chain
/// id and epoch, so it can be recomputed after a restart instead of stored. It is committed at the
/// start of PoC and revealed when the epoch's rewards are claimed.
pub fn epoch_seed(key: &AccountKey, chain_id: &str, epoch: u64) -> gonka_primitives::AccountSignature {
    let mut message = SEED_DOMAIN.to_vec();
    message.extend_from_slice(chain_id.as_bytes());
    message.push(0);
    message.extend_from_slice(&epoch.to_be_bytes());
    key.sign(&message)
}

/// The host's validation (VRF) key for `epoch` (`docs/spec/validation.md` §2): derived from its secret
/// epoch seed, so it is recomputed rather than stored, its public half is the PoC seed commitment, and
/// revealing the seed reveals the key.
pub fn validation_key(key: &AccountKey, chain_id: &str, epoch: u64) -> gonka_primitives::VrfKey {
    gonka_primitives::VrfKey::from_seed(&epoch_seed(key, chain_id, epoch).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_through_headers() {
        let signature = AccountKey::from_seed(b"dev").sign_recoverable(b"m");
        let text = encode_signature(&signature);
        assert_eq!(decode_signature(&text), Some(signature));
        assert_eq!(decode_signature(&format!("Bearer {text}")), Some(signature));
        assert_eq!(decode_signature("not base64"), None);
    }

    #[test]
    fn the_epoch_seed_is_the_same_after_a_restart_and_differs_per_epoch() {
        let key = AccountKey::from_seed(b"host");
        assert_eq!(epoch_seed(&key, "c", 1), epoch_seed(&key, "c", 1));
        assert_ne!(epoch_seed(&key, "c", 1), epoch_seed(&key, "c", 2));
    }
}
