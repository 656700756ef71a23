//! Bad input gets a clear error with a stable code, and changes nothing.

mod common;

use dialnexa_testkit::{DbBackend, TestApp, demo_agent_config, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(bad_input_changes_nothing);

/// Everything the API holds, to compare before and after.
async fn snapshot(app: &TestApp) -> Value {
    let mut s = serde_json::Map::new();
    for path in ["/v1/agents", "/v1/phone-numbers", "/v1/calls", "/v1/annotations"] {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        s.insert(path.into(), r.json());
    }
    Value::Object(s)
}

async fn expect(app: &TestApp, r: dialnexa_testkit::Resp, status: u16, code: &str) -> Value {
    let _ = app;
    assert_eq!(r.status, status, "expected {status} {code}, got {}", r.text);
    let body = r.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap_or("").is_empty(), "a message a person can read");
    body
}

async fn bad_input_changes_nothing(backend: DbBackend) {
    let app = TestApp::start(backend).await;
    let agent_id = app.published_agent("Support line", &demo_agent_config()).await;
    let r = app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": common::hangs_up_early() })).await;
    assert_eq!(r.status, 201);
    let call_id = r.json()["call_id"].as_str().unwrap().to_owned();
    assert_eq!(app.post("/v1/phone-numbers", &json!({ "phone_number": "+15550100000", "inbound_agent_id": agent_id })).await.status, 201);
    let before = snapshot(&app).await;

    // Malformed JSON.
    expect(&app, app.post_raw("/v1/agents", "{\"name\": \"x\", ").await, 400, "invalid_json").await;
    expect(&app, app.post_raw("/v1/agents", "").await, 400, "invalid_json").await;
    // Unknown fields: in the request, and in the agent config (with the path of the fault).
    expect(&app, app.post("/v1/agents", &json!({ "name": "x", "config": demo_agent_config(), "colour": "red" })).await, 422, "validation_failed").await;
    let mut cfg = demo_agent_config();
    cfg["voicee"] = json!("x");
    let body = expect(&app, app.post("/v1/agents", &json!({ "name": "x", "config": cfg })).await, 422, "invalid_agent_config").await;
    assert_eq!(body["error"]["details"]["path"], "config.voicee", "{body}");
    let mut cfg = demo_agent_config();
    cfg["flow"]["nodes"][0]["next"] = json!("nowhere");
    let body = expect(&app, app.post("/v1/agents", &json!({ "name": "x", "config": cfg })).await, 422, "invalid_agent_config").await;
    assert_eq!(body["error"]["details"]["path"], "config.flow.nodes[0].next", "{body}");
    let body = expect(&app, app.post("/v1/agents", &json!({ "name": "x", "config": { "kind": "robot" } })).await, 422, "invalid_agent_config").await;
    assert_eq!(body["error"]["details"]["path"], "config.kind");
    expect(&app, app.post("/v1/agents", &json!({ "name": "", "config": demo_agent_config() })).await, 422, "validation_failed").await;
    let mut cfg = demo_agent_config();
    cfg["analysis"] = json!({ "schemas": ["technical_incident", "astrology"] });
    let body = expect(&app, app.post("/v1/agents", &json!({ "name": "x", "config": cfg })).await, 422, "invalid_agent_config").await;
    assert_eq!(body["error"]["details"]["path"], "config.analysis.schemas[1]", "{body}");
    let mut cfg = demo_agent_config();
    cfg["analysis"] = json!({ "fields": [{ "name": "tier", "type": "enum" }] });
    let body = expect(&app, app.post("/v1/agents", &json!({ "name": "x", "config": cfg })).await, 422, "invalid_agent_config").await;
    assert_eq!(body["error"]["details"]["path"], "config.analysis.fields[0].options", "{body}");
    let mut cfg = demo_agent_config();
    cfg["flow"]["nodes"][0]["text"] = json!("Hello {{nobody}}");
    expect(&app, app.put(&format!("/v1/agents/{agent_id}/draft"), &json!({ "config": cfg })).await, 422, "invalid_agent_config").await;

    // Numbers: not E.164, unknown agent, unpublished version, duplicate.
    for bad in ["5550100000", "+1 555 010 0000", "+1555010000a", "+0155501"] {
        expect(&app, app.post("/v1/phone-numbers", &json!({ "phone_number": bad })).await, 422, "invalid_phone_number").await;
    }
    expect(
        &app,
        app.post("/v1/phone-numbers", &json!({ "phone_number": "+15550100001", "inbound_agent_id": "agent_00000000000000000000000000000000" })).await,
        422,
        "agent_not_found",
    )
    .await;
    expect(&app, app.post("/v1/phone-numbers", &json!({ "phone_number": "+15550100001", "inbound_agent_id": "nonsense" })).await, 422, "agent_not_found").await;
    expect(
        &app,
        app.post("/v1/phone-numbers", &json!({ "phone_number": "+15550100001", "inbound_agent_id": agent_id, "inbound_agent_version": 2 })).await,
        422,
        "agent_version_not_published",
    )
    .await;
    expect(&app, app.post("/v1/phone-numbers", &json!({ "phone_number": "+15550100000" })).await, 409, "conflict").await;
    expect(&app, app.patch("/v1/phone-numbers/%2B15550100000", &json!({ "inbound_agent_version": 5 })).await, 422, "agent_version_not_published").await;
    expect(&app, app.patch("/v1/phone-numbers/%2B15550100000", &json!({ "active": "yes" })).await, 422, "validation_failed").await;
    expect(&app, app.patch("/v1/phone-numbers/%2B15550100000", &json!({ "owner": "me" })).await, 422, "validation_failed").await;
    expect(&app, app.get("/v1/phone-numbers/%2B15550109999").await, 404, "not_found").await;

    // Routes that cannot resolve.
    expect(&app, app.post("/v1/routes/resolve", &json!({ "entry_point": "carrier_pigeon" })).await, 422, "validation_failed").await;
    expect(&app, app.post("/v1/routes/resolve", &json!({ "entry_point": "inbound", "phone_number": "+15550109999" })).await, 422, "phone_number_not_found")
        .await;
    expect(&app, app.post("/v1/routes/resolve", &json!({ "entry_point": "outbound", "phone_number": "+15550100000" })).await, 422, "no_outbound_agent").await;
    expect(&app, app.post("/v1/routes/resolve", &json!({ "entry_point": "inbound" })).await, 422, "validation_failed").await;

    // Test calls: unknown or unpublished version, empty, blank and oversized scripts.
    expect(
        &app,
        app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "agent_version": 9, "caller_script": ["hi"] })).await,
        422,
        "agent_version_not_published",
    )
    .await;
    expect(
        &app,
        app.post("/v1/calls/test", &json!({ "agent_id": "agent_00000000000000000000000000000000", "caller_script": ["hi"] })).await,
        422,
        "agent_not_found",
    )
    .await;
    let body = expect(&app, app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": [] })).await, 422, "invalid_caller_script").await;
    assert_eq!(body["error"]["details"]["path"], "caller_script");
    let body =
        expect(&app, app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": ["hi", "   "] })).await, 422, "invalid_caller_script").await;
    assert_eq!(body["error"]["details"]["path"], "caller_script[1]");
    let long: Vec<String> = (0..201).map(|i| format!("line {i}")).collect();
    expect(&app, app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": long })).await, 422, "invalid_caller_script").await;
    expect(&app, app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": ["x".repeat(2001)] })).await, 422, "invalid_caller_script").await;
    expect(&app, app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": "hello" })).await, 422, "validation_failed").await;
    expect(&app, app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": ["hi"], "metadata": [1] })).await, 422, "validation_failed").await;
    expect(
        &app,
        app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": ["hi"], "from_number": "555" })).await,
        422,
        "invalid_phone_number",
    )
    .await;
    // An oversized body.
    let huge = format!("{{\"agent_id\": \"{agent_id}\", \"caller_script\": [\"{}\"]}}", "a".repeat(2 * 1024 * 1024));
    expect(&app, app.post_raw("/v1/calls/test", huge).await, 413, "payload_too_large").await;

    // Lists: unknown filter values and names, bad cursors and limits.
    for q in [
        "status=finished",
        "entry_point=fax",
        "agent_id=bob",
        "agent_version=two",
        "phone_number=123",
        "started_after=yesterday",
        "category=weird",
        "handoff_status=lost",
        "colour=red",
    ] {
        expect(&app, app.get(&format!("/v1/calls?{q}")).await, 422, "invalid_filter").await;
    }
    expect(&app, app.get("/v1/calls?started_after=2026-02-01T00:00:00Z&started_before=2026-01-01T00:00:00Z").await, 422, "invalid_filter").await;
    for q in ["limit=0", "limit=1001", "limit=ten"] {
        expect(&app, app.get(&format!("/v1/calls?{q}")).await, 422, "invalid_filter").await;
    }
    for c in ["garbage", "123.call_nothex", "abc.call_00000000000000000000000000000000"] {
        expect(&app, app.get(&format!("/v1/calls?cursor={c}")).await, 422, "invalid_cursor").await;
    }
    expect(&app, app.get("/v1/agents?cursor=nope").await, 422, "invalid_cursor").await;
    expect(&app, app.get("/v1/calls/export?format=xlsx").await, 422, "invalid_filter").await;
    expect(&app, app.get("/v1/annotations?kind=rant").await, 422, "invalid_filter").await;

    // Unknown things are 404.
    expect(&app, app.get("/v1/calls/call_00000000000000000000000000000000").await, 404, "not_found").await;
    expect(&app, app.get("/v1/calls/whatever").await, 404, "not_found").await;
    expect(&app, app.get("/v1/agents/agent_00000000000000000000000000000000").await, 404, "not_found").await;
    expect(&app, app.get(&format!("/v1/agents/{agent_id}/versions/99")).await, 404, "not_found").await;
    expect(&app, app.post("/v1/agents/agent_00000000000000000000000000000000/publish", &json!({})).await, 404, "not_found").await;
    expect(&app, app.get("/v1/nothing-here").await, 404, "not_found").await;

    // Annotations: bad kind, empty text, a turn the call does not have, an unknown call.
    expect(&app, app.post(&format!("/v1/calls/{call_id}/annotations"), &json!({ "kind": "rant", "text": "x" })).await, 422, "validation_failed").await;
    expect(&app, app.post(&format!("/v1/calls/{call_id}/annotations"), &json!({ "kind": "note", "text": " " })).await, 422, "validation_failed").await;
    expect(
        &app,
        app.post(&format!("/v1/calls/{call_id}/annotations"), &json!({ "kind": "note", "text": "x", "turn_index": 99 })).await,
        422,
        "invalid_turn_index",
    )
    .await;
    expect(&app, app.post("/v1/calls/call_00000000000000000000000000000000/annotations", &json!({ "kind": "note", "text": "x" })).await, 404, "not_found")
        .await;

    // Missing and wrong API keys.
    expect(&app, app.get_anonymous("/v1/calls").await, 401, "unauthorized").await;
    let wrong = app.send(app.client.get(app.url("/v1/calls")).bearer_auth("dnx_wrong")).await;
    expect(&app, wrong, 401, "unauthorized").await;
    let not_bearer = app.send(app.client.get(app.url("/v1/calls")).header("authorization", format!("Basic {}", app.key))).await;
    expect(&app, not_bearer, 401, "unauthorized").await;
    let anon_post = app.send(app.client.post(app.url("/v1/agents")).json(&json!({ "name": "x", "config": demo_agent_config() }))).await;
    expect(&app, anon_post, 401, "unauthorized").await;

    assert_eq!(snapshot(&app).await, before, "bad input changed something");
}
