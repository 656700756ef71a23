//! Typed values out of a caller's answer, each with the exact span it came from.
//!
//! Extraction is deliberately plain and deterministic: a test call must collect the same
//! value every time, and a person must be able to see why a value was (not) taken.

use std::collections::BTreeMap;

use dialnexa_core::PhoneNumber;
use dialnexa_core::flow::FieldType;
use serde_json::Value;

use crate::text::{Token, compact, find_phrase, first_affirmed, match_at, match_before, tokenize};

/// Confidence of a value in the caller's own typed form (digits, an address with `@`).
pub const CONFIDENCE_EXACT: f64 = 0.95;
/// Confidence of a value read from words ("jane dot doe at ...", "two hundred", a synonym).
pub const CONFIDENCE_SPOKEN: f64 = 0.85;
/// Confidence of free text: it is what the caller said, but maybe not only the answer.
pub const CONFIDENCE_FREE_TEXT: f64 = 0.75;
/// Confidence of a phone number that does not normalise to E.164.
pub const CONFIDENCE_UNNORMALISED_PHONE: f64 = 0.6;

/// A value heard in a caller turn. `start`/`end` are character offsets in that turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub value: Value,
    pub confidence: f64,
    pub start: usize,
    pub end: usize,
}

/// What a field accepts: its type and, for enums, the options and their synonyms.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec<'a> {
    pub field_type: FieldType,
    pub options: &'a [String],
    pub synonyms: &'a BTreeMap<String, Vec<String>>,
}

/// The value of the field in `text`, or `None` when the answer holds none.
pub fn extract(spec: FieldSpec<'_>, text: &str) -> Option<Extraction> {
    let tokens = tokenize(text);
    match spec.field_type {
        FieldType::String => string(text, &tokens),
        FieldType::Number => number(text, &tokens),
        FieldType::Boolean => boolean(&tokens),
        FieldType::Email => email_literal(text).or_else(|| email_spoken(text, &tokens)),
        FieldType::Phone => phone(text, &tokens),
        FieldType::Enum => enumeration(spec, &tokens),
    }
}

fn span_of(tokens: &[Token], first: usize, last: usize) -> Option<(usize, usize)> {
    Some((tokens.get(first)?.start, tokens.get(last.checked_sub(1)?)?.end))
}

// ---- string ----

/// Words said before an answer that are not part of it.
const LEADING_FILLERS: [&str; 16] = ["um", "uh", "er", "erm", "hmm", "well", "so", "oh", "ok", "okay", "yeah", "yes", "sure", "hi", "hello", "hey"];

/// Phrases that introduce an answer ("my name is Jane"). Longer ones first so that
/// "my name is" wins over "my name".
const INTRODUCTIONS: [&str; 22] = [
    "my name is",
    "the name is",
    "my name's",
    "the name's",
    "name's",
    "my email is",
    "my email address is",
    "the email is",
    "my number is",
    "i'm calling from",
    "i'm with",
    "i'm from",
    "i work for",
    "i work at",
    "we're",
    "we are",
    "this is",
    "it's",
    "it is",
    "i'm",
    "i am",
    "that's",
];

const TRAILING_FILLERS: [&str; 4] = ["thanks", "thank you", "please", "thank you very much"];

/// The answer minus leading fillers and introductions and trailing thanks, as one span of
/// the caller's text; punctuation glued to the kept words (`/v1/orders`, `C++`) is kept,
/// sentence punctuation at the ends is not.
fn string(text: &str, tokens: &[Token]) -> Option<Extraction> {
    let intros: Vec<String> = INTRODUCTIONS.iter().map(|p| compact(p)).collect();
    let trailing: Vec<String> = TRAILING_FILLERS.iter().map(|p| compact(p)).collect();
    let mut first = 0;
    loop {
        let tok = tokens.get(first)?;
        if LEADING_FILLERS.contains(&tok.norm.as_str()) {
            first += 1;
            continue;
        }
        match intros.iter().filter_map(|p| match_at(tokens, first, p)).max() {
            Some(after) => first = after,
            None => break,
        }
    }
    let mut last = tokens.len();
    while let Some(before) = trailing.iter().filter_map(|p| match_before(tokens, last, p)).filter(|&b| b > first).min() {
        last = before;
    }
    let (mut start, mut end) = span_of(tokens, first, last)?;
    let chars: Vec<char> = text.chars().collect();
    let glued = |c: char| !c.is_whitespace() && !matches!(c, ',' | '.' | ';' | ':' | '!' | '?');
    while start > 0 && chars.get(start - 1).is_some_and(|&c| glued(c)) {
        start -= 1;
    }
    while chars.get(end).is_some_and(|&c| glued(c)) {
        end += 1;
    }
    // A period inside the kept words ("v1.2", "Acme Inc. EU") stays; one after the last
    // word ends the sentence and goes.
    let value: String = chars.get(start..end)?.iter().collect();
    Some(Extraction { value: Value::String(value), confidence: CONFIDENCE_FREE_TEXT, start, end })
}

