//! Contract tests of updates: a repeat contact about an issue already handed off adds to the
//! earlier call's record (a Jira comment, a Zendesk internal note, a Slack thread reply) instead
//! of creating one, exactly once, against the stateful fakes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dialnexa_handoff::connector::{Connector, Delivered, ExistingRecord, HandoffRequest, Outcome, http_client};
use dialnexa_handoff::connectors;
use dialnexa_handoff::payload::{CallerInfo, Links};
use dialnexa_handoff::{DeliveryError, HandoffPayload, IntegrationKind};
use dialnexa_testkit::fakes::Fault;
use dialnexa_testkit::fakes::heartbeat::{self, FakeHeartbeat};
use dialnexa_testkit::fakes::jira::FakeJira;
use dialnexa_testkit::fakes::slack::{self, FakeSlack, SlackSwitches};
use dialnexa_testkit::fakes::zendesk::FakeZendesk;
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

const FIRST: &str = "call-first";
const REPEAT: &str = "call-repeat";

fn payload(call_id: &str) -> HandoffPayload {
    let repeat = call_id == REPEAT;
    let mut evidence = BTreeMap::new();
    evidence.insert("screenshot".to_owned(), format!("https://cdn.example.com/shots/{call_id}.png"));
    HandoffPayload {
        call_id: call_id.into(),
        title: "Checkout API down with 503s in us-east-1".into(),
        summary: if repeat {
            "Dana called back: checkout still fails with 503 two hours later, now on the EU store as well.".into()
        } else {
            "Caller reports every checkout request failing with 503 since 09:40 UTC.".into()
        },
        reason: if repeat { "Repeat contact about an open incident (second call in 2 hours)".into() } else { "Incident rule: outage language".into() },
        urgency: "urgent".into(),
        owner: Some("payments-oncall".into()),
        next_step: if repeat { "Escalate to the payments engineering manager".into() } else { "Page the payments on-call".into() },
        category: "incident".into(),
        severity: Some("sev1".into()),
        sentiment: "negative".into(),
        caller: CallerInfo { name: Some("Dana Reyes".into()), email: Some("dana@shopco.example".into()), ..CallerInfo::default() },
        affected: Some("ShopCo production checkout".into()),
        links: Links {
            call: format!("https://dialnexa.example.com/calls/{call_id}"),
            transcript: format!("https://dialnexa.example.com/calls/{call_id}/transcript"),
            recording: Some(format!("https://dialnexa.example.com/calls/{call_id}/recording.wav")),
            evidence,
        },
        tags: vec![format!("call-{call_id}"), "incident".into()],
        ..HandoffPayload::default()
    }
}

fn request(kind: &str, action: &str, call_id: &str, attempt: u32, update: Option<ExistingRecord>) -> HandoffRequest {
    HandoffRequest {
        handoff_id: format!("h-{call_id}-{kind}"),
        idempotency_key: format!("{call_id}:{kind}:{action}"),
        action: action.into(),
        payload: payload(call_id),
        attempt,
        update,
    }
}

/// The record an earlier delivery made, as the server hands it to the repeat.
fn existing(call_id: &str, d: &Delivered) -> ExistingRecord {
    ExistingRecord {
        call_id: call_id.into(),
        external_id: d.external_id.clone().expect("the create gave an external id"),
        external_url: d.external_url.clone(),
        evidence: d.evidence.clone(),
    }
}

fn connector(kind: IntegrationKind, config: Value) -> Arc<dyn Connector> {
    match connectors::build(kind, &config, http_client(Duration::from_secs(2))) {
        Ok(c) => c,
        Err(e) => panic!("config refused: {e}"),
    }
}

fn ok(o: &Outcome) -> Delivered {
    match &o.result {
        Ok(d) => d.clone(),
        Err(e) => panic!("expected success, got {e:?}\nlog: {:?}", o.log),
    }
}

fn err(o: &Outcome) -> DeliveryError {
    match &o.result {
        Ok(d) => panic!("expected an error, got {d:?}"),
        Err(e) => e.clone(),
    }
}

/// Everything an outcome holds, as text (to look for secrets).
fn dump(o: &Outcome) -> String {
    let result = match &o.result {
        Ok(d) => serde_json::to_string(d).unwrap_or_default(),
        Err(e) => format!("{e:?}"),
    };
    format!("{result}\n{:?}", o.log)
}

