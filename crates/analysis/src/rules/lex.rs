//! Shared linguistic helpers: clause scope, negation, hedging, answers, common words.

use std::sync::LazyLock;

use regex::Regex;

use super::doc::Doc;

/// Every hedge in `text` with its strength, for per-sentence precomputation.
pub fn hedge_spans(text: &str) -> Vec<(usize, usize, u8)> {
    let mut out: Vec<(usize, usize, u8)> = STRONG.find_iter(text).map(|m| (m.start(), m.end(), 2)).collect();
    out.extend(MILD.find_iter(text).map(|m| (m.start(), m.end(), 1)));
    out
}

/// Hedging strength of a clause: 0 none, 1 mild ("i think"), 2 strong ("maybe", "not sure").
pub fn hedge(text: &str) -> u8 {
    if STRONG.is_match(text) {
        2
    } else if MILD.is_match(text) {
        1
    } else {
        0
    }
}

static STRONG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(maybe|might be|might have|may be|not sure|unsure|no idea|not certain|i guess|possibly|perhaps|could be|i'm guessing|don't know|dont know|do not know|or something|not a hundred percent|not 100%|can't remember|cannot remember|don't remember|can't say)\b").expect("hedge")
});
static MILD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(i think|i believe|probably|pretty sure|i suppose|likely|i assume|i'm assuming|seems like|if i remember|iirc)\b").expect("hedge")
});

static NEGATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(not|no|never|don't|dont|doesn't|doesnt|didn't|didnt|isn't|isnt|aren't|arent|wasn't|wasnt|weren't|werent|haven't|havent|hasn't|hasnt|without|nothing|none|neither|nor|instead of|rather than|other than|except)\b")
        .expect("negator")
});

static POST_NEG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[^,;.!?]{0,20}?(?:\b(?:is|are|was|were|looks?|seems?|has been|have been|seem to be|is still|are still)\s+|'s\s+)(?:\w+\s+)?(fine|ok|okay|unaffected|not affected|working fine|working normally|working|healthy|normal|all good|totally fine|completely fine)\b|^[^,;.!?]{0,20}?\b(?:isn't|aren't|wasn't|is not|are not) (?:affected|impacted|the problem)\b")
        .expect("post neg")
});

static CLAUSE_BREAK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[,;:]|\b(but|although|though|however|whereas|so|because|and then|while)\b").expect("clause"));

/// Start byte of the clause holding `pos` in `doc.lower`.
pub fn clause_start(doc: &Doc, pos: usize) -> usize {
    // `pos` may come from arithmetic on offsets: keep it on a char inside the text.
    let pos = floor_boundary(&doc.lower, pos);
    let sent_start = doc.sentence_at(pos).map(|s| s.start).unwrap_or_else(|| doc.turns.get(doc.turn_of_lower(pos)).map_or(0, |t| t.lower.0));
    let from = pos.saturating_sub(160).max(sent_start);
    let from = floor_boundary(&doc.lower, from);
    let window = &doc.lower[from..pos];
    CLAUSE_BREAK.find_iter(window).last().map(|m| from + m.end()).unwrap_or(from)
}

/// End byte of the clause holding `pos`.
pub fn clause_end(doc: &Doc, pos: usize) -> usize {
    let sent_end = doc.sentence_at(pos).map(|s| s.end).unwrap_or_else(|| doc.turns.get(doc.turn_of_lower(pos)).map_or(doc.lower.len(), |t| t.lower.1));
    let to = ceil_boundary(&doc.lower, (pos + 160).min(sent_end));
    let pos = ceil_boundary(&doc.lower, pos.min(to));
    let window = &doc.lower[pos..to];
    CLAUSE_BREAK.find(window).map(|m| pos + m.start()).unwrap_or(to)
}

