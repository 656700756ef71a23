//! Who called: the caller's name, company and the agent's own name (to be ignored).

use std::sync::LazyLock;

use regex::Regex;

use super::doc::{Doc, Loc};
use super::lex::common_word;

#[derive(Debug, Clone)]
struct Word {
    text: String,
    lower: String,
    start: usize,
    end: usize,
    cap: bool,
    /// Punctuation right after the word (',' '.' '!' '?').
    punct_after: Option<char>,
}

fn words(text: &str) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || (c == '&') {
            let s = i;
            if c == '&' {
                i += 1;
            } else {
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || ((chars[i] == '\'' || chars[i] == '’' || chars[i] == '-') && i + 1 < chars.len() && chars[i + 1].is_alphanumeric()))
                {
                    i += 1;
                }
            }
            let t: String = chars[s..i].iter().collect();
            let lower = t.to_lowercase().replace('’', "'");
            let cap = t.chars().next().is_some_and(|c| c.is_uppercase());
            out.push(Word { text: t, lower, start: s, end: i, cap, punct_after: None });
        } else {
            if matches!(c, ',' | '.' | '!' | '?' | ';' | ':')
                && let Some(w) = out.last_mut()
                && w.end == i
            {
                w.punct_after = Some(c);
            }
            i += 1;
        }
    }
    out
}

const PARTICLES: &[&str] = &["van", "de", "der", "den", "von", "da", "di", "del", "du", "la", "le", "al", "bin", "dos", "das", "ten", "ter"];
const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "morning",
    "afternoon",
    "evening",
    "good",
    "g'day",
    "gday",
    "yeah",
    "yes",
    "oh",
    "well",
    "so",
    "bonjour",
    "hola",
    "olá",
    "ola",
    "guten",
    "tag",
    "abend",
    "grüezi",
    "hej",
    "siang",
    "boa",
    "tarde",
    "buenos",
    "dias",
    "días",
    "buongiorno",
    "ciao",
    "namaste",
    "kia",
    "ora",
    "howdy",
    "um",
    "uh",
    "there",
    "ok",
    "okay",
    "sorry",
    "thanks",
    "thank",
    "you",
];
const STOP_AFTER_NAME: &[&str] = &[
    "from", "at", "with", "here", "calling", "and", "of", "i", "i'm", "im", "we", "we're", "our", "the", "in", "for", "on", "speaking", "um", "uh", "from",
    "it's",
];

fn name_like(w: &Word, cased: bool) -> bool {
    if w.text.chars().any(|c| c.is_ascii_digit()) || w.text == "&" {
        return false;
    }
    if cased {
        w.cap && !common_word(&w.lower) && !GREETINGS.contains(&w.lower.as_str())
    } else {
        !common_word(&w.lower)
            && !GREETINGS.contains(&w.lower.as_str())
            && !STOP_AFTER_NAME.contains(&w.lower.as_str())
            && !(w.lower.len() > 4 && (w.lower.ends_with("ing") || w.lower.ends_with("ed")))
            && w.lower.chars().count() >= 2
    }
}

/// Take a name starting at word `i`: 1 to 3 name words (particles allowed inside).
fn take_name(ws: &[Word], i: usize, cased: bool) -> Option<(usize, usize)> {
    let mut j = i;
    let mut n = 0;
    while j < ws.len() && n < 4 {
        let w = &ws[j];
        if name_like(w, cased) {
            n += 1;
            j += 1;
            if w.punct_after.is_some() {
                break;
            }
            continue;
        }
        if cased && n > 0 && PARTICLES.contains(&w.lower.as_str()) && ws.get(j + 1).is_some_and(|x| name_like(x, cased)) {
            j += 1;
            continue;
        }
        break;
    }
    if n == 0 || (!cased && n > 3) {
        return None;
    }
    Some((i, j))
}

fn agent_names(doc: &Doc) -> Vec<String> {
    static AGENT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(?:this is|my name is|my name's|i'm|i am|you're speaking with|you are speaking with|speaking with)\s+([A-Za-zÀ-ÿ'\-]+)|([A-Za-zÀ-ÿ'\-]+)\s+speaking\b").expect("agent name")
    });
    let mut out = vec![];
    for (i, t) in doc.src.iter().enumerate() {
        if doc.is_caller(i) {
            continue;
        }
        for c in AGENT.captures_iter(&t.text) {
            if let Some(m) = c.get(1).or(c.get(2)) {
                let w = m.as_str().to_lowercase();
                if !common_word(&w) {
                    out.push(w);
                }
            }
        }
    }
    out
}

