//! The Store conformance suite: every test runs on SQLite and on PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use dialnexa_core::agent::VersionStatus;
use dialnexa_core::evidence::{Role, Span};
use dialnexa_core::{AgentId, Annotation, AnnotationId, AnnotationKind, CallId, ExtractedField, PhoneNumber, TimelineEvent, TranscriptTurn};
use dialnexa_store::testing::fresh_store;
use dialnexa_store::*;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(dialnexa_store::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(dialnexa_store::Backend::Postgres).await } )* }
    };
}

on_both!(
    agents_and_versions,
    phone_numbers_and_route_snapshot,
    calls_list_filters_and_cursor,
    annotations,
    idempotency_records,
    api_keys,
    queue_two_workers_never_hold_the_same_item,
    queue_expired_lease_is_rescued,
    queue_stale_completion_changes_nothing,
    queue_retries_back_off_then_die,
    queue_dedup_and_outbox,
    analysis_is_written_under_the_lease,
    queue_rescue_races_late_finishers_without_deadlock,
    follow_up_completion_commits_with_its_plan,
    review_decisions_and_retries_race_to_one_winner,
    reviews_and_follow_ups_page_by_keyset,
    started_filters_use_the_start_time
);

fn t(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(1_790_000_000_000 + ms).unwrap()
}

fn draft(n: u32) -> NewVersion {
    NewVersion { kind: "flow".into(), config: serde_json::json!({"kind": "flow", "n": n}), config_hash: format!("sha256:{n}") }
}

async fn store(b: Backend) -> (SqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (fresh_store(b, dir.path()).await.unwrap(), dir)
}

async fn agents_and_versions(b: Backend) {
    let (s, _d) = store(b).await;
    let id = AgentId::generate();
    let a = s.create_agent(&id, "Support line", &draft(1), t(0)).await.unwrap();
    assert_eq!((a.draft_version, a.published_versions.clone()), (1, vec![]));
    s.update_draft(&id, &draft(2), t(1)).await.unwrap();
    let p = s.publish(&id, t(2)).await.unwrap();
    assert_eq!((p.version, p.status, p.config_hash.as_str(), p.published_at), (1, VersionStatus::Published, "sha256:2", Some(t(2))));
    // The next draft opens as a copy; changing it leaves version 1 alone.
    let d = s.get_version(&id, 2).await.unwrap();
    assert_eq!((d.status, d.config.clone()), (VersionStatus::Draft, p.config.clone()));
    s.update_draft(&id, &draft(3), t(3)).await.unwrap();
    assert_eq!(s.get_version(&id, 1).await.unwrap().config_hash, "sha256:2");
    assert_eq!(s.get_version(&id, 2).await.unwrap().config_hash, "sha256:3");
    s.publish(&id, t(4)).await.unwrap();
    let a = s.get_agent(&id).await.unwrap();
    assert_eq!((a.draft_version, a.published_versions), (3, vec![1, 2]));
    assert!(matches!(s.get_version(&id, 9).await, Err(StoreError::NotFound)));
    assert!(matches!(s.get_agent(&AgentId::generate()).await, Err(StoreError::NotFound)));
    assert!(matches!(s.publish(&AgentId::generate(), t(5)).await, Err(StoreError::NotFound)));
    assert_eq!(s.find_agent_by_name("Support line").await.unwrap().unwrap().agent_id, id);
    // Keyset pages cover every agent exactly once.
    for i in 0..4 {
        s.create_agent(&AgentId::generate(), &format!("a{i}"), &draft(9), t(10)).await.unwrap();
    }
    let first = s.list_agents(None, 3).await.unwrap();
    let rest = s.list_agents(Some(&first[2].agent_id), 10).await.unwrap();
    assert_eq!(first.len() + rest.len(), 5);
    assert!(first.last().unwrap().agent_id < rest[0].agent_id);
}

fn number(n: &str, ib: Option<&AgentId>, ob: Option<&AgentId>) -> PhoneNumberRecord {
    PhoneNumberRecord {
        phone_number: PhoneNumber::parse(n).unwrap(),
        inbound_agent_id: ib.cloned(),
        inbound_agent_version: ib.map(|_| 1),
        outbound_agent_id: ob.cloned(),
        outbound_agent_version: None,
        active: true,
        nickname: Some("main".into()),
        inbound_hook_url: None,
        created_at: t(0),
        updated_at: t(0),
    }
}