/// The new call's text a repeat must carry.
fn assert_repeat_text(text: &str) {
    for want in [
        "Repeat contact",
        REPEAT,
        FIRST,
        "still fails with 503 two hours later",
        "Repeat contact about an open incident",
        "Escalate to the payments engineering manager",
        "https://dialnexa.example.com/calls/call-repeat",
        "https://dialnexa.example.com/calls/call-repeat/transcript",
        "dialnexa-key: call-repeat:",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
}

// ---------------------------------------------------------------- which connectors update

#[tokio::test]
async fn connectors_say_which_actions_they_update() {
    let jira = FakeJira::start().await;
    let zd = FakeZendesk::start().await;
    let sl = FakeSlack::start().await;
    let hb = FakeHeartbeat::start().await;
    assert!(connector(IntegrationKind::Jira, jira_config(&jira)).updates("create_issue"));
    assert!(!connector(IntegrationKind::Jira, jira_config(&jira)).updates("post_message"));
    assert!(connector(IntegrationKind::Zendesk, zendesk_config(&zd)).updates("create_ticket"));
    assert!(connector(IntegrationKind::Slack, slack_bot_config(&sl)).updates("post_message"));
    let hook = json!({ "webhook_url": format!("https://hooks.slack.com{}", sl.webhook_path), "base_url": sl.hooks_url });
    assert!(!connector(IntegrationKind::Slack, hook).updates("post_message"), "a webhook message has no ts and no thread to reply in");
    let h =
        connector(IntegrationKind::Heartbeat, json!({ "api_key": heartbeat::API_KEY, "base_url": hb.base_url, "channel_id": "ch1", "owner_user_id": "u1" }));
    for action in h.actions() {
        assert!(!h.updates(action), "heartbeat {action}: no documented way to add to a message");
    }
}

// ---------------------------------------------------------------- Jira

fn jira_config(fake: &FakeJira) -> Value {
    json!({ "site": "https://acme.atlassian.net", "email": fake.email, "api_token": fake.api_token, "project_key": "OPS", "base_url": fake.base_url })
}

async fn jira_with_issue() -> (FakeJira, Arc<dyn Connector>, ExistingRecord) {
    let fake = FakeJira::start().await;
    let c = connector(IntegrationKind::Jira, jira_config(&fake));
    let created = ok(&c.deliver(&request("jira", "create_issue", FIRST, 1, None)).await);
    fake.control.clear_received();
    (fake, c, existing(FIRST, &created))
}

#[tokio::test]
async fn jira_repeat_comments_on_the_earlier_issue() {
    let (fake, c, rec) = jira_with_issue().await;
    let out = c.deliver(&request("jira", "create_issue", REPEAT, 1, Some(rec))).await;
    let d = ok(&out);
    assert!(!d.deduplicated);
    assert_eq!(d.external_id.as_deref(), Some("OPS-1"), "the existing issue");
    assert_eq!(d.external_url.as_deref(), Some("https://acme.atlassian.net/browse/OPS-1"));
    assert_eq!(d.evidence["updated"], true);
    assert_eq!(d.evidence["repeat_of_call"], FIRST);
    let comment_id = d.evidence["comment_id"].as_str().expect("comment id").to_owned();
    assert_eq!(d.evidence["comment_url"], format!("https://acme.atlassian.net/browse/OPS-1?focusedCommentId={comment_id}"));

    assert_eq!(fake.issues().len(), 1, "nothing created");
    let comments = fake.comments("OPS-1");
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].id, comment_id);
    assert_eq!(comments[0].body["type"], "doc", "the comment is ADF");
    assert_repeat_text(&comments[0].text());

    let rec = fake.control.received();
    let calls: Vec<(&str, &str)> = rec.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(calls, [("GET", "/rest/api/3/issue/OPS-1/comment"), ("POST", "/rest/api/3/issue/OPS-1/comment")], "read, then add; no search, no create");
    assert!(!dump(&out).contains(&fake.api_token));
}

