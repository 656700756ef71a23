//! The offline, deterministic rules engine.
//!
//! Pipeline: [`doc`] builds a lower-cased view and a normalised view of every turn (spoken
//! numbers, letters and symbols rewritten, with a map back to the original chars);
//! [`entities`] finds typed values there; [`people`] finds who called; [`fields`] turns
//! the caller's claims (negation, hedging and speaker attribution applied) into schema
//! fields; [`time`] resolves dates and times against the call; [`classify`] triages;
//! [`extras`] finds sensitive data, callbacks and the agent's promises. See
//! `docs/analysis-rules.md`.

mod classify;
mod doc;
mod entities;
mod extras;
mod fields;
mod lex;
mod people;
mod time;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use dialnexa_core::analysis::{Analysis, AnalysisInput, Category, Reproducibility, SchemaField, SchemaFieldType, SensitiveData, Summary};
use dialnexa_core::evidence::{ExtractedField, Span, TranscriptTurn};
use regex::Regex;
use serde_json::{Value, json};

use doc::{Doc, Loc};
use fields::{Ctx, FieldMap, Found};

pub const VERSION: &str = "1.0.0";

pub(crate) fn span(doc: &Doc, l: Loc) -> Span {
    Span { turn: doc.turns.get(l.turn).map(|t| t.index).unwrap_or(l.turn as u32), start: l.start as u32, end: l.end as u32 }
}

pub(crate) fn doc_number_word(w: &str) -> bool {
    matches!(w, "zero" | "oh" | "one" | "two" | "three" | "four" | "five" | "six" | "seven" | "eight" | "nine" | "ten")
}

/// The built-in field types, so a custom field of the same name and type reuses them.
fn builtin_type(name: &str) -> Option<SchemaFieldType> {
    use SchemaFieldType::*;
    Some(match name {
        "caller_email" => Email,
        "caller_phone" => Phone,
        "status_page_link" => Url,
        "affected_users" => Number,
        "start_time" | "deadline" | "callback_time" => Datetime,
        "logs_referenced" | "approval_required" | "sensitive_data" => Boolean,
        "plan" | "environment" | "severity" | "urgency" | "request_category" => Enum,
        "caller_name"
        | "customer"
        | "account"
        | "region"
        | "product_area"
        | "endpoint"
        | "error_message"
        | "business_impact"
        | "workaround"
        | "steps"
        | "expected_behavior"
        | "actual_behavior"
        | "repo"
        | "deploy"
        | "monitor"
        | "alert"
        | "owner"
        | "escalation_channel"
        | "support_ticket"
        | "related_object_id"
        | "requested_outcome"
        | "missing_information"
        | "blocker"
        | "promised_next_step"
        | "routing_note"
        | "callback_timezone" => String,
        _ => return None,
    })
}

