//! Contract tests: Google Sheets, HubSpot, Datadog and signed webhooks against their fakes.

use std::sync::Arc;
use std::time::Duration;

use dialnexa_handoff::connector::{Connector, HandoffRequest, Outcome, http_client};
use dialnexa_handoff::connectors::{self, webhook};
use dialnexa_handoff::payload::{CallerInfo, Links};
use dialnexa_handoff::{HandoffPayload, IntegrationKind};
use dialnexa_testkit::fakes::datadog::FakeDatadog;
use dialnexa_testkit::fakes::google_sheets::{self, FakeSheets};
use dialnexa_testkit::fakes::hubspot::FakeHubspot;
use dialnexa_testkit::fakes::webhook_receiver::FakeWebhookReceiver;
use dialnexa_testkit::fakes::{Fault, Received};
use serde_json::{Value, json};

const CALL: &str = "call_0190f0c2a1b27c3d9e4f5a6b7c8d9e0f";

fn payload() -> HandoffPayload {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("product_area".into(), json!("Checkout API"));
    fields.insert("endpoint".into(), json!("/v1/payments"));
    fields.insert("error_message".into(), json!("503 Service Unavailable"));
    fields.insert("region".into(), json!("us-east-1"));
    let mut evidence = std::collections::BTreeMap::new();
    evidence.insert("screenshot".into(), "https://i.opengraph.io/shot/abc.jpg".into());
    HandoffPayload {
        call_id: CALL.into(),
        title: "Checkout API down with 503s in us-east-1".into(),
        summary: "Payments fail with 503 since 09:10 UTC. Expected: card payments succeed. Actual: every request returns 503.".into(),
        reason: "Incident rule: outage reported with business impact".into(),
        urgency: "urgent".into(),
        owner: Some("payments-oncall".into()),
        next_step: "Page the payments on-call and post a status page update".into(),
        category: "incident".into(),
        severity: Some("sev2".into()),
        sentiment: "negative".into(),
        caller: CallerInfo {
            name: Some("Dana Smith".into()),
            email: Some("dana@acme.example".into()),
            phone: None,
            customer: Some("Acme Corp".into()),
            account: Some("acct_42".into()),
        },
        affected: Some("Checkout API /v1/payments".into()),
        fields,
        symptom: Some("503 on every payment".into()),
        expected: Some("payments succeed".into()),
        actual: Some("503 Service Unavailable".into()),
        steps: None,
        impact: Some("No orders since 09:10 <b>all stores</b>".into()),
        urls: vec![],
        links: Links {
            call: format!("https://dialnexa.example/calls/{CALL}"),
            transcript: format!("https://dialnexa.example/calls/{CALL}/transcript"),
            recording: Some(format!("https://dialnexa.example/calls/{CALL}/recording")),
            evidence,
        },
        tags: vec![format!("call-{CALL}"), "incident".into(), "sev2".into()],
        options: Default::default(),
    }
}

fn req(kind: &str, action: &str, p: HandoffPayload) -> HandoffRequest {
    HandoffRequest {
        handoff_id: "hnd_1".into(),
        idempotency_key: format!("{}:{kind}:{action}", p.call_id),
        action: action.into(),
        payload: p,
        attempt: 1,
        update: None,
    }
}

fn build(kind: IntegrationKind, config: Value) -> Arc<dyn Connector> {
    connectors::build(kind, &config, http_client(Duration::from_secs(1))).expect("valid config")
}

/// The outcome as stored: result and log, serialised.
fn stored(o: &Outcome) -> String {
    let result = match &o.result {
        Ok(d) => serde_json::to_string(d).unwrap_or_default(),
        Err(e) => serde_json::to_string(e).unwrap_or_default(),
    };
    format!("{result}\n{}", serde_json::to_string(&o.log).unwrap_or_default())
}

fn assert_secret_free(o: &Outcome, secrets: &[&str]) {
    let s = stored(o);
    for secret in secrets {
        assert!(!s.contains(secret), "secret leaked into the outcome: {s}");
    }
}

fn bodies(r: &[Received], method: &str, path_end: &str) -> Vec<Value> {
    r.iter().filter(|x| x.method == method && x.path.ends_with(path_end)).map(Received::json).collect()
}

// ---------------------------------------------------------------- Google Sheets

fn sheets_config(fake: &FakeSheets) -> Value {
    json!({ "spreadsheet_id": fake.spreadsheet_id, "access_token": fake.token, "base_url": fake.base_url })
}