#[tokio::test]
async fn jira_retried_update_adds_one_comment() {
    let (fake, c, rec) = jira_with_issue().await;
    let first = ok(&c.deliver(&request("jira", "create_issue", REPEAT, 1, Some(rec.clone()))).await);
    let again = ok(&c.deliver(&request("jira", "create_issue", REPEAT, 2, Some(rec.clone()))).await);
    assert!(again.deduplicated, "the marker was found");
    assert_eq!(again.evidence["updated"], true);
    assert_eq!(again.evidence["comment_id"], first.evidence["comment_id"]);
    assert_eq!(again.external_id.as_deref(), Some("OPS-1"));
    assert_eq!(fake.comments("OPS-1").len(), 1);

    // The comment takes effect but its answer is lost: the retry finds it.
    let other = ExistingRecord { call_id: FIRST.into(), ..rec };
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    let lost = c.deliver(&request("jira", "create_issue", "call-third", 1, Some(other.clone()))).await;
    assert!(err(&lost).retryable);
    assert_eq!(fake.comments("OPS-1").len(), 2, "it took effect");
    let retry = ok(&c.deliver(&request("jira", "create_issue", "call-third", 2, Some(other))).await);
    assert!(retry.deduplicated);
    assert_eq!(fake.comments("OPS-1").len(), 2, "no second comment");
}

#[tokio::test]
async fn jira_update_of_a_deleted_issue_is_fatal() {
    let (fake, c, rec) = jira_with_issue().await;
    fake.delete_issue("OPS-1");
    let e = err(&c.deliver(&request("jira", "create_issue", REPEAT, 1, Some(rec))).await);
    assert!(!e.retryable, "{e:?}");
    assert_eq!(e.status, Some(404));
    assert!(e.message.contains("OPS-1") && e.message.contains("no longer exists"), "{}", e.message);
    assert!(fake.issues().is_empty(), "nothing created instead");
}

#[tokio::test]
async fn jira_rate_limit_during_update_is_retried_later() {
    let (fake, c, rec) = jira_with_issue().await;
    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 7 });
    let e = err(&c.deliver(&request("jira", "create_issue", REPEAT, 1, Some(rec.clone()))).await);
    assert!(e.retryable && e.status == Some(429), "{e:?}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    // On the add itself, too.
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 3 });
    let e = err(&c.deliver(&request("jira", "create_issue", REPEAT, 2, Some(rec.clone()))).await);
    assert!(e.retryable && e.retry_after == Some(Duration::from_secs(3)), "{e:?}");
    assert!(fake.comments("OPS-1").is_empty());
    ok(&c.deliver(&request("jira", "create_issue", REPEAT, 3, Some(rec))).await);
    assert_eq!(fake.comments("OPS-1").len(), 1);
}

#[tokio::test]
async fn jira_marker_is_found_beyond_the_first_page() {
    let (fake, c, rec) = jira_with_issue().await;
    ok(&c.deliver(&request("jira", "create_issue", REPEAT, 1, Some(rec.clone()))).await);
    // 105 newer comments by people push ours off the first page (newest first, 100 a page).
    let people = connector(IntegrationKind::Jira, jira_config(&fake));
    for i in 0..105 {
        let r = request("jira", "create_issue", &format!("call-p{i}"), 1, Some(rec.clone()));
        ok(&people.deliver(&r).await);
    }
    assert_eq!(fake.comments("OPS-1").len(), 106);
    let again = ok(&c.deliver(&request("jira", "create_issue", REPEAT, 2, Some(rec))).await);
    assert!(again.deduplicated);
    assert_eq!(fake.comments("OPS-1").len(), 106);
}

#[tokio::test]
async fn jira_fake_comment_contract() {
    let fake = FakeJira::start().await;
    let key = fake.seed_issue("OPS", "Seeded", &["x"]);
    let http = reqwest::Client::new();
    let url = format!("{}/rest/api/3/issue/{key}/comment", fake.base_url);
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&fake.email, Some(&fake.api_token));
    let r = http.post(&url).json(&json!({ "body": "plain text" })).send().await.expect("send");
    assert_eq!(r.status(), 401, "auth first");
    let r = auth(http.post(&url)).json(&json!({ "body": "plain text" })).send().await.expect("send");
    assert_eq!(r.status(), 400, "v3 comments are ADF");
    let r = auth(http.post(&url)).json(&json!({ "body": { "type": "doc", "version": 1, "content": [] } })).send().await.expect("send");
    assert_eq!(r.status(), 400, "empty");
    let doc = |t: &str| json!({ "body": { "type": "doc", "version": 1, "content": [{ "type": "paragraph", "content": [{ "type": "text", "text": t }] }] } });
    for t in ["one", "two", "two"] {
        let r = auth(http.post(&url)).json(&doc(t)).send().await.expect("send");
        assert_eq!(r.status(), 201);
    }
    assert_eq!(fake.comments(&key).len(), 3, "the fake stores every comment, duplicates included");
    let page: Value = auth(http.get(format!("{url}?orderBy=-created&maxResults=2"))).send().await.expect("send").json().await.expect("json");
    assert_eq!((page["total"].clone(), page["comments"].as_array().map(Vec::len)), (json!(3), Some(2)));
    assert_eq!(page["comments"][0]["body"]["content"][0]["content"][0]["text"], "two");
    let r = auth(http.get(format!("{}/rest/api/3/issue/OPS-404/comment", fake.base_url))).send().await.expect("send");
    assert_eq!(r.status(), 404);
}

