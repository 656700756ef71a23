//! `GET /v1/calls/export`: every call a filter selects, one row each, streamed in keyset
//! pages through a small channel so memory stays flat however many calls there are.
//!
//! The status line is sent before the rows are read, so a failure after it cannot become an
//! error status: the body stream then ends with an error, hyper aborts the response (no final
//! zero-length chunk) and the client sees an incomplete body, never a clean but short file.

use std::collections::BTreeSet;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dialnexa_core::agent::AgentConfig;
use dialnexa_store::{CallCursor, CallFilter, CallRow, Store};
use serde_json::{Value, json};

use super::calls::{FILTERS, parse_filter};
use super::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;
use crate::state::AppState;

/// What the producer hands the body stream.
enum Piece {
    Rows(Bytes),
    /// Every row was sent.
    End,
    /// The export failed; the body must not end cleanly.
    Failed,
}

/// The body's error when the export did not finish.
fn incomplete() -> std::io::Error {
    std::io::Error::other("the export failed before its end; the download is incomplete")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

const CSV_COLUMNS: [&str; 20] = [
    "call_id",
    "entry_point",
    "direction",
    "from_number",
    "to_number",
    "agent_id",
    "agent_version",
    "config_hash",
    "status",
    "disconnection_reason",
    "created_at",
    "started_at",
    "ended_at",
    "duration_ms",
    "category",
    "summary",
    "batch_id",
    "workflow_id",
    "route_explanation",
    "metadata",
];

/// The field names the selected calls' agent versions declare (flow `collect` nodes).
pub async fn field_columns(store: &dyn Store, filter: &CallFilter) -> ApiResult<Vec<String>> {
    let mut names = BTreeSet::new();
    for (agent_id, version) in store.distinct_agent_versions(filter).await? {
        let Ok(v) = store.get_version(&agent_id, version).await else { continue };
        if let Ok(AgentConfig::Flow(flow)) = AgentConfig::parse(&v.config) {
            names.extend(flow.flow.collected_fields());
        }
    }
    Ok(names.into_iter().collect())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn field_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn csv_header(fields: &[String]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let cols: Vec<String> = CSV_COLUMNS.iter().map(|c| c.to_string()).chain(fields.iter().map(|f| format!("field.{f}"))).collect();
    let _ = w.write_record(&cols);
    w.into_inner().unwrap_or_default()
}

pub fn csv_rows(rows: &[CallRow], fields: &[String]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 256));
    for r in rows {
        let mut rec: Vec<String> = vec![
            r.call_id.to_string(),
            r.entry_point.clone(),
            r.direction.clone(),
            opt(&r.from_number),
            opt(&r.to_number),
            opt(&r.agent_id),
            opt(&r.agent_version),
            opt(&r.config_hash),
            r.status.clone(),
            opt(&r.disconnection_reason),
            rfc3339(r.created_at),
            opt(&r.started_at.map(rfc3339)),
            opt(&r.ended_at.map(rfc3339)),
            opt(&r.duration_ms),
            opt(&r.category),
            opt(&r.summary),
            opt(&r.batch_id),
            opt(&r.workflow_id),
            r.route.get("explanation").and_then(Value::as_str).unwrap_or_default().to_owned(),
            r.metadata.to_string(),
        ];
        rec.extend(fields.iter().map(|f| r.extracted_fields.get(f).map(|x| field_text(&x.value)).unwrap_or_default()));
        let _ = w.write_record(&rec);
    }
    w.into_inner().unwrap_or_default()
}

