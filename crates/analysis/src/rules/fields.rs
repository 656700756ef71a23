//! Schema fields: each grounded in the caller's words (or an agent read-back the caller
//! confirmed), with a confidence; a field that cannot be grounded is left out.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use super::doc::{Doc, Loc, Sentence, trim_loc};
use super::entities::{Kind, Mention};
use super::lex::{self, affirmative, hedge, negated, negative_answer};
use super::time::{self, Mode};

#[derive(Debug, Clone)]
pub struct Found {
    pub value: Value,
    pub conf: f64,
    pub loc: Loc,
}

pub type FieldMap = BTreeMap<&'static str, Found>;

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect(stringify!($name)));
    };
}

pub struct Ctx<'a> {
    pub doc: &'a Doc<'a>,
    pub mentions: &'a [Mention],
    pub call_time: jiff::Timestamp,
    pub tz: &'a str,
}

/// How much a mention counts as the caller's claim: None when negated, strongly hedged, a
/// caller's question, or an agent's words the caller did not confirm.
pub fn claim(doc: &Doc, turn: usize, lstart: usize, lend: usize) -> Option<f64> {
    if doc.is_caller(turn) {
        if negated(doc, lstart, lend) {
            return None;
        }
        let s = doc.sentence_at(lstart)?;
        let level = if s.end - s.start <= 90 || s.hedge == 0 {
            s.hedge
        } else {
            let cs = lex::clause_start(doc, lstart);
            let ce = lex::clause_end(doc, lend.max(lstart));
            hedge(&doc.lower[cs..ce.max(cs)])
        };
        if s.question && level > 0 {
            return None;
        }
        match level {
            2 => None,
            1 => Some(0.65),
            _ => Some(if s.question { 0.6 } else { 0.9 }),
        }
    } else {
        // An agent's read-back counts when the next caller turn confirms it.
        let next = turn + 1;
        if next < doc.turns.len() && doc.is_caller(next) {
            let reply = doc.turn_lower(next);
            if affirmative(reply) && !negative_answer(reply) {
                return Some(0.6);
            }
        }
        None
    }
}

/// The best caller claim of a kind: a later correction wins, else the first.
fn best_of<'m>(ctx: &'m Ctx, kind: Kind, filter: impl Fn(&Mention) -> bool) -> Option<(&'m Mention, f64)> {
    let doc = ctx.doc;
    let mut best: Option<(&Mention, f64, f64)> = None;
    for m in ctx.mentions.iter().filter(|m| m.kind == kind && filter(m)) {
        let Some(conf) = claim(doc, m.loc.turn, m.lstart, m.lend) else { continue };
        // An agent read-back the caller later contradicts does not count.
        let mut score = conf;
        let cs = lex::clause_start(doc, m.lstart);
        let prefix_from = lex::floor_boundary(&doc.lower, cs.saturating_sub(30));
        if doc.is_caller(m.loc.turn) && lex::correction(&doc.lower[prefix_from..m.lstart.max(prefix_from)]) {
            score += 0.5;
        }
        if best.is_none_or(|(_, _, s)| score > s + 1e-9) {
            best = Some((m, conf, score));
        }
    }
    best.map(|(m, c, _)| (m, c))
}

fn found(v: Value, conf: f64, loc: Loc) -> Found {
    Found { value: v, conf: (conf * 100.0).round() / 100.0, loc }
}

/// Caller turns that answer an agent question matching `q`.
fn answers<'d>(doc: &'d Doc, q: &'static Regex) -> impl Iterator<Item = usize> + 'd {
    // Never clone a Regex per call: a clone gets a fresh cache pool and rebuilds its DFA.
    (1..doc.turns.len()).filter(move |&t| doc.is_caller(t) && !doc.is_caller(t - 1) && q.is_match(doc.turn_lower(t - 1)))
}

/// The original text of a caller sentence, trimmed, at most ~240 chars; a short turn is
/// taken whole (answers are often split: "No, a refund. I want it back on the card.").
fn sentence_value(doc: &Doc, s: &Sentence) -> Option<(String, Loc)> {
    sentence_value_at(doc, s, s.start)
}

fn sentence_value_at(doc: &Doc, s: &Sentence, at: usize) -> Option<(String, Loc)> {
    let tr = &doc.turns[s.turn];
    if tr.chars <= 200 {
        let (text, loc) = trim_loc(doc, Loc { turn: s.turn, start: 0, end: tr.chars });
        if !text.is_empty() {
            return Some((strip_fillers(text), loc));
        }
    }
    let (text, loc) = doc.sentence_orig(s);
    if text.chars().count() > 240 {
        // A long (unpunctuated) sentence: a window around the cue, on word boundaries.
        let a = lex::floor_boundary(&doc.lower, at.saturating_sub(100).max(s.start));
        let b = lex::ceil_boundary(&doc.lower, (at + 140).min(s.end));
        let a = doc.lower[a..at.max(a)].find(' ').map(|i| a + i + 1).filter(|&x| x <= at).unwrap_or(a);
        let b = doc.lower[..b].rfind(' ').filter(|&x| x > at).unwrap_or(b);
        if let Some(l) = doc.loc_lower(a, b) {
            let (t, l) = trim_loc(doc, l);
            return Some((strip_fillers(t), l));
        }
    }
    if text.is_empty() {
        return None;
    }
    let n = text.chars().count();
    if n <= 240 {
        return Some((strip_fillers(text), loc));
    }
    let l = Loc { turn: loc.turn, start: loc.start, end: loc.start + 240 };
    let (t, l) = trim_loc(doc, l);
    Some((strip_fillers(t), l))
}

fn strip_fillers(s: &str) -> String {
    static F: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)^(?:(?:so|and|but|well|yeah|yes|um|uh|look|okay|ok|oh|honestly|basically|right)[,.]?\s+)+").expect("fillers"));
    F.replace(s.trim(), "").trim().to_string()
}

/// First caller sentence (not negated at the cue) matching `re`.
fn cue_sentence(ctx: &Ctx, re: &Regex, allow_agent: bool) -> Option<(String, Loc, usize)> {
    let doc = ctx.doc;
    for m in re.find_iter(&doc.lower) {
        let t = doc.turn_of_lower(m.start());
        if !doc.is_caller(t) && !allow_agent {
            continue;
        }
        let Some(s) = doc.sentence_at(m.start()) else { continue };
        let level = if s.end - s.start <= 160 {
            s.hedge
        } else {
            let cs = lex::clause_start(doc, m.start());
            hedge(&doc.lower[cs..lex::clause_end(doc, m.end()).max(cs)])
        };
        if s.question && doc.is_caller(t) && level > 0 {
            continue;
        }
        if level == 2 || negated(doc, m.start(), m.end()) {
            continue;
        }
        if let Some((v, l)) = sentence_value_at(doc, s, m.start()) {
            return Some((v, l, m.start()));
        }
    }
    None
}