// ---------------------------------------------------------------- Zendesk

fn zendesk_config(fake: &FakeZendesk) -> Value {
    json!({ "subdomain": "acme", "email": fake.email, "api_token": fake.api_token, "base_url": fake.base_url })
}

async fn zendesk_with_ticket() -> (FakeZendesk, Arc<dyn Connector>, ExistingRecord, u64) {
    let fake = FakeZendesk::start().await;
    let c = connector(IntegrationKind::Zendesk, zendesk_config(&fake));
    let created = ok(&c.deliver(&request("zendesk", "create_ticket", FIRST, 1, None)).await);
    let id: u64 = created.external_id.as_deref().and_then(|i| i.parse().ok()).expect("ticket id");
    fake.control.clear_received();
    (fake, c, existing(FIRST, &created), id)
}

#[tokio::test]
async fn zendesk_repeat_adds_an_internal_note_to_the_earlier_ticket() {
    let (fake, c, rec, id) = zendesk_with_ticket().await;
    let out = c.deliver(&request("zendesk", "create_ticket", REPEAT, 1, Some(rec))).await;
    let d = ok(&out);
    assert!(!d.deduplicated);
    assert_eq!(d.external_id, Some(id.to_string()));
    assert_eq!(d.external_url, Some(format!("https://acme.zendesk.com/agent/tickets/{id}")));
    assert_eq!(d.evidence["updated"], true);
    assert_eq!(d.evidence["repeat_of_call"], FIRST);

    assert_eq!(fake.tickets().len(), 1, "nothing created");
    let comments = fake.comments(id);
    assert_eq!(comments.len(), 2, "the ticket's first comment and the note");
    let note = &comments[1];
    assert!(!note.public, "an internal note");
    assert_eq!(d.evidence["comment_id"], note.id.to_string());
    assert_repeat_text(&note.body);

    let rec = fake.control.received();
    let calls: Vec<(&str, &str)> = rec.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(calls, [("GET", format!("/api/v2/tickets/{id}/comments").as_str()), ("PUT", format!("/api/v2/tickets/{id}").as_str())]);
    let put = rec[1].json();
    assert_eq!(put["ticket"]["comment"]["public"], false);
    assert_eq!(put["ticket"].as_object().map(|o| o.len()), Some(1), "only a comment: {put}");
    assert!(!dump(&out).contains(&fake.api_token));
}

#[tokio::test]
async fn zendesk_retried_update_adds_one_note() {
    let (fake, c, rec, id) = zendesk_with_ticket().await;
    let first = ok(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 1, Some(rec.clone()))).await);
    let again = ok(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 2, Some(rec.clone()))).await);
    assert!(again.deduplicated);
    assert_eq!(again.evidence["comment_id"], first.evidence["comment_id"]);
    assert_eq!(fake.comments(id).len(), 2);

    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    let lost = c.deliver(&request("zendesk", "create_ticket", "call-third", 1, Some(rec.clone()))).await;
    assert!(err(&lost).retryable);
    assert_eq!(fake.comments(id).len(), 3, "it took effect");
    let retry = ok(&c.deliver(&request("zendesk", "create_ticket", "call-third", 2, Some(rec))).await);
    assert!(retry.deduplicated);
    assert_eq!(fake.comments(id).len(), 3, "no second note");
}

