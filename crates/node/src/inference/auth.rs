//! Request signatures, their headers, the timestamp window and replay protection.
//!
//! Headers (reference §4.1): `Authorization` carries the developer's recoverable signature (base64 of
//! 65 bytes; a `Bearer ` prefix is tolerated), `X-Requester-Address` the paying account, `X-Timestamp`
//! the request time in Unix nanoseconds, and `X-Transfer-Address` the TA the developer signed for
//! (optional at the TA: its own address by default). The TA adds `X-TA-Signature` when it forwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use axum::http::HeaderMap;
use base64::Engine as _;
use gonka_api::ApiError;
use gonka_chain::{State, request_message};
use gonka_primitives::{Address, Hash, RecoverableSignature};

/// The paying account.
pub const HEADER_REQUESTER: &str = "x-requester-address";
/// Request time, Unix nanoseconds.
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
/// The TA the developer signed for.
pub const HEADER_TRANSFER_ADDRESS: &str = "x-transfer-address";
/// The TA's signature over the forwarded request.
pub const HEADER_TA_SIGNATURE: &str = "x-ta-signature";
/// `max_tokens` the TA escrowed for (covered by its signature).
pub const HEADER_MAX_TOKENS: &str = "x-max-tokens";
/// Response header: the inference id (SHA-256 of the developer's signature).
pub const HEADER_INFERENCE_ID: &str = "x-inference-id";
/// Response header: the executor the chain drew.
pub const HEADER_EXECUTOR: &str = "x-executor-address";
/// The host asking for a payload.
pub const HEADER_HOST: &str = "x-host-address";

const FORWARD_DOMAIN: &[u8] = b"gonka/ta-forward/v1\0";
const PAYLOAD_DOMAIN: &[u8] = b"gonka/payload-request/v1\0";

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

/// What the TA signs when it forwards a request: domain ‖ inference id ‖ executor ‖ max_tokens.
pub(crate) fn forward_message(id: &Hash, executor: &Address, max_tokens: u32) -> Vec<u8> {
    let mut message = FORWARD_DOMAIN.to_vec();
    message.extend_from_slice(&id.0);
    message.extend_from_slice(&executor.0);
    message.extend_from_slice(&max_tokens.to_be_bytes());
    message
}

/// What a host signs to fetch a payload: domain ‖ inference id ‖ timestamp (ns, big-endian).
pub fn payload_request_message(id: &Hash, timestamp_ns: u64) -> Vec<u8> {
    let mut message = PAYLOAD_DOMAIN.to_vec();
    message.extend_from_slice(&id.0);
    message.extend_from_slice(&timestamp_ns.to_be_bytes());
    message
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The developer's part of a request, from its headers and body.
pub(crate) struct DeveloperRequest {
    pub(crate) requester: Address,
    pub(crate) timestamp_ns: u64,
    pub(crate) signature: RecoverableSignature,
    pub(crate) body_hash: Hash,
    pub(crate) id: Hash,
}

impl DeveloperRequest {
    /// Reads the headers and checks that the signature over (body, time, `transfer_agent`) is the
    /// requester's: `401` when missing or wrong, `400` when a header is malformed.
    pub(crate) fn verify(
        headers: &HeaderMap,
        body: &[u8],
        transfer_agent: &Address,
    ) -> Result<Self, ApiError> {
        let signature = header(headers, "authorization")
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "Missing Authorization: sign the request with your account key (or use `gonka gateway`)."
                        .into(),
                )
            })
            .and_then(|text| {
                decode_signature(text).ok_or_else(|| {
                    ApiError::Unauthorized(
                        "Authorization must be the base64 of a 65-byte recoverable signature.".into(),
                    )
                })
            })?;
        let requester: Address = header(headers, HEADER_REQUESTER)
            .ok_or_else(|| ApiError::invalid("X-Requester-Address", "missing X-Requester-Address"))?
            .parse()
            .map_err(|e| ApiError::invalid("X-Requester-Address", format!("not a gonka address: {e}")))?;
        let timestamp_ns: u64 = header(headers, HEADER_TIMESTAMP)
            .ok_or_else(|| ApiError::invalid("X-Timestamp", "missing X-Timestamp (Unix nanoseconds)"))?
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid("X-Timestamp", "X-Timestamp must be Unix nanoseconds"))?;
        let body_hash = Hash::digest(body);
        let message = request_message(&body_hash, timestamp_ns, transfer_agent);
        let signer = signature
            .recover(&message)
            .map_err(|_| ApiError::Unauthorized("The signature is malformed.".into()))?;
        if signer.address() != requester {
            return Err(ApiError::Unauthorized(
                "The signature does not match X-Requester-Address for this body, timestamp and transfer agent.".into(),
            ));
        }
        Ok(DeveloperRequest {
            requester,
            timestamp_ns,
            id: gonka_chain::inference_id(&signature),
            signature,
            body_hash,
        })
    }
}

