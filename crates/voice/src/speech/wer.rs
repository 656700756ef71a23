//! Word error rate, for checking transcripts against what was said.
//!
//! Both texts are normalised first: lower case, punctuation dropped (apostrophes inside words
//! too: "don't" = "dont"), hyphens and slashes split words, and numbers written as words
//! ("503" = "five hundred three", "1,200" = "one thousand two hundred", "2.5" = "two point
//! five", "50%" = "fifty percent"), so that "It's 503." and "its five hundred three" match.

/// Word-level edit distance (substitutions + deletions + insertions) divided by the number
/// of reference words, after [`normalize_words`]. An empty reference gives 0 for an empty
/// hypothesis and 1 otherwise.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = normalize_words(reference);
    let h = normalize_words(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&r, &h) as f64 / r.len() as f64
}

/// The normalised words of a text (see the module documentation).
pub fn normalize_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = text.to_lowercase().replace('%', " percent ").replace('&', " and ").replace('+', " plus ");
    for raw in lower.split(|c: char| c.is_whitespace() || matches!(c, '-' | '–' | '—' | '/' | '_')) {
        // Keep digits' separators for numbers ("1,200", "2.5"), drop the rest of the punctuation.
        let token: String = raw.chars().filter(|c| c.is_alphanumeric() || matches!(c, ',' | '.')).collect();
        let token = token.trim_matches(|c| c == ',' || c == '.');
        if token.is_empty() {
            continue;
        }
        if token.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '.') && token.chars().any(|c| c.is_ascii_digit()) {
            number_words(token, &mut out);
            continue;
        }
        // Words glued to digits ("3pm", "mp3"): split at the boundaries.
        let mut part = String::new();
        let mut digits = false;
        for c in token.chars().filter(|c| c.is_alphanumeric()) {
            if !part.is_empty() && c.is_ascii_digit() != digits {
                push_part(&part, digits, &mut out);
                part.clear();
            }
            digits = c.is_ascii_digit();
            part.push(c);
        }
        if !part.is_empty() {
            push_part(&part, digits, &mut out);
        }
    }
    out
}

fn push_part(part: &str, digits: bool, out: &mut Vec<String>) {
    if digits {
        number_words(part, out);
    } else {
        out.push(part.to_owned());
    }
}

/// "1,200" → one thousand two hundred; "2.5" → two point five; very long digit runs are read digit by digit.
fn number_words(token: &str, out: &mut Vec<String>) {
    let (int, frac) = match token.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (token, None),
    };
    let int: String = int.chars().filter(char::is_ascii_digit).collect();
    if !int.is_empty() {
        match int.parse::<u64>() {
            Ok(n) if int.len() <= 15 && !(int.len() > 1 && int.starts_with('0')) => cardinal(n, out),
            _ => int.chars().for_each(|d| out.push(DIGITS[(d as u8 - b'0') as usize].to_owned())),
        }
    }
    if let Some(frac) = frac {
        let frac: Vec<char> = frac.chars().filter(char::is_ascii_digit).collect();
        if !frac.is_empty() {
            out.push("point".to_owned());
            frac.iter().for_each(|&d| out.push(DIGITS[(d as u8 - b'0') as usize].to_owned()));
        }
    }
}

const DIGITS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
const TEENS: [&str; 10] = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

fn cardinal(n: u64, out: &mut Vec<String>) {
    if n == 0 {
        out.push("zero".to_owned());
        return;
    }
    let mut groups = Vec::new();
    let mut m = n;
    while m > 0 {
        groups.push((m % 1000) as usize);
        m /= 1000;
    }
    const SCALES: [&str; 5] = ["", "thousand", "million", "billion", "trillion"];
    for (i, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            continue;
        }
        if g >= 100 {
            out.push(DIGITS[g / 100].to_owned());
            out.push("hundred".to_owned());
        }
        let r = g % 100;
        if r >= 20 {
            out.push(TENS[r / 10].to_owned());
            if r % 10 != 0 {
                out.push(DIGITS[r % 10].to_owned());
            }
        } else if r >= 10 {
            out.push(TEENS[r - 10].to_owned());
        } else if r > 0 {
            out.push(DIGITS[r].to_owned());
        }
        if i > 0 {
            out.push(SCALES[i].to_owned());
        }
    }
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize_words(" It's  DOWN -- with 503 errors!"), ["its", "down", "with", "five", "hundred", "three", "errors"]);
        assert_eq!(
            normalize_words("1,200 and 2.5, 50% off, 3pm, 007"),
            ["one", "thousand", "two", "hundred", "and", "two", "point", "five", "fifty", "percent", "off", "three", "pm", "zero", "zero", "seven"]
        );
        assert_eq!(normalize_words("e-mail ada@example.com"), ["e", "mail", "adaexamplecom"]);
        assert_eq!(normalize_words("2,000,017 19 40"), ["two", "million", "seventeen", "nineteen", "forty"]);
        assert!(normalize_words(" ... ").is_empty());
    }

    #[test]
    fn rates() {
        assert_eq!(word_error_rate("Hello there.", " hello  there"), 0.0);
        assert_eq!(word_error_rate("the checkout API returns 503", "The checkout API returns five hundred three."), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a b c d e f"), 0.5);
        assert_eq!(word_error_rate("a b", ""), 1.0);
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate("", "uh"), 1.0);
    }
}