#[tokio::test]
async fn zendesk_update_of_a_deleted_or_closed_ticket_is_fatal() {
    let (fake, c, rec, id) = zendesk_with_ticket().await;
    fake.close_ticket(id);
    let e = err(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 1, Some(rec.clone()))).await);
    assert!(!e.retryable && e.status == Some(422), "{e:?}");
    assert!(e.message.contains("closed"), "{}", e.message);

    fake.delete_ticket(id);
    let e = err(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 2, Some(rec))).await);
    assert!(!e.retryable && e.status == Some(404), "{e:?}");
    assert!(e.message.contains(&id.to_string()) && e.message.contains("no longer exists"), "{}", e.message);
    assert!(fake.tickets().is_empty(), "nothing created instead");
}

#[tokio::test]
async fn zendesk_rate_limit_during_update_is_retried_later() {
    let (fake, c, rec, id) = zendesk_with_ticket().await;
    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 9 });
    let e = err(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 1, Some(rec.clone()))).await);
    assert!(e.retryable && e.status == Some(429) && e.retry_after == Some(Duration::from_secs(9)), "{e:?}");
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 4 });
    let e = err(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 2, Some(rec.clone()))).await);
    assert!(e.retryable && e.retry_after == Some(Duration::from_secs(4)), "{e:?}");
    assert_eq!(fake.comments(id).len(), 1);
    ok(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 3, Some(rec))).await);
    assert_eq!(fake.comments(id).len(), 2);
}

#[tokio::test]
async fn zendesk_marker_is_found_on_a_later_page() {
    let (fake, c, rec, id) = zendesk_with_ticket().await;
    ok(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 1, Some(rec.clone()))).await);
    for i in 0..105 {
        ok(&c.deliver(&request("zendesk", "create_ticket", &format!("call-p{i}"), 1, Some(rec.clone()))).await);
    }
    assert_eq!(fake.comments(id).len(), 107);
    let again = ok(&c.deliver(&request("zendesk", "create_ticket", REPEAT, 2, Some(rec))).await);
    assert!(again.deduplicated, "found past the first 100 (newest first)");
    assert_eq!(fake.comments(id).len(), 107);
}

#[tokio::test]
async fn zendesk_fake_comment_contract() {
    let fake = FakeZendesk::start().await;
    let id = fake.seed_ticket("Seeded", Some("c0"));
    let http = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(format!("{}/token", fake.email), Some(&fake.api_token));
    let put = |body: Value| auth(http.put(format!("{}/api/v2/tickets/{id}.json", fake.base_url))).json(&body).send();
    let r = http.put(format!("{}/api/v2/tickets/{id}", fake.base_url)).json(&json!({})).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let r = put(json!({ "ticket": { "comment": { "body": " " } } })).await.expect("send");
    assert_eq!(r.status(), 422);
    for _ in 0..2 {
        let r = put(json!({ "ticket": { "comment": { "body": "same note" } } })).await.expect("send");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["audit"]["events"][0]["type"], "Comment");
        assert_eq!(v["audit"]["events"][0]["public"], true, "public unless told");
    }
    assert_eq!(fake.comments(id).len(), 3, "the fake stores every comment, duplicates included");
    let page: Value =
        auth(http.get(format!("{}/api/v2/tickets/{id}/comments.json?page[size]=2", fake.base_url))).send().await.expect("send").json().await.expect("json");
    assert_eq!(page["meta"]["has_more"], true);
    let next = page["links"]["next"].as_str().expect("next").to_owned();
    let rest: Value = auth(http.get(next)).send().await.expect("send").json().await.expect("json");
    assert_eq!(rest["comments"].as_array().map(Vec::len), Some(1));
    let r = auth(http.get(format!("{}/api/v2/tickets/99999/comments", fake.base_url))).send().await.expect("send");
    assert_eq!(r.status(), 404);
    let r = put(json!({ "ticket": { "status": "solved" } })).await.expect("send");
    assert_eq!(r.status(), 200);
    fake.close_ticket(id);
    let r = put(json!({ "ticket": { "comment": { "body": "late" } } })).await.expect("send");
    assert_eq!(r.status(), 422);
}

// ---------------------------------------------------------------- Slack

fn slack_bot_config(fake: &FakeSlack) -> Value {
    json!({ "bot_token": fake.bot_token, "channel": slack::ONCALL, "base_url": fake.base_url })
}