re!(
    ASK_IMPACT,
    r"\b(impact|affect(?:ing|ed|s)?|effect on|how bad|how many (?:users|customers|people|agents|drivers)|what does that mean for|what's the damage|business)\b"
);
re!(
    ASK_WORKAROUND,
    r"\b(workaround|work around|fallback|fall back|way around|anything that (?:gets|works)|retry path|in the meantime|for now|have you tried|what many \w+ do|some customers|other formats|without the)\b"
);
re!(ASK_STEPS, r"\b(steps|reproduce|repro|walk me through|what exactly do you do|how do you trigger|what do you do)\b");
re!(ASK_EXPECTED, r"\b(what should happen|what did you expect|what would you expect|expecting|expected|what were you expecting|supposed to|should happen)\b");
re!(ASK_ACTUAL, r"\b(what happens instead|what happens|what do you see|what are you seeing|what does it do)\b");
re!(ASK_START, r"\b(when did (?:it|this|that|the \w+) (?:start|begin)|since when|what time did|when did you first|when did you notice|started when)\b");
re!(
    ASK_ERROR,
    r"\b(what error|which error|error message|what does (?:the|it) (?:error|message) say|what's the error|what do you get|what response|status code)\b"
);
re!(
    ASK_OWNER,
    r"\b(who owns|owner|point of contact|incident commander|who's leading|who is leading|who should we|who's running|who is running|who's the contact|lead on your side)\b"
);
re!(ASK_ACCOUNT, r"\b(account (?:id|number|name)|workspace (?:id|name)|org(?:anization)? id|customer (?:id|number))\b");

re!(
    IMPACT,
    r"\b(?:customers?|users?|members?|patients?|drivers?|dispatchers?|agents?|staff|callers?|nobody|no one|clients?|homeowners?|engineers?|guests?|riders?|shoppers?|store|stores|team|teams|everyone|everybody|people)\b[^.?!\n]{0,60}?\b(?:can't|cannot|can not|aren't|unable|not able|couldn't|won't|don't get|aren't getting|are blind|is blind|are stuck|is stuck|are blocked|blocked|locked out|missing|losing|sitting idle|waiting)\b|\b(?:losing (?:money|revenue|sales|bookings|orders|customers|business)|lost (?:sales|revenue|bookings|orders)|costing us|stalled|can't (?:check out|checkout|log in|login|pay|process|ship|book|take)|nobody can|no one can|not one (?:call|order|payment)|hurting|getting hammered|business impact|means we can't|miss the|missing the|can't go live|blocking (?:our|the)|revenue)\b"
);
re!(
    NO_WORKAROUND,
    r"\b(no workaround|not really a workaround|no real workaround|isn't really a workaround|isn't a workaround|there's no workaround|there is no workaround|don't have a workaround|do not have a workaround|haven't found a workaround|no way around|nothing works|no fallback|there's no fallback|we only have you|nothing we can do|no alternative)\b"
);
re!(
    WORKAROUND,
    r"\b(workaround|work around it|for now|in the meantime|meanwhile we|as a stopgap|temporarily|we(?:'ve| have)? (?:been|started|resorted to)|we'd been|manually|falling back|fall back|fell back|switched to|rolled back|we're using|they're using|split (?:it|them)|we throttled|we've throttled|we just|we've been|ended up|instead we|we can live with|we could|we'll (?:just )?(?:use|set up|restrict|split|export|text|upsample|switch|do|send|run)|we will (?:just )?(?:use|set up|restrict|split|export|text|upsample|switch|do|send|run)|works fine|still works|still loads)\b"
);
re!(
    STEPS,
    r"\b(steps|to reproduce|repro|when i (?:click|press|open|select|go|type|set|try|upload|hit|export|search|change|enter)|if i (?:click|press|open|select|go|type|set|search|upload|export|enter)|if you (?:click|open|go|set|type|select|search)|every time (?:i|we|you)|whenever (?:i|we|you)|first (?:i|we|you)|then (?:i|we) (?:click|press|open|select|go|hit)|after (?:we|i) (?:rotate|click|upgrade|change|set|enable|disable|turn)|go to|click (?:on )?\w+|set the|type (?:it|in)|pause)\b"
);
re!(
    EXPECTED,
    r"\b(should|supposed to|expect(?:ed|ing|s)?|i'd expect|we'd expect|used to|normally|it's meant to|is meant to|ought to|would expect|instead of|i'd like (?:it )?to|we need \d)\b"
);
re!(
    ACTUAL,
    r"\b(instead|but (?:it|they|we|i) (?:just|only|always|keeps?|get|gets|got|shows?|says?|returns?)|but it|it just|it keeps|keeps (?:\w+ing)|what happens is|i get|we get|i see|we see|it shows|shows|returns|comes back|is cut|cutting off|stuck|greyed out|grayed out|blank|empty|missing|no results|goes straight|drops|rejects|rejecting|isn't in|is not in|only)\b"
);
re!(
    START_CUE,
    r"\b(since|started|starting|began|begun|beginning|first (?:noticed|saw|failure|error|ticket|alert)|kicked off|fired|went down|broke|stopped|from about|from around|as of|paged me|first fired|began at|started at)\b"
);
re!(
    DEADLINE_CUE,
    r"\b(by|before|deadline|due|no later than|at the latest|latest|needs? to be (?:done|ready|sorted|fixed)|need it|needs it|need them|has to be)\b"
);
re!(
    LOGS_POS,
    r"\b(logs?|log files?|traces?|trace ids?|request ids?|request id|stack ?traces?|har files?|delivery log|error log|call log|audit log|datadog|splunk|sentry|grafana|kibana|cloudwatch|x-request-id|correlation id)\b"
);
re!(
    LOGS_VERB,
    r"\b(check(?:ed)?|look(?:ed)? at|went through|saw|see|seeing|shows?|showed|says|have|got|grab(?:bed)?|pull(?:ed)?|send|share|attach(?:ed)?|in the|our|the|from|captured|found)\b"
);
re!(
    AFFECTED,
    r"\b(?:about |around |roughly |approximately |nearly |almost |over |more than |some |like |all |all of our |at least |maybe )?(\d[\d,]*(?:\.\d+)?)(k| thousand)?\s+(?:of (?:our|my|the) )?(?:[a-z-]+ ){0,2}([a-z]+s|staff|people|personnel|crew)\b"
);
re!(
    AFFECT_CUE,
    r"\b(affect|affects|affected|affecting|impact|impacted|can't|cannot|unable|locked|blocked|stuck|down|failing|fail|errors?|broken|can not|all|every|none of|no one|nobody|not|waiting|idle|invite|add|sitting|sat|on their hands|so far|new starters|new hires)\b"
);