pub struct Person {
    pub name: Option<(String, Loc, f64)>,
    pub company: Option<(String, Loc, f64)>,
}

fn asked(doc: &Doc, turn: usize, re: &Regex) -> bool {
    turn > 0 && !doc.is_caller(turn - 1) && re.is_match(doc.turn_lower(turn - 1))
}

pub fn find(doc: &Doc) -> Person {
    static ASK_NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b(your name|who am i speaking|who i'm speaking|who's calling|who is calling|may i ask who)\b").expect("ask"));
    static ASK_CO: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(company|organi[sz]ation|business|which customer|who are you with|calling from|where are you calling from|what firm)\b").expect("ask")
    });
    let agents = agent_names(doc);
    let mut name: Option<(String, Loc, f64, u8)> = None;
    let mut company: Option<(String, Loc, f64)> = None;
    let mut caller_turns_seen = 0;
    for (ti, t) in doc.src.iter().enumerate() {
        if !doc.is_caller(ti) {
            continue;
        }
        caller_turns_seen += 1;
        if caller_turns_seen > 30 {
            break;
        }
        let text = &t.text;
        if text.len() > 20_000 {
            continue;
        }
        let ws = words(text);
        let cased = text.chars().any(|c| c.is_uppercase());
        let is_agent = |s: usize, e: usize| e == s + 1 && agents.contains(&ws[s].lower);
        let mut cands: Vec<(usize, usize, u8)> = vec![];
        // Cued: "my name is X", "this is X", "it's X", "I'm X", "name's X".
        for i in 0..ws.len() {
            let l = ws[i].lower.as_str();
            let next = ws.get(i + 1).map(|w| w.lower.as_str()).unwrap_or("");
            let (cue_len, strength) = match (l, next) {
                ("my", "name") if ws.get(i + 2).is_some_and(|w| w.lower == "is" || w.lower == "'s") => (3, 3),
                ("my", "name's") => (2, 3),
                ("name's", _) | ("names", _) => (1, 3),
                ("this", "is") => (2, 2),
                ("it's", _) | ("its", _) => (1, 2),
                ("i'm", _) | ("im", _) => (1, 1),
                ("i", "am") => (2, 1),
                _ => continue,
            };
            let at = i + cue_len;
            if at >= ws.len() {
                continue;
            }
            if let Some((s, e)) = take_name(&ws, at, cased) {
                // "I'm X" needs a capitalised or clearly name-like word.
                if strength == 1 && !cased && e - s < 2 {
                    continue;
                }
                // "this is X from Y": the strongest intro; "it's X" must be followed by from/at/here/, or end.
                let follow = ws.get(e).map(|w| w.lower.as_str()).unwrap_or("");
                let punct = ws[e - 1].punct_after.is_some() || e >= ws.len();
                if strength < 3 && !(punct || matches!(follow, "from" | "at" | "with" | "here" | "calling" | "and" | "i" | "i'm" | "im" | "speaking" | "over"))
                {
                    continue;
                }
                if !is_agent(s, e) {
                    cands.push((s, e, strength + u8::from(e - s >= 2)));
                }
            }
        }
        // Sentence-initial "Marcus Oyelaran, I run ...", after a greeting and the agent's name.
        if cased && caller_turns_seen <= 3 {
            let mut i = 0;
            let mut sentence_start = true;
            while i < ws.len() {
                if sentence_start {
                    let mut j = i;
                    while j < ws.len() && (GREETINGS.contains(&ws[j].lower.as_str()) || agents.contains(&ws[j].lower)) {
                        j += 1;
                    }
                    if let Some((s, e)) = take_name(&ws, j, true) {
                        let follow = ws.get(e).map(|w| w.lower.as_str()).unwrap_or("");
                        let p = ws[e - 1].punct_after;
                        let ok_end = matches!(p, Some(',') | Some('.')) || matches!(follow, "here" | "from" | "at" | "with");
                        if ok_end && !is_agent(s, e) && !(e - s == 1 && p == Some(',') && j == i && follow != "i" && follow != "i'm") {
                            cands.push((s, e, if e - s >= 2 { 3 } else { 1 }));
                        }
                    }
                }
                sentence_start = matches!(ws[i].punct_after, Some('.') | Some('!') | Some('?') | Some(','));
                if !matches!(ws[i].punct_after, Some('.') | Some('!') | Some('?')) && ws[i].punct_after == Some(',') {
                    // After a comma only the greeting+agent-name pattern continues: "Hi Jack, Sunita ...".
                    sentence_start = i < 4;
                }
                i += 1;
            }
        }
        // "X here"
        for i in 1..ws.len() {
            if ws[i].lower == "here" && ws[i - 1].punct_after.is_none() {
                let mut s = i;
                while s > 0 && name_like(&ws[s - 1], cased) && i - s < 3 && ws[s - 1].punct_after.is_none() || (s > 0 && s == i && name_like(&ws[s - 1], cased))
                {
                    s -= 1;
                    if i - s >= 3 {
                        break;
                    }
                }
                if s < i && cased && !is_agent(s, i) {
                    cands.push((s, i, 2 + u8::from(i - s >= 2)));
                }
            }
        }
        // An answer to "can I get your name?"
        if asked(doc, ti, &ASK_NAME) {
            for i in 0..ws.len().min(8) {
                if let Some((s, e)) = take_name(&ws, i, cased)
                    && !is_agent(s, e)
                {
                    cands.push((s, e, 2 + u8::from(e - s >= 2)));
                    break;
                }
            }
        }
        for (s, e, strength) in cands {
            let better = match &name {
                None => true,
                Some((_, _, _, st)) => strength > *st,
            };
            if better {
                let loc = Loc { turn: ti, start: ws[s].start, end: ws[e - 1].end };
                let text = doc.text(loc).trim_end_matches(['.', ',']).to_string();
                let conf = if strength >= 3 { 0.9 } else { 0.75 };
                name = Some((text, loc, conf, strength));
            }
        }
        // Company, near the introduction.
        if company.is_none() && caller_turns_seen <= 4 {
            company = find_company(doc, ti, &ws, cased, name.as_ref().filter(|n| n.1.turn == ti).map(|n| n.1), asked(doc, ti, &ASK_CO));
        }
        if name.as_ref().is_some_and(|n| n.3 >= 3) && company.is_some() {
            break;
        }
    }
    Person { name: name.map(|(a, b, c, _)| (a, b, c)), company }
}

