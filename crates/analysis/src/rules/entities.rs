//! Typed entities found in the normalised view: emails, phones, URLs, regions, HTTP statuses,
//! error codes and messages, endpoints, versions and deploys, ids, repos, channels.

use std::sync::LazyLock;

use regex::Regex;

use super::doc::{Doc, Loc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Phone,
    Url,
    Region,
    Status,
    ErrorCode,
    ErrorText,
    Endpoint,
    Deploy,
    Id,
    Repo,
    Channel,
}

#[derive(Debug, Clone)]
pub struct Mention {
    pub kind: Kind,
    pub value: String,
    pub loc: Loc,
    /// Byte range in `Doc::lower`.
    pub lstart: usize,
    pub lend: usize,
    /// For ids: what the id is of ("ticket", "invoice", "account", ...).
    pub context: &'static str,
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect(stringify!($name)));
    };
}

re!(EMAIL, r"\b[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b");
re!(
    SPOKEN_AT,
    r" at ((?:[a-z0-9-]+ ){0,3}[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|co|dev|app|ai|uk|de|fr|es|it|nl|au|ca|us|eu|info|biz|me|cloud|tech)\b(?:\.[a-z]{2})?)"
);
re!(PHONE, r"(?:\+ ?)?\(?\d[\d \-().]{6,20}\d");
re!(
    URL,
    r"\b(?:https?|wss?)://[a-z0-9.-]+(?::\d+)?(?:/[^\s,;!?'\x22)\]]*)?|\b(?:www\.)?(?:[a-z0-9-]+\.)+(?:com|io|org|net|dev|app|co|ai|cloud)(?:/[^\s,;!?'\x22)\]]*)?"
);
re!(
    AWS,
    r"\b(us|eu|ap|a p|sa|ca|me|af|il|mx|europe|asia|australia|northamerica|southamerica)[- ]?(north ?east|north ?west|south ?east|south ?west|east|west|north|south|central)[- ]?(\d)\b"
);
re!(
    AZURE,
    r"\b(eastus|westus|centralus|northcentralus|southcentralus|westeurope|northeurope|southeastasia|eastasia|uksouth|ukwest|australiaeast|japaneast)(\d?)\b"
);
re!(
    NAMED_REGION,
    r"\b(?:aws )?(northern virginia|n virginia|virginia|ohio|oregon|northern california|ireland|london|paris|frankfurt|stockholm|milan|tokyo|seoul|osaka|singapore|sydney|mumbai|sao paulo|são paulo|canada central|montreal|cape town|bahrain|jakarta|hong kong) region\b"
);
re!(STATUS, r"\b([1-6]\d\d)(s|es)?\b");
re!(ERR_CODE_ORIG, r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b[A-Z][a-zA-Z]+(?:Exception|Error)\b|\b[A-Z]{1,3}\d{2,5}\b");
re!(ERR_CODE_NORM, r"\berr_[a-z0-9_]+\b|\b(?:says|error|code|shows|with) ([a-z]{1,2}\d{3,4})\b");
re!(QUOTED, r#"(?:^|[\s(:,])(?:'([^'\n]{3,100}?)'|"([^"\n]{3,100}?)"|“([^”\n]{3,100}?)”|‘([^’\n]{3,100}?)’)(?:[\s.,;:!?)]|$)"#);
re!(AFTER_COLON, r"(?i)\b(?:error|message|it says|says|reads)\s*:\s*([^.!?\n]{3,80})");
re!(
    ERR_PHRASE,
    r"\b(?:(?:delivery|connection|gateway|request|read|socket|upstream|webhook) )?(?:timeout|timed out|time out)\b|\b(?:connection refused|connection reset|invalid signature|signature (?:mismatch|invalid|verification failed)|insufficient privileges|insufficient permissions|registration failed|access denied|permission denied|unauthori[sz]ed|forbidden|too many requests|rate limit(?:ed| exceeded)?|service unavailable|bad gateway|gateway timeout|internal server error|not found|invalid (?:card number|api key|token|credentials|request|parameter|phone number|number)|card declined|payment declined|declined|fast busy|no results|token expired|certificate (?:has )?expired|ssl handshake failed|handshake failed|out of memory|dns resolution failed|authentication failed|login failed|sync failed|upload failed|validation error|bad request|server error|seat limit reached|quota exceeded|limit exceeded|blank page|white screen|spinning wheel)\b"
);
re!(
    ENDPOINT,
    r"(?:\b(?:get|post|put|patch|delete) )?(?:\b(?:https?|wss?)://[a-z0-9.-]+(?::\d+)?)?(?:^|[\s(]|\b)(/[a-z0-9_{}.:@-]*[a-z][a-z0-9_{}.:@-]*(?:/[a-z0-9_{}.:@-]+)*/?)"
);
re!(
    VERSION,
    r"\b(?:(?:version|release|build|deploy|deployment|rollout|update|upgrade|upgraded|upgrading|patch|sdk|hotfix|flow builder|v)(?: number| no| #)? ?)?(v?\d+\.\d+(?:\.\d+){0,2}(?:-[a-z0-9.]+)?)\b|\b(?:deploy|deployment|build|release|rollout)(?: number| no| #)? ?#?(\d{3,})\b|\b(?:commit|sha|hash) ([0-9a-f]{7,40})\b"
);
re!(ID, r"\b([a-z]{1,8}(?:-[a-z0-9]+)*-\d[a-z0-9]*(?:-[a-z0-9]+)*|[a-z]{2,6}\d{3,}|\d{4,})\b");
re!(
    ID_CONTEXT,
    r"\b(ticket|case|reference|ref|incident|request|sr|zendesk|jira|issue|invoice|inv|order|po|purchase order|contract|claim|credit note|shipment|return|rma|booking|statement|receipt|quote|subscription|account|acct|workspace|org|organization|tenant|customer id|customer number|member|policy|record|agreement)\b"
);
re!(REPO, r"(?:^|[\s(])([a-z0-9][a-z0-9_.-]{1,38}/[a-z0-9][a-z0-9_.-]{1,60})\b");
re!(CHANNEL, r"(?:^|[\s(])(#[a-z0-9][a-z0-9_-]{1,60})");
re!(CHANNEL_NAMED, r"\b(?:the |our )?([a-z0-9]+(?:-[a-z0-9]+)+) (?:slack )?channel\b");

const KNOWN_STATUS: &[u16] = &[
    400, 401, 402, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 415, 418, 422, 423, 424, 425, 426, 428, 429, 431, 451, 480, 481, 482, 483, 484, 485, 486,
    487, 488, 491, 500, 501, 502, 503, 504, 505, 507, 508, 511, 600, 603, 604, 606,
];

fn lpos(doc: &Doc, loc: Loc) -> (usize, usize) {
    (doc.lower_byte(loc.turn, loc.start), doc.lower_byte(loc.turn, loc.end))
}

fn mention(doc: &Doc, kind: Kind, value: String, ns: usize, ne: usize) -> Option<Mention> {
    let loc = doc.loc_norm(ns, ne)?;
    let (lstart, lend) = lpos(doc, loc);
    Some(Mention { kind, value, loc, lstart, lend, context: "" })
}

fn country_for(tz: &str) -> phonenumber::country::Id {
    use phonenumber::country::Id::*;
    let z = tz;
    match z {
        _ if z.starts_with("Australia/") => AU,
        "Europe/London" => GB,
        "Europe/Dublin" => IE,
        "Europe/Berlin" => DE,
        "Europe/Paris" => FR,
        "Europe/Madrid" => ES,
        "Europe/Rome" => IT,
        "Europe/Amsterdam" => NL,
        "Europe/Helsinki" => FI,
        "Europe/Stockholm" => SE,
        "Europe/Oslo" => NO,
        "Europe/Copenhagen" => DK,
        "Europe/Zurich" => CH,
        "Europe/Vienna" => AT,
        "Europe/Lisbon" => PT,
        "Europe/Warsaw" => PL,
        "Asia/Tokyo" => JP,
        "Asia/Singapore" => SG,
        "Asia/Kolkata" | "Asia/Calcutta" => IN,
        "Asia/Manila" => PH,
        "Asia/Jakarta" => ID,
        "Asia/Dubai" => AE,
        "Asia/Seoul" => KR,
        "Asia/Hong_Kong" => HK,
        "Pacific/Auckland" => NZ,
        "America/Sao_Paulo" => BR,
        "America/Mexico_City" => MX,
        "America/Bogota" => CO,
        _ => US,
    }
}

/// A phone number in E.164, read in the caller's country.
pub fn e164(raw: &str, tz: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 8 || digits.len() > 15 {
        return None;
    }
    let plus = raw.trim_start().starts_with('+');
    let parsed = if plus || digits.len() == 11 && digits.starts_with('1') && country_for(tz) == phonenumber::country::Id::US {
        phonenumber::parse(None, format!("+{digits}"))
    } else {
        phonenumber::parse(Some(country_for(tz)), &digits)
    };
    let p = parsed.ok()?;
    let s = p.format().mode(phonenumber::Mode::E164).to_string();
    (s.len() >= 9).then_some(s)
}

pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    let mut dbl = false;
    for c in digits.chars().rev() {
        let Some(mut d) = c.to_digit(10) else { return false };
        if dbl {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        dbl = !dbl;
    }
    sum % 10 == 0
}

fn canonical_region(prefix: &str, dir: &str, n: &str) -> String {
    match prefix {
        "europe" | "asia" | "australia" | "northamerica" | "southamerica" => format!("{prefix}-{dir}{n}"),
        "us" if dir == "central" => format!("us-central{n}"),
        _ => format!("{prefix}-{dir}-{n}"),
    }
}

fn named_region(name: &str) -> Option<&'static str> {
    Some(match name {
        "northern virginia" | "n virginia" | "virginia" => "us-east-1",
        "ohio" => "us-east-2",
        "northern california" => "us-west-1",
        "oregon" => "us-west-2",
        "ireland" => "eu-west-1",
        "london" => "eu-west-2",
        "paris" => "eu-west-3",
        "frankfurt" => "eu-central-1",
        "stockholm" => "eu-north-1",
        "milan" => "eu-south-1",
        "tokyo" => "ap-northeast-1",
        "seoul" => "ap-northeast-2",
        "osaka" => "ap-northeast-3",
        "singapore" => "ap-southeast-1",
        "sydney" => "ap-southeast-2",
        "jakarta" => "ap-southeast-3",
        "mumbai" => "ap-south-1",
        "hong kong" => "ap-east-1",
        "sao paulo" | "são paulo" => "sa-east-1",
        "canada central" | "montreal" => "ca-central-1",
        "cape town" => "af-south-1",
        "bahrain" => "me-south-1",
        _ => return None,
    })
}

/// Every entity in the transcript, in order.
pub fn find_all(doc: &Doc, tz: &str) -> Vec<Mention> {
    let mut out = vec![];
    let n = &doc.norm;
    // Emails, written and spoken ("john.smith at gmail.com").
    for m in EMAIL.find_iter(n) {
        out.extend(mention(doc, Kind::Email, m.as_str().to_string(), m.start(), m.end()));
    }
    for c in SPOKEN_AT.captures_iter(n) {
        let (Some(all), Some(dom)) = (c.get(0), c.get(1)) else { continue };
        let domain: String = dom.as_str().split(' ').collect();
        // The local part: up to three words back, stopping at a cue word.
        let before = &n[..all.start()];
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let toks: Vec<(usize, &str)> = before[line_start..]
            .split(' ')
            .scan(line_start, |pos, w| {
                let s = *pos;
                *pos += w.len() + 1;
                Some((s, w))
            })
            .collect();
        let mut local = String::new();
        let mut start = all.start();
        for (s, w) in toks.iter().rev().take(3) {
            let w2 = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '.' && c != '_' && c != '-');
            if w2.is_empty()
                || w2 != *w
                || super::lex::common_word(w2) && w2.len() > 1
                || matches!(w2, "email" | "mail" | "address" | "is" | "its" | "it's" | "me" | "to" | "at" | "e-mail")
            {
                break;
            }
            local.insert_str(0, w2);
            start = *s;
        }
        if local.is_empty() || !local.chars().next().is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        // Only when it reads as an email: an email cue nearby or a spelled local part.
        let ctx_from = super::lex::floor_boundary(n, start.saturating_sub(60));
        let ctx = &n[ctx_from..all.end()];
        if !(ctx.contains("email")
            || ctx.contains("mail")
            || ctx.contains("address")
            || ctx.contains("send")
            || ctx.contains("reach")
            || ctx.contains("contact")
            || local.contains('.')
            || local.contains('_'))
        {
            continue;
        }
        let value = format!("{}@{}", local, domain);
        if !out.iter().any(|m: &Mention| m.kind == Kind::Email && m.value == value && m.loc.turn == doc.turn_of_norm(start)) {
            out.extend(mention(doc, Kind::Email, value, start, all.end()));
        }
    }
    // URLs.
    for m in URL.find_iter(n) {
        let v = m.as_str().trim_end_matches(['.', ',']);
        let ctx_from = super::lex::floor_boundary(n, m.start().saturating_sub(40));
        if v.contains('@') || EMAIL.is_match(&n[ctx_from..m.end()]) && !v.contains("://") {
            continue;
        }
        if !v.contains("://") && !v.starts_with("www.") && !v.contains('/') && !v.contains("status") {
            // A bare domain ("example.com"): only when it looks like a site, not an email's half.
            let pre = &n[..m.start()];
            if pre.ends_with('@') || pre.ends_with(" at ") {
                continue;
            }
        }
        out.extend(mention(doc, Kind::Url, v.to_string(), m.start(), m.start() + v.len()));
    }
    // Phones.
    for m in PHONE.find_iter(n) {
        let raw = m.as_str().trim_end_matches(['.', '-', ' ', '(', ')']);
        let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() < 8 || digits.len() > 15 {
            continue;
        }
        // Not a card number, a date or a decimal.
        if digits.len() >= 13 && luhn(&digits) {
            continue;
        }
        if raw.contains('.') && !raw.contains(' ') && raw.matches('.').count() != 2 {
            continue;
        }
        let pre = &n[..m.start()];
        if pre.ends_with('-') || pre.ends_with('/') || pre.ends_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let ctx_from = super::lex::floor_boundary(n, m.start().saturating_sub(30));
        let ctx = &n[ctx_from..m.start()];
        if ["ticket", "order", "invoice", "account", "case", "card", "ssn", "social", "reference", "id ", "number is"]
            .iter()
            .any(|w| ctx.ends_with(&format!("{w} ")) || ctx.ends_with(w))
            && !ctx.contains("phone")
            && !ctx.contains("call")
        {
            continue;
        }
        if let Some(v) = e164(raw, tz) {
            out.extend(mention(doc, Kind::Phone, v, m.start(), m.start() + raw.len()));
        }
    }
    // Regions.
    for c in AWS.captures_iter(n) {
        let (Some(a), Some(p), Some(d), Some(k)) = (c.get(0), c.get(1), c.get(2), c.get(3)) else { continue };
        out.extend(mention(doc, Kind::Region, canonical_region(&p.as_str().replace(' ', ""), &d.as_str().replace(' ', ""), k.as_str()), a.start(), a.end()));
    }
    for c in AZURE.captures_iter(n) {
        let Some(a) = c.get(0) else { continue };
        out.extend(mention(doc, Kind::Region, a.as_str().to_string(), a.start(), a.end()));
    }
    for c in NAMED_REGION.captures_iter(n) {
        let (Some(a), Some(name)) = (c.get(0), c.get(1)) else { continue };
        if let Some(r) = named_region(name.as_str()) {
            out.extend(mention(doc, Kind::Region, r.to_string(), a.start(), a.end()).map(|mut m| {
                m.context = "named";
                m
            }));
        }
    }
    // HTTP / SIP statuses with context.
    for c in STATUS.captures_iter(n) {
        let (Some(a), Some(code)) = (c.get(0), c.get(1)) else { continue };
        let v: u16 = code.as_str().parse().unwrap_or(0);
        let before = &n[super::lex::floor_boundary(n, a.start().saturating_sub(24))..a.start()];
        let after = &n[a.end()..super::lex::ceil_boundary(n, (a.end() + 28).min(n.len()))];
        if before.ends_with('/')
            || before.ends_with('.')
            || before.ends_with('$')
            || before.ends_with(',')
            || after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit())
            || after.starts_with(',') && after[1..].starts_with(|c: char| c.is_ascii_digit())
            || after.starts_with('/')
        {
            continue;
        }
        let pre_ok = [
            "http",
            "status",
            "error",
            "errors",
            "code",
            "a",
            "an",
            "got",
            "get",
            "gets",
            "getting",
            "returns",
            "return",
            "returning",
            "returned",
            "throws",
            "throw",
            "throwing",
            "gives",
            "giving",
            "with",
            "sip",
            "seeing",
            "see",
            "receive",
            "receiving",
            "respond",
            "responds",
            "responding",
            "hitting",
            "hit",
            "all",
            "of",
            "and",
            "or",
            "the",
            "back",
            "mostly",
            "some",
            "just",
        ]
        .iter()
        .any(|w| before.trim_end().ends_with(&format!(" {w}")) || before.trim_end() == *w || before.trim_end().ends_with(&format!("\n{w}")));
        let post_ok = after.trim_start().starts_with(|ch: char| ch.is_ascii_alphabetic())
            && [
                "error",
                "response",
                "status",
                "unauthori",
                "forbidden",
                "not found",
                "too many",
                "service unavailable",
                "bad gateway",
                "gateway timeout",
                "internal server",
                "from",
                "on ",
                "back",
                "code",
                "when",
                "every",
                "for every",
                "temporarily unavailable",
                "busy",
                "request timeout",
                "conflict",
                "bad request",
                "unprocessable",
                "payment required",
            ]
            .iter()
            .any(|w| after.trim_start().starts_with(w))
            || c.get(2).is_some();
        let strong_pre = ["http", "status", "error", "code", "sip"].iter().any(|w| before.trim_end().ends_with(w));
        if !(KNOWN_STATUS.contains(&v) && (pre_ok || post_ok) || strong_pre && (100..700).contains(&v)) {
            continue;
        }
        // Not an amount of things ("500 users", "200 milliseconds").
        if [
            "users",
            "user",
            "milliseconds",
            "ms",
            "seconds",
            "minutes",
            "calls",
            "requests",
            "people",
            "rows",
            "records",
            "customers",
            "agents",
            "dollars",
            "euros",
            "times",
            "of ",
            "per",
            "percent",
            "%",
            "k ",
            "gb",
            "mb",
        ]
        .iter()
        .any(|w| after.trim_start().starts_with(w))
        {
            continue;
        }
        out.extend(mention(doc, Kind::Status, code.as_str().to_string(), code.start(), code.end()));
    }
    // Error codes and exception names (written forms, matched on the original text).
    for (ti, t) in doc.src.iter().enumerate() {
        if t.text.len() > 50_000 {
            continue;
        }
        for m in ERR_CODE_ORIG.find_iter(&t.text) {
            let s = m.as_str();
            // "E042"-like codes need an error context; plain acronyms ("SSO", "API") are not codes.
            if !s.contains('_') && !s.ends_with("Exception") && !s.ends_with("Error") {
                let pre = t.text[..m.start()].to_lowercase();
                if !(pre.trim_end().ends_with("error") || pre.trim_end().ends_with("code") || pre.trim_end().ends_with("error code")) {
                    continue;
                }
            }
            let cs = t.text[..m.start()].chars().count();
            let loc = Loc { turn: ti, start: cs, end: cs + s.chars().count() };
            let (lstart, lend) = lpos(doc, loc);
            out.push(Mention { kind: Kind::ErrorCode, value: s.to_string(), loc, lstart, lend, context: "" });
        }
        for c in QUOTED.captures_iter(&t.text) {
            let Some(q) = c.get(1).or(c.get(2)).or(c.get(3)).or(c.get(4)) else { continue };
            let qs = q.as_str();
            if qs.split_whitespace().count() > 14 || !qs.chars().any(|c| c.is_alphabetic()) {
                continue;
            }
            let cs = t.text[..q.start()].chars().count();
            let loc = Loc { turn: ti, start: cs, end: cs + qs.chars().count() };
            let (lstart, lend) = lpos(doc, loc);
            out.push(Mention { kind: Kind::ErrorText, value: qs.to_string(), loc, lstart, lend, context: "quoted" });
        }
        for c in AFTER_COLON.captures_iter(&t.text) {
            let Some(q) = c.get(1) else { continue };
            let qs = q.as_str().trim().trim_matches(['\'', '"', '“', '”']);
            if qs.is_empty() {
                continue;
            }
            let off = q.as_str().find(qs).unwrap_or(0);
            let cs = t.text[..q.start() + off].chars().count();
            let loc = Loc { turn: ti, start: cs, end: cs + qs.chars().count() };
            let (lstart, lend) = lpos(doc, loc);
            out.push(Mention { kind: Kind::ErrorText, value: qs.to_string(), loc, lstart, lend, context: "quoted" });
        }
    }
    for c in ERR_CODE_NORM.captures_iter(n) {
        let Some(m) = c.get(1).or(c.get(0)) else { continue };
        if out.iter().any(|x: &Mention| x.kind == Kind::ErrorCode && x.value.eq_ignore_ascii_case(m.as_str())) {
            continue;
        }
        out.extend(mention(doc, Kind::ErrorCode, m.as_str().to_uppercase(), m.start(), m.end()));
    }
    for m in ERR_PHRASE.find_iter(&doc.lower) {
        if let Some(loc) = doc.loc_lower(m.start(), m.end()) {
            out.push(Mention { kind: Kind::ErrorText, value: m.as_str().to_string(), loc, lstart: m.start(), lend: m.end(), context: "" });
        }
    }
    // Endpoints.
    for c in ENDPOINT.captures_iter(n) {
        let (Some(a), Some(p)) = (c.get(0), c.get(1)) else { continue };
        let path = p.as_str().trim_end_matches(['.', ',', ':']);
        if path.len() < 3 || !path[1..].contains(|ch: char| ch.is_ascii_alphabetic()) {
            continue;
        }
        let whole = a.as_str().trim_start_matches([' ', '(']);
        let whole = &whole[..whole.len() - (p.as_str().len() - path.len())];
        let start = a.end() - p.as_str().len() - (whole.len() - path.len());
        if whole.contains("status.") || (!whole.contains("://") && n[..p.start()].ends_with(|ch: char| ch.is_ascii_alphanumeric())) {
            continue;
        }
        out.extend(mention(doc, Kind::Endpoint, whole.to_string(), start, start + whole.len()));
    }
    // Versions, releases, deploys, commits.
    for c in VERSION.captures_iter(n) {
        let Some(a) = c.get(0) else { continue };
        let v = a.as_str();
        let id = c.get(1).or(c.get(2)).or(c.get(3)).map(|m| m.as_str()).unwrap_or("");
        // A bare "2.5" is a number; need a keyword or three parts or a "v".
        let keyword = v.len() > id.len();
        if c.get(1).is_some() && !keyword && id.matches('.').count() < 2 && !id.starts_with('v') {
            continue;
        }
        if n[..a.start()].ends_with(['.', '/', '$']) || n[a.end()..].starts_with(['%', '/']) {
            continue;
        }
        // Drop verbs from the value: "upgrading to 5.0.0" → "5.0.0".
        let value = if v.starts_with("upgrad") || v.starts_with("update") || v.starts_with("patch") { id.to_string() } else { v.to_string() };
        out.extend(mention(doc, Kind::Deploy, value, a.start(), a.end()));
    }
    // Ids (tickets, invoices, orders, accounts).
    for c in ID.captures_iter(n) {
        let Some(a) = c.get(1) else { continue };
        let v = a.as_str();
        if n[..a.start()].ends_with(['/', '.', '@', '#', '+', '$'])
            || n[a.end()..].starts_with(['.', '@', '/']) && n[a.end() + 1..].starts_with(|ch: char| ch.is_ascii_alphanumeric())
        {
            continue;
        }
        if v.chars().all(|ch| ch.is_ascii_digit()) && (v.len() > 12 || (v.len() == 4 && v.starts_with("20"))) {
            continue;
        }
        if v.starts_with("v") && v[1..].starts_with(|ch: char| ch.is_ascii_digit()) {
            continue;
        }
        out.extend(mention(doc, Kind::Id, v.to_string(), a.start(), a.end()));
    }
    // Repos.
    for c in REPO.captures_iter(n) {
        let Some(r) = c.get(1) else { continue };
        let v = r.as_str().trim_end_matches('.');
        let (a, b) = v.split_once('/').unwrap_or(("", ""));
        if a.len() < 3 || b.len() < 2 || !a.chars().any(|ch| ch.is_ascii_alphabetic()) || !b.chars().any(|ch| ch.is_ascii_alphabetic()) {
            continue;
        }
        if ["and", "either", "yes", "on", "read", "tcp", "input", "http", "https", "true", "this", "him", "his", "he", "she"].contains(&a)
            || a.contains('.')
            || n[r.end()..].starts_with('/')
        {
            continue;
        }
        out.extend(mention(doc, Kind::Repo, v.to_string(), r.start(), r.start() + v.len()));
    }
    // Slack channels.
    for c in CHANNEL.captures_iter(n) {
        let Some(r) = c.get(1) else { continue };
        if r.as_str()[1..].chars().all(|ch| ch.is_ascii_digit()) {
            continue;
        }
        out.extend(mention(doc, Kind::Channel, r.as_str().to_string(), r.start(), r.end()));
    }
    for c in CHANNEL_NAMED.captures_iter(n) {
        let Some(r) = c.get(1) else { continue };
        if n[..r.start()].ends_with('#') {
            continue;
        }
        out.extend(mention(doc, Kind::Channel, format!("#{}", r.as_str()), r.start(), r.end()));
    }
    // Context for ids.
    for m in out.iter_mut().filter(|m| m.kind == Kind::Id) {
        m.context = id_context(doc, m);
    }
    out.sort_by_key(|m| (m.loc.turn, m.loc.start));
    out
}

