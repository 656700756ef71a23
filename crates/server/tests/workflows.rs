//! The workflows of the two integration pages of the product brief, end to end: a test
//! call's transcript → analysis → handoffs → the exact requests the fakes received (and, for
//! skips, the reason stored on the call).

mod common;

use dialnexa_testkit::TestApp;
use dialnexa_testkit::fakes::datadog::{self, FakeDatadog};
use dialnexa_testkit::fakes::google_sheets::{self, FakeSheets};
use dialnexa_testkit::fakes::heartbeat::{self, FakeHeartbeat};
use dialnexa_testkit::fakes::hubspot::{self, FakeHubspot};
use dialnexa_testkit::fakes::jira::FakeJira;
use dialnexa_testkit::fakes::opengraph_io::{self, FakeOpengraphIo, Site};
use dialnexa_testkit::fakes::slack::{self, FakeSlack};
use dialnexa_testkit::fakes::webhook_receiver::FakeWebhookReceiver;
use dialnexa_testkit::fakes::zendesk::FakeZendesk;
use serde_json::{Value, json};

struct Stack {
    app: TestApp,
    og: FakeOpengraphIo,
    hb: FakeHeartbeat,
    owner: String,
    pairs: Option<Pairs>,
}

/// The integrations the OpenGraph.io page pairs with, plus a signed webhook.
struct Pairs {
    slack: FakeSlack,
    jira: FakeJira,
    zendesk: FakeZendesk,
    sheets: FakeSheets,
    hubspot: FakeHubspot,
    datadog: FakeDatadog,
    hook: FakeWebhookReceiver,
}

impl Stack {
    async fn start() -> Stack {
        let app = TestApp::builder().config(|c| c.public_url = Some("https://dialnexa.example".into())).start().await;
        let og = FakeOpengraphIo::start().await;
        let hb = FakeHeartbeat::start().await;
        let owner = hb.add_user("Olivia Owner", "olivia@acme.example");
        let manager = hb.add_user("Max Manager", "max@acme.example");
        let stack = Stack { app, og, hb, owner, pairs: None };
        stack.integration("opengraph_io", json!({ "app_id": opengraph_io::APP_ID, "base_url": stack.og.base_url })).await;
        stack
            .integration(
                "heartbeat",
                json!({ "api_key": heartbeat::API_KEY, "base_url": stack.hb.base_url, "owner_user_id": stack.owner, "manager_user_id": manager, "channel_id": "chan-ops", "group_id": "grp-support" }),
            )
            .await;
        stack
    }

    /// Every integration of the brief, each pointed at its fake.
    async fn full() -> Stack {
        let mut s = Stack::start().await;
        let p = Pairs {
            slack: FakeSlack::start().await,
            jira: FakeJira::start().await,
            zendesk: FakeZendesk::start().await,
            sheets: FakeSheets::start().await,
            hubspot: FakeHubspot::start().await,
            datadog: FakeDatadog::start().await,
            hook: FakeWebhookReceiver::start().await,
        };
        p.hubspot.seed_company("5001");
        s.integration("slack", json!({ "bot_token": p.slack.bot_token, "channel": slack::ONCALL, "base_url": p.slack.base_url })).await;
        s.integration("jira", json!({ "site": "https://acme.atlassian.net", "email": p.jira.email, "api_token": p.jira.api_token, "project_key": "OPS", "base_url": p.jira.base_url })).await;
        s.integration("zendesk", json!({ "subdomain": "acme", "email": p.zendesk.email, "api_token": p.zendesk.api_token, "base_url": p.zendesk.base_url }))
            .await;
        s.integration(
            "google_sheets",
            json!({ "spreadsheet_id": google_sheets::SPREADSHEET_ID, "access_token": google_sheets::TOKEN, "base_url": p.sheets.base_url }),
        )
        .await;
        s.integration("hubspot", json!({ "access_token": hubspot::TOKEN, "base_url": p.hubspot.base_url, "company_id": "5001" })).await;
        s.integration("datadog", json!({ "api_key": datadog::API_KEY, "app_key": datadog::APP_KEY, "base_url": p.datadog.base_url })).await;
        s.integration("webhook", json!({ "url": p.hook.url(), "secret": p.hook.secret })).await;
        s.pairs = Some(p);
        s
    }

    fn p(&self) -> &Pairs {
        self.pairs.as_ref().expect("Stack::full")
    }

