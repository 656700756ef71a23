//! Delivery under faults: a destination down for a while then back, a 429 with
//! `Retry-After`, bad credentials, a manual retry, and every attempt kept.

mod common;

use dialnexa_testkit::TestApp;
use dialnexa_testkit::fakes::Fault;
use dialnexa_testkit::fakes::zendesk::FakeZendesk;
use serde_json::{Value, json};

const AGENT: [&str; 4] = ["Thanks for calling Acme support, who is this?", "What is going on?", "Thanks, we're on it.", "Goodbye."];
const CALLER: [&str; 3] =
    ["Hal Jordan from Globex, hal@globex.example", "our orders API is down, every request fails with a 503 since 2pm, customers cannot order", "thanks"];

async fn setup(config: impl Fn(&FakeZendesk) -> Value) -> (TestApp, FakeZendesk, String) {
    let app = TestApp::builder().config(|c| c.handoff_timeout_ms = 1_000).start().await;
    let zd = FakeZendesk::start().await;
    let r = app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": config(&zd) })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    let call = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": CALLER })).await.json();
    (app, zd, call["call_id"].as_str().unwrap().to_owned())
}

fn good(zd: &FakeZendesk) -> Value {
    json!({ "subdomain": "acme", "email": zd.email, "api_token": zd.api_token, "base_url": zd.base_url })
}

async fn ticket_handoff(app: &TestApp, call_id: &str) -> Value {
    let list = app.get(&format!("/v1/handoffs?call_id={call_id}")).await.json();
    list["handoffs"].as_array().unwrap().iter().find(|h| h["action"] == "create_ticket").cloned().expect("a ticket handoff")
}

fn later(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)
}