async fn phone_numbers_and_route_snapshot(b: Backend) {
    let (s, _d) = store(b).await;
    let id = AgentId::generate();
    s.create_agent(&id, "Support line", &draft(1), t(0)).await.unwrap();
    s.publish(&id, t(1)).await.unwrap();
    let rec = number("+15550100000", Some(&id), None);
    s.create_number(&rec).await.unwrap();
    assert!(matches!(s.create_number(&rec).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.get_number(&rec.phone_number).await.unwrap(), rec);
    let mut changed = rec.clone();
    changed.active = false;
    changed.outbound_agent_id = Some(id.clone());
    s.update_number(&changed).await.unwrap();
    assert_eq!(s.get_number(&rec.phone_number).await.unwrap(), changed);
    let snap = s.route_snapshot(&[rec.phone_number.clone(), PhoneNumber::parse("+15550100009").unwrap()], &[]).await.unwrap();
    assert_eq!(snap.numbers.len(), 1);
    assert!(!snap.numbers[0].active);
    assert_eq!(snap.agents.len(), 1);
    assert_eq!(snap.agents[0].published, vec![(1, "sha256:1".to_owned())]);
    s.create_number(&number("+15550100001", None, None)).await.unwrap();
    assert_eq!(s.list_numbers(None, 10).await.unwrap().len(), 2);
    assert_eq!(s.list_numbers(Some(&rec.phone_number), 10).await.unwrap().len(), 1);
    s.delete_number(&rec.phone_number).await.unwrap();
    assert!(matches!(s.get_number(&rec.phone_number).await, Err(StoreError::NotFound)));
    assert!(matches!(s.delete_number(&rec.phone_number).await, Err(StoreError::NotFound)));
}

fn call(at: i64, entry: &str, status: &str, agent: &AgentId, version: u32, from: &str) -> NewCall {
    let call_id = CallId::generate();
    let mut fields = BTreeMap::new();
    fields.insert("caller_name".to_owned(), ExtractedField { value: serde_json::json!("Ada"), confidence: 0.9, span: Span { turn: 1, start: 0, end: 3 } });
    NewCall {
        row: CallRow {
            call_id,
            entry_point: entry.into(),
            direction: "web".into(),
            from_number: Some(from.into()),
            to_number: Some("+15550100000".into()),
            agent_id: Some(agent.clone()),
            agent_version: Some(version),
            config_hash: Some("sha256:x".into()),
            route: serde_json::json!({"explanation": "because"}),
            batch_id: (entry == "batch").then(|| "batch_1".to_owned()),
            workflow_id: None,
            status: status.into(),
            disconnection_reason: Some("user_hangup".into()),
            created_at: t(at),
            started_at: Some(t(at)),
            ended_at: Some(t(at + 5000)),
            duration_ms: Some(5000),
            category: (entry == "test").then(|| "incident".to_owned()),
            summary: None,
            extracted_fields: fields,
            analysis: None,
            transfer: None,
            recording: RecordingInfo { status: "none".into(), url: None, duration_ms: None, reason: None, blob: None, blob_channels: None },
            audio_cache_hits: 0,
            audio_cache_misses: 0,
            metadata: serde_json::json!({"k": "v"}),
            timezone: Some("Europe/Berlin".into()),
        },
        timeline: vec![TimelineEvent { at: t(at), offset_ms: 0, kind: "route_resolved".into(), detail: "because".into() }],
        transcript: vec![
            TranscriptTurn { index: 0, role: Role::Agent, text: "Hi".into(), start_ms: 0, end_ms: 400 },
            TranscriptTurn { index: 1, role: Role::Caller, text: "Ada here".into(), start_ms: 1200, end_ms: 2000 },
        ],
    }
}

async fn calls_list_filters_and_cursor(b: Backend) {
    let (s, _d) = store(b).await;
    let a1 = AgentId::generate();
    let a2 = AgentId::generate();
    let mut ids = vec![];
    for i in 0..30 {
        let (entry, status, agent, from) = match i % 3 {
            0 => ("test", "ended", &a1, "+15550100001"),
            1 => ("web", "error", &a2, "+15550100002"),
            _ => ("batch", "ended", &a1, "+15550100003"),
        };
        // Pairs share a timestamp, so the cursor must break ties by id.
        let c = call(i / 2 * 1000, entry, status, agent, 1 + (i % 2) as u32, from);
        ids.push(c.row.call_id.clone());
        s.insert_call(&c, &[], t(0)).await.unwrap();
    }
    let detail = s.get_call(&ids[0]).await.unwrap();
    assert_eq!(detail.transcript.len(), 2);
    assert_eq!(detail.timeline[0].kind, "route_resolved");
    assert_eq!(detail.row.extracted_fields["caller_name"].span.end, 3);
    assert_eq!(detail.row.metadata["k"], "v");
    assert_eq!(detail.row.timezone.as_deref(), Some("Europe/Berlin"));
    assert!(matches!(s.get_call(&CallId::generate()).await, Err(StoreError::NotFound)));

    // Newest first; pages of 7 cover all 30 once.
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let page = s.list_calls(&CallFilter::default(), cursor.as_ref(), 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some(CallCursor { created_at_ms: last.created_at.as_millisecond(), call_id: last.call_id.to_string() });
        seen.extend(page.into_iter().map(|r| (r.created_at, r.call_id)));
    }
    assert_eq!(seen.len(), 30);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly newest first");

    let count = |f: CallFilter| {
        let s = s.clone();
        async move { s.list_calls(&f, None, 1000).await.unwrap().len() }
    };
    assert_eq!(count(CallFilter { entry_point: Some("test".into()), ..Default::default() }).await, 10);
    assert_eq!(count(CallFilter { status: Some("error".into()), ..Default::default() }).await, 10);
    assert_eq!(count(CallFilter { agent_id: Some(a1.clone()), ..Default::default() }).await, 20);
    assert_eq!(count(CallFilter { agent_id: Some(a1.clone()), agent_version: Some(1), ..Default::default() }).await, 10);
    assert_eq!(count(CallFilter { phone_number: Some(PhoneNumber::parse("+15550100002").unwrap()), ..Default::default() }).await, 10);
    assert_eq!(count(CallFilter { phone_number: Some(PhoneNumber::parse("+15550100000").unwrap()), ..Default::default() }).await, 30);
    assert_eq!(count(CallFilter { batch_id: Some("batch_1".into()), ..Default::default() }).await, 10);
    assert_eq!(count(CallFilter { workflow_id: Some("wf".into()), ..Default::default() }).await, 0);
    assert_eq!(count(CallFilter { category: Some("incident".into()), ..Default::default() }).await, 10);
    assert_eq!(count(CallFilter { handoff_status: Some("sent".into()), ..Default::default() }).await, 0);
    assert_eq!(count(CallFilter { started_after: Some(t(5000)), started_before: Some(t(10000)), ..Default::default() }).await, 10);
}

async fn annotations(b: Backend) {
    let (s, _d) = store(b).await;
    let a = AgentId::generate();
    let c = call(0, "test", "ended", &a, 1, "+15550100001");
    s.insert_call(&c, &[], t(0)).await.unwrap();
    let mk = |kind, ms| Annotation {
        annotation_id: AnnotationId::generate(),
        call_id: c.row.call_id.clone(),
        agent_id: Some(a.clone()),
        agent_version: Some(1),
        turn_index: Some(1),
        kind,
        text: "say the name back".into(),
        suggestion: Some("Confirm the caller's name".into()),
        created_at: t(ms),
    };
    s.add_annotation(&mk(AnnotationKind::PromptSuggestion, 1)).await.unwrap();
    s.add_annotation(&mk(AnnotationKind::Note, 2)).await.unwrap();
    let mut orphan = mk(AnnotationKind::Note, 3);
    orphan.call_id = CallId::generate();
    assert!(matches!(s.add_annotation(&orphan).await, Err(StoreError::NotFound)));
    let all = s.list_annotations(&AnnotationFilter { agent_id: Some(a.clone()), agent_version: Some(1), ..Default::default() }, None, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    let only = s.list_annotations(&AnnotationFilter { kind: Some(AnnotationKind::PromptSuggestion), ..Default::default() }, None, 10).await.unwrap();
    assert_eq!(only.len(), 1);
    let after =
        s.list_annotations(&AnnotationFilter::default(), Some(&(all[0].created_at.as_millisecond(), all[0].annotation_id.to_string())), 10).await.unwrap();
    assert_eq!(after, vec![all[1].clone()]);
    assert_eq!(s.get_call(&c.row.call_id).await.unwrap().annotations.len(), 2);
}

async fn idempotency_records(b: Backend) {
    let (s, _d) = store(b).await;
    assert_eq!(s.idempotency_begin("scope", "req1", t(0)).await.unwrap(), IdempotencyBegin::New);
    assert_eq!(s.idempotency_begin("scope", "req1", t(1)).await.unwrap(), IdempotencyBegin::InProgress);
    s.idempotency_finish("scope", 201, "{\"ok\":1}").await.unwrap();
    assert_eq!(s.idempotency_begin("scope", "req1", t(2)).await.unwrap(), IdempotencyBegin::Replay { status: 201, body: "{\"ok\":1}".into() });
    assert_eq!(s.idempotency_begin("scope", "req2", t(3)).await.unwrap(), IdempotencyBegin::Mismatch);
    // An aborted (failed) request leaves nothing behind: a retry runs again.
    assert_eq!(s.idempotency_begin("other", "r", t(0)).await.unwrap(), IdempotencyBegin::New);
    s.idempotency_abort("other").await.unwrap();
    assert_eq!(s.idempotency_begin("other", "r", t(1)).await.unwrap(), IdempotencyBegin::New);
    // After a day the key is forgotten.
    assert_eq!(s.idempotency_begin("scope", "req2", t(25 * 3600 * 1000)).await.unwrap(), IdempotencyBegin::New);
}

async fn api_keys(b: Backend) {
    let (s, _d) = store(b).await;
    assert_eq!(s.count_api_keys().await.unwrap(), 0);
    let k = ApiKeyRecord { key_id: "key_1".into(), name: "admin".into(), key_hash: "h1".into(), hint: "abcd".into(), created_at: t(0), revoked_at: None };
    s.insert_api_key(&k).await.unwrap();
    assert!(matches!(s.insert_api_key(&k).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.find_api_key("h1").await.unwrap().unwrap().name, "admin");
    assert!(s.find_api_key("h2").await.unwrap().is_none());
    assert_eq!(s.count_api_keys().await.unwrap(), 1);
    assert!(!format!("{k:?}").contains("h1"), "Debug must not print the hash");
}

fn work(n: usize, kind: &str) -> Vec<NewWork> {
    (0..n).map(|i| NewWork { kind: kind.into(), payload: serde_json::json!({"i": i}), dedup_key: None, max_attempts: 3, run_at: None }).collect()
}

const LEASE: Duration = Duration::from_secs(30);

async fn queue_two_workers_never_hold_the_same_item(b: Backend) {
    let (s, _d) = store(b).await;
    s.enqueue(&work(200, "analysis"), t(0)).await.unwrap();
    s.enqueue(&work(5, "other"), t(0)).await.unwrap();
    // Four workers claim concurrently until the queue is empty.
    let mut tasks = vec![];
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = vec![];
            loop {
                let got = s.claim(&["analysis"], &format!("w{w}"), 7, LEASE, t(1)).await.unwrap();
                if got.is_empty() {
                    break mine;
                }
                for c in got {
                    assert_eq!(s.complete(&c, t(2)).await.unwrap(), Completion::Done);
                    mine.push(c.id);
                }
            }
        }));
    }
    let mut all = vec![];
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (200, 200), "each item claimed exactly once");
    // Other kinds were left alone.
    assert_eq!(s.claim(&["other"], "w", 100, LEASE, t(3)).await.unwrap().len(), 5);
}

