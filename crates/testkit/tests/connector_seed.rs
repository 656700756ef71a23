//! Contract tests for the seed connectors (OpenGraph.io, Heartbeat) against their stateful fakes.

use std::collections::BTreeMap;
use std::time::Duration;

use dialnexa_handoff::connector::{Connector, HandoffRequest, Outcome, http_client};
use dialnexa_handoff::connectors::{self, heartbeat, opengraph_io};
use dialnexa_handoff::payload::{CallerInfo, HandoffPayload, Links};
use dialnexa_handoff::{DeliveryError, IntegrationKind};
use dialnexa_testkit::fakes::Fault;
use dialnexa_testkit::fakes::heartbeat::{FakeHeartbeat, FindUsersShape};
use dialnexa_testkit::fakes::opengraph_io::{ErrorStyle, FakeOpengraphIo, ScrapeShape, Site};
use serde_json::{Value, json};

fn payload() -> HandoffPayload {
    HandoffPayload {
        call_id: "call_01J9SEED".into(),
        title: "Checkout page returns 503 in us-east-1".into(),
        summary: "Caller says checkout fails since this morning's deploy. Expected an order confirmation; got a 503 page.".into(),
        reason: "incident rule: outage language and a failing endpoint".into(),
        urgency: "high".into(),
        owner: Some("On-call payments".into()),
        next_step: "Check the checkout service health and roll back if needed".into(),
        category: "incident".into(),
        severity: Some("sev2".into()),
        sentiment: "negative".into(),
        caller: CallerInfo {
            name: Some("Ana Lima".into()),
            email: Some("ana.lima@example.com".into()),
            phone: Some("+1 415 555 0101".into()),
            customer: Some("Acme Corp".into()),
            account: None,
        },
        affected: Some("checkout API".into()),
        fields: BTreeMap::new(),
        symptom: Some("503 on checkout".into()),
        expected: Some("order confirmation".into()),
        actual: Some("503 Service Unavailable".into()),
        steps: None,
        impact: Some("no orders since 09:00".into()),
        urls: vec!["https://shop.example.com/checkout?step=pay&x=1".into()],
        links: Links {
            call: "https://dialnexa.example/calls/call_01J9SEED".into(),
            transcript: "https://dialnexa.example/calls/call_01J9SEED/transcript".into(),
            recording: Some("https://dialnexa.example/calls/call_01J9SEED/recording.wav".into()),
            evidence: BTreeMap::from([("screenshot".to_owned(), "https://og.example/shot.jpeg".to_owned())]),
        },
        tags: vec!["call-call_01J9SEED".into()],
        options: BTreeMap::new(),
    }
}

fn request(action: &str, p: HandoffPayload) -> HandoffRequest {
    HandoffRequest {
        handoff_id: "h1".into(),
        idempotency_key: format!("{}:x:{action}", p.call_id),
        action: action.into(),
        payload: p,
        attempt: 1,
        update: None,
    }
}

fn client() -> reqwest::Client {
    http_client(Duration::from_secs(1))
}

fn everything(o: &Outcome) -> String {
    let result = match &o.result {
        Ok(d) => serde_json::to_string(d).unwrap(),
        Err(e) => serde_json::to_string(e).unwrap(),
    };
    format!("{result} {} {:?}", serde_json::to_string(&o.log).unwrap(), o.result)
}

fn assert_secret_absent(o: &Outcome, secret: &str) {
    let all = everything(o);
    assert!(!all.contains(secret), "secret leaked: {all}");
}

fn err(o: &Outcome) -> DeliveryError {
    o.result.clone().expect_err("an error")
}

// --------------------------------------------------------------------------------------------
// OpenGraph.io

fn og_config(fake: &FakeOpengraphIo, app_id: &str, version: Option<&str>) -> opengraph_io::Config {
    serde_json::from_value(json!({ "app_id": app_id, "base_url": fake.base_url, "version": version })).unwrap()
}

fn og(fake: &FakeOpengraphIo) -> opengraph_io::OpengraphIo {
    opengraph_io::OpengraphIo::new(og_config(fake, opengraph_io_app_id(), None), client())
}

fn opengraph_io_app_id() -> &'static str {
    dialnexa_testkit::fakes::opengraph_io::APP_ID
}

const TARGET: &str = "https://shop.example.com/checkout?step=pay&x=1";

