//! Words of a caller turn and phrase matching with simple negation.
//!
//! Matching works on words, not substrings, so "down" does not match "download"; phrases
//! are compared with their spaces and punctuation removed, so "sev1" matches "sev 1" and
//! "Sev-1", and "cannot" matches "can not".

/// How many words before a phrase are searched for a negator.
pub const NEGATION_WINDOW: usize = 3;

/// Words that negate a phrase shortly after them. Any word ending in "n't" negates too.
const NEGATORS: [&str; 16] =
    ["not", "no", "never", "cannot", "without", "neither", "nor", "nothing", "isnt", "dont", "doesnt", "wasnt", "arent", "cant", "wont", "didnt"];

/// One word of a text, lower-cased, with its position in characters and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub norm: String,
    /// Character offsets (Unicode scalar values), end exclusive.
    pub start: usize,
    pub end: usize,
    pub byte_start: usize,
    pub byte_end: usize,
    /// Clauses are split by sentence punctuation and "but": a negator does not reach
    /// across them ("No, it's down" still means down).
    pub clause: usize,
}

/// The words of a text. A word is a run of letters and digits; an apostrophe between
/// letters stays inside it ("isn't", "it's"), with the typographic one folded to `'`.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut clause = 0;
    let mut i = 0;
    let mut gap_breaks = false;
    while i < chars.len() {
        let (byte, c) = chars[i];
        if !c.is_alphanumeric() {
            if matches!(c, ',' | '.' | ';' | ':' | '!' | '?' | '\u{2014}') {
                gap_breaks = true;
            }
            i += 1;
            continue;
        }
        let start = i;
        let mut norm = String::new();
        while i < chars.len() {
            let c = chars[i].1;
            let apostrophe = matches!(c, '\'' | '\u{2019}') && i > start && chars.get(i + 1).is_some_and(|&(_, n)| n.is_alphabetic());
            if c.is_alphanumeric() {
                norm.extend(c.to_lowercase());
            } else if apostrophe {
                norm.push('\'');
            } else {
                break;
            }
            i += 1;
        }
        if gap_breaks && !tokens.is_empty() {
            clause += 1;
        }
        gap_breaks = false;
        let byte_end = chars.get(i).map_or(text.len(), |&(b, _)| b);
        let is_but = norm == "but";
        tokens.push(Token { norm, start, end: i, byte_start: byte, byte_end, clause });
        if is_but {
            gap_breaks = true;
        }
    }
    tokens
}

pub(crate) fn is_negator(word: &str) -> bool {
    NEGATORS.contains(&word) || word.ends_with("n't")
}

/// The normalised form of a phrase: its words, lower-cased, joined with nothing.
pub(crate) fn compact(phrase: &str) -> String {
    tokenize(phrase).into_iter().map(|t| t.norm).collect()
}

/// One place a phrase was heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match {
    /// Token range, end exclusive.
    pub first: usize,
    pub last: usize,
    /// The token of the negator that cancels this occurrence, if any.
    pub negated_by: Option<usize>,
}

/// Every occurrence of `phrase` in `tokens`, negated or not.
pub(crate) fn find_phrase(tokens: &[Token], phrase: &str) -> Vec<Match> {
    let want = compact(phrase);
    let mut out = Vec::new();
    if want.is_empty() {
        return out;
    }
    for first in 0..tokens.len() {
        if let Some(last) = match_at(tokens, first, &want) {
            out.push(Match { first, last, negated_by: negator_before(tokens, first) });
        }
    }
    out
}

/// Where a phrase (in `compact` form) that starts at token `first` ends, if it does.
pub(crate) fn match_at(tokens: &[Token], first: usize, want: &str) -> Option<usize> {
    let mut joined = String::new();
    for (last, tok) in tokens.iter().enumerate().skip(first) {
        joined.push_str(&tok.norm);
        if !want.starts_with(joined.as_str()) {
            return None;
        }
        if joined.len() == want.len() {
            return Some(last + 1);
        }
    }
    None
}

/// Where a phrase (in `compact` form) that ends just before token `end` starts, if it does.
pub(crate) fn match_before(tokens: &[Token], end: usize, want: &str) -> Option<usize> {
    let mut joined = String::new();
    for first in (0..end).rev() {
        joined.insert_str(0, &tokens.get(first)?.norm);
        if !want.ends_with(joined.as_str()) {
            return None;
        }
        if joined.len() == want.len() {
            return Some(first);
        }
    }
    None
}

