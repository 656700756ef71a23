//! The transcript as the rules read it: two views of every turn with maps back to the
//! caller's real words.
//!
//! * `lower`: the turn lower-cased one char for one char (so offsets are those of the
//!   original), joined with `\n`. Lexicons, cues and free-text clauses are matched here.
//! * `norm`: spoken and ASR-style forms rewritten ("five oh three" → `503`, "slash v one
//!   slash orders" → `/v1/orders`, "u s east one" → `us east 1`, "john dot smith" →
//!   `john.smith`), whitespace collapsed, joined with `\n`. Every byte remembers the
//!   original char range it came from, so entities found here are grounded in the turn.

use dialnexa_core::evidence::{Role, TranscriptTurn};

#[derive(Debug, Clone)]
pub struct TurnInfo {
    pub index: u32,
    pub role: Role,
    /// Byte range of this turn in `Doc::lower`.
    pub lower: (usize, usize),
    /// Byte range of this turn in `Doc::norm`.
    pub norm: (usize, usize),
    /// Char count of the original text.
    pub chars: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct Sentence {
    pub turn: usize,
    /// Byte range in `Doc::lower`.
    pub start: usize,
    pub end: usize,
    pub question: bool,
    /// Hedging of the whole sentence (see [`super::lex::hedge`]).
    pub hedge: u8,
}

pub struct Doc<'a> {
    pub src: &'a [TranscriptTurn],
    pub turns: Vec<TurnInfo>,
    pub lower: String,
    /// For each byte of `lower` (plus one past the end): char offset within its turn.
    lower_chars: Vec<u32>,
    pub norm: String,
    /// For each byte of `norm`: the original (start, end) char range within its turn.
    norm_src: Vec<(u32, u32)>,
    pub sentences: Vec<Sentence>,
    /// Original text char offset → byte offset, per turn (plus one past the end).
    orig_c2b: Vec<Vec<u32>>,
}

/// A grounded piece of the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub turn: usize,
    pub start: usize,
    pub end: usize,
}

