//! `Idempotency-Key` on every POST: a replay with the same key and body answers what the
//! first request answered and changes nothing; the same key with another body is 409
//! `idempotency_key_reused`; a replay while the first is still running is 409
//! `idempotency_key_in_use`. Only 2xx answers are kept: a request that failed may be
//! retried with the same key. Keys are scoped to the API key, method and path, and kept
//! for 24 hours.
//!
//! Remaining risk, documented in docs/api.md: the record is written after the handler's own
//! transaction, so a crash between the two lets one replay run again.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dialnexa_store::IdempotencyBegin;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{MAX_BODY_BYTES, read_body};
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_CHARS: usize = 255;

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = key.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS).map(str::to_owned).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_idempotency_key", format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible characters"))
    })?;
    let caller = req.extensions().get::<Caller>().map(|c| c.key_id.clone()).unwrap_or_default();
    let scope = dialnexa_core::hash::sha256_hex(format!("{caller}\n{} {}\n{key}", req.method(), req.uri().path()).as_bytes());
    let (parts, body) = req.into_parts();
    let bytes = read_body(Request::from_parts(parts.clone(), body)).await?;
    let request_hash = dialnexa_core::hash::sha256_hex(&[parts.uri.query().unwrap_or("").as_bytes(), b"\n", &bytes].concat());

    match state.store.idempotency_begin(&scope, &request_hash, jiff::Timestamp::now()).await? {
        IdempotencyBegin::Replay { status, body } => {
            let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
        IdempotencyBegin::Mismatch => {
            Err(ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", "this Idempotency-Key was used with a different request"))
        }
        IdempotencyBegin::InProgress => {
            Err(ApiError::new(StatusCode::CONFLICT, "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed; retry shortly"))
        }
        IdempotencyBegin::New => {
            let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            if !resp.status().is_success() {
                state.store.idempotency_abort(&scope).await?;
                return Ok(resp);
            }
            let (rparts, rbody) = resp.into_parts();
            let Ok(rbytes) = axum::body::to_bytes(rbody, MAX_BODY_BYTES * 16).await else {
                state.store.idempotency_abort(&scope).await?;
                return Err(ApiError::internal());
            };
            state.store.idempotency_finish(&scope, rparts.status.as_u16(), &String::from_utf8_lossy(&rbytes)).await?;
            Ok(Response::from_parts(rparts, Body::from(rbytes)))
        }
    }
}
