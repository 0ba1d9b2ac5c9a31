//! The developer's side of a signed request (`docs/spec/inference.md` §2).

use std::time::{SystemTime, UNIX_EPOCH};

use gonka_chain::{RequestTerms, request_message};
use gonka_host::protocol::{
    HEADER_MAX_PRICE, HEADER_MAX_TOKENS, HEADER_REQUESTER, HEADER_TIMESTAMP, HEADER_TRANSFER_ADDRESS,
    encode_signature,
};
use gonka_primitives::{AccountKey, Address, Amount, Hash};

/// Completion tokens a request reserves when its body names none (the API's own default).
pub const MAX_TOKENS_DEFAULT: u32 = 256;

/// What a developer decides about one request besides its body.
#[derive(Debug, Clone, Copy)]
pub struct RequestChoice<'a> {
    /// The network's chain id.
    pub chain_id: &'a str,
    /// The host the request goes to.
    pub transfer_agent: Address,
    /// Content hash of the model the body names.
    pub model: Hash,
    /// Completion tokens reserved (and paid for at most).
    pub max_tokens: u32,
    /// Request time, Unix nanoseconds.
    pub timestamp_ns: u64,
    /// The most paid per token, ngonka.
    pub max_price_per_token: Amount,
}

/// The headers of a signed request: what a developer (or the gateway for it) sends to a TA.
pub fn signed_headers(
    key: &AccountKey,
    body: &[u8],
    choice: &RequestChoice<'_>,
) -> Vec<(&'static str, String)> {
    let terms = RequestTerms {
        transfer_agent: choice.transfer_agent,
        body_hash: Hash::digest(body),
        body_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
        timestamp_ns: choice.timestamp_ns,
        model: choice.model,
        max_tokens: choice.max_tokens,
        max_price_per_token: choice.max_price_per_token,
    };
    let message = request_message(choice.chain_id, &terms);
    vec![
        ("authorization", encode_signature(&key.sign_recoverable(&message))),
        (HEADER_REQUESTER, key.address().to_string()),
        (HEADER_TIMESTAMP, choice.timestamp_ns.to_string()),
        (HEADER_TRANSFER_ADDRESS, choice.transfer_agent.to_string()),
        (HEADER_MAX_TOKENS, choice.max_tokens.to_string()),
        (HEADER_MAX_PRICE, choice.max_price_per_token.0.to_string()),
    ]
}

/// The `model` and the completion tokens a chat or completion body asks for (`max_completion_tokens`,
/// else `max_tokens`, else [`MAX_TOKENS_DEFAULT`], times its `n`); `None` for a body that is not a JSON object naming a
/// model (the TA answers it with the API's own 400).
pub fn body_choice(body: &[u8]) -> Option<(String, u32)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let model = value.get("model")?.as_str()?.to_string();
    // A text completion knows only `max_tokens`.
    let fields: &[&str] = match gonka_api::Endpoint::of(body) {
        gonka_api::Endpoint::Chat => &["max_completion_tokens", "max_tokens"],
        gonka_api::Endpoint::Completions => &["max_tokens"],
    };
    let asked = fields.iter().find_map(|field| value.get(*field).and_then(serde_json::Value::as_u64));
    let per_choice = asked.map_or(MAX_TOKENS_DEFAULT, |n| u32::try_from(n).unwrap_or(u32::MAX));
    // Several answers (`n`) share the reservation: each gets `per_choice` (docs/spec/inference.md §2.1).
    let choices = u32::try_from(gonka_api::body_choices(body)).unwrap_or(1);
    Some((model, per_choice.saturating_mul(choices)))
}

/// Headroom the gateway signs above a model's current price, percent: prices move at most a few
/// percent per block, so a request admitted now still fits its bound when its receipt lands.
pub const PRICE_HEADROOM_PERCENT: u128 = 25;

/// The bound signed for a model whose current price is `price`: `price × (100 + headroom) / 100`,
/// rounded up.
pub fn price_bound(price: Amount) -> Amount {
    Amount(price.0.saturating_mul(100 + PRICE_HEADROOM_PERCENT).div_ceil(100))
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