    async fn integration(&self, kind: &str, config: Value) -> String {
        let r = self.app.post("/v1/integrations", &json!({ "kind": kind, "name": kind, "config": config })).await;
        assert_eq!(r.status, 201, "{kind}: {}", r.text);
        assert!(
            !r.text.contains("api_key") && !r.text.contains(heartbeat::API_KEY) && !r.text.contains(opengraph_io::APP_ID),
            "credentials never come back: {}",
            r.text
        );
        r.json()["integration_id"].as_str().unwrap().to_owned()
    }

    /// Place a test call with this exact transcript, then run analysis and every delivery.
    async fn call(&self, agent: &[&str], caller: &[&str]) -> Value {
        assert_eq!(agent.len(), caller.len() + 1, "the agent speaks first and last");
        let id = self.app.published_agent(&format!("scripted {}", uuid_like()), &common::scripted_agent(agent)).await;
        let r = self.app.post("/v1/calls/test", &json!({ "agent_id": id, "caller_script": caller, "timezone": "America/New_York" })).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let call_id = r.json()["call_id"].as_str().unwrap().to_owned();
        self.settle().await;
        self.app.get(&format!("/v1/calls/{call_id}")).await.json()
    }

    /// Run background work until nothing is due, stepping the clock past deferrals.
    async fn settle(&self) {
        let start = jiff::Timestamp::now();
        for i in 0..20 {
            let n = self.app.run_pending_work_at(start + jiff::SignedDuration::from_secs(3 * i)).await;
            if n == 0 && i > 2 {
                break;
            }
        }
    }
}

fn uuid_like() -> String {
    format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

fn handoff<'a>(call: &'a Value, kind: &str, action: &str) -> &'a Value {
    call["handoffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["integration_kind"] == kind && h["action"] == action)
        .unwrap_or_else(|| panic!("no {kind} {action} handoff: {}", call["handoffs"]))
}

fn status<'a>(call: &'a Value, kind: &str, action: &str) -> &'a str {
    handoff(call, kind, action)["status"].as_str().unwrap()
}

// ---- Heartbeat ----

#[tokio::test]
async fn caller_creates_an_operational_request_and_the_owner_is_alerted() {
    let s = Stack::start().await;
    s.hb.add_user("Priya Natarajan", "priya@initech.example");
    let call = s
        .call(
            &[
                "Thanks for calling Acme, who am I speaking with?",
                "How can I help?",
                "Which records do you need?",
                "Understood. Anything else?",
                "Thanks, goodbye.",
            ],
            &[
                "This is Priya Natarajan from Initech, priya@initech.example",
                "I need an export of all our call recordings from last quarter for an audit",
                "Everything from the support line, as a CSV with links, by March 20th",
                "No, that's all, thanks",
            ],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "operational_request", "{}", call["analysis"]["category_reasons"]);
    // Retrieve user first: the caller is matched and verified.
    let lookup = handoff(&call, "heartbeat", "retrieve_user");
    assert_eq!(lookup["status"], "sent", "{lookup}");
    assert_eq!(lookup["evidence"]["matched"], true);
    assert!(lookup["evidence"]["match_confidence"].as_f64().unwrap() >= 0.6);
    // Then the owner gets a direct message with the request, owner, next step and links.
    assert_eq!(status(&call, "heartbeat", "notify_owner"), "sent", "{}", handoff(&call, "heartbeat", "notify_owner"));
    let dms = s.hb.direct_messages();
    assert_eq!(dms.len(), 1);
    assert_eq!(dms[0].to, s.owner);
    let text = &dms[0].text;
    for want in ["export", "Initech", "Priya Natarajan", "https://dialnexa.example/v1/calls/", &format!("[call {}]", call["call_id"].as_str().unwrap())] {
        assert!(text.contains(want), "the DM lacks {want}: {text}");
    }
    let find = s.hb.control.received().into_iter().find(|r| r.path == "/v0/find/users").expect("looked the caller up");
    assert_eq!(find.query_param("email").as_deref(), Some("priya@initech.example"));
    assert_eq!(find.header("authorization").map(|h| h.starts_with("Bearer ")), Some(true));
    // Opengraph had nothing to look at: the skip says why.
    assert_eq!(status(&call, "opengraph_io", "capture_screenshot"), "skipped");
    assert!(handoff(&call, "opengraph_io", "capture_screenshot")["reason"].as_str().unwrap().contains("incidents and bugs"));
    assert!(s.og.calls().is_empty());
}

