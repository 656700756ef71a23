//! `GET /v1/calls/export` when the database fails mid-stream: the 200 status line is already
//! out, so the response must be aborted (no final chunk) and the client must see an error
//! reading the body, never a clean file with fewer rows.
//!
//! The failure is real: after the first page has reached the client, the `calls` table is
//! renamed from outside the server (psql for PostgreSQL, the sqlite3 shell for SQLite), so the
//! export's next page query fails the way it would if the table went away.

use std::collections::BTreeMap;
use std::process::Command;

use dialnexa_core::CallId;
use dialnexa_store::{CallRow, NewCall, RecordingInfo};
use dialnexa_testkit::{DbBackend, TestApp};

const CALLS: usize = 240;
/// Rows per page: many pages, so the export is far from its end when the table goes.
const PAGE_ROWS: u32 = 4;
/// Each call carries this much metadata, so the rows cannot all sit in socket buffers
/// before the failure (about 15 MB in all).
const PAD_BYTES: usize = 64 * 1024;

fn row(i: usize) -> NewCall {
    let at = jiff::Timestamp::from_millisecond(1_700_000_000_000 + i as i64 * 1000).unwrap();
    NewCall {
        row: CallRow {
            call_id: CallId::generate(),
            entry_point: "test".into(),
            direction: "web".into(),
            from_number: None,
            to_number: None,
            agent_id: None,
            agent_version: None,
            config_hash: None,
            route: serde_json::json!({ "explanation": "export abort test" }),
            batch_id: None,
            workflow_id: None,
            status: "ended".into(),
            disconnection_reason: Some("user_hangup".into()),
            created_at: at,
            started_at: Some(at),
            ended_at: Some(at),
            duration_ms: Some(0),
            category: None,
            summary: None,
            extracted_fields: BTreeMap::new(),
            analysis: None,
            transfer: None,
            recording: RecordingInfo { status: "none".into(), url: None, duration_ms: None, reason: None, blob: None, blob_channels: None },
            audio_cache_hits: 0,
            audio_cache_misses: 0,
            metadata: serde_json::json!({ "i": i, "pad": "x".repeat(PAD_BYTES) }),
            timezone: None,
        },
        timeline: vec![],
        transcript: vec![],
    }
}

async fn app_with_calls(backend: DbBackend) -> TestApp {
    let app = TestApp::builder().backend(backend).config(|c| c.export_page_rows = PAGE_ROWS).start().await;
    let now = jiff::Timestamp::now();
    for i in 0..CALLS {
        app.store.insert_call(&row(i), &[], now).await.expect("insert call");
    }
    app
}

fn export(app: &TestApp, format: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(&format!("/v1/calls/export?format={format}"))).bearer_auth(&app.key)
}

/// Rows of an export body: JSON Lines, or CSV less its header (no field contains a newline).
fn rows_in(format: &str, body: &[u8]) -> usize {
    let lines = body.iter().filter(|b| **b == b'\n').count();
    if format == "csv" { lines.saturating_sub(1) } else { lines }
}

/// Make the `calls` table disappear from outside the server.
fn break_the_store(app: &TestApp) {
    let out = match app.backend {
        DbBackend::Postgres => Command::new("psql")
            .arg(app.database_url())
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", "ALTER TABLE calls RENAME TO calls_gone"])
            .output()
            .expect("psql runs (scripts/test installs the PostgreSQL client)"),
        DbBackend::Sqlite => Command::new("sqlite3")
            .args(["-bail", "-cmd", ".timeout 10000"])
            .arg(app.data_dir().join("dialnexa.db"))
            .arg("ALTER TABLE calls RENAME TO calls_gone;")
            .output()
            .expect("sqlite3 runs"),
    };
    assert!(out.status.success(), "could not rename the table: {}", String::from_utf8_lossy(&out.stderr));
}

async fn export_fails_mid_stream(backend: DbBackend, format: &str) {
    let app = app_with_calls(backend).await;

    // Control: while the store works, the whole export arrives.
    let body = export(&app, format).send().await.expect("export").bytes().await.expect("a whole body");
    assert_eq!(rows_in(format, &body), CALLS, "the full export");

    let mut resp = export(&app, format).send().await.expect("export starts");
    assert_eq!(resp.status(), 200);
    // The first page reaches the client (for CSV, after the header), then the table goes.
    let mut got = vec![];
    while rows_in(format, &got) == 0 {
        got.extend_from_slice(&resp.chunk().await.expect("the first page").expect("some rows"));
    }
    break_the_store(&app);
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let rows = rows_in(format, &got);
    match outcome {
        Ok(()) => panic!("the body ended cleanly with {rows} of {CALLS} rows after the store failed; it must end with an error"),
        Err(e) => {
            assert!(rows < CALLS, "all {CALLS} rows arrived before the failure: the test did not fail the store mid-export");
            eprintln!("{backend:?} {format}: {rows} of {CALLS} rows, then: {e}");
        }
    }
}

#[tokio::test]
async fn postgres_failure_mid_export_aborts_the_response() {
    export_fails_mid_stream(DbBackend::Postgres, "jsonl").await;
}

#[tokio::test]
async fn sqlite_failure_mid_export_aborts_the_response() {
    if Command::new("sqlite3").arg("-version").output().is_err() {
        eprintln!("skipped: no sqlite3 shell to rename the table with (apt-get install sqlite3); the PostgreSQL variant still runs");
        return;
    }
    export_fails_mid_stream(DbBackend::Sqlite, "csv").await;
}