async fn queue_expired_lease_is_rescued(b: Backend) {
    let (s, _d) = store(b).await;
    s.enqueue(&work(1, "k"), t(0)).await.unwrap();
    let first = s.claim(&["k"], "crashed", 1, LEASE, t(0)).await.unwrap().remove(0);
    // Still leased: nobody else gets it.
    assert!(s.claim(&["k"], "w2", 1, LEASE, t(29_000)).await.unwrap().is_empty());
    // The lease ran out: the next claim rescues it, under a new fencing number.
    let second = s.claim(&["k"], "w2", 1, LEASE, t(31_000)).await.unwrap().remove(0);
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempt, 2);
    assert!(second.lease_seq > first.lease_seq);
    let attempts = s.work_attempts(&first.id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].outcome.as_deref(), Some("lease_expired"));
    assert_eq!(attempts[0].worker, "crashed");
    assert_eq!(attempts[1].outcome, None);
    // A heartbeat keeps a live lease; the rescued worker's heartbeat is refused.
    assert!(s.heartbeat(&second, LEASE, t(40_000)).await.unwrap());
    assert!(!s.heartbeat(&first, LEASE, t(40_000)).await.unwrap());
    assert!(s.claim(&["k"], "w3", 1, LEASE, t(65_000)).await.unwrap().is_empty(), "heartbeat extended the lease");
    assert_eq!(s.complete(&second, t(66_000)).await.unwrap(), Completion::Done);
    // A lease that expires on its last attempt goes dead.
    s.enqueue(&[NewWork { kind: "once".into(), payload: serde_json::json!({}), dedup_key: None, max_attempts: 1, run_at: None }], t(0)).await.unwrap();
    let c = s.claim(&["once"], "w", 1, LEASE, t(0)).await.unwrap().remove(0);
    assert!(s.claim(&["once"], "w", 1, LEASE, t(100_000)).await.unwrap().is_empty());
    assert_eq!(s.work_item(&c.id).await.unwrap().state, "dead");
}