#[tokio::test]
async fn sheets_appends_one_review_row_after_checking_the_key_column() {
    let fake = FakeSheets::start().await;
    fake.seed_row(
        google_sheets::SHEET,
        vec!["Call ID", "Date", "Customer", "Category", "Severity", "Title", "Urgency", "Owner", "Status", "Next step", "Call", "Evidence"],
    );
    let c = build(IntegrationKind::GoogleSheets, sheets_config(&fake));
    assert_eq!(c.actions(), &["append_row"]);
    let o = c.deliver(&req("google_sheets", "append_row", payload())).await;
    let d = o.result.clone().expect("appended");
    assert!(!d.deduplicated);
    assert_eq!(d.external_id.as_deref(), Some("Incidents!A2:L2"));
    assert_eq!(d.external_url.as_deref(), Some(format!("https://docs.google.com/spreadsheets/d/{}/edit", fake.spreadsheet_id).as_str()));
    assert_eq!(o.log.len(), 2);
    assert_secret_free(&o, &[&fake.token]);

    let rows = fake.rows(google_sheets::SHEET);
    assert_eq!(rows.len(), 2);
    let row: Vec<&str> = rows[1].iter().map(|c| c.as_str().unwrap_or("?")).collect();
    assert_eq!(row.len(), 12);
    assert_eq!(row[0], CALL);
    assert!(row[1].parse::<jiff::Timestamp>().is_ok(), "RFC 3339 date: {}", row[1]);
    assert_eq!(
        &row[2..10],
        &[
            "Acme Corp",
            "incident",
            "sev2",
            "Checkout API down with 503s in us-east-1",
            "urgent",
            "payments-oncall",
            "open",
            "Page the payments on-call and post a status page update"
        ]
    );
    assert_eq!(row[10], format!("https://dialnexa.example/calls/{CALL}"));
    assert_eq!(row[11], "https://i.opengraph.io/shot/abc.jpg");

    let got = fake.control.received();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].method.as_str(), got[1].method.as_str()), ("GET", "POST"));
    assert!(got[0].path.ends_with("/values/Incidents%21A%3AL") || got[0].path.ends_with("/values/Incidents!A:L"), "{}", got[0].path);
    assert!(got[1].path.ends_with(":append"));
    for r in &got {
        assert_eq!(r.header("authorization"), Some(format!("Bearer {}", fake.token).as_str()));
    }
    assert_eq!(got[1].query_param("valueInputOption").as_deref(), Some("RAW"));
    assert_eq!(got[1].query_param("insertDataOption").as_deref(), Some("INSERT_ROWS"));
    let body = got[1].json();
    assert_eq!(body["majorDimension"], "ROWS");
    assert_eq!(body["range"], "Incidents!A:L");
    assert_eq!(body["values"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn sheets_status_comes_from_the_rule_options() {
    let fake = FakeSheets::start().await;
    let c = build(IntegrationKind::GoogleSheets, sheets_config(&fake));
    let mut p = payload();
    p.options.insert("status".into(), json!("triaged"));
    let o = c.deliver(&req("google_sheets", "append_row", p)).await;
    assert_eq!(o.result.expect("appended").external_id.as_deref(), Some("Incidents!A1:L1"));
    assert_eq!(fake.rows(google_sheets::SHEET)[0][8], "triaged");
}

#[tokio::test]
async fn sheets_finds_an_existing_row_and_appends_nothing() {
    let fake = FakeSheets::start().await;
    fake.seed_row(google_sheets::SHEET, vec!["Call ID", "Date"]);
    fake.seed_row(google_sheets::SHEET, vec!["call_other", "2026-01-01T00:00:00Z"]);
    fake.seed_row(google_sheets::SHEET, vec![CALL, "2026-01-02T00:00:00Z", "Acme Corp"]);
    let c = build(IntegrationKind::GoogleSheets, sheets_config(&fake));
    let o = c.deliver(&req("google_sheets", "append_row", payload())).await;
    let d = o.result.expect("found");
    assert!(d.deduplicated);
    assert_eq!(d.external_id.as_deref(), Some("Incidents!A3:L3"));
    assert_eq!(fake.rows(google_sheets::SHEET).len(), 3);
    assert!(fake.control.received().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn sheets_retry_after_a_lost_answer_finds_the_row() {
    let fake = FakeSheets::start().await;
    let c = build(IntegrationKind::GoogleSheets, sheets_config(&fake));
    // The read passes; the append takes effect but the connection is cut.
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    let first = c.deliver(&req("google_sheets", "append_row", payload())).await;
    let e = first.result.expect_err("the client saw a reset");
    assert!(e.retryable, "{e:?}");
    assert_eq!(fake.rows(google_sheets::SHEET).len(), 1);
    let second = c.deliver(&req("google_sheets", "append_row", payload())).await;
    let d = second.result.expect("found on retry");
    assert!(d.deduplicated);
    assert_eq!(d.external_id.as_deref(), Some("Incidents!A1:L1"));
    assert_eq!(fake.rows(google_sheets::SHEET).len(), 1);
}

#[tokio::test]
async fn sheets_errors_are_classified() {
    let fake = FakeSheets::start().await;
    let c = build(IntegrationKind::GoogleSheets, sheets_config(&fake));
    let r = || req("google_sheets", "append_row", payload());

    fake.control.fail_next(Fault::Status(500));
    let e = c.deliver(&r()).await.result.expect_err("500");
    assert!(e.retryable && e.status == Some(500), "{e:?}");

    fake.control.fail_next(Fault::Delay(Duration::from_millis(1500)));
    let o = c.deliver(&r()).await;
    let e = o.result.clone().expect_err("timeout");
    assert!(e.retryable && e.status.is_none() && e.message.contains("timed out"), "{e:?}");
    assert_eq!(o.log[0].error.as_deref(), Some("the request timed out"));

    // Google sends no Retry-After on quota errors: back off without one.
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::Status(429));
    let e = c.deliver(&r()).await.result.expect_err("429");
    assert!(e.retryable && e.status == Some(429) && e.retry_after.is_none(), "{e:?}");
    assert!(e.message.contains("RESOURCE_EXHAUSTED"), "{}", e.message);

    let bad = build(
        IntegrationKind::GoogleSheets,
        json!({ "spreadsheet_id": fake.spreadsheet_id, "access_token": "ya29.WRONG-token-xyz", "base_url": fake.base_url }),
    );
    let o = bad.deliver(&r()).await;
    let e = o.result.clone().expect_err("401");
    assert!(!e.retryable && e.status == Some(401), "{e:?}");
    assert!(e.message.contains("access token"), "{}", e.message);
    assert_secret_free(&o, &["ya29.WRONG-token-xyz", &fake.token]);

    fake.deny_access(true);
    let e = c.deliver(&r()).await.result.expect_err("403");
    assert!(!e.retryable && e.status == Some(403) && e.message.contains("share the spreadsheet"), "{e:?}");
    fake.deny_access(false);

    let missing = build(IntegrationKind::GoogleSheets, json!({ "spreadsheet_id": "nope", "access_token": fake.token, "base_url": fake.base_url }));
    let e = missing.deliver(&r()).await.result.expect_err("404");
    assert!(!e.retryable && e.status == Some(404) && e.message.contains("spreadsheet_id"), "{e:?}");

    let bad_range = build(
        IntegrationKind::GoogleSheets,
        json!({ "spreadsheet_id": fake.spreadsheet_id, "access_token": fake.token, "range": "Nope!A:L", "base_url": fake.base_url }),
    );
    let e = bad_range.deliver(&r()).await.result.expect_err("400");
    assert!(!e.retryable && e.status == Some(400) && e.message.contains("Unable to parse range"), "{e:?}");
    assert!(fake.rows(google_sheets::SHEET).is_empty());
}

#[tokio::test]
async fn sheets_config_is_validated_and_debug_hides_the_token() {
    let client = http_client(Duration::from_secs(1));
    let fault = |v: Value| connectors::build(IntegrationKind::GoogleSheets, &v, client.clone()).err().expect("invalid");
    assert_eq!(fault(json!({ "spreadsheet_id": "", "access_token": "t" })).path, "config.spreadsheet_id");
    assert_eq!(fault(json!({ "spreadsheet_id": "a/b", "access_token": "t" })).path, "config.spreadsheet_id");
    assert_eq!(fault(json!({ "spreadsheet_id": "abc", "access_token": " " })).path, "config.access_token");
    assert_eq!(fault(json!({ "spreadsheet_id": "abc", "access_token": "t", "range": "" })).path, "config.range");
    assert_eq!(fault(json!({ "spreadsheet_id": "abc", "access_token": "t", "base_url": "ftp://x" })).path, "config.base_url");
    assert_eq!(fault(json!({ "spreadsheet_id": "abc", "access_token": "t", "sheet": "x" })).path, "config");
    let c: connectors::google_sheets::Config = serde_json::from_value(json!({ "spreadsheet_id": "abc", "access_token": "ya29.SECRET" })).expect("config");
    assert!(!format!("{c:?}").contains("ya29.SECRET"));
}

// ---------------------------------------------------------------- HubSpot

fn hubspot_config(fake: &FakeHubspot) -> Value {
    json!({ "access_token": fake.token, "base_url": fake.base_url, "company_id": "5001", "contact_id": "6001", "portal_id": "123456" })
}

fn marker() -> String {
    format!("dialnexa-call-{CALL}")
}

#[tokio::test]
async fn hubspot_creates_an_account_note_after_searching() {
    let fake = FakeHubspot::start().await;
    fake.seed_company("5001");
    fake.seed_contact("6001");
    let c = build(IntegrationKind::Hubspot, hubspot_config(&fake));
    assert_eq!(c.actions(), &["create_note"]);
    let o = c.deliver(&req("hubspot", "create_note", payload())).await;
    let d = o.result.clone().expect("created");
    assert!(!d.deduplicated);
    let notes = fake.notes();
    assert_eq!(notes.len(), 1);
    let n = &notes[0];
    assert_eq!(d.external_id.as_deref(), Some(n.id.as_str()));
    assert_eq!(d.external_url.as_deref(), Some("https://app.hubspot.com/contacts/123456/record/0-2/5001"));
    assert_eq!(n.associations, vec![("5001".to_owned(), 190), ("6001".to_owned(), 202)]);
    assert!(n.properties["hs_timestamp"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()));
    let body = n.body();
    for want in [
        "Checkout API down with 503s in us-east-1",
        "Reason:",
        "urgent",
        "payments-oncall",
        "Page the payments on-call",
        "Dana Smith",
        "Acme Corp",
        "503 on every payment",
        "&lt;b&gt;all stores&lt;/b&gt;",
        "https://i.opengraph.io/shot/abc.jpg",
        "/transcript\"",
        "/recording\"",
        &marker(),
    ] {
        assert!(body.contains(want), "missing {want} in {body}");
    }
    assert!(body.chars().count() <= 65_536);
    assert_secret_free(&o, &[&fake.token]);

    let got = fake.control.received();
    assert_eq!(got.len(), 2);
    assert!(got[0].path.ends_with("/notes/search") && got[1].path == "/crm/v3/objects/notes");
    for r in &got {
        assert_eq!(r.header("authorization"), Some(format!("Bearer {}", fake.token).as_str()));
    }
    let filter = &got[0].json()["filterGroups"][0]["filters"][0];
    assert_eq!(filter["propertyName"], "hs_note_body");
    assert_eq!(filter["operator"], "CONTAINS_TOKEN");
    assert_eq!(filter["value"], marker());
    let create = got[1].json();
    assert_eq!(create["associations"][0]["types"][0]["associationCategory"], "HUBSPOT_DEFINED");
}

#[tokio::test]
async fn hubspot_finds_the_note_and_creates_nothing() {
    let fake = FakeHubspot::start().await;
    fake.seed_note("<p>unrelated</p><p>dialnexa-call-call_somebody_else</p>");
    let id = fake.seed_note(&format!("<p>Earlier note</p><p>DialNexa call {CALL} · {}</p>", marker()));
    let c = build(IntegrationKind::Hubspot, json!({ "access_token": fake.token, "base_url": fake.base_url }));
    let d = c.deliver(&req("hubspot", "create_note", payload())).await.result.expect("found");
    assert!(d.deduplicated);
    assert_eq!(d.external_id, Some(id));
    assert_eq!(fake.notes().len(), 2);
    assert_eq!(bodies(&fake.control.received(), "POST", "/crm/v3/objects/notes").len(), 0);
}

#[tokio::test]
async fn hubspot_retry_after_a_lost_answer_finds_the_note() {
    let fake = FakeHubspot::start().await;
    fake.seed_company("5001");
    let c = build(IntegrationKind::Hubspot, json!({ "access_token": fake.token, "base_url": fake.base_url, "company_id": "5001" }));
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    let e = c.deliver(&req("hubspot", "create_note", payload())).await.result.expect_err("reset");
    assert!(e.retryable);
    assert_eq!(fake.notes().len(), 1);
    let d = c.deliver(&req("hubspot", "create_note", payload())).await.result.expect("found");
    assert!(d.deduplicated);
    assert_eq!(d.external_id.as_deref(), Some(fake.notes()[0].id.as_str()));
    assert_eq!(fake.notes().len(), 1);
}

/// The documented remaining risk: HubSpot's search index lags writes, so a retry soon after a
/// lost answer may not see the note. Once indexed, dedup works again.
#[tokio::test]
async fn hubspot_search_lag_is_the_remaining_duplicate_risk() {
    let fake = FakeHubspot::start().await;
    fake.set_index_lag(true);
    let c = build(IntegrationKind::Hubspot, json!({ "access_token": fake.token, "base_url": fake.base_url }));
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    assert!(c.deliver(&req("hubspot", "create_note", payload())).await.result.is_err());
    assert!(c.deliver(&req("hubspot", "create_note", payload())).await.result.is_ok_and(|d| !d.deduplicated));
    assert_eq!(fake.notes().len(), 2);
    fake.index_now();
    assert!(c.deliver(&req("hubspot", "create_note", payload())).await.result.is_ok_and(|d| d.deduplicated));
    assert_eq!(fake.notes().len(), 2);
}

#[tokio::test]
async fn hubspot_errors_are_classified() {
    let fake = FakeHubspot::start().await;
    let c = build(IntegrationKind::Hubspot, json!({ "access_token": fake.token, "base_url": fake.base_url }));
    let r = || req("hubspot", "create_note", payload());

    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 7 });
    let e = c.deliver(&r()).await.result.expect_err("429");
    assert!(e.retryable && e.status == Some(429), "{e:?}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(e.message.contains("secondly limit"), "{}", e.message);

    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::Status(500));
    let e = c.deliver(&r()).await.result.expect_err("500");
    assert!(e.retryable && e.status == Some(500));

    fake.control.fail_next(Fault::Delay(Duration::from_millis(1500)));
    let e = c.deliver(&r()).await.result.expect_err("timeout");
    assert!(e.retryable && e.message.contains("timed out"));

    let bad = build(IntegrationKind::Hubspot, json!({ "access_token": "pat-na1-WRONG-0000", "base_url": fake.base_url }));
    let o = bad.deliver(&r()).await;
    let e = o.result.clone().expect_err("401");
    assert!(!e.retryable && e.status == Some(401) && e.message.contains("access token"), "{e:?}");
    assert_secret_free(&o, &["pat-na1-WRONG-0000", &fake.token]);

    // An association to a company that does not exist: the request's fault, not retried.
    let wrong_company = build(IntegrationKind::Hubspot, json!({ "access_token": fake.token, "base_url": fake.base_url, "company_id": "999" }));
    let e = wrong_company.deliver(&r()).await.result.expect_err("400");
    assert!(!e.retryable && e.status == Some(400) && e.message.contains("VALIDATION_ERROR"), "{e:?}");
    assert!(fake.notes().is_empty());
}

#[tokio::test]
async fn hubspot_fake_requires_hs_timestamp() {
    let fake = FakeHubspot::start().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/crm/v3/objects/notes", fake.base_url))
        .bearer_auth(&fake.token)
        .header("content-type", "application/json")
        .body(json!({ "properties": { "hs_note_body": "x" } }).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
    assert_eq!(v["category"], "VALIDATION_ERROR");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("hs_timestamp")));
    assert!(fake.notes().is_empty());
}

