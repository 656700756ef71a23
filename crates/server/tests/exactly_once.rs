//! Exactly once under concurrency: two workers racing over the same queue, manual retries
//! racing deliveries, rate limits that obey `Retry-After` with a budget of their own, and
//! repeats that add to the existing record instead of hiding a new incident. SQLite and
//! PostgreSQL alike.

mod common;

use dialnexa_store::Backend;
use dialnexa_testkit::TestApp;
use dialnexa_testkit::fakes::Fault;
use dialnexa_testkit::fakes::slack::{self, FakeSlack};
use dialnexa_testkit::fakes::zendesk::FakeZendesk;
use serde_json::{Value, json};

const AGENT: [&str; 4] = ["Thanks for calling Acme support, who is this?", "What is going on?", "Thanks, we're on it.", "Goodbye."];

fn later(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)
}

fn zendesk_config(zd: &FakeZendesk) -> Value {
    json!({ "subdomain": "acme", "email": zd.email, "api_token": zd.api_token, "base_url": zd.base_url })
}

async fn app_with(backend: Backend, tweak: impl FnOnce(&mut dialnexa_server::Config) + Send + 'static) -> TestApp {
    TestApp::builder()
        .backend(backend)
        .config(|c| {
            c.handoff_timeout_ms = 2_000;
            tweak(c);
        })
        .start()
        .await
}

async fn place(app: &TestApp, agent: &str, caller: &[&str]) -> String {
    let r = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": caller })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["call_id"].as_str().unwrap().to_owned()
}

async fn handoff(app: &TestApp, call_id: &str, action: &str) -> Value {
    let list = app.get(&format!("/v1/handoffs?call_id={call_id}")).await.json();
    list["handoffs"].as_array().unwrap().iter().find(|h| h["action"] == action).cloned().unwrap_or_else(|| panic!("no {action} handoff: {list}"))
}

fn tickets_created(zd: &FakeZendesk) -> usize {
    zd.control.received().iter().filter(|r| r.method == "POST" && (r.path == "/api/v2/tickets" || r.path == "/api/v2/tickets.json")).count()
}

async fn two_workers_race(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    let zd = FakeZendesk::start().await;
    assert_eq!(app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": zendesk_config(&zd) })).await.status, 201);
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    const CALLS: usize = 12;
    for i in 0..CALLS {
        let who = format!("Caller{i} Person from Company{i}, caller{i}@company{i}.example");
        place(&app, &agent, &[&who, "our orders API is down, every request fails with a 503 since 2pm, customers cannot order", "thanks"]).await;
    }
    // Two nodes over one database: each claims, analyses and delivers what it gets.
    let mut other = app.state.clone();
    other.worker_id = "second-node".into();
    let (a, b) = tokio::join!(dialnexa_server::worker::drain(&app.state), dialnexa_server::worker::drain(&other));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a + b >= 2 * CALLS, "analysis and delivery of every call ran: {a} + {b}");
    assert_eq!(app.run_pending_work().await, 0);
    // Counted at the destination: one request that creates a ticket per call, no more.
    assert_eq!(tickets_created(&zd), CALLS, "{:?}", zd.tickets().iter().map(|t| t.subject.clone()).collect::<Vec<_>>());
    assert_eq!(zd.tickets().len(), CALLS);
    let sent = app.get("/v1/handoffs?status=sent&limit=1000").await.json();
    assert_eq!(sent["handoffs"].as_array().unwrap().len(), CALLS, "{sent}");
}

#[tokio::test]
async fn two_workers_race_and_each_ticket_is_created_once_sqlite() {
    two_workers_race(Backend::Sqlite).await;
}

#[tokio::test]
async fn two_workers_race_and_each_ticket_is_created_once_postgres() {
    two_workers_race(Backend::Postgres).await;
}

