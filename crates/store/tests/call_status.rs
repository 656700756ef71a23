//! Call status changes are guarded transitions, on SQLite and on PostgreSQL:
//! `registered → ringing → ongoing → ended`, or `not_connected` / `error`, never back from a
//! final status; the guard is in the `UPDATE` itself, so concurrent writers cannot both win.

use std::collections::BTreeMap;

use dialnexa_core::{CallId, CallStatus, TimelineEvent};
use dialnexa_store::testing::fresh_store;
use dialnexa_store::*;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(dialnexa_store::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(dialnexa_store::Backend::Postgres).await } )* }
    };
}

on_both!(every_status_change_follows_the_state_machine, finishing_a_call_is_guarded_and_revokes_its_token, concurrent_endings_have_one_winner);

fn t(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(1_790_000_000_000 + ms).unwrap()
}

async fn store(b: Backend) -> (SqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (fresh_store(b, dir.path()).await.unwrap(), dir)
}

fn call(status: &str) -> NewCall {
    NewCall {
        row: CallRow {
            call_id: CallId::generate(),
            entry_point: "web".into(),
            direction: "web".into(),
            from_number: None,
            to_number: None,
            agent_id: None,
            agent_version: None,
            config_hash: None,
            route: serde_json::json!({"explanation": "because"}),
            batch_id: None,
            workflow_id: None,
            status: status.into(),
            disconnection_reason: None,
            created_at: t(0),
            started_at: None,
            ended_at: None,
            duration_ms: None,
            category: None,
            summary: None,
            extracted_fields: BTreeMap::new(),
            analysis: None,
            transfer: None,
            recording: RecordingInfo { status: "none".into(), url: None, duration_ms: None, reason: None, blob: None, blob_channels: None },
            audio_cache_hits: 0,
            audio_cache_misses: 0,
            metadata: serde_json::json!({}),
            timezone: None,
        },
        timeline: vec![TimelineEvent { at: t(0), offset_ms: 0, kind: "call_registered".into(), detail: "registered".into() }],
        transcript: vec![],
    }
}

fn event(detail: &str) -> TimelineEvent {
    TimelineEvent { at: t(10), offset_ms: 0, kind: "status_changed".into(), detail: detail.into() }
}

fn finished(status: &str, reason: &str) -> FinishedCall {
    FinishedCall {
        status: status.into(),
        disconnection_reason: reason.into(),
        started_at: None,
        ended_at: t(20),
        duration_ms: 0,
        extracted_fields: BTreeMap::new(),
        transfer: None,
        recording: RecordingInfo { status: "none".into(), url: None, duration_ms: None, reason: None, blob: None, blob_channels: None },
        audio_cache_hits: 0,
        audio_cache_misses: 0,
        analysis: None,
        timeline: vec![TimelineEvent { at: t(20), offset_ms: 0, kind: "call_ended".into(), detail: reason.into() }],
        transcript: vec![],
    }
}

async fn every_status_change_follows_the_state_machine(b: Backend) {
    let (s, _d) = store(b).await;
    for from in CallStatus::ALL {
        for to in CallStatus::ALL {
            let c = call(from.as_str());
            let id = c.row.call_id.clone();
            s.insert_call(&c, &[], t(0)).await.unwrap();
            let r = s.set_call_status(&id, to.as_str(), Some(t(10)), &event(&format!("{from} → {to}"))).await;
            let d = s.get_call(&id).await.unwrap();
            if from.can_become(to) {
                r.unwrap_or_else(|e| panic!("{from} → {to} refused: {e}"));
                assert_eq!(d.row.status, to.as_str());
                assert_eq!(d.row.started_at, Some(t(10)));
                assert_eq!(d.timeline.len(), 2, "the event is written with the change");
            } else {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "{from} → {to}: {r:?}");
                assert_eq!(d.row.status, from.as_str(), "{from} → {to} changed the call");
                assert_eq!((d.row.started_at, d.timeline.len()), (None, 1), "{from} → {to} wrote something");
            }
        }
    }
    // A full life, then nothing moves it back.
    let c = call("registered");
    let id = c.row.call_id.clone();
    s.insert_call(&c, &[], t(0)).await.unwrap();
    for to in ["ringing", "ongoing", "ended"] {
        s.set_call_status(&id, to, None, &event(to)).await.unwrap();
    }
    for to in ["registered", "ringing", "ongoing", "error", "not_connected"] {
        let r = s.set_call_status(&id, to, None, &event(to)).await;
        assert!(matches!(&r, Err(StoreError::Conflict(m)) if m.contains("already ended")), "ended → {to}: {r:?}");
    }
    assert_eq!(s.get_call(&id).await.unwrap().row.status, "ended");
    // Unknown statuses and calls.
    assert!(matches!(s.set_call_status(&id, "on_hold", None, &event("x")).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.set_call_status(&CallId::generate(), "ongoing", None, &event("x")).await, Err(StoreError::NotFound)));
}