#[tokio::test]
async fn hubspot_config_is_validated_and_debug_hides_the_token() {
    let client = http_client(Duration::from_secs(1));
    let fault = |v: Value| connectors::build(IntegrationKind::Hubspot, &v, client.clone()).err().expect("invalid");
    assert_eq!(fault(json!({ "access_token": "" })).path, "config.access_token");
    assert_eq!(fault(json!({ "access_token": "t", "company_id": "acme" })).path, "config.company_id");
    assert_eq!(fault(json!({ "access_token": "t", "contact_id": "1 2" })).path, "config.contact_id");
    assert_eq!(fault(json!({ "access_token": "t", "owner": "x" })).path, "config");
    let c: connectors::hubspot::Config = serde_json::from_value(json!({ "access_token": "pat-SECRET" })).expect("config");
    assert!(!format!("{c:?}").contains("pat-SECRET"));
}

// ---------------------------------------------------------------- Datadog

fn datadog_config(fake: &FakeDatadog, app_key: bool) -> Value {
    let mut c = json!({ "api_key": fake.api_key, "base_url": fake.base_url });
    if app_key {
        c["app_key"] = json!(fake.app_key);
    }
    c
}

#[tokio::test]
async fn datadog_posts_a_tagged_event_after_searching_by_tag() {
    let fake = FakeDatadog::start().await;
    let c = build(IntegrationKind::Datadog, datadog_config(&fake, true));
    assert_eq!(c.actions(), &["create_event", "search_monitors"]);
    let o = c.deliver(&req("datadog", "create_event", payload())).await;
    let d = o.result.clone().expect("posted");
    assert!(!d.deduplicated);
    let events = fake.events();
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(d.external_id.as_deref(), ev["id_str"].as_str());
    assert_eq!(d.external_url.as_deref(), ev["url"].as_str());
    assert_eq!(ev["title"], "Checkout API down with 503s in us-east-1");
    assert_eq!(ev["alert_type"], "error");
    assert_eq!(ev["aggregation_key"], CALL);
    assert!(ev["source_type_name"].is_string());
    let tags: Vec<&str> = ev["tags"].as_array().expect("tags").iter().filter_map(Value::as_str).collect();
    for t in [format!("dialnexa_call:{CALL}"), "source:dialnexa".into(), "category:incident".into(), "severity:sev2".into(), "urgency:urgent".into()] {
        assert!(tags.contains(&t.as_str()), "missing tag {t} in {tags:?}");
    }
    let text = ev["text"].as_str().expect("text");
    assert!(text.chars().count() <= 4000);
    for want in [
        "payments-oncall",
        "Page the payments on-call",
        "Acme Corp",
        "503 on every payment",
        "/transcript)",
        "/recording)",
        "https://i.opengraph.io/shot/abc.jpg",
    ] {
        assert!(text.contains(want), "missing {want} in {text}");
    }
    assert_secret_free(&o, &[&fake.api_key, &fake.app_key]);

    let got = fake.control.received();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].method.as_str(), got[1].method.as_str()), ("GET", "POST"));
    assert_eq!(got[0].query_param("tags"), Some(format!("dialnexa_call:{CALL}")));
    assert!(got[0].query_param("start").is_some() && got[0].query_param("end").is_some());
    assert_eq!(got[0].header("dd-api-key"), Some(fake.api_key.as_str()));
    assert_eq!(got[0].header("dd-application-key"), Some(fake.app_key.as_str()));
    assert_eq!(got[1].header("dd-api-key"), Some(fake.api_key.as_str()));
    assert_eq!(got[1].header("dd-application-key"), None, "writes need only the API key");
}