// ---- number ----

fn small_number(word: &str) -> Option<u64> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    if let Some(n) = UNITS.iter().position(|&u| u == word) {
        return Some(n as u64);
    }
    TENS.iter().position(|&t| t == word).map(|n| (n as u64 + 2) * 10)
}

fn scale(word: &str) -> Option<u64> {
    match word {
        "hundred" => Some(100),
        "thousand" => Some(1_000),
        "million" => Some(1_000_000),
        _ => None,
    }
}

fn json_number(n: f64) -> Option<Value> {
    if n.fract() == 0.0 && n.abs() < 9.0e15 { Some(Value::from(n as i64)) } else { serde_json::Number::from_f64(n).map(Value::Number) }
}

/// The first number said, in digits ("1,200", "3.5", "-2", "2 thousand") or in words
/// ("two hundred and fifty").
fn number(text: &str, tokens: &[Token]) -> Option<Extraction> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        if tok.norm.chars().all(|c| c.is_ascii_digit()) {
            // Digits glued to letters ("v1", "sev2") are names, not numbers.
            if chars.get(tok.start.wrapping_sub(1)).is_some_and(|c| c.is_alphabetic()) {
                i += 1;
                continue;
            }
            return digits_number(&chars, tokens, i);
        }
        if small_number(&tok.norm).is_some() || (tok.norm == "a" && tokens.get(i + 1).is_some_and(|t| scale(&t.norm).is_some())) {
            return words_number(tokens, i);
        }
        i += 1;
    }
    None
}

fn digits_number(chars: &[char], tokens: &[Token], i: usize) -> Option<Extraction> {
    let tok = tokens.get(i)?;
    let mut start = tok.start;
    let mut end = tok.end;
    if start > 0 && matches!(chars.get(start - 1), Some('-' | '\u{2212}')) {
        let before = start.checked_sub(2).and_then(|p| chars.get(p));
        if before.is_none_or(|c| c.is_whitespace()) {
            start -= 1;
        }
    }
    // Thousands groups, then one decimal part.
    while chars.get(end) == Some(&',')
        && chars.get(end + 1..end + 4).is_some_and(|g| g.iter().all(char::is_ascii_digit))
        && !chars.get(end + 4).is_some_and(char::is_ascii_digit)
    {
        end += 4;
    }
    if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
        end += 1;
        while chars.get(end).is_some_and(char::is_ascii_digit) {
            end += 1;
        }
    }
    let literal: String = chars.get(start..end)?.iter().filter(|&&c| c != ',').map(|&c| if c == '\u{2212}' { '-' } else { c }).collect();
    let mut n: f64 = literal.parse().ok()?;
    // "2 thousand", "1.5 million".
    let next = tokens.iter().find(|t| t.start >= end);
    if let Some(t) = next
        && let Some(s) = scale(&t.norm)
        && chars.get(end..t.start).is_some_and(|g| g.iter().all(|c| c.is_whitespace()))
    {
        n *= s as f64;
        end = t.end;
    }
    Some(Extraction { value: json_number(n)?, confidence: CONFIDENCE_EXACT, start, end })
}