async fn queue_stale_completion_changes_nothing(b: Backend) {
    let (s, _d) = store(b).await;
    s.enqueue(&work(1, "k"), t(0)).await.unwrap();
    let old = s.claim(&["k"], "slow", 1, LEASE, t(0)).await.unwrap().remove(0);
    let new = s.claim(&["k"], "fresh", 1, LEASE, t(60_000)).await.unwrap().remove(0);
    // The slow worker wakes up and reports: its completion and failure are both ignored.
    assert_eq!(s.complete(&old, t(61_000)).await.unwrap(), Completion::Stale);
    let failure = WorkFailure { error: "late".into(), retryable: true, retry_after: None };
    assert_eq!(s.fail(&old, &failure, &RetrySchedule::default(), t(61_000)).await.unwrap(), Completion::Stale);
    let item = s.work_item(&new.id).await.unwrap();
    assert_eq!((item.state.as_str(), item.lease_seq, item.last_error.as_deref()), ("running", new.lease_seq, Some("lease expired")));
    assert_eq!(s.complete(&new, t(62_000)).await.unwrap(), Completion::Done);
    // Completing twice is stale too.
    assert_eq!(s.complete(&new, t(63_000)).await.unwrap(), Completion::Stale);
    // A holder whose lease has run out, even if not yet rescued, cannot complete.
    s.enqueue(&work(1, "k2"), t(0)).await.unwrap();
    let c = s.claim(&["k2"], "w", 1, LEASE, t(0)).await.unwrap().remove(0);
    assert_eq!(s.complete(&c, t(31_000)).await.unwrap(), Completion::Stale);
    assert_eq!(s.work_item(&c.id).await.unwrap().state, "running");
}

