//! A restart loses nothing; a replayed create with the same Idempotency-Key creates nothing.

mod common;

use dialnexa_testkit::{DbBackend, TestApp, demo_agent_config, on_both_backends};
use serde_json::json;

on_both_backends!(restart_loses_nothing, idempotent_creates);

async fn restart_loses_nothing(backend: DbBackend) {
    let app = TestApp::start(backend).await;
    let agent_id = app.published_agent("Support line", &demo_agent_config()).await;
    app.post("/v1/phone-numbers", &json!({ "phone_number": "+15550100000", "inbound_agent_id": agent_id, "inbound_agent_version": 1 })).await;
    let call = app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": common::setup_question() })).await.json();
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/calls/{call_id}/annotations"), &json!({ "kind": "note", "text": "kept" })).await;
    let before = (
        app.get(&format!("/v1/agents/{agent_id}")).await.json(),
        app.get("/v1/phone-numbers").await.json(),
        app.get(&format!("/v1/calls/{call_id}")).await.json(),
    );

    let app = app.restart().await;
    let after = (
        app.get(&format!("/v1/agents/{agent_id}")).await.json(),
        app.get("/v1/phone-numbers").await.json(),
        app.get(&format!("/v1/calls/{call_id}")).await.json(),
    );
    assert_eq!(before, after);
    assert_eq!(after.2["annotations"][0]["text"], "kept");
    // And it keeps working on the same data.
    assert_eq!(app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": ["Ada"] })).await.status, 201);
    assert_eq!(app.get("/v1/calls").await.json()["calls"].as_array().unwrap().len(), 2);
}

async fn idempotent_creates(backend: DbBackend) {
    let app = TestApp::start(backend).await;
    let agent_body = json!({ "name": "Support line", "config": demo_agent_config() });
    let first = app.post_idem("/v1/agents", &agent_body, "create-agent-1").await;
    assert_eq!(first.status, 201);
    let again = app.post_idem("/v1/agents", &agent_body, "create-agent-1").await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(again.json(), first.json(), "the replay answers what the first answered");
    assert_eq!(app.get("/v1/agents").await.json()["agents"].as_array().unwrap().len(), 1, "nothing new was created");
    // The same key with another body is refused.
    let other = app.post_idem("/v1/agents", &json!({ "name": "Other", "config": demo_agent_config() }), "create-agent-1").await;
    assert_eq!((other.status, other.code()), (409, "idempotency_key_reused".to_owned()));
    // A failed request keeps nothing: fixing the body and retrying with the key works.
    let bad = app.post_idem("/v1/agents", &json!({ "name": "", "config": demo_agent_config() }), "create-agent-2").await;
    assert_eq!(bad.status, 422);
    assert_eq!(app.post_idem("/v1/agents", &json!({ "name": "Second", "config": demo_agent_config() }), "create-agent-2").await.status, 201);

    let agent_id = first.json()["agent_id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/agents/{agent_id}/publish"), &json!({})).await;
    let call_body = json!({ "agent_id": agent_id, "caller_script": common::sev1_outage() });
    let c1 = app.post_idem("/v1/calls/test", &call_body, "call-1").await;
    let c2 = app.post_idem("/v1/calls/test", &call_body, "call-1").await;
    assert_eq!((c1.status, c2.status), (201, 201));
    assert_eq!(c1.json()["call_id"], c2.json()["call_id"]);
    assert_eq!(app.get("/v1/calls").await.json()["calls"].as_array().unwrap().len(), 1);
    let n = json!({ "phone_number": "+15550100000" });
    assert_eq!(app.post_idem("/v1/phone-numbers", &n, "num-1").await.status, 201);
    assert_eq!(app.post_idem("/v1/phone-numbers", &n, "num-1").await.status, 201, "a replay, not a 409 duplicate");
    // Replays survive a restart.
    let app = app.restart().await;
    let c3 = app.post_idem("/v1/calls/test", &call_body, "call-1").await;
    assert_eq!(c3.json()["call_id"], c1.json()["call_id"]);
    assert_eq!(app.get("/v1/calls").await.json()["calls"].as_array().unwrap().len(), 1);
    let too_long = app.post_idem("/v1/agents", &agent_body, &"k".repeat(256)).await;
    assert_eq!((too_long.status, too_long.code()), (400, "invalid_idempotency_key".to_owned()));
}

#[tokio::test]
async fn concurrent_replays_create_once() {
    let app = TestApp::start(DbBackend::Sqlite).await;
    let body = json!({ "name": "Racer", "config": demo_agent_config() });
    let reqs = (0..8).map(|_| app.post_idem("/v1/agents", &body, "race"));
    let answers = futures_util::future::join_all(reqs).await;
    let created: Vec<_> = answers.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty());
    assert!(
        answers.iter().all(|r| r.status == 201 || (r.status == 409 && r.code() == "idempotency_key_in_use")),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(app.get("/v1/agents").await.json()["agents"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_call_live_when_the_server_stopped_is_closed_and_explained_at_start() {
    let app = TestApp::builder()
        .config(|c| {
            c.asr = Some("wyoming://127.0.0.1:1".into());
            c.tts = Some("wyoming://127.0.0.1:1".into());
        })
        .start()
        .await;
    let agent = app.published_agent("Voice desk", &demo_agent_config()).await;
    let w = app.post("/v1/calls/web", &json!({ "agent_id": agent })).await.json();
    let call_id: dialnexa_core::CallId = w["call_id"].as_str().unwrap().parse().unwrap();
    // As if the browser had connected and the process then died.
    let ev = dialnexa_core::TimelineEvent { at: jiff::Timestamp::now(), offset_ms: 0, kind: "status_changed".into(), detail: "registered → ongoing".into() };
    app.store.set_call_status(&call_id, "ongoing", Some(jiff::Timestamp::now()), &ev).await.unwrap();
    let app = app.restart().await;
    let call = app.get(&format!("/v1/calls/{call_id}")).await.json();
    assert_eq!((call["status"].as_str(), call["disconnection_reason"].as_str()), (Some("error"), Some("error_internal")), "{call}");
    assert!(call["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "interrupted"), "{}", call["timeline"]);
}

#[tokio::test]
async fn a_start_removes_recording_tracks_left_by_calls_that_were_live() {
    let app = TestApp::start(DbBackend::Sqlite).await;
    let left = app.data_dir().join("blobs/staging/call_01a0000000000000000000000000dead");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("caller.wav"), b"RIFF....").unwrap();
    let app = app.restart().await;
    assert!(!left.exists(), "the staging tracks of a call that was live are removed at start");
    assert!(app.data_dir().join("blobs").exists());
}
