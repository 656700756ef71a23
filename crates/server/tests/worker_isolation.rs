//! Background work that never dies: a panicking item fails alone and goes dead with its
//! reason while every other call is analysed and handed off; `/readyz` tells when a node's
//! workers are not running; a slow item keeps its lease while it works.

mod common;

use std::sync::Arc;
use std::time::Duration;

use dialnexa_analysis::{Engine, EngineError, RulesEngine};
use dialnexa_core::analysis::{Analysis, AnalysisInput};
use dialnexa_store::NewWork;
use dialnexa_testkit::TestApp;
use dialnexa_testkit::fakes::zendesk::FakeZendesk;
use serde_json::json;

const AGENT: [&str; 4] = ["Thanks for calling Acme support, who is this?", "What is going on?", "Thanks, we're on it.", "Goodbye."];

/// The rules engine, except that it panics on a transcript that says "kaboom".
struct Panicky;

#[async_trait::async_trait]
impl Engine for Panicky {
    fn name(&self) -> &'static str {
        "rules"
    }
    async fn analyze(&self, input: &AnalysisInput) -> Result<Analysis, EngineError> {
        if input.transcript.iter().any(|t| t.text.contains("kaboom")) {
            panic!("index out of range while reading 'kaboom'");
        }
        RulesEngine.analyze(input).await
    }
}

fn later(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)
}

#[tokio::test]
async fn a_panicking_item_fails_alone_and_goes_dead_with_its_reason() {
    let app = TestApp::builder().config(|c| c.analysis_max_attempts = 3).start().await;
    let zd = FakeZendesk::start().await;
    let config = json!({ "subdomain": "acme", "email": zd.email, "api_token": zd.api_token, "base_url": zd.base_url });
    assert_eq!(app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": config })).await.status, 201);
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    let mut state = app.state.clone();
    state.engine = Arc::new(Panicky);
    let bad = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": ["Hal from Globex", "kaboom, the orders API is down", "bye"] })).await;
    let bad_id = bad.json()["call_id"].as_str().unwrap().to_owned();
    let mut good_ids = vec![];
    for i in 0..3 {
        let who = format!("Caller{i} from Company{i}, c{i}@company{i}.example");
        let r = app
            .post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": [who, "our orders API is down, every request fails with a 503", "thanks"] }))
            .await;
        good_ids.push(r.json()["call_id"].as_str().unwrap().to_owned());
    }
    // The same worker keeps going past the panic: every other call is analysed and sent.
    dialnexa_server::worker::drain(&state).await.expect("the worker survives");
    for id in &good_ids {
        let call = app.get(&format!("/v1/calls/{id}")).await.json();
        assert_eq!(call["analysis"]["status"], "done", "{call}");
        assert!(call["handoffs"].as_array().unwrap().iter().any(|h| h["status"] == "sent"), "{call}");
    }
    assert_eq!(zd.tickets().len(), 3);
    // The bad item is retried on its schedule, then dead with the panic as its reason.
    for t in [60, 600, 6000, 60_000] {
        dialnexa_server::worker::drain_at(&state, later(t)).await.expect("the worker survives");
    }
    let call = app.get(&format!("/v1/calls/{bad_id}")).await.json();
    assert_eq!(call["analysis"]["status"], "failed", "{call}");
    assert!(call["analysis"]["error"].as_str().unwrap().contains("panicked") && call["analysis"]["error"].as_str().unwrap().contains("kaboom"), "{call}");
    assert_eq!(dialnexa_server::worker::drain_at(&state, later(600_000)).await.unwrap(), 0, "dead: never claimed again");
    // A restart does not bring it back either, and the node is ready.
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn readyz_is_not_ready_while_the_workers_that_should_run_do_not() {
    let app = TestApp::builder().start().await;
    assert_eq!(app.get_anonymous("/readyz").await.status, 200, "workers are not this node's job here");
    // This node should run workers, and they are not running.
    app.state.workers.expect();
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("workers"), "{}", r.text);
    // Once they run, it is ready.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(dialnexa_server::worker::run(app.state.clone(), stop_rx));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.get_anonymous("/readyz").await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "the workers never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
    assert_eq!(app.get_anonymous("/readyz").await.status, 503, "stopped workers are not ready");
}

#[tokio::test]
async fn a_slow_item_keeps_its_lease_while_it_works_and_completes() {
    let app = TestApp::builder().start().await;
    let store = app.state.store.clone();
    let work = NewWork { kind: "slow".into(), payload: json!({}), dedup_key: None, max_attempts: 3, run_at: None };
    store.enqueue(&[work], app.state.clock.now()).await.unwrap();
    let lease = Duration::from_millis(300);
    let item = store.claim(&["slow"], "node-a", 1, lease, app.state.clock.now()).await.unwrap().remove(0);
    let state = app.state.clone();
    let held = item.clone();
    // Three leases long; another node tries to take it over all along.
    let worker = tokio::spawn(async move { dialnexa_server::worker::under_lease(&state, &held, lease, tokio::time::sleep(Duration::from_millis(900))).await });
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.claim(&["slow"], "node-b", 1, lease, app.state.clock.now()).await.unwrap().is_empty(), "the lease was renewed");
    }
    assert!(worker.await.unwrap().is_some(), "the work ran to its end under its lease");
    assert_eq!(store.complete(&item, app.state.clock.now()).await.unwrap(), dialnexa_store::Completion::Done);
    // Without renewal the lease runs out, another node takes the item, and the first cannot complete.
    let work = NewWork { kind: "slow2".into(), payload: json!({}), dedup_key: None, max_attempts: 3, run_at: None };
    store.enqueue(&[work], app.state.clock.now()).await.unwrap();
    let first = store.claim(&["slow2"], "node-a", 1, lease, app.state.clock.now()).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = store.claim(&["slow2"], "node-b", 1, lease, app.state.clock.now()).await.unwrap();
    assert_eq!(second.len(), 1, "rescued");
    assert_eq!(store.complete(&first, app.state.clock.now()).await.unwrap(), dialnexa_store::Completion::Stale);
    assert!(!store.heartbeat(&first, lease, app.state.clock.now()).await.unwrap(), "a lost lease cannot be renewed");
}
