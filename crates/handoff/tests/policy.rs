//! The handoff policy: FAQs of the product brief as decisions with reasons.

use std::collections::BTreeMap;

use dialnexa_core::analysis::*;
use dialnexa_core::evidence::{ExtractedField, Role, Span, TranscriptTurn};
use dialnexa_handoff::IntegrationKind;
use dialnexa_handoff::payload::Links;
use dialnexa_handoff::policy::{CallContext, Decision, IntegrationView, follow_ups, plan, reason_key};
use dialnexa_handoff::rules::{parse_rules, recommended};
use serde_json::{Value, json};

fn field(v: Value) -> ExtractedField {
    ExtractedField { value: v, confidence: 0.9, span: Span { turn: 1, start: 0, end: 1 } }
}

fn analysis(category: Category, severity: Option<Severity>, fields: &[(&str, Value)]) -> Analysis {
    Analysis {
        engine: "rules".into(),
        engine_version: "test".into(),
        model: None,
        prompt_version: None,
        summary: Summary { text: "The caller reports a problem.".into(), ..Default::default() },
        fields: fields.iter().map(|(k, v)| (k.to_string(), field(v.clone()))).collect(),
        category,
        category_reasons: vec![],
        severity,
        sentiment: Sentiment::Neutral,
        repeat_contact: Signal::default(),
        cancellation_language: Signal::default(),
        sla_risk: Signal::default(),
        sensitive: SensitiveData::default(),
        redacted_transcript: vec![TranscriptTurn {
            index: 1,
            role: Role::Caller,
            text: "see https://status.acme.example/incidents/42 please".into(),
            start_ms: 0,
            end_ms: 1,
        }],
        reproducible_bug: Reproducibility::default(),
        callbacks: vec![],
        promises: vec![],
        truncated: None,
        warnings: vec![],
    }
}

fn ctx() -> CallContext {
    CallContext {
        call_id: "call_1".into(),
        entry_point: "test".into(),
        agent_id: None,
        links: Links { call: "http://x/v1/calls/call_1".into(), ..Default::default() },
        vip_customers: vec!["Globex".into()],
    }
}

fn all_integrations() -> Vec<IntegrationView> {
    IntegrationKind::ALL.iter().map(|k| IntegrationView { integration_id: format!("int_{k}"), kind: *k, rules: recommended(*k) }).collect()
}

fn find<'a>(ds: &'a [Decision], kind: IntegrationKind, action: &str) -> &'a Decision {
    ds.iter().find(|d| d.kind == kind && d.action == action).unwrap_or_else(|| panic!("no decision for {kind} {action}"))
}

#[test]
fn one_decision_per_integration_and_action() {
    let ds = plan(&analysis(Category::Incident, Some(Severity::Sev1), &[]), &ctx(), &all_integrations());
    let mut keys: Vec<(String, String)> = ds.iter().map(|d| (d.integration_id.clone(), d.action.clone())).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(n, keys.len(), "the key is call + integration + action");
    // Slack's three post_message rules make one handoff.
    assert_eq!(ds.iter().filter(|d| d.kind == IntegrationKind::Slack).count(), 1);
}

#[test]
fn a_sev1_incident_pages_on_call_and_logs_the_incident() {
    let a = analysis(Category::Incident, Some(Severity::Sev1), &[("product_area", json!("payments api")), ("customer", json!("Acme"))]);
    let ds = plan(&a, &ctx(), &all_integrations());
    let slack = find(&ds, IntegrationKind::Slack, "post_message");
    assert_eq!(slack.status, "planned");
    assert!(slack.reason.contains("On-call alert"), "{}", slack.reason);
    assert_eq!(slack.payload.urgency, "urgent");
    assert_eq!(slack.payload.owner.as_deref(), Some("on-call engineer"));
    assert!(slack.payload.title.contains("Incident (sev1)") && slack.payload.title.contains("payments api"), "{}", slack.payload.title);
    for (k, a) in [
        (IntegrationKind::GoogleSheets, "append_row"),
        (IntegrationKind::Zendesk, "create_ticket"),
        (IntegrationKind::Datadog, "create_event"),
        (IntegrationKind::Hubspot, "create_note"),
    ] {
        assert_eq!(find(&ds, k, a).status, "planned", "{k} {a}");
    }
    // Enrichment first: the URL the caller mentioned is screenshotted and checked.
    let shot = find(&ds, IntegrationKind::OpengraphIo, "capture_screenshot");
    assert_eq!((shot.status, shot.phase), ("planned", 0));
    assert_eq!(shot.payload.urls, vec!["https://status.acme.example/incidents/42".to_owned()]);
    assert_eq!(find(&ds, IntegrationKind::Datadog, "search_monitors").phase, 0);
    assert_eq!(slack.phase, 1);
}

