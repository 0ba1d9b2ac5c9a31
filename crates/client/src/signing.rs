//! The developer's side of a signed request (`docs/spec/inference.md` §1).

use std::time::{SystemTime, UNIX_EPOCH};

use gonka_chain::request_message;
use gonka_host::protocol::{HEADER_REQUESTER, HEADER_TIMESTAMP, HEADER_TRANSFER_ADDRESS, encode_signature};
use gonka_primitives::{AccountKey, Address, Hash};

/// The headers of a signed request: what a developer (or the gateway for it) sends to a TA.
pub fn signed_headers(
    key: &AccountKey,
    body: &[u8],
    transfer_agent: &Address,
    timestamp_ns: u64,
) -> Vec<(&'static str, String)> {
    let message = request_message(&Hash::digest(body), timestamp_ns, transfer_agent);
    vec![
        ("authorization", encode_signature(&key.sign_recoverable(&message))),
        (HEADER_REQUESTER, key.address().to_string()),
        (HEADER_TIMESTAMP, timestamp_ns.to_string()),
        (HEADER_TRANSFER_ADDRESS, transfer_agent.to_string()),
    ]
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
