//! `GET /v1/calls/{call_id}/recording`: the WAV, with `Range` for players that seek.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;
use crate::state::AppState;

/// Bytes read from the file per piece of the answer.
const CHUNK: usize = 64 * 1024;

/// Parse one `bytes=` range against a length: (start, end inclusive).
pub fn parse_range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 {
                return None;
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, "") => (s.parse().ok()?, len - 1),
        (s, e) => (s.parse().ok()?, e.parse::<u64>().ok()?.min(len - 1)),
    };
    (start <= end && start < len).then_some((start, end))
}

/// The call's recording: both parties mixed, or `?channels=2` for one channel per party
/// (caller left, agent right). Honours `Range`.
#[utoipa::path(get, path = "/v1/calls/{call_id}/recording", tag = "calls", params(("channels" = Option<u8>, Query, description = "1 (mixed, default) or 2 (caller left, agent right)")),
    responses((status = 200, description = "audio/wav"), (status = 206, description = "the requested range"), (status = 404, description = "no recording"), (status = 416)))]
pub async fn recording(State(state): State<AppState>, Path(call_id): Path<String>, q: QueryPairs, headers: HeaderMap) -> ApiResult<Response> {
    q.only(&["channels"])?;
    let two = match q.get("channels") {
        None | Some("1") => false,
        Some("2") => true,
        Some(_) => return Err(ApiError::unprocessable("invalid_filter", "channels: 1 or 2")),
    };
    let detail = crate::api::calls::load_detail(&state, &call_id).await?;
    let rec = &detail.row.recording;
    let blob = if two { rec.blob_channels.as_ref() } else { rec.blob.as_ref() };
    let Some(blob) = blob.filter(|_| rec.status == "available") else {
        return Err(ApiError::not_found(&format!("recording (it is {}{})", rec.status, rec.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())));
    };
    let (mut file, len) = crate::blobs::BlobStore::new(&state.config.data_dir).open(blob).await.map_err(|e| {
        tracing::error!(call_id, error = %e, "recording blob unreadable");
        ApiError::internal()
    })?;
    let (status, start, end) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => match parse_range(r, len) {
            Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
            None => {
                let mut resp =
                    ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", format!("the recording has {len} bytes")).into_response();
                resp.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{len}")).map_err(|_| ApiError::internal())?);
                return Ok(resp);
            }
        },
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    // Only the bytes asked for are read, a piece at a time, as the client takes them.
    let count = if len == 0 { 0 } else { end - start + 1 };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| {
            tracing::error!(call_id, error = %e, "recording blob unreadable");
            ApiError::internal()
        })?;
    }
    let body = Body::from_stream(futures_util::stream::try_unfold((file.take(count), vec![0u8; CHUNK]), |(mut r, mut buf)| async move {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        let piece = axum::body::Bytes::copy_from_slice(&buf[..n]);
        Ok(Some((piece, (r, buf))))
    }));
    let mut resp = (status, body).into_response();
    if status == StatusCode::PARTIAL_CONTENT {
        resp.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")).map_err(|_| ApiError::internal())?);
    }
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    resp.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-3", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
