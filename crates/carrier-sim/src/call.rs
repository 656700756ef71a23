//! Call lifecycles: ringing, answering, machine detection, TwiML execution and `<Dial>`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::twiml::{Element, parse_response};
use crate::{ActiveGuard, Callee, Cmd, DialRecord, Inner, NewCall, Participant, Script, Source, Step, audio, is_terminal, media, push_capped, util};

/// The far end the call's media stream talks to.
pub(crate) enum Party {
    Person {
        script: Script,
        pos: Arc<AtomicUsize>,
    },
    /// An answering machine; `played` once its greeting and beep went out.
    Machine {
        greeting: Vec<i16>,
        played: bool,
    },
}

/// What a verb leaves the document runner to do.
pub(crate) enum Flow {
    Next,
    Goto(Source),
    End(&'static str),
}

/// Sleep unless a REST command comes first.
pub(crate) async fn sleep_or_cmd(cmds: &mut UnboundedReceiver<Cmd>, d: Duration) -> Option<Cmd> {
    tokio::select! {
        _ = tokio::time::sleep(d) => None,
        c = cmds.recv() => c,
    }
}

fn cmd_flow(c: Cmd) -> Flow {
    match c {
        Cmd::Hangup => Flow::End("completed"),
        Cmd::Redirect(s) => Flow::Goto(s),
    }
}

pub(crate) async fn drive_inbound(sim: Arc<Inner>, sid: String, script: Script, mut cmds: UnboundedReceiver<Cmd>) {
    let _guard = ActiveGuard { sim: sim.clone(), sid: sid.clone() };
    sim.set_status(&sid, "initiated");
    sim.set_status(&sid, "ringing");
    let Some(source) = sim.with_call(&sid, |c| c.source.take()).flatten() else { return };
    let mut party = Party::Person { script, pos: Arc::new(AtomicUsize::new(0)) };
    run_document(&sim, &sid, source, &mut party, &mut cmds).await;
}

pub(crate) async fn drive_outbound(sim: Arc<Inner>, sid: String, mut cmds: UnboundedReceiver<Cmd>) {
    let _guard = ActiveGuard { sim: sim.clone(), sid: sid.clone() };
    let Some((to, ring_timeout_s, amd)) = sim.with_call(&sid, |c| (c.rec.to.clone(), c.ring_timeout_s, c.machine_detection.clone())) else { return };
    let callee = sim.lock().callees.get(&to).cloned().unwrap_or(Callee::NoAnswer);
    for (status, pause) in [("initiated", 50), ("ringing", 50)] {
        if is_terminal(&sim.status_of(&sid)) {
            return;
        }
        sim.set_status(&sid, status);
        if sleep_or_cmd(&mut cmds, Duration::from_millis(pause)).await.is_some_and(|c| matches!(c, Cmd::Hangup)) {
            sim.set_status(&sid, "canceled");
            return;
        }
    }
    let ring_cap_ms = ring_timeout_s.min(2) * 1000;
    let (ring_ms, answers) = ring_plan(&callee, ring_timeout_s, ring_cap_ms);
    if let Some(Cmd::Hangup) = sleep_or_cmd(&mut cmds, Duration::from_millis(ring_ms)).await {
        sim.set_status(&sid, "canceled");
        return;
    }
    if !answers {
        sim.set_status(&sid, unanswered_status(&callee));
        return;
    }
    sim.set_status(&sid, "in-progress");
    let mut party = match callee {
        Callee::Answer { script } => Party::Person { script, pos: Arc::new(AtomicUsize::new(0)) },
        Callee::Voicemail { greeting } => Party::Machine { greeting: audio::speak(sim.cfg.tts.as_ref(), &greeting).await, played: false },
        _ => return,
    };
    if let Some(mode) = amd {
        // Twilio decides AnsweredBy before it requests the Url (synchronous AMD).
        let (wait_ms, answered_by) = match (&mut party, mode.as_str()) {
            (Party::Person { .. }, _) => (1000, "human"),
            (Party::Machine { greeting, played }, "DetectMessageEnd") => {
                // The greeting and beep play out before the webhook; the stream then hears only silence.
                *played = true;
                (audio::ms_of(greeting.len()) + 500 + 200, "machine_end_beep")
            }
            (Party::Machine { .. }, _) => (1000, "machine_start"),
        };
        if let Some(c) = sleep_or_cmd(&mut cmds, Duration::from_millis(wait_ms)).await {
            match c {
                Cmd::Hangup => {
                    sim.set_status(&sid, "completed");
                    return;
                }
                Cmd::Redirect(s) => {
                    sim.with_call(&sid, |c| c.source = Some(s));
                }
            }
        }
        sim.with_call(&sid, |c| c.rec.answered_by = Some(answered_by.into()));
    }
    if is_terminal(&sim.status_of(&sid)) {
        return;
    }
    let Some(source) = sim.with_call(&sid, |c| c.source.take()).flatten() else { return };
    run_document(&sim, &sid, source, &mut party, &mut cmds).await;
}

/// How long the callee rings and whether it then answers.
fn ring_plan(callee: &Callee, ring_timeout_s: u64, ring_cap_ms: u64) -> (u64, bool) {
    match callee {
        Callee::Busy => (150, false),
        Callee::Fail => (100, false),
        Callee::NoAnswer => (ring_cap_ms, false),
        Callee::Answer { script } => {
            let ring = script.ring_ms.unwrap_or(300);
            if ring > ring_timeout_s * 1000 { (ring_cap_ms, false) } else { (ring, true) }
        }
        Callee::Voicemail { .. } => (300, true),
    }
}

fn unanswered_status(callee: &Callee) -> &'static str {
    match callee {
        Callee::Busy => "busy",
        Callee::Fail => "failed",
        _ => "no-answer",
    }
}