#[tokio::test]
async fn og_site_info_reads_the_page_with_the_target_as_one_encoded_segment() {
    let fake = FakeOpengraphIo::start().await;
    let mut site = Site::new("Checkout | Shop", "Pay for your order");
    site.site_name = "Shop".into();
    fake.add_site(TARGET, site);
    let out = og(&fake).deliver(&request("site_info", payload())).await;
    let d = out.result.clone().expect("delivered");
    assert_eq!(d.evidence, json!({ "title": "Checkout | Shop", "description": "Pay for your order", "status": 200, "url": TARGET, "site_name": "Shop" }));
    assert_eq!(d.external_url.as_deref(), Some(TARGET));
    assert!(!d.deduplicated);

    let got = fake.control.received();
    assert_eq!(got.len(), 1, "one call, no search");
    let r = &got[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/api/1.1/site/https%3A%2F%2Fshop.example.com%2Fcheckout%3Fstep%3Dpay%26x%3D1");
    assert_eq!(r.query_param("app_id").as_deref(), Some(opengraph_io_app_id()));
    assert!(r.header("authorization").is_none(), "auth is only the app_id parameter");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].service.as_str(), calls[0].target.as_str(), calls[0].credits), ("site", TARGET, 1));

    assert_eq!(out.log.len(), 1);
    assert_eq!(out.log[0].status, Some(200));
    assert!(out.log[0].request.starts_with("GET http://") && !out.log[0].request.contains('?'), "{}", out.log[0].request);
    assert_secret_absent(&out, opengraph_io_app_id());
}

#[tokio::test]
async fn og_site_info_without_opengraph_tags_falls_back_to_the_hybrid_graph() {
    let fake = FakeOpengraphIo::start().await;
    fake.set_no_opengraph_tags(true);
    let out = og(&fake).deliver(&request("site_info", payload())).await;
    let d = out.result.expect("delivered");
    assert_eq!(d.evidence["title"], "shop.example.com page");
    assert_eq!(d.evidence["status"], 200);
}

#[tokio::test]
async fn og_capture_screenshot_returns_the_hosted_url_as_evidence() {
    let fake = FakeOpengraphIo::start().await;
    let mut p = payload();
    p.options.insert("full_page".into(), json!(true));
    p.options.insert("owner_user_id".into(), json!("not-an-og-option"));
    let out = og(&fake).deliver(&request("capture_screenshot", p)).await;
    let d = out.result.clone().expect("delivered");
    let shots = fake.screenshots();
    assert_eq!(shots.len(), 1);
    assert_eq!(d.external_url.as_deref(), Some(shots[0].as_str()));
    assert_eq!(d.evidence, json!({ "screenshot_url": shots[0] }));
    let calls = fake.calls();
    assert_eq!(calls[0].service, "screenshot");
    assert_eq!(calls[0].credits, 20);
    assert_eq!(calls[0].params.get("full_page").map(String::as_str), Some("true"));
    assert!(!calls[0].params.contains_key("owner_user_id"), "only OpenGraph.io options pass through");
    assert_eq!(fake.credits_used(), 20);
    assert_secret_absent(&out, opengraph_io_app_id());
}

#[tokio::test]
async fn og_version_3_uses_the_v3_path() {
    let fake = FakeOpengraphIo::start().await;
    let c = opengraph_io::OpengraphIo::new(og_config(&fake, opengraph_io_app_id(), Some("3.0")), client());
    c.deliver(&request("capture_screenshot", payload())).await.result.expect("delivered");
    assert!(fake.control.received()[0].path.starts_with("/api/3.0/screenshot/https%3A%2F%2F"));
    assert_eq!(fake.calls()[0].version, "3.0");
}

#[tokio::test]
async fn og_scrape_reads_raw_html_and_the_json_variant() {
    let fake = FakeOpengraphIo::start().await;
    let html = "<html><head><title>Checkout &amp; Pay</title></head><body>hello</body></html>";
    let mut site = Site::new("ignored", "");
    site.html = Some(html.into());
    fake.add_site(TARGET, site);
    let c = og(&fake);

    let raw = c.deliver(&request("scrape_site", payload())).await.result.expect("raw HTML");
    assert_eq!(raw.evidence, json!({ "length": html.chars().count(), "title": "Checkout & Pay" }));

    fake.set_scrape_shape(ScrapeShape::Json);
    let wrapped = c.deliver(&request("scrape_site", payload())).await.result.expect("JSON variant");
    assert_eq!(wrapped.evidence, raw.evidence);
    assert_eq!(fake.calls().iter().filter(|c| c.service == "scrape").count(), 2);

    // A page without a title.
    let mut bare = Site::new("", "");
    bare.html = Some("<p>no title</p>".into());
    fake.add_site("https://bare.example/", bare);
    let mut p = payload();
    p.urls = vec!["https://bare.example/".into()];
    let d = c.deliver(&request("scrape_site", p)).await.result.expect("delivered");
    assert_eq!(d.evidence, json!({ "length": 15, "title": null }));
}