async fn slack_with_message() -> (FakeSlack, Arc<dyn Connector>, ExistingRecord, String) {
    let fake = FakeSlack::start().await;
    let c = connector(IntegrationKind::Slack, slack_bot_config(&fake));
    let created = ok(&c.deliver(&request("slack", "post_message", FIRST, 1, None)).await);
    assert_eq!(created.evidence["channel"], slack::ONCALL, "the create keeps the channel");
    let ts = created.evidence["ts"].as_str().expect("the create keeps the ts").to_owned();
    assert_eq!(created.external_id.as_deref(), Some(ts.as_str()));
    fake.control.clear_received();
    (fake, c, existing(FIRST, &created), ts)
}

#[tokio::test]
async fn slack_repeat_replies_in_the_thread_of_the_earlier_message() {
    let (fake, c, rec, ts) = slack_with_message().await;
    let out = c.deliver(&request("slack", "post_message", REPEAT, 1, Some(rec))).await;
    let d = ok(&out);
    assert!(!d.deduplicated);
    assert_eq!(d.external_id.as_deref(), Some(ts.as_str()), "the original message");
    assert_eq!(d.evidence["updated"], true);
    assert_eq!(d.evidence["thread_ts"], ts.as_str());
    assert_eq!(d.evidence["channel"], slack::ONCALL);
    assert_eq!(d.evidence["thread_checked"], true);

    let messages = fake.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages.iter().filter(|m| m.thread_ts.is_none()).count(), 1, "no new message in the channel");
    let replies = fake.replies(&ts);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].channel, slack::ONCALL);
    assert_eq!(d.evidence["ts"], replies[0].ts.as_str());
    assert_repeat_text(&replies[0].all_text());

    let rec = fake.control.received();
    let calls: Vec<(&str, &str)> = rec.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(calls, [("GET", "/api/conversations.replies"), ("POST", "/api/chat.postMessage")]);
    assert_eq!(rec[0].query_param("ts").as_deref(), Some(ts.as_str()));
    assert_eq!(rec[0].query_param("channel").as_deref(), Some(slack::ONCALL));
    assert_eq!(rec[1].json()["thread_ts"], ts.as_str());
    assert!(rec.iter().all(|r| r.header("authorization") == Some(format!("Bearer {}", fake.bot_token).as_str())));
    assert!(!dump(&out).contains(&fake.bot_token));
}

#[tokio::test]
async fn slack_retried_update_posts_one_reply() {
    let (fake, c, rec, ts) = slack_with_message().await;
    let first = ok(&c.deliver(&request("slack", "post_message", REPEAT, 1, Some(rec.clone()))).await);
    let again = ok(&c.deliver(&request("slack", "post_message", REPEAT, 2, Some(rec.clone()))).await);
    assert!(again.deduplicated);
    assert_eq!(again.evidence["ts"], first.evidence["ts"]);
    assert_eq!(fake.replies(&ts).len(), 1);

    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::ResetAfterEffect);
    let lost = c.deliver(&request("slack", "post_message", "call-third", 1, Some(rec.clone()))).await;
    assert!(err(&lost).retryable);
    assert_eq!(fake.replies(&ts).len(), 2, "it took effect");
    let retry = ok(&c.deliver(&request("slack", "post_message", "call-third", 2, Some(rec))).await);
    assert!(retry.deduplicated);
    assert_eq!(fake.replies(&ts).len(), 2, "no second reply");
}

#[tokio::test]
async fn slack_update_of_a_deleted_message_is_fatal() {
    let (fake, c, rec, ts) = slack_with_message().await;
    fake.delete_message(slack::ONCALL, &ts);
    let e = err(&c.deliver(&request("slack", "post_message", REPEAT, 1, Some(rec))).await);
    assert!(!e.retryable, "{e:?}");
    assert!(e.message.contains(&ts) && e.message.contains("no longer exists"), "{}", e.message);
    assert!(fake.replies(&ts).is_empty());
    assert_eq!(fake.messages().len(), 1, "nothing posted instead");
}

#[tokio::test]
async fn slack_rate_limit_during_update_is_retried_later() {
    let (fake, c, rec, ts) = slack_with_message().await;
    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 30 });
    let e = err(&c.deliver(&request("slack", "post_message", REPEAT, 1, Some(rec.clone()))).await);
    assert!(e.retryable && e.status == Some(429) && e.retry_after == Some(Duration::from_secs(30)), "{e:?}");
    fake.control.fail_next(Fault::Delay(Duration::ZERO));
    fake.control.fail_next(Fault::RateLimited { retry_after_secs: 2 });
    let e = err(&c.deliver(&request("slack", "post_message", REPEAT, 2, Some(rec.clone()))).await);
    assert!(e.retryable && e.retry_after == Some(Duration::from_secs(2)), "{e:?}");
    assert!(fake.replies(&ts).is_empty());
    ok(&c.deliver(&request("slack", "post_message", REPEAT, 3, Some(rec))).await);
    assert_eq!(fake.replies(&ts).len(), 1);
}