/// Resolve a possibly relative URL against the document's URL, as Twilio does for
/// `<Redirect>` and `action`.
fn resolve_url(base: Option<&str>, url: &str) -> String {
    let url = url.trim();
    if url.contains("://") {
        return url.to_owned();
    }
    let Some(base) = base else { return url.to_owned() };
    let base = base.split(['#', '?']).next().unwrap_or(base);
    let Some(scheme_end) = base.find("://") else { return url.to_owned() };
    let host_end = base[scheme_end + 3..].find('/').map(|i| i + scheme_end + 3).unwrap_or(base.len());
    if url.starts_with('/') {
        format!("{}{}", &base[..host_end], url)
    } else {
        let dir_end = base.rfind('/').filter(|&i| i >= host_end).map(|i| i + 1).unwrap_or(base.len());
        let dir = &base[..dir_end];
        if dir.ends_with('/') { format!("{dir}{url}") } else { format!("{dir}/{url}") }
    }
}

/// Fetch a TwiML URL for this call (signed), recording the request.
async fn fetch_twiml(sim: &Arc<Inner>, sid: &str, url: &str, method: &str, extra: &[(String, String)]) -> Result<String, String> {
    let mut params = sim.call_params(sid);
    params.extend(extra.iter().cloned());
    let lost = sim.with_call(sid, |c| c.lost).unwrap_or(false);
    let result = if lost {
        Err(format!("request to {url} failed: the server is unreachable (sim: callbacks lost)"))
    } else {
        sim.send_signed(url, method, &params).await
    };
    let status = result.as_ref().map(|(s, _)| *s).unwrap_or(0);
    sim.with_call(sid, |c| push_capped(&mut c.rec.webhook_requests, (url.to_owned(), params, status)));
    let (status, body) = result?;
    if !(200..300).contains(&status) {
        return Err(format!("{url} answered HTTP {status}"));
    }
    Ok(body)
}