#[tokio::test]
async fn og_without_a_web_url_is_fatal_and_sends_nothing() {
    let fake = FakeOpengraphIo::start().await;
    for urls in [vec![], vec!["ftp://files.example/x".to_owned(), "not a url".to_owned()]] {
        let mut p = payload();
        p.urls = urls;
        let out = og(&fake).deliver(&request("site_info", p)).await;
        let e = err(&out);
        assert!(!e.retryable);
        assert!(e.message.contains("no URL the caller mentioned"), "{}", e.message);
        assert!(out.log.is_empty());
    }
    // The first http(s) URL is used.
    let mut p = payload();
    p.urls = vec!["mailto:x@y.z".into(), "http://second.example/a b".into(), "http://third.example/".into()];
    og(&fake).deliver(&request("site_info", p)).await.result.expect("delivered");
    assert_eq!(fake.calls()[0].target, "http://third.example/");
    assert!(fake.control.received().len() == 1);
}

#[tokio::test]
async fn og_unknown_action_is_fatal() {
    let fake = FakeOpengraphIo::start().await;
    let out = og(&fake).deliver(&request("post_thread", payload())).await;
    assert!(!err(&out).retryable);
    assert!(fake.control.received().is_empty());
    assert_eq!(og(&fake).actions(), &["capture_screenshot", "scrape_site", "site_info"]);
    assert_eq!(og(&fake).kind(), IntegrationKind::OpengraphIo);
}

#[tokio::test]
async fn og_bad_app_id_is_fatal_with_a_clear_message_and_never_leaks() {
    let fake = FakeOpengraphIo::start().await;
    let secret = "og_wrong_secret_9931";
    for style in [ErrorStyle::Docs, ErrorStyle::Nested] {
        fake.set_error_style(style);
        let c = opengraph_io::OpengraphIo::new(og_config(&fake, secret, None), client());
        let out = c.deliver(&request("site_info", payload())).await;
        let e = err(&out);
        assert_eq!(e.status, Some(401));
        assert!(!e.retryable);
        assert!(e.message.contains("app_id") && e.message.contains("Invalid App ID"), "{style:?}: {}", e.message);
        assert_secret_absent(&out, secret);
        assert_eq!(fake.control.received().last().unwrap().query_param("app_id").as_deref(), Some(secret));
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn og_500_timeouts_and_resets_are_retryable_and_429_carries_retry_after() {
    let fake = FakeOpengraphIo::start().await;
    let c = og(&fake);

    fake.control.fail_next(Fault::Status(500));
    let e = err(&c.deliver(&request("site_info", payload())).await);
    assert!(e.retryable && e.status == Some(500), "{e:?}");

    fake.control.fail_next(Fault::Status(502));
    let e = err(&c.deliver(&request("site_info", payload())).await);
    assert!(e.retryable && e.message.contains("unavailable"), "{e:?}");

    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 7 });
    let e = err(&c.deliver(&request("site_info", payload())).await);
    assert!(e.retryable);
    assert_eq!(e.status, Some(429));
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));

    fake.control.fail_next(Fault::Delay(Duration::from_millis(1500)));
    let out = c.deliver(&request("capture_screenshot", payload())).await;
    let e = err(&out);
    assert!(e.retryable && e.status.is_none() && e.message.contains("timed out"), "{e:?}");
    assert_eq!(out.log.len(), 1);
    assert!(out.log[0].error.is_some());
    assert_secret_absent(&out, opengraph_io_app_id());

    fake.control.fail_next(Fault::Reset);
    let e = err(&c.deliver(&request("site_info", payload())).await);
    assert!(e.retryable, "{e:?}");

    // A read-only call: after a reset that took effect, the retry simply reads again.
    fake.control.fail_next(Fault::ResetAfterEffect);
    assert!(err(&c.deliver(&request("site_info", payload())).await).retryable);
    c.deliver(&request("site_info", payload())).await.result.expect("retry reads again");
}