#[tokio::test]
async fn a_destination_down_for_a_while_then_back_gets_everything_once() {
    let (app, zd, call_id) = setup(good).await;
    zd.control.down(Fault::Status(503));
    app.run_pending_work().await;
    let h = ticket_handoff(&app, &call_id).await;
    assert_eq!(h["status"], "retrying", "{h}");
    assert!(h["reason"].as_str().unwrap().contains("503"), "{h}");
    let first_retry: jiff::Timestamp = h["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert!(first_retry > jiff::Timestamp::now(), "backoff, not a hot loop");
    // Still down at the next two attempts.
    app.run_pending_work_at(later(10)).await;
    app.run_pending_work_at(later(400)).await;
    let h = ticket_handoff(&app, &call_id).await;
    assert_eq!((h["status"].as_str(), h["attempts"].as_array().unwrap().len()), (Some("retrying"), 3), "{h}");
    // Back up: the next attempt delivers, once.
    zd.control.up();
    app.run_pending_work_at(later(3000)).await;
    let h = ticket_handoff(&app, &call_id).await;
    assert_eq!(h["status"], "sent", "{h}");
    assert_eq!(zd.tickets().len(), 1);
    let attempts = h["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[0]["status_code"], 503);
    assert_eq!(attempts[3]["status_code"], 201);
    for a in attempts {
        assert!(a["latency_ms"].is_u64() && a["at"].is_string());
        let ex = a["exchanges"].to_string();
        assert!(!ex.contains(&zd.api_token), "no secret in attempts: {ex}");
    }
    // Nothing else is due, at any time.
    assert_eq!(app.run_pending_work_at(later(100_000)).await, 0);
    assert_eq!(zd.tickets().len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_obeyed() {
    let (app, zd, call_id) = setup(good).await;
    // The dedup search goes first; the create is rate limited.
    zd.control.fail_next(Fault::Delay(std::time::Duration::ZERO));
    zd.control.fail_next(Fault::RateLimited { retry_after_secs: 90 });
    app.run_pending_work().await;
    let h = ticket_handoff(&app, &call_id).await;
    assert_eq!(h["status"], "retrying", "{h}");
    let next: jiff::Timestamp = h["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next.as_second() - jiff::Timestamp::now().as_second();
    assert!((70..=130).contains(&wait), "at least 60 s after a 429, Retry-After 90 s honoured: {wait}");
    assert_eq!(app.run_pending_work_at(later(50)).await, 0, "not before Retry-After");
    app.run_pending_work_at(later(200)).await;
    assert_eq!(ticket_handoff(&app, &call_id).await["status"], "sent");
    assert_eq!(zd.tickets().len(), 1);
}

#[tokio::test]
async fn bad_credentials_fail_fast_with_a_clear_reason_and_no_retry_storm() {
    let (app, zd, call_id) = setup(|zd| json!({ "subdomain": "acme", "email": zd.email, "api_token": "wrong-token-SECRET", "base_url": zd.base_url })).await;
    app.run_pending_work().await;
    let h = ticket_handoff(&app, &call_id).await;
    assert_eq!(h["status"], "failed", "{h}");
    let reason = h["reason"].as_str().unwrap();
    assert!(reason.contains("401") || reason.to_lowercase().contains("credential"), "{reason}");
    assert!(!h.to_string().contains("wrong-token-SECRET"), "the secret is nowhere");
    assert_eq!(h["attempts"].as_array().unwrap().len(), 1);
    let requests = zd.control.received().len();
    assert_eq!(app.run_pending_work_at(later(100_000)).await, 0, "no retries");
    assert_eq!(zd.control.received().len(), requests, "no retry storm");
    // A person fixes nothing and retries by hand: it is sent again (and fails again, once).
    let r = app.post(&format!("/v1/handoffs/{}/retry", h["handoff_id"].as_str().unwrap()), &json!({})).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (202, Some("planned")), "{}", r.text);
    app.run_pending_work().await;
    let h = ticket_handoff(&app, &call_id).await;
    assert_eq!((h["status"].as_str(), h["attempts"].as_array().unwrap().len()), (Some("failed"), 2), "{h}");
    // A sent handoff cannot be "retried".
    let call = app.get(&format!("/v1/calls/{call_id}")).await.json();
    let webhookless = call["handoffs"].as_array().unwrap();
    assert!(webhookless.iter().all(|x| x["integration_kind"] == "zendesk"));
}

#[tokio::test]
async fn retries_run_out_and_the_handoff_is_dead() {
    let app = TestApp::builder().config(|c| {
        c.handoff_timeout_ms = 1_000;
        c.handoff_max_attempts = 3;
    });
    let app = app.start().await;
    let zd = FakeZendesk::start().await;
    app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": good(&zd) })).await;
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    let call = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": CALLER })).await.json();
    let call_id = call["call_id"].as_str().unwrap();
    zd.control.down(Fault::Delay(std::time::Duration::from_secs(2)));
    for t in [0, 100, 1000, 10_000] {
        app.run_pending_work_at(later(t)).await;
    }
    let h = ticket_handoff(&app, call_id).await;
    assert_eq!(h["status"], "dead", "{h}");
    assert!(h["reason"].as_str().unwrap().contains("Dead after 3 attempts"), "{h}");
    assert!(h["attempts"].as_array().unwrap().iter().all(|a| a["error"].as_str().is_some_and(|e| e.contains("timed out"))), "{h}");
    assert_eq!(app.get("/v1/calls?handoff_status=dead").await.json()["calls"].as_array().unwrap().len(), 1);
    // Back up, a manual retry delivers it.
    zd.control.up();
    let r = app.post(&format!("/v1/handoffs/{}/retry", h["handoff_id"].as_str().unwrap()), &json!({})).await;
    assert_eq!(r.status, 202);
    app.run_pending_work().await;
    assert_eq!(ticket_handoff(&app, call_id).await["status"], "sent");
    assert_eq!(zd.tickets().len(), 1);
    let again = app.post(&format!("/v1/handoffs/{}/retry", h["handoff_id"].as_str().unwrap()), &json!({})).await;
    assert_eq!((again.status, again.code()), (409, "handoff_not_retryable".to_owned()));
}