re!(
    ENV,
    r"\b(production|prod|live environment|live site|live system|in live|on live|staging|stage environment|pre-prod|preprod|uat|sandbox|development|dev environment|dev|test environment|testing environment|qa environment)\b"
);
re!(
    PLAN,
    r"\b(free|starter|pro|professional|business|enterprise|premium|team|growth|basic)(?: plan| tier| account| subscription| contract| customer| license|$)"
);
re!(
    PLAN_UPGRADE,
    r"\b(upgrad(?:e|ing) to|switch(?:ing)? to|move to|moving to|downgrad(?:e|ing) to|considering|thinking about|price of|pricing for|cost of|trial of|evaluating|for the)\s+(?:the\s+)?$"
);
re!(
    URGENT,
    r"\b(urgent|urgently|asap|as soon as possible|emergency|critical|right now|immediately|right away|top priority|p1|sev ?1|unacceptable|can't wait|within the hour|every minute|in half an hour|within (?:half )?an hour|not sixteen)\b"
);
re!(HIGH, r"\b(high priority|pretty urgent|quite urgent|fairly urgent|important|soon|today if possible|by today|this is hurting)\b");
re!(
    LOW,
    r"\b(not urgent|isn't urgent|no rush|no hurry|low priority|whenever you (?:can|get a chance)|not a big deal|not in a hurry|not time sensitive|not time-sensitive|not pressing|no urgency|not that urgent)\b"
);
re!(MEDIUM, r"\b(medium priority|moderately urgent|somewhat urgent|this week|when you can|fairly soon|sometime this week)\b");

