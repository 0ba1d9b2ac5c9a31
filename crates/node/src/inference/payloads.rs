//! Payload custody (DESIGN.md §4.1, `docs/spec/validation.md` §4.1): prompts and answers stay off
//! chain. The executor keeps each request body, the answer it sent, its tokens and their recorded top-k
//! logprobs and the seed for the validation window, serves them only to a host that proves it was
//! selected to validate the inference (its VRF proof) or, while a vote on it is open, to a host with
//! power in its epoch, and prunes them afterwards. The same store keeps the host's receipt outbox
//! (`gonka_host::receipts`), so a receipt survives a restart.
//!
//! `GET /v1/inferences/{id}/payload` with `X-Host-Address`, `X-Timestamp` (ns), `Authorization` (the
//! host's recoverable signature over [`super::payload_request_message`], which names this chain and this
//! serving host) and `X-Validation-Proof` (hex, for a selected validator): `401` for a bad or foreign
//! signature, `403` for a host neither selected nor voting, `409` for a signed request seen before,
//! `404` for an unknown or pruned id.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gonka_api::ApiError;
use gonka_primitives::{Address, Hash, VrfProof};
use redb::{Database, ReadableTable, TableDefinition};

use gonka_host::protocol::{
    HEADER_HOST, HEADER_TIMESTAMP, HEADER_VALIDATION_PROOF, decode_signature, payload_request_message,
};
use gonka_host::receipts::{Outbox, Pending};
use gonka_host::validation::may_read_payload;
pub use gonka_host::verdict::Payload;
use gonka_primitives::codec::Encode;

use super::InferenceService;
use super::auth::check_timestamp;

const PAYLOADS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("payloads");
const BY_HEIGHT: TableDefinition<'_, (u64, &[u8; 32]), ()> = TableDefinition::new("payloads_by_height");
/// Receipts not yet on chain, by (inference id, is a Finish): the outbox, kept across restarts.
const RECEIPTS: TableDefinition<'_, (&[u8; 32], bool), &[u8]> = TableDefinition::new("receipts");

/// The executor's payload store (`data/payloads.redb`).
pub struct PayloadStore {
    db: Database,
}