pub fn analyze(input: &AnalysisInput) -> Analysis {
    let doc = Doc::new(&input.transcript);
    let tz = if jiff::tz::TimeZone::get(&input.timezone).is_ok() { input.timezone.as_str() } else { "UTC" };
    let mentions = entities::find_all(&doc, tz);
    let ctx = Ctx { doc: &doc, mentions: &mentions, call_time: input.call_time, tz };
    let person = people::find(&doc);
    let mut fm: FieldMap = BTreeMap::new();
    fields::extract(&ctx, &mut fm, &person);
    product_area(&ctx, &mut fm);

    // Sensitive data and the redaction everything leaving the engine goes through.
    let masks = extras::find_masks(&doc);
    let secrets: Vec<(String, &'static str)> =
        masks.iter().map(|m| (doc.text(m.loc).to_string(), extras::label(m.kind))).filter(|(s, _)| s.chars().count() >= 3).collect();
    let redact = |s: &str| -> String {
        let mut out = s.to_string();
        for (secret, label) in &secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), label);
            }
        }
        out
    };
    let redacted_transcript: Vec<TranscriptTurn> = input
        .transcript
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ms: Vec<&extras::Mask> = masks.iter().filter(|m| m.loc.turn == i).collect();
            TranscriptTurn { text: extras::redact_turn(&t.text, &ms), ..t.clone() }
        })
        .collect();
    let mut kinds: Vec<String> = masks.iter().map(|m| m.kind.to_string()).collect();
    kinds.sort();
    kinds.dedup();
    let sensitive = SensitiveData {
        detected: !masks.is_empty(),
        kinds,
        evidence: masks
            .iter()
            .take(10)
            .map(|m| {
                let ms: Vec<&extras::Mask> = masks.iter().filter(|x| x.loc.turn == m.loc.turn).collect();
                let red = extras::redact_turn(&input.transcript[m.loc.turn].text, &ms);
                let quote: String = red.chars().take(200).collect();
                dialnexa_core::analysis::Evidence { span: span(&doc, m.loc), quote }
            })
            .collect(),
    };
    if let Some(m) = masks.first() {
        fm.insert("sensitive_data", Found { value: json!(true), conf: 0.85, loc: m.loc });
    }

    // Callbacks and promises.
    let callbacks = extras::callbacks(&ctx, &fm, &redact);
    extras::callback_fields(&ctx, &callbacks, &mut fm);
    let caller_name = fm.get("caller_name").and_then(|f| f.value.as_str().map(str::to_string));
    let promises = extras::promises(&ctx, caller_name.as_deref(), &redact);
    if let Some(p) = extras::main_promise(&promises) {
        let l = Loc { turn: p.evidence.span.turn as usize, start: p.evidence.span.start as usize, end: p.evidence.span.end as usize };
        // Span turn is the transcript index; map back to the position.
        let pos = doc.turns.iter().position(|t| t.index as usize == l.turn).unwrap_or(l.turn);
        fm.insert("promised_next_step", Found { value: json!(p.what), conf: 0.7, loc: Loc { turn: pos, ..l } });
    }

    // Triage.
    let has_errors = fm.contains_key("error_message");
    let callback_main = !callbacks.is_empty() && callbacks[0].evidence.span.turn <= 3;
    let triage = classify::categorize(&doc, has_errors, callback_main);
    let category = triage.category;
    let sev = classify::severity(&doc, category);
    if let Some((s, Some((a, b)))) = sev
        && let Some(l) = doc.loc_lower(a, b)
    {
        fm.insert("severity", Found { value: json!(s.as_str()), conf: 0.6, loc: l });
    }
    request_category(&doc, category, &mut fm);
    let sentiment = classify::sentiment(&doc);
    let (repeat_contact, cancellation_language, mut sla_risk) = classify::signals(&doc, &redact);
    if !sla_risk.detected
        && category == Category::Incident
        && matches!(sev, Some((dialnexa_core::analysis::Severity::Sev1, _)))
        && fm.get("plan").and_then(|p| p.value.as_str()) == Some("enterprise")
        && let Some(f) = fm.get("business_impact").or(fm.get("plan"))
    {
        sla_risk.detected = true;
        sla_risk.evidence.push(dialnexa_core::analysis::Evidence { span: span(&doc, f.loc), quote: redact(doc.text(f.loc)) });
    }

    // Reproducibility from what was found, whatever the schema.
    let mut missing = vec![];
    for (k, name) in
        [("steps", "steps"), ("expected_behavior", "expected"), ("actual_behavior", "actual"), ("product_area", "area"), ("business_impact", "impact")]
    {
        let have = fm.contains_key(k) || (k == "product_area" && fm.contains_key("endpoint"));
        if !have {
            missing.push(name.to_string());
        }
    }
    let reproducible_bug = Reproducibility { reproducible: missing.is_empty(), missing };

    let summary = summarize(&doc, &fm, category, &triage, &promises, &redact);

    // Only the schema's fields; custom fields by type.
    let mut out: BTreeMap<String, ExtractedField> = BTreeMap::new();
    for f in &input.schema.fields {
        let found = match builtin_type(&f.name) {
            Some(t) if t == f.field_type => fm
                .get(f.name.as_str())
                .cloned()
                .filter(|x| f.field_type != SchemaFieldType::Enum || x.value.as_str().is_some_and(|v| f.options.iter().any(|o| o == v))),
            _ => custom_field(&ctx, f, &fm),
        };
        let Some(found) = found else { continue };
        let value = match found.value {
            Value::String(s) => Value::String(redact(&s)),
            v => v,
        };
        out.insert(f.name.clone(), ExtractedField { value, confidence: found.conf.clamp(0.0, 1.0), span: span(&doc, found.loc) });
    }

    Analysis {
        engine: "rules".into(),
        engine_version: VERSION.into(),
        model: None,
        prompt_version: None,
        summary,
        fields: out,
        category,
        category_reasons: triage.reasons.iter().map(|r| redact(r)).collect(),
        severity: sev.map(|s| s.0),
        sentiment,
        repeat_contact,
        cancellation_language,
        sla_risk,
        sensitive,
        redacted_transcript,
        reproducible_bug,
        callbacks,
        promises,
        truncated: None,
        warnings: vec![],
    }
}