/// Run TwiML documents until the call ends.
pub(crate) async fn run_document(sim: &Arc<Inner>, sid: &str, source: Source, party: &mut Party, cmds: &mut UnboundedReceiver<Cmd>) {
    let mut source = source;
    let mut first = true;
    let mut doc_url: Option<String> = None;
    'doc: loop {
        let doc = match source {
            Source::Inline(t) => t,
            Source::Fetch { url, method, extra } => {
                let url = resolve_url(doc_url.as_deref(), &url);
                let fetched = tokio::select! {
                    r = fetch_twiml(sim, sid, &url, &method, &extra) => r,
                    c = cmds.recv() => match c {
                        Some(Cmd::Redirect(s)) => { source = s; continue 'doc; }
                        _ => return finish(sim, sid, "completed"),
                    },
                };
                doc_url = Some(url);
                match fetched {
                    Ok(d) => d,
                    Err(e) => return fail(sim, sid, first, format!("an application error has occurred: {e}")),
                }
            }
        };
        sim.with_call(sid, |c| push_capped(&mut c.rec.twiml, doc.clone()));
        let root = match parse_response(&doc) {
            Ok(r) => r,
            Err(e) => return fail(sim, sid, first, format!("an application error has occurred: invalid TwiML: {e}")),
        };
        first = false;
        for verb in root.elements() {
            if is_terminal(&sim.status_of(sid)) {
                return finish(sim, sid, "completed");
            }
            if verb.name != "Reject" {
                answer_if_ringing(sim, sid);
            }
            match exec_verb(sim, sid, verb, party, cmds, doc_url.as_deref()).await {
                Flow::Next => {}
                Flow::Goto(s) => {
                    source = s;
                    continue 'doc;
                }
                Flow::End(status) => return finish(sim, sid, status),
            }
        }
        return finish(sim, sid, "completed");
    }
}

fn answer_if_ringing(sim: &Inner, sid: &str) {
    if matches!(sim.status_of(sid).as_str(), "queued" | "initiated" | "ringing") {
        sim.set_status(sid, "in-progress");
    }
}

fn finish(sim: &Inner, sid: &str, status: &str) {
    let status = if status == "completed" && matches!(sim.status_of(sid).as_str(), "queued" | "initiated" | "ringing") { "canceled" } else { status };
    sim.set_status(sid, status);
}

/// A TwiML failure: before the call ran any TwiML it fails; later it hangs up.
fn fail(sim: &Inner, sid: &str, first: bool, error: String) {
    sim.set_error(sid, error);
    sim.set_status(sid, if first { "failed" } else { "completed" });
}

async fn exec_verb(sim: &Arc<Inner>, sid: &str, verb: &Element, party: &mut Party, cmds: &mut UnboundedReceiver<Cmd>, doc_url: Option<&str>) -> Flow {
    match verb.name.as_str() {
        "Say" | "Play" => {
            let text = if verb.name == "Say" { verb.text() } else { format!("[play {}]", verb.text()) };
            let ms = (text.chars().count() as u64 * 30).clamp(100, 2000);
            sim.with_call(sid, |c| push_capped(&mut c.rec.said, text));
            match sleep_or_cmd(cmds, Duration::from_millis(ms)).await {
                Some(c) => cmd_flow(c),
                None => Flow::Next,
            }
        }
        "Pause" => {
            let secs = verb.attr("length").and_then(|l| l.trim().parse::<u64>().ok()).unwrap_or(1).min(600);
            match sleep_or_cmd(cmds, Duration::from_secs(secs)).await {
                Some(c) => cmd_flow(c),
                None => Flow::Next,
            }
        }
        "Hangup" => Flow::End("completed"),
        "Reject" => {
            let reason = verb.attr("reason").unwrap_or("rejected").to_owned();
            let answered = sim.status_of(sid) == "in-progress";
            sim.with_call(sid, |c| c.rec.reject_reason = Some(reason.clone()));
            if answered {
                Flow::End("completed")
            } else if reason == "busy" {
                Flow::End("busy")
            } else {
                Flow::End("failed")
            }
        }
        "Redirect" => {
            let url = verb.text();
            if url.is_empty() {
                sim.set_error(sid, "an application error has occurred: <Redirect> without a URL");
                return Flow::End("completed");
            }
            let method = verb.attr("method").unwrap_or("POST").to_owned();
            Flow::Goto(Source::Fetch { url: resolve_url(doc_url, &url), method, extra: Vec::new() })
        }
        "Connect" => {
            let mut children = verb.elements();
            match children.next() {
                Some(stream) if stream.name == "Stream" => media::run_stream(sim, sid, stream, party, cmds).await,
                Some(other) => {
                    sim.set_error(sid, format!("the sim does not support <Connect><{}>", other.name));
                    Flow::End("completed")
                }
                None => {
                    sim.set_error(sid, "an application error has occurred: <Connect> without a noun");
                    Flow::End("completed")
                }
            }
        }
        "Dial" => run_dial(sim, sid, verb, cmds, doc_url).await,
        other => {
            sim.set_error(sid, format!("an application error has occurred: unsupported or unknown verb <{other}>"));
            Flow::End("completed")
        }
    }
}