fn words_number(tokens: &[Token], first: usize) -> Option<Extraction> {
    let mut total: u64 = 0;
    let mut current: u64 = 0;
    let mut last = first;
    let mut i = first;
    while let Some(tok) = tokens.get(i) {
        let w = tok.norm.as_str();
        if let Some(n) = small_number(w) {
            current = current.saturating_add(n);
        } else if w == "a" && i == first {
            current = 1;
        } else if w == "hundred" {
            current = current.max(1).saturating_mul(100);
        } else if let Some(s) = scale(w) {
            total = total.saturating_add(current.max(1).saturating_mul(s));
            current = 0;
        } else if w == "and" && i > first && tokens.get(i + 1).is_some_and(|t| small_number(&t.norm).is_some()) {
            i += 1;
            continue;
        } else {
            break;
        }
        i += 1;
        last = i;
    }
    let (start, end) = span_of(tokens, first, last)?;
    Some(Extraction { value: Value::from(total.saturating_add(current)), confidence: CONFIDENCE_SPOKEN, start, end })
}

// ---- boolean ----

const YES: [&str; 20] = [
    "yes",
    "yeah",
    "yep",
    "yup",
    "yea",
    "correct",
    "right",
    "sure",
    "affirmative",
    "absolutely",
    "definitely",
    "certainly",
    "of course",
    "true",
    "i do",
    "we do",
    "it is",
    "i think so",
    "no problem",
    "that's right",
];

const NO: [&str; 12] = ["no", "nope", "nah", "negative", "not really", "false", "incorrect", "wrong", "never", "i don't", "we don't", "don't think so"];

/// Yes or no, whichever comes first. A negated yes ("not correct") is a no, and its span
/// starts at the negator.
fn boolean(tokens: &[Token]) -> Option<Extraction> {
    // (first token, last token, value)
    let mut candidates: Vec<(usize, usize, bool)> = Vec::new();
    for p in YES {
        for m in find_phrase(tokens, p) {
            match m.negated_by {
                None => candidates.push((m.first, m.last, true)),
                Some(n) => candidates.push((n, m.last, false)),
            }
        }
    }
    for p in NO {
        for m in find_phrase(tokens, p) {
            if m.negated_by.is_none() {
                candidates.push((m.first, m.last, false));
            }
        }
    }
    let &(first, last, yes) = candidates.iter().min_by_key(|&&(f, l, _)| (f, std::cmp::Reverse(l)))?;
    let (start, end) = span_of(tokens, first, last)?;
    Some(Extraction { value: Value::Bool(yes), confidence: CONFIDENCE_EXACT, start, end })
}

// ---- email ----

fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
}

/// An address written out: `local@domain.tld`.
fn email_literal(text: &str) -> Option<Extraction> {
    let chars: Vec<char> = text.chars().collect();
    let local_char = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
    let domain_char = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    for (at, _) in chars.iter().enumerate().filter(|&(_, &c)| c == '@') {
        let mut start = at;
        while start > 0 && local_char(chars[start - 1]) {
            start -= 1;
        }
        while start < at && matches!(chars[start], '.' | '\'') {
            start += 1;
        }
        let mut end = at + 1;
        while end < chars.len() && domain_char(chars[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(chars[end - 1], '.' | '-') {
            end -= 1;
        }
        if start == at {
            continue;
        }
        let domain: String = chars[at + 1..end].iter().collect();
        if !is_domain(&domain) {
            continue;
        }
        let address: String = chars[start..end].iter().collect();
        return Some(Extraction { value: Value::String(address.to_lowercase()), confidence: CONFIDENCE_EXACT, start, end });
    }
    None
}

fn separator_word(w: &str) -> Option<char> {
    match w {
        "dot" | "period" => Some('.'),
        "underscore" => Some('_'),
        "dash" | "hyphen" => Some('-'),
        _ => None,
    }
}

/// What joins token `a` to the next token `a + 1`: a separator written between them
/// ("jane.doe"), or whitespace (`None` when neither).
fn gap<'a>(text: &'a str, tokens: &[Token], a: usize) -> Option<&'a str> {
    let (l, r) = (tokens.get(a)?, tokens.get(a + 1)?);
    text.get(l.byte_end..r.byte_start)
}

