//! Post-call analysis through the API: the call and its analysis work commit together, a
//! worker writes the analysis, rerun redoes it; the `llm` engine against a fake
//! OpenAI-compatible server, with invalid JSON, a timeout and a 429.

mod common;

use dialnexa_testkit::fake_llm::{FakeLlm, Reply};
use dialnexa_testkit::{DbBackend, TestApp, demo_agent_config, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(analysis_runs_after_the_call_and_reruns);

async fn analysis_runs_after_the_call_and_reruns(backend: DbBackend) {
    let app = TestApp::start(backend).await;
    let agent = app.published_agent("Support line", &demo_agent_config()).await;
    let call = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": common::sev1_outage(), "timezone": "America/New_York" })).await;
    assert_eq!(call.status, 201, "{}", call.text);
    let call = call.json();
    let id = call["call_id"].as_str().unwrap().to_owned();
    assert_eq!(call["analysis"]["status"], "pending", "the call is stored before it is analysed");
    assert_eq!(call["analysis"]["engine"], "rules");

    assert_eq!(app.run_pending_work().await, 1);
    let detail = app.get(&format!("/v1/calls/{id}")).await.json();
    let a = &detail["analysis"];
    assert_eq!((a["status"].as_str(), a["engine"].as_str()), (Some("done"), Some("rules")), "{a}");
    assert!(a["engine_version"].is_string() && a["completed_at"].is_string());
    assert_eq!(a["timezone"], "America/New_York");
    assert_eq!(a["category"], "incident", "a sev1 outage is an incident: {}", a["category_reasons"]);
    assert!(!a["category_reasons"].as_array().unwrap().is_empty());
    assert!(a["sentiment"].is_string());
    assert!(a["redacted_transcript"].as_array().is_some_and(|t| t.len() == detail["transcript"].as_array().unwrap().len()));
    assert_eq!(detail["summary"], a["summary"]["text"]);
    // What the agent collected in the call stays as it was collected.
    assert_eq!(detail["extracted_fields"]["caller_email"]["value"], "ada@example.com");
    assert_eq!(detail["extracted_fields"]["severity"]["value"], "sev1");
    // The category is now a filter.
    assert_eq!(app.get("/v1/calls?category=incident").await.json()["calls"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/v1/calls?category=bug").await.json()["calls"].as_array().unwrap().len(), 0);
    assert_eq!(app.run_pending_work().await, 0, "nothing left to do");

    // Rerun: pending at once, done after the worker runs.
    let r = app.post(&format!("/v1/calls/{id}/analysis/rerun"), &json!({})).await;
    assert_eq!((r.status, r.json()["analysis"]["status"].as_str()), (202, Some("pending")));
    assert_eq!(app.get(&format!("/v1/calls/{id}")).await.json()["analysis"]["status"], "pending");
    assert_eq!(app.run_pending_work().await, 1);
    let again = app.get(&format!("/v1/calls/{id}")).await.json();
    assert_eq!(again["analysis"]["status"], "done");
    assert_eq!(again["analysis"]["category"], a["category"], "the rules engine is deterministic");
    assert_eq!(again["extracted_fields"], detail["extracted_fields"]);
    assert_eq!(app.post("/v1/calls/call_00000000000000000000000000000000/analysis/rerun", &json!({})).await.status, 404);
    // A bad timezone is refused before anything is stored.
    let bad = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": ["hi"], "timezone": "Mars/Olympus" })).await;
    assert_eq!((bad.status, bad.code()), (422, "validation_failed".to_owned()));
}

/// A valid answer for the sev1 script (turn indices of the demo agent's transcript).
fn llm_answer(transcript: &[Value]) -> Value {
    let turn_of = |needle: &str| transcript.iter().position(|t| t["role"] == "caller" && t["text"].as_str().unwrap().contains(needle)).unwrap();
    json!({
        "summary": { "text": "Checkout API down with 503s in us-east-1 since yesterday afternoon; customers cannot check out.", "symptom": "503 errors", "expected": null, "actual": null,
                     "affected_area": "payments API", "impact": "customers cannot check out", "already_checked": null, "next_step": "page on-call" },
        "category": "incident",
        "category_reasons": ["The caller reports the checkout API is down with 503 errors"],
        "severity": "sev1",
        "sentiment": "negative",
        "repeat_contact": false,
        "cancellation_language": false,
        "sla_risk": true,
        "sensitive_kinds": [],
        "fields": [
            { "name": "region", "value": "us-east-1", "turn": turn_of("us-east-1"), "quote": "us-east-1", "confidence": 0.95 },
            { "name": "error_message", "value": "503", "turn": turn_of("503 service"), "quote": "HTTP 503 service unavailable", "confidence": 0.9 },
            { "name": "affected_users", "value": 2000, "turn": turn_of("2000"), "quote": "about 2000 users", "confidence": 0.8 },
            { "name": "repo", "value": "acme/checkout", "turn": 1, "quote": "acme/checkout", "confidence": 0.9 },
            { "name": "favourite_colour", "value": "blue", "turn": 1, "quote": "blue", "confidence": 0.9 }
        ],
        "callbacks": [],
        "promises": []
    })
}

async fn llm_app(llm: &FakeLlm, max_attempts: u32) -> (TestApp, String, Value) {
    let app = TestApp::builder().llm(&llm.url).config(move |c| c.analysis_max_attempts = max_attempts).start().await;
    let agent = app.published_agent("Support line", &demo_agent_config()).await;
    let call = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": common::sev1_outage() })).await.json();
    assert_eq!(call["analysis"]["engine"], "llm");
    (app, call["call_id"].as_str().unwrap().to_owned(), call)
}

#[tokio::test]
async fn llm_answers_are_checked_and_grounded() {
    let llm = FakeLlm::start().await;
    llm.require_key("sk-test");
    let app = TestApp::builder()
        .llm(&llm.url)
        .config(|c| {
            c.llm_api_key = Some("sk-test".into());
        })
        .start()
        .await;
    let agent = app.published_agent("Support line", &demo_agent_config()).await;
    let call = app.post("/v1/calls/test", &json!({ "agent_id": agent, "caller_script": common::sev1_outage() })).await.json();
    let id = call["call_id"].as_str().unwrap();
    llm.push(Reply::Json(llm_answer(call["transcript"].as_array().unwrap())));
    app.run_pending_work().await;
    let a = app.get(&format!("/v1/calls/{id}")).await.json()["analysis"].clone();
    assert_eq!(
        (a["status"].as_str(), a["engine"].as_str(), a["model"].as_str(), a["prompt_version"].as_str()),
        (Some("done"), Some("llm"), Some("fake-model"), Some("analysis-v1")),
        "{a}"
    );
    assert_eq!((a["category"].as_str(), a["severity"].as_str(), a["sla_risk"]["detected"].as_bool()), (Some("incident"), Some("sev1"), Some(true)));
    let fields = &a["fields"];
    assert_eq!(fields["region"]["value"], "us-east-1");
    assert_eq!(fields["affected_users"]["value"], 2000);
    assert_eq!(fields["error_message"]["value"], "503");
    assert!(fields.get("repo").is_none(), "a quote that is not in the transcript is not grounded: dropped");
    assert!(fields.get("favourite_colour").is_none(), "not in the schema: dropped");
    let warnings = a["warnings"].to_string();
    assert!(warnings.contains("repo") && warnings.contains("favourite_colour"), "{warnings}");
    // The span points at the quote.
    let call = app.get(&format!("/v1/calls/{id}")).await.json();
    let span = &fields["error_message"]["span"];
    let text: Vec<char> = call["transcript"][span["turn"].as_u64().unwrap() as usize]["text"].as_str().unwrap().chars().collect();
    let quoted: String = text[span["start"].as_u64().unwrap() as usize..span["end"].as_u64().unwrap() as usize].iter().collect();
    assert_eq!(quoted, "HTTP 503 service unavailable");
    // The request followed the contract: model, messages, a strict JSON schema.
    let req = &llm.requests()[0];
    assert_eq!(req["model"], "fake-model");
    assert_eq!(req["response_format"]["type"], "json_schema");
    assert_eq!(req["response_format"]["json_schema"]["strict"], true);
    assert!(req["messages"][1]["content"].as_str().unwrap().contains("our checkout API is down"));
}

#[tokio::test]
async fn invalid_json_falls_back_to_rules() {
    let llm = FakeLlm::start().await;
    let (app, id, _) = llm_app(&llm, 4).await;
    llm.push(Reply::Content("{\"category\": \"incident\", oops".into()));
    app.run_pending_work().await;
    let a = app.get(&format!("/v1/calls/{id}")).await.json()["analysis"].clone();
    assert_eq!((a["status"].as_str(), a["engine"].as_str(), a["fallback"]["from"].as_str()), (Some("done"), Some("rules"), Some("llm")), "{a}");
    assert!(a["fallback"]["reason"].as_str().unwrap().contains("invalid output"), "{a}");
    // An answer of the wrong shape (unknown category) is invalid too.
    let r = app.post(&format!("/v1/calls/{id}/analysis/rerun"), &json!({})).await;
    assert_eq!(r.status, 202);
    llm.push(Reply::Json(json!({ "category": "vibes" })));
    app.run_pending_work().await;
    let a = app.get(&format!("/v1/calls/{id}")).await.json()["analysis"].clone();
    assert_eq!((a["engine"].as_str(), a["fallback"]["from"].as_str()), (Some("rules"), Some("llm")));
}

#[tokio::test]
async fn rate_limited_then_retried_with_backoff() {
    let llm = FakeLlm::start().await;
    let (app, id, call) = llm_app(&llm, 3).await;
    llm.push(Reply::RateLimited { retry_after_secs: 7 });
    let before = jiff::Timestamp::now();
    assert_eq!(app.run_pending_work().await, 1);
    let a = app.get(&format!("/v1/calls/{id}")).await.json()["analysis"].clone();
    assert_eq!((a["status"].as_str(), a["attempts"].as_u64()), (Some("pending"), Some(1)), "{a}");
    assert!(a["last_error"].as_str().unwrap().contains("429"), "{a}");
    let next: jiff::Timestamp = a["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = next.as_second() - before.as_second();
    assert!((5..=13).contains(&wait), "Retry-After 7 s honoured within [5 s, 10 s] ± jitter: {wait}");
    assert_eq!(app.run_pending_work().await, 0, "not before its time");
    // Later, the endpoint answers.
    llm.push(Reply::Json(llm_answer(call["transcript"].as_array().unwrap())));
    assert_eq!(app.run_pending_work_at(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).await, 1);
    let a = app.get(&format!("/v1/calls/{id}")).await.json()["analysis"].clone();
    assert_eq!((a["status"].as_str(), a["engine"].as_str(), a["attempts"].as_u64()), (Some("done"), Some("llm"), Some(2)), "{a}");
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test]
async fn a_slow_endpoint_times_out_then_rules_answer() {
    let llm = FakeLlm::start().await;
    let (app, id, _) = llm_app(&llm, 2).await;
    llm.push(Reply::Delay(std::time::Duration::from_secs(3), Box::new(Reply::Json(json!({})))));
    llm.push(Reply::Status(503));
    app.run_pending_work().await;
    let a = app.get(&format!("/v1/calls/{id}")).await.json()["analysis"].clone();
    assert_eq!(a["status"], "pending");
    assert!(a["last_error"].as_str().unwrap().contains("timed out"), "{a}");
    // The second and last attempt gets a 503: the rules engine answers, and says why.
    app.run_pending_work_at(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600)).await;
    let a = app.get(&format!("/v1/calls/{id}")).await.json()["analysis"].clone();
    assert_eq!((a["status"].as_str(), a["engine"].as_str(), a["fallback"]["from"].as_str()), (Some("done"), Some("rules"), Some("llm")), "{a}");
    let reason = a["fallback"]["reason"].as_str().unwrap();
    assert!(reason.contains("503") && reason.contains("gave up after 2 attempts"), "{reason}");
}

#[tokio::test]
async fn analysis_eval_cli_prints_the_scores() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../analysis/eval");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialnexa")).args(["analysis", "eval", dir, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["cases", "field_precision", "field_recall", "field_f1", "category_accuracy", "severity_accuracy", "sentiment_accuracy"] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert!(v["cases"].as_u64().unwrap() >= 60);
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_dialnexa")).args(["analysis", "eval", dir]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ALL (micro)") && text.contains("category accuracy") && text.contains("confusion"), "{text}");
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_dialnexa")).args(["analysis", "eval", "/nonexistent"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent"));
}