re!(MONITOR, r"(?i)\bmonitor\s+(?:called\s+|named\s+|is\s+)?['\x22“]?([A-Za-z0-9][\w.>-]*[-_][\w.>-]+|[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+)");
re!(ALERT_Q, r#"(?i)\b(?:alert|alarm|monitor)\s+(?:is\s+|was\s+|called\s+|named\s+|titled\s+)?['"“‘]([^'"”’]{2,60})['"”’]"#);
re!(Q_ALERT, r#"['"“‘]([^'"”’]{2,60})['"”’]\s+(?:alert|alarm|monitor)\b"#);
re!(ALERT_NAME, r"\b(?i:alert|alarm)\s+(?i:called\s+|named\s+|is\s+)?([A-Za-z0-9][\w.>-]*[-_][\w.>-]+|[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+)");
re!(NAMED_ALERT, r"\b([A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+|[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+)\s+(monitor|alert|alarm)\b");
re!(
    OWNER,
    r"(?:(?i:owned by|owner is|handled by|managed by|point of contact is|incident commander is|contact is|run by|led by|it's|so it's)\s+)([A-Z][\p{L}'-]+(?:\s+[A-Z][\p{L}'-]+){0,2})"
);
re!(
    OWNER2,
    r"\b([A-Z][\p{L}'-]+\s+[A-Z][\p{L}'-]+)\s+(?:is|will be)\s+(?:our|the)\s+(?i:incident commander|owner|on-call|point of contact|lead|tech lead|engineering lead|contact)"
);
re!(OWNER_TEAM, r"(?i)\b(?:owned by|owner is|belongs to|handled by)\s+(?:the\s+|our\s+)?([\w-]+(?:\s[\w-]+)?\s+team)\b");
re!(ESC_WORD, r"\b(pagerduty|pager duty|opsgenie|war room|bridge call|incident bridge|slack connect)\b");
re!(
    APPROVAL_YES,
    r"\b(needs? (?:an? )?(?:approval|sign[- ]off|to be approved|supervisor|manager)|requires? (?:an? )?(?:approval|sign[- ]off|signature)|has to (?:approve|sign off|be approved)|must (?:approve|be approved|sign)|approv(?:e|al) from|sign[- ]off from|signed (?:by|form)|authori[sz]ed signatory|with (?:my|our) (?:manager|cfo|finance|boss)|get (?:it )?approved|(?:manager|supervisor|cfo|director|finance(?: team)?|legal) (?:needs to|has to|must|will need to) (?:approve|sign)|pending approval|awaiting approval)\b"
);
re!(
    APPROVAL_NO,
    r"\b(no approval (?:is )?(?:needed|required)|(?:i|we) can approve (?:it |this |that |this one )?(?:myself|ourselves|directly|right now)|doesn't need (?:any )?approval|don't need (?:any )?approval|without approval|no sign[- ]off needed)\b"
);
re!(
    REQUEST,
    r"\b((?:i|we) (?:just |really |still |urgently |only )?(?:need|want|would like|'d like)|i'd like|we'd like|can you|could you|can i get|could i get|please|i'm calling to|i am calling to|calling to|i'm looking to|we're looking to|help me|i'm hoping|we're hoping|get (?:it|this|them) (?:fixed|changed|updated|reissued|refunded|corrected)|to have)\b"
);
re!(
    MISSING,
    r"\b(don't have (?:the|my|our|it|that)|do not have (?:the|my|our)|need (?:the|your|a|an) [\w ]{2,30} (?:before|to|first|in order)|we(?:'ll| will) need (?:the|your|a|an|to know)|i(?:'ll| will) need (?:the|your|a|an)|need to know|once (?:you|we) (?:send|have|get)|missing|without (?:the|a|an)|can't find (?:the|my)|haven't got (?:the|my))\b"
);
re!(
    BLOCKER,
    r"\b(blocked (?:by|on)|blocking|waiting (?:on|for)|stuck (?:in|on|at)|until|can't (?:\w+ )?(?:until|because)|because|on (?:vacation|leave|holiday)|travel(?:l)?ing|out of (?:the )?office|held up|the problem is|the issue is|hold(?:ing)? (?:it|this) up)\b"
);
re!(
    ROUTE,
    r"\b(?:route|routing|transfer|pass|forward|escalat\w*|send|hand|book|assign|flag|have|get)\b[^.?!\n]{0,40}?\b(?:to|with|for)?\s*(?:our|the|a|an)?\s*((?:[\w-]+\s){0,2}(?:team|department|desk|specialist|engineer|colleague|manager|folks|rep|representative)|billing|sales|support|finance|legal|[A-Z][a-z]+)\b"
);

re!(
    PROMISE,
    r"\b(i'll|i will|ill|we'll|we will|i'm going to|im going to|i am going to|we're going to|let me|someone (?:from [\w ]+ )?will|(?:our|the) [\w-]+(?: [\w-]+)? (?:team )?will|you'll (?:get|receive|hear)|you will (?:get|receive|hear)|i can (?:send|email|have|get|book)|i've (?:opened|created|logged|filed|escalated|flagged|linked|booked|scheduled|sent)|i have (?:opened|created|logged|escalated))\b"
);

fn lower_of(doc: &Doc, l: Loc) -> (usize, usize) {
    (doc.lower_byte(l.turn, l.start), doc.lower_byte(l.turn, l.end))
}

pub fn extract(ctx: &Ctx, out: &mut FieldMap, person: &super::people::Person) {
    let doc = ctx.doc;
    if let Some((n, l, c)) = &person.name {
        out.insert("caller_name", found(json!(n), *c, *l));
    }
    if let Some((n, l, c)) = &person.company {
        out.insert("customer", found(json!(n), *c, *l));
    }
    // Email and phone: the caller's (never an address the agent gave and the caller did not confirm).
    if let Some((m, c)) = best_of(ctx, Kind::Email, |_| true) {
        out.insert("caller_email", found(json!(m.value.to_lowercase()), c, m.loc));
    }
    if let Some((m, c)) = best_of(ctx, Kind::Phone, |m| !phone_rejected(doc, m)) {
        out.insert("caller_phone", found(json!(m.value), c, m.loc));
    }
    if let Some((m, c)) = best_of(ctx, Kind::Region, |_| true) {
        let c = if m.context == "named" { c * 0.7 } else { c };
        out.insert("region", found(json!(m.value), c, m.loc));
    }
    if let Some((m, c)) = best_of(ctx, Kind::Endpoint, |_| true) {
        out.insert("endpoint", found(json!(m.value), c, m.loc));
    } else if let Some((m, c)) = best_of(ctx, Kind::Url, |m| m.value.contains('/') && !m.value.contains("status") && m.value.contains("://")) {
        out.insert("endpoint", found(json!(m.value), c * 0.8, m.loc));
    }
    if let Some((m, c)) = best_of(ctx, Kind::Url, |m| m.value.contains("status")) {
        out.insert("status_page_link", found(json!(m.value), c, m.loc));
    } else if let Some(m) = ctx.mentions.iter().find(|m| m.kind == Kind::Url && m.value.contains("status") && !doc.is_caller(m.loc.turn)) {
        out.insert("status_page_link", found(json!(m.value), 0.55, m.loc));
    }
    if let Some(f) = error_message(ctx) {
        out.insert("error_message", f);
    }
    // Deploys: the caller's words, or the vendor's own release the agent names.
    let deploy = best_of(ctx, Kind::Deploy, |_| true)
        .or_else(|| ctx.mentions.iter().find(|m| m.kind == Kind::Deploy && !doc.is_caller(m.loc.turn) && !negated(doc, m.lstart, m.lend)).map(|m| (m, 0.55)));
    if let Some((m, c)) = deploy {
        out.insert("deploy", found(json!(m.value), c, m.loc));
    }
    if let Some((m, c)) = best_of(ctx, Kind::Repo, |_| true) {
        out.insert("repo", found(json!(m.value), c, m.loc));
    }
    let chan = best_of(ctx, Kind::Channel, |_| true).or_else(|| ctx.mentions.iter().find(|m| m.kind == Kind::Channel).map(|m| (m, 0.55)));
    if let Some((m, c)) = chan {
        out.insert("escalation_channel", found(json!(m.value), c, m.loc));
    } else if let Some(m) = ESC_WORD.find_iter(&doc.lower).find(|m| doc.is_caller(doc.turn_of_lower(m.start())))
        && let Some(l) = doc.loc_lower(m.start(), m.end())
        && !negated(doc, m.start(), m.end())
    {
        out.insert("escalation_channel", found(json!(m.as_str().replace(' ', "")), 0.6, l));
    }
    ids(ctx, out);
    // Enumerations.
    if let Some(f) = environment(ctx) {
        out.insert("environment", f);
    }
    if let Some(f) = plan(ctx) {
        out.insert("plan", f);
    }
    if let Some(f) = urgency(ctx) {
        out.insert("urgency", f);
    }
    // Numbers.
    if let Some(f) = affected_users(ctx) {
        out.insert("affected_users", f);
    }
    // Times.
    if let Some(f) = start_time(ctx) {
        out.insert("start_time", f);
    }
    if let Some(f) = deadline(ctx) {
        out.insert("deadline", f);
    }
    // Booleans.
    if let Some(f) = logs_referenced(ctx) {
        out.insert("logs_referenced", f);
    }
    if let Some(m) = APPROVAL_NO.find(&doc.lower)
        && let Some(l) = doc.loc_lower(m.start(), m.end())
    {
        out.insert("approval_required", found(json!(false), 0.7, l));
    } else if let Some(m) = APPROVAL_YES.find_iter(&doc.lower).find(|m| !negated(doc, m.start(), m.end()))
        && let Some(l) = doc.loc_lower(m.start(), m.end())
    {
        out.insert("approval_required", found(json!(true), 0.7, l));
    }
    // Names of things.
    monitor_alert(ctx, out);
    owner(ctx, out);
    // Free text.
    free_text(ctx, out);
}

fn phone_rejected(doc: &Doc, m: &Mention) -> bool {
    // An agent read-back followed by "no" or another number.
    if !doc.is_caller(m.loc.turn) {
        let next = m.loc.turn + 1;
        return next >= doc.turns.len() || negative_answer(doc.turn_lower(next));
    }
    false
}

fn error_message(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    let mut q_turns: Vec<usize> = answers(doc, &ASK_ERROR).collect();
    q_turns.sort();
    // The first caller sentence holding error items, its items joined.
    let mut by_sentence: BTreeMap<usize, Vec<&Mention>> = BTreeMap::new();
    for m in ctx.mentions.iter().filter(|m| matches!(m.kind, Kind::Status | Kind::ErrorCode | Kind::ErrorText)) {
        if !doc.is_caller(m.loc.turn) {
            continue;
        }
        if m.kind == Kind::ErrorText && m.context == "quoted" {
            // A quote is an error message only with an error context around it.
            let s = doc.sentence_at(m.lstart).map(|s| doc.sentence_text(s)).unwrap_or("");
            static ERRCTX: LazyLock<Regex> = LazyLock::new(|| {
                Regex::new(r"\b(error|errors|says|said|saying|message|fails?|failing|failed|throws?|returns?|rejected|rejects?|get|gets|getting|got|shows?|showing|with|popup|pop-up|banner|reads|refusing|denied|invalid|warning)\b").expect("errctx")
            });
            if !ERRCTX.is_match(s) {
                continue;
            }
        }
        let Some(si) = doc.sentence_index_at(m.lstart) else { continue };
        if claim(doc, m.loc.turn, m.lstart, m.lend).is_none() {
            continue;
        }
        by_sentence.entry(si).or_default().push(m);
    }
    let (_, items) = by_sentence.iter().next()?;
    let mut parts: Vec<String> = vec![];
    let mut spans: Vec<Loc> = vec![];
    // Quoted text and codes first, then statuses, then phrases not inside a quote.
    let mut ordered: Vec<&&Mention> = items.iter().collect();
    ordered.sort_by_key(|m| match (m.kind, m.context) {
        (Kind::ErrorText, "quoted") => 0,
        (Kind::ErrorCode, _) => 1,
        (Kind::Status, _) => 2,
        _ => 3,
    });
    for m in ordered {
        let v = m.value.trim().to_string();
        let lv = v.to_lowercase();
        if parts.iter().any(|p| p.to_lowercase().contains(&lv)) {
            continue;
        }
        if parts.len() >= 3 {
            break;
        }
        parts.push(v);
        spans.push(m.loc);
    }
    let first = *spans.first()?;
    let conf = claim(doc, first.turn, doc.lower_byte(first.turn, first.start), doc.lower_byte(first.turn, first.end)).unwrap_or(0.6);
    let loc = Loc {
        turn: first.turn,
        start: spans.iter().filter(|l| l.turn == first.turn).map(|l| l.start).min().unwrap_or(0),
        end: spans.iter().filter(|l| l.turn == first.turn).map(|l| l.end).max().unwrap_or(0),
    };
    let _ = q_turns;
    Some(found(json!(parts.join(" ")), conf.min(0.9), loc))
}

fn compact_id(doc: &Doc, m: &Mention) -> String {
    let orig = doc.text(m.loc);
    if !orig.is_empty() && orig.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') { orig.to_string() } else { m.value.to_uppercase() }
}

fn ids(ctx: &Ctx, out: &mut FieldMap) {
    let doc = ctx.doc;
    let mut ticket: Option<(String, f64, Loc)> = None;
    let mut object: Option<(String, f64, Loc)> = None;
    let mut account: Option<(String, f64, Loc)> = None;
    for m in ctx.mentions.iter().filter(|m| m.kind == Kind::Id) {
        let conf = match claim(doc, m.loc.turn, m.lstart, m.lend) {
            Some(c) => c,
            // The agent names its own ticket or record ids as facts.
            None if !doc.is_caller(m.loc.turn) && matches!(m.context, "ticket" | "object" | "case") => 0.55,
            None => continue,
        };
        let v = compact_id(doc, m);
        // A caller-side value beats an agent-side one.
        let slot = match m.context {
            "ticket" => &mut ticket,
            "case" => {
                if ticket.is_none() {
                    ticket = Some((v.clone(), conf * 0.8, m.loc));
                }
                &mut object
            }
            "object" => &mut object,
            "account" => &mut account,
            _ => continue,
        };
        if slot.as_ref().is_none_or(|(_, c, _)| conf > *c + 0.2) {
            *slot = Some((v, conf, m.loc));
        }
    }
    // An answer to "what's your account id?".
    if account.is_none() {
        for t in answers(doc, &ASK_ACCOUNT) {
            let text = &doc.src[t].text;
            let tok = text
                .split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '_'))
                .find(|w| w.len() >= 3 && (w.chars().any(|c| c.is_ascii_digit()) || w.contains('-') || w.contains('_')) && !w.contains('@'));
            if let Some(tok) = tok
                && let Some(pos) = text.find(tok)
            {
                let cs = text[..pos].chars().count();
                account = Some((tok.to_string(), 0.7, Loc { turn: t, start: cs, end: cs + tok.chars().count() }));
                break;
            }
        }
    }
    if let Some((v, c, l)) = ticket {
        out.insert("support_ticket", found(json!(v), c, l));
    }
    if let Some((v, c, l)) = object {
        out.insert("related_object_id", found(json!(v), c, l));
    }
    if let Some((v, c, l)) = account {
        out.insert("account", found(json!(v), c, l));
    }
}