#[tokio::test]
async fn low_confidence_match_needs_review() {
    let s = Stack::start().await;
    // The caller's email belongs to a profile with another name: a shared inbox, or
    // someone else. A weak match.
    s.hb.add_user("Morgan Blake", "sam@rivera-logistics.example");
    let call = s
        .call(
            &["Thanks for calling Acme, who am I speaking with?", "How can I help?", "Noted. Anything else?", "Goodbye."],
            &[
                "Sam Rivera, sam@rivera-logistics.example",
                "I'd like to request a data export of all our customer records, please process the request by Friday at noon",
                "no",
            ],
        )
        .await;
    let lookup = handoff(&call, "heartbeat", "retrieve_user");
    assert_eq!(lookup["status"], "sent", "{lookup}");
    let notify = handoff(&call, "heartbeat", "notify_owner");
    assert_eq!(notify["status"], "held_for_review", "{notify}");
    assert!(s.hb.direct_messages().is_empty(), "nothing is sent to an owner on a weak match");
    let reviews = s.app.get("/v1/review-items?status=open").await.json();
    let items = reviews["review_items"].as_array().unwrap();
    assert!(!items.is_empty(), "{reviews}");
    let item = items.iter().find(|r| r["handoff_id"] == notify["handoff_id"]).expect("a review item for the held handoff");
    assert_eq!(item["reason"], "low_confidence_match", "{item}");
    assert!(item["detail"].as_str().unwrap().contains("confidence"), "{item}");
    // A person approves: the message goes out once.
    let id = item["review_id"].as_str().unwrap();
    let r = s.app.post(&format!("/v1/review-items/{id}/approve"), &json!({ "note": "confirmed by phone" })).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("approved")), "{}", r.text);
    assert_eq!(s.app.post(&format!("/v1/review-items/{id}/approve"), &json!({})).await.status, 409, "decided once");
    s.settle().await;
    let after = s.app.get(&format!("/v1/handoffs/{}", notify["handoff_id"].as_str().unwrap())).await.json();
    assert_eq!(after["status"], "sent", "{after}");
    assert_eq!(s.hb.direct_messages().len(), 1);
}

#[tokio::test]
async fn customer_promise_is_tracked_and_closed() {
    let s = Stack::start().await;
    let call = s
        .call(
            &[
                "Thanks for calling Acme billing, who is this?",
                "How can I help?",
                "I see it. I'll email you a corrected invoice by Friday at 5pm and our billing team will confirm the credit. Does that work?",
                "Great, talk soon.",
            ],
            &["Dana Whitfield from Copper Canyon, dana@coppercanyon.example", "invoice INV-2041 charged us twice for the same seats", "yes that works, thanks"],
        )
        .await;
    let fu = s.app.get("/v1/follow-ups?kind=promise&status=open").await.json();
    let promises = fu["follow_ups"].as_array().unwrap();
    assert_eq!(promises.len(), 1, "{fu}");
    assert_eq!(promises[0]["call_id"], call["call_id"]);
    assert!(promises[0]["detail"]["what"].as_str().unwrap().to_lowercase().contains("invoice"), "{}", promises[0]);
    // The promise is tracked in a channel thread (and the billing request waits for review:
    // it changes money).
    assert_eq!(status(&call, "heartbeat", "post_thread"), "sent", "{}", handoff(&call, "heartbeat", "post_thread"));
    let thread = s.hb.channel_messages();
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].channel_id, "chan-ops");
    assert_eq!(status(&call, "heartbeat", "notify_owner"), "held_for_review");
    // Closing the loop.
    let id = promises[0]["follow_up_id"].as_str().unwrap();
    let done = s.app.post(&format!("/v1/follow-ups/{id}/complete"), &json!({ "note": "credit note sent" })).await;
    assert_eq!((done.status, done.json()["status"].as_str()), (200, Some("done")));
    assert_eq!(s.app.post(&format!("/v1/follow-ups/{id}/complete"), &json!({})).await.status, 409);
    assert_eq!(s.app.get("/v1/follow-ups?kind=promise&status=open").await.json()["follow_ups"].as_array().unwrap().len(), 0);
    // Closing the loop tells the owner, once.
    s.settle().await;
    let dms = s.hb.direct_messages();
    assert_eq!(dms.len(), 1, "{dms:?}");
    assert_eq!(dms[0].to, s.owner);
    assert!(dms[0].text.contains("Promise kept") && dms[0].text.contains("credit note sent"), "{}", dms[0].text);
    let after = s.app.get(&format!("/v1/calls/{}", call["call_id"].as_str().unwrap())).await.json();
    let kept = after["handoffs"].as_array().unwrap().iter().find(|h| h["rule"] == "Close the loop on a kept promise").expect("a close-the-loop handoff");
    assert_eq!(kept["status"], "sent", "{kept}");
}