#[tokio::test]
async fn datadog_alert_type_follows_severity() {
    let fake = FakeDatadog::start().await;
    let c = build(IntegrationKind::Datadog, datadog_config(&fake, false));
    for (i, (sev, want)) in [(Some("sev1"), "error"), (Some("sev3"), "warning"), (Some("sev4"), "info"), (None, "info")].into_iter().enumerate() {
        let mut p = payload();
        p.call_id = format!("call_{i}");
        p.severity = sev.map(str::to_owned);
        c.deliver(&req("datadog", "create_event", p)).await.result.expect("posted");
        assert_eq!(fake.events()[i]["alert_type"], want, "{sev:?}");
    }
}

#[tokio::test]
async fn datadog_finds_the_event_by_tag_and_posts_nothing() {
    let fake = FakeDatadog::start().await;
    fake.seed_event("other", &["dialnexa_call:call_other"]);
    let id = fake.seed_event("earlier", &[&format!("dialnexa_call:{CALL}")]);
    let c = build(IntegrationKind::Datadog, datadog_config(&fake, true));
    let d = c.deliver(&req("datadog", "create_event", payload())).await.result.expect("found");
    assert!(d.deduplicated);
    assert_eq!(d.external_id, Some(id));
    assert_eq!(fake.events().len(), 2);
    assert!(fake.control.received().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn datadog_retry_after_a_lost_answer_finds_the_event() {
    let fake = FakeDatadog::start().await;
    let c = build(IntegrationKind::Datadog, datadog_config(&fake, true));
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    assert!(c.deliver(&req("datadog", "create_event", payload())).await.result.expect_err("reset").retryable);
    assert_eq!(fake.events().len(), 1);
    let d = c.deliver(&req("datadog", "create_event", payload())).await.result.expect("found");
    assert!(d.deduplicated);
    assert_eq!(fake.events().len(), 1);
}

#[tokio::test]
async fn datadog_without_app_key_posts_directly_and_says_so() {
    let fake = FakeDatadog::start().await;
    let c = build(IntegrationKind::Datadog, datadog_config(&fake, false));
    let d = c.deliver(&req("datadog", "create_event", payload())).await.result.expect("posted");
    assert!(d.evidence["dedup_search"].as_str().is_some_and(|s| s.contains("no app_key")));
    assert_eq!(fake.control.received().len(), 1);

    let o = c.deliver(&req("datadog", "search_monitors", payload())).await;
    let e = o.result.expect_err("needs app_key");
    assert!(!e.retryable && e.message.contains("app_key"), "{e:?}");
    assert!(o.log.is_empty());
    assert_eq!(fake.control.received().len(), 1);
}

#[tokio::test]
async fn datadog_links_the_symptom_to_monitors() {
    let fake = FakeDatadog::start().await;
    fake.seed_monitor(111, "Checkout API 5xx rate high", "Alert", &["service:checkout", "region:us-east-1"]);
    fake.seed_monitor(222, "Search latency p99", "OK", &["service:search"]);
    fake.seed_monitor(333, "Payments /v1/payments errors", "Warn", &["service:payments"]);
    let c = build(IntegrationKind::Datadog, datadog_config(&fake, true));
    let o = c.deliver(&req("datadog", "search_monitors", payload())).await;
    let d = o.result.clone().expect("searched");
    let monitors = d.evidence["monitors"].as_array().expect("monitors").clone();
    let ids: Vec<i64> = monitors.iter().filter_map(|m| m["id"].as_i64()).collect();
    assert_eq!(ids, vec![111, 333]);
    assert_eq!(monitors[0]["name"], "Checkout API 5xx rate high");
    assert_eq!(monitors[0]["status"], "Alert");
    assert_eq!(monitors[0]["url"], "https://app.datadoghq.com/monitors/111");
    assert!(d.external_url.as_deref().is_some_and(|u| u.starts_with("https://app.datadoghq.com/monitors/manage?q=")));
    assert_secret_free(&o, &[&fake.api_key, &fake.app_key]);

    let got = fake.control.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/api/v1/monitor/search");
    let q = got[0].query_param("query").expect("query");
    for term in ["\"Checkout API\"", "\"/v1/payments\"", "\"503 Service Unavailable\"", "\"us-east-1\"", " OR "] {
        assert!(q.contains(term), "{term} not in {q}");
    }
    assert_eq!(got[0].header("dd-application-key"), Some(fake.app_key.as_str()));
}

#[tokio::test]
async fn datadog_errors_are_classified() {
    let fake = FakeDatadog::start().await;
    let c = build(IntegrationKind::Datadog, datadog_config(&fake, true));
    let r = || req("datadog", "create_event", payload());

    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 3 });
    let e = c.deliver(&r()).await.result.expect_err("429");
    assert!(e.retryable && e.retry_after == Some(Duration::from_secs(3)), "{e:?}");

    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::Status(503));
    let e = c.deliver(&r()).await.result.expect_err("503");
    assert!(e.retryable && e.status == Some(503));

    fake.control.fail_next(Fault::Delay(Duration::from_millis(1500)));
    assert!(c.deliver(&r()).await.result.expect_err("timeout").retryable);

    let bad = build(IntegrationKind::Datadog, json!({ "api_key": "WRONGAPIKEY000", "app_key": "WRONGAPPKEY000", "base_url": fake.base_url }));
    let o = bad.deliver(&r()).await;
    let e = o.result.clone().expect_err("403");
    assert!(!e.retryable && e.status == Some(403) && e.message.contains("credentials"), "{e:?}");
    assert_secret_free(&o, &["WRONGAPIKEY000", "WRONGAPPKEY000", &fake.api_key, &fake.app_key]);
    let o = bad.deliver(&req("datadog", "search_monitors", payload())).await;
    assert_eq!(o.result.expect_err("403").status, Some(403));
    assert!(fake.events().is_empty());
}