async fn queue_retries_back_off_then_die(b: Backend) {
    let (s, _d) = store(b).await;
    s.enqueue(&work(1, "k"), t(0)).await.unwrap();
    let sched = RetrySchedule { retry_after_max: Duration::from_secs(500), ..RetrySchedule::from_secs(&[10, 100]) };
    let fail = WorkFailure { error: "HTTP 503 from service".into(), retryable: true, retry_after: None };
    let c1 = s.claim(&["k"], "w", 1, LEASE, t(0)).await.unwrap().remove(0);
    let Completion::Retrying { at } = s.fail(&c1, &fail, &sched, t(1000)).await.unwrap() else { panic!("should retry") };
    let delay = at.as_millisecond() - t(1000).as_millisecond();
    assert!((8_000..=12_000).contains(&delay), "10 s ± 20 %: {delay}");
    assert!(s.claim(&["k"], "w", 1, LEASE, t(1000 + delay - 1)).await.unwrap().is_empty(), "not before its time");
    let c2 = s.claim(&["k"], "w", 1, LEASE, at).await.unwrap().remove(0);
    // Retry-After is obeyed as it is, up to the schedule's maximum.
    let slow = WorkFailure { retry_after: Some(Duration::from_secs(1000)), ..fail.clone() };
    let Completion::Retrying { at: at2 } = s.fail(&c2, &slow, &sched, at).await.unwrap() else { panic!("should retry") };
    let d2 = at2.as_millisecond() - at.as_millisecond();
    assert_eq!(d2, 500_000, "capped at the 500 s maximum");
    let c3 = s.claim(&["k"], "w", 1, LEASE, at2).await.unwrap().remove(0);
    assert_eq!(c3.attempt, 3);
    assert_eq!(s.fail(&c3, &fail, &sched, at2).await.unwrap(), Completion::Dead);
    let item = s.work_item(&c3.id).await.unwrap();
    assert_eq!((item.state.as_str(), item.attempts, item.last_error.as_deref()), ("dead", 3, Some("HTTP 503 from service")));
    let attempts = s.work_attempts(&c3.id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.outcome.clone().unwrap()).collect::<Vec<_>>(), vec!["retrying", "retrying", "failed"]);
    // A non-retryable failure ends at once.
    s.enqueue(&work(1, "x"), t(0)).await.unwrap();
    let c = s.claim(&["x"], "w", 1, LEASE, t(0)).await.unwrap().remove(0);
    let bad = WorkFailure { error: "HTTP 400".into(), retryable: false, retry_after: None };
    assert_eq!(s.fail(&c, &bad, &sched, t(1)).await.unwrap(), Completion::Failed);
    assert!(s.claim(&["x"], "w", 1, LEASE, t(10_000_000)).await.unwrap().is_empty());
}

async fn queue_dedup_and_outbox(b: Backend) {
    let (s, _d) = store(b).await;
    let keyed = NewWork { kind: "analysis".into(), payload: serde_json::json!({}), dedup_key: Some("analysis:call_1".into()), max_attempts: 3, run_at: None };
    assert_eq!(s.enqueue(std::slice::from_ref(&keyed), t(0)).await.unwrap(), 1);
    assert_eq!(s.enqueue(std::slice::from_ref(&keyed), t(1)).await.unwrap(), 0, "same dedup key: nothing new");
    // A call and the work it causes commit together.
    let a = AgentId::generate();
    let c = call(0, "test", "ended", &a, 1, "+15550100001");
    let w = NewWork { dedup_key: Some(format!("analysis:{}", c.row.call_id)), ..keyed.clone() };
    s.insert_call(&c, std::slice::from_ref(&w), t(0)).await.unwrap();
    // A failed call insert (duplicate id) leaves no work behind.
    let w2 = NewWork { dedup_key: Some("analysis:dup".into()), ..keyed };
    assert!(s.insert_call(&c, &[w2], t(0)).await.is_err());
    let claimed = s.claim(&["analysis"], "w", 10, LEASE, t(5)).await.unwrap();
    assert_eq!(claimed.len(), 2);
}

#[tokio::test]
async fn sqlite_runs_in_wal_with_full_sync_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = dialnexa_store::testing::fresh_url(Backend::Sqlite, dir.path()).await.unwrap();
    let s = SqlStore::connect(&url).await.unwrap();
    assert_eq!(s.sqlite_pragma("journal_mode").await.unwrap(), "wal");
    assert_eq!(s.sqlite_pragma("synchronous").await.unwrap(), "2", "FULL");
    assert_eq!(s.sqlite_pragma("busy_timeout").await.unwrap(), "5000");
    assert_eq!(s.sqlite_pragma("foreign_keys").await.unwrap(), "1");
    let id = AgentId::generate();
    s.create_agent(&id, "kept", &draft(1), t(0)).await.unwrap();
    s.pool().close().await;
    drop(s);
    let again = SqlStore::connect(&url).await.unwrap();
    assert_eq!(again.get_agent(&id).await.unwrap().name, "kept");
}

#[tokio::test]
async fn a_bad_database_url_fails_fast_with_a_plain_message() {
    let err = SqlStore::connect("mysql://x").await.unwrap_err().to_string();
    assert!(err.contains("unsupported database URL"), "{err}");
    let err = SqlStore::connect("postgres://nobody:secret@127.0.0.1:1/x").await.unwrap_err().to_string();
    assert!(err.contains("cannot connect") && !err.contains("secret"), "{err}");
}