/// How long a dialed person stays on the line following their script (nobody listens to them).
fn leg_duration_ms(callee: &Callee, max_record_ms: u64) -> u64 {
    match callee {
        Callee::Answer { script } => {
            let mut total = 0;
            for step in &script.steps {
                total += match step {
                    Step::Say { text } => audio::speech_ms(text),
                    Step::Silence { ms } | Step::WaitForAgent { quiet_ms: ms } | Step::WaitAgentSpeaking { ms } => *ms,
                    Step::Dtmf { digits } => digits.chars().count() as u64 * 100,
                    Step::Burst { .. } => 0,
                    Step::Hangup | Step::DropSocket => break,
                };
            }
            total
        }
        Callee::Voicemail { greeting } => audio::speech_ms(greeting) + 500 + max_record_ms,
        _ => 0,
    }
}

struct Leg {
    sid: String,
    number: String,
    callee: Callee,
    rx: UnboundedReceiver<Cmd>,
    _guard: ActiveGuard,
}

async fn run_dial(sim: &Arc<Inner>, sid: &str, dial: &Element, cmds: &mut UnboundedReceiver<Cmd>, doc_url: Option<&str>) -> Flow {
    let action = dial.attr("action").map(|a| resolve_url(doc_url, a));
    let method = dial.attr("method").unwrap_or("POST").to_owned();
    let timeout_s = dial.attr("timeout").and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(30);
    let ring_cap_ms = timeout_s.min(2) * 1000;
    let parent_from = sim.with_call(sid, |c| c.rec.from.clone()).unwrap_or_default();
    let caller_id = dial.attr("callerId").map(str::to_owned).unwrap_or(parent_from);

    let mut numbers: Vec<&Element> = Vec::new();
    let mut conference: Option<&Element> = None;
    for child in dial.elements() {
        match child.name.as_str() {
            "Number" => numbers.push(child),
            "Conference" => conference = Some(child),
            other => {
                sim.set_error(sid, format!("the sim does not support <Dial><{other}>"));
                return Flow::End("completed");
            }
        }
    }
    if let Some(conf) = conference {
        return run_conference(sim, sid, conf, cmds).await;
    }
    let bare = dial.text();
    // (number, whisper url, status callback, its events)
    type Target = (String, Option<String>, Option<String>, Vec<String>);
    let mut targets: Vec<Target> = numbers
        .iter()
        .map(|n| {
            let events =
                n.attr("statusCallbackEvent").map(|e| e.split_whitespace().map(str::to_owned).collect()).unwrap_or_else(|| vec!["completed".to_owned()]);
            (n.text(), n.attr("url").map(str::to_owned), n.attr("statusCallback").map(str::to_owned), events)
        })
        .collect();
    if targets.is_empty() && !bare.is_empty() {
        targets.push((bare, None, None, Vec::new()));
    }
    if targets.is_empty() {
        sim.set_error(sid, "an application error has occurred: <Dial> with nothing to dial");
        return Flow::Next;
    }
    let record_index = sim
        .with_call(sid, |c| {
            c.rec.dials.push(DialRecord {
                numbers: targets.iter().map(|t| t.0.clone()).collect(),
                conference: None,
                action: action.clone(),
                dial_call_status: String::new(),
                dial_call_sid: None,
            });
            c.rec.dials.len() - 1
        })
        .unwrap_or(0);

    let max_record_ms = sim.lock().voicemail_max_record_ms;
    let mut legs: Vec<Leg> = Vec::new();
    for (number, _, cb, events) in &targets {
        let callee = sim.lock().callees.get(number).cloned().unwrap_or(Callee::NoAnswer);
        let (leg_sid, rx) = sim.new_call(NewCall {
            from: caller_id.clone(),
            to: number.clone(),
            direction: "outbound-dial",
            status: "queued",
            parent: Some(sid.to_owned()),
            cb_url: cb.clone(),
            cb_method: "POST".into(),
            cb_events: events.clone(),
            source: None,
            machine_detection: None,
            ring_timeout_s: timeout_s,
        });
        sim.set_status(&leg_sid, "initiated");
        sim.set_status(&leg_sid, "ringing");
        legs.push(Leg { _guard: ActiveGuard { sim: sim.clone(), sid: leg_sid.clone() }, sid: leg_sid, number: number.clone(), callee, rx });
    }

    // The first to answer wins; the ring phase lasts until then, or until all gave up.
    let plans: Vec<(u64, bool)> = legs.iter().map(|l| ring_plan(&l.callee, timeout_s, ring_cap_ms)).collect();
    let winner = plans.iter().enumerate().filter(|(_, p)| p.1).min_by_key(|(_, p)| p.0).map(|(i, _)| i);
    let ring_ms = match winner {
        Some(w) => plans[w].0,
        None => plans.iter().map(|p| p.0).max().unwrap_or(0),
    };
    let set_record = |status: &str, dial_sid: Option<String>| {
        sim.with_call(sid, |c| {
            if let Some(d) = c.rec.dials.get_mut(record_index) {
                d.dial_call_status = status.to_owned();
                d.dial_call_sid = dial_sid;
            }
        });
    };
    if let Some(c) = sleep_or_cmd(cmds, Duration::from_millis(ring_ms)).await {
        for leg in &legs {
            sim.set_status(&leg.sid, "canceled");
        }
        set_record("canceled", None);
        return cmd_flow(c);
    }
    for (i, leg) in legs.iter().enumerate() {
        if Some(i) == winner {
            sim.set_status(&leg.sid, "in-progress");
        } else if winner.is_some() && !matches!(leg.callee, Callee::Busy | Callee::Fail) {
            sim.set_status(&leg.sid, "canceled");
        } else {
            sim.set_status(&leg.sid, unanswered_status(&leg.callee));
        }
    }
    let (dial_status, dial_sid) = match winner {
        None => {
            let status = if legs.iter().any(|l| matches!(l.callee, Callee::Busy)) {
                "busy"
            } else if legs.iter().all(|l| matches!(l.callee, Callee::Fail)) {
                "failed"
            } else {
                "no-answer"
            };
            (status, legs.first().map(|l| l.sid.clone()))
        }
        Some(w) => {
            let leg = &mut legs[w];
            if let Some(Some(url)) = targets.iter().find(|t| t.0 == leg.number).map(|t| t.1.clone()) {
                // The whisper document is fetched for the callee and recorded, not executed.
                let url = resolve_url(doc_url, &url);
                if let Ok(doc) = fetch_twiml(sim, &leg.sid, &url, "POST", &[]).await {
                    sim.with_call(&leg.sid, |c| push_capped(&mut c.rec.twiml, doc));
                }
            }
            let bridged = Duration::from_millis(leg_duration_ms(&leg.callee, max_record_ms));
            let parent_cmd = tokio::select! {
                _ = tokio::time::sleep(bridged) => None,
                c = cmds.recv() => c,
                c = leg.rx.recv() => { let _ = c; None }
            };
            sim.set_status(&leg.sid, "completed");
            if let Some(c) = parent_cmd {
                set_record("completed", Some(leg.sid.clone()));
                return cmd_flow(c);
            }
            ("completed", Some(leg.sid.clone()))
        }
    };
    set_record(dial_status, dial_sid.clone());
    let Some(action) = action else { return Flow::Next };
    let duration = dial_sid.as_deref().and_then(|s| sim.with_call(s, |c| c.rec.duration_secs)).unwrap_or(0);
    let mut extra = vec![("DialCallStatus".to_owned(), dial_status.to_owned()), ("DialCallDuration".to_owned(), duration.to_string())];
    if let Some(d) = dial_sid {
        extra.push(("DialCallSid".to_owned(), d));
    }
    Flow::Goto(Source::Fetch { url: action, method, extra })
}