pub fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Whether the thing at `pos..end` (bytes of `doc.lower`) is negated in its clause
/// ("it's not eu-west-1", "we don't use staging", "eu-west-1 is fine").
pub fn negated(doc: &Doc, pos: usize, end: usize) -> bool {
    let cs = clause_start(doc, pos);
    let pos = floor_boundary(&doc.lower, pos);
    let before = &doc.lower[cs..pos];
    // Only the last few words before the value.
    let words: Vec<&str> = before.split_whitespace().collect();
    let tail = words[words.len().saturating_sub(6)..].join(" ");
    let tail = tail.replace("not sure", "").replace("not just", "").replace("not only", "").replace("no,", "").replace("no idea", "");
    let tail_trim = tail.trim_start();
    // "no it's eu-north-1": an answer, not a negation of what follows.
    let clause_is_sentence_start = doc.sentence_at(pos).is_none_or(|s| s.start + 2 >= cs || doc.lower[s.start..cs].trim().is_empty());
    let first = words.first().copied().unwrap_or("").trim_matches(|c: char| !c.is_alphanumeric());
    let answer_no = (tail_trim == "no" || tail_trim.starts_with("no ") && words.len() <= 1)
        || (clause_is_sentence_start
            && matches!(first, "no" | "nope" | "nah")
            && words.len() <= 7
            && !words.get(1).is_some_and(|w| matches!(*w, "errors" | "error" | "one" | "issues" | "problems" | "idea")));
    if NEGATOR.is_match(&tail) && !answer_no {
        return true;
    }
    let end = ceil_boundary(&doc.lower, end);
    let ce = clause_end(doc, end).max(end);
    let after = &doc.lower[end..ce.max(end)];
    if POST_NEG.is_match(after) && !after.contains("not working") && !after.contains("isn't working") {
        return true;
    }
    // "(it's) not in X" across the break: "no errors in the logs"
    false
}

/// Whether a caller reply affirms what the agent just said.
pub fn affirmative(text: &str) -> bool {
    static YES: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\W*(yes|yeah|yep|yup|ya|correct|that's right|thats right|that is right|right|exactly|that's it|that's correct|uh huh|mhm|sure|affirmative|spot on|perfect|great|ok|okay|that works|sounds good|indeed|ja|si|sí|oui)\b").expect("yes")
    });
    YES.is_match(text) && !negative_answer(text)
}

/// Whether a caller reply rejects what the agent just said.
pub fn negative_answer(text: &str) -> bool {
    static NO: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\W*(no|nope|nah|not quite|not exactly|that's wrong|wrong|actually no|no no|incorrect|not that one)\b").expect("no"));
    NO.is_match(text)
}

/// Correction cue in a clause ("actually", "sorry, I mean", "no, it's").
pub fn correction(text: &str) -> bool {
    static C: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(actually|i mean|sorry|correction|scratch that|make it|wait|rather|not .{1,25}, it's|no,|no it's|no its)\b").expect("corr")
    });
    C.is_match(text)
}

/// Very common English words, never a name or a company word on their own.
pub fn common_word(w: &str) -> bool {
    static SET: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| COMMON.split_whitespace().collect());
    SET.contains(w)
}

const COMMON: &str = "a about above actually after again against all almost also although always am an and any anyone anything are aren't around as at away back bad be because been before being below between big both but by call called calling calls can can't cannot could couldn't day did didn't do does doesn't doing don't done down during each early either else email even ever every everything few find first fine for from get gets getting give go going gone good got great had has hasn't have haven't having he hello help her here hey hi him his hold how however i i'd i'll i'm i've if in into is isn't it it's its just keep kind know last late later let like little long look looking lot made make many may maybe me mean might mine more morning most much must my myself need needs never new next nice no nobody none nor not nothing now of off oh ok okay on once one only or other our ours out over own please pretty quick quite rather really right same say says see seems she should since so some someone something sometimes soon sorry still such sure take than thank thanks that that's the their them then there there's these they they're thing things think this those though through time to today together tomorrow too trying um uh under until up upon us use used using very want wanted was wasn't way we we're we've well went were weren't what what's when where which while who whole why will with without won't work working would wouldn't yeah yes yesterday yet you you're your yours afternoon evening tonight calling look listen anyway also basically honestly literally just hi hiya good bye goodbye hey morning evening g'day guten tag bonjour hola olá ola grüezi hej siang boa tarde buenos dias buongiorno speaking here support team help desk urgent fast quick slow broken down issue problem question account company calling phone number having trying wondering hoping looking ringing following";