impl<'a> Doc<'a> {
    pub fn new(src: &'a [TranscriptTurn]) -> Doc<'a> {
        let total: usize = src.iter().map(|t| t.text.len() + 1).sum();
        let mut lower = String::with_capacity(total);
        let mut lower_chars = Vec::with_capacity(total + 1);
        let mut norm = String::with_capacity(total);
        let mut norm_src = Vec::with_capacity(total);
        let mut turns = Vec::with_capacity(src.len());
        let mut orig_c2b = Vec::with_capacity(src.len());
        let mut chars: Vec<char> = Vec::new();
        for (i, t) in src.iter().enumerate() {
            if i > 0 {
                lower.push('\n');
                lower_chars.push(0);
                norm.push('\n');
                norm_src.push((0, 0));
            }
            chars.clear();
            let mut c2b = Vec::with_capacity(t.text.len() + 1);
            for (b, c) in t.text.char_indices() {
                c2b.push(b as u32);
                // One char for one char, so offsets stay those of the original; control
                // characters and newlines inside a turn become spaces.
                let l = if c.is_whitespace() || c.is_control() { ' ' } else { c.to_lowercase().next().unwrap_or(c) };
                chars.push(l);
            }
            c2b.push(t.text.len() as u32);
            let ls = lower.len();
            for (ci, c) in chars.iter().enumerate() {
                for _ in 0..c.len_utf8() {
                    lower_chars.push(ci as u32);
                }
                lower.push(*c);
            }
            let le = lower.len();
            let ns = norm.len();
            normalise(&chars, &mut norm, &mut norm_src);
            let ne = norm.len();
            turns.push(TurnInfo { index: t.index, role: t.role, lower: (ls, le), norm: (ns, ne), chars: chars.len() });
            orig_c2b.push(c2b);
        }
        lower_chars.push(0);
        let mut doc = Doc { src, turns, lower, lower_chars, norm, norm_src, sentences: vec![], orig_c2b };
        doc.sentences = split_sentences(&doc);
        let levels = super::lex::hedge_spans(&doc.lower);
        for (s, e, level) in levels {
            let i = doc.sentences.partition_point(|x| x.end <= s);
            for x in doc.sentences[i..].iter_mut().take_while(|x| x.start < e) {
                x.hedge = x.hedge.max(level);
            }
        }
        doc
    }

    pub fn is_caller(&self, turn: usize) -> bool {
        self.turns[turn].role == Role::Caller
    }

    /// The turn holding byte `b` of `lower`.
    pub fn turn_of_lower(&self, b: usize) -> usize {
        self.turns.partition_point(|t| t.lower.0 <= b).saturating_sub(1)
    }

    /// The turn holding byte `b` of `norm`.
    pub fn turn_of_norm(&self, b: usize) -> usize {
        self.turns.partition_point(|t| t.norm.0 <= b).saturating_sub(1)
    }

    /// A byte range of `lower` as a location (None when it crosses turns).
    pub fn loc_lower(&self, s: usize, e: usize) -> Option<Loc> {
        let t = self.turn_of_lower(s);
        let tr = self.turns.get(t)?;
        if e > tr.lower.1 || s > e {
            return None;
        }
        let cs = self.lower_chars[s] as usize;
        let ce = if e >= tr.lower.1 { tr.chars } else { self.lower_chars[e] as usize };
        Some(Loc { turn: t, start: cs, end: ce.max(cs) })
    }

    /// A byte range of `norm` as a location in the original (None when it crosses turns).
    pub fn loc_norm(&self, s: usize, e: usize) -> Option<Loc> {
        let t = self.turn_of_norm(s);
        let tr = self.turns.get(t)?;
        if e > tr.norm.1 || s >= e {
            return None;
        }
        let a = self.norm_src[s].0 as usize;
        let b = self.norm_src[e - 1].1 as usize;
        Some(Loc { turn: t, start: a.min(b), end: b.max(a) })
    }

    /// The original text at a location.
    pub fn text(&self, l: Loc) -> &'a str {
        let Some(t) = self.src.get(l.turn) else { return "" };
        let c2b = &self.orig_c2b[l.turn];
        let s = c2b.get(l.start).copied().unwrap_or(t.text.len() as u32) as usize;
        let e = c2b.get(l.end).copied().unwrap_or(t.text.len() as u32) as usize;
        t.text.get(s..e.max(s)).unwrap_or("")
    }

    pub fn turn_lower(&self, t: usize) -> &str {
        let (s, e) = self.turns[t].lower;
        &self.lower[s..e]
    }

    /// The sentence holding byte `b` of `lower`.
    pub fn sentence_at(&self, b: usize) -> Option<&Sentence> {
        let i = self.sentences.partition_point(|s| s.start <= b).checked_sub(1)?;
        let s = &self.sentences[i];
        (b <= s.end).then_some(s)
    }

    pub fn sentence_index_at(&self, b: usize) -> Option<usize> {
        let i = self.sentences.partition_point(|s| s.start <= b).checked_sub(1)?;
        (b <= self.sentences[i].end).then_some(i)
    }

    /// Byte in `lower` of char `c` of turn `t`.
    pub fn lower_byte(&self, t: usize, c: usize) -> usize {
        let tr = &self.turns[t];
        let slice = &self.lower_chars[tr.lower.0..tr.lower.1];
        // lower_chars is non-decreasing within the turn.
        tr.lower.0 + slice.partition_point(|&x| (x as usize) < c)
    }

    /// The `norm` byte range covering an original location.
    pub fn norm_range(&self, l: Loc) -> (usize, usize) {
        let Some(tr) = self.turns.get(l.turn) else { return (0, 0) };
        let seg = &self.norm_src[tr.norm.0..tr.norm.1];
        // Source ranges are non-decreasing along a turn's normalised text.
        let s = tr.norm.0 + seg.partition_point(|x| (x.1 as usize) <= l.start);
        let e = tr.norm.0 + seg.partition_point(|x| (x.0 as usize) < l.end);
        let s = s.min(e);
        (floor_char(&self.norm, s), ceil_char(&self.norm, e))
    }