/// `<Dial><Conference>`: the call stays in the room until it is hung up or redirected, or
/// a participant with `endConferenceOnExit` leaves.
async fn run_conference(sim: &Arc<Inner>, sid: &str, conf: &Element, cmds: &mut UnboundedReceiver<Cmd>) -> Flow {
    let name = conf.text();
    let end_on_exit = conf.attr("endConferenceOnExit").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let conf_sid = join_conference(sim, &name, sid, None, end_on_exit);
    sim.with_call(sid, |c| {
        c.rec.conferences.push(name.clone());
        c.rec.dials.push(DialRecord {
            numbers: Vec::new(),
            conference: Some(name.clone()),
            action: None,
            dial_call_status: "answered".into(),
            dial_call_sid: None,
        });
    });
    let flow = loop {
        if let Some(c) = sleep_or_cmd(cmds, Duration::from_millis(100)).await {
            break cmd_flow(c);
        }
        if sim.lock().conferences.iter().any(|c| c.sid == conf_sid && c.status == "completed") {
            break Flow::Next;
        }
    };
    leave_conference(sim, &conf_sid, sid);
    flow
}

pub(crate) fn join_conference(sim: &Inner, name: &str, call_sid: &str, label: Option<String>, end_on_exit: bool) -> String {
    let mut st = sim.lock();
    let participant = Participant { call_sid: call_sid.to_owned(), label, end_on_exit, present: true };
    if let Some(c) = st.conferences.iter_mut().find(|c| c.name == name && c.status != "completed") {
        c.participants.push(participant);
        return c.sid.clone();
    }
    let conf_sid = util::sid("CF");
    st.conferences.push(crate::Conference {
        sid: conf_sid.clone(),
        name: name.to_owned(),
        status: "in-progress".into(),
        created: std::time::SystemTime::now(),
        participants: vec![participant],
    });
    conf_sid
}