#[test]
fn setup_questions_are_not_incidents() {
    let ds = plan(&analysis(Category::SetupQuestion, None, &[]), &ctx(), &all_integrations());
    for (k, a) in [
        (IntegrationKind::Slack, "post_message"),
        (IntegrationKind::GoogleSheets, "append_row"),
        (IntegrationKind::Datadog, "create_event"),
        (IntegrationKind::Zendesk, "create_ticket"),
    ] {
        let d = find(&ds, k, a);
        assert_eq!(d.status, "skipped", "{k} {a}");
        assert!(d.reason.contains("setup question"), "{k}: {}", d.reason);
    }
    assert!(find(&ds, IntegrationKind::Slack, "post_message").reason.contains("not incidents"));
    assert!(find(&ds, IntegrationKind::Zendesk, "create_ticket").reason.contains("no ticket"));
    assert_eq!(find(&ds, IntegrationKind::Webhook, "deliver").status, "planned");
}

#[test]
fn a_bug_becomes_an_engineering_task_only_when_reproducible() {
    let mut a = analysis(Category::Bug, Some(Severity::Sev3), &[]);
    a.reproducible_bug = Reproducibility { reproducible: false, missing: vec!["steps".into()] };
    let ds = plan(&a, &ctx(), &all_integrations());
    let jira = find(&ds, IntegrationKind::Jira, "create_issue");
    assert_eq!(jira.status, "skipped");
    assert!(jira.reason.contains("reproducible"), "{}", jira.reason);
    a.reproducible_bug = Reproducibility { reproducible: true, missing: vec![] };
    a.fields.insert("steps".into(), field(json!("click export, pick CSV")));
    let ds = plan(&a, &ctx(), &all_integrations());
    let jira = find(&ds, IntegrationKind::Jira, "create_issue");
    assert_eq!(jira.status, "planned");
    assert_eq!(jira.payload.steps.as_deref(), Some("click export, pick CSV"));
}

#[test]
fn review_holds_sensitive_money_and_vip_but_not_team_alerts() {
    let mut a = analysis(Category::Incident, Some(Severity::Sev2), &[("customer", json!("Acme"))]);
    a.sensitive = SensitiveData { detected: true, kinds: vec!["card_number".into()], evidence: vec![] };
    let ds = plan(&a, &ctx(), &all_integrations());
    let z = find(&ds, IntegrationKind::Zendesk, "create_ticket");
    assert_eq!((z.status, z.review.as_ref().map(|r| r.0)), ("held_for_review", Some("sensitive_request")));
    assert_eq!(find(&ds, IntegrationKind::Slack, "post_message").status, "planned", "on-call still hears about it");

    let a = analysis(Category::OperationalRequest, None, &[("request_category", json!("billing")), ("customer", json!("Acme"))]);
    let ds = plan(&a, &ctx(), &all_integrations());
    let z = find(&ds, IntegrationKind::Zendesk, "create_ticket");
    assert_eq!(z.review.as_ref().map(|r| r.0), Some("changes_money_access_legal_or_commitment"));
    assert_eq!(find(&ds, IntegrationKind::Heartbeat, "notify_owner").status, "held_for_review");

    let a = analysis(Category::Incident, Some(Severity::Sev3), &[("customer", json!("globex"))]);
    let ds = plan(&a, &ctx(), &all_integrations());
    assert_eq!(find(&ds, IntegrationKind::Zendesk, "create_ticket").review.as_ref().map(|r| r.0), Some("high_value_customer"));
    assert_eq!(find(&ds, IntegrationKind::Slack, "post_message").status, "planned", "managers hear about VIPs");
    assert!(find(&ds, IntegrationKind::Slack, "post_message").reason.contains("Manager notice"));
}