async fn manual_retry_never_adds_a_second_item(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    let zd = FakeZendesk::start().await;
    app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": zendesk_config(&zd) })).await;
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    let call_id = place(&app, &agent, &["Hal Jordan from Globex, hal@globex.example", "our orders API is down with 503 errors since 2pm", "thanks"]).await;
    zd.control.down(Fault::Status(503));
    app.run_pending_work().await;
    let h = handoff(&app, &call_id, "create_ticket").await;
    assert_eq!(h["status"], "retrying", "{h}");
    let id = h["handoff_id"].as_str().unwrap().to_owned();
    // Retried by hand twice while its next attempt is queued: it joins that attempt.
    for _ in 0..2 {
        let r = app.post(&format!("/v1/handoffs/{id}/retry"), &json!({})).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    zd.control.up();
    // Concurrent retries from two connections while nothing runs: still one item.
    let (path, empty) = (format!("/v1/handoffs/{id}/retry"), json!({}));
    let (r1, r2) = tokio::join!(app.post(&path, &empty), app.post(&path, &empty));
    assert!([r1.status, r2.status].iter().all(|s| *s == 202 || *s == 409), "{} {}", r1.text, r2.text);
    // A slow destination: the retry arrives while the attempt is being delivered.
    zd.control.fail_next(Fault::Delay(std::time::Duration::from_millis(1500)));
    let state = app.state.clone();
    let worker = tokio::spawn(async move { dialnexa_server::worker::drain(&state).await.unwrap() });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while handoff(&app, &call_id, "create_ticket").await["status"] != "sending" {
        assert!(std::time::Instant::now() < deadline, "the delivery never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = app.post(&format!("/v1/handoffs/{id}/retry"), &json!({})).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (409, Some("handoff_in_progress")), "{}", r.text);
    worker.await.unwrap();
    assert_eq!(app.run_pending_work_at(later(100_000)).await, 0, "no second item waits anywhere");
    let h = handoff(&app, &call_id, "create_ticket").await;
    assert_eq!(h["status"], "sent", "{h}");
    assert_eq!(tickets_created(&zd), 1);
    assert_eq!(zd.tickets().len(), 1);
}

#[tokio::test]
async fn a_manual_retry_joins_a_queued_attempt_and_is_refused_while_one_runs_sqlite() {
    manual_retry_never_adds_a_second_item(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_manual_retry_joins_a_queued_attempt_and_is_refused_while_one_runs_postgres() {
    manual_retry_never_adds_a_second_item(Backend::Postgres).await;
}

#[tokio::test]
async fn a_one_second_rate_limit_is_retried_after_one_second_and_spends_no_error_attempts() {
    let app = app_with(Backend::Sqlite, |c| c.handoff_max_attempts = 1).await;
    let sl = FakeSlack::start().await;
    let r = app
        .post(
            "/v1/integrations",
            &json!({ "kind": "slack", "name": "oncall", "config": { "bot_token": sl.bot_token, "channel": slack::ONCALL, "base_url": sl.base_url } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let agent = app.published_agent("demo", &dialnexa_testkit::demo_agent_config()).await;
    let r = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": common::sev1_outage() })).await;
    let call_id = r.json()["call_id"].as_str().unwrap().to_owned();
    sl.control.fail_times(2, Fault::RateLimited { retry_after_secs: 1 });
    let started = jiff::Timestamp::now();
    app.run_pending_work().await;
    let h = handoff(&app, &call_id, "post_message").await;
    assert_eq!(h["status"], "retrying", "{h}");
    let next: jiff::Timestamp = h["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next.as_millisecond() - started.as_millisecond();
    assert!(wait < 5_000, "an on-call alert waits the second the rate limit asks for, not the schedule's minutes: {wait} ms");
    app.run_pending_work_at(later(3)).await;
    app.run_pending_work_at(later(6)).await;
    let h = handoff(&app, &call_id, "post_message").await;
    assert_eq!(h["status"], "sent", "one error attempt allowed, two rate limits spent none of it: {h}");
    let attempts = h["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "every attempt kept, rate limits included: {h}");
    assert_eq!(attempts.iter().map(|a| a["rate_limited"].as_bool().unwrap()).collect::<Vec<_>>(), vec![true, true, false]);
    assert_eq!(attempts[0]["retry_after_ms"], 1000);
    assert_eq!(sl.messages().len(), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_maximum_is_capped_and_the_cap_recorded() {
    let app = app_with(Backend::Sqlite, |c| c.handoff_retry_after_max_secs = 120).await;
    let zd = FakeZendesk::start().await;
    app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": zendesk_config(&zd) })).await;
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    let call_id = place(&app, &agent, &["Hal Jordan from Globex, hal@globex.example", "our orders API is down with 503 errors since 2pm", "thanks"]).await;
    zd.control.down(Fault::RateLimited { retry_after_secs: 86_400 });
    let started = jiff::Timestamp::now();
    app.run_pending_work().await;
    let h = handoff(&app, &call_id, "create_ticket").await;
    let next: jiff::Timestamp = h["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next.as_second() - started.as_second();
    assert!((110..=130).contains(&wait), "capped at 120 s: {wait}");
    let a = &h["attempts"][0];
    assert_eq!(a["retry_after_ms"], 86_400_000);
    assert!(a["note"].as_str().unwrap().contains("capped at 120 s"), "{a}");
    zd.control.up();
    app.run_pending_work_at(later(130)).await;
    assert_eq!(handoff(&app, &call_id, "create_ticket").await["status"], "sent");
}

#[tokio::test]
async fn a_repeat_is_added_to_the_existing_ticket_and_a_new_incident_gets_its_own() {
    let app = app_with(Backend::Sqlite, |_| {}).await;
    let zd = FakeZendesk::start().await;
    app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": zendesk_config(&zd) })).await;
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    let who = "Hal Jordan from Globex, hal@globex.example";
    let first = place(&app, &agent, &[who, "our orders API is down, every request to /v1/orders fails with a 503 since 2pm", "thanks"]).await;
    app.run_pending_work().await;
    let h1 = handoff(&app, &first, "create_ticket").await;
    assert_eq!(h1["status"], "sent", "{h1}");
    // A different incident from the same customer: a new ticket, never "deduplicated".
    let other = place(&app, &agent, &[who, "now the login page is down, sign in fails with a 502 bad gateway on /v1/sessions", "thanks"]).await;
    app.run_pending_work().await;
    let h2 = handoff(&app, &other, "create_ticket").await;
    assert_eq!(h2["status"], "sent", "{h2}");
    assert_ne!(h2["external_id"], h1["external_id"], "its own ticket");
    assert_eq!(zd.tickets().len(), 2);
    // The same issue again: a comment on the first ticket, and the reason says so.
    let again = place(&app, &agent, &[who, "calling again, the orders API on /v1/orders still fails with 503 errors", "thanks"]).await;
    app.run_pending_work().await;
    let h3 = handoff(&app, &again, "create_ticket").await;
    assert_eq!(h3["status"], "sent", "{h3}");
    assert_eq!(h3["external_id"], h1["external_id"], "{h3}");
    let reason = h3["reason"].as_str().unwrap();
    assert!(reason.contains("repeat") && reason.contains(&first), "{reason}");
    assert_eq!(zd.tickets().len(), 2, "no third ticket");
    let ticket: u64 = h1["external_id"].as_str().unwrap().parse().unwrap();
    let comments = zd.comments(ticket);
    assert!(comments.iter().any(|c| c.body.contains(&again)), "the repeat is on the ticket: {comments:?}");
}

#[tokio::test]
async fn a_ticket_waits_for_enrichment_only_so_long_then_goes_without_it_and_says_so() {
    use dialnexa_testkit::fakes::opengraph_io::{self, FakeOpengraphIo};
    let app = app_with(Backend::Sqlite, |c| c.handoff_enrichment_wait_ms = 20_000).await;
    let zd = FakeZendesk::start().await;
    let og = FakeOpengraphIo::start().await;
    app.post("/v1/integrations", &json!({ "kind": "zendesk", "name": "desk", "config": zendesk_config(&zd) })).await;
    let r = app
        .post("/v1/integrations", &json!({ "kind": "opengraph_io", "name": "og", "config": { "app_id": opengraph_io::APP_ID, "base_url": og.base_url } }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let agent = app.published_agent("scripted", &common::scripted_agent(&AGENT)).await;
    // OpenGraph.io is down for good: its enrichment keeps retrying.
    og.control.down(Fault::Status(503));
    let call_id = place(
        &app,
        &agent,
        &["Hal Jordan from Globex, hal@globex.example", "our checkout page https://shop.globex.example/checkout is down with 503 errors since 2pm", "thanks"],
    )
    .await;
    app.run_pending_work().await;
    assert_eq!(handoff(&app, &call_id, "create_ticket").await["status"], "planned", "evidence first");
    app.run_pending_work_at(later(10)).await;
    assert_eq!(handoff(&app, &call_id, "create_ticket").await["status"], "planned", "still within the wait");
    assert!(zd.tickets().is_empty());
    app.run_pending_work_at(later(25)).await;
    let h = handoff(&app, &call_id, "create_ticket").await;
    assert_eq!(h["status"], "sent", "{h}");
    let reason = h["reason"].as_str().unwrap();
    assert!(reason.contains("sent without the opengraph_io") && reason.contains("after 20 s"), "{reason}");
    assert_eq!(zd.tickets().len(), 1);
    assert_ne!(handoff(&app, &call_id, "capture_screenshot").await["status"], "sent");
}