#[tokio::test]
async fn og_reads_the_message_of_either_error_form() {
    let fake = FakeOpengraphIo::start().await;
    fake.add_site("https://gone.example/", Site { status: 404, ..Site::new("", "") });
    fake.add_site("https://blocked.example/", Site { status: 403, ..Site::new("", "") });
    let c = og(&fake);
    for style in [ErrorStyle::Docs, ErrorStyle::Nested] {
        fake.set_error_style(style);
        let mut p = payload();
        p.urls = vec!["https://gone.example/".into()];
        let e = err(&c.deliver(&request("site_info", p.clone())).await);
        assert_eq!(e.status, Some(404));
        assert!(!e.retryable && e.message.contains("Target not found"), "{style:?}: {}", e.message);
        p.urls = vec!["https://blocked.example/".into()];
        let e = err(&c.deliver(&request("site_info", p)).await);
        assert!(!e.retryable && e.message.contains("blocks OpenGraph.io"), "{}", e.message);
    }
    // A bad option is the request's fault.
    let mut p = payload();
    p.options.insert("dimensions".into(), json!("huge"));
    let e = err(&c.deliver(&request("capture_screenshot", p)).await);
    assert_eq!(e.status, Some(400));
    assert!(!e.retryable && e.message.contains("invalid dimensions"), "{}", e.message);
}

#[tokio::test]
async fn og_config_is_validated_and_debug_hides_the_app_id() {
    let fake = FakeOpengraphIo::start().await;
    let build = |c: Value| connectors::build(IntegrationKind::OpengraphIo, &c, client()).err();
    assert!(build(json!({ "app_id": "abc", "base_url": fake.base_url })).is_none());
    let f = build(json!({ "app_id": "" })).unwrap();
    assert_eq!(f.path, "config.app_id");
    let f = build(json!({ "app_id": "abc", "version": "2.0" })).unwrap();
    assert_eq!(f.path, "config.version");
    let f = build(json!({ "app_id": "abc", "base_url": "ftp://x.example" })).unwrap();
    assert_eq!(f.path, "config.base_url");
    let f = build(json!({ "app_id": "abc", "extra": 1 })).unwrap();
    assert!(f.message.contains("extra"), "{f:?}");
    assert!(build(json!({})).is_some());

    let c = og_config(&fake, "og_very_secret_id", Some("3.0"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("og_very_secret_id") && shown.contains("3.0"), "{shown}");
}

// --------------------------------------------------------------------------------------------
// Heartbeat

fn hb_key() -> &'static str {
    dialnexa_testkit::fakes::heartbeat::API_KEY
}

fn hb_config(fake: &FakeHeartbeat, key: &str, extra: Value) -> heartbeat::Config {
    let mut c = json!({ "api_key": key, "base_url": fake.base_url });
    if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(c).unwrap()
}

fn hb(fake: &FakeHeartbeat, extra: Value) -> heartbeat::Heartbeat {
    heartbeat::Heartbeat::new(hb_config(fake, hb_key(), extra), client())
}

const ALLOWED_TAGS: &[&str] = &["p", "a", "b", "h1", "h2", "h3", "ul", "li", "br"];

fn tags_in(text: &str) -> Vec<String> {
    text.split('<').skip(1).map(|t| t.trim_start_matches('/').split(|c: char| c == '>' || c.is_whitespace()).next().unwrap_or("").to_owned()).collect()
}

fn assert_rich_text(text: &str) {
    for t in tags_in(text) {
        assert!(ALLOWED_TAGS.contains(&t.as_str()), "tag <{t}> is not allowed: {text}");
    }
}

#[tokio::test]
async fn hb_retrieve_user_by_email_verifies_a_strong_match() {
    let fake = FakeHeartbeat::start().await;
    fake.add_user("Someone Else", "other@example.com");
    let id = fake.add_user_profile(json!({ "name": "Ana Lima", "email": "Ana.Lima@example.com",
        "onboardingResponses": [{ "question": "Your phone number?", "answer": "+1 (415) 555-0101", "isPrivate": true }] }));
    let out = hb(&fake, json!({})).deliver(&request("retrieve_user", payload())).await;
    let d = out.result.clone().expect("delivered");
    assert_eq!(d.external_id.as_deref(), Some(id.as_str()));
    assert_eq!(d.evidence["user_id"], id.as_str());
    assert_eq!(d.evidence["name"], "Ana Lima");
    assert_eq!(d.evidence["email"], "Ana.Lima@example.com");
    assert_eq!(d.evidence["match_confidence"], 1.0);
    assert_eq!(d.evidence["matched"], true);
    let reasons = d.evidence["reasons"].to_string();
    assert!(reasons.contains("email matches exactly") && reasons.contains("name matches") && reasons.contains("phone matches"), "{reasons}");

    let got = fake.control.received();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("GET", "/v0/find/users"));
    assert_eq!(got[0].query_param("email").as_deref(), Some("ana.lima@example.com"));
    assert_eq!(got[0].header("authorization"), Some(format!("Bearer {}", hb_key()).as_str()));
    assert!(!out.log[0].request.contains("ana.lima"), "the email stays out of the log line: {}", out.log[0].request);
    assert_secret_absent(&out, hb_key());
}