#[tokio::test]
async fn recurring_issue_is_categorized() {
    let s = Stack::start().await;
    let agent = ["Thanks for calling Acme, who is this?", "What's going on?", "I'm sorry about that. Anything else?", "Goodbye."];
    let mut ids = vec![];
    for name in ["Lee Chen from Umbrella", "Ana Diaz from Umbrella"] {
        let call = s
            .call(&agent, &[name, "this is the third time I'm calling: the webhooks API keeps timing out when we send orders, it blocks our checkout", "no"])
            .await;
        ids.push(call["call_id"].as_str().unwrap().to_owned());
        let thread = handoff(&call, "heartbeat", "post_thread");
        if ids.len() == 1 {
            assert_eq!(thread["status"], "sent", "{thread}");
        } else {
            // Same customer, same category: the open thread is found, nothing new is posted.
            assert_eq!(thread["status"], "deduplicated", "{thread}");
            assert!(thread["reason"].as_str().unwrap().contains(&ids[0]), "{thread}");
        }
    }
    let insights = s.app.get("/v1/insights/recurring").await.json();
    let top = &insights["reasons"][0];
    assert_eq!(top["count"], 2, "{insights}");
    for id in &ids {
        assert!(top["example_call_ids"].as_array().unwrap().iter().any(|c| c == id.as_str()));
    }
    assert_eq!(s.hb.channel_messages().len(), 1);
}

#[tokio::test]
async fn callback_uses_get_events_and_becomes_a_follow_up() {
    let s = Stack::start().await;
    s.hb.add_event("Quarterly maintenance", "2030-03-12T14:00:00.000Z", &["grp-support"]);
    let call = s
        .call(
            &["Thanks for calling Acme, who am I speaking with?", "How can I help?", "Of course. What number should we use?", "Noted. Goodbye."],
            &[
                "Hi, Tom Baker from Wayne Enterprises",
                "can someone call me back tomorrow at 10am eastern about our renewal, I'm driving now",
                "call me on 415 555 0199",
            ],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "callback_request", "{}", call["analysis"]["category_reasons"]);
    let events = handoff(&call, "heartbeat", "get_events");
    assert_eq!(events["status"], "sent", "{events}");
    assert!(s.hb.control.received().iter().any(|r| r.path == "/v0/events" && r.query_param("groupID").as_deref() == Some("grp-support")));
    let fu = s.app.get("/v1/follow-ups?kind=callback").await.json();
    let cb = &fu["follow_ups"][0];
    assert_eq!(cb["detail"]["phone"], "+14155550199", "{fu}");
    assert_eq!(cb["detail"]["attempt_count"], 0);
    assert!(cb["detail"]["preferred_time"].is_string() || cb["detail"]["preferred_time_text"].is_string());
    // The owner is told about the callback.
    assert_eq!(status(&call, "heartbeat", "notify_owner"), "sent");
}

// ---- OpenGraph.io ----

#[tokio::test]
async fn capture_screenshot_and_site_info_become_evidence() {
    let s = Stack::start().await;
    s.og.add_site("https://shop.globex.example/checkout", Site::new("Globex checkout", "Pay for your order"));
    let call = s
        .call(
            &["Thanks for calling Acme, who is this?", "What is happening?", "Which page?", "Understood, we are on it.", "Goodbye."],
            &[
                "Hal Jordan from Globex",
                "our checkout is down for everyone since 2pm, customers get a 502 error and cannot pay, this is urgent",
                "https://shop.globex.example/checkout shows the error",
                "thanks",
            ],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "incident", "{}", call["analysis"]["category_reasons"]);
    let shot = handoff(&call, "opengraph_io", "capture_screenshot");
    assert_eq!(shot["status"], "sent", "{shot}");
    assert!(shot["evidence"]["screenshot_url"].as_str().unwrap().starts_with("http"));
    assert_eq!(shot["external_url"], shot["evidence"]["screenshot_url"]);
    let info = handoff(&call, "opengraph_io", "site_info");
    assert_eq!((info["status"].as_str(), info["evidence"]["title"].as_str()), (Some("sent"), Some("Globex checkout")), "{info}");
    let calls = s.og.calls();
    assert!(calls.iter().any(|c| c.service == "screenshot" && c.target == "https://shop.globex.example/checkout"), "{calls:?}");
    for r in s.og.control.received() {
        assert!(r.path.contains("https%3A%2F%2Fshop.globex.example%2Fcheckout"), "the target is one encoded segment: {}", r.path);
    }
    // The attempts keep no secret.
    let attempts = serde_json::to_string(&shot["attempts"]).unwrap();
    assert!(!attempts.contains(opengraph_io::APP_ID), "{attempts}");
}