async fn analysis_is_written_under_the_lease(b: Backend) {
    let (s, _d) = store(b).await;
    let a = AgentId::generate();
    let c = call(0, "test", "ended", &a, 1, "+15550100001");
    let id = c.row.call_id.clone();
    let w = NewWork {
        kind: "analysis".into(),
        payload: serde_json::json!({"call_id": id}),
        dedup_key: Some(format!("analysis:{id}")),
        max_attempts: 3,
        run_at: None,
    };
    s.insert_call(&c, std::slice::from_ref(&w), t(0)).await.unwrap();
    s.set_call_analysis(&id, &serde_json::json!({"status": "pending"}), t(0)).await.unwrap();
    let slow = s.claim(&["analysis"], "slow", 1, LEASE, t(0)).await.unwrap().remove(0);
    let fresh = s.claim(&["analysis"], "fresh", 1, LEASE, t(60_000)).await.unwrap().remove(0);
    let update = |who: &str| AnalysisUpdate {
        analysis: serde_json::json!({"status": "done", "by": who}),
        category: Some("incident".into()),
        summary: Some(format!("by {who}")),
        extracted_fields: BTreeMap::new(),
    };
    let next = NewWork { kind: "handoff".into(), payload: serde_json::json!({}), dedup_key: Some(format!("handoff:{id}")), max_attempts: 3, run_at: None };
    let plan = |work: NewWork| Plan {
        handoffs: vec![PlannedHandoff {
            handoff: NewHandoff {
                handoff_id: format!("ho_{}", uuid_like()),
                call_id: id.clone(),
                integration_id: "int_1".into(),
                integration_kind: "slack".into(),
                action: "post_message".into(),
                idempotency_key: format!("{id}:int_1:post_message"),
                status: "planned".into(),
                reason: "sev1 incident".into(),
                payload: serde_json::json!({"caller": {"email": "ada@example.com"}}),
                phase: 1,
                rule_name: Some("on-call".into()),
            },
            review: None,
            work: Some(work),
        }],
        follow_ups: vec![NewFollowUp {
            follow_up_id: format!("fu_{}", uuid_like()),
            kind: "callback".into(),
            detail: serde_json::json!({"phone": "+15550100001"}),
            due_at: None,
            key: format!("{id}:callback:0"),
        }],
        reason_key: Some("incident: payments api".into()),
    };
    // The worker that lost its lease writes nothing, and causes nothing.
    assert_eq!(s.finish_analysis(&slow, &id, &update("slow"), &plan(next.clone()), t(61_000)).await.unwrap(), Completion::Stale);
    assert_eq!(s.get_call(&id).await.unwrap().row.analysis.unwrap()["status"], "pending");
    assert!(s.claim(&["handoff"], "w", 10, LEASE, t(61_000)).await.unwrap().is_empty());
    assert_eq!(s.finish_analysis(&fresh, &id, &update("fresh"), &plan(next.clone()), t(62_000)).await.unwrap(), Completion::Done);
    assert_eq!(s.list_handoffs(&HandoffFilter { call_id: Some(id.clone()), ..Default::default() }, None, 10).await.unwrap().len(), 1);
    assert_eq!(s.list_follow_ups(Some("callback"), Some("open"), None, 10).await.unwrap().len(), 1);
    assert_eq!(s.recurring(t(0), 10).await.unwrap()[0].reason, "incident: payments api");
    let row = s.get_call(&id).await.unwrap().row;
    assert_eq!((row.analysis.unwrap()["by"].as_str(), row.category.as_deref(), row.summary.as_deref()), (Some("fresh"), Some("incident"), Some("by fresh")));
    assert_eq!(s.claim(&["handoff"], "w", 10, LEASE, t(62_000)).await.unwrap().len(), 1, "the follow-up work commits with the analysis");
    assert_eq!(s.list_calls(&CallFilter { category: Some("incident".into()), ..Default::default() }, None, 10).await.unwrap().len(), 1);
    // A second analysis plans the same handoffs and follow-ups: nothing twice.
    let again = s.claim(&["analysis"], "w", 1, LEASE, t(62_500)).await.unwrap();
    assert!(again.is_empty());
    // Rerun: pending again, with new work, atomically.
    let rerun = NewWork { dedup_key: Some(format!("analysis:{id}:2")), ..w };
    s.request_analysis(&id, &serde_json::json!({"status": "pending"}), &rerun, t(63_000)).await.unwrap();
    assert_eq!(s.claim(&["analysis"], "w", 10, LEASE, t(63_000)).await.unwrap().len(), 1);
    assert!(matches!(s.request_analysis(&CallId::generate(), &serde_json::json!({}), &rerun, t(0)).await, Err(StoreError::NotFound)));
}

fn uuid_like() -> String {
    CallId::generate().to_string().trim_start_matches("call_").to_owned()
}