pub(crate) fn leave_conference(sim: &Inner, conf_sid: &str, call_sid: &str) {
    let mut ended_calls = Vec::new();
    {
        let mut st = sim.lock();
        let Some(c) = st.conferences.iter_mut().find(|c| c.sid == conf_sid) else { return };
        let mut end = false;
        for p in c.participants.iter_mut().filter(|p| p.call_sid == call_sid && p.present) {
            p.present = false;
            end |= p.end_on_exit;
        }
        if end || c.participants.iter().all(|p| !p.present) {
            c.status = "completed".into();
            ended_calls = c.participants.iter().filter(|p| p.present).map(|p| p.call_sid.clone()).collect();
        }
    }
    // Participants added through the REST API have no TwiML to go on with: they hang up.
    for s in ended_calls {
        if let Some(tx) = sim.with_call(&s, |c| c.cmd.clone()) {
            let _ = tx.send(Cmd::Hangup);
        }
    }
}

/// A participant added through `POST Conferences/{sid}/Participants.json`: ring `To` and,
/// when answered, put it in the room until its script ends or it is hung up.
pub(crate) async fn drive_participant(sim: Arc<Inner>, sid: String, conf_name: String, label: Option<String>, mut cmds: UnboundedReceiver<Cmd>) {
    let _guard = ActiveGuard { sim: sim.clone(), sid: sid.clone() };
    let (to, timeout_s) = match sim.with_call(&sid, |c| (c.rec.to.clone(), c.ring_timeout_s)) {
        Some(v) => v,
        None => return,
    };
    let callee = sim.lock().callees.get(&to).cloned().unwrap_or(Callee::NoAnswer);
    sim.set_status(&sid, "initiated");
    sim.set_status(&sid, "ringing");
    let (ring_ms, answers) = ring_plan(&callee, timeout_s, timeout_s.min(2) * 1000);
    if sleep_or_cmd(&mut cmds, Duration::from_millis(ring_ms)).await.is_some() {
        sim.set_status(&sid, "canceled");
        return;
    }
    if !answers {
        sim.set_status(&sid, unanswered_status(&callee));
        return;
    }
    sim.set_status(&sid, "in-progress");
    let conf_sid = join_conference(&sim, &conf_name, &sid, label, false);
    sim.with_call(&sid, |c| c.rec.conferences.push(conf_name.clone()));
    let max_record_ms = sim.lock().voicemail_max_record_ms;
    let _ = sleep_or_cmd(&mut cmds, Duration::from_millis(leg_duration_ms(&callee, max_record_ms))).await;
    leave_conference(&sim, &conf_sid, &sid);
    sim.set_status(&sid, "completed");
}

#[cfg(test)]
mod tests {
    use super::resolve_url;

    #[test]
    fn relative_urls() {
        assert_eq!(resolve_url(Some("http://h:1/a/b?x=1"), "/c"), "http://h:1/c");
        assert_eq!(resolve_url(Some("http://h:1/a/b"), "c"), "http://h:1/a/c");
        assert_eq!(resolve_url(Some("http://h:1"), "c"), "http://h:1/c");
        assert_eq!(resolve_url(None, "http://x/y"), "http://x/y");
    }
}
