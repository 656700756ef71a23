//! The rules engine never panics, whatever the transcript says (issue 8).
//!
//! * pinned regressions, one per panic found;
//! * a sweep over the engine's own lexicon: every word and phrase written in
//!   `src/rules/*.rs` (cue lists, keyword tables, `matches!` arms, and the literal words of
//!   every regex), alone, opening a caller turn, closing one, and closing one followed by a
//!   short function word ("... we export to");
//! * properties over arbitrary Unicode transcripts, over text generated from the engine's own
//!   regexes, over the shipped eval calls with random edits (odd chars inserted, chars
//!   deleted, a turn cut short mid-word), and over odd inputs (turn indices, call times,
//!   timezones, custom schema fields).
//!
//! The lexicon is read from the sources at test time, so a new cue list or regex is covered
//! without touching this file. `PROPTEST_CASES=20000` runs every property that many times
//! (a few minutes) for a longer local hunt; failing inputs are printed, not saved.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::LazyLock;

use dialnexa_analysis::analyze_offline;
use dialnexa_core::analysis::{Analysis, AnalysisConfig, AnalysisInput, AnalysisSchema, SchemaField, SchemaFieldType, turns};
use dialnexa_core::evidence::Role::{self, Agent, Caller};
use dialnexa_core::evidence::TranscriptTurn;
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::Config;

// ---------------------------------------------------------------------------------------
// Inputs.

const CALL_TIME: &str = "2026-03-10T14:20:00Z";

/// The default schemas plus one custom field of every type, so the custom-field extractors
/// (keyword search, enum options, numbers near a keyword) run too.
fn schema() -> AnalysisSchema {
    static S: LazyLock<AnalysisSchema> = LazyLock::new(|| {
        let mut s = AnalysisConfig::default().resolve("analysis").unwrap();
        let field = |name: &str, field_type: SchemaFieldType, options: &[&str]| SchemaField {
            name: name.into(),
            field_type,
            required: false,
            description: String::new(),
            examples: vec![],
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        use SchemaFieldType as T;
        s.fields.extend([
            field("order_count", T::Number, &[]),
            field("export_target", T::String, &[]),
            field("has_backup", T::Boolean, &[]),
            field("tier", T::Enum, &["gold", "silver_plus", "İstanbul", "naïve", "東京"]),
            field("docs_url", T::Url, &[]),
            field("visit_time", T::Datetime, &[]),
            field("backup_email", T::Email, &[]),
            field("backup_phone", T::Phone, &[]),
            // Built-in names with another type take the custom path.
            field("plan", T::String, &[]),
            field("region", T::Enum, &["us-east-1", "eu-west-1"]),
            field("café_crème_size", T::Number, &[]),
        ]);
        s
    });
    S.clone()
}

fn input(transcript: Vec<TranscriptTurn>) -> AnalysisInput {
    AnalysisInput { call_time: CALL_TIME.parse().unwrap(), timezone: "America/New_York".into(), transcript, schema: schema() }
}

fn run(pairs: &[(Role, &str)]) -> Analysis {
    analyze_offline(&input(turns(pairs)))
}

/// Analyze, turning a panic into an error carrying its message.
fn try_analyze(i: &AnalysisInput) -> Result<Analysis, String> {
    catch_unwind(AssertUnwindSafe(|| analyze_offline(i))).map_err(|e| {
        e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "non-string panic".into())
    })
}

fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config { cases, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() }
}

// ---------------------------------------------------------------------------------------
// Pinned regressions.

// Issue 8: an unpunctuated caller line ending in "export to" / "import to" sliced past the end.
#[test]
fn caller_line_ending_in_export_to_does_not_panic() {
    let a = run(&[(Agent, "Support, how can I help?"), (Caller, "the csv file we export to")]);
    assert_eq!(a.engine, "rules");
    let a = run(&[(Agent, "Support, how can I help?"), (Caller, "hi so the data we import to")]);
    assert_eq!(a.engine, "rules");
    // ... and "to" followed by a multi-byte char.
    run(&[(Caller, "the exports to😀 are empty"), (Caller, "imports to— nowhere"), (Caller, "export to’s")]);
}

#[test]
fn export_to_still_extends_the_product_area() {
    let a = run(&[(Agent, "Support, how can I help?"), (Caller, "Hi, the export to csv is broken since this morning for every customer.")]);
    assert_eq!(a.fields.get("product_area").map(|f| f.value.clone()), Some(serde_json::json!("export to csv")));
}