#[tokio::test]
async fn scrape_site_for_a_reproducible_bug() {
    let s = Stack::start().await;
    s.og.add_site("https://app.initech.example/reports", Site::new("Initech reports", "Monthly reports"));
    let call = s
        .call(
            &[
                "Thanks for calling Acme, who is this?",
                "What's the problem?",
                "How do you get there?",
                "What did you expect, and what happens instead?",
                "What does it affect?",
                "Thanks, we'll look into it.",
                "Goodbye.",
            ],
            &[
                "Peter Gibbons from Initech",
                "the export button on our reports page https://app.initech.example/reports is broken",
                "open the reports page, pick March, click export to CSV",
                "I expected a CSV download but I get a blank page every time",
                "our finance team cannot send the monthly report to the board",
                "thanks",
            ],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "bug", "{}", call["analysis"]["category_reasons"]);
    assert_eq!(status(&call, "opengraph_io", "scrape_site"), "sent", "{}", handoff(&call, "opengraph_io", "scrape_site"));
    assert!(s.og.calls().iter().any(|c| c.service == "scrape"));
}

// ---- The OpenGraph.io page's workflows, with its pairings ----

const SUPPORT: [&str; 6] = [
    "Thanks for calling Acme support, who am I speaking with?",
    "What is going on?",
    "Which page or endpoint, and since when?",
    "What is the impact on your business?",
    "Thank you, we are on it and will keep you posted.",
    "Goodbye.",
];

#[tokio::test]
async fn customer_reports_an_outage_and_on_call_gets_the_impact() {
    let s = Stack::full().await;
    let p = s.p();
    p.datadog.seed_monitor(7001, "checkout 5xx rate", "Alert", &["service:checkout"]);
    let call = s
        .call(
            &SUPPORT,
            &[
                "Hal Jordan from Globex, hal@globex.example",
                "checkout is completely down for all our customers, every payment fails with a 503",
                "https://shop.globex.example/checkout in us-east-1, since 2pm today",
                "we are losing every sale, about 5000 customers cannot pay",
                "thanks",
            ],
        )
        .await;
    let a = &call["analysis"];
    assert_eq!((a["category"].as_str(), a["severity"].as_str()), (Some("incident"), Some("sev1")), "{}", a["category_reasons"]);
    for (kind, action) in [
        ("slack", "post_message"),
        ("zendesk", "create_ticket"),
        ("google_sheets", "append_row"),
        ("datadog", "create_event"),
        ("datadog", "search_monitors"),
        ("hubspot", "create_note"),
        ("webhook", "deliver"),
        ("opengraph_io", "capture_screenshot"),
    ] {
        assert_eq!(status(&call, kind, action), "sent", "{kind} {action}: {}", handoff(&call, kind, action));
    }
    // On-call: one message with the impact, urgency, owner, next step and links to evidence.
    let msgs = p.slack.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].channel, slack::ONCALL);
    let body = msgs[0].body.to_string();
    for want in ["sev1", "on-call engineer", "https://dialnexa.example/v1/calls/", "checkout", "[call "] {
        assert!(body.contains(want), "the on-call alert lacks {want}: {body}");
    }
    assert!(body.contains("screenshot") || body.contains("opengraph"), "evidence links from the screenshot: {body}");
    // A ticket, a review-log row, an event, an account note, a signed webhook: once each.
    assert_eq!(p.zendesk.tickets().len(), 1);
    assert_eq!(p.zendesk.tickets()[0].external_id.as_deref(), call["call_id"].as_str());
    assert_eq!(p.sheets.rows(google_sheets::SHEET).iter().filter(|r| r.first().and_then(|v| v.as_str()) == call["call_id"].as_str()).count(), 1);
    assert_eq!(p.datadog.events().len(), 1);
    assert_eq!(p.hubspot.notes().len(), 1);
    assert_eq!(p.hook.deliveries().len(), 1);
    let monitors = handoff(&call, "datadog", "search_monitors");
    assert!(monitors["evidence"]["monitors"].as_array().is_some(), "{monitors}");
    // Jira: not a reproducible bug, so no engineering task, and the reason says so.
    assert_eq!(status(&call, "jira", "create_issue"), "skipped");
    assert!(handoff(&call, "jira", "create_issue")["reason"].as_str().unwrap().contains("reproducible"));
    assert!(p.jira.issues().is_empty());
}