/// An address said aloud: "jane dot doe at example dot com" (or partly written:
/// "jane.doe at example.com").
const MAX_LOCAL_PART: usize = 64;
const MAX_DOMAIN: usize = 253;

fn email_spoken(text: &str, tokens: &[Token]) -> Option<Extraction> {
    let plain = |i: usize| tokens.get(i).is_some_and(|t| separator_word(&t.norm).is_none() && t.norm != "at");
    let spaced = |a: usize| gap(text, tokens, a).is_some_and(|g| g.trim().is_empty());
    let written = |a: usize| gap(text, tokens, a).filter(|g| matches!(*g, "." | "_" | "-"));
    for at in 1..tokens.len() {
        if tokens[at].norm != "at" || !plain(at - 1) || !spaced(at - 1) || !spaced(at) {
            continue;
        }
        // Walk left over the local part.
        let mut first = at - 1;
        let mut local = tokens[first].norm.clone();
        // Bounded walks keep a long turn full of "dot"s linear; no address is this long.
        while local.len() <= MAX_LOCAL_PART {
            if first >= 1
                && plain(first - 1)
                && let Some(sep) = written(first - 1)
            {
                local = format!("{}{sep}{local}", tokens[first - 1].norm);
                first -= 1;
                continue;
            }
            if first >= 2
                && plain(first - 2)
                && spaced(first - 2)
                && spaced(first - 1)
                && let Some(sep) = separator_word(&tokens[first - 1].norm)
            {
                local = format!("{}{sep}{local}", tokens[first - 2].norm);
                first -= 2;
                continue;
            }
            break;
        }
        // Walk right over the domain.
        let mut last = at + 1;
        if !plain(last) {
            continue;
        }
        let mut domain = tokens[last].norm.clone();
        while domain.len() <= MAX_DOMAIN {
            if plain(last + 1)
                && let Some(sep) = written(last)
                && sep != "_"
            {
                last += 1;
                domain.push_str(sep);
                domain.push_str(&tokens[last].norm);
                continue;
            }
            if plain(last + 2)
                && spaced(last)
                && spaced(last + 1)
                && let Some(sep) = tokens.get(last + 1).and_then(|t| separator_word(&t.norm)).filter(|&c| c != '_')
            {
                last += 2;
                domain.push(sep);
                domain.push_str(&tokens[last].norm);
                continue;
            }
            break;
        }
        if local.len() > MAX_LOCAL_PART || domain.len() > MAX_DOMAIN || !is_domain(&domain) {
            continue;
        }
        let (start, end) = span_of(tokens, first, last + 1)?;
        return Some(Extraction { value: Value::String(format!("{local}@{domain}")), confidence: CONFIDENCE_SPOKEN, start, end });
    }
    None
}

// ---- phone ----

fn digit_word(w: &str) -> Option<char> {
    Some(match w {
        "zero" | "oh" | "o" => '0',
        "one" => '1',
        "two" => '2',
        "three" => '3',
        "four" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    })
}

fn phone_digits(tok: &Token) -> Option<String> {
    if tok.norm.chars().all(|c| c.is_ascii_digit()) { Some(tok.norm.clone()) } else { digit_word(&tok.norm).map(String::from) }
}