fn environment(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    let mut scores: [(f64, Option<Loc>, f64); 3] = [(0.0, None, 0.0), (0.0, None, 0.0), (0.0, None, 0.0)];
    for m in ENV.find_iter(&doc.lower) {
        let t = doc.turn_of_lower(m.start());
        let Some(conf) = claim(doc, t, m.start(), m.end()) else { continue };
        let w = m.as_str();
        let i = match w {
            "production" | "prod" | "live environment" | "live site" | "live system" | "in live" | "on live" => 0,
            "staging" | "stage environment" | "pre-prod" | "preprod" | "uat" => 1,
            _ => 2,
        };
        // "dev" / "development" mean an environment only with an environment word or preposition.
        if i == 2 && matches!(w, "dev" | "development") {
            let around =
                &doc.lower[lex::floor_boundary(&doc.lower, m.start().saturating_sub(12))..lex::ceil_boundary(&doc.lower, (m.end() + 14).min(doc.lower.len()))];
            let env_ctx = [
                "environment",
                " in dev",
                " on dev",
                "workspace",
                "instance",
                "server",
                "local",
                "only dev",
                "is dev",
                "just dev",
                "still dev",
                "in development",
                "only development",
                "is development",
            ];
            if !env_ctx.iter().any(|w| around.contains(w)) {
                continue;
            }
        }
        // An answer to "which environment?" counts most; an agent's confirmed read-back least.
        let answer = doc.is_caller(t) && t > 0 && !doc.is_caller(t - 1) && ENV.is_match(doc.turn_lower(t - 1)) && m.start() < doc.turns[t].lower.0 + 40;
        let weight = if !doc.is_caller(t) {
            0.5
        } else if answer {
            1.6
        } else {
            1.0
        };
        let s = &mut scores[i];
        s.0 += weight;
        if s.1.is_none() {
            s.1 = doc.loc_lower(m.start(), m.end());
            s.2 = conf;
        }
    }
    let names = ["production", "staging", "development"];
    let (i, best) = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.1.is_some())
        .max_by(|a, b| a.1.0.partial_cmp(&b.1.0).unwrap_or(std::cmp::Ordering::Equal).then(b.0.cmp(&a.0)))?;
    Some(found(json!(names[i]), best.2 * if scores.iter().filter(|s| s.1.is_some()).count() > 1 { 0.8 } else { 1.0 }, best.1?))
}