#[tokio::test]
async fn datadog_config_is_validated_and_debug_hides_the_keys() {
    let client = http_client(Duration::from_secs(1));
    let fault = |v: Value| connectors::build(IntegrationKind::Datadog, &v, client.clone()).err().expect("invalid");
    assert_eq!(fault(json!({ "api_key": "" })).path, "config.api_key");
    assert_eq!(fault(json!({ "api_key": "k", "app_key": "" })).path, "config.app_key");
    assert_eq!(fault(json!({ "api_key": "k", "site": "evil.example.com" })).path, "config.site");
    assert_eq!(fault(json!({ "api_key": "k", "region": "eu" })).path, "config");
    assert!(connectors::build(IntegrationKind::Datadog, &json!({ "api_key": "k", "site": "us5.datadoghq.com" }), client.clone()).is_ok());
    let c: connectors::datadog::Config = serde_json::from_value(json!({ "api_key": "APISECRET", "app_key": "APPSECRET" })).expect("config");
    let shown = format!("{c:?}");
    assert!(!shown.contains("APISECRET") && !shown.contains("APPSECRET"), "{shown}");
}

// ---------------------------------------------------------------- Signed webhooks

const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TS: i64 = 1_614_265_330;
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// The published vectors: standard-webhooks/standard-webhooks, libraries/javascript/src/webhook.test.ts
/// ("sign function works") and libraries/rust/src/lib.rs (`test_sign`).
#[test]
fn webhook_signatures_match_the_published_vectors() {
    assert_eq!(webhook::sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY).as_deref(), Ok(VECTOR_SIG));
    assert_eq!(
        webhook::sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#
        )
        .as_deref(),
        Ok("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
    );
    // The prefix is optional when signing, as in the specification's libraries.
    assert_eq!(webhook::sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", VECTOR_ID, VECTOR_TS, VECTOR_BODY).as_deref(), Ok(VECTOR_SIG));
    assert!(webhook::sign(VECTOR_SECRET, "msg.with.dots", VECTOR_TS, VECTOR_BODY).is_err());
    assert!(webhook::sign("whsec_!!!", VECTOR_ID, VECTOR_TS, VECTOR_BODY).is_err());
}