const CO_CONNECT: &[&str] = &["&", "and", "of", "de", "du", "y", "und", "la", "del", "+"];
const CO_STOP: &[&str] = &[
    "our",
    "we",
    "we're",
    "we've",
    "i",
    "i'm",
    "im",
    "so",
    "and",
    "but",
    "um",
    "uh",
    "your",
    "you",
    "the",
    "is",
    "are",
    "was",
    "has",
    "have",
    "had",
    "can",
    "could",
    "about",
    "calling",
    "because",
    "just",
    "here",
    "like",
    "actually",
    "today",
    "again",
    "regarding",
    "there",
    "this",
    "that",
    "it",
    "it's",
    "its",
    "my",
    "me",
    "every",
    "all",
    "since",
    "yeah",
    "well",
    "okay",
    "ok",
    "hi",
    "and",
    "for",
    "in",
    "on",
    "with",
    "to",
    "a",
    "an",
    "who",
    "which",
    "where",
    "when",
    "what",
    "please",
    "sorry",
    "thanks",
    "now",
    "right",
    "also",
    "they",
    "he",
    "she",
    "do",
    "did",
    "does",
    "got",
    "get",
    "am",
    "ive",
    "i've",
    "not",
    "no",
    "yes",
    "been",
    "were",
    "be",
    "will",
    "would",
    "should",
    "some",
    "one",
    "two",
    "after",
    "before",
    "then",
    "than",
    "if",
    "or",
    "at",
    "from",
    "by",
    "over",
    "into",
];

