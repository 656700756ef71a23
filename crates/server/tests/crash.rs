//! Crash test: 200 calls whose handoffs are in flight, the server process killed with
//! SIGKILL and restarted on the same data. Afterwards every fake holds exactly one record per
//! key: nothing lost, nothing twice.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialnexa_testkit::fakes::Fault;
use dialnexa_testkit::fakes::google_sheets::{self, FakeSheets};
use dialnexa_testkit::fakes::jira::FakeJira;
use dialnexa_testkit::fakes::webhook_receiver::FakeWebhookReceiver;
use dialnexa_testkit::fakes::zendesk::FakeZendesk;
use serde_json::{Value, json};

const CALLS: usize = 200;
const KEY: &str = "dnx_crash_test_admin_key";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dialnexa"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("DIALNEXA_ADMIN_KEY", KEY)
        .env("DIALNEXA_HANDOFF_LEASE_MS", "2000")
        .env("DIALNEXA_ANALYSIS_LEASE_MS", "2000")
        .env("DIALNEXA_HANDOFF_TIMEOUT_MS", "1000")
        .env("DIALNEXA_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts")
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.http.get(format!("{}/readyz", self.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not become ready");
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(KEY).json(&body).send().await.expect("post");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
    async fn get(&self, path: &str) -> Value {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(KEY).send().await.expect("get").json().await.expect("json")
    }
    /// Handoffs not yet settled.
    async fn open_handoffs(&self) -> usize {
        let mut n = 0;
        for st in ["planned", "sending", "retrying"] {
            n += self.get(&format!("/v1/handoffs?status={st}&limit=1000")).await["handoffs"].as_array().map(Vec::len).unwrap_or(0);
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let zd = FakeZendesk::start().await;
    let jira = FakeJira::start().await;
    let sheets = FakeSheets::start().await;
    let hook = FakeWebhookReceiver::start().await;
    // Slow destinations keep deliveries in flight when the process dies.
    for c in [&zd.control, &jira.control, &sheets.control, &hook.control] {
        c.down(Fault::Delay(Duration::from_millis(40)));
    }
    let port = free_port();
    let mut server = spawn(dir.path(), port);
    let api = Client { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{port}") };
    api.wait_ready().await;

    api.post(
        "/v1/integrations",
        json!({ "kind": "zendesk", "name": "desk", "config": { "subdomain": "acme", "email": zd.email, "api_token": zd.api_token, "base_url": zd.base_url } }),
    )
    .await;
    // Every call is a bug report: Jira gets a task (the rule needs a reproducible bug).
    api.post(
        "/v1/integrations",
        json!({ "kind": "jira", "name": "eng", "config": { "site": "https://acme.atlassian.net", "email": jira.email, "api_token": jira.api_token, "project_key": "OPS", "base_url": jira.base_url },
                "rules": [{ "name": "every bug", "when": { "category": ["bug", "incident"] }, "action": "create_issue",
                            "mapping": { "destination_object": "Jira task", "owner": "eng", "status": "To Do", "urgency": "from_analysis", "next_step": "fix", "record_url": "from_response" } }] }),
    )
    .await;
    api.post(
        "/v1/integrations",
        json!({ "kind": "google_sheets", "name": "log", "config": { "spreadsheet_id": google_sheets::SPREADSHEET_ID, "access_token": google_sheets::TOKEN, "base_url": sheets.base_url },
                "rules": [{ "name": "every call", "action": "append_row",
                            "mapping": { "destination_object": "row", "owner": "ops", "status": "open", "urgency": "from_analysis", "next_step": "review", "record_url": "from_response" } }] }),
    )
    .await;
    api.post("/v1/integrations", json!({ "kind": "webhook", "name": "hook", "config": { "url": hook.url(), "secret": hook.secret } })).await;
    let agent = api
        .post(
            "/v1/agents",
            json!({ "name": "scripted", "config": common::scripted_agent(&["Acme support, who is this?", "What's wrong?", "Thanks, we're on it.", "Bye."]) }),
        )
        .await;
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    api.post(&format!("/v1/agents/{agent_id}/publish"), json!({})).await;

    let mut call_ids = vec![];
    for i in 0..CALLS {
        let caller = json!([
            format!("Caller {i} from Company {i}, caller{i}@example.com"),
            format!("our orders API is down, request {i} fails with a 503, customers cannot pay"),
            "thanks"
        ]);
        let c = api.post("/v1/calls/test", json!({ "agent_id": agent_id, "caller_script": caller })).await;
        call_ids.push(c["call_id"].as_str().unwrap().to_owned());
    }
    // Kill it while deliveries are in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while zd.tickets().len() < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(api.open_handoffs().await > 0, "handoffs are still in flight when the process dies");
    server.kill().expect("SIGKILL");
    server.wait().ok();

    // Restart on the same data; expired leases are rescued, deliveries finish.
    for c in [&zd.control, &jira.control, &sheets.control, &hook.control] {
        c.up();
    }
    let mut server = spawn(dir.path(), port);
    api.wait_ready().await;
    // The 2 s leases asked for are the leases used: what the dead process held is rescued
    // within seconds (the 60 s default would leave it `sending` for a minute).
    let restarted = Instant::now();
    loop {
        let sending = api.get("/v1/handoffs?status=sending&limit=1000").await["handoffs"].as_array().map(Vec::len).unwrap_or(0);
        if sending == 0 {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(30), "{sending} handoffs still sending 30 s after the restart: the short lease was not used");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let open = api.open_handoffs().await;
        let pending = api.get("/v1/calls?limit=1000").await["calls"].as_array().map(|c| c.iter().filter(|c| c["category"].is_null()).count()).unwrap_or(CALLS);
        if open == 0 && pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still {open} handoffs open and {pending} calls unanalysed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill().ok();
    server.wait().ok();

    // Exactly one record per key in every destination.
    let tickets = zd.tickets();
    let issues = jira.issues();
    let rows = sheets.rows(google_sheets::SHEET);
    let deliveries = hook.deliveries();
    for id in &call_ids {
        assert_eq!(tickets.iter().filter(|t| t.external_id.as_deref() == Some(id.as_str())).count(), 1, "zendesk {id}");
        assert_eq!(issues.iter().filter(|i| i.labels.iter().any(|l| *l == format!("call-{id}"))).count(), 1, "jira {id}");
        assert_eq!(rows.iter().filter(|r| r.first().and_then(|v| v.as_str()) == Some(id.as_str())).count(), 1, "sheets {id}");
        assert_eq!(deliveries.iter().filter(|d| d.body["data"]["call_id"] == id.as_str()).count(), 1, "webhook {id}");
    }
    assert_eq!((tickets.len(), issues.len(), deliveries.len()), (CALLS, CALLS, CALLS));
    // Counted at the destinations as they received them, before any dedup of theirs. The
    // fake Jira keeps every issue it creates (one per call, above); a create request cut off
    // by the kill while the slow fake was still waiting never took effect and was sent again,
    // at most once per item in flight (one claimed batch). The webhook receiver saw each
    // delivery once, except those cut off by the kill itself, which Standard Webhooks
    // receivers drop by `webhook-id`.
    let jira_creates = jira.control.received().iter().filter(|r| r.method == "POST" && r.path.ends_with("/issue")).count();
    assert!((CALLS..=CALLS + 8).contains(&jira_creates), "{jira_creates} create requests for {CALLS} calls");
    let arrivals: usize = deliveries.iter().map(|d| hook.arrivals(&d.id)).sum();
    assert!(deliveries.iter().all(|d| hook.arrivals(&d.id) >= 1));
    assert!(arrivals <= CALLS + 8, "{} webhook deliveries arrived twice", arrivals - CALLS);
    eprintln!("crash test: {} duplicate webhook arrivals (same webhook-id) from deliveries cut off by SIGKILL", arrivals - CALLS);
}