// A URL's email check looked 40 bytes back, which can land inside a multi-byte char.
#[test]
fn a_url_after_multibyte_text_does_not_panic() {
    for lead in ["", "x", "xy", "é", "😀"] {
        let text = format!("{lead}{} example.com is down", "é".repeat(20));
        run(&[(Caller, &text), (Agent, &text)]);
    }
}

// A clock without am/pm looked 30 bytes ahead for "morning" / "afternoon", mid-char.
#[test]
fn a_bare_hour_before_multibyte_text_does_not_panic() {
    for lead in ["a", "ab"] {
        let tail = format!("{lead}{}", "é".repeat(20));
        for cue in ["call me back at 10", "it started at 10", "we need it by 10", "I'll call you at 10"] {
            let text = format!("{cue}, {tail}");
            run(&[(Agent, "Hi, how can I help?"), (Caller, &text), (Agent, &text)]);
        }
    }
}

// Spoken scales multiplied past u64 and then added, overflowing.
#[test]
fn endless_spoken_scales_do_not_overflow() {
    let a = run(&[(Caller, "we have one million million million million million million users and two million million million million hundreds")]);
    assert_eq!(a.engine, "rules");
    // Ordinary spoken numbers are unchanged.
    let a = run(&[(Agent, "How many users are affected?"), (Caller, "about two thousand five hundred users can't log in")]);
    assert_eq!(a.fields.get("affected_users").map(|f| f.value.clone()), Some(serde_json::json!(2500)));
}

// The next-step promise was ranked by `-(turn index as i32)`, which overflows for an index
// of 2^31 (indices are whatever the caller of the engine stored).
#[test]
fn huge_turn_indices_do_not_overflow() {
    // The promise is in turn `base + 1`: 2^31, then u32::MAX.
    for base in [0x7FFF_FFFFu32, u32::MAX - 1] {
        let t = vec![
            TranscriptTurn { index: base, role: Caller, text: "Please call me back tomorrow at 3pm.".into(), start_ms: 0, end_ms: 0 },
            TranscriptTurn {
                index: base.wrapping_add(1),
                role: Agent,
                text: "I'll email you the report and call you tomorrow.".into(),
                start_ms: 0,
                end_ms: 0,
            },
        ];
        let a = analyze_offline(&input(t));
        assert_eq!(a.promises.len(), 1);
        assert_eq!(a.promises[0].evidence.span.turn, base.wrapping_add(1));
    }
}

// Callback fields were located at the span's turn *index* taken as a *position*: with
// indices counted from 1 they pointed at the next turn.
#[test]
fn callback_fields_point_at_the_callback_turn_whatever_the_indices() {
    let t: Vec<TranscriptTurn> =
        [(Agent, "Support, how can I help?"), (Caller, "Can someone call me back tomorrow at 3pm? I'm driving."), (Agent, "Of course.")]
            .iter()
            .enumerate()
            .map(|(i, (role, text))| TranscriptTurn { index: i as u32 + 1, role: *role, text: text.to_string(), start_ms: 0, end_ms: 0 })
            .collect();
    let a = analyze_offline(&input(t));
    assert_eq!(a.callbacks.len(), 1);
    let cb = a.callbacks[0].evidence.span.turn;
    assert_eq!(cb, 2);
    assert_eq!(a.fields.get("callback_time").map(|f| f.span.turn), Some(cb));
}

// The product area's modifiers were counted back from the head by word lengths, which went
// wrong when the word touching the head was not space-separated ("pre-export", "(export").
#[test]
fn the_product_area_starts_on_a_word() {
    for text in ["our billing pre-export is failing every time", "our billing (export) is failing every time", "the crème (export) fails"] {
        let a = run(&[(Agent, "Support, how can I help?"), (Caller, text)]);
        let f = &a.fields["product_area"];
        let chars: Vec<char> = text.chars().collect();
        let start = f.span.start as usize;
        assert!(start == 0 || !chars[start - 1].is_alphanumeric(), "{text:?}: {:?} starts mid-word", f.value);
    }
}

// ---------------------------------------------------------------------------------------
// The engine's lexicon, read from its sources.