fn find_company(doc: &Doc, ti: usize, ws: &[Word], cased: bool, name: Option<Loc>, answer: bool) -> Option<(String, Loc, f64)> {
    let start_word = name.map(|l| ws.iter().position(|w| w.start >= l.end).unwrap_or(ws.len())).unwrap_or(0);
    let take = |i: usize| -> Option<(usize, usize)> {
        let mut j = i;
        if ws.get(j).is_some_and(|w| w.lower == "the") {
            j += 1;
        }
        let s = j;
        let mut n = 0;
        while j < ws.len() && n < 6 {
            let w = &ws[j];
            let word_ok = if cased {
                (w.cap || w.text.chars().all(|c| c.is_uppercase() || c.is_ascii_digit()))
                    && !GREETINGS.contains(&w.lower.as_str())
                    && w.lower != "i"
                    && w.lower != "i'm"
            } else {
                !CO_STOP.contains(&w.lower.as_str()) && !common_word(&w.lower)
                    || (n > 0 && matches!(w.lower.as_str(), "home" | "health" | "care" | "group" | "services"))
            };
            if word_ok {
                n += 1;
                j += 1;
                if w.punct_after.is_some() {
                    break;
                }
                continue;
            }
            if n > 0
                && CO_CONNECT.contains(&w.lower.as_str())
                && w.punct_after.is_none()
                && let Some(nx) = ws.get(j + 1)
                && (if cased { nx.cap } else { !CO_STOP.contains(&nx.lower.as_str()) && !common_word(&nx.lower) })
            {
                j += 1;
                continue;
            }
            break;
        }
        (n > 0).then_some((s, j))
    };
    let mut best: Option<(usize, usize, f64)> = None;
    let limit = (start_word + 40).min(ws.len());
    for i in start_word..limit {
        let l = ws[i].lower.as_str();
        let prev = if i > 0 { ws[i - 1].lower.as_str() } else { "" };
        let cue = match l {
            "from" | "at" | "with" | "for" => {
                !(l == "for" && !matches!(prev, "work" | "call" | "on-call" | "engineer" | "tonight" | "working" | "calling") && name.is_none())
            }
            "own" | "run" if prev == "i" => true,
            _ => false,
        };
        if !cue || ws[i].punct_after.is_some() {
            continue;
        }
        if let Some((s, e)) = take(i + 1) {
            // Lower-case text: a company is 1..5 words; reject time words.
            let first = ws[s].lower.as_str();
            const NOT_COMPANY: &[&str] = &[
                "home",
                "work",
                "night",
                "noon",
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            ];
            if NOT_COMPANY.contains(&first) {
                continue;
            }
            best = Some((s, e, if name.is_some() { 0.85 } else { 0.6 }));
            break;
        }
    }
    // "Name, Company." / "Name. Company."
    if best.is_none()
        && cased
        && name.is_some()
        && start_word < ws.len()
        && let Some((s, e)) = take(start_word)
        && matches!(ws[e - 1].punct_after, Some('.') | Some(',') | Some('!'))
        && (e == ws.len() || ws[e - 1].punct_after != Some(',') || ws.get(e).is_some_and(|w| w.lower == "i" || w.lower == "we" || w.lower == "and"))
    {
        best = Some((s, e, 0.8));
    }
    if best.is_none()
        && answer
        && let Some((s, e)) = take(0)
    {
        best = Some((s, e, 0.7));
    }
    let (s, e, conf) = best?;
    let loc = Loc { turn: ti, start: ws[s].start, end: ws[e - 1].end };
    let text = doc.text(loc).trim_end_matches(['.', ',']).to_string();
    Some((text, loc, conf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialnexa_core::analysis::turns;
    use dialnexa_core::evidence::Role::*;

    fn f(pairs: &[(dialnexa_core::evidence::Role, &str)]) -> (Option<String>, Option<String>) {
        let t = turns(pairs);
        let d = Doc::new(&t);
        let p = find(&d);
        (p.name.map(|n| n.0), p.company.map(|c| c.0))
    }

    #[test]
    fn intros() {
        assert_eq!(
            f(&[(Agent, "Support, this is Priya."), (Caller, "Yeah, hi. Marcus Oyelaran, I run engineering at Brightcart. Help.")]),
            (Some("Marcus Oyelaran".into()), Some("Brightcart".into()))
        );
        assert_eq!(
            f(&[(Agent, "support this is jonas speaking"), (Caller, "hi jonas this is katrin vogel from lindenhof logistik our tracking webhooks are broken")]),
            (Some("katrin vogel".into()), Some("lindenhof logistik".into()))
        );
        assert_eq!(
            f(&[(Agent, "Hi, this is Sam."), (Caller, "Morning Sam. Joris van Dijk, IT at Brouwer Installatietechniek. Since this morning")]).0,
            Some("Joris van Dijk".into())
        );
        assert_eq!(
            f(&[(Agent, "Hello."), (Caller, "Frank Kowalski. Kowalski and Sons Plumbing. And before you start")]),
            (Some("Frank Kowalski".into()), Some("Kowalski and Sons Plumbing".into()))
        );
        assert_eq!(
            f(&[(Agent, "Hello."), (Caller, "Hi, Walter Huang here. I run Prairie Wind Insurance, we're small.")]),
            (Some("Walter Huang".into()), Some("Prairie Wind Insurance".into()))
        );
    }
}
