//! Reconciliation: phone calls DialNexa still holds open (a lost status callback, a crash
//! mid-call) are checked against the carrier's call resource and closed as it says.

use dialnexa_core::{CallStatus, DisconnectionReason};
use dialnexa_voice::carrier::{CarrierError, CarrierStatus};

use crate::state::AppState;

/// Calls looked at per pass.
const BATCH: u32 = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub checked: usize,
    pub closed: usize,
    pub errors: usize,
}

/// Check every open phone call older than `reconcile_interval_secs` at `now`.
pub async fn run(state: &AppState, now: jiff::Timestamp) -> Result<Reconciled, dialnexa_store::StoreError> {
    let Some(carrier) = state.carrier.clone() else { return Ok(Reconciled::default()) };
    let grace = jiff::SignedDuration::from_secs(state.config.reconcile_interval_secs.max(1) as i64);
    let legs = state.store.open_carrier_legs(now - grace, BATCH).await?;
    let mut out = Reconciled::default();
    for (leg, call_status) in legs {
        out.checked += 1;
        // A call live on this node, or with a live session's heartbeat (any node), is its
        // session's to end.
        if state.live.sender(leg.call_id.as_str()).is_some() || heartbeat_fresh(&leg, now) {
            continue;
        }
        let Some(sid) = leg.carrier_sid.clone() else {
            // The create never came back (a crash in between): the carrier has no such call.
            super::end_unconnected(
                state,
                &leg.call_id,
                DisconnectionReason::DialFailed,
                CallStatus::NotConnected,
                "reconciliation: the carrier never confirmed the call",
            )
            .await;
            out.closed += 1;
            continue;
        };
        match carrier.fetch_call(&sid).await {
            Ok(c) if c.status.is_terminal() => {
                if call_status == "ongoing" {
                    // Its media session was lost (this node restarted): the carrier ended it.
                    let why = format!("reconciliation: the carrier reports {} and the call's media session was lost", c.status.as_str());
                    let _ = state
                        .store
                        .advance_carrier_leg(&leg.call_id, c.status.as_str(), c.status.rank(), c.answered_by.as_deref(), jiff::Timestamp::now())
                        .await;
                    close_ongoing(state, &leg.call_id, &why).await;
                } else if let Err(e) =
                    super::apply_status(state, &leg, &c.status, c.answered_by.as_deref(), c.duration_secs, "reconciliation: the status callback never came")
                        .await
                {
                    tracing::warn!(call_id = %leg.call_id, error = %e, "reconciliation could not close a call");
                    out.errors += 1;
                    continue;
                }
                out.closed += 1;
            }
            Ok(c) if call_status == "ongoing" && c.status == CarrierStatus::InProgress => {
                // Live at the carrier, with no session here: nobody is talking to the caller.
                tracing::warn!(call_id = %leg.call_id, "reconciliation: a call in progress at the carrier has no media session; hanging up");
                let _ = carrier.hangup(&sid).await;
            }
            Ok(_) => {}
            Err(CarrierError::Refused { status: 404, .. }) => {
                super::end_unconnected(
                    state,
                    &leg.call_id,
                    DisconnectionReason::DialFailed,
                    CallStatus::NotConnected,
                    "reconciliation: the carrier does not know the call",
                )
                .await;
                out.closed += 1;
            }
            Err(e) => {
                tracing::warn!(call_id = %leg.call_id, error = %e, "reconciliation could not ask the carrier");
                out.errors += 1;
                // An unreachable carrier is unreachable for the rest of the pass too.
                if matches!(e, CarrierError::Unreachable(_)) {
                    break;
                }
            }
        }
    }
    if out.closed > 0 {
        tracing::info!(checked = out.checked, closed = out.closed, "reconciled phone calls with the carrier");
    }
    Ok(out)
}

/// The leg's media session beat within the last three heartbeats.
fn heartbeat_fresh(leg: &dialnexa_store::CarrierLeg, now: jiff::Timestamp) -> bool {
    let window = (super::media::SESSION_HEARTBEAT * 3).as_millis() as i64;
    leg.details["session"]["heartbeat_ms"].as_i64().is_some_and(|beat| now.as_millisecond() - beat < window)
}

/// An ongoing call whose session is gone: ended as an internal error, with the reason.
async fn close_ongoing(state: &AppState, call_id: &dialnexa_core::CallId, why: &str) {
    let now = jiff::Timestamp::now();
    let f = dialnexa_store::FinishedCall {
        status: CallStatus::Error.as_str().into(),
        disconnection_reason: DisconnectionReason::ErrorInternal.as_str().into(),
        started_at: None,
        ended_at: now,
        duration_ms: 0,
        extracted_fields: Default::default(),
        transfer: None,
        recording: dialnexa_store::RecordingInfo {
            status: "failed".into(),
            url: None,
            duration_ms: None,
            reason: Some("the call's media session was lost before its recording was stored".into()),
            blob: None,
            blob_channels: None,
        },
        audio_cache_hits: 0,
        audio_cache_misses: 0,
        analysis: None,
        timeline: vec![dialnexa_core::TimelineEvent { at: now, offset_ms: 0, kind: "reconciled".into(), detail: why.to_owned() }],
        transcript: vec![],
    };
    if let Err(e) = state.store.finish_live_call(call_id, &f, &[], now).await {
        tracing::warn!(call_id = %call_id, error = %e, "reconciliation could not close a call");
    }
}