impl PayloadStore {
    /// Opens or creates the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<PayloadStore> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(PAYLOADS)?;
        txn.open_table(BY_HEIGHT)?;
        txn.open_table(RECEIPTS)?;
        txn.commit()?;
        Ok(PayloadStore { db })
    }

    /// Keeps `payload` under `id`.
    pub fn put(&self, id: &Hash, payload: &Payload) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(PAYLOADS)?.insert(&id.0, serde_json::to_vec(payload)?.as_slice())?;
            txn.open_table(BY_HEIGHT)?.insert((payload.stored_height, &id.0), ())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The payload of `id`, if kept.
    pub fn get(&self, id: &Hash) -> anyhow::Result<Option<Payload>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PAYLOADS)?;
        let Some(bytes) = table.get(&id.0)? else { return Ok(None) };
        Ok(Some(serde_json::from_slice(bytes.value())?))
    }

    /// Keeps a receipt until it is on chain.
    pub fn put_receipt(&self, key: (Hash, bool), pending: &Pending) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(RECEIPTS)?.insert((&key.0.0, key.1), pending.to_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Forgets receipts that are done.
    pub fn remove_receipts(&self, keys: &[(Hash, bool)]) -> anyhow::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(RECEIPTS)?;
            for (id, finish) in keys {
                table.remove((&id.0, *finish))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every receipt kept, as an outbox.
    pub fn outbox(&self) -> anyhow::Result<Outbox> {
        let txn = self.db.begin_read()?;
        let mut outbox = Outbox::new();
        for row in txn.open_table(RECEIPTS)?.iter()? {
            let (_, value) = row?;
            outbox.restore(gonka_primitives::codec::decode_exact(value.value(), 1 << 20)?);
        }
        Ok(outbox)
    }

    /// Drops every payload stored below `height`.
    pub fn prune(&self, height: u64) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut index = txn.open_table(BY_HEIGHT)?;
            let mut payloads = txn.open_table(PAYLOADS)?;
            let old: Vec<(u64, [u8; 32])> = index
                .range((0u64, &[0u8; 32])..(height, &[0u8; 32]))?
                .map(|row| row.map(|(key, _)| (key.value().0, *key.value().1)))
                .collect::<Result<_, _>>()?;
            for (stored, id) in old {
                index.remove((stored, &id))?;
                payloads.remove(&id)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// `GET /v1/inferences/{id}/payload`.
pub(crate) async fn serve_payload(
    State(service): State<Arc<InferenceService>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let refused = service.cheat == Some(super::cheat::Cheat::RefusePayload);
    let answer = if refused {
        Err((StatusCode::FORBIDDEN, ApiError::Unauthorized("this host keeps its payloads".into())))
    } else {
        payload_for_host(&service, &id, &headers)
    };
    match answer {
        Ok(payload) => {
            service.node_metrics.validation_payloads_served.inc();
            axum::Json(payload).into_response()
        }
        Err((status, error)) => {
            service.node_metrics.validation_payloads_refused.inc();
            let mut response = error.into_response();
            *response.status_mut() = status;
            response
        }
    }
}

fn payload_for_host(
    service: &InferenceService,
    id: &str,
    headers: &HeaderMap,
) -> Result<Payload, (StatusCode, ApiError)> {
    let unauthorized = |m: &str| (StatusCode::UNAUTHORIZED, ApiError::Unauthorized(m.into()));
    let id = Hash::from_hex(id)
        .ok_or((StatusCode::BAD_REQUEST, ApiError::invalid("id", "not an inference id")))?;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host: Address = text(HEADER_HOST)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unauthorized("missing X-Host-Address"))?;
    let timestamp_ns: u64 = text(HEADER_TIMESTAMP)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unauthorized("missing X-Timestamp"))?;
    let signature = text("authorization")
        .and_then(decode_signature)
        .ok_or_else(|| unauthorized("missing or malformed Authorization"))?;
    let proof = text(HEADER_VALIDATION_PROOF).map(VrfProof::from_hex).transpose().map_err(|_| {
        (StatusCode::BAD_REQUEST, ApiError::invalid(HEADER_VALIDATION_PROOF, "not a hex VRF proof"))
    })?;
    let me = service.account();
    let forget_before_ms = service.with_state(|s| {
        let message = payload_request_message(&s.meta.chain_id, &id, &me, timestamp_ns);
        let key = signature.recover(&message).map_err(|_| unauthorized("malformed Authorization"))?;
        check_timestamp(s, timestamp_ns).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let participant = s.hosts.participant(&host).ok_or_else(|| unauthorized("not a host"))?;
        if key != participant.account_key && key != participant.operational_key {
            return Err(unauthorized("the signature is not the host's"));
        }
        may_read_payload(s, &id, &host, proof.as_ref()).map_err(|reason| {
            (StatusCode::FORBIDDEN, ApiError::Unauthorized(format!("no access to this payload: {reason}")))
        })?;
        Ok(s.meta.time_ms.saturating_sub(s.params().inference.timestamp_expiration_ms))
    })?;
    // A signed payload request is good once: a captured one cannot be replayed while its time is in
    // the window (after that the time check refuses it).
    service
        .lock_payload_seen()
        .admit(Hash::digest(&signature.0), timestamp_ns / 1_000_000, forget_before_ms)
        .map_err(|e| match e {
            gonka_host::admission::ReplayError::Replay => (StatusCode::CONFLICT, ApiError::Replay),
            gonka_host::admission::ReplayError::Full => {
                (StatusCode::TOO_MANY_REQUESTS, ApiError::CapacityReached("the replay table is full".into()))
            }
        })?;
    match service.payloads.get(&id) {
        Ok(Some(payload)) => Ok(payload),
        Ok(None) => {
            Err((StatusCode::NOT_FOUND, ApiError::invalid("id", "no payload kept for this inference")))
        }
        Err(error) => Err((StatusCode::INTERNAL_SERVER_ERROR, ApiError::Unavailable(error.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(stored_height: u64) -> Payload {
        Payload {
            body: "{}".into(),
            completion: "hi".into(),
            completion_token_ids: vec![1, 2],
            recorded: Vec::new(),
            prompt_tokens: 3,
            cached_tokens: 0,
            completion_tokens: 2,
            seed: 7,
            response_hash: Hash::digest(b"hi"),
            logprobs_hash: Hash::digest(b"logprobs"),
            stored_height,
            more_choices: Vec::new(),
        }
    }

    #[test]
    fn payloads_are_kept_then_pruned_by_height() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = PayloadStore::open(&dir.path().join("payloads.redb")).expect("open");
        let (old, new) = (Hash::digest(b"old"), Hash::digest(b"new"));
        store.put(&old, &payload(5)).expect("put");
        store.put(&new, &payload(10)).expect("put");
        assert_eq!(store.get(&old).expect("get"), Some(payload(5)));
        store.prune(8).expect("prune");
        assert_eq!(store.get(&old).expect("get"), None);
        assert_eq!(store.get(&new).expect("get"), Some(payload(10)));
    }
}