fn negator_before(tokens: &[Token], first: usize) -> Option<usize> {
    let clause = tokens.get(first)?.clause;
    (first.saturating_sub(NEGATION_WINDOW)..first).rev().find(|&i| tokens[i].clause == clause && is_negator(&tokens[i].norm))
}

/// The earliest phrase heard and not negated, as (phrase index, match); ties go to the
/// longer phrase, so "not loading" wins over "not".
pub(crate) fn first_affirmed<S: AsRef<str>>(tokens: &[Token], phrases: &[S]) -> Option<(usize, Match)> {
    let mut best: Option<(usize, Match)> = None;
    for (p, phrase) in phrases.iter().enumerate() {
        for m in find_phrase(tokens, phrase.as_ref()) {
            if m.negated_by.is_some() {
                continue;
            }
            let better = match &best {
                None => true,
                Some((_, b)) => m.first < b.first || (m.first == b.first && m.last > b.last),
            };
            if better {
                best = Some((p, m));
            }
        }
    }
    best
}

/// The first negated occurrence of any phrase, to explain why nothing matched.
pub(crate) fn first_negated<S: AsRef<str>>(tokens: &[Token], phrases: &[S]) -> Option<(usize, Match)> {
    phrases
        .iter()
        .enumerate()
        .flat_map(|(p, phrase)| find_phrase(tokens, phrase.as_ref()).into_iter().filter(|m| m.negated_by.is_some()).map(move |m| (p, m)))
        .min_by_key(|(_, m)| m.first)
}

/// The text of tokens `first..last` as the caller said it.
pub(crate) fn slice<'a>(text: &'a str, tokens: &[Token], first: usize, last: usize) -> &'a str {
    match (tokens.get(first), last.checked_sub(1).and_then(|l| tokens.get(l))) {
        (Some(a), Some(b)) if a.byte_start <= b.byte_end => text.get(a.byte_start..b.byte_end).unwrap_or(""),
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(text: &str, phrase: &str) -> bool {
        first_affirmed(&tokenize(text), &[phrase]).is_some()
    }

    #[test]
    fn words_and_offsets() {
        let t = tokenize("It’s DOWN, isn't it? Café 502");
        let words: Vec<&str> = t.iter().map(|t| t.norm.as_str()).collect();
        assert_eq!(words, ["it's", "down", "isn't", "it", "café", "502"]);
        assert_eq!((t[4].start, t[4].end), (21, 25));
        assert_eq!(&"It’s DOWN, isn't it? Café 502"[t[4].byte_start..t[4].byte_end], "Café");
        assert_eq!(t[1].clause, 0);
        assert_eq!(t[2].clause, 1);
        assert_eq!(t[4].clause, 2);
    }

    #[test]
    fn whole_words_only() {
        assert!(heard("the site is down", "down"));
        assert!(!heard("the download failed", "down"));
        assert!(heard("we get a five hundred", "five hundred"));
        assert!(heard("Sev-1 for sure", "sev1"));
        assert!(heard("it's NOT LOADING", "not loading"));
    }

    #[test]
    fn negation() {
        assert!(!heard("it's not down", "down"));
        assert!(!heard("it isn't really down", "down"));
        assert!(!heard("it doesn't look down", "down"));
        assert!(!heard("never been down", "down"));
        // Beyond three words the negator no longer applies.
        assert!(heard("not sure why but the whole site is down", "down"));
        assert!(heard("I don't know why the site is down", "down"));
        // Punctuation ends the negator's reach.
        assert!(heard("No, it's down", "down"));
        assert!(heard("it's not slow, it's down", "down"));
        let t = tokenize("it's not down");
        let (_, m) = first_negated(&t, &["down"]).expect("negated");
        assert_eq!(m.negated_by, Some(1));
    }

    #[test]
    fn earliest_then_longest() {
        let t = tokenize("not loading and down");
        let (p, _) = first_affirmed(&t, &["down", "not loading", "not"]).expect("match");
        assert_eq!(p, 1);
        assert_eq!(slice("not loading and down", &t, 0, 2), "not loading");
    }
}