/// A run of digit groups or digit words ("+1 (555) 010-0100", "five five five ...") of 7
/// to 15 digits. Normalised to E.164 when it can be (a 10-digit number is taken as North
/// American); otherwise the digits as said, with lower confidence.
fn phone(text: &str, tokens: &[Token]) -> Option<Extraction> {
    let chars: Vec<char> = text.chars().collect();
    let joins = |a: usize| gap(text, tokens, a).is_some_and(|g| g.chars().all(|c| c.is_whitespace() || "-.()".contains(c)));
    let mut i = 0;
    while i < tokens.len() {
        let Some(d) = phone_digits(&tokens[i]) else {
            i += 1;
            continue;
        };
        let first = i;
        let mut digits = d;
        let mut last = i + 1;
        while last < tokens.len() && joins(last - 1) {
            match phone_digits(&tokens[last]) {
                Some(more) => {
                    digits.push_str(&more);
                    last += 1;
                }
                None => break,
            }
        }
        i = last;
        if !(7..=15).contains(&digits.len()) {
            continue;
        }
        let Some((mut start, end)) = span_of(tokens, first, last) else {
            continue;
        };
        let mut plus = false;
        if start > 0 && chars.get(start - 1) == Some(&'(') {
            start -= 1;
        }
        if start > 0 && chars.get(start - 1) == Some(&'+') {
            start -= 1;
            plus = true;
        } else if first > 0 && tokens[first - 1].norm == "plus" {
            start = tokens[first - 1].start;
            plus = true;
        }
        let candidate = if plus {
            format!("+{digits}")
        } else if digits.len() == 10 && !digits.starts_with(['0', '1']) {
            format!("+1{digits}")
        } else if digits.len() == 11 && digits.starts_with('1') {
            format!("+{digits}")
        } else {
            digits.clone()
        };
        let (value, confidence) = match PhoneNumber::parse(&candidate) {
            Ok(p) => (p.as_str().to_owned(), CONFIDENCE_EXACT),
            Err(_) => (candidate, CONFIDENCE_UNNORMALISED_PHONE),
        };
        return Some(Extraction { value: Value::String(value), confidence, start, end });
    }
    None
}

// ---- enum ----

/// The option named (or meant, through a synonym) earliest in the answer.
fn enumeration(spec: FieldSpec<'_>, tokens: &[Token]) -> Option<Extraction> {
    let mut phrases: Vec<(&str, &str, bool)> = Vec::new(); // (option, phrase, is_synonym)
    for option in spec.options {
        phrases.push((option, option, false));
        for s in spec.synonyms.get(option).into_iter().flatten() {
            phrases.push((option, s, true));
        }
    }
    let texts: Vec<&str> = phrases.iter().map(|p| p.1).collect();
    let (p, m) = first_affirmed(tokens, &texts)?;
    let (option, _, synonym) = phrases.get(p)?;
    let (start, end) = span_of(tokens, m.first, m.last)?;
    Some(Extraction { value: Value::String((*option).to_owned()), confidence: if *synonym { CONFIDENCE_SPOKEN } else { CONFIDENCE_EXACT }, start, end })
}