#[test]
fn a_rule_can_require_fields() {
    let rules = parse_rules(
        IntegrationKind::Zendesk,
        &json!([{ "name": "Ticket with an email", "action": "create_ticket", "when": {"category": ["incident"]}, "options": {"requires": ["caller_email"]},
                  "mapping": {"destination_object": "ticket", "owner": "support", "status": "open", "urgency": "from_analysis", "next_step": "reply", "record_url": "from_response"} }]),
    )
    .unwrap();
    let ints = vec![IntegrationView { integration_id: "z".into(), kind: IntegrationKind::Zendesk, rules }];
    let ds = plan(&analysis(Category::Incident, None, &[]), &ctx(), &ints);
    assert_eq!(ds[0].review.as_ref().map(|r| r.0), Some("missing_required_field"));
}

#[test]
fn rules_are_checked_when_saved() {
    let bad = |v: Value| parse_rules(IntegrationKind::Slack, &v).unwrap_err().path;
    let m = json!({"destination_object": "x", "owner": "o", "status": "s", "urgency": "high", "next_step": "n", "record_url": "from_response"});
    assert_eq!(bad(json!([{ "name": "x", "action": "create_issue", "mapping": m }])), "rules[0].action");
    let mut no_owner = m.clone();
    no_owner["owner"] = json!(" ");
    assert_eq!(bad(json!([{ "name": "x", "action": "post_message", "mapping": no_owner }])), "rules[0].mapping.owner");
    let mut missing = m.clone();
    missing.as_object_mut().unwrap().remove("record_url");
    assert_eq!(bad(json!([{ "name": "x", "action": "post_message", "mapping": missing }])), "rules");
    let mut urgency = m.clone();
    urgency["urgency"] = json!("asap");
    assert_eq!(bad(json!([{ "name": "x", "action": "post_message", "mapping": urgency }])), "rules[0].mapping.urgency");
    assert!(parse_rules(IntegrationKind::Slack, &json!([{ "name": "x", "action": "post_message", "mapping": m }])).is_ok());
    // Every recommended rule passes its own checks.
    for k in IntegrationKind::ALL {
        parse_rules(k, &serde_json::to_value(recommended(k)).unwrap()).unwrap_or_else(|e| panic!("{k}: {e:?}"));
    }
}

#[test]
fn callbacks_and_promises_become_follow_ups() {
    let mut a = analysis(Category::CallbackRequest, None, &[("caller_phone", json!("+14155550123"))]);
    let ev = Evidence { span: Span { turn: 1, start: 0, end: 5 }, quote: "call me back tomorrow at 10".into() };
    a.callbacks.push(CallbackRequest {
        phone: None,
        preferred_time: Some("2026-03-11T10:00:00-04:00".into()),
        preferred_time_text: None,
        timezone: Some("America/New_York".into()),
        reason: None,
        evidence: ev.clone(),
    });
    a.promises.push(Promise {
        what: "email the credit note".into(),
        to_whom: None,
        by_when: None,
        by_when_text: Some("Friday".into()),
        channel: Some("email".into()),
        evidence: ev,
    });
    let f = follow_ups(&a, "billing team");
    assert_eq!(f.len(), 2);
    let (kind, _, cb, due) = &f[0];
    assert_eq!(*kind, "callback");
    assert_eq!(cb["phone"], "+14155550123");
    assert_eq!(cb["owner"], "billing team");
    assert_eq!(cb["attempt_count"], 0);
    assert!(due.is_some());
    assert_eq!(f[1].2["what"], "email the credit note");
    let ds = plan(&a, &ctx(), &all_integrations());
    assert_eq!(find(&ds, IntegrationKind::Heartbeat, "notify_owner").status, "planned", "the owner hears about a callback");
    assert_eq!(reason_key(&a), "callback_request");
    let _ = BTreeMap::<String, Value>::new();
}
