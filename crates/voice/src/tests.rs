//! Tests of the flow runtime and text calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use dialnexa_core::agent::{AgentConfig, FlowAgentConfig};
use dialnexa_core::{DisconnectionReason, Role};
use serde_json::{Value, json};

use crate::*;

fn flow(cfg: Value) -> FlowAgentConfig {
    match AgentConfig::parse(&cfg) {
        Ok(AgentConfig::Flow(f)) => f,
        other => panic!("not a valid flow config: {other:?}"),
    }
}

fn lines(script: &[&str]) -> Vec<String> {
    script.iter().map(|s| (*s).to_owned()).collect()
}

fn call(cfg: &FlowAgentConfig, script: &[&str]) -> TextCall {
    run_text_call(cfg, builtins(), &lines(script)).expect("valid config")
}

fn builtins() -> BTreeMap<String, String> {
    [("call_id", "call_0001"), ("from_number", "+15550100100"), ("to_number", "+15550100200"), ("agent_name", "Test agent"), ("agent_version", "3")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn agent_lines(c: &TextCall) -> Vec<&str> {
    c.transcript.iter().filter(|t| t.role == Role::Agent).map(|t| t.text.as_str()).collect()
}

fn kinds(c: &TextCall) -> Vec<&str> {
    c.timeline.iter().map(|e| e.kind.as_str()).collect()
}

/// The value of every field is exactly the text its span points at, or a normalised form
/// of it (emails are lower-cased, phones and numbers re-written); either way the span must
/// lie within the caller turn it names.
fn check_spans(c: &TextCall) {
    for (name, f) in &c.fields {
        let turn = &c.transcript[f.span.turn as usize];
        assert_eq!(turn.role, Role::Caller, "{name}");
        let len = turn.text.chars().count() as u32;
        assert!(f.span.start < f.span.end && f.span.end <= len, "{name}: {:?}", f.span);
    }
}

fn span_text(c: &TextCall, field: &str) -> String {
    let f = &c.fields[field];
    c.transcript[f.span.turn as usize].text.chars().skip(f.span.start as usize).take((f.span.end - f.span.start) as usize).collect()
}

fn check_timing(c: &TextCall) {
    let mut last_end = 0;
    for (i, t) in c.transcript.iter().enumerate() {
        assert_eq!(t.index as usize, i);
        assert!(t.start_ms > last_end || (i == 0 && t.start_ms > 0), "turn {i} overlaps");
        assert!(t.end_ms >= t.start_ms + clock::MIN_TURN_MS, "turn {i} too short");
        last_end = t.end_ms;
    }
    assert!(c.duration_ms >= last_end);
    let offsets: Vec<u64> = c.timeline.iter().map(|e| e.offset_ms).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert_eq!(c.timeline.last().map(|e| e.kind.as_str()), Some("call_ended"));
}

fn example() -> FlowAgentConfig {
    flow(json!({
        "kind": "flow",
        "variables": {"company": "Acme"},
        "flow": {
            "start": "greet",
            "intents": {
                "outage": ["down", "outage", "not loading", "five hundred"],
                "billing": ["invoice", "charge", "refund"]
            },
            "nodes": [
                {"id": "greet", "type": "say", "text": "Hi, this is {{company}} support.", "next": "ask_name"},
                {"id": "ask_name", "type": "collect", "field": "caller_name", "field_type": "string",
                 "prompt": "Who am I speaking with?", "retry_prompt": "Sorry, could you repeat your name?",
                 "max_attempts": 2, "next": "ask_issue", "on_fail": "ask_issue"},
                {"id": "ask_issue", "type": "ask", "text": "Thanks {{caller_name|there}}. What is going wrong?", "next": "route"},
                {"id": "route", "type": "branch", "on": "intent",
                 "cases": [{"intent": "outage", "next": "escalate"}, {"intent": "billing", "next": "billing"}],
                 "default": "confirm"},
                {"id": "confirm", "type": "ask", "text": "Should I connect you to a person?", "next": "kw"},
                {"id": "kw", "type": "branch", "on": "keywords",
                 "cases": [{"keywords": ["yes", "yeah", "correct", "please do"], "next": "escalate"}], "default": "bye"},
                {"id": "billing", "type": "end", "text": "Billing is handled by email, {{caller_name}}."},
                {"id": "escalate", "type": "transfer", "text": "Let me connect you to the on-call engineer.", "to": "+15550100001"},
                {"id": "bye", "type": "end", "text": "Thanks, we'll follow up by email."}
            ]
        }
    }))
}

#[test]
fn session_merges_speech_until_a_wait() {
    let mut s = FlowSession::new(Arc::new(example()), builtins()).expect("valid");
    let step = s.start().expect("start");
    assert_eq!(step.utterance.as_deref(), Some("Hi, this is Acme support. Who am I speaking with?"));
    assert_eq!(step.outcome, Outcome::AwaitingCaller);
    let entered: Vec<&str> = step.events.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(entered, ["entered say node 'greet'", "entered collect node 'ask_name'"]);
    assert_eq!(s.current_node(), Some("ask_name"));
    assert_eq!(s.start(), Err(SessionError::AlreadyStarted));

    let step = s.caller_said("My name is Ada Lovelace.").expect("turn");
    assert_eq!(step.fields.len(), 1);
    assert_eq!(step.fields[0].name, "caller_name");
    assert_eq!(step.fields[0].value, json!("Ada Lovelace"));
    assert_eq!((step.fields[0].start, step.fields[0].end), (11, 23));
    assert_eq!(step.utterance.as_deref(), Some("Thanks Ada Lovelace. What is going wrong?"));
    assert_eq!(s.collected()["caller_name"], json!("Ada Lovelace"));

    let step = s.caller_said("The dashboard is down").expect("turn");
    assert_eq!(step.outcome, Outcome::Ended(Ending::Transfer { to: "+15550100001".to_owned() }));
    let branch = step.events.iter().find(|e| e.kind == FlowEventKind::BranchTaken).expect("branch event");
    assert!(branch.detail.contains("intent outage"), "{}", branch.detail);
    assert!(branch.detail.contains("\"down\""), "{}", branch.detail);
    assert!(s.is_ended());
    assert_eq!(s.caller_said("hello?"), Err(SessionError::Ended));
    assert_eq!(s.agent_turns(), 3);
}

#[test]
fn caller_said_before_start_is_an_error() {
    let mut s = FlowSession::new(Arc::new(example()), BTreeMap::new()).expect("valid");
    assert_eq!(s.caller_said("hi"), Err(SessionError::NotStarted));
}

#[test]
fn intent_branch_transfers() {
    let c = call(&example(), &["Ada", "We get a five hundred on every page"]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::Transfer);
    let t = c.transfer.clone().expect("transfer");
    assert_eq!(t.to, "+15550100001");
    assert_eq!(t.at_ms, c.transcript.last().map(|t| t.end_ms).unwrap_or(0));
    assert_eq!(c.final_node.as_deref(), Some("escalate"));
    assert!(kinds(&c).contains(&"transfer"));
    assert_eq!(c.unused_script_lines, 0);
    check_timing(&c);
}

#[test]
fn negation_blocks_intent_and_keywords() {
    let c = call(&example(), &["Ada", "It's not down, I just have a question", "No."]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::AgentHangup);
    assert_eq!(c.final_node.as_deref(), Some("bye"));
    let branch = &c.timeline.iter().find(|e| e.kind == "branch_taken").expect("branch").detail;
    assert!(branch.contains("default 'confirm'"), "{branch}");
    assert!(branch.contains("negated by \"not\""), "{branch}");

    // "not correct" does not match the keyword "correct".
    let c = call(&example(), &["Ada", "a question", "That's not correct"]);
    assert_eq!(c.final_node.as_deref(), Some("bye"));
    // A keyword phrase of several words.
    let c = call(&example(), &["Ada", "a question", "Yes please do"]);
    assert_eq!(c.final_node.as_deref(), Some("escalate"));
}

#[test]
fn billing_intent_and_collected_variable() {
    let c = call(&example(), &["this is Grace", "There is a wrong charge on my invoice"]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::AgentHangup);
    assert_eq!(agent_lines(&c).last().copied(), Some("Billing is handled by email, Grace."));
}

#[test]
fn reprompt_then_on_fail() {
    let c = call(&example(), &["um", "uh, well", "it's down"]);
    assert!(!c.fields.contains_key("caller_name"));
    assert_eq!(
        agent_lines(&c),
        [
            "Hi, this is Acme support. Who am I speaking with?",
            "Sorry, could you repeat your name?",
            "Thanks there. What is going wrong?",
            "Let me connect you to the on-call engineer.",
        ]
    );
    let k = kinds(&c);
    assert!(k.contains(&"reprompt") && k.contains(&"field_missed"), "{k:?}");
    check_timing(&c);
}

#[test]
fn script_running_out_is_a_user_hangup() {
    let c = call(&example(), &["Ada"]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::UserHangup);
    assert_eq!(c.final_node.as_deref(), Some("ask_issue"));
    assert_eq!(c.transcript.len(), 3);
    assert_eq!(c.transcript[2].role, Role::Agent);
    assert!(c.transfer.is_none());
    check_timing(&c);
}

#[test]
fn extra_script_lines_after_the_end_are_not_said() {
    let c = call(&example(), &["Ada", "a question", "no thanks", "hello?", "anyone?"]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::AgentHangup);
    assert_eq!(c.unused_script_lines, 2);
    assert_eq!(c.transcript.len(), 7);
    assert_eq!(c.transcript.last().map(|t| t.role), Some(Role::Agent));
}

#[test]
fn max_turns_ends_a_loop() {
    let mut cfg = flow(json!({
        "kind": "flow",
        "max_turns": 4,
        "flow": {
            "start": "q",
            "nodes": [
                {"id": "q", "type": "ask", "text": "Say the magic word.", "next": "check"},
                {"id": "check", "type": "branch", "on": "keywords",
                 "cases": [{"keywords": ["please"], "next": "done"}], "default": "q"},
                {"id": "done", "type": "end", "text": "Thank you."}
            ]
        }
    }));
    let script: Vec<&str> = vec!["no"; 10];
    let c = call(&cfg, &script);
    assert_eq!(c.disconnection_reason, DisconnectionReason::MaxTurns);
    assert_eq!(agent_lines(&c).len(), 4);
    assert_eq!(c.unused_script_lines, 6);
    assert!(kinds(&c).contains(&"max_turns_reached"));
    check_timing(&c);

    // The runtime bound holds even for a graph that skipped validation.
    cfg.max_turns = 50;
    cfg.flow.nodes[0] = serde_json::from_value(json!({"id": "q", "type": "say", "text": "Again.", "next": "check"})).expect("node");
    cfg.flow.nodes[1] = serde_json::from_value(json!({"id": "check", "type": "branch", "on": "keywords",
        "cases": [{"keywords": ["please"], "next": "done"}], "default": "q"}))
    .expect("node");
    assert!(FlowSession::new(Arc::new(cfg.clone()), BTreeMap::new()).is_err());
}

#[test]
fn runtime_loop_bound_without_validation() {
    // Build a session around a valid graph, then check the walk bound directly by giving
    // the session a graph whose only loop never waits (validation would refuse it).
    let cfg = flow(json!({
        "kind": "flow",
        "flow": {
            "start": "a",
            "nodes": [
                {"id": "a", "type": "ask", "text": "Hello?", "next": "b"},
                {"id": "b", "type": "end", "text": "Bye."}
            ]
        }
    }));
    let session = FlowSession::new(Arc::new(cfg), BTreeMap::new()).expect("valid");
    let mut looping = session.config().clone();
    looping.flow.nodes[1] = serde_json::from_value(json!({"id": "b", "type": "say", "text": "Hm.", "next": "b"})).expect("node");
    let mut s = crate::session::tests_support::unchecked(looping);
    s.start().expect("start");
    let step = s.caller_said("hi").expect("turn");
    assert_eq!(step.outcome, Outcome::Ended(Ending::MaxTurns));
    assert!(step.events.iter().any(|e| e.kind == FlowEventKind::LoopBoundReached));
}

#[test]
fn field_branch_and_typed_collection() {
    let cfg = flow(json!({
        "kind": "flow",
        "flow": {
            "start": "email",
            "nodes": [
                {"id": "email", "type": "collect", "field": "email", "field_type": "email", "prompt": "Your email?", "next": "phone"},
                {"id": "phone", "type": "collect", "field": "phone", "field_type": "phone", "prompt": "Your phone?", "next": "users"},
                {"id": "users", "type": "collect", "field": "users", "field_type": "number", "prompt": "How many users?", "next": "prod"},
                {"id": "prod", "type": "collect", "field": "is_prod", "field_type": "boolean", "prompt": "Is it production?", "next": "sev"},
                {"id": "sev", "type": "collect", "field": "severity", "field_type": "enum",
                 "options": ["sev1", "sev2", "sev3"], "synonyms": {"sev1": ["critical"]},
                 "prompt": "How bad?", "max_attempts": 1, "next": "by_sev"},
                {"id": "by_sev", "type": "branch", "on": "field", "field": "severity",
                 "cases": [{"equals": "SEV1", "next": "page"}, {"in": ["sev2", "sev3"], "next": "ticket"}, {"present": false, "next": "unknown"}],
                 "default": "ticket"},
                {"id": "page", "type": "end", "text": "Paging: {{severity}}, {{users}} users, prod {{is_prod}}, call {{phone}}."},
                {"id": "ticket", "type": "end", "text": "Ticket it is."},
                {"id": "unknown", "type": "end", "text": "We'll assess it."}
            ]
        }
    }));
    let c = call(
        &cfg,
        &[
            "Sure, it's Ada.Lovelace@Example.ORG",
            "call me on (555) 010-0123 please",
            "maybe two thousand",
            "No, it's not production, it's staging",
            "It's critical for us",
        ],
    );
    check_spans(&c);
    check_timing(&c);
    assert_eq!(c.fields["email"].value, json!("ada.lovelace@example.org"));
    assert_eq!(span_text(&c, "email"), "Ada.Lovelace@Example.ORG");
    assert_eq!(c.fields["email"].span.turn, 1);
    assert_eq!(c.fields["phone"].value, json!("+15550100123"));
    assert_eq!(span_text(&c, "phone"), "(555) 010-0123");
    assert_eq!(c.fields["users"].value, json!(2000));
    assert_eq!(span_text(&c, "users"), "two thousand");
    assert_eq!(c.fields["is_prod"].value, json!(false));
    assert_eq!(span_text(&c, "is_prod"), "No");
    assert_eq!(c.fields["severity"].value, json!("sev1"));
    assert_eq!(span_text(&c, "severity"), "critical");
    assert_eq!(c.fields["severity"].span.turn, 9);
    assert_eq!(agent_lines(&c).last().copied(), Some("Paging: sev1, 2000 users, prod no, call +15550100123."));
    for f in c.fields.values() {
        assert!((0.0..=1.0).contains(&f.confidence));
    }

    let c = call(&cfg, &["a@b.io", "+15550100123", "5", "yes", "sev 3"]);
    assert_eq!(c.final_node.as_deref(), Some("ticket"));
    let c = call(&cfg, &["a@b.io", "+15550100123", "5", "yes", "no idea"]);
    assert_eq!(c.final_node.as_deref(), Some("unknown"));
    assert!(!c.fields.contains_key("severity"));
}

#[test]
fn variables_override_defaults_and_builtins_render() {
    let cfg = flow(json!({
        "kind": "flow",
        "variables": {"company": "Acme", "first_name": "there"},
        "flow": {
            "start": "hi",
            "nodes": [
                {"id": "hi", "type": "end", "text": "Hi {{first_name}}, {{agent_name}} v{{agent_version}} from {{company}} calling {{to_number}}."}
            ]
        }
    }));
    let mut vars = builtins();
    vars.insert("first_name".to_owned(), "Lin".to_owned());
    let c = run_text_call(&cfg, vars, &[]).expect("valid");
    assert_eq!(agent_lines(&c), ["Hi Lin, Test agent v3 from Acme calling +15550100200."]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::AgentHangup);
}

#[test]
fn timing_is_deterministic_and_documented() {
    let a = call(&example(), &["Ada", "a question", "no"]);
    let b = call(&example(), &["Ada", "a question", "no"]);
    assert_eq!(a, b);
    // Agent first, after the pick-up latency, at the agent's speaking rate.
    let first = &a.transcript[0];
    assert_eq!(first.start_ms, clock::AGENT_RESPONSE_LATENCY_MS);
    assert_eq!(first.end_ms - first.start_ms, clock::speech_ms(&first.text, clock::AGENT_WORDS_PER_MINUTE));
    let reply = &a.transcript[1];
    assert_eq!(reply.start_ms, first.end_ms + clock::CALLER_RESPONSE_LATENCY_MS);
    assert_eq!(reply.end_ms - reply.start_ms, clock::MIN_TURN_MS);
    assert_eq!(clock::speech_ms("one two three", 150), 1200);
    assert_eq!(a.duration_ms, a.transcript.last().map(|t| t.end_ms).unwrap_or(0));
    check_timing(&a);
}

#[test]
fn max_duration_cuts_the_call() {
    let mut cfg = example();
    cfg.max_duration_ms = 10_000;
    let c = call(&cfg, &["Ada", "a question", "no"]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::MaxDuration);
    assert_eq!(c.duration_ms, 10_000);
    assert!(c.transcript.iter().all(|t| t.end_ms <= 10_000));
}

// ---- the demo agent ----

fn demo() -> FlowAgentConfig {
    let v: Value = serde_json::from_str(DEMO_AGENT_CONFIG).expect("demo JSON");
    flow(v)
}

const INCIDENT_SCRIPT: [&str; 18] = [
    "Hi, this is Dana Whitfield.",
    "It's dana.whitfield@globex.example",
    "I'm calling from Globex Corporation.",
    "Yes, I do.",
    "It's GLX-20417.",
    "Our payments API is down, checkout is returning 502 errors.",
    "The payments API.",
    "Production.",
    "us-east-1",
    "POST /v1/charges",
    "We get 502 Bad Gateway from the load balancer.",
    "Around 9:40 this morning, UTC.",
    "Honestly it's a sev1, nobody can pay.",
    "Customers can't check out, so we're losing orders.",
    "About 12,000 users.",
    "No workaround yet.",
    "Thanks!",
    "Hello?",
];

#[test]
fn demo_agent_parses() {
    let cfg = demo();
    assert_eq!(
        cfg.flow.collected_fields(),
        [
            "caller_name",
            "caller_email",
            "customer",
            "account",
            "product_area",
            "environment",
            "region",
            "endpoint",
            "error_message",
            "start_time",
            "severity",
            "business_impact",
            "affected_users",
            "workaround",
        ]
    );
}

#[test]
fn demo_agent_takes_an_incident_and_transfers_sev1() {
    let mut vars = builtins();
    vars.insert("company".to_owned(), "Acme Cloud".to_owned());
    let c = run_text_call(&demo(), vars, &lines(&INCIDENT_SCRIPT)).expect("valid");
    check_spans(&c);
    check_timing(&c);
    let expect = [
        ("caller_name", json!("Dana Whitfield"), "Dana Whitfield"),
        ("caller_email", json!("dana.whitfield@globex.example"), "dana.whitfield@globex.example"),
        ("customer", json!("Globex Corporation"), "Globex Corporation"),
        ("account", json!("GLX-20417"), "GLX-20417"),
        ("product_area", json!("The payments API"), "The payments API"),
        ("environment", json!("production"), "Production"),
        ("region", json!("us-east-1"), "us-east-1"),
        ("endpoint", json!("POST /v1/charges"), "POST /v1/charges"),
        ("error_message", json!("We get 502 Bad Gateway from the load balancer"), "We get 502 Bad Gateway from the load balancer"),
        ("start_time", json!("Around 9:40 this morning, UTC"), "Around 9:40 this morning, UTC"),
        ("severity", json!("sev1"), "sev1"),
        ("business_impact", json!("Customers can't check out, so we're losing orders"), "Customers can't check out, so we're losing orders"),
        ("affected_users", json!(12000), "12,000"),
        ("workaround", json!("No workaround yet"), "No workaround yet"),
    ];
    for (name, value, span) in &expect {
        let f = c.fields.get(*name).unwrap_or_else(|| panic!("{name} not collected"));
        assert_eq!(&f.value, value, "{name}");
        assert_eq!(span_text(&c, name), *span, "{name}");
    }
    assert_eq!(c.fields.len(), expect.len());
    assert_eq!(c.disconnection_reason, DisconnectionReason::Transfer);
    assert_eq!(c.transfer.as_ref().map(|t| t.to.as_str()), Some("+15550100001"));
    assert_eq!(c.final_node.as_deref(), Some("escalate"));
    assert_eq!(c.unused_script_lines, 2);
    assert_eq!(agent_lines(&c)[1], "Thanks Dana Whitfield. What email address should we send updates to?");
}

#[test]
fn demo_agent_sends_setup_questions_to_the_docs() {
    let c = call(&demo(), &["Sam Ortiz", "sam at initech dot example", "Initech", "No, not right now.", "I have a question about setting up webhooks."]);
    assert_eq!(c.disconnection_reason, DisconnectionReason::AgentHangup);
    assert_eq!(c.final_node.as_deref(), Some("setup_docs"));
    assert!(!c.fields.contains_key("account"));
    assert_eq!(c.fields["caller_email"].value, json!("sam@initech.example"));
    let last = agent_lines(&c).last().copied().unwrap_or_default();
    assert!(last.contains("docs.acmecloud.example"), "{last}");
}

#[test]
fn demo_agent_logs_a_minor_incident_and_hangs_up() {
    let c = call(
        &demo(),
        &[
            "Lee",
            "lee@hooli.example",
            "Hooli",
            "nope",
            "Hmm, not sure how to describe it.",
            "The dashboard charts are slow to load.",
            "The dashboard",
            "staging",
            "eu-west-1",
            "/reports",
            "No error, it just spins",
            "Since yesterday",
            "It's minor really",
            "Our analysts wait a bit longer",
            "Not sure",
            "Reloading helps",
        ],
    );
    check_spans(&c);
    assert_eq!(c.disconnection_reason, DisconnectionReason::AgentHangup);
    assert_eq!(c.final_node.as_deref(), Some("wrap_up"));
    assert_eq!(c.fields["severity"].value, json!("sev4"));
    assert_eq!(c.fields["environment"].value, json!("staging"));
    assert!(!c.fields.contains_key("affected_users"));
    assert_eq!(agent_lines(&c).last().copied(), Some("Thanks Lee. We've logged this as sev4 and will send updates to lee@hooli.example. Goodbye!"));
}

#[test]
fn docs_show_the_demo_agent_verbatim() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/agents.md");
    let doc = std::fs::read_to_string(path).expect("docs/agents.md");
    let marker = "## The demo agent";
    let after = &doc[doc.find(marker).expect("marker heading")..];
    let body = after.split_once("```json\n").and_then(|(_, rest)| rest.split_once("\n```")).map(|(json, _)| json).expect("a ```json block after the marker");
    let in_doc: Value = serde_json::from_str(body).expect("the doc's JSON parses");
    let demo: Value = serde_json::from_str(DEMO_AGENT_CONFIG).expect("demo JSON");
    assert_eq!(in_doc, demo, "docs/agents.md and demo_agent.json differ");
}