#[test]
fn webhook_verification_checks_body_secret_time_and_every_signature() {
    let h = |sig: &'static str| (VECTOR_ID, "1614265330", sig);
    let tol = webhook::TOLERANCE_SECS;
    assert_eq!(webhook::verify(VECTOR_SECRET, h(VECTOR_SIG), VECTOR_BODY, VECTOR_TS, tol), Ok(()));
    // Tampered body, id or timestamp.
    assert!(webhook::verify(VECTOR_SECRET, h(VECTOR_SIG), br#"{"test": 2432232315}"#, VECTOR_TS, tol).is_err());
    assert!(webhook::verify(VECTOR_SECRET, ("msg_other", "1614265330", VECTOR_SIG), VECTOR_BODY, VECTOR_TS, tol).is_err());
    assert!(webhook::verify(VECTOR_SECRET, (VECTOR_ID, "1614265331", VECTOR_SIG), VECTOR_BODY, VECTOR_TS, tol).is_err());
    // Wrong secret.
    assert!(webhook::verify("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", h(VECTOR_SIG), VECTOR_BODY, VECTOR_TS, tol).is_err());
    // Old and future timestamps: ±5 minutes is accepted, beyond is not.
    assert_eq!(webhook::verify(VECTOR_SECRET, h(VECTOR_SIG), VECTOR_BODY, VECTOR_TS + 300, tol), Ok(()));
    assert_eq!(webhook::verify(VECTOR_SECRET, h(VECTOR_SIG), VECTOR_BODY, VECTOR_TS - 300, tol), Ok(()));
    assert!(webhook::verify(VECTOR_SECRET, h(VECTOR_SIG), VECTOR_BODY, VECTOR_TS + 301, tol).is_err_and(|e| e.contains("too old")));
    assert!(webhook::verify(VECTOR_SECRET, h(VECTOR_SIG), VECTOR_BODY, VECTOR_TS - 301, tol).is_err_and(|e| e.contains("future")));
    assert!(webhook::verify(VECTOR_SECRET, (VECTOR_ID, "soon", VECTOR_SIG), VECTOR_BODY, VECTOR_TS, tol).is_err());
    // Several signatures (key rotation): any v1 match passes; other versions are ignored.
    let rotated = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,%%%";
    assert_eq!(webhook::verify(VECTOR_SECRET, h(rotated), VECTOR_BODY, VECTOR_TS, tol), Ok(()));
    let none_match = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert!(webhook::verify(VECTOR_SECRET, h(none_match), VECTOR_BODY, VECTOR_TS, tol).is_err());
    assert!(webhook::verify(VECTOR_SECRET, h("v1,"), VECTOR_BODY, VECTOR_TS, tol).is_err());
    assert!(webhook::verify(VECTOR_SECRET, h(""), VECTOR_BODY, VECTOR_TS, tol).is_err());
}

fn webhook_config(fake: &FakeWebhookReceiver) -> Value {
    json!({ "url": format!("{}?token=QUERYSECRET123", fake.url()), "secret": fake.secret })
}

#[tokio::test]
async fn webhook_delivers_a_signed_event_the_receiver_verifies() {
    let fake = FakeWebhookReceiver::start().await;
    let c = build(IntegrationKind::Webhook, webhook_config(&fake));
    assert_eq!(c.actions(), &["deliver"]);
    let r = req("webhook", "deliver", payload());
    let o = c.deliver(&r).await;
    let d = o.result.clone().expect("delivered");
    let id = webhook::message_id(&r.idempotency_key);
    assert!(!id.contains('.'));
    assert_eq!(d.external_id.as_deref(), Some(id.as_str()));
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
    let got = fake.deliveries();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].path, "/hooks/dialnexa");
    assert_eq!(got[0].body["type"], "handoff.requested");
    assert!(got[0].body["timestamp"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()));
    assert_eq!(got[0].body["data"]["call_id"], CALL);
    assert_eq!(got[0].body["data"]["next_step"], "Page the payments on-call and post a status page update");
    assert_eq!(got[0].body["data"]["links"]["evidence"]["screenshot"], "https://i.opengraph.io/shot/abc.jpg");
    assert!((got[0].timestamp - jiff::Timestamp::now().as_second()).abs() < 5);
    // The signature is over the exact bytes sent.
    assert_eq!(webhook::sign(&fake.secret, &id, got[0].timestamp, got[0].raw.as_bytes()).as_deref(), Ok(got[0].signature.as_str()));
    let raw = &fake.control.received()[0];
    assert_eq!(raw.header("content-type"), Some("application/json"));
    assert_secret_free(&o, &[&fake.secret, "QUERYSECRET123"]);
}