static AREA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(api keys?|sip trunks?|caller id|single sign-on|sso|saml|retention|redaction|transcription|geocoding|media streams?|softphone|warm transfer|number porting|porting|data residency|sentiment analysis|collect digits|hosted payment page|after-hours|out-of-hours|ivr|webhooks?|dashboard|checkout|billing|invoicing|payments?|payouts?|subscriptions?|scheduler|calendar|inbox|helpdesk|attachments?|widget|sdk|cli|websocket|pipeline|cluster|database|postgres|queue|voicemail|routing|analytics|search|notifications?|sms|otp|onboarding|portal|console|integration|view|api|apis|app|exports?|imports?|importer|reports?|reporting|recordings?|transcripts?|uploads?|sync|login|sign[- ]in|inbound|outbound|calls|builds?|message|greeting|menus?|phone numbers?|numbers|terminals?|devices?)\b",
    )
    .expect("area")
});
const AREA_GENERIC: &[&str] = &[
    "app",
    "api",
    "apis",
    "calls",
    "inbound",
    "outbound",
    "recordings",
    "recording",
    "report",
    "reports",
    "export",
    "exports",
    "import",
    "imports",
    "login",
    "sign in",
    "sign-in",
    "integration",
    "view",
    "numbers",
    "number",
    "phone numbers",
    "message",
    "greeting",
    "menus",
    "menu",
    "devices",
    "device",
    "terminals",
    "terminal",
    "transcripts",
    "transcript",
    "builds",
    "build",
    "billing",
    "payments",
    "payment",
    "queue",
    "routing",
    "search",
    "sync",
    "uploads",
    "upload",
    "portal",
    "console",
];
const AREA_TAIL: &[&str] = &[
    "dashboard",
    "page",
    "view",
    "widget",
    "api",
    "export",
    "exports",
    "import",
    "report",
    "service",
    "flow",
    "tab",
    "screen",
    "endpoint",
    "app",
    "feature",
    "jobs",
    "job",
    "module",
    "integration",
    "settings",
    "setting",
    "column",
    "message",
    "secret",
    "key",
    "keys",
    "trunk",
    "id",
    "queue",
    "routing",
    "line",
    "signing",
    "button",
    "form",
    "list",
    "log",
    "logs",
    "builder",
    "editor",
    "step",
];
const AREA_STOP: &[&str] = &[
    "the",
    "our",
    "your",
    "my",
    "a",
    "an",
    "this",
    "that",
    "with",
    "in",
    "on",
    "to",
    "for",
    "of",
    "and",
    "is",
    "are",
    "was",
    "it",
    "its",
    "it's",
    "from",
    "at",
    "all",
    "every",
    "some",
    "new",
    "whole",
    "same",
    "any",
    "their",
    "we",
    "i",
    "you",
    "via",
    "by",
    "through",
    "into",
    "about",
    "there",
    "when",
    "if",
    "but",
    "so",
    "or",
    "just",
    "also",
    "using",
    "use",
    "get",
    "got",
    "getting",
    "hit",
    "hits",
    "connect",
    "keeps",
    "keep",
    "throws",
    "returns",
    "says",
    "shows",
    "open",
    "opened",
    "click",
    "clicked",
    "set",
    "how",
    "what",
    "which",
    "where",
    "like",
    "want",
    "wants",
    "need",
    "needs",
    "turn",
    "can't",
    "cannot",
    "don't",
    "isn't",
    "doesn't",
    "not",
    "broken",
    "failing",
    "fails",
    "been",
    "have",
    "has",
    "had",
    "production",
    "staging",
    "test",
    "trying",
    "wanted",
    "report",
    "up",
    "do",
    "does",
    "did",
    "give",
    "contractor",
    "native",
    "official",
    "one",
    "two",
    "per",
    "only",
    "still",
    "then",
    "now",
    "today",
    "since",
    "after",
    "before",
    "weird",
    "something",
    "thing",
    "stuff",
    "problem",
    "issue",
    "bug",
    "error",
    "errors",
    "mostly",
    "really",
    "very",
    "even",
    "both",
    "each",
    "either",
    "those",
    "these",
    "his",
    "her",
    "them",
    "they",
    "he",
    "she",
    "me",
    "us",
    "would",
    "could",
    "should",
    "will",
    "add",
    "adding",
    "added",
    "create",
    "created",
    "make",
    "see",
    "seeing",
    "saw",
    "tried",
    "try",
    "run",
    "running",
    "send",
    "sending",
    "sent",
    "take",
    "taking",
    "load",
    "loading",
    "show",
    "showing",
    "go",
    "going",
    "goes",
    "went",
    "check",
    "checked",
    "checking",
    "said",
    "say",
    "tell",
    "told",
    "know",
    "think",
    "thought",
    "look",
    "looks",
    "looking",
    "work",
    "works",
    "worked",
    "working",
];