pub fn jsonl_rows(rows: &[CallRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * 512);
    for r in rows {
        let fields: serde_json::Map<String, Value> =
            r.extracted_fields.iter().map(|(k, f)| (k.clone(), json!({ "value": f.value, "confidence": f.confidence, "span": f.span }))).collect();
        let row = json!({
            "call_id": r.call_id,
            "entry_point": r.entry_point,
            "direction": r.direction,
            "from_number": r.from_number,
            "to_number": r.to_number,
            "agent_id": r.agent_id,
            "agent_version": r.agent_version,
            "config_hash": r.config_hash,
            "route": r.route,
            "status": r.status,
            "disconnection_reason": r.disconnection_reason,
            "created_at": rfc3339(r.created_at),
            "started_at": r.started_at.map(rfc3339),
            "ended_at": r.ended_at.map(rfc3339),
            "duration_ms": r.duration_ms,
            "category": r.category,
            "summary": r.summary,
            "batch_id": r.batch_id,
            "workflow_id": r.workflow_id,
            "extracted_fields": fields,
            "analysis": r.analysis,
            "transfer": r.transfer,
            "recording": r.recording,
            "metadata": r.metadata,
        });
        if serde_json::to_writer(&mut out, &row).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// Export the call history (CSV with a header row, or JSON Lines), streamed.
#[utoipa::path(get, path = "/v1/calls/export", tag = "calls",
    params(("format" = String, Query, description = "csv or jsonl"), ("entry_point" = Option<String>, Query), ("status" = Option<String>, Query), ("agent_id" = Option<String>, Query),
        ("agent_version" = Option<u32>, Query), ("phone_number" = Option<String>, Query), ("batch_id" = Option<String>, Query), ("workflow_id" = Option<String>, Query),
        ("started_after" = Option<String>, Query), ("started_before" = Option<String>, Query), ("category" = Option<String>, Query), ("handoff_status" = Option<String>, Query)),
    responses((status = 200, description = "text/csv or application/x-ndjson, streamed; CSV extracted fields are columns field.<name>"), (status = 422, description = "invalid_filter")))]
pub async fn export(State(state): State<AppState>, q: QueryPairs) -> ApiResult<Response> {
    let mut known = FILTERS.to_vec();
    known.push("format");
    q.only(&known)?;
    let format = match q.get("format") {
        Some("csv") | None => Format::Csv,
        Some("jsonl") => Format::Jsonl,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_filter",
                format!("format: unknown value '{}'; expected csv or jsonl", other.chars().take(20).collect::<String>()),
            )
            .with_details(json!({ "parameter": "format" })));
        }
    };
    let filter = parse_filter(&q)?;
    let fields = if format == Format::Csv { field_columns(state.store.as_ref(), &filter).await? } else { vec![] };
    let page_rows = state.config.export_page_rows.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        if format == Format::Csv && tx.send(Piece::Rows(Bytes::from(csv_header(&fields)))).await.is_err() {
            return;
        }
        let mut cursor: Option<CallCursor> = None;
        loop {
            let rows = match store.list_calls(&filter, cursor.as_ref(), page_rows).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "export failed mid-stream; aborting the response");
                    let _ = tx.send(Piece::Failed).await;
                    return;
                }
            };
            let Some(last) = rows.last() else { break };
            cursor = Some(CallCursor { created_at_ms: last.created_at.as_millisecond(), call_id: last.call_id.to_string() });
            let chunk = match format {
                Format::Csv => csv_rows(&rows, &fields),
                Format::Jsonl => jsonl_rows(&rows),
            };
            if tx.send(Piece::Rows(Bytes::from(chunk))).await.is_err() {
                return; // client went away
            }
            if rows.len() < page_rows as usize {
                break;
            }
        }
        let _ = tx.send(Piece::End).await;
    });
    // Rows until `End`; `Failed`, or a producer that vanished without `End` (a panic), is an
    // error item, which makes hyper abort the response instead of ending it.
    let stream = futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Piece::Rows(bytes)) => Some((Ok(bytes), Some(rx))),
            Some(Piece::End) => None,
            Some(Piece::Failed) | None => Some((Err(incomplete()), None)),
        }
    });
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    Ok((
        [(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"dialnexa-calls.{ext}\""))],
        Body::from_stream(stream),
    )
        .into_response())
}