    pub fn sentence_text(&self, s: &Sentence) -> &str {
        &self.lower[s.start..s.end]
    }

    /// The original text of a sentence, trimmed.
    pub fn sentence_orig(&self, s: &Sentence) -> (&'a str, Loc) {
        match self.loc_lower(s.start, s.end) {
            Some(l) => trim_loc(self, l),
            None => ("", Loc { turn: s.turn, start: 0, end: 0 }),
        }
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Trim whitespace and edge punctuation from a location.
pub fn trim_loc<'a>(doc: &Doc<'a>, l: Loc) -> (&'a str, Loc) {
    let text = doc.text(l);
    let lead = text.chars().take_while(|c| c.is_whitespace() || matches!(c, ',' | ';' | '-' | '—' | '.' | ':')).count();
    let trail = text.chars().rev().take_while(|c| c.is_whitespace() || matches!(c, ',' | ';' | '-' | '—' | '.' | ':' | '!' | '?')).count();
    let n = text.chars().count();
    if lead >= n {
        return ("", Loc { turn: l.turn, start: l.start, end: l.start });
    }
    let nl = Loc { turn: l.turn, start: l.start + lead, end: l.end - trail };
    (doc.text(nl), nl)
}

fn split_sentences(doc: &Doc) -> Vec<Sentence> {
    let mut out = Vec::new();
    for (ti, t) in doc.turns.iter().enumerate() {
        let text = &doc.lower[t.lower.0..t.lower.1];
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if matches!(b, b'.' | b'?' | b'!' | b';') {
                let mut j = i + 1;
                while j < bytes.len() && matches!(bytes[j], b'.' | b'?' | b'!') {
                    j += 1;
                }
                if j >= bytes.len() || bytes[j] == b' ' || bytes[j] == b'"' || bytes[j] == b')' {
                    let question = text[start..j].contains('?');
                    if !text[start..j].trim().is_empty() {
                        out.push(Sentence { turn: ti, start: t.lower.0 + start, end: t.lower.0 + j, question, hedge: 0 });
                    }
                    start = j;
                }
                i = j;
                continue;
            }
            i += 1;
        }
        if start < bytes.len() && !text[start..].trim().is_empty() {
            out.push(Sentence { turn: ti, start: t.lower.0 + start, end: t.lower.1, question: text[start..].contains('?'), hedge: 0 });
        }
    }
    out
}

// ----------------------------------------------------------------------------------------
// Normalisation of spoken / ASR-style text.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Alpha,
    Digit,
    Punct,
}

#[derive(Debug, Clone)]
struct Tok {
    s: String,
    start: usize,
    end: usize,
    kind: Kind,
    space_before: bool,
}

fn tokenize(chars: &[char]) -> Vec<Tok> {
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    let mut space = false;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' {
            space = true;
            i += 1;
            continue;
        }
        let kind = if c.is_alphabetic() {
            Kind::Alpha
        } else if c.is_ascii_digit() {
            Kind::Digit
        } else {
            Kind::Punct
        };
        let mut j = i + 1;
        if kind != Kind::Punct {
            while j < chars.len() {
                let d = chars[j];
                let same = match kind {
                    Kind::Alpha => d.is_alphabetic() || (d == '\'' && j + 1 < chars.len() && chars[j + 1].is_alphabetic()),
                    Kind::Digit => d.is_ascii_digit(),
                    Kind::Punct => false,
                };
                if !same {
                    break;
                }
                j += 1;
            }
        }
        toks.push(Tok { s: chars[i..j].iter().collect(), start: i, end: j, kind, space_before: space || toks.is_empty() });
        space = false;
        i = j;
    }
    toks
}

fn unit(w: &str) -> Option<u64> {
    Some(match w {
        "zero" | "oh" | "o" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    })
}