#[tokio::test]
async fn hb_retrieve_user_accepts_every_find_users_wrapper() {
    let fake = FakeHeartbeat::start().await;
    fake.add_user("Ana Lima", "ana.lima@example.com");
    let c = hb(&fake, json!({}));
    for shape in [FindUsersShape::BareArray, FindUsersShape::Users, FindUsersShape::Data] {
        fake.set_find_users_shape(shape);
        let d = c.deliver(&request("retrieve_user", payload())).await.result.expect("delivered");
        assert_eq!(d.evidence["matched"], true, "{shape:?}");
        assert_eq!(d.evidence["match_confidence"], 1.0, "{shape:?}: {}", d.evidence);
    }
}

#[tokio::test]
async fn hb_retrieve_user_flags_a_weak_match_for_review() {
    let fake = FakeHeartbeat::start().await;
    fake.add_user("Bruno Costa", "ana.lima@example.com");
    let d = hb(&fake, json!({})).deliver(&request("retrieve_user", payload())).await.result.expect("delivered");
    let c = d.evidence["match_confidence"].as_f64().unwrap();
    assert!(c < 0.8, "{c}");
    assert!(d.evidence["reasons"].to_string().contains("name differs"), "{}", d.evidence);
}

#[tokio::test]
async fn hb_retrieve_user_by_the_rules_user_id() {
    let fake = FakeHeartbeat::start().await;
    let id = fake.add_user_profile(json!({ "firstName": "Ana", "lastName": "Lima", "name": "", "email": "ana@elsewhere.example" }));
    let mut p = payload();
    p.caller.email = None;
    p.options.insert("user_id".into(), json!(id));
    let d = hb(&fake, json!({})).deliver(&request("retrieve_user", p.clone())).await.result.expect("delivered");
    assert_eq!(fake.control.received()[0].path, format!("/v0/users/{id}"));
    assert_eq!(d.evidence["name"], "Ana Lima");
    assert_eq!(d.evidence["matched"], true);
    let c = d.evidence["match_confidence"].as_f64().unwrap();
    assert!((0.5..0.8).contains(&c), "a name alone is not enough to skip review: {c}");

    // An unknown id is "not found", not an error.
    p.options.insert("user_id".into(), json!("no-such-user"));
    let d = hb(&fake, json!({})).deliver(&request("retrieve_user", p)).await.result.expect("delivered");
    assert_eq!(d.evidence["matched"], false);
    assert_eq!(d.evidence["match_confidence"], 0.0);
}

#[tokio::test]
async fn hb_retrieve_user_with_nobody_found_is_delivered_unmatched() {
    let fake = FakeHeartbeat::start().await;
    fake.add_user("Someone Else", "other@example.com");
    let d = hb(&fake, json!({})).deliver(&request("retrieve_user", payload())).await.result.expect("delivered");
    assert_eq!(d.evidence["matched"], false);
    assert_eq!(d.evidence["match_confidence"], 0.0);
    assert_eq!(d.evidence["user_id"], Value::Null);
    assert!(d.external_id.is_none());

    // No email and no user id: nothing to look up, no request.
    let mut p = payload();
    p.caller.email = None;
    let before = fake.control.received().len();
    let d = hb(&fake, json!({})).deliver(&request("retrieve_user", p)).await.result.expect("delivered");
    assert_eq!(d.evidence["matched"], false);
    assert_eq!(fake.control.received().len(), before);
}