/// `400` unless `timestamp_ns` lies within the chain's accepted window around the last block time.
pub(crate) fn check_timestamp(state: &State, timestamp_ns: u64) -> Result<(), ApiError> {
    let params = &state.meta.params.inference;
    let now = state.meta.time_ms;
    let ms = timestamp_ns / 1_000_000;
    if ms + params.timestamp_expiration_ms < now {
        return Err(ApiError::invalid(
            "X-Timestamp",
            format!(
                "the request is {} ms older than the chain time; at most {} ms is accepted",
                now - ms,
                params.timestamp_expiration_ms
            ),
        ));
    }
    if ms > now + params.timestamp_advance_ms {
        return Err(ApiError::invalid(
            "X-Timestamp",
            format!(
                "the request is {} ms ahead of the chain time; at most {} ms is accepted",
                ms - now,
                params.timestamp_advance_ms
            ),
        ));
    }
    Ok(())
}

/// Signed requests already seen, by id, kept until their time leaves the accepted window (after which
/// the timestamp check refuses them anyway), with a bound on entries.
pub struct ReplayGuard {
    inner: Mutex<Seen>,
    capacity: usize,
}

#[derive(Default)]
struct Seen {
    by_id: BTreeMap<Hash, u64>,
    by_time: BTreeSet<(u64, Hash)>,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` requests.
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard { inner: Mutex::new(Seen::default()), capacity: capacity.max(1) }
    }

    /// Records `id` (request time `timestamp_ms`); `409` when it was seen, `429` when the table is full.
    /// Entries older than `forget_before_ms` are dropped first.
    pub(crate) fn admit(&self, id: Hash, timestamp_ms: u64, forget_before_ms: u64) -> Result<(), ApiError> {
        let mut seen = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(time, old)) = seen.by_time.first() {
            if time >= forget_before_ms {
                break;
            }
            seen.by_time.pop_first();
            seen.by_id.remove(&old);
        }
        if seen.by_id.contains_key(&id) {
            return Err(ApiError::Replay);
        }
        if seen.by_id.len() >= self.capacity {
            return Err(ApiError::CapacityReached("the replay table is full".into()));
        }
        seen.by_id.insert(id, timestamp_ms);
        seen.by_time.insert((timestamp_ms, id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_and_old_entries_forgotten() {
        let guard = ReplayGuard::new(2);
        let (a, b, c) = (Hash::digest(b"a"), Hash::digest(b"b"), Hash::digest(b"c"));
        assert!(guard.admit(a, 100, 0).is_ok());
        assert_eq!(guard.admit(a, 100, 0), Err(ApiError::Replay));
        assert!(guard.admit(b, 200, 0).is_ok());
        assert!(matches!(guard.admit(c, 300, 0), Err(ApiError::CapacityReached(_))));
        assert!(guard.admit(c, 300, 150).is_ok(), "a's slot is free once it is too old to replay");
    }

    #[test]
    fn signatures_round_trip_through_headers() {
        let signature = gonka_primitives::AccountKey::from_seed(b"dev").sign_recoverable(b"m");
        let text = encode_signature(&signature);
        assert_eq!(decode_signature(&text), Some(signature));
        assert_eq!(decode_signature(&format!("Bearer {text}")), Some(signature));
        assert_eq!(decode_signature("not base64"), None);
    }
}
