//! API keys: `dnx_` + 32 random bytes in hex, shown once, stored as SHA-256 with a
//! four-character hint. High-entropy keys need no slow hash; lookups stay one index probe.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;

use crate::error::ApiError;
use crate::state::AppState;
use dialnexa_store::ApiKeyRecord;

pub const KEY_PREFIX: &str = "dnx_";

/// The authenticated caller, for handlers and the idempotency layer.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
}

pub fn hash_key(key: &str) -> String {
    dialnexa_core::hash::sha256_hex(key.as_bytes())
}

/// A new random key and the record that stores it (without the key).
pub fn generate_key(name: &str, now: jiff::Timestamp) -> (String, ApiKeyRecord) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let record = record_for(&key, name, now);
    (key, record)
}

pub fn record_for(key: &str, name: &str, now: jiff::Timestamp) -> ApiKeyRecord {
    let hash = hash_key(key);
    ApiKeyRecord {
        key_id: format!("key_{}", &hash[..24]),
        name: name.to_owned(),
        hint: key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect(),
        key_hash: hash,
        created_at: now,
        revoked_at: None,
    }
}

pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let key = header.strip_prefix("Bearer ").map(str::trim).filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Err(ApiError::unauthorized("send your API key as 'Authorization: Bearer <key>'"));
    };
    let record = state.store.find_api_key(&hash_key(key)).await?;
    match record {
        Some(r) if r.revoked_at.is_none() => {
            req.extensions_mut().insert(Caller { key_id: r.key_id });
            Ok(next.run(req).await)
        }
        _ => Err(ApiError::unauthorized("the API key is not valid")),
    }
}