#[tokio::test]
async fn webhook_retries_keep_the_id_so_the_effect_happens_once() {
    let fake = FakeWebhookReceiver::start().await;
    let c = build(IntegrationKind::Webhook, webhook_config(&fake));
    let r = req("webhook", "deliver", payload());
    fake.control.fail_next(Fault::ResetAfterEffect);
    let e = c.deliver(&r).await.result.expect_err("reset");
    assert!(e.retryable);
    let again = HandoffRequest { attempt: 2, ..r.clone() };
    c.deliver(&again).await.result.expect("delivered");
    let id = webhook::message_id(&r.idempotency_key);
    assert_eq!(fake.arrivals(&id), 2);
    assert_eq!(fake.deliveries().len(), 1);
    let ids: Vec<String> = fake.control.received().iter().filter_map(|x| x.header("webhook-id").map(str::to_owned)).collect();
    assert_eq!(ids, vec![id.clone(), id]);
}

#[tokio::test]
async fn webhook_wrong_secret_is_refused_and_fatal() {
    let fake = FakeWebhookReceiver::start().await;
    let other = "whsec_b3RoZXItZW5kcG9pbnQtc2VjcmV0LTAxMjM0NTY3";
    let c = build(IntegrationKind::Webhook, json!({ "url": fake.url(), "secret": other }));
    let o = c.deliver(&req("webhook", "deliver", payload())).await;
    let e = o.result.clone().expect_err("401");
    assert!(!e.retryable && e.status == Some(401) && e.message.contains("signing secret"), "{e:?}");
    assert_eq!(fake.rejected().len(), 1);
    assert!(fake.deliveries().is_empty());
    assert_secret_free(&o, &[other, &fake.secret]);
}