fn area_word_ok(w: &str) -> bool {
    let bad = w.is_empty() || AREA_STOP.contains(&w) || lex::common_word(w) || w.len() > 4 && w.ends_with("ed");
    !bad && w.chars().all(|c| c.is_alphanumeric() || c == '-')
}

fn product_area(ctx: &Ctx, fm: &mut FieldMap) {
    let doc = ctx.doc;
    let skip: Vec<Loc> = ["caller_name", "customer"].iter().filter_map(|k| fm.get(*k).map(|f| f.loc)).collect();
    // Candidates: the caller's opening turns first, then any caller turn, then the agent's.
    let mut best: Option<(f64, usize, Loc, String)> = None;
    let mut caller_k = 0;
    for pass in 0..3 {
        for (ti, tr) in doc.turns.iter().enumerate() {
            let caller = doc.is_caller(ti);
            if caller {
                caller_k += usize::from(pass == 0);
            }
            let wanted = match pass {
                0 => caller && caller_k <= 3,
                1 => caller,
                _ => !caller,
            };
            if !wanted {
                continue;
            }
            let text = &doc.lower[tr.lower.0..tr.lower.1];
            if text.len() > 20_000 {
                continue;
            }
            for m in AREA.find_iter(text) {
                let (ms, me) = (tr.lower.0 + m.start(), tr.lower.0 + m.end());
                if negated(doc, ms, me) {
                    continue;
                }
                let Some(hl) = doc.loc_lower(ms, me) else { continue };
                if skip.iter().any(|s| s.turn == hl.turn && hl.start < s.end && s.start < hl.end) {
                    continue;
                }
                // Extend left over up to two content words, right over up to two tail nouns.
                let before: Vec<&str> = text[..m.start()].split(' ').collect();
                let mut s = m.start();
                let mut mods = 0;
                // Only words a space away: "billing (export" or "pre-export" extend no further
                // (the offsets below count whole words and single spaces).
                let touching = before.last().is_some_and(|w| !w.is_empty());
                for w in before.iter().rev().skip(1).take(if touching { 0 } else { 2 }) {
                    let w2 = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-');
                    if w2.len() != w.len() || !area_word_ok(w2) {
                        break;
                    }
                    s -= w.len() + 1;
                    mods += 1;
                }
                let mut e = m.end();
                let mut tails = 0;
                let head = m.as_str();
                let after = &text[m.end()..];
                let mut rest = after;
                while tails < 2 {
                    let Some(r) = rest.strip_prefix(' ') else { break };
                    let w: &str = r.split(|c: char| !(c.is_alphanumeric() || c == '-')).next().unwrap_or("");
                    let to_fmt = matches!(head, "export" | "exports" | "import" | "imports") && w == "to";
                    if AREA_TAIL.contains(&w) && w != head || to_fmt {
                        let mut len = 1 + w.len();
                        if to_fmt {
                            // "export to csv": the word after "to" and one separator, which
                            // may be missing (the turn ends) or wider than a byte.
                            let after_to = &r[w.len()..];
                            let Some(sep) = after_to.chars().next() else { break };
                            let nx: &str = after_to[sep.len_utf8()..].split(|c: char| !c.is_alphanumeric()).next().unwrap_or("");
                            if nx.is_empty() {
                                break;
                            }
                            len += sep.len_utf8() + nx.len();
                        }
                        e += len;
                        rest = &rest[len..];
                        tails += 1;
                    } else {
                        break;
                    }
                }
                let generic = AREA_GENERIC.contains(&head) && mods + tails == 0;
                let mut score = if AREA_GENERIC.contains(&head) { 1.0 } else { 2.0 } + 0.4 * (mods + tails) as f64;
                if pass > 0 {
                    score -= 0.5 * pass as f64;
                }
                if generic && pass == 0 {
                    score -= 0.2;
                }
                let Some(l) = doc.loc_lower(tr.lower.0 + s, tr.lower.0 + e) else { continue };
                let v = doc.text(l).trim().to_string();
                if best.as_ref().is_none_or(|b| score > b.0 + 1e-9) {
                    best = Some((score, pass, l, v));
                }
            }
        }
        if best.is_some() {
            break;
        }
    }
    if let Some((_, pass, l, v)) = best {
        fm.insert("product_area", Found { value: json!(v), conf: if pass == 2 { 0.4 } else { 0.6 }, loc: l });
    }
}

