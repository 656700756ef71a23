//! Sensitive data and redaction, callbacks and the agent's promises.

use std::sync::LazyLock;

use dialnexa_core::analysis::{CallbackRequest, Evidence, Promise};
use regex::Regex;

use super::doc::{Doc, Loc};
use super::entities::luhn;
use super::fields::{Ctx, FieldMap, Found};
use super::lex::{affirmative, hedge, negated};
use super::time::{self, Mode};

/// A masked range of one turn.
#[derive(Debug, Clone)]
pub struct Mask {
    pub loc: Loc,
    pub kind: &'static str,
}

pub fn label(kind: &str) -> &'static str {
    match kind {
        "card_number" => "[card number]",
        "national_id" => "[national id]",
        "password" => "[password]",
        _ => "[health detail]",
    }
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect(stringify!($name)));
    };
}

re!(DIGIT_RUN, r"\d(?:[ -]?\d){11,22}");
re!(CVV, r"\b(?:cvv|cvc|cv2|security code|code on the back(?: is)?|expiry|expiration(?: date)?|exp)\b(?: is| date is|:)? ?(\d{2}/\d{2,4}|\d{3,4})\b");
re!(SSN, r"\b(\d{3}[- ]\d{2}[- ]\d{4})\b");
re!(
    ID_CTX,
    r"\b(social security(?: number)?|ssn|social is|national insurance(?: number)?|national id|tax id|tax file number|sin number|passport(?: number)?|driver'?s licen[cs]e(?: number)?|id number|nino|bsn|personnummer|aadhaar)\b(?: number)?(?: is|:)? ?([a-z0-9][a-z0-9 -]{4,20}[a-z0-9])"
);
re!(NINO, r"\b([a-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[a-d])\b");
re!(
    SECRET,
    r"\b(?:password|passcode|pass code|pin(?: code| number)?|passphrase|security answer|secret word)\b(?: (?:is|was|it's|its|would be)|:)\s*([^\s]+(?: [^\s,.;!?]+){0,5})"
);
re!(
    HEALTH,
    r"\b(diagnos\w+|diabet\w+|cancer|chemo\w*|pregnan\w+|hiv|depression|anxiety|medication|prescri\w+|surgery|mri|x-ray|ms relapse|multiple sclerosis|relapse|neurologist|oncolog\w+|psychiatr\w+|blood pressure|heart condition|asthma|epilep\w+|dementia|insulin|miscarriage|medical (?:condition|records|history)|mental health|therapy session|rehab|overdose|seizure\w*)\b"
);
const NOT_SECRET: &[&str] = &[
    "wrong",
    "expired",
    "incorrect",
    "not",
    "reset",
    "invalid",
    "correct",
    "fine",
    "the",
    "a",
    "being",
    "too",
    "still",
    "changed",
    "required",
    "policy",
    "manager",
    "field",
    "and",
    "so",
    "never",
];