#[tokio::test]
async fn webhook_receiver_statuses_follow_standard_webhooks() {
    let fake = FakeWebhookReceiver::start().await;
    let c = build(IntegrationKind::Webhook, webhook_config(&fake));
    let r = || req("webhook", "deliver", payload());
    for (fault, retryable, retry_after, needle) in [
        (Fault::Status(410), false, None, "gone"),
        (Fault::Status(301), false, None, "redirect"),
        (Fault::Status(308), false, None, "redirect"),
        (Fault::Status(400), false, None, "400"),
        (Fault::Status(404), false, None, "404"),
        (Fault::RateLimited { retry_after_secs: 30 }, true, Some(30), "429"),
        (Fault::Status(500), true, None, "500"),
        (Fault::Status(502), true, None, "502"),
        (Fault::Status(504), true, None, "504"),
        (Fault::Delay(Duration::from_millis(1500)), true, None, "timed out"),
        (Fault::Reset, true, None, "reset"),
    ] {
        fake.control.fail_next(fault.clone());
        let o = c.deliver(&r()).await;
        let e = o.result.clone().expect_err("failure");
        assert_eq!(e.retryable, retryable, "{fault:?}: {e:?}");
        assert_eq!(e.retry_after, retry_after.map(Duration::from_secs), "{fault:?}");
        assert!(e.message.contains(needle), "{fault:?}: {}", e.message);
        assert_eq!(o.log.len(), 1);
        assert_secret_free(&o, &[&fake.secret, "QUERYSECRET123"]);
    }
}

#[tokio::test]
async fn webhook_config_is_validated_and_debug_hides_the_secret() {
    let client = http_client(Duration::from_secs(1));
    let fault = |v: Value| connectors::build(IntegrationKind::Webhook, &v, client.clone()).err().expect("invalid");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_eq!(fault(json!({ "url": "", "secret": secret })).path, "config.url");
    assert_eq!(fault(json!({ "url": "ftp://example.com/x", "secret": secret })).path, "config.url");
    assert_eq!(fault(json!({ "url": "https://example.com/x", "secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" })).path, "config.secret");
    assert_eq!(fault(json!({ "url": "https://example.com/x", "secret": "whsec_c2hvcnQ=" })).path, "config.secret");
    assert_eq!(fault(json!({ "url": "https://example.com/x", "secret": "whsec_not base64!" })).path, "config.secret");
    let long = format!("whsec_{}", "QUFB".repeat(22)); // 66 bytes
    assert_eq!(fault(json!({ "url": "https://example.com/x", "secret": long })).path, "config.secret");
    assert_eq!(fault(json!({ "url": "https://example.com/x", "secret": secret, "headers": {} })).path, "config");
    let c: webhook::Config =
        serde_json::from_value(json!({ "url": "https://hooks.example.com/catch/1/AbCdEfGhIjKlMnOpQrSt?key=QS", "secret": secret })).expect("config");
    let shown = format!("{c:?}");
    assert!(!shown.contains("MfKQ9r8G") && !shown.contains("AbCdEfGhIjKlMnOpQrSt") && !shown.contains("QS"), "{shown}");
}