/// The rescuer (a claim, on a node whose clock says the lease ran out) and late finishers
/// (whose clock says it has not) take their locks in one order: no deadlock, and each item
/// ends one way only.
async fn queue_rescue_races_late_finishers_without_deadlock(b: Backend) {
    let (s, _d) = store(b).await;
    let s = std::sync::Arc::new(s);
    for round in 0..15 {
        let kind = format!("race{round}");
        s.enqueue(&work(4, &kind), t(0)).await.unwrap();
        let held = s.claim(&[kind.as_str()], "old", 4, LEASE, t(0)).await.unwrap();
        assert_eq!(held.len(), 4);
        let mut tasks = vec![];
        for c in held.clone() {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.complete(&c, t(29_999)).await }));
        }
        let rescuer = {
            let (s, kind) = (s.clone(), kind.clone());
            tokio::spawn(async move { s.claim(&[kind.as_str()], "new", 4, LEASE, t(30_001)).await })
        };
        let done: Vec<Completion> = futures_join(tasks).await;
        let rescued = rescuer.await.unwrap().expect("no deadlock, no error");
        for (c, outcome) in held.iter().zip(&done) {
            let taken = rescued.iter().any(|r| r.id == c.id);
            match outcome {
                Completion::Done => assert!(!taken, "finished and taken over: {}", c.id),
                Completion::Stale => assert!(taken, "neither finished nor rescued: {}", c.id),
                other => panic!("{other:?}"),
            }
        }
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Result<Completion>>>) -> Vec<Completion> {
    let mut out = vec![];
    for t in tasks {
        out.push(t.await.unwrap().expect("no deadlock, no error"));
    }
    out
}

fn promise_plan(call_id: &CallId, handoff_ids: [&str; 2]) -> Plan {
    Plan {
        handoffs: handoff_ids
            .iter()
            .enumerate()
            .map(|(i, h)| PlannedHandoff {
                handoff: NewHandoff {
                    handoff_id: (*h).to_owned(),
                    call_id: call_id.clone(),
                    integration_id: format!("int_{i}"),
                    integration_kind: "webhook".into(),
                    action: "deliver".into(),
                    idempotency_key: format!("{call_id}:int_{i}:deliver:promise_kept"),
                    status: "planned".into(),
                    reason: "promise kept".into(),
                    payload: serde_json::json!({}),
                    phase: 1,
                    rule_name: None,
                },
                review: None,
                work: Some(NewWork {
                    kind: "handoff".into(),
                    payload: serde_json::json!({"handoff_id": h}),
                    dedup_key: Some(format!("handoff:{call_id}:{i}:promise")),
                    max_attempts: 3,
                    run_at: None,
                }),
            })
            .collect(),
        ..Plan::default()
    }
}

/// Completing a promise and planning who is told commit together: a plan that cannot be
/// written leaves the follow-up open (so a retry can succeed), and a second completion
/// plans nothing twice.
async fn follow_up_completion_commits_with_its_plan(b: Backend) {
    let (s, _d) = store(b).await;
    let c = call(0, "test", "ended", &AgentId::generate(), 1, "+15550100001");
    let id = c.row.call_id.clone();
    s.insert_call(&c, &[], t(0)).await.unwrap();
    let fu = NewFollowUp {
        follow_up_id: format!("fu_{}", uuid_like()),
        kind: "promise".into(),
        detail: serde_json::json!({"what": "a credit note"}),
        due_at: None,
        key: format!("{id}:promise:0"),
    };
    s.plan_handoffs(&id, &Plan { follow_ups: vec![fu.clone()], ..Plan::default() }, t(0)).await.unwrap();
    // Two handoffs with one id: the plan fails, and so does the completion.
    let broken = promise_plan(&id, ["ho_same", "ho_same"]);
    assert!(s.complete_follow_up(&fu.follow_up_id, Some("sent"), &broken, t(1)).await.is_err());
    assert_eq!(s.get_follow_up(&fu.follow_up_id).await.unwrap().status, "open", "nothing half done");
    assert!(s.claim(&["handoff"], "w", 10, LEASE, t(2)).await.unwrap().is_empty(), "no notification without the completion");
    let good = promise_plan(&id, ["ho_a", "ho_b"]);
    let f = s.complete_follow_up(&fu.follow_up_id, Some("sent"), &good, t(3)).await.unwrap();
    assert_eq!((f.status.as_str(), f.detail["completion_note"].as_str()), ("done", Some("sent")));
    assert!(matches!(s.complete_follow_up(&fu.follow_up_id, None, &promise_plan(&id, ["ho_c", "ho_d"]), t(4)).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.claim(&["handoff"], "w", 10, LEASE, t(5)).await.unwrap().len(), 2, "told once each");
}

/// Two people approving one review item at once, or retrying one handoff at once, from two
/// connections: one wins, the other is refused, and one work item carries the handoff.
async fn review_decisions_and_retries_race_to_one_winner(b: Backend) {
    let (s, _d) = store(b).await;
    let s = std::sync::Arc::new(s);
    let c = call(0, "test", "ended", &AgentId::generate(), 1, "+15550100001");
    let id = c.row.call_id.clone();
    s.insert_call(&c, &[], t(0)).await.unwrap();
    let mut plan = promise_plan(&id, ["ho_held", "ho_dead"]);
    plan.handoffs[0].handoff.status = "held_for_review".into();
    plan.handoffs[0].work = None;
    plan.handoffs[0].review = Some(NewReview { review_id: "rev_1".into(), reason: "sensitive_request".into(), detail: "check".into() });
    s.plan_handoffs(&id, &plan, t(0)).await.unwrap();
    let resend = |n: usize| NewWork {
        kind: "handoff".into(),
        payload: serde_json::json!({"handoff_id": "ho_held"}),
        dedup_key: Some(format!("handoff:held:{n}")),
        max_attempts: 3,
        run_at: None,
    };
    let (a, bb) = (s.clone(), s.clone());
    let (w1, w2) = (resend(1), resend(2));
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move { a.decide_review("rev_1", true, None, "ann", Some(&w1), t(1)).await }),
        tokio::spawn(async move { bb.decide_review("rev_1", true, None, "bob", Some(&w2), t(1)).await })
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert!(r1.is_ok() != r2.is_ok(), "one decision wins: {r1:?} {r2:?}");
    assert!(matches!(r1.as_ref().err().or(r2.as_ref().err()), Some(StoreError::Conflict(_))));
    assert_eq!(s.claim(&["handoff"], "w", 10, LEASE, t(2)).await.unwrap().iter().filter(|c| c.payload["handoff_id"] == "ho_held").count(), 1);
    // Two retries of a handoff whose item is running race: neither adds an item.
    assert!(s.claim(&["handoff"], "w", 10, LEASE, t(3)).await.unwrap().is_empty(), "both items are running");
    let (a, bb) = (s.clone(), s.clone());
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move { a.requeue_handoff("ho_dead", &["planned", "failed", "dead"], &resend(3), "retry", t(100_000)).await }),
        tokio::spawn(async move { bb.requeue_handoff("ho_dead", &["planned", "failed", "dead"], &resend(4), "retry", t(100_000)).await })
    );
    let outcomes = [r1.unwrap(), r2.unwrap()];
    assert!(outcomes.iter().all(|r| r.is_ok() || matches!(r, Err(StoreError::InProgress(_)) | Err(StoreError::Conflict(_)))), "{outcomes:?}");
    let live = s.claim(&["handoff"], "w", 10, LEASE, t(200_000)).await.unwrap();
    for h in ["ho_dead", "ho_held"] {
        assert_eq!(live.iter().filter(|c| c.payload["handoff_id"] == h).count(), 1, "one live item for {h}: {live:?}");
    }
}