fn plan(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    for m in PLAN.captures_iter(&doc.lower) {
        let (Some(a), Some(p)) = (m.get(0), m.get(1)) else { continue };
        let t = doc.turn_of_lower(a.start());
        let Some(conf) = claim(doc, t, a.start(), a.end()) else { continue };
        let before = &doc.lower[lex::floor_boundary(&doc.lower, a.start().saturating_sub(40))..a.start()];
        if PLAN_UPGRADE.is_match(before) && !before.contains("upgraded to") && !before.contains("moved to") && !before.contains("switched to last") {
            continue;
        }
        let v = match p.as_str() {
            "free" => "free",
            "starter" | "basic" => "starter",
            "pro" | "professional" => "pro",
            "business" | "team" | "growth" => "business",
            "enterprise" | "premium" => "enterprise",
            _ => continue,
        };
        if matches!(p.as_str(), "team" | "growth" | "basic" | "premium" | "business") && !a.as_str().contains("plan") && !a.as_str().contains("tier") {
            continue;
        }
        let l = doc.loc_lower(p.start(), p.end())?;
        return Some(found(json!(v), conf, l));
    }
    // "upgraded to enterprise": the plan they are now on.
    static UPG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(?:upgraded to|moved to|switched to|we're on|we are on|on the|paying for|we pay for|we're paying|we are paying|we pay|even on|we have|we're an?|we are an?)\s+(?:the\s+|an?\s+)?(free|starter|pro|business|enterprise)\b").expect("upg")
    });
    for c in UPG.captures_iter(&doc.lower) {
        let Some(p) = c.get(1) else { continue };
        let t = doc.turn_of_lower(p.start());
        let Some(conf) = claim(doc, t, p.start(), p.end()) else { continue };
        return Some(found(json!(p.as_str()), conf * 0.9, doc.loc_lower(p.start(), p.end())?));
    }
    None
}

fn urgency(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    let caller_hit = |re: &Regex, neg_ok: bool| {
        re.find_iter(&doc.lower).find(|m| {
            let t = doc.turn_of_lower(m.start());
            doc.is_caller(t) && (neg_ok || !negated(doc, m.start(), m.end()))
        })
    };
    if let Some(m) = caller_hit(&LOW, true) {
        return Some(found(json!("low"), 0.8, doc.loc_lower(m.start(), m.end())?));
    }
    if let Some(m) = caller_hit(&URGENT, false) {
        return Some(found(json!("urgent"), 0.75, doc.loc_lower(m.start(), m.end())?));
    }
    if let Some(m) = caller_hit(&HIGH, false) {
        return Some(found(json!("high"), 0.6, doc.loc_lower(m.start(), m.end())?));
    }
    if let Some(m) = caller_hit(&MEDIUM, false) {
        return Some(found(json!("medium"), 0.6, doc.loc_lower(m.start(), m.end())?));
    }
    None
}

fn affected_users(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    for c in AFFECTED.captures_iter(&doc.norm) {
        let (Some(a), Some(num)) = (c.get(0), c.get(1)) else { continue };
        let Some(loc) = doc.loc_norm(a.start(), a.end()) else { continue };
        if !doc.is_caller(loc.turn) {
            continue;
        }
        let (ls, le) = lower_of(doc, loc);
        let Some(conf) = claim(doc, loc.turn, ls, le) else { continue };
        let mut v: f64 = num.as_str().replace(',', "").parse().unwrap_or(-1.0);
        if c.get(2).is_some() {
            v *= 1000.0;
        }
        if !(1.0..=10_000_000.0).contains(&v) {
            continue;
        }
        let noun = c.get(3).map(|m| m.as_str()).unwrap_or("");
        if NOT_PEOPLE.contains(&noun) || lex::common_word(noun) || noun.len() < 4 {
            continue;
        }
        let sentence = doc.sentence_at(ls).map(|s| doc.sentence_text(s)).unwrap_or("");
        if !(AFFECT_CUE.is_match(sentence) || loc.turn > 0 && ASK_IMPACT.is_match(doc.turn_lower(loc.turn - 1))) {
            continue;
        }
        // Not a limit or a plan size ("up to 25 seats", "for about 200 agents" when evaluating).
        if sentence.contains("up to")
            || sentence.contains("limit") && !sentence.contains("reached")
            || sentence.contains("evaluating")
            || sentence.contains("pricing")
        {
            continue;
        }
        let n = if v.fract() == 0.0 { json!(v as i64) } else { json!(v) };
        return Some(found(n, conf * 0.9, loc));
    }
    None
}

const NOT_PEOPLE: &[&str] = &[
    "seconds",
    "minutes",
    "hours",
    "days",
    "weeks",
    "months",
    "years",
    "requests",
    "calls",
    "rows",
    "records",
    "dollars",
    "euros",
    "pounds",
    "times",
    "percent",
    "errors",
    "messages",
    "files",
    "attempts",
    "bytes",
    "postcodes",
    "orders",
    "lookups",
    "jobs",
    "builds",
    "tickets",
    "events",
    "webhooks",
    "numbers",
    "digits",
    "recordings",
    "transcripts",
    "minutes",
    "kbps",
    "ms",
    "headsets",
    "boxes",
    "trucks",
    "lines",
    "photos",
    "emails",
    "invoices",
    "items",
    "things",
    "bookings",
    "slots",
    "sends",
    "deliveries",
    "retries",
    "pages",
    "reports",
    "points",
    "results",
    "codes",
    "questions",
    "calls",
    "cents",
    "gigabytes",
    "megabytes",
    "degrees",
    "channels",
    "years",
    "languages",
    "tabs",
    "steps",
    "bugs",
    "issues",
    "problems",
    "units",
    "products",
    "apps",
    "keys",
    "secrets",
    "contracts",
    "accounts",
    "plans",
];

