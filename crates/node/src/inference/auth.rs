//! The HTTP edge of admission: reading a signed request's headers into a
//! [`gonka_host::admission::RequestClaim`], and the one mapping from the planner's refusals to
//! OpenAI-shaped errors. What is checked, and in which order, is `gonka_host::admission`'s.

use axum::http::HeaderMap;
use gonka_api::ApiError;
use gonka_chain::State;
use gonka_host::admission::{AdmissionError, ReplayError, RequestClaim};
use gonka_host::exposure::ExposureError;
use gonka_host::protocol::{HEADER_MAX_PRICE, HEADER_REQUESTER, HEADER_TIMESTAMP, decode_signature};
use gonka_primitives::{Address, Amount, RecoverableSignature};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The developer's part of a request, as its headers state it (nothing verified yet).
pub(crate) struct SignedHeaders {
    pub(crate) requester: Address,
    pub(crate) timestamp_ns: u64,
    pub(crate) signature: RecoverableSignature,
    pub(crate) max_price_per_token: Amount,
}

impl SignedHeaders {
    /// The claim these headers and `body` make for `transfer_agent`, with no model, prompt tokens or
    /// reserved tokens yet: each role fills in what it reads from the body, when it reads it.
    pub(crate) fn claim(&self, body: &[u8], transfer_agent: Address) -> RequestClaim {
        RequestClaim {
            requester: self.requester,
            signature: self.signature,
            timestamp_ns: self.timestamp_ns,
            body_hash: gonka_primitives::Hash::digest(body),
            body_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
            transfer_agent,
            model: String::new(),
            prompt_tokens: 0,
            max_tokens: 0,
            max_price_per_token: self.max_price_per_token,
        }
    }

    /// Reads `Authorization`, `X-Requester-Address`, `X-Timestamp` and `X-Max-Price`: `401` when the
    /// signature is missing or not 65 bytes of base64, `400` when another header is missing or
    /// malformed.
    pub(crate) fn parse(headers: &HeaderMap) -> Result<SignedHeaders, ApiError> {
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
        let max_price: u128 = header(headers, HEADER_MAX_PRICE)
            .ok_or_else(|| {
                ApiError::invalid(
                    "X-Max-Price",
                    "missing X-Max-Price (the most you pay per token, ngonka, signed)",
                )
            })?
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid("X-Max-Price", "X-Max-Price must be a whole number of ngonka"))?;
        Ok(SignedHeaders { requester, timestamp_ns, signature, max_price_per_token: Amount(max_price) })
    }
}

/// A refusal of the admission planner, as the client sees it.
pub(crate) fn refused(error: AdmissionError) -> ApiError {
    let message = error.to_string();
    match error {
        AdmissionError::BadSignature(_)
        | AdmissionError::UnknownTransferAgent(_)
        | AdmissionError::ForeignTaSignature => ApiError::Unauthorized(message),
        AdmissionError::WrongTransferAgent { .. } => ApiError::invalid("X-Transfer-Address", message),
        AdmissionError::AccountNotFound(address) => ApiError::AccountNotFound(address.to_string()),
        AdmissionError::StaleTimestamp { .. } => ApiError::invalid("X-Timestamp", message),
        AdmissionError::ModelNotFound(model) => ApiError::ModelNotFound { model, param: Some("model") },
        AdmissionError::MaxTokens { .. } => ApiError::invalid("max_tokens", message),
        AdmissionError::PromptTooLong { .. } | AdmissionError::BodyTooLarge { .. } => {
            ApiError::invalid("messages", message)
        }
        AdmissionError::InsufficientBalance { balance, needed } => {
            ApiError::InsufficientBalance { balance, needed }
        }
        AdmissionError::PriceAboveBound { .. } => ApiError::invalid("X-Max-Price", message),
        AdmissionError::NoExecutor => ApiError::Unavailable(message),
        AdmissionError::NotDrawn => ApiError::invalid("Authorization", message),
    }
}

/// A refusal of the executor's exposure book, as the TA sees it: 403 without collateral, 429 while its
/// share is taken by requests not yet on chain.
pub(crate) fn unvouched(error: ExposureError) -> ApiError {
    match error {
        ExposureError::NoCollateral(_) => ApiError::Unvouched(error.to_string()),
        ExposureError::Exceeded { .. } | ExposureError::Full(_) => {
            ApiError::CapacityReached(error.to_string())
        }
    }
}

/// A refusal of the replay guard, as the client sees it.
pub(crate) fn replayed(error: ReplayError) -> ApiError {
    match error {
        ReplayError::Replay => ApiError::Replay,
        ReplayError::Full => ApiError::CapacityReached(error.to_string()),
    }
}

/// `400` unless `timestamp_ns` lies within the chain's window (the same one the chain applies).
pub(crate) fn check_timestamp(state: &State, timestamp_ns: u64) -> Result<(), ApiError> {
    state
        .params()
        .inference
        .check_request_time(state.meta.time_ms, timestamp_ns)
        .map_err(|e| ApiError::invalid("X-Timestamp", e.to_string()))
}