fn negated(doc: &Doc, s: usize, e: usize) -> bool {
    lex::negated(doc, s, e)
}

static REQ_CATS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    vec![
        ("cancellation", Regex::new(r"\b(cancel|cancell?ing|cancellation|terminate|close (?:our|my) account|end (?:our|the) contract)\b").expect("rc")),
        ("billing", Regex::new(r"\b(refund\w*|charged|charge|invoice\w*|billing|billed|bill|overage|credit|payment|card on file|statement|owe|vat|price|seats? count|claim)\b").expect("rc")),
        ("access", Regex::new(r"\b(admin access|access to|locked out|log ?in|password|permissions?|role|invite|sso|reset link)\b").expect("rc")),
        ("data_request", Regex::new(r"\b(export of|data request|gdpr|copy of (?:all )?our data|delete (?:our|my) data|records request|all our call transcripts|regulator)\b").expect("rc")),
        ("account_change", Regex::new(r"\b(address changed|change (?:the|our) (?:billing )?address|billing address|update (?:our|the) (?:contact|email|company)|rename|transfer ownership|drop from|reduce (?:our )?seats|change (?:our )?plan|downgrade|upgrade|seats at renewal|renewal)\b").expect("rc")),
        ("scheduling", Regex::new(r"\b(reschedul\w+|appointment|book (?:a|an)|schedule (?:a|an)|meeting|installation date)\b").expect("rc")),
        ("order", Regex::new(r"\b(order(?:ed)?|shipment|shipping|deliver(?:y|ed)|tracking number|headsets|packing slip|arrived|replacement)\b").expect("rc")),
    ]
});