fn start_time(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    let ask: Vec<usize> = answers(doc, &ASK_START).collect();
    for s in &doc.sentences {
        if !doc.is_caller(s.turn) {
            continue;
        }
        let text = doc.sentence_text(s);
        let cue = START_CUE.is_match(text) || ask.contains(&s.turn);
        if !cue {
            continue;
        }
        // Resolve in the normalised view of the sentence.
        let Some(l) = doc.loc_lower(s.start, s.end) else { continue };
        let (ns, ne) = norm_range(doc, l);
        let ntext = &doc.norm[ns..ne];
        if ntext.is_empty() {
            continue;
        }
        let h = s.hedge;
        if h == 2 {
            continue;
        }
        let all = time::resolve_all(ntext, ctx.call_time, ctx.tz, Mode::Past);
        // Prefer a time right after a start cue.
        let r = all.iter().find(|r| r.precise && !ntext[..r.start].ends_with("in ")).or_else(|| all.first());
        if let Some(r) = r {
            // Not a future time (a deadline said in the same breath).
            if r.rfc3339.parse::<jiff::Timestamp>().is_ok_and(|t| t > ctx.call_time) {
                continue;
            }
            let loc = doc.loc_norm(ns + r.start, ns + r.end).unwrap_or(l);
            let conf = if h == 1 {
                0.55
            } else if r.precise {
                0.85
            } else {
                0.6
            };
            return Some(found(json!(r.rfc3339), conf, loc));
        }
    }
    None
}

/// The `norm` byte range covering an original location.
pub fn norm_range(doc: &Doc, l: Loc) -> (usize, usize) {
    doc.norm_range(l)
}

fn deadline(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    // The caller's deadline first, then a promised "by ..." from the agent.
    for pass in 0..2 {
        for s in &doc.sentences {
            let caller = doc.is_caller(s.turn);
            if (pass == 0) != caller {
                continue;
            }
            let text = doc.sentence_text(s);
            if !DEADLINE_CUE.is_match(text) {
                continue;
            }
            if pass == 1 && !PROMISE.is_match(text) {
                continue;
            }
            if caller && s.hedge == 2 {
                continue;
            }
            let Some(l) = doc.loc_lower(s.start, s.end) else { continue };
            // "by then": the date is in the sentence before.
            let then = text.contains("by then") || text.contains("before then") || text.contains("until then");
            let first_in_turn = doc.sentences.iter().position(|x| x.start == s.start).unwrap_or(0);
            let l = if then && first_in_turn > 0 && doc.sentences[first_in_turn - 1].turn == s.turn {
                doc.loc_lower(doc.sentences[first_in_turn - 1].start, s.end).unwrap_or(l)
            } else {
                l
            };
            let (ns, ne) = norm_range(doc, l);
            let ntext = &doc.norm[ns..ne];
            let all = time::resolve_all_with(ntext, ctx.call_time, ctx.tz, Mode::Deadline, if then { 140 } else { 40 });
            // A time right after a deadline word ("by friday", "before the 31st", "12 noon at the latest").
            let cands: Vec<&time::Resolved> = all
                .iter()
                .filter(|r| {
                    // The cue may sit inside the expression ("by friday").
                    let inner = &ntext[r.start..r.end];
                    let lead = ["by ", "before ", "until ", "due "].iter().find(|w| inner.starts_with(**w)).map(|w| w.len()).unwrap_or(0);
                    let pre_owned = format!("{}{}", &ntext[..r.start], &inner[..lead]);
                    let pre = pre_owned.as_str();
                    let post = &ntext[r.end..];
                    pre.ends_with("by ")
                        || pre.ends_with("before ")
                        || pre.ends_with("by the ")
                        || pre.ends_with("until ")
                        || post.starts_with(" at the latest")
                        || post.starts_with(" latest")
                        || pre.ends_with("deadline is ")
                        || pre.ends_with("due ")
                        || text.contains("deadline")
                        || text.contains("at the latest")
                        || (pre.ends_with(", ") && text.contains(" by "))
                })
                .collect();
            let pick = cands.iter().rev().find(|r| r.precise).or(cands.last()).copied();
            if let Some(r) = pick.or_else(|| if text.contains("deadline") || text.contains("at the latest") || then { all.last() } else { None }) {
                let loc = doc.loc_norm(ns + r.start, ns + r.end).unwrap_or(l);
                return Some(found(json!(r.rfc3339), if caller { 0.8 } else { 0.6 }, loc));
            }
        }
    }
    None
}

fn logs_referenced(ctx: &Ctx) -> Option<Found> {
    let doc = ctx.doc;
    static NOLOGS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(haven't (?:checked|looked at|pulled) (?:the |our |any )?logs|didn't (?:check|pull|look at) (?:the |any |our )?logs|don't have (?:any |access to (?:the )?)?logs|no access to (?:the )?logs|no logs)\b").expect("nologs")
    });
    for m in LOGS_POS.find_iter(&doc.lower) {
        let t = doc.turn_of_lower(m.start());
        if !doc.is_caller(t) {
            continue;
        }
        let s = doc.sentence_at(m.start())?;
        let text = doc.sentence_text(s);
        // "I didn't pull any logs": nothing to ground a claim on.
        if NOLOGS.is_match(text) || negated(doc, m.start(), m.end()) {
            continue;
        }
        if s.question && !text.contains("i have") && !text.contains("we have") {
            continue;
        }
        if !LOGS_VERB.is_match(text) {
            continue;
        }
        return Some(found(json!(true), 0.75, doc.loc_lower(m.start(), m.end())?));
    }
    None
}

fn monitor_alert(ctx: &Ctx, out: &mut FieldMap) {
    let doc = ctx.doc;
    for (ti, t) in doc.src.iter().enumerate() {
        if !doc.is_caller(ti) || t.text.len() > 50_000 {
            continue;
        }
        let loc_of = |m: regex::Match| {
            let cs = t.text[..m.start()].chars().count();
            Loc { turn: ti, start: cs, end: cs + m.as_str().chars().count() }
        };
        if !out.contains_key("monitor")
            && let Some(c) = MONITOR.captures(&t.text)
            && let Some(m) = c.get(1)
        {
            out.insert("monitor", found(json!(m.as_str()), 0.8, loc_of(m)));
        }
        if !out.contains_key("alert") {
            let m = ALERT_Q
                .captures(&t.text)
                .and_then(|c| c.get(1))
                .or_else(|| Q_ALERT.captures(&t.text).and_then(|c| c.get(1)))
                .or_else(|| ALERT_NAME.captures(&t.text).and_then(|c| c.get(1)));
            if let Some(m) = m {
                out.insert("alert", found(json!(m.as_str()), 0.8, loc_of(m)));
            }
        }
        if let Some(c) = NAMED_ALERT.captures(&t.text)
            && let (Some(m), Some(k)) = (c.get(1), c.get(2))
        {
            let key = if k.as_str() == "monitor" { "monitor" } else { "alert" };
            if !out.contains_key(key) {
                out.insert(key, found(json!(m.as_str()), 0.7, loc_of(m)));
            }
        }
    }
}