#[tokio::test]
async fn caller_gives_reproducible_bug_steps_and_engineering_gets_a_task() {
    let s = Stack::full().await;
    let p = s.p();
    let call = s
        .call(
            &[
                "Thanks for calling Acme support, who is this?",
                "What's the problem?",
                "How do you get there?",
                "What did you expect, and what happens instead?",
                "What does it affect?",
                "Thanks, we'll get engineering on it.",
                "Goodbye.",
            ],
            &[
                "Peter Gibbons from Initech, peter@initech.example",
                "the export button on the reports page is broken",
                "open reports, pick March, click export to CSV",
                "I expected a CSV download but I get a blank page every time",
                "our finance team cannot send the monthly report to the board",
                "thanks",
            ],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "bug", "{}", call["analysis"]["category_reasons"]);
    assert_eq!(call["analysis"]["reproducible_bug"]["reproducible"], true, "{}", call["analysis"]["reproducible_bug"]);
    assert_eq!(status(&call, "jira", "create_issue"), "sent", "{}", handoff(&call, "jira", "create_issue"));
    let issues = p.jira.issues();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert!(issue.labels.iter().any(|l| l == &format!("call-{}", call["call_id"].as_str().unwrap())), "{:?}", issue.labels);
    assert_eq!(issue.description["type"], "doc", "ADF");
    let text = issue.description_text();
    for want in ["click export", "blank page", "CSV download", "finance team"] {
        assert!(text.contains(want), "the task lacks {want}: {text}");
    }
    let h = handoff(&call, "jira", "create_issue");
    assert_eq!(h["external_id"], json!(issue.key));
    assert!(h["external_url"].as_str().unwrap().ends_with(&format!("/browse/{}", issue.key)));
    // Not an incident: no on-call page, no incident log row.
    assert_eq!(status(&call, "slack", "post_message"), "skipped");
    assert_eq!(status(&call, "google_sheets", "append_row"), "skipped");
}

#[tokio::test]
async fn setup_questions_create_no_incident_and_say_why() {
    let s = Stack::full().await;
    let p = s.p();
    let call = s
        .call(
            &["Thanks for calling Acme support, who is this?", "How can I help?", "Sure, the guide covers it step by step. Anything else?", "Goodbye."],
            &["Grace Hopper from Hopper Labs", "how do I set up webhooks for my account, where do I configure the signing secret?", "no that's all"],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "setup_question", "{}", call["analysis"]["category_reasons"]);
    for (kind, action, why) in [
        ("slack", "post_message", "not incidents"),
        ("google_sheets", "append_row", "incident"),
        ("datadog", "create_event", "incident"),
        ("zendesk", "create_ticket", "no ticket"),
        ("jira", "create_issue", "reproducible"),
        ("opengraph_io", "capture_screenshot", "URL"),
    ] {
        let h = handoff(&call, kind, action);
        assert_eq!(h["status"], "skipped", "{kind} {action}");
        assert!(h["reason"].as_str().unwrap().contains(why), "{kind} {action}: {}", h["reason"]);
    }
    assert!(p.slack.messages().is_empty() && p.zendesk.tickets().is_empty() && p.jira.issues().is_empty() && p.datadog.events().is_empty());
    // The integrating system still hears about the call, signed.
    assert_eq!(status(&call, "webhook", "deliver"), "sent");
    let d = &p.hook.deliveries()[0];
    assert!(d.signature.starts_with("v1,"));
    assert_eq!(d.body["data"]["category"], "setup_question");
}

