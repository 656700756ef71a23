//! The operational surface: OpenAPI, health, metrics, demo seeding and the CLI.

mod common;

use dialnexa_testkit::{DbBackend, TestApp, demo_agent_config};
use serde_json::json;

#[tokio::test]
async fn openapi_describes_the_whole_contract() {
    let app = TestApp::start(DbBackend::Sqlite).await;
    assert_eq!(app.get_anonymous("/v1/openapi.json").await.status, 401);
    let doc = app.get("/v1/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/agents", "post"),
        ("/v1/agents", "get"),
        ("/v1/agents/{agent_id}", "get"),
        ("/v1/agents/{agent_id}/draft", "put"),
        ("/v1/agents/{agent_id}/publish", "post"),
        ("/v1/agents/{agent_id}/versions/{version}", "get"),
        ("/v1/phone-numbers", "post"),
        ("/v1/phone-numbers", "get"),
        ("/v1/phone-numbers/{phone_number}", "get"),
        ("/v1/phone-numbers/{phone_number}", "patch"),
        ("/v1/phone-numbers/{phone_number}", "delete"),
        ("/v1/routes/resolve", "post"),
        ("/v1/calls/test", "post"),
        ("/v1/calls", "get"),
        ("/v1/calls/{call_id}", "get"),
        ("/v1/calls/export", "get"),
        ("/v1/calls/{call_id}/annotations", "post"),
        ("/v1/annotations", "get"),
        ("/v1/calls/{call_id}/analysis/rerun", "post"),
        ("/v1/calls/web", "post"),
        ("/v1/calls/outbound", "post"),
        ("/telephony/twilio/voice", "post"),
        ("/telephony/twilio/status", "post"),
        ("/telephony/twilio/media", "get"),
        ("/v1/calls/{call_id}/stream", "get"),
        ("/v1/calls/{call_id}/end", "post"),
        ("/v1/calls/{call_id}/recording", "get"),
        ("/v1/integrations", "post"),
        ("/v1/integrations", "get"),
        ("/v1/handoffs", "get"),
        ("/v1/handoffs/{handoff_id}", "get"),
        ("/v1/handoffs/{handoff_id}/retry", "post"),
        ("/v1/review-items", "get"),
        ("/v1/review-items/{review_id}/approve", "post"),
        ("/v1/review-items/{review_id}/reject", "post"),
        ("/v1/follow-ups", "get"),
        ("/v1/follow-ups/{follow_up_id}/complete", "post"),
        ("/v1/insights/recurring", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "OpenAPI lacks {method} {path}");
    }
    assert!(doc["components"]["schemas"]["CallOut"]["properties"]["transcript"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn health_readiness_and_metrics_need_no_key() {
    let app = TestApp::start(DbBackend::Sqlite).await;
    assert_eq!(app.get_anonymous("/healthz").await.status, 200);
    let ready = app.get_anonymous("/readyz").await;
    assert_eq!((ready.status, ready.json()["database"].as_str()), (200, Some("sqlite")));
    let agent_id = app.published_agent("Support line", &demo_agent_config()).await;
    app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": ["Ada"] })).await;
    let m = app.get_anonymous("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.text.contains("dialnexa_http_requests_total"), "{}", m.text);
    assert!(m.text.contains("dialnexa_calls_total"), "{}", m.text);
    assert!(!m.text.contains(&app.key), "no secrets in metrics");
}

#[tokio::test]
async fn demo_seeds_the_support_line_once() {
    let app = TestApp::builder().demo().start().await;
    let agents = app.get("/v1/agents").await.json();
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1);
    assert_eq!(agents["agents"][0]["name"], "Support line");
    assert_eq!(agents["agents"][0]["published_versions"], json!([1]));
    let n = app.get("/v1/phone-numbers/%2B15550100000").await.json();
    assert_eq!((n["inbound_agent_version"].as_u64(), n["outbound_agent_version"].as_u64()), (Some(1), Some(1)));
    let r = app.post("/v1/routes/resolve", &json!({ "entry_point": "inbound", "phone_number": "+15550100000" })).await.json();
    assert_eq!(r["explanation"], "+15550100000 is assigned inbound agent 'Support line' version 1");
    // Seeding again (a restart with --demo) creates nothing new.
    dialnexa_server::demo::seed(app.store.as_ref(), jiff_now()).await.unwrap();
    assert_eq!(app.get("/v1/agents").await.json()["agents"].as_array().unwrap().len(), 1);
}

fn jiff_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

#[tokio::test]
async fn cli_runs_a_test_call_and_prints_the_transcript() {
    let app = TestApp::builder().demo().start().await;
    let dir = app.data_dir().to_path_buf();
    let script = dir.join("caller.txt");
    std::fs::write(&script, "# a setup question\nGrace Hopper\ngrace@example.com\n\nInitech\nno\nhow do I set up webhooks\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialnexa"))
        .args(["call", "test", "--agent", "Support line", "--script"])
        .arg(&script)
        .arg("--database-url")
        .arg(app.database_url())
        .env("DIALNEXA_ADMIN_KEY", &app.key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("agent: Hi, you've reached Acme Cloud support."), "{stdout}");
    assert!(stdout.contains("caller: Grace Hopper"), "{stdout}");
    assert!(stdout.contains("ended: agent_hangup"), "{stdout}");
    assert!(stdout.contains("caller_email = \"grace@example.com\""), "{stdout}");
    // The call is in the history like any other.
    let calls = app.get("/v1/calls").await.json();
    assert_eq!(calls["calls"].as_array().unwrap().len(), 1);
    assert_eq!(calls["calls"][0]["disconnection_reason"], "agent_hangup");
    // A bad agent name is a plain error, not a panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialnexa"))
        .args(["call", "test", "--agent", "Nobody", "--script"])
        .arg(&script)
        .arg("--database-url")
        .arg(app.database_url())
        .env("DIALNEXA_ADMIN_KEY", &app.key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent named 'Nobody'"));
}

#[tokio::test]
async fn console_pages_need_a_session() {
    let app = TestApp::start(DbBackend::Sqlite).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for page in ["/console/calls", "/console/web-call?agent_id=agent_x", "/console/review", "/console"] {
        let r = http.get(app.url(page)).send().await.unwrap();
        assert!(r.status().is_redirection(), "{page}: {}", r.status());
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/console/login"), "{page}");
    }
    assert_eq!(http.get(app.url("/console/login")).send().await.unwrap().status(), 200);
    // A wrong key signs nobody in.
    let r = http.post(app.url("/console/login")).header("content-type", "application/x-www-form-urlencoded").body("api_key=dnx_wrong").send().await.unwrap();
    assert_eq!(r.headers()["location"], "/console/login?error=1");
    assert!(r.headers().get("set-cookie").is_none());
    // The right key sets an HttpOnly session cookie.
    let r = http
        .post(app.url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("api_key={}&next=%2Fconsole%2Fweb-call", app.key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/console/web-call");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = http.get(app.url("/console/web-call?agent_id=agent_x")).header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("getUserMedia") && html.contains("agent_x"), "the page uses the microphone");
    let other = http.get(app.url("/console/calls")).header("cookie", &session).send().await.unwrap();
    assert_eq!(other.status(), 404);
    // Joining with a call's token needs no session.
    let join = http.get(app.url("/console/web-call?call_id=call_1&token=wct_x")).send().await.unwrap();
    assert_eq!(join.status(), 200);
}