#[tokio::test]
async fn hb_get_events_lists_the_groups_upcoming_events() {
    let fake = FakeHeartbeat::start().await;
    let now = jiff::Timestamp::now();
    let at = |h: i64| (now + jiff::SignedDuration::from_hours(h)).to_string();
    let later = fake.add_event("Office hours", &at(48), &["grp-1"]);
    let soon = fake.add_event("Incident review", &at(2), &["grp-1"]);
    fake.add_event("Last week's retro", &at(-170), &["grp-1"]);
    fake.add_event("Other group's event", &at(5), &["grp-2"]);
    let out = hb(&fake, json!({ "group_id": "grp-1" })).deliver(&request("get_events", payload())).await;
    let d = out.result.expect("delivered");
    assert_eq!(d.evidence["upcoming"], 2);
    let events = d.evidence["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], json!({ "id": soon, "name": "Incident review", "startTime": at(2) }));
    assert_eq!(events[1]["id"], later.as_str());
    let got = fake.control.received();
    assert_eq!(got[0].path, "/v0/events");
    assert_eq!(got[0].query_param("groupID").as_deref(), Some("grp-1"));
    assert!(got[0].header("authorization").is_some());
}

#[tokio::test]
async fn hb_notify_owner_sends_one_action_ready_direct_message() {
    let fake = FakeHeartbeat::start().await;
    let owner = fake.add_user("Olivia Owner", "olivia@example.com");
    let out = hb(&fake, json!({ "owner_user_id": owner })).deliver(&request("notify_owner", payload())).await;
    let d = out.result.clone().expect("delivered");
    assert_eq!(d.evidence, json!({ "to": owner, "marker": "[call call_01J9SEED]" }));
    assert_eq!(out.log[0].status, Some(204));

    let dms = fake.direct_messages();
    assert_eq!(dms.len(), 1);
    assert_eq!(dms[0].to, owner);
    let text = &dms[0].text;
    assert_rich_text(text);
    for needle in [
        "Checkout page returns 503 in us-east-1",
        "<b>Reason:</b> incident rule",
        "<b>Urgency:</b> high",
        "<b>Owner:</b> On-call payments",
        "<b>Next step:</b> Check the checkout service health",
        "Ana Lima, ana.lima@example.com",
        "<b>Customer:</b> Acme Corp",
        "<b>Affected:</b> checkout API",
        "<li><b>Symptom:</b> 503 on checkout</li>",
        "<li><b>Impact:</b> no orders since 09:00</li>",
        "<a href=\"https://dialnexa.example/calls/call_01J9SEED\">Call detail</a>",
        "<a href=\"https://dialnexa.example/calls/call_01J9SEED/transcript\">Transcript</a>",
        "<a href=\"https://dialnexa.example/calls/call_01J9SEED/recording.wav\">Recording</a>",
        "<a href=\"https://og.example/shot.jpeg\">screenshot</a>",
        "[call call_01J9SEED]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    let r = &fake.control.received()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("PUT", "/v0/directMessages"));
    assert_eq!(r.header("authorization"), Some(format!("Bearer {}", hb_key()).as_str()));
    assert_eq!(r.json()["to"], owner.as_str());

    // The rule can name the owner, or send to the manager.
    let mut p = payload();
    p.options.insert("owner_user_id".into(), json!("user-from-rule"));
    hb(&fake, json!({ "owner_user_id": owner })).deliver(&request("notify_owner", p.clone())).await.result.expect("delivered");
    p.options.insert("recipient".into(), json!("manager"));
    hb(&fake, json!({ "manager_user_id": "mgr-1" })).deliver(&request("notify_owner", p)).await.result.expect("delivered");
    let to: Vec<String> = fake.direct_messages().into_iter().map(|m| m.to).collect();
    assert_eq!(to, vec![owner, "user-from-rule".to_owned(), "mgr-1".to_owned()]);
}

#[tokio::test]
async fn hb_notify_owner_without_an_owner_is_fatal_and_sends_nothing() {
    let fake = FakeHeartbeat::start().await;
    let out = hb(&fake, json!({})).deliver(&request("notify_owner", payload())).await;
    let e = err(&out);
    assert!(!e.retryable && e.message.contains("owner_user_id"), "{}", e.message);
    assert!(fake.control.received().is_empty());
}

#[tokio::test]
async fn hb_notify_owner_has_no_dedup_so_a_lost_answer_can_duplicate_but_the_marker_shows_it() {
    // Documented risk: Heartbeat has no idempotency and no DM search.
    let fake = FakeHeartbeat::start().await;
    let c = hb(&fake, json!({ "owner_user_id": "owner-1" }));
    fake.control.fail_next(Fault::ResetAfterEffect);
    let first = c.deliver(&request("notify_owner", payload())).await;
    assert!(err(&first).retryable);
    c.deliver(&request("notify_owner", payload())).await.result.expect("retry delivered");
    let dms = fake.direct_messages();
    assert_eq!(dms.len(), 2);
    assert!(dms.iter().all(|m| m.text.contains("[call call_01J9SEED]")));
}

#[tokio::test]
async fn hb_post_thread_posts_once_and_finds_its_marker_afterwards() {
    let fake = FakeHeartbeat::start().await;
    fake.add_channel_message("chan-ops", "<p>unrelated [call call_OTHER]</p>");
    let c = hb(&fake, json!({ "channel_id": "chan-ops", "manager_user_id": "admin-7" }));
    let out = c.deliver(&request("post_thread", payload())).await;
    let d = out.result.clone().expect("delivered");
    assert!(!d.deduplicated);
    assert_eq!(d.evidence, json!({ "channel_id": "chan-ops", "marker": "[call call_01J9SEED]" }));
    let msgs: Vec<_> = fake.channel_messages().into_iter().filter(|m| m.text.contains("call_01J9SEED")).collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].channel_id, "chan-ops");
    assert_eq!(msgs[0].from.as_deref(), Some("admin-7"));
    assert_rich_text(&msgs[0].text);
    assert!(msgs[0].text.contains("<b>Next step:</b>"));

    let got = fake.control.received();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("GET", "/v0/chatChannel/chan-ops/messages"));
    assert_eq!((got[1].method.as_str(), got[1].path.as_str()), ("PUT", "/v0/chatChannel/chan-ops/message"));
    assert!(got.iter().all(|r| r.header("authorization") == Some(format!("Bearer {}", hb_key()).as_str())));
    assert_eq!(got[1].json()["from"], "admin-7");

    // Delivered again (a replay): found, nothing new.
    let again = c.deliver(&request("post_thread", payload())).await.result.expect("delivered");
    assert!(again.deduplicated);
    assert_eq!(again.external_id.as_deref(), Some(msgs[0].id.as_str()));
    assert_eq!(fake.channel_messages().len(), 2);
    assert_eq!(fake.control.received().len(), 3, "only the search");
}