async fn finishing_a_call_is_guarded_and_revokes_its_token(b: Backend) {
    let (s, _d) = store(b).await;
    // Ended before the browser connected: not_connected, and its token no longer opens it.
    let c = call("registered");
    let id = c.row.call_id.clone();
    s.insert_call(&c, &[], t(0)).await.unwrap();
    let far = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    s.add_web_token(&id, "hash-1", far).await.unwrap();
    s.finish_live_call(&id, &finished("not_connected", "terminated_by_api"), &[], jiff::Timestamp::now()).await.unwrap();
    assert_eq!(s.use_web_token("hash-1", jiff::Timestamp::now()).await.unwrap(), Err(TokenRefusal::Expired));
    let d = s.get_call(&id).await.unwrap();
    assert_eq!((d.row.status.as_str(), d.row.disconnection_reason.as_deref()), ("not_connected", Some("terminated_by_api")));
    // ... and it stays so: it cannot go live, nor end a second time.
    assert!(matches!(s.set_call_status(&id, "ongoing", Some(t(30)), &event("registered → ongoing")).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.finish_live_call(&id, &finished("ended", "user_hangup"), &[], t(40)).await, Err(StoreError::Conflict(_))));
    let d = s.get_call(&id).await.unwrap();
    assert_eq!((d.row.status.as_str(), d.row.disconnection_reason.as_deref(), d.row.started_at), ("not_connected", Some("terminated_by_api"), None));

    // A registered call cannot end as `ended` (it never went live), nor finish in a live status.
    let c = call("registered");
    let id = c.row.call_id.clone();
    s.insert_call(&c, &[], t(0)).await.unwrap();
    assert!(matches!(s.finish_live_call(&id, &finished("ended", "user_hangup"), &[], t(20)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.finish_live_call(&id, &finished("ongoing", "user_hangup"), &[], t(20)).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.get_call(&id).await.unwrap().row.status, "registered");
    // A live call ends once; a token of a call that is no longer waiting is refused.
    s.add_web_token(&id, "hash-2", far).await.unwrap();
    assert_eq!(s.use_web_token("hash-2", jiff::Timestamp::now()).await.unwrap(), Ok(id.clone()));
    s.set_call_status(&id, "ongoing", Some(t(10)), &event("registered → ongoing")).await.unwrap();
    s.finish_live_call(&id, &finished("ended", "user_hangup"), &[], t(20)).await.unwrap();
    assert!(matches!(s.finish_live_call(&id, &finished("error", "error_asr"), &[], t(30)).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.get_call(&id).await.unwrap().row.disconnection_reason.as_deref(), Some("user_hangup"));
    let c = call("ongoing");
    s.insert_call(&c, &[], t(0)).await.unwrap();
    s.add_web_token(&c.row.call_id, "hash-3", far).await.unwrap();
    assert_eq!(s.use_web_token("hash-3", jiff::Timestamp::now()).await.unwrap(), Err(TokenRefusal::Expired));
    assert!(matches!(s.finish_live_call(&CallId::generate(), &finished("ended", "user_hangup"), &[], t(20)).await, Err(StoreError::NotFound)));
}

async fn concurrent_endings_have_one_winner(b: Backend) {
    let (s, _d) = store(b).await;
    let s = std::sync::Arc::new(s);
    for round in 0..5 {
        let c = call("ongoing");
        let id = c.row.call_id.clone();
        s.insert_call(&c, &[], t(0)).await.unwrap();
        let reasons = ["user_hangup", "terminated_by_api", "agent_hangup", "silence_timeout"];
        let tasks: Vec<_> = reasons
            .iter()
            .map(|r| {
                let (s, id, r) = (s.clone(), id.clone(), r.to_string());
                tokio::spawn(async move { s.finish_live_call(&id, &finished("ended", &r), &[], t(20)).await.map(|_| r) })
            })
            .collect();
        let mut winners = vec![];
        for task in tasks {
            match task.await.unwrap() {
                Ok(r) => winners.push(r),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let d = s.get_call(&id).await.unwrap();
        assert_eq!(d.row.disconnection_reason.as_deref(), Some(winners[0].as_str()));
        assert_eq!(d.timeline.iter().filter(|e| e.kind == "call_ended").count(), 1, "only the winner's evidence is written");
    }
}