/// Everything sensitive in the transcript (both roles: agents read numbers back).
pub fn find_masks(doc: &Doc) -> Vec<Mask> {
    let mut out: Vec<Mask> = vec![];
    let n = &doc.norm;
    for m in DIGIT_RUN.find_iter(n) {
        let digits: String = m.as_str().chars().filter(|c| c.is_ascii_digit()).collect();
        if (13..=19).contains(&digits.len())
            && luhn(&digits)
            && let Some(loc) = doc.loc_norm(m.start(), m.end())
        {
            out.push(Mask { loc, kind: "card_number" });
        }
    }
    for c in CVV.captures_iter(n) {
        if let Some(g) = c.get(1)
            && let Some(loc) = doc.loc_norm(g.start(), g.end())
        {
            // Only near a card.
            let near = out.iter().any(|m| m.kind == "card_number" && m.loc.turn.abs_diff(loc.turn) <= 2);
            if near {
                out.push(Mask { loc, kind: "card_number" });
            }
        }
    }
    for c in SSN.captures_iter(n) {
        if let Some(g) = c.get(1)
            && let Some(loc) = doc.loc_norm(g.start(), g.end())
        {
            out.push(Mask { loc, kind: "national_id" });
        }
    }
    for c in ID_CTX.captures_iter(n) {
        if let Some(g) = c.get(2)
            && g.as_str().chars().filter(|c| c.is_ascii_digit()).count() >= 4
            && let Some(loc) = doc.loc_norm(g.start(), g.end())
        {
            out.push(Mask { loc, kind: "national_id" });
        }
    }
    for c in NINO.captures_iter(n) {
        if let Some(g) = c.get(1) {
            let ctx = &n[super::lex::floor_boundary(n, g.start().saturating_sub(40))..g.start()];
            if (ctx.contains("insurance") || ctx.contains("nino") || ctx.contains("ni number"))
                && let Some(loc) = doc.loc_norm(g.start(), g.end())
            {
                out.push(Mask { loc, kind: "national_id" });
            }
        }
    }
    for c in SECRET.captures_iter(&doc.lower) {
        let Some(g) = c.get(1) else { continue };
        let first = g.as_str().split_whitespace().next().unwrap_or("");
        if NOT_SECRET.contains(&first.trim_matches(|c: char| !c.is_alphanumeric())) || c.get(0).is_some_and(|a| a.as_str().contains("reset")) {
            continue;
        }
        // The value runs to the end of the clause: "desertrose two zero two six".
        let mut end = g.end();
        let v = g.as_str();
        if let Some(cut) = v.find([',', ';']) {
            end = g.start() + cut;
        }
        let v = doc.lower[g.start()..end].trim_end_matches(['.', '!', '?']);
        let end = g.start() + v.len();
        let words: Vec<&str> = v.split_whitespace().collect();
        // Stop before ordinary words after the secret ("... and my pin is").
        let mut keep = 0;
        for (i, w) in words.iter().enumerate() {
            if i > 0 && super::lex::common_word(w) && !super::doc_number_word(w) {
                break;
            }
            keep = i + 1;
        }
        let kept: usize = words[..keep].iter().map(|w| w.len()).sum::<usize>() + keep.saturating_sub(1);
        let end = (g.start() + kept).min(end);
        if let Some(loc) = doc.loc_lower(g.start(), end) {
            out.push(Mask { loc, kind: "password" });
        }
    }
    for m in HEALTH.find_iter(&doc.lower) {
        let t = doc.turn_of_lower(m.start());
        if !doc.is_caller(t) || negated(doc, m.start(), m.end()) {
            continue;
        }
        if let Some(loc) = doc.loc_lower(m.start(), m.end()) {
            out.push(Mask { loc, kind: "health" });
        }
    }
    out.sort_by_key(|m| (m.loc.turn, m.loc.start));
    // Merge overlaps.
    let mut merged: Vec<Mask> = vec![];
    for m in out {
        if let Some(last) = merged.last_mut()
            && last.loc.turn == m.loc.turn
            && m.loc.start < last.loc.end
        {
            last.loc.end = last.loc.end.max(m.loc.end);
            continue;
        }
        merged.push(m);
    }
    merged
}