#[tokio::test]
async fn hb_post_thread_after_a_reset_that_took_effect_does_not_post_twice() {
    let fake = FakeHeartbeat::start().await;
    let c = hb(&fake, json!({ "channel_id": "chan-ops", "owner_user_id": "owner-1" }));
    fake.control.fail_next(Fault::Status(500)); // the search fails first: nothing posted
    assert!(err(&c.deliver(&request("post_thread", payload())).await).retryable);
    assert!(fake.channel_messages().is_empty());

    // Search passes, then the post takes effect but the answer is lost.
    fake.control.fail_times(1, Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    let out = c.deliver(&request("post_thread", payload())).await;
    assert!(err(&out).retryable);
    assert_eq!(fake.channel_messages().len(), 1);

    let retry = c.deliver(&request("post_thread", payload())).await.result.expect("retry delivered");
    assert!(retry.deduplicated);
    assert_eq!(fake.channel_messages().len(), 1);
    assert_eq!(fake.channel_messages()[0].from.as_deref(), Some("owner-1"));
}

#[tokio::test]
async fn hb_post_thread_needs_a_channel_and_a_sender() {
    let fake = FakeHeartbeat::start().await;
    let e = err(&hb(&fake, json!({})).deliver(&request("post_thread", payload())).await);
    assert!(!e.retryable && e.message.contains("channel_id"), "{}", e.message);
    assert!(fake.control.received().is_empty());

    // No sender configured: Heartbeat's ValidationError is fatal and readable.
    let e = err(&hb(&fake, json!({ "channel_id": "chan-ops" })).deliver(&request("post_thread", payload())).await);
    assert_eq!(e.status, Some(400));
    assert!(!e.retryable && e.message.contains("ValidationError") && e.message.contains("from"), "{}", e.message);
    assert!(fake.channel_messages().is_empty());

    // Where the service does not require it, it is left out.
    fake.set_require_chat_from(false);
    hb(&fake, json!({ "channel_id": "chan-ops" })).deliver(&request("post_thread", payload())).await.result.expect("delivered");
    assert_eq!(fake.channel_messages()[0].from, None);
}

#[tokio::test]
async fn hb_bad_key_is_fatal_clear_and_never_leaks() {
    let fake = FakeHeartbeat::start().await;
    let secret = "hb:wrong_key_5521";
    for action in heartbeat::ACTIONS {
        let c = heartbeat::Heartbeat::new(hb_config(&fake, secret, json!({ "owner_user_id": "o", "channel_id": "c", "group_id": "g" })), client());
        let out = c.deliver(&request(action, payload())).await;
        let e = err(&out);
        assert_eq!(e.status, Some(401), "{action}");
        assert!(!e.retryable);
        assert!(e.message.contains("api_key") && e.message.contains("Invalid API Key"), "{}", e.message);
        assert_secret_absent(&out, secret);
        assert_eq!(out.log.len(), 1, "{action}: fail fast, no second request");
    }
    assert!(fake.direct_messages().is_empty() && fake.channel_messages().is_empty());
}

#[tokio::test]
async fn hb_fake_answers_like_heartbeat() {
    let fake = FakeHeartbeat::start().await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/v0/users", fake.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-ratelimit-limit"], "20");
    assert!(r.headers().contains_key("x-ratelimit-remaining") && r.headers().contains_key("x-ratelimit-reset"));
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "error": true, "message": "Invalid API Key" }));

    let r = http.get(format!("{}/v0/roles", fake.base_url)).bearer_auth(hb_key()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-ratelimit-reset"));

    let r = http.put(format!("{}/v0/directMessages", fake.base_url)).bearer_auth(hb_key()).json(&json!({ "text": "<p>x</p>" })).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], true);

    fake.set_enforce_rate_limit(true);
    let mut statuses = vec![];
    for _ in 0..22 {
        statuses.push(http.get(format!("{}/v0/roles", fake.base_url)).bearer_auth(hb_key()).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn hb_500_timeouts_and_resets_are_retryable_and_429_carries_retry_after() {
    let fake = FakeHeartbeat::start().await;
    fake.add_user("Ana Lima", "ana.lima@example.com");
    let c = hb(&fake, json!({ "owner_user_id": "o", "group_id": "g" }));

    fake.control.fail_next(Fault::Status(500));
    let e = err(&c.deliver(&request("retrieve_user", payload())).await);
    assert!(e.retryable && e.status == Some(500));

    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 3 });
    let e = err(&c.deliver(&request("get_events", payload())).await);
    assert!(e.retryable);
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));

    fake.control.fail_next(Fault::Delay(Duration::from_millis(1500)));
    let out = c.deliver(&request("notify_owner", payload())).await;
    let e = err(&out);
    assert!(e.retryable && e.message.contains("timed out"), "{e:?}");
    assert_secret_absent(&out, hb_key());

    fake.control.fail_next(Fault::Reset);
    assert!(err(&c.deliver(&request("retrieve_user", payload())).await).retryable);

    // The fake's own 429 without Retry-After: the x-ratelimit-reset header gives the wait.
    fake.set_retry_after_on_429(false);
    fake.set_enforce_rate_limit(true);
    let http = reqwest::Client::new();
    for _ in 0..21 {
        let _ = http.get(format!("{}/v0/roles", fake.base_url)).bearer_auth(hb_key()).send().await;
    }
    let e = err(&c.deliver(&request("get_events", payload())).await);
    assert_eq!(e.status, Some(429));
    assert!(e.retryable);
    assert!(e.retry_after.is_some_and(|d| d >= Duration::from_secs(1) && d <= Duration::from_secs(3)), "{e:?}");
}