async fn reviews_and_follow_ups_page_by_keyset(b: Backend) {
    let (s, _d) = store(b).await;
    let c = call(0, "test", "ended", &AgentId::generate(), 1, "+15550100001");
    let id = c.row.call_id.clone();
    s.insert_call(&c, &[], t(0)).await.unwrap();
    for i in 0..5 {
        let fu =
            NewFollowUp { follow_up_id: format!("fu_{i}"), kind: "callback".into(), detail: serde_json::json!({}), due_at: None, key: format!("{id}:cb:{i}") };
        // Two share a creation time: the id breaks the tie.
        s.plan_handoffs(&id, &Plan { follow_ups: vec![fu], ..Plan::default() }, t(i64::from(i / 2))).await.unwrap();
    }
    let mut seen = vec![];
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = s.list_follow_ups(Some("callback"), None, after.as_ref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|f| (f.created_at.as_millisecond(), f.follow_up_id.clone()));
        seen.extend(page.into_iter().map(|f| f.follow_up_id));
    }
    assert_eq!(seen, ["fu_0", "fu_1", "fu_2", "fu_3", "fu_4"]);
    let mut plan = promise_plan(&id, ["ho_r1", "ho_r2"]);
    for (i, p) in plan.handoffs.iter_mut().enumerate() {
        p.handoff.status = "held_for_review".into();
        p.work = None;
        p.review = Some(NewReview { review_id: format!("rev_{i}"), reason: "sensitive_request".into(), detail: "check".into() });
    }
    s.plan_handoffs(&id, &plan, t(10)).await.unwrap();
    let first = s.list_reviews(Some("open"), None, None, 1).await.unwrap();
    let after = (first[0].created_at.as_millisecond(), first[0].review_id.clone());
    let rest = s.list_reviews(Some("open"), None, Some(&after), 10).await.unwrap();
    assert_eq!((first.len(), rest.len()), (1, 1));
    assert_ne!(first[0].review_id, rest[0].review_id);
}

/// `started_after` and `started_before` filter on when the call started, not when its record
/// was created (a web call is created, then connects later; a call that never started has no
/// start time and matches neither).
async fn started_filters_use_the_start_time(b: Backend) {
    let (s, _d) = store(b).await;
    let a = AgentId::generate();
    let mut late = call(0, "web", "ended", &a, 1, "+15550100001");
    late.row.started_at = Some(t(60_000));
    let mut never = call(0, "web", "not_connected", &a, 1, "+15550100002");
    never.row.started_at = None;
    s.insert_call(&late, &[], t(0)).await.unwrap();
    s.insert_call(&never, &[], t(0)).await.unwrap();
    let after = s.list_calls(&CallFilter { started_after: Some(t(30_000)), ..Default::default() }, None, 10).await.unwrap();
    assert_eq!(after.iter().map(|c| c.call_id.clone()).collect::<Vec<_>>(), vec![late.row.call_id.clone()]);
    let before = s.list_calls(&CallFilter { started_before: Some(t(30_000)), ..Default::default() }, None, 10).await.unwrap();
    assert!(before.is_empty(), "{before:?}");
}