/// The text of turn `turn` with its masks applied, and a function to mask any substring.
pub fn redact_turn(text: &str, masks: &[&Mask]) -> String {
    if masks.is_empty() {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    for m in masks {
        let s = m.loc.start.min(chars.len());
        let e = m.loc.end.min(chars.len());
        if s < i {
            continue;
        }
        out.extend(&chars[i..s]);
        out.push_str(label(m.kind));
        i = e;
    }
    out.extend(&chars[i.min(chars.len())..]);
    out
}

re!(
    CALLBACK,
    r"\b(can't (?:do|talk about) (?:this|that|it) (?:now|right now)|can't talk (?:now|right now)|make it (?:\d{1,2}(?::\d\d)?|tomorrow|monday|tuesday|wednesday|thursday|friday)|call (?:me|us) back|ring (?:me|us) back|call back|callback|call-back|give me a call|someone (?:to )?(?:call|ring) me|(?:can|could) someone (?:from [\w ]+ )?(?:call|ring)|have (?:someone|somebody) call|call me (?:at|on|tomorrow|later|after|before|this|next|monday|tuesday|wednesday|thursday|friday)|can we do this another time|another time|walk [\w ]+ through it on a call|reach me)\b"
);
re!(
    OFFER,
    r"\b(would you like (?:us to call you back|a callback|a call back|someone to call)|(?:will|'ll) (?:personally |also )?(?:have (?:someone|somebody|[\w ]{1,30}) )?(?:call|ring|phone) you (?:back )?(?:tomorrow|today|on|at|this|next|monday|tuesday|wednesday|thursday|friday)|shall (?:we|i) call you|how about|does .* work for you|what time works|when (?:is|would be) a good time|book (?:a|an) [\w ]*call)\b"
);

// Accepting an offered time: "Fine, 2pm." / "Alright, Thursday works."
re!(ACCEPT, r"^\W*(fine|alright|all right|deal|works for me|that'd be good|please do)\b");

pub fn callbacks(ctx: &Ctx, fields: &FieldMap, redact: &dyn Fn(&str) -> String) -> Vec<CallbackRequest> {
    let doc = ctx.doc;
    let mut start_turn: Option<(usize, usize, usize)> = None;
    for m in CALLBACK.find_iter(&doc.lower) {
        let t = doc.turn_of_lower(m.start());
        if doc.is_caller(t) && !negated(doc, m.start(), m.end()) {
            start_turn = Some((t, m.start(), m.end()));
            break;
        }
    }
    if start_turn.is_none() {
        for m in OFFER.find_iter(&doc.lower) {
            let t = doc.turn_of_lower(m.start());
            if !doc.is_caller(t)
                && t + 1 < doc.turns.len()
                && doc.is_caller(t + 1)
                && (affirmative(doc.turn_lower(t + 1)) || ACCEPT.is_match(doc.turn_lower(t + 1)))
                && (doc.turn_lower(t).contains("call") || doc.turn_lower(t).contains("ring"))
            {
                let (s, e) = doc.turns[t + 1].lower;
                start_turn = Some((t + 1, s, e));
                break;
            }
        }
    }
    let Some((t0, ms, me)) = start_turn else { return vec![] };
    let window_end = (t0 + 6).min(doc.turns.len());
    // Times said by the caller in the window; the last one wins (callers refine: "no, make it 3:30").
    let mut caller_time: Option<(time::Resolved, usize, usize)> = None;
    let mut agent_time: Option<(time::Resolved, usize, usize)> = None;
    let mut zone: Option<&'static str> = None;
    let mut zone_turn: Option<usize> = None;
    for t in t0..window_end {
        let (ns, ne) = doc.turns[t].norm;
        let text = &doc.norm[ns..ne];
        if hedge(doc.turn_lower(t)) == 2 && doc.is_caller(t) {
            continue;
        }
        // A caller's "no" to the agent's proposal rejects it.
        if doc.is_caller(t) && super::lex::negative_answer(doc.turn_lower(t)) {
            agent_time = None;
        }
        let all = time::resolve_all(text, ctx.call_time, ctx.tz, Mode::Future);
        let all: Vec<_> = all.into_iter().filter(|r| r.precise || !text[r.start..r.end].contains("end of")).collect();
        if let Some(r) = all.last() {
            if doc.is_caller(t) {
                caller_time = Some((r.clone(), ns, t));
            } else if agent_time.is_none() {
                agent_time = Some((r.clone(), ns, t));
            }
        }
        if zone.is_none() {
            zone = time::find_zone(text).map(|z| z.0).or_else(|| all.iter().find_map(|r| r.zone));
            if zone.is_some() {
                zone_turn = Some(t);
            }
        }
    }
    let mut chosen = caller_time.or(agent_time);
    // "Make it 10:30 tomorrow morning, Pacific": a zone named in the same turn as the time applies to it.
    if let Some((r, ns, t)) = chosen.as_mut()
        && r.zone.is_none()
        && let Some(z) = zone.filter(|_| zone_turn == Some(*t)).or_else(|| {
            doc.turn_lower(*t)
                .split(|c: char| !c.is_alphabetic())
                .find_map(|w| if matches!(w, "pacific" | "eastern" | "central" | "mountain") { time::zone_name(w) } else { None })
        })
        && z != ctx.tz
    {
        let (s0, e0) = doc.turns[*t].norm;
        if let Some(again) = time::resolve_all(&doc.norm[s0..e0], ctx.call_time, z, Mode::Future).into_iter().find(|x| x.start == r.start) {
            *r = again;
            r.zone = Some(z);
        }
        *ns = s0;
    }
    let zone = chosen.as_ref().and_then(|c| c.0.zone).or(zone);
    let phone = fields.get("caller_phone").and_then(|f| f.value.as_str().map(str::to_string));
    let (preferred_time, preferred_time_text) = match &chosen {
        Some((r, ns, _)) => (Some(r.rfc3339.clone()), doc.loc_norm(ns + r.start, ns + r.end).map(|l| doc.text(l).to_string())),
        None => (None, None),
    };
    let ev_loc = doc.sentence_at(ms).map(|s| doc.sentence_orig(s).1).or_else(|| doc.loc_lower(ms, me)).unwrap_or(Loc { turn: t0, start: 0, end: 0 });
    let quote = redact(doc.text(ev_loc));
    let reason = fields
        .get("requested_outcome")
        .or_else(|| fields.get("business_impact"))
        .and_then(|f| f.value.as_str().map(str::to_string))
        .or_else(|| doc.sentences.iter().find(|s| doc.is_caller(s.turn) || s.turn == t0).map(|s| doc.sentence_orig(s).0.to_string()));
    vec![CallbackRequest {
        phone,
        preferred_time,
        preferred_time_text,
        timezone: zone.map(str::to_string).or_else(|| chosen.as_ref().map(|_| ctx.tz.to_string())),
        reason: reason.map(|r| redact(&r)),
        evidence: Evidence { span: super::span(doc, ev_loc), quote },
    }]
}

/// The callback fields, from the first callback.
pub fn callback_fields(ctx: &Ctx, cbs: &[CallbackRequest], out: &mut FieldMap) {
    let Some(cb) = cbs.first() else { return };
    // The span names the transcript's turn index; a field location holds the turn's position.
    let Some(turn) = ctx.doc.turns.iter().position(|t| t.index == cb.evidence.span.turn) else { return };
    let loc = Loc { turn, start: cb.evidence.span.start as usize, end: cb.evidence.span.end as usize };
    if let Some(t) = &cb.preferred_time {
        out.insert("callback_time", Found { value: serde_json::json!(t), conf: 0.75, loc });
    }
    if let Some(z) = &cb.timezone {
        let explicit = z != ctx.tz;
        out.insert("callback_timezone", Found { value: serde_json::json!(z), conf: if explicit { 0.8 } else { 0.5 }, loc });
    }
}

re!(
    PROMISE,
    r"\b(i'll|i will|ill|we'll|we will|i'm going to|im going to|i am going to|we're going to|i can (?:send|email|have|get|book|reset|arrange)|(?:is|are) on (?:its|their) way|has been sent|just sent|someone (?:from [\w ]+ )?will|(?:our|the) [\w-]+(?: [\w-]+)? (?:team )?will|you'll (?:get|receive|hear)|you will (?:get|receive|hear)|i've (?:opened|created|logged|filed|escalated|flagged|linked|booked|scheduled|sent)|i have (?:opened|created|logged|escalated)|i'm (?:opening|sending|escalating|paging|removing|submitting|raising|flagging|moving)|i am (?:removing|submitting|sending|opening))\b"
);
re!(
    ACTION,
    r"\b(send|sending|email|e-mail|call|ring|follow up|get back|escalate|update|look into|check|create|open|opening|file|log|refund|process|reset|reissue|issue|book|schedule|arrange|have|pass|route|flag|raise|add|attach|turn on|enable|start|submit|submitting|resubmit|credit|remove|removing|post|page|paging|text|share|forward|investigate|confirm|put|note|make sure|link|move|get|loop|reach out|contact|transfer|apply|waive|extend|fix|hear|receive)\b"
);
re!(CHANNEL, r"\b(email|e-mail|inbox|call you|phone|ring you|text|sms|slack|#[a-z0-9-]+|ticket|status page|portal|in the app|dashboard|voicemail)\b");

pub fn promises(ctx: &Ctx, caller_name: Option<&str>, redact: &dyn Fn(&str) -> String) -> Vec<Promise> {
    let doc = ctx.doc;
    let mut out = vec![];
    for s in &doc.sentences {
        if doc.is_caller(s.turn) {
            continue;
        }
        let text = doc.sentence_text(s);
        let Some(p) = PROMISE.find(text) else { continue };
        if !ACTION.is_match(&text[p.end()..]) && !p.as_str().starts_with("i've") && !p.as_str().starts_with("i'm") {
            continue;
        }
        if s.question && !text.contains("i'll") {
            continue;
        }
        if negated(doc, s.start + p.start(), s.start + p.end()) && text[..p.start()].contains("not") {
            continue;
        }
        let (orig, loc) = doc.sentence_orig(s);
        let what = strip_lead(orig);
        let (ns, ne) = doc.norm_range(loc);
        let r = time::resolve_all(&doc.norm[ns..ne], ctx.call_time, ctx.tz, Mode::Deadline).into_iter().next();
        let by_when = r.as_ref().map(|r| r.rfc3339.clone());
        let by_when_text = r.as_ref().and_then(|r| doc.loc_norm(ns + r.start, ns + r.end)).map(|l| doc.text(l).to_string());
        let channel = CHANNEL.find(text).map(|m| {
            let c = m.as_str();
            match c {
                "e-mail" | "inbox" => "email".to_string(),
                "call you" | "ring you" | "phone" | "voicemail" => "phone".to_string(),
                "sms" | "text" => "sms".to_string(),
                x if x.starts_with('#') => format!("slack {x}"),
                x => x.to_string(),
            }
        });
        let to_whom = if text.contains("you") { caller_name.map(str::to_string).or(Some("caller".to_string())) } else { None };
        out.push(Promise {
            what: redact(&what),
            to_whom,
            by_when,
            by_when_text,
            channel,
            evidence: Evidence { span: super::span(doc, loc), quote: redact(orig) },
        });
        if out.len() >= 8 {
            break;
        }
    }
    out
}

fn strip_lead(s: &str) -> String {
    static L: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^(?:(?:okay|ok|great|perfect|thanks|thank you|understood|got it|sure|of course|absolutely|alright|right|so|and|then|noted)[,.!]?\s+)+")
            .expect("lead")
    });
    L.replace(s.trim(), "").trim().to_string()
}

/// The promise that is the next step for the caller: one with a delivery (email, call, send) first.
pub fn main_promise(ps: &[Promise]) -> Option<&Promise> {
    static DELIVER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(send|email|call you|call|ring|get back|text|book|have [\w ]+ call|reset link|confirmation|will call)\b").expect("deliver")
    });
    // Ties go to the earliest turn (a turn index is any u32: compare it reversed, never negated).
    ps.iter().max_by_key(|p| (i32::from(DELIVER.is_match(&p.what)) * 2 + i32::from(p.by_when.is_some()), std::cmp::Reverse(p.evidence.span.turn)))
}