#[tokio::test]
async fn hb_config_is_validated_and_debug_hides_the_key() {
    let fake = FakeHeartbeat::start().await;
    let build = |c: Value| connectors::build(IntegrationKind::Heartbeat, &c, client()).err();
    assert!(build(json!({ "api_key": "k", "base_url": format!("{}/v0", fake.base_url), "owner_user_id": "u1", "manager_user_id": "u2", "channel_id": "c", "group_id": "g" })).is_none());
    assert_eq!(build(json!({ "api_key": " " })).unwrap().path, "config.api_key");
    assert_eq!(build(json!({ "api_key": "k", "channel_id": "a/b" })).unwrap().path, "config.channel_id");
    assert_eq!(build(json!({ "api_key": "k", "owner_user_id": "" })).unwrap().path, "config.owner_user_id");
    assert_eq!(build(json!({ "api_key": "k", "base_url": "api.heartbeat.chat" })).unwrap().path, "config.base_url");
    assert!(build(json!({ "api_key": "k", "webhook": "x" })).unwrap().message.contains("webhook"));

    let c = hb_config(&fake, "hb:super_secret_key", json!({ "owner_user_id": "u1" }));
    let shown = format!("{c:?}");
    assert!(!shown.contains("super_secret") && shown.contains("u1"), "{shown}");

    // A base URL given with /v0 works the same.
    fake.add_user("Ana Lima", "ana.lima@example.com");
    let cfg: heartbeat::Config = serde_json::from_value(json!({ "api_key": hb_key(), "base_url": format!("{}/v0/", fake.base_url) })).unwrap();
    let d = heartbeat::Heartbeat::new(cfg, client()).deliver(&request("retrieve_user", payload())).await.result.expect("delivered");
    assert_eq!(d.evidence["matched"], true);
}