/// Without the history scope the thread cannot be read: the reply is posted unchecked (the
/// remaining risk of Slack messages), and the evidence says so.
#[tokio::test]
async fn slack_without_history_scope_replies_unchecked() {
    let (fake, c, rec, ts) = slack_with_message().await;
    fake.set_switches(SlackSwitches { history_scope: false, ..SlackSwitches::default() });
    let d = ok(&c.deliver(&request("slack", "post_message", REPEAT, 1, Some(rec))).await);
    assert!(!d.deduplicated);
    assert_eq!(d.evidence["thread_checked"], false);
    assert_eq!(fake.replies(&ts).len(), 1);
}

#[tokio::test]
async fn slack_webhook_ignores_the_update_and_posts() {
    let fake = FakeSlack::start().await;
    let c = connector(IntegrationKind::Slack, json!({ "webhook_url": format!("https://hooks.slack.com{}", fake.webhook_path), "base_url": fake.hooks_url }));
    let rec = ExistingRecord { call_id: FIRST.into(), external_id: "1700000000.000101".into(), external_url: None, evidence: json!({}) };
    let d = ok(&c.deliver(&request("slack", "post_message", REPEAT, 1, Some(rec))).await);
    assert_eq!(d.evidence["form"], "webhook");
    assert_eq!(fake.messages().len(), 1);
    assert!(fake.messages()[0].thread_ts.is_none());
}

#[tokio::test]
async fn slack_fake_thread_contract() {
    let fake = FakeSlack::start().await;
    let http = reqwest::Client::new();
    let post = |body: Value| http.post(format!("{}/chat.postMessage", fake.base_url)).bearer_auth(&fake.bot_token).json(&body).send();
    let parent: Value = post(json!({ "channel": slack::ONCALL, "text": "parent" })).await.expect("send").json().await.expect("json");
    let ts = parent["ts"].as_str().expect("ts").to_owned();
    for _ in 0..2 {
        let r: Value = post(json!({ "channel": slack::ONCALL, "text": "same reply", "thread_ts": ts })).await.expect("send").json().await.expect("json");
        assert_eq!((r["ok"].clone(), r["message"]["thread_ts"].clone()), (json!(true), json!(ts)));
    }
    assert_eq!(fake.replies(&ts).len(), 2, "the fake stores every reply, duplicates included");
    let r: Value = post(json!({ "channel": slack::ONCALL, "text": "x", "thread_ts": "1.000001" })).await.expect("send").json().await.expect("json");
    assert_eq!(r["error"], "thread_not_found");

    let replies = |ts: &str, extra: &str| {
        http.get(format!("{}/conversations.replies?channel={}&ts={ts}{extra}", fake.base_url, slack::ONCALL)).bearer_auth(&fake.bot_token).send()
    };
    let page: Value = replies(&ts, "&limit=2").await.expect("send").json().await.expect("json");
    assert_eq!(page["ok"], true);
    assert_eq!(page["messages"][0]["ts"], ts.as_str(), "the parent comes first");
    assert_eq!(page["has_more"], true);
    let cursor = page["response_metadata"]["next_cursor"].as_str().expect("cursor").to_owned();
    let rest: Value = replies(&ts, &format!("&limit=2&cursor={cursor}")).await.expect("send").json().await.expect("json");
    assert_eq!((rest["messages"].as_array().map(Vec::len), rest["has_more"].clone()), (Some(1), json!(false)));
    let r: Value =
        http.get(format!("{}/conversations.replies?channel={}&ts={ts}", fake.base_url, slack::ONCALL)).send().await.expect("send").json().await.expect("json");
    assert_eq!(r["error"], "not_authed");
    fake.delete_message(slack::ONCALL, &ts);
    let r: Value = replies(&ts, "").await.expect("send").json().await.expect("json");
    assert_eq!(r["error"], "thread_not_found");
}