/// The caller's words for a span, for messages.
pub(crate) fn quoted(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end.saturating_sub(start)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(field_type: FieldType, text: &str) -> Option<(Value, String)> {
        let none = BTreeMap::new();
        let spec = FieldSpec { field_type, options: &[], synonyms: &none };
        extract(spec, text).map(|e| (e.value, quoted(text, e.start, e.end)))
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    #[test]
    fn strings_drop_fillers_and_keep_the_answer() {
        let cases = [
            ("My name is Jane Doe.", "Jane Doe"),
            ("Um, this is Jane Doe, thanks", "Jane Doe"),
            ("Jane", "Jane"),
            ("Yeah it's Globex Corporation", "Globex Corporation"),
            ("I'm with Globex.", "Globex"),
            ("It's /v1/payments/charge.", "/v1/payments/charge"),
            ("We use C++ mostly!", "We use C++ mostly"),
            ("  Acme Inc. EU  ", "Acme Inc. EU"),
            ("Café Zoë", "Café Zoë"),
        ];
        for (text, want) in cases {
            let (v, span) = get(FieldType::String, text).expect(text);
            assert_eq!(v, s(want), "{text}");
            assert_eq!(span, want, "{text}");
        }
        assert_eq!(get(FieldType::String, "Um, well..."), None);
        assert_eq!(get(FieldType::String, "   "), None);
    }

    #[test]
    fn numbers() {
        let cases = [
            ("about 200 users", Value::from(200), "200"),
            ("roughly 1,200 of them", Value::from(1200), "1,200"),
            ("3.5 percent", serde_json::json!(3.5), "3.5"),
            ("it's -2 now", Value::from(-2), "-2"),
            ("maybe 2 thousand people", Value::from(2000), "2 thousand"),
            ("two hundred and fifty", Value::from(250), "two hundred and fifty"),
            ("a hundred or so", Value::from(100), "a hundred"),
            ("on v1 about twenty-five", Value::from(25), "twenty-five"),
        ];
        for (text, want, span) in cases {
            assert_eq!(get(FieldType::Number, text), Some((want, span.to_owned())), "{text}");
        }
        assert_eq!(get(FieldType::Number, "lots of them"), None);
    }

    #[test]
    fn booleans() {
        let cases = [
            ("Yes, it is", true, "Yes"),
            ("nope", false, "nope"),
            ("that's not correct", false, "not correct"),
            ("I think so", true, "I think so"),
            ("no problem", true, "no problem"),
            ("Sorry, no.", false, "no"),
        ];
        for (text, want, span) in cases {
            assert_eq!(get(FieldType::Boolean, text), Some((Value::Bool(want), span.to_owned())), "{text}");
        }
        assert_eq!(get(FieldType::Boolean, "maybe later"), None);
    }

    #[test]
    fn emails() {
        let cases = [
            ("it's Jane.Doe@Globex.com.", "jane.doe@globex.com", "Jane.Doe@Globex.com"),
            ("jane dot doe at globex dot co dot uk", "jane.doe@globex.co.uk", "jane dot doe at globex dot co dot uk"),
            ("My email is jane.doe at globex.com thanks", "jane.doe@globex.com", "jane.doe at globex.com"),
            ("ops underscore team at acme dash corp dot io", "ops_team@acme-corp.io", "ops underscore team at acme dash corp dot io"),
        ];
        for (text, want, span) in cases {
            assert_eq!(get(FieldType::Email, text), Some((s(want), span.to_owned())), "{text}");
        }
        assert_eq!(get(FieldType::Email, "I'm at home"), None);
        assert_eq!(get(FieldType::Email, "jane@localhost"), None);
    }

    #[test]
    fn phones() {
        let cases = [
            ("call me at (555) 010-0199", "+15550100199", "(555) 010-0199"),
            ("+44 20 7183 8750 is the office", "+442071838750", "+44 20 7183 8750"),
            ("five five five zero one zero zero one nine nine", "+15550100199", "five five five zero one zero zero one nine nine"),
            ("1-555-010-0199", "+15550100199", "1-555-010-0199"),
        ];
        for (text, want, span) in cases {
            assert_eq!(get(FieldType::Phone, text), Some((s(want), span.to_owned())), "{text}");
        }
        let none = BTreeMap::new();
        let spec = FieldSpec { field_type: FieldType::Phone, options: &[], synonyms: &none };
        let odd = extract(spec, "extension 0123456").expect("digits");
        assert_eq!(odd.value, s("0123456"));
        assert_eq!(odd.confidence, CONFIDENCE_UNNORMALISED_PHONE);
        assert_eq!(get(FieldType::Phone, "room 42"), None);
    }

    #[test]
    fn long_answers_stay_linear() {
        let fillers = format!("{}Jane{}", "um this is ".repeat(20_000), " thanks".repeat(20_000));
        let (v, _) = get(FieldType::String, &fillers).expect("string");
        assert_eq!(v, s("Jane"));
        let dots = "a dot ".repeat(20_000) + "b at " + &"c dot ".repeat(20_000);
        assert_eq!(get(FieldType::Email, &dots), None);
        for t in [FieldType::Number, FieldType::Boolean, FieldType::Phone] {
            let _ = get(t, &dots);
        }
    }

    #[test]
    fn enums_with_synonyms_and_negation() {
        let options = ["sev1", "sev2", "sev3"].map(String::from);
        let mut synonyms = BTreeMap::new();
        synonyms.insert("sev1".to_owned(), vec!["everything is down".to_owned()]);
        let spec = FieldSpec { field_type: FieldType::Enum, options: &options, synonyms: &synonyms };
        let e = extract(spec, "Honestly everything is down").expect("synonym");
        assert_eq!(e.value, s("sev1"));
        assert_eq!(e.confidence, CONFIDENCE_SPOKEN);
        assert_eq!(quoted("Honestly everything is down", e.start, e.end), "everything is down");
        let e = extract(spec, "not sev1, call it Sev 2").expect("option");
        assert_eq!(e.value, s("sev2"));
        assert_eq!(quoted("not sev1, call it Sev 2", e.start, e.end), "Sev 2");
        assert!(extract(spec, "no idea").is_none());
    }
}