fn id_context(doc: &Doc, m: &Mention) -> &'static str {
    let from = super::lex::floor_boundary(&doc.lower, m.lstart.saturating_sub(40));
    let turn_start = doc.turns[m.loc.turn].lower.0;
    let before = &doc.lower[from.max(turn_start)..m.lstart.max(from.max(turn_start))];
    let pick = |text: &str| -> Option<&'static str> {
        let last = ID_CONTEXT.find_iter(text).last()?;
        Some(match last.as_str() {
            "ticket" | "reference" | "ref" | "incident" | "sr" | "zendesk" | "jira" | "issue" | "request" => "ticket",
            "case" => "case",
            "account" | "acct" | "workspace" | "org" | "organization" | "tenant" | "customer id" | "customer number" | "member" => "account",
            _ => "object",
        })
    };
    if let Some(c) = pick(before) {
        return c;
    }
    let v = m.value.to_lowercase();
    if v.starts_with("inv") || v.starts_with("ord") || v.starts_with("po-") || v.starts_with("ctr") || v.starts_with("rma") {
        return "object";
    }
    // An answer to the agent's question ("do you have a ticket?" → "yes, SR-5521").
    if m.loc.turn > 0 && !doc.is_caller(m.loc.turn - 1) && doc.is_caller(m.loc.turn) {
        let q = doc.turn_lower(m.loc.turn - 1);
        if let Some(c) = pick(q) {
            return c;
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialnexa_core::analysis::turns;
    use dialnexa_core::evidence::Role::Caller;

    fn kinds(s: &str) -> Vec<(Kind, String)> {
        let t = turns(&[(Caller, s)]);
        let d = Doc::new(&t);
        find_all(&d, "America/New_York").into_iter().map(|m| (m.kind, m.value)).collect()
    }

    #[test]
    fn finds() {
        assert!(kinds("my email is john dot smith at gmail dot com").contains(&(Kind::Email, "john.smith@gmail.com".into())));
        assert!(kinds("call me on four one five five five five zero one two three").contains(&(Kind::Phone, "+14155550123".into())));
        assert!(kinds("we're in U.S. East 1").contains(&(Kind::Region, "us-east-1".into())));
        assert!(kinds("getting h t t p five oh three on slash v one slash orders").contains(&(Kind::Status, "503".into())));
        assert!(kinds("getting h t t p five oh three on slash v one slash orders").contains(&(Kind::Endpoint, "/v1/orders".into())));
        assert!(kinds("it fails with ERR_RATE_LIMIT").contains(&(Kind::ErrorCode, "ERR_RATE_LIMIT".into())));
        assert!(kinds("since v2.14.0 went out").contains(&(Kind::Deploy, "v2.14.0".into())));
        assert!(kinds("posted in #inc-payments").contains(&(Kind::Channel, "#inc-payments".into())));
        assert!(kinds("we have 500 users").iter().all(|(k, _)| *k != Kind::Status));
    }
}