fn owner(ctx: &Ctx, out: &mut FieldMap) {
    let doc = ctx.doc;
    let asked: Vec<usize> = answers(doc, &ASK_OWNER).collect();
    for (ti, t) in doc.src.iter().enumerate() {
        if !doc.is_caller(ti) || t.text.len() > 50_000 {
            continue;
        }
        let loc_of = |m: regex::Match| {
            let cs = t.text[..m.start()].chars().count();
            Loc { turn: ti, start: cs, end: cs + m.as_str().chars().count() }
        };
        let pats: [&Regex; 3] = [&OWNER2, &OWNER_TEAM, &OWNER];
        for (i, re) in pats.iter().enumerate() {
            // "it's X" only counts as an owner in an answer to "who owns it?".
            let lower = t.text.to_lowercase();
            if i == 2 && !asked.contains(&ti) && !["owned by", "incident commander", "point of contact", "owner"].iter().any(|w| lower.contains(w)) {
                continue;
            }
            if let Some(m) = re.captures_iter(&t.text).filter_map(|c| c.get(1)).last() {
                let first = m.as_str().split_whitespace().next().unwrap_or("").to_lowercase();
                if lex::common_word(&first) {
                    continue;
                }
                out.insert("owner", found(json!(m.as_str()), 0.7, loc_of(m)));
                return;
            }
        }
    }
}

fn free_text(ctx: &Ctx, out: &mut FieldMap) {
    let doc = ctx.doc;
    // Business impact: an answer to "what's the impact?", else an impact sentence.
    let impact = answers(doc, &ASK_IMPACT)
        .find_map(|t| {
            let s = doc
                .sentences
                .iter()
                .filter(|s| s.turn == t)
                .find(|s| IMPACT.is_match(doc.sentence_text(s)))
                .or_else(|| doc.sentences.iter().find(|s| s.turn == t))?;
            if negative_answer(doc.sentence_text(s)) && doc.turns[t].chars < 40 {
                return None;
            }
            sentence_value(doc, s).map(|(v, l)| (v, l, 0.7))
        })
        .or_else(|| cue_sentence(ctx, &IMPACT, false).map(|(v, l, _)| (v, l, 0.6)));
    if let Some((v, l, c)) = impact {
        out.insert("business_impact", found(json!(v), c, l));
    }
    // Workaround: "none" when the caller says there is none.
    let none = NO_WORKAROUND.find_iter(&doc.lower).find(|m| doc.is_caller(doc.turn_of_lower(m.start())));
    let asked_none = answers(doc, &ASK_WORKAROUND).find(|&t| {
        let l = doc.turn_lower(t);
        negative_answer(l) && !l.contains("but we") && !l.contains("but i")
    });
    let positive = answers(doc, &ASK_WORKAROUND)
        .find_map(|t| {
            doc.sentences
                .iter()
                .find(|s| s.turn == t && WORKAROUND.is_match(doc.sentence_text(s)))
                .and_then(|s| sentence_value(doc, s))
                .map(|(v, l)| (v, l, 0.6))
        })
        .or_else(|| cue_sentence(ctx, &WORKAROUND, false).map(|(v, l, _)| (v, l, 0.55)));
    let none_turn = none.map(|m| doc.turn_of_lower(m.start())).or(asked_none);
    if let (Some((v, l, c)), Some(nt)) = (&positive, none_turn)
        && l.turn > nt
    {
        out.insert("workaround", found(json!(v), *c, *l));
    } else if let Some(m) = none {
        if let Some(l) = doc.loc_lower(m.start(), m.end()) {
            out.insert("workaround", found(json!("none"), 0.8, l));
        }
    } else if let Some(t) = asked_none {
        let (s, e) = doc.turns[t].lower;
        if let Some(l) = doc.loc_lower(s, (s + 3).min(e)) {
            out.insert("workaround", found(json!("none"), 0.6, l));
        }
    } else if let Some((v, l, c)) = positive {
        out.insert("workaround", found(json!(v), c, l));
    }
    for (name, re, ask) in [("steps", &*STEPS, &*ASK_STEPS), ("expected_behavior", &*EXPECTED, &*ASK_EXPECTED), ("actual_behavior", &*ACTUAL, &*ASK_ACTUAL)] {
        let v = answers(doc, ask)
            .find_map(|t| doc.sentences.iter().find(|s| s.turn == t && re.is_match(doc.sentence_text(s))).and_then(|s| sentence_value(doc, s)))
            .map(|(v, l)| (v, l, 0.65))
            .or_else(|| cue_sentence(ctx, re, false).map(|(v, l, _)| (v, l, 0.55)));
        if let Some((v, l, c)) = v {
            out.insert(name, found(json!(v), c, l));
        }
    }
    if let Some((v, l, _)) = cue_sentence(ctx, &REQUEST, false) {
        out.insert("requested_outcome", found(json!(v), 0.6, l));
    }
    if let Some((v, l, _)) = cue_sentence(ctx, &MISSING, true) {
        out.insert("missing_information", found(json!(v), 0.5, l));
    }
    if let Some((v, l, _)) = cue_sentence(ctx, &BLOCKER, false) {
        out.insert("blocker", found(json!(v), 0.5, l));
    }
    // Routing: who the agent hands it to.
    for s in &doc.sentences {
        if doc.is_caller(s.turn) {
            continue;
        }
        let Some((text, loc)) = Some(doc.sentence_orig(s)) else { continue };
        if text.is_empty() || !PROMISE.is_match(doc.sentence_text(s)) {
            continue;
        }
        if let Some(c) = ROUTE.captures(text)
            && let Some(m) = c.get(1)
        {
            let w = m.as_str().trim();
            if lex::common_word(&w.to_lowercase()) || w.is_empty() {
                continue;
            }
            out.insert("routing_note", found(json!(strip_fillers(text)), 0.5, loc));
            break;
        }
    }
}
