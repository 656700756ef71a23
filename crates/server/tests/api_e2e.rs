//! The whole of issue 2's API, end to end over real HTTP: create an agent, publish it, add
//! numbers, resolve routes, place test calls, list with filters, read the detail, export
//! both formats and annotate. Once on SQLite, once on PostgreSQL.

mod common;

use dialnexa_testkit::{DbBackend, TestApp, demo_agent_config, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(full_scenario);

async fn full_scenario(backend: DbBackend) {
    let app = TestApp::start(backend).await;

    // Agents and versions.
    let r = app.post("/v1/agents", &json!({ "name": "Support line", "config": demo_agent_config() })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let agent = r.json();
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    assert!(agent_id.starts_with("agent_"));
    assert_eq!((agent["draft_version"].as_u64(), agent["published_versions"].clone()), (Some(1), json!([])));
    let v1_draft = app.get(&format!("/v1/agents/{agent_id}/versions/1")).await.json();
    assert_eq!(v1_draft["status"], "draft");
    let p1 = app.post(&format!("/v1/agents/{agent_id}/publish"), &json!({})).await;
    assert_eq!(p1.status, 200, "{}", p1.text);
    let p1 = p1.json();
    assert_eq!(p1["version"], 1);
    let hash1 = p1["config_hash"].as_str().unwrap().to_owned();
    assert!(hash1.starts_with("sha256:") && p1["published_at"].is_string());

    // A new draft with another company name; version 1 stays as it was.
    let mut cfg2 = demo_agent_config();
    cfg2["variables"]["company"] = json!("Initech Cloud");
    let d = app.put(&format!("/v1/agents/{agent_id}/draft"), &json!({ "config": cfg2 })).await;
    assert_eq!((d.status, d.json()["version"].as_u64()), (200, Some(2)), "{}", d.text);
    let v1 = app.get(&format!("/v1/agents/{agent_id}/versions/1")).await.json();
    assert_eq!(
        (v1["status"].as_str(), v1["config"]["variables"]["company"].as_str(), v1["config_hash"].as_str()),
        (Some("published"), Some("Acme Cloud"), Some(hash1.as_str()))
    );
    let p2 = app.post(&format!("/v1/agents/{agent_id}/publish"), &json!({})).await.json();
    assert_eq!(p2["version"], 2);
    assert_ne!(p2["config_hash"], json!(hash1));
    let a = app.get(&format!("/v1/agents/{agent_id}")).await.json();
    assert_eq!((a["draft_version"].as_u64(), a["published_versions"].clone()), (Some(3), json!([1, 2])));
    let list = app.get("/v1/agents").await.json();
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_cursor"], Value::Null);

    // Phone numbers.
    let r = app
        .post(
            "/v1/phone-numbers",
            &json!({ "phone_number": "+15550100000", "inbound_agent_id": agent_id, "inbound_agent_version": 1, "outbound_agent_id": agent_id }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["active"], true);
    let r = app
        .post("/v1/phone-numbers", &json!({ "phone_number": "+15550100002", "outbound_agent_id": agent_id, "outbound_agent_version": 1, "active": false }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.post("/v1/phone-numbers", &json!({ "phone_number": "+15550100003" })).await.status, 201);
    assert_eq!(app.get("/v1/phone-numbers").await.json()["phone_numbers"].as_array().unwrap().len(), 3);
    let one = app.get("/v1/phone-numbers/%2B15550100000").await;
    assert_eq!((one.status, one.json()["inbound_agent_version"].as_u64()), (200, Some(1)));
    assert_eq!(app.delete("/v1/phone-numbers/%2B15550100003").await.status, 204);
    assert_eq!(app.get("/v1/phone-numbers/%2B15550100003").await.status, 404);

    // Routes, with the sentence that explains each.
    let resolve = |body: Value| {
        let app = &app;
        async move { app.post("/v1/routes/resolve", &body).await }
    };
    let r = resolve(json!({ "entry_point": "inbound", "phone_number": "+15550100000" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = r.json();
    assert_eq!((r["agent_id"].as_str(), r["agent_version"].as_u64(), r["config_hash"].as_str()), (Some(agent_id.as_str()), Some(1), Some(hash1.as_str())));
    assert_eq!(r["explanation"], "+15550100000 is assigned inbound agent 'Support line' version 1");
    let r = resolve(json!({ "entry_point": "outbound", "phone_number": "+15550100000" })).await.json();
    assert_eq!(r["agent_version"], 2);
    assert_eq!(r["explanation"], "+15550100000 is assigned outbound agent 'Support line' version 2 (no version pinned, so its latest published version)");
    let r = resolve(json!({ "entry_point": "inbound", "phone_number": "+15550100002" })).await;
    assert_eq!((r.status, r.code()), (422, "phone_number_inactive".to_owned()));
    // Activate it: now the missing inbound agent is what refuses the call.
    let r = app.patch("/v1/phone-numbers/%2B15550100002", &json!({ "active": true })).await;
    assert_eq!((r.status, r.json()["active"].as_bool()), (200, Some(true)));
    let r = resolve(json!({ "entry_point": "inbound", "phone_number": "+15550100002" })).await;
    assert_eq!((r.status, r.code()), (422, "no_inbound_agent".to_owned()));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("+15550100002 has no inbound agent"));
    let r = resolve(json!({ "entry_point": "batch", "phone_number": "+15550100002", "batch_id": "batch_spring" })).await.json();
    assert_eq!(r["explanation"], "Batch batch_spring dials from +15550100002, whose outbound agent is 'Support line' version 1");
    let r = resolve(json!({ "entry_point": "test", "agent_id": agent_id, "agent_version": 7 })).await;
    assert_eq!((r.status, r.code()), (422, "agent_version_not_published".to_owned()));

    // Test calls.
    let r = app
        .post("/v1/calls/test", &json!({ "agent_id": agent_id, "agent_version": 2, "caller_script": common::sev1_outage(), "from_number": "+15550100777", "metadata": { "ticket": "T-1" } }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sev1 = r.json();
    let sev1_id = sev1["call_id"].as_str().unwrap().to_owned();
    assert!(sev1_id.starts_with("call_"));
    assert_eq!((sev1["entry_point"].as_str(), sev1["status"].as_str(), sev1["disconnection_reason"].as_str()), (Some("test"), Some("ended"), Some("transfer")));
    assert_eq!((sev1["agent_version"].as_u64(), &sev1["config_hash"]), (Some(2), &p2["config_hash"]));
    assert_eq!(sev1["route"]["explanation"], "Test call requested agent 'Support line' version 2");
    assert_eq!(sev1["transfer"]["to"], "+15550100001");
    assert_eq!(sev1["metadata"]["ticket"], "T-1");
    assert_eq!(sev1["recording"]["status"], "none");
    // Version 2's greeting, with its own company name.
    let transcript = sev1["transcript"].as_array().unwrap();
    assert_eq!(transcript[0]["role"], "agent");
    assert!(transcript[0]["text"].as_str().unwrap().contains("Initech Cloud"), "{}", transcript[0]);
    assert_eq!(transcript.iter().filter(|t| t["role"] == "caller").count(), 16);
    let mut last_end = 0;
    for (i, t) in transcript.iter().enumerate() {
        assert_eq!(t["index"].as_u64(), Some(i as u64));
        let (s, e) = (t["start_ms"].as_u64().unwrap(), t["end_ms"].as_u64().unwrap());
        assert!(s >= last_end && e > s, "turn timing {t}");
        last_end = e;
    }
    assert!(sev1["duration_ms"].as_u64().unwrap() >= last_end);
    // Collected fields point back at the caller turn they came from.
    let fields = &sev1["extracted_fields"];
    for (name, expected) in
        [("severity", json!("sev1")), ("environment", json!("production")), ("caller_email", json!("ada@example.com")), ("affected_users", json!(2000))]
    {
        let f = &fields[name];
        assert_eq!(f["value"], expected, "{name}: {f}");
        let turn = &transcript[f["span"]["turn"].as_u64().unwrap() as usize];
        assert_eq!(turn["role"], "caller", "{name}");
        let text: Vec<char> = turn["text"].as_str().unwrap().chars().collect();
        let (s, e) = (f["span"]["start"].as_u64().unwrap() as usize, f["span"]["end"].as_u64().unwrap() as usize);
        assert!(s < e && e <= text.len(), "{name} span in range");
        assert!((0.0..=1.0).contains(&f["confidence"].as_f64().unwrap()));
    }
    let kinds: Vec<&str> = sev1["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in ["call_registered", "route_resolved", "node_entered", "field_collected", "branch_taken", "transfer", "call_ended"] {
        assert!(kinds.contains(&k), "timeline lacks {k}: {kinds:?}");
    }
    let route_event = sev1["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "route_resolved").unwrap();
    assert_eq!(route_event["detail"], sev1["route"]["explanation"]);

    let setup = app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "agent_version": 1, "caller_script": common::setup_question() })).await.json();
    assert_eq!((setup["disconnection_reason"].as_str(), setup["agent_version"].as_u64()), (Some("agent_hangup"), Some(1)));
    assert!(setup["transcript"].as_array().unwrap().last().unwrap()["text"].as_str().unwrap().contains("docs.acmecloud.example"));
    let early = app.post("/v1/calls/test", &json!({ "agent_id": agent_id, "caller_script": common::hangs_up_early() })).await.json();
    assert_eq!((early["disconnection_reason"].as_str(), early["agent_version"].as_u64()), (Some("user_hangup"), Some(2)));
    assert_eq!(early["extracted_fields"]["caller_name"]["value"], "Bob");

    // The history, newest first, with filters and keyset pages.
    let all = app.get("/v1/calls").await.json();
    let ids: Vec<&str> = all["calls"].as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![early["call_id"].as_str().unwrap(), setup["call_id"].as_str().unwrap(), sev1_id.as_str()]);
    let count = |q: &'static str| {
        let app = &app;
        async move {
            let r = app.get(&format!("/v1/calls?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            r.json()["calls"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("entry_point=test").await, 3);
    assert_eq!(count("entry_point=inbound").await, 0);
    assert_eq!(count("status=ended").await, 3);
    assert_eq!(count("agent_version=1").await, 1);
    assert_eq!(app.get(&format!("/v1/calls?agent_id={agent_id}&agent_version=2")).await.json()["calls"].as_array().unwrap().len(), 2);
    assert_eq!(count("phone_number=%2B15550100777").await, 1);
    assert_eq!(count("started_after=2099-01-01T00:00:00Z").await, 0);
    assert_eq!(count("started_before=2099-01-01T00:00:00Z&started_after=2000-01-01T00:00:00Z").await, 3);
    assert_eq!(count("batch_id=none").await, 0);
    assert_eq!(count("workflow_id=none").await, 0);
    assert_eq!(count("category=incident").await, 0, "no analysis has run yet");
    assert_eq!(count("handoff_status=sent").await, 0);
    let page1 = app.get("/v1/calls?limit=2").await.json();
    assert_eq!(page1["calls"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = app.get(&format!("/v1/calls?limit=2&cursor={cursor}")).await.json();
    assert_eq!(page2["calls"].as_array().unwrap().len(), 1);
    assert_eq!(page2["calls"][0]["call_id"], json!(sev1_id));
    assert_eq!(page2["next_cursor"], Value::Null);

    // The detail reads back what the create answered.
    let detail = app.get(&format!("/v1/calls/{sev1_id}")).await;
    assert_eq!(detail.status, 200);
    let detail = detail.json();
    assert_eq!(detail["transcript"], sev1["transcript"]);
    assert_eq!(detail["timeline"], sev1["timeline"]);
    assert_eq!(detail["extracted_fields"], sev1["extracted_fields"]);

    // Export: CSV with a header and field columns, JSON Lines with one object per call.
    let csv_resp = app.get("/v1/calls/export?format=csv&entry_point=test").await;
    assert_eq!(csv_resp.status, 200);
    assert!(csv_resp.header("content-type").unwrap().starts_with("text/csv"));
    let mut rdr = csv::Reader::from_reader(csv_resp.text.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    for col in ["call_id", "status", "disconnection_reason", "field.severity", "field.caller_email", "field.region"] {
        assert!(header.contains(&col.to_owned()), "CSV header lacks {col}: {header:?}");
    }
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let sev1_row = rows.iter().find(|r| r[col("call_id")] == sev1_id).unwrap();
    assert_eq!(
        (&sev1_row[col("field.severity")], &sev1_row[col("field.caller_email")], &sev1_row[col("disconnection_reason")]),
        ("sev1", "ada@example.com", "transfer")
    );
    let jsonl = app.get("/v1/calls/export?format=jsonl&agent_version=2").await;
    assert_eq!(jsonl.status, 200);
    let lines: Vec<Value> = jsonl.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().any(|l| l["call_id"] == json!(sev1_id) && l["extracted_fields"]["severity"]["value"] == "sev1"));

    // Annotations.
    let r = app
        .post(&format!("/v1/calls/{sev1_id}/annotations"), &json!({ "turn_index": 2, "kind": "prompt_suggestion", "text": "Read the email back to confirm it", "suggestion": "So that's ada@example.com, right?" }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!((r.json()["agent_version"].as_u64(), r.json()["turn_index"].as_u64()), (Some(2), Some(2)));
    assert_eq!(app.post(&format!("/v1/calls/{sev1_id}/annotations"), &json!({ "kind": "note", "text": "Good escalation" })).await.status, 201);
    let listed = app.get(&format!("/v1/annotations?agent_id={agent_id}&agent_version=2&kind=prompt_suggestion")).await.json();
    assert_eq!(listed["annotations"].as_array().unwrap().len(), 1);
    assert_eq!(listed["annotations"][0]["call_id"], json!(sev1_id));
    assert_eq!(app.get("/v1/annotations?agent_version=1").await.json()["annotations"].as_array().unwrap().len(), 0);
    let detail = app.get(&format!("/v1/calls/{sev1_id}")).await.json();
    assert_eq!(detail["annotations"].as_array().unwrap().len(), 2);
}