fn request_category(doc: &Doc, category: Category, fm: &mut FieldMap) {
    if !matches!(category, Category::OperationalRequest) {
        return;
    }
    let mut best: Option<(&'static str, f64, Loc)> = None;
    for (name, re) in REQ_CATS.iter() {
        let mut score = 0.0;
        let mut loc = None;
        for m in re.find_iter(&doc.lower) {
            let t = doc.turn_of_lower(m.start());
            if !doc.is_caller(t) || negated(doc, m.start(), m.end()) {
                continue;
            }
            // What the caller opens with counts most.
            score += if t <= 3 { 1.5 } else { 1.0 };
            if loc.is_none() {
                loc = doc.loc_lower(m.start(), m.end());
            }
        }
        if let Some(l) = loc
            && best.as_ref().is_none_or(|b| score > b.1)
        {
            best = Some((name, score, l));
        }
    }
    if let Some((n, _, l)) = best {
        fm.insert("request_category", Found { value: json!(n), conf: 0.6, loc: l });
    }
}

fn custom_field(ctx: &Ctx, f: &SchemaField, fm: &FieldMap) -> Option<Found> {
    use SchemaFieldType::*;
    let doc = ctx.doc;
    let keywords: Vec<std::string::String> =
        f.name.split('_').filter(|w| w.len() > 2 && !matches!(*w, "the" | "and" | "for" | "number" | "count" | "name")).map(str::to_string).collect();
    match f.field_type {
        Email => fm.get("caller_email").cloned(),
        Phone => fm.get("caller_phone").cloned(),
        Url => ctx.mentions.iter().find(|m| m.kind == entities::Kind::Url && fields::claim(doc, m.loc.turn, m.lstart, m.lend).is_some()).map(|m| Found {
            value: json!(m.value),
            conf: 0.6,
            loc: m.loc,
        }),
        Datetime => fm.get("start_time").or(fm.get("deadline")).or(fm.get("callback_time")).cloned().map(|mut x| {
            x.conf *= 0.6;
            x
        }),
        Enum => {
            // An option the caller mentions (not negated).
            for s in &doc.sentences {
                if !doc.is_caller(s.turn) {
                    continue;
                }
                let text = doc.sentence_text(s);
                for o in &f.options {
                    let ol = o.to_lowercase().replace('_', " ");
                    if let Some(p) = find_word(text, &ol) {
                        let a = s.start + p;
                        if negated(doc, a, a + ol.len()) {
                            continue;
                        }
                        return doc.loc_lower(a, a + ol.len()).map(|l| Found { value: json!(o), conf: 0.55, loc: l });
                    }
                }
            }
            None
        }
        Number | Boolean | String => {
            if keywords.is_empty() {
                return None;
            }
            for s in &doc.sentences {
                if !doc.is_caller(s.turn) {
                    continue;
                }
                let text = doc.sentence_text(s);
                // The keyword or its plural ("order_count" → "orders").
                let Some(p) = keywords
                    .iter()
                    .find_map(|k| find_word(text, k).map(|p| (p, k.len())).or_else(|| find_word(text, &format!("{k}s")).map(|p| (p, k.len() + 1))))
                else {
                    continue;
                };
                let a = s.start + p.0;
                match f.field_type {
                    Boolean => {
                        let v = !negated(doc, a, a + p.1);
                        return doc.loc_lower(a, a + p.1).map(|l| Found { value: json!(v), conf: 0.5, loc: l });
                    }
                    Number => {
                        let Some(l) = doc.loc_lower(s.start, s.end) else { continue };
                        let (ns, ne) = doc.norm_range(l);
                        static NUM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d[\d,]*(?:\.\d+)?\b").expect("num"));
                        // The number nearest the keyword, not part of an id ("us-east-1").
                        let seg = &doc.norm[ns..ne];
                        let near = NUM
                            .find_iter(seg)
                            .filter(|m| !seg[..m.start()].ends_with(|c: char| c == '-' || c == '.' || c.is_alphabetic()))
                            .filter_map(|m| doc.loc_norm(ns + m.start(), ns + m.end()).map(|l| (m, doc.lower_byte(l.turn, l.start).abs_diff(a))))
                            .min_by_key(|x| x.1)
                            .map(|x| x.0);
                        if let Some(m) = near
                            && let Ok(v) = m.as_str().replace(',', "").parse::<f64>()
                        {
                            let loc = doc.loc_norm(ns + m.start(), ns + m.end()).unwrap_or(l);
                            let n = if v.fract() == 0.0 && v.abs() < 9e15 { json!(v as i64) } else { json!(v) };
                            return Some(Found { value: n, conf: 0.5, loc });
                        }
                    }
                    _ => {
                        // "<keyword> is X"
                        let rest = &text[p.0 + p.1..];
                        if let Some(r) = rest.strip_prefix(" is ").or_else(|| rest.strip_prefix(": ")) {
                            let v: std::string::String = r.split([',', '.', ';', '?', '!']).next().unwrap_or("").trim().to_string();
                            if !v.is_empty() && v.split_whitespace().count() <= 6 {
                                let off = a + p.1 + (rest.len() - r.len());
                                if let Some(l) = doc.loc_lower(off, off + v.len()) {
                                    return Some(Found { value: json!(doc.text(l)), conf: 0.5, loc: l });
                                }
                            }
                        }
                    }
                }
            }
            None
        }
    }
}

fn find_word(hay: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let mut from = 0;
    while let Some(p) = hay[from..].find(needle) {
        let s = from + p;
        let e = s + needle.len();
        let before = hay[..s].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = hay[e..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before && after {
            return Some(s);
        }
        from = s + needle.chars().next().map(char::len_utf8).unwrap_or(1);
    }
    None
}

fn summarize(
    doc: &Doc,
    fm: &FieldMap,
    category: Category,
    triage: &classify::Triage,
    promises: &[dialnexa_core::analysis::Promise],
    redact: &dyn Fn(&str) -> String,
) -> Summary {
    let s = |k: &str| fm.get(k).and_then(|f| f.value.as_str().map(redact));
    let clip = |v: String| -> String {
        if v.chars().count() > 160 {
            let t: String = v.chars().take(157).collect();
            format!("{}...", t.trim_end())
        } else {
            v
        }
    };
    let who = match (s("caller_name"), s("customer")) {
        (Some(n), Some(c)) => format!("{n} from {c}"),
        (Some(n), None) => n,
        (None, Some(c)) => format!("A caller from {c}"),
        _ => "The caller".to_string(),
    };
    // The first substantive caller sentence is the symptom.
    let symptom = s("actual_behavior").or_else(|| s("error_message").map(|e| format!("seeing {e}"))).or_else(|| {
        doc.sentences.iter().filter(|x| doc.is_caller(x.turn)).map(|x| doc.sentence_orig(x).0).find(|t| t.split_whitespace().count() >= 6).map(redact)
    });
    let area = s("product_area").or_else(|| s("endpoint"));
    let kind = match category {
        Category::Incident => "an incident",
        Category::Bug => "a bug",
        Category::SetupQuestion => "a setup question",
        Category::ProductConfusion => "product confusion (working as designed)",
        Category::AccountConfiguration => "an account configuration problem",
        Category::KnownLimitation => "a known limitation",
        Category::OperationalRequest => "an operational request",
        Category::CallbackRequest => "a callback request",
        Category::Other => "a non-support matter",
    };
    let mut sentences = vec![];
    let topic = s("requested_outcome").filter(|_| matches!(category, Category::OperationalRequest | Category::CallbackRequest)).or_else(|| symptom.clone());
    match (&topic, &area) {
        (Some(t), Some(a)) => sentences.push(format!("{who} called about {kind} affecting {a}: {}", clip(t.clone()))),
        (Some(t), None) => sentences.push(format!("{who} called about {kind}: {}", clip(t.clone()))),
        (None, Some(a)) => sentences.push(format!("{who} called about {kind} affecting {a}")),
        (None, None) => sentences.push(format!("{who} called about {kind}")),
    }
    let mut context = vec![];
    if let Some(e) = s("environment") {
        context.push(format!("environment {e}"));
    }
    if let Some(r) = s("region") {
        context.push(format!("region {r}"));
    }
    if let Some(e) = s("endpoint") {
        context.push(format!("endpoint {e}"));
    }
    if let Some(e) = s("error_message") {
        context.push(format!("error {e}"));
    }
    if let Some(t) = fm.get("start_time").and_then(|f| f.value.as_str()) {
        context.push(format!("since {t}"));
    }
    if !context.is_empty() {
        sentences.push(format!("Details: {}", context.join(", ")));
    }
    let impact = s("business_impact");
    if let Some(i) = &impact {
        sentences.push(format!("Impact: {}", clip(i.clone())));
    }
    static CHECKED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(i (?:already )?(?:checked|tried|restarted|cleared|verified|confirmed|tested|rotated|curl(?:ed)?)|we (?:already )?(?:checked|tried|restarted|cleared|verified|rolled back|tested|rotated|added)|already (?:checked|tried|posted|opened|restarted)|when i curl)\b").expect("checked")
    });
    let already_checked = CHECKED
        .find_iter(&doc.lower)
        .find(|m| doc.is_caller(doc.turn_of_lower(m.start())))
        .and_then(|m| doc.sentence_at(m.start()))
        .map(|x| redact(doc.sentence_orig(x).0));
    let next_step = extras::main_promise(promises).map(|p| p.what.clone());
    if let Some(n) = &next_step {
        sentences.push(format!("Next step: {}", clip(n.clone())));
    } else if let Some(r) = triage.reasons.first() {
        sentences.push(format!("Triage: {}", clip(redact(r))));
    }
    if sentences.len() < 2 {
        sentences.push(format!("Category: {}", category.as_str()));
    }
    sentences.truncate(5);
    let text = sentences
        .iter()
        .map(|x| {
            let x = x.trim_end_matches(['.', ' ']);
            format!("{x}.")
        })
        .collect::<Vec<_>>()
        .join(" ");
    Summary {
        text,
        symptom: symptom.map(clip),
        expected: s("expected_behavior").map(clip),
        actual: s("actual_behavior").map(clip),
        affected_area: area,
        impact: impact.map(clip),
        already_checked: already_checked.map(clip),
        next_step: next_step.map(clip),
    }
}