/// Every string literal in `src/rules/*.rs`, decoded.
fn source_literals() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rules");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "rs")).collect();
    files.sort();
    assert!(files.len() >= 5, "the rules engine's sources are in {}", dir.display());
    files.iter().flat_map(|f| string_literals(&std::fs::read_to_string(f).unwrap())).collect()
}

/// A small Rust lexer: string and raw-string literals, skipping comments, chars and lifetimes.
fn string_literals(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = vec![];
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c[i] == '/' && at(i + 1) == '*' {
            i += 2;
            while i < c.len() && !(c[i] == '*' && at(i + 1) == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        if !prev_ident && (c[i] == 'r' || c[i] == 'b') {
            let mut j = i + usize::from(c[i] == 'b');
            if at(j) == 'r' {
                j += 1;
                let hashes = (j..c.len()).take_while(|&k| c[k] == '#').count();
                j += hashes;
                if at(j) == '"' {
                    let start = j + 1;
                    let mut k = start;
                    while k < c.len() && !(c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#')) {
                        k += 1;
                    }
                    out.push(c[start..k.min(c.len())].iter().collect());
                    i = k + 1 + hashes;
                    continue;
                }
            } else if at(j) == '"' {
                i = j;
            }
        }
        if c[i] == '"' {
            let mut s = String::new();
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                if c[k] == '\\' {
                    k += 1;
                    match at(k) {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        '0' => s.push('\0'),
                        'x' => {
                            let v = u32::from_str_radix(&c[k + 1..(k + 3).min(c.len())].iter().collect::<String>(), 16).unwrap_or(0);
                            s.extend(char::from_u32(v));
                            k += 2;
                        }
                        'u' => {
                            let end = (k..c.len()).find(|&e| c[e] == '}').unwrap_or(k);
                            let hex: String = c[(k + 2).min(end)..end].iter().collect();
                            s.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                            k = end;
                        }
                        '\n' => {
                            while at(k + 1).is_whitespace() {
                                k += 1;
                            }
                        }
                        other => s.push(other),
                    }
                    k += 1;
                    continue;
                }
                s.push(c[k]);
                k += 1;
            }
            out.push(s);
            i = k + 1;
            continue;
        }
        if c[i] == '\'' {
            // 'x', '\n', '\u{301}', or a lifetime.
            if at(i + 1) == '\\' {
                let mut k = i + 3;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                i = k + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    out
}

fn looks_like_regex(s: &str) -> bool {
    ["\\b", "(?", "\\s", "\\d", "\\w", "|", "[", "^", "$"].iter().any(|m| s.contains(m)) && regex::Regex::new(s).is_ok()
}

/// The literal words and phrases of a regex pattern: what is left between its operators.
fn regex_phrases(pat: &str) -> Vec<String> {
    let mut s = pat.replace("\\ ", " ");
    for esc in ["\\b", "\\B", "\\s", "\\S", "\\d", "\\D", "\\w", "\\W", "\\x22", "\\n", "\\.", "\\p{L}", "(?x)", "(?i)", "(?i:", "(?:"] {
        s = s.replace(esc, "|");
    }
    let s = regex::Regex::new(r"\(\?P<\w+>").unwrap().replace_all(&s, "|");
    let verbose = pat.starts_with("(?x)");
    s.split(['|', '(', ')', '[', ']', '{', '}', '?', '*', '+', '\\', '^', '$'])
        .flat_map(|f| if verbose { f.split_whitespace().map(str::to_string).collect::<Vec<_>>() } else { vec![f.trim().to_string()] })
        .filter(|f| f.chars().any(char::is_alphabetic) && f.chars().count() <= 60)
        .collect()
}

struct Lexicon {
    /// Words and phrases, deduplicated and sorted.
    entries: Vec<String>,
    /// Regex patterns found in the sources.
    regexes: Vec<String>,
}

static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| {
    let mut entries = BTreeSet::new();
    let mut regexes = vec![];
    for lit in source_literals() {
        if looks_like_regex(&lit) {
            for p in regex_phrases(&lit) {
                entries.extend(p.split_whitespace().map(str::to_string));
                entries.insert(p);
            }
            regexes.push(lit);
            continue;
        }
        let t = lit.trim();
        if t.is_empty() {
            continue;
        }
        entries.extend(t.split_whitespace().map(str::to_string));
        if t.chars().count() <= 60 {
            entries.insert(t.to_string());
        }
    }
    entries.retain(|e| !e.trim().is_empty());
    Lexicon { entries: entries.into_iter().collect(), regexes }
});

#[test]
fn the_lexicon_reader_finds_the_engine_words() {
    let lx = &*LEXICON;
    for w in ["export", "to", "imports", "is down", "went down", "how do i", "password", "pacific", "eu-west-1", "hundred", "slash", "my name is"] {
        assert!(lx.entries.iter().any(|e| e == w), "{w:?} is not in the lexicon read from the sources");
    }
    assert!(lx.entries.len() > 2_000, "only {} lexicon entries", lx.entries.len());
    assert!(lx.regexes.len() > 100, "only {} regexes", lx.regexes.len());
    println!("{} lexicon entries, {} regexes", lx.entries.len(), lx.regexes.len());
}

/// Short words the engine looks at right after a keyword ("export to", "monitor called",
/// "password is"), to close a turn with.
const CONNECTORS: &[&str] = &["to", "of", "the", "a", "in", "on", "is", "and", "for", "at", "by", "with", "from", "called", ":", "-", "'s"];

fn capitalised(w: &str) -> String {
    let mut c = w.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Calls around one lexicon entry: alone, opening a caller turn, closing one, closing one
/// before each connector (a single word), in an agent turn, capitalised, punctuated, and as the answer to a
/// question the extractors read answers to. Some extractors read only a call's first few
/// caller turns, so each call has at most three.
fn lexicon_calls(w: &str) -> Vec<Vec<TranscriptTurn>> {
    let cap = capitalised(w);
    let mut calls: Vec<Vec<(Role, String)>> = vec![
        vec![(Agent, w.to_string()), (Caller, w.to_string()), (Caller, format!("{w} and then it stopped")), (Caller, format!("so yesterday we {w}"))],
        vec![
            (Agent, "Can I get your name, and what's the impact?".to_string()),
            (Caller, w.to_string()),
            (Caller, format!("{cap} here from {cap}")),
            (Caller, format!("we {w}?")),
        ],
        vec![(Agent, format!("ok so {w}")), (Caller, format!("the {w}.")), (Caller, format!("{cap}, {w}"))],
    ];
    // A phrase's last word is an entry of its own: connectors follow single words only.
    let mut ends: Vec<String> = vec![];
    if !w.contains(char::is_whitespace) {
        ends.extend(CONNECTORS.iter().map(|c| format!("we {w} {c}")));
        ends.push(format!("we {w}{}", CONNECTORS[0]));
    }
    for chunk in ends.chunks(3) {
        let mut call = vec![(Agent, "Hi, how can I help?".to_string())];
        call.extend(chunk.iter().map(|t| (Caller, t.clone())));
        calls.push(call);
    }
    calls
        .iter()
        .map(|call| {
            let p: Vec<(Role, &str)> = call.iter().map(|(r, s)| (*r, s.as_str())).collect();
            turns(&p)
        })
        .collect()
}

#[test]
fn every_lexicon_entry_at_either_end_of_a_turn() {
    let entries = &LEXICON.entries;
    // The sweep is some tens of thousands of small calls: use every core.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = entries.len().div_ceil(threads);
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = entries
            .chunks(per.max(1))
            .map(|part| {
                s.spawn(move || {
                    let mut failures = vec![];
                    for w in part {
                        for call in lexicon_calls(w) {
                            if let Err(e) = try_analyze(&input(call.clone())) {
                                failures.push(format!("{w:?} in {:?}: {e}", call.iter().map(|t| t.text.as_str()).collect::<Vec<_>>()));
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        workers.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} calls panic, first ones:\n{}", failures.len(), failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
}

// ---------------------------------------------------------------------------------------
// Strategies.

/// Pieces of text that trip byte-offset code: multi-byte, combining, wide, zero-width,
/// right-to-left, case-changing, Unicode digits.
const ODD: &[&str] = &[
    "é",
    "e\u{301}",
    "ñ",
    "ß",
    "İ",
    "ǅ",
    "ﬁ",
    "Σ",
    "ς",
    "😀",
    "👍🏽",
    "👩‍👩‍👧",
    "🇬🇧",
    "\u{200B}",
    "\u{200D}",
    "\u{FEFF}",
    "\u{00A0}",
    "\u{2028}",
    "\u{202E}",
    "مرحبا",
    "שלום",
    "١٢٣",
    "１２３",
    "東京",
    "’",
    "“",
    "”",
    "—",
    "…",
    "\t",
    "\n",
    "\r\n",
    "\0",
    "\u{7F}",
    "\u{10FFFF}",
];

fn lexicon_entry() -> impl Strategy<Value = String> {
    proptest::sample::select(LEXICON.entries.clone())
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => lexicon_entry(),
        2 => "[a-z]{1,10}",
        1 => "[0-9]{1,16}",
        1 => proptest::sample::select(ODD).prop_map(str::to_string),
        1 => "[.,;:!?'\"()/@#+&%$-]{1,3}",
        1 => any::<String>(),
        1 => ("[a-zé😀]{1,3}", 100..600usize).prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn turn_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        1 => "[ \t\n\u{00A0}\u{2028}\u{200B}]{1,8}",
        8 => (proptest::collection::vec((piece(), prop_oneof![6 => Just(" "), 1 => Just(""), 1 => Just(", "), 1 => Just(". "), 1 => Just("\n")]), 0..24))
            .prop_map(|v| v.into_iter().map(|(p, j)| p + j).collect::<String>()),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Agent), Just(Caller)]
}

fn transcript() -> impl Strategy<Value = Vec<TranscriptTurn>> {
    (proptest::collection::vec((role(), turn_text()), 0..8), any::<bool>(), any::<u32>()).prop_map(|(ts, odd_index, base)| {
        ts.into_iter()
            .enumerate()
            .map(|(i, (role, text))| TranscriptTurn {
                // Indices are whatever the caller of the engine stored: not always 0, 1, 2...
                index: if odd_index { base.wrapping_add((i as u32).wrapping_mul(0x7FFF_FFFF)) } else { i as u32 },
                role,
                text,
                start_ms: 0,
                end_ms: 0,
            })
            .collect()
    })
}

fn timezone() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("America/New_York".to_string()),
        2 => proptest::sample::select(vec!["UTC", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/Sao_Paulo", "Asia/Tokyo"]).prop_map(str::to_string),
        1 => Just(String::new()),
        1 => any::<String>(),
    ]
}

fn call_time() -> impl Strategy<Value = jiff::Timestamp> {
    let min = jiff::Timestamp::MIN.as_second();
    let max = jiff::Timestamp::MAX.as_second();
    prop_oneof![
        4 => Just(CALL_TIME.parse().unwrap()),
        2 => (0i64..4_102_444_800).prop_map(|s| jiff::Timestamp::from_second(s).unwrap()),
        1 => Just(jiff::Timestamp::MIN),
        1 => Just(jiff::Timestamp::MAX),
        1 => (min..=max).prop_map(|s| jiff::Timestamp::from_second(s).unwrap()),
    ]
}

/// The engine's regexes that text can be generated from, word boundaries and anchors dropped
/// (the generator cannot honour them, and the surrounding text decides anyway).
static GENERATORS: LazyLock<Vec<String>> =
    LazyLock::new(|| LEXICON.regexes.iter().map(|p| drop_looks(p)).filter(|p| proptest::string::string_regex(p).is_ok()).collect());

fn drop_looks(pat: &str) -> String {
    let mut out = String::new();
    let mut class = 0;
    let mut it = pat.chars().peekable();
    while let Some(ch) = it.next() {
        match ch {
            '\\' => match it.next() {
                Some('b' | 'B' | 'A' | 'z') if class == 0 => {}
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => {}
            },
            '[' => {
                class += 1;
                out.push(ch);
            }
            ']' if class > 0 => {
                class -= 1;
                out.push(ch);
            }
            '^' | '$' if class == 0 => {}
            _ => out.push(ch),
        }
    }
    out
}

#[test]
fn most_engine_regexes_can_generate_text() {
    assert!(GENERATORS.len() * 10 >= LEXICON.regexes.len() * 8, "{} of {} regexes generate text", GENERATORS.len(), LEXICON.regexes.len());
}

/// Text matching one of the engine's regexes, at most 400 chars.
fn regex_text() -> impl Strategy<Value = String> {
    let each =
        GENERATORS.iter().filter_map(|p| proptest::string::string_regex(p).ok()).map(|s| s.prop_map(|x| x.chars().take(400).collect::<String>()).boxed());
    Union::new(each.collect::<Vec<_>>())
}

/// The shipped eval calls: realistic text with emails, phones, times, ids and cues in it.
static EVAL_CALLS: LazyLock<Vec<AnalysisInput>> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval");
    let cases = dialnexa_analysis::eval::load_dir(&dir).unwrap();
    cases.iter().map(|c| c.input(&schema())).collect()
});

/// An edit at a spot picked in a call: insert an odd piece, delete a few chars, replace one,
/// or cut the turn there (a turn that stops in the middle of an email, a time, a cue).
#[derive(Debug, Clone)]
enum Edit {
    Insert(&'static str),
    Delete(usize),
    Replace(&'static str),
    Cut,
}

fn edit() -> impl Strategy<Value = (proptest::sample::Index, proptest::sample::Index, Edit)> {
    let odd = || proptest::sample::select(ODD);
    let e = prop_oneof![odd().prop_map(Edit::Insert), (1..4usize).prop_map(Edit::Delete), odd().prop_map(Edit::Replace), Just(Edit::Cut)];
    (any::<proptest::sample::Index>(), any::<proptest::sample::Index>(), e)
}

fn apply(call: &mut AnalysisInput, (turn, at, e): &(proptest::sample::Index, proptest::sample::Index, Edit)) {
    if call.transcript.is_empty() {
        return;
    }
    let n = call.transcript.len();
    let t = &mut call.transcript[turn.index(n)].text;
    let mut chars: Vec<char> = t.chars().collect();
    let i = at.index(chars.len() + 1);
    match e {
        Edit::Insert(p) => {
            chars.splice(i..i, p.chars());
        }
        Edit::Delete(n) => {
            chars.drain(i..(i + n).min(chars.len()));
        }
        Edit::Replace(p) => {
            chars.splice(i..(i + 1).min(chars.len()), p.chars());
        }
        Edit::Cut => chars.truncate(i),
    }
    *t = chars.into_iter().collect();
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn edited_eval_calls_never_panic(case in any::<proptest::sample::Index>(), edits in proptest::collection::vec(edit(), 1..16)) {
        let mut call = EVAL_CALLS[case.index(EVAL_CALLS.len())].clone();
        for e in &edits {
            apply(&mut call, e);
        }
        let a = try_analyze(&call);
        prop_assert!(a.is_ok(), "{}", a.err().unwrap_or_default());
    }
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn arbitrary_transcripts_never_panic(transcript in transcript()) {
        let a = try_analyze(&input(transcript));
        prop_assert!(a.is_ok(), "{}", a.err().unwrap_or_default());
    }

    #[test]
    fn regex_matches_anywhere_in_a_turn_never_panic(
        hit in regex_text(),
        before in turn_text(),
        after in turn_text(),
        odd in proptest::sample::select(ODD),
        agent_first in any::<bool>(),
    ) {
        let lead = if agent_first { vec![(Agent, "Hi, this is support, what's your name and the impact?".to_string())] } else { vec![] };
        let mut pairs = lead;
        pairs.extend([
            (Caller, hit.clone()),
            (Caller, format!("{before} {hit}")),
            (Caller, format!("{hit} {after}")),
            (Caller, format!("{before}{odd}{hit}{odd}")),
            (Agent, format!("{before} {hit}")),
            (Caller, format!("{hit}{odd}")),
        ]);
        let p: Vec<(Role, &str)> = pairs.iter().map(|(r, s)| (*r, s.as_str())).collect();
        let a = try_analyze(&input(turns(&p)));
        prop_assert!(a.is_ok(), "{}", a.err().unwrap_or_default());
    }

    #[test]
    fn odd_times_zones_and_schemas_never_panic(
        transcript in transcript(),
        call_time in call_time(),
        timezone in timezone(),
        names in proptest::collection::vec((prop_oneof![lexicon_entry().prop_map(|w| w.replace(' ', "_")), "[a-zé_]{0,12}".boxed()], prop_oneof![lexicon_entry(), any::<String>()]), 0..4),
    ) {
        let mut schema = schema();
        for (name, option) in names {
            for field_type in [SchemaFieldType::String, SchemaFieldType::Number, SchemaFieldType::Boolean, SchemaFieldType::Enum] {
                schema.fields.push(SchemaField {
                    name: name.clone(),
                    field_type,
                    required: false,
                    description: String::new(),
                    examples: vec![],
                    options: vec![option.clone(), name.clone()],
                });
            }
        }
        let a = try_analyze(&AnalysisInput { call_time, timezone, transcript, schema });
        prop_assert!(a.is_ok(), "{}", a.err().unwrap_or_default());
    }
}