fn teen(w: &str) -> Option<u64> {
    Some(match w {
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

fn tens(w: &str) -> Option<u64> {
    Some(match w {
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

fn scale(w: &str) -> Option<u64> {
    Some(match w {
        "hundred" | "hundreds" => 100,
        "thousand" => 1000,
        "million" => 1_000_000,
        _ => return None,
    })
}

fn is_number_word(w: &str) -> bool {
    unit(w).is_some() || teen(w).is_some() || tens(w).is_some() || scale(w).is_some() || w == "double" || w == "triple"
}

fn symbol_word(w: &str) -> Option<&'static str> {
    Some(match w {
        "slash" | "slashes" => "/",
        "backslash" => "\\",
        "dash" | "hyphen" => "-",
        "underscore" => "_",
        "colon" => ":",
        "hashtag" | "hash" => "#",
        _ => return None,
    })
}

struct Out<'o> {
    s: &'o mut String,
    m: &'o mut Vec<(u32, u32)>,
}

impl Out<'_> {
    fn push(&mut self, text: &str, start: usize, end: usize) {
        for c in text.chars() {
            self.s.push(c);
            for _ in 0..c.len_utf8() {
                self.m.push((start as u32, end as u32));
            }
        }
    }
    fn space(&mut self, start: usize, end: usize) {
        if !self.s.is_empty() && !self.s.ends_with(' ') && !self.s.ends_with('\n') {
            self.push(" ", start, end);
        }
    }
    fn unspace(&mut self) {
        if self.s.ends_with(' ') {
            self.s.pop();
            self.m.pop();
        }
    }
}

/// Parse a run of number words starting at `i`; returns the chunks (digit string, start
/// char, end char) and the index after the run.
fn number_run(toks: &[Tok], i: usize) -> (Vec<(String, usize, usize)>, usize) {
    let mut chunks: Vec<(String, usize, usize)> = Vec::new();
    let mut j = i;
    // Current chunk state.
    let mut total: u64 = 0;
    let mut cur: u64 = 0;
    let mut last: u8 = 0; // 0 none, 1 unit, 2 teen, 3 tens, 4 hundred, 5 thousand
    let mut cstart = 0usize;
    let mut cend = 0usize;
    let mut open = false;
    let mut repeat = 1usize;
    let flush = |chunks: &mut Vec<(String, usize, usize)>, open: &mut bool, total: &mut u64, cur: &mut u64, last: &mut u8, cstart: usize, cend: usize| {
        if *open {
            chunks.push((total.saturating_add(*cur).to_string(), cstart, cend));
        }
        *open = false;
        *total = 0;
        *cur = 0;
        *last = 0;
    };
    while j < toks.len() {
        let t = &toks[j];
        if t.kind != Kind::Alpha {
            // "twenty-five"
            if t.s == "-" && !t.space_before && j + 1 < toks.len() && last == 3 && unit(&toks[j + 1].s).is_some_and(|u| u > 0) && !toks[j + 1].space_before {
                j += 1;
                continue;
            }
            break;
        }
        let w = t.s.as_str();
        if (w == "oh" || w == "o") && !open && chunks.is_empty() {
            break;
        }
        if (w == "oh" || w == "o")
            && !toks
                .get(j + 1)
                .is_some_and(|n| n.kind == Kind::Alpha && (unit(&n.s).is_some() || teen(&n.s).is_some() || tens(&n.s).is_some()) || n.kind == Kind::Digit)
        {
            // "five oh" at the end of a run is "50"? Too rare; take "oh" only inside runs.
            break;
        }
        if w == "and"
            && open
            && (last == 4 || last == 5)
            && toks.get(j + 1).is_some_and(|n| unit(&n.s).is_some() || teen(&n.s).is_some() || tens(&n.s).is_some())
        {
            j += 1;
            continue;
        }
        if w == "a" && !open && toks.get(j + 1).is_some_and(|n| n.s == "hundred" || n.s == "thousand") {
            cstart = t.start;
            cend = t.end;
            open = true;
            cur = 1;
            last = 1;
            j += 1;
            continue;
        }
        if (w == "double" || w == "triple") && toks.get(j + 1).is_some_and(|n| unit(&n.s).is_some()) {
            flush(&mut chunks, &mut open, &mut total, &mut cur, &mut last, cstart, cend);
            repeat = if w == "double" { 2 } else { 3 };
            cstart = t.start;
            j += 1;
            continue;
        }
        if let Some(u) = unit(w) {
            if repeat > 1 {
                chunks.push((u.to_string().repeat(repeat), cstart, t.end));
                repeat = 1;
                j += 1;
                continue;
            }
            if open && (last == 3 && u > 0 || last == 4 || last == 5) && !(w == "oh" || w == "o" || w == "zero") {
                cur += u;
                last = 1;
                cend = t.end;
            } else {
                flush(&mut chunks, &mut open, &mut total, &mut cur, &mut last, cstart, cend);
                open = true;
                cstart = t.start;
                cend = t.end;
                cur = u;
                last = if w == "oh" || w == "o" || w == "zero" { 9 } else { 1 };
            }
        } else if let Some(v) = teen(w) {
            if open && (last == 4 || last == 5) {
                cur += v;
            } else {
                flush(&mut chunks, &mut open, &mut total, &mut cur, &mut last, cstart, cend);
                open = true;
                cstart = t.start;
                cur = v;
            }
            last = 2;
            cend = t.end;
        } else if let Some(v) = tens(w) {
            if open && (last == 4 || last == 5) {
                cur += v;
            } else {
                flush(&mut chunks, &mut open, &mut total, &mut cur, &mut last, cstart, cend);
                open = true;
                cstart = t.start;
                cur = v;
            }
            last = 3;
            cend = t.end;
        } else if let Some(s) = scale(w) {
            if s == 100 {
                if open && (last == 1 || last == 2 || last == 3) && cur < 100 {
                    cur *= 100;
                    if w == "hundreds" {
                        // "five hundreds" → "500s"
                        chunks.push((format!("{}s", total.saturating_add(cur)), cstart, t.end));
                        open = false;
                        total = 0;
                        cur = 0;
                        last = 0;
                        j += 1;
                        break;
                    }
                } else {
                    break;
                }
                last = 4;
            } else {
                if !open || last == 9 {
                    break;
                }
                // "a million million million ...": saturate, never overflow.
                total = total.saturating_add(cur.max(if cur == 0 { 1 } else { 0 })).saturating_mul(s);
                cur = 0;
                last = 5;
            }
            cend = t.end;
        } else {
            break;
        }
        j += 1;
    }
    flush(&mut chunks, &mut open, &mut total, &mut cur, &mut last, cstart, cend);
    (chunks, j)
}

fn normalise(chars: &[char], norm: &mut String, map: &mut Vec<(u32, u32)>) {
    let toks = tokenize(chars);
    let mut out = Out { s: norm, m: map };
    let base_len = out.s.len();
    let mut i = 0;
    let mut glue_next = false;
    let mut prev_end = 0usize;
    while i < toks.len() {
        let t = &toks[i];
        let gap = |out: &mut Out, glue: bool| {
            if t.space_before && !glue && out.s.len() > base_len {
                out.space(prev_end, t.start);
            }
        };
        if t.kind == Kind::Alpha {
            let w = t.s.as_str();
            // Number words.
            if is_number_word(w) || (w == "a" && toks.get(i + 1).is_some_and(|n| n.s == "hundred" || n.s == "thousand")) {
                let (chunks, j) = number_run(&toks, i);
                if !chunks.is_empty() && j > i {
                    gap(&mut out, glue_next);
                    for (d, s, e) in &chunks {
                        out.push(d, *s, *e);
                    }
                    // "2 thousand" etc. were handled in the run; "k" right after is not spoken.
                    glue_next = false;
                    prev_end = toks[j - 1].end;
                    i = j;
                    continue;
                }
            }
            // "point" between numbers.
            if w == "point" && out.s.ends_with(|c: char| c.is_ascii_digit()) && toks.get(i + 1).is_some_and(|n| n.kind == Kind::Digit || is_number_word(&n.s)) {
                out.unspace();
                out.push(".", t.start, t.end);
                glue_next = true;
                prev_end = t.end;
                i += 1;
                continue;
            }
            // "dot" between words.
            if w == "dot" && i > 0 && toks.get(i + 1).is_some_and(|n| n.kind != Kind::Punct) && toks[i - 1].kind != Kind::Punct {
                out.unspace();
                out.push(".", t.start, t.end);
                glue_next = true;
                prev_end = t.end;
                i += 1;
                continue;
            }
            // "forward slash", "back slash".
            if w == "forward" && toks.get(i + 1).is_some_and(|n| n.s == "slash") {
                gap(&mut out, glue_next);
                out.unspace();
                out.push("/", t.start, toks[i + 1].end);
                glue_next = true;
                prev_end = toks[i + 1].end;
                i += 2;
                continue;
            }
            if let Some(sym) = symbol_word(w) {
                // "hash" and "colon" only when they join something.
                let joins = toks.get(i + 1).is_some_and(|n| n.kind != Kind::Punct || symbol_word(&n.s).is_some());
                if joins || sym == "/" {
                    // "on slash v one" keeps its space: a path starts there; "acme slash x" glues.
                    let prev_word = if i > 0 && toks[i - 1].kind == Kind::Alpha { toks[i - 1].s.as_str() } else { "" };
                    let last_word = out.s.rsplit([' ', '\n']).next().unwrap_or("");
                    let starts_path = sym == "/"
                        && !last_word.contains(['/', '.', ':'])
                        && (super::lex::common_word(prev_word)
                            || matches!(prev_word, "get" | "post" | "put" | "patch" | "delete" | "endpoint" | "path" | "route" | "hitting" | "calling"));
                    if starts_path {
                        gap(&mut out, glue_next);
                    } else if sym != "#" {
                        out.unspace();
                    } else {
                        gap(&mut out, glue_next);
                    }
                    out.push(sym, t.start, t.end);
                    glue_next = true;
                    prev_end = t.end;
                    i += 1;
                    continue;
                }
            }
            if w == "at" && toks.get(i + 1).is_some_and(|n| n.s == "sign") {
                out.unspace();
                out.push("@", t.start, toks[i + 1].end);
                glue_next = true;
                prev_end = toks[i + 1].end;
                i += 2;
                continue;
            }
            if w == "plus" && toks.get(i + 1).is_some_and(|n| n.kind == Kind::Digit || unit(&n.s).is_some_and(|_| n.s != "oh" && n.s != "o")) {
                gap(&mut out, glue_next);
                out.push("+", t.start, t.end);
                glue_next = true;
                prev_end = t.end;
                i += 1;
                continue;
            }
            // Spelled letters: "h t t p", "u s", "u.s.", "a p i".
            if w.chars().count() == 1 && w.chars().all(|c| c.is_ascii_alphabetic()) {
                let mut j = i;
                let mut letters = String::new();
                let mut end = t.end;
                while j < toks.len() {
                    let x = &toks[j];
                    if x.kind == Kind::Alpha
                        && x.s.chars().count() == 1
                        && x.s.chars().all(|c| c.is_ascii_alphabetic())
                        && (j == i || x.space_before || toks[j - 1].s == ".")
                    {
                        letters.push_str(&x.s);
                        end = x.end;
                        j += 1;
                        // "u.s." dots between letters
                        if j < toks.len()
                            && toks[j].s == "."
                            && !toks[j].space_before
                            && toks.get(j + 1).is_some_and(|n| n.kind == Kind::Alpha && n.s.chars().count() == 1)
                        {
                            j += 1;
                        } else if j < toks.len() && toks[j].s == "." && !toks[j].space_before && letters.len() >= 2 {
                            // trailing dot of "u.s."
                            end = toks[j].end;
                            j += 1;
                            break;
                        }
                    } else {
                        break;
                    }
                }
                let n = letters.len();
                if n >= 3 || (n == 2 && !letters.contains('a') && !letters.contains('i')) {
                    gap(&mut out, glue_next);
                    out.push(&letters, t.start, end);
                    // "s h h two two oh four" → "shh2204"
                    glue_next = n <= 4
                        && !matches!(
                            letters.as_str(),
                            "http" | "https" | "www" | "api" | "sso" | "sip" | "sms" | "url" | "ssl" | "tls" | "dns" | "ivr" | "sdk" | "us" | "uk" | "eu"
                        )
                        && toks.get(j).is_some_and(|nx| nx.space_before && is_number_word(&nx.s) && nx.s != "a");
                    prev_end = end;
                    i = j;
                    continue;
                }
                // "v one" → "v1", "e zero four two" → "e042"
                if w != "a" && w != "i" && toks.get(i + 1).is_some_and(|n| n.kind == Kind::Digit || is_number_word(&n.s)) {
                    gap(&mut out, glue_next);
                    out.push("v", t.start, t.end);
                    glue_next = true;
                    prev_end = t.end;
                    i += 1;
                    continue;
                }
            }
            gap(&mut out, glue_next);
            out.push(w, t.start, t.end);
            glue_next = false;
            prev_end = t.end;
            i += 1;
            continue;
        }
        if t.kind == Kind::Digit {
            // "2 thousand", "5 hundred"
            if let Some(n) = toks.get(i + 1)
                && let Some(s) = scale(&n.s)
                && let Ok(v) = t.s.parse::<u64>()
                && t.s.len() <= 4
            {
                gap(&mut out, glue_next);
                out.push(&(v * s).to_string(), t.start, n.end);
                glue_next = false;
                prev_end = n.end;
                i += 2;
                continue;
            }
            gap(&mut out, glue_next);
            out.push(&t.s, t.start, t.end);
            glue_next = false;
            prev_end = t.end;
            i += 1;
            continue;
        }
        // Punctuation: copied as written.
        gap(&mut out, glue_next);
        out.push(&t.s, t.start, t.end);
        glue_next = false;
        prev_end = t.end;
        i += 1;
    }
    out.unspace();
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialnexa_core::analysis::turns;

    fn n(s: &str) -> String {
        let t = turns(&[(Role::Caller, s)]);
        Doc::new(&t).norm
    }

    #[test]
    fn spoken_forms() {
        assert_eq!(n("h t t p five hundred"), "http 500");
        assert_eq!(n("five oh three"), "503");
        assert_eq!(n("error four oh four"), "error 404");
        assert_eq!(n("us east one"), "us east 1");
        assert_eq!(n("U.S. East 1"), "us east 1");
        assert_eq!(n("slash v one slash orders"), "/v1/orders");
        assert_eq!(n("john dot smith at gmail dot com"), "john.smith at gmail.com");
        assert_eq!(n("four one five five five five zero one two three"), "4155550123");
        assert_eq!(n("two thousand users"), "2000 users");
        assert_eq!(n("twenty five"), "25");
        assert_eq!(n("twenty-five"), "25");
        assert_eq!(n("two thousand five hundred"), "2500");
        assert_eq!(n("twenty twenty six"), "2026");
        assert_eq!(n("v two point fourteen point zero"), "v2.14.0");
        assert_eq!(n("oh no"), "oh no");
        assert_eq!(n("a hundred and fifty"), "150");
        assert_eq!(n("double five"), "55");
        assert_eq!(n("err underscore rate underscore limit"), "err_rate_limit");
        assert_eq!(n("h t t p s colon slash slash status dot acme dot io"), "https://status.acme.io");
        assert_eq!(n("hash inc dash payments"), "#inc-payments");
        assert_eq!(n("2 thousand"), "2000");
    }

    #[test]
    fn maps_back() {
        let t = turns(&[(Role::Caller, "it's on slash v one slash orders now")]);
        let d = Doc::new(&t);
        let p = d.norm.find("/v1/orders").unwrap();
        let l = d.loc_norm(p, p + "/v1/orders".len()).unwrap();
        assert_eq!(d.text(l), "slash v one slash orders");
    }
}