#[tokio::test]
async fn support_needs_logs_linked_to_the_ticket() {
    let s = Stack::full().await;
    let p = s.p();
    s.og.add_site("https://status.globex.example/incidents/42", Site::new("Globex status: degraded API", "Investigating elevated errors"));
    let call = s
        .call(
            &SUPPORT,
            &[
                "Bruce Wayne from Wayne Enterprises, bruce@wayne.example",
                "our orders API returns 500 errors on /v2/orders, I have request ids and our logs show it",
                "https://status.globex.example/incidents/42 shows it, since 9am this morning",
                "orders are stuck, our warehouse cannot ship",
                "thanks",
            ],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "incident", "{}", call["analysis"]["category_reasons"]);
    assert_eq!(status(&call, "zendesk", "create_ticket"), "sent", "{}", handoff(&call, "zendesk", "create_ticket"));
    let t = &p.zendesk.tickets()[0];
    // The ticket links the evidence: the call, its transcript, the screenshot of the page.
    for want in ["https://dialnexa.example/v1/calls/", "#transcript", "/v2/orders"] {
        assert!(t.comment_body.contains(want), "the ticket lacks {want}: {}", t.comment_body);
    }
    let shot = handoff(&call, "opengraph_io", "capture_screenshot")["evidence"]["screenshot_url"].as_str().unwrap().to_owned();
    assert!(t.comment_body.contains(&shot), "the screenshot is linked: {}", t.comment_body);
    let h = handoff(&call, "zendesk", "create_ticket");
    assert!(h["external_url"].as_str().unwrap().contains("/agent/tickets/"));
    let sent = p.zendesk.control.received().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(sent.header("idempotency-key"), h["idempotency_key"].as_str());
}

#[tokio::test]
async fn api_error_blocks_a_workflow_and_deployment_regression_after_release() {
    let s = Stack::full().await;
    let p = s.p();
    p.datadog.seed_monitor(8100, "orders API error rate", "Alert", &["service:orders"]);
    let call = s
        .call(
            &SUPPORT,
            &[
                "Diana Prince from Themyscira Travel, diana@themyscira.example",
                "since your release v2.14.0 yesterday our bookings API calls fail with 422 invalid signature, it blocks our booking workflow",
                "POST /v1/bookings, in eu-west-1, since 3pm yesterday",
                "we cannot take bookings, around 200 agents are stuck",
                "thanks",
            ],
        )
        .await;
    assert_eq!(call["analysis"]["category"], "incident", "{}", call["analysis"]["category_reasons"]);
    let fields = &call["analysis"]["fields"];
    assert!(fields["deploy"]["value"].as_str().unwrap().contains("v2.14.0"), "{fields}");
    let ev = p.datadog.events();
    assert_eq!(ev.len(), 1);
    let tags = ev[0]["tags"].to_string();
    assert!(tags.contains(&format!("dialnexa_call:{}", call["call_id"].as_str().unwrap())), "{tags}");
    let note = &p.hubspot.notes()[0];
    assert!(note.body().contains("v2.14.0") || note.body().contains("invalid signature"), "{}", note.body());
    let row =
        p.sheets.rows(google_sheets::SHEET).into_iter().find(|r| r.first().and_then(|v| v.as_str()) == call["call_id"].as_str()).expect("an incident log row");
    assert!(row.iter().any(|v| v.as_str().is_some_and(|t| t.contains("Themyscira"))), "{row:?}");
}

#[tokio::test]
async fn angry_caller_with_cancellation_language_reaches_the_escalation_owner() {
    let s = Stack::full().await;
    let p = s.p();
    let call = s
        .call(
            &[
                "Thanks for calling Acme, who is this?",
                "What happened?",
                "I'm very sorry. What would help?",
                "I understand, I'm escalating this now.",
                "Goodbye.",
            ],
            &[
                "Victor Stone from Stone Logistics, victor@stone.example",
                "this is the third time I'm calling this week, your dashboard keeps losing our saved routes and nobody fixes it",
                "honestly this is unacceptable, if it's not fixed by Friday we are cancelling and switching to a competitor",
                "fine",
            ],
        )
        .await;
    let a = &call["analysis"];
    assert_eq!(a["cancellation_language"]["detected"], true, "{a}");
    assert!(["angry", "negative"].contains(&a["sentiment"].as_str().unwrap()), "{a}");
    let slack = handoff(&call, "slack", "post_message");
    assert_eq!(slack["status"], "sent", "{slack}");
    assert!(slack["reason"].as_str().unwrap().contains("Escalation owner"), "{}", slack["reason"]);
    let body = p.slack.messages()[0].body.to_string();
    assert!(body.contains("escalation owner"), "{body}");
}
