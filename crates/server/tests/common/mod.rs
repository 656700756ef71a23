//! Caller scripts for the demo agent ("Support line").
#![allow(dead_code)]

use serde_json::{Value, json};

/// A sev1 outage: every incident field, then a transfer to on-call.
pub fn sev1_outage() -> Value {
    json!([
        "Hi, this is Ada Lovelace",
        "my email is ada@example.com",
        "Acme Corp",
        "yes I do",
        "ACME-42",
        "our checkout API is down, we get 503 errors everywhere",
        "the payments API",
        "production",
        "us-east-1",
        "the /v1/charges endpoint",
        "HTTP 503 service unavailable",
        "since 3pm yesterday",
        "critical, everything is down",
        "customers cannot check out",
        "about 2000 users",
        "no workaround"
    ])
}

/// A setup question: the agent points at the docs and ends the call.
pub fn setup_question() -> Value {
    json!(["Grace Hopper", "grace@example.com", "Initech", "no", "how do I set up webhooks for my account"])
}

/// The caller hangs up after giving a name.
pub fn hangs_up_early() -> Value {
    json!(["Bob"])
}

/// A flow agent that says exactly `agent` lines, one per turn, waiting for the caller after
/// each but the last (an `end`): the transcript alternates agent and caller lines as given.
pub fn scripted_agent(agent: &[&str]) -> Value {
    let n = agent.len();
    let nodes: Vec<Value> = agent
        .iter()
        .enumerate()
        .map(|(i, text)| {
            if i + 1 == n {
                json!({ "id": format!("a{i}"), "type": "end", "text": text })
            } else {
                json!({ "id": format!("a{i}"), "type": "ask", "text": text, "next": format!("a{}", i + 1) })
            }
        })
        .collect();
    json!({ "kind": "flow", "max_turns": 100, "flow": { "start": "a0", "nodes": nodes } })
}
