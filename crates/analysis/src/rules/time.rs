//! Dates and times said on a call, resolved against the call's start and timezone.
//!
//! Works on the normalised view (digits already spoken out: "nine thirty am" → `930 am`).
//! An expression is a day part ("yesterday", "next monday", "march 3rd", "end of day") and/or
//! a clock part ("3pm", "9:30", "noon") plus an optional zone word ("pacific", "uk time"),
//! or a relative offset ("in two hours", "20 minutes ago"). Partial expressions follow the
//! labelling conventions: morning 09:00, afternoon 14:00, evening 18:00, tonight 20:00, end
//! of day 17:00, end of week Friday 17:00, deadlines without a clock 17:00.

use std::sync::LazyLock;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// When something started: day-only parts of day are too vague.
    Past,
    /// A deadline: a day without a clock means 17:00.
    Deadline,
    /// A callback or a future appointment.
    Future,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    /// RFC 3339 with offset.
    pub rfc3339: String,
    /// Byte range of the expression in the searched text.
    pub start: usize,
    pub end: usize,
    /// An IANA zone named in the expression.
    pub zone: Option<&'static str>,
    /// Whether a clock time (not a default) was given.
    pub precise: bool,
}

static CLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        \b(?:
            (?P<h1>\d{1,2})(?:[:.](?P<m1>\d{2}))?\ ?(?P<ap1>a\.?\ ?m\b\.?|p\.?\ ?m\b\.?)
          | (?P<hm2>\d{3,4})\ ?(?P<ap2>a\.?m\b\.?|p\.?m\b\.?)
          | (?P<h3>\d{1,2})[:](?P<m3>\d{2})\b
          | (?P<noon>noon|midday|lunchtime|lunch\ time|midnight)\b
          | (?P<h4>\d{1,2})\ o'?\ ?clock\b
          | (?P<half>half\ past|quarter\ past|quarter\ to|(?P<mp>\d{1,2})\ (?:minutes\ )?past|(?P<mt>\d{1,2})\ (?:minutes\ )?to)\ (?P<h5>\d{1,2})\b
          | (?:at|around|about|after|from|since|before|by|til|till|until)\ (?P<h6>\d{1,4})(?:\ (?:minutes\ )?(?P<pt>past|to)\ (?P<h7>\d{1,2}))?\b(?P<tail>\ [a-z%]+|[\ ,.?!;]*$|[,.?!;])
        )",
    )
    .expect("clock regex")
});

static DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        \b(?:
            (?P<dat>the\ day\ after\ tomorrow|day\ after\ tomorrow)
          | (?P<rel>today|tonight|tomorrow|yesterday)(?:\ (?P<pod1>morning|afternoon|evening|night))?
          | this\ (?P<pod3>morning|afternoon|evening)
          | (?P<eo>end\ of\ (?:the\ )?(?:business\ )?(?:day|week|month)|eod|eow|eom|close\ of\ business|cob|end\ of\ business)
          | (?:(?P<wmod>last|next|this|on|by|coming|this\ coming|before|since|until|till|from)\ )?(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)(?:\ (?P<pod2>morning|afternoon|evening|night))?
          | (?P<mon1>january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?\ (?:the\ )?(?P<d1>\d{1,2})(?:st|nd|rd|th)?\b(?:,?\ (?P<y1>20\d\d))?
          | (?:the\ )?(?P<d2>\d{1,2})(?:st|nd|rd|th)?\ of\ (?P<mon2>january|february|march|april|may|june|july|august|september|october|november|december)\b
          | the\ (?P<d3>\d{1,2})(?:st|nd|rd|th)\b
        )",
    )
    .expect("day regex")
});

static REL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:(?P<in>in|within) (?:the next )?(?P<n1>\d+|an|a|half an|a couple of|couple of|a few) (?P<u1>minutes?|mins?|hours?|hrs?)\b|(?P<n2>\d+|an|a|half an|a couple of|couple of) (?P<u2>minutes?|mins?|hours?|hrs?) ago\b)")
        .expect("rel regex")
});

static ZONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)\b(?:
            (?P<long>pacific|eastern|central|mountain|uk|london|british|berlin|paris|madrid|amsterdam|central\ european|india|indian|sydney|tokyo|japan|singapore|dubai|hawaii|alaska|arizona|toronto|new\ york|chicago|denver|dublin|irish|greenwich|east\ coast|west\ coast)\ (?:standard\ |daylight\ )?time
          | (?P<abbr>pt|et|ct|mt|pst|pdt|est|edt|cst|cdt|mst|mdt|gmt|bst|utc|cet|cest|ist|aest|jst|sgt)\b
          | (?P<bare>pacific|eastern|central|mountain)\b
        )",
    )
    .expect("zone regex")
});

pub fn zone_name(word: &str) -> Option<&'static str> {
    let w = word.trim_end_matches(" time").trim_end_matches(" standard").trim_end_matches(" daylight");
    Some(match w {
        "pacific" | "pt" | "pst" | "pdt" | "west coast" => "America/Los_Angeles",
        "eastern" | "et" | "est" | "edt" | "new york" | "east coast" => "America/New_York",
        "central" | "ct" | "cst" | "cdt" | "chicago" => "America/Chicago",
        "mountain" | "mt" | "mst" | "mdt" | "denver" => "America/Denver",
        "arizona" => "America/Phoenix",
        "uk" | "london" | "british" | "gmt" | "bst" | "greenwich" => "Europe/London",
        "dublin" | "irish" => "Europe/Dublin",
        "utc" => "UTC",
        "berlin" | "cet" | "cest" | "central european" => "Europe/Berlin",
        "paris" => "Europe/Paris",
        "madrid" => "Europe/Madrid",
        "amsterdam" => "Europe/Amsterdam",
        "india" | "indian" | "ist" => "Asia/Kolkata",
        "sydney" | "aest" => "Australia/Sydney",
        "tokyo" | "japan" | "jst" => "Asia/Tokyo",
        "singapore" | "sgt" => "Asia/Singapore",
        "dubai" => "Asia/Dubai",
        "hawaii" => "Pacific/Honolulu",
        "alaska" => "America/Anchorage",
        "toronto" => "America/Toronto",
        _ => return None,
    })
}

/// A zone word in `text` ("pacific time", "UK time", "CET"); bare abbreviations only right
/// after a clock are handled by [`resolve_in`].
pub fn find_zone(text: &str) -> Option<(&'static str, usize, usize)> {
    for c in ZONE.captures_iter(text) {
        if let Some(m) = c.name("long") {
            let whole = c.get(0).map(|m| m.as_str()).unwrap_or("");
            if let Some(z) = zone_name(m.as_str()).or_else(|| zone_name(whole)) {
                let g = c.get(0).map(|g| (g.start(), g.end())).unwrap_or((0, 0));
                return Some((z, g.0, g.1));
            }
        }
        if let Some(m) = c.name("abbr")
            && matches!(m.as_str(), "pst" | "pdt" | "est" | "edt" | "cst" | "cdt" | "mst" | "mdt" | "gmt" | "bst" | "utc" | "cet" | "cest" | "aest" | "jst")
        {
            return zone_name(m.as_str()).map(|z| (z, m.start(), m.end()));
        }
    }
    None
}

fn month_num(m: &str) -> Option<i8> {
    Some(match &m[..m.len().min(3)] {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    })
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    h: i8,
    m: i8,
    /// am/pm given (or noon/midnight/24h).
    explicit: bool,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DayPart {
    Morning,
    Afternoon,
    Evening,
    Night,
}

#[derive(Debug, Clone, Copy)]
enum DayRef {
    Offset(i64),
    Weekday(Weekday, Wmod),
    Date(Option<i16>, Option<i8>, i8),
    EndOfWeek,
    EndOfMonth,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Wmod {
    Last,
    Next,
    Plain,
}

#[derive(Debug, Clone, Copy)]
struct Day {
    r: DayRef,
    part: Option<DayPart>,
    eod: bool,
    start: usize,
    end: usize,
}

fn parse_clocks(text: &str) -> Vec<Clock> {
    let mut out = vec![];
    for c in CLOCK.captures_iter(text) {
        let g = c.get(0).map(|g| (g.start(), g.end())).unwrap_or((0, 0));
        let pm = |ap: &str| ap.starts_with('p');
        let clock = if let Some(h) = c.name("h1") {
            let h: i8 = h.as_str().parse().unwrap_or(99);
            let m: i8 = c.name("m1").and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
            let ap = c.name("ap1").map(|a| a.as_str()).unwrap_or("");
            to24(h, m, Some(pm(ap))).map(|(h, m)| Clock { h, m, explicit: true, start: g.0, end: g.1 })
        } else if let Some(hm) = c.name("hm2") {
            let v: i32 = hm.as_str().parse().unwrap_or(9999);
            let ap = c.name("ap2").map(|a| a.as_str()).unwrap_or("");
            to24((v / 100) as i8, (v % 100) as i8, Some(pm(ap))).map(|(h, m)| Clock { h, m, explicit: true, start: g.0, end: g.1 })
        } else if let Some(h) = c.name("h3") {
            let h: i8 = h.as_str().parse().unwrap_or(99);
            let m: i8 = c.name("m3").and_then(|m| m.as_str().parse().ok()).unwrap_or(99);
            if h > 23 || m > 59 { None } else { Some(Clock { h, m, explicit: h == 0 || h > 12, start: g.0, end: g.1 }) }
        } else if let Some(n) = c.name("noon") {
            let h = if n.as_str() == "midnight" { 0 } else { 12 };
            Some(Clock { h, m: 0, explicit: true, start: g.0, end: g.1 })
        } else if let Some(h) = c.name("h4") {
            h.as_str().parse::<i8>().ok().filter(|h| (1..=12).contains(h)).map(|h| Clock { h, m: 0, explicit: false, start: g.0, end: g.1 })
        } else if let Some(h) = c.name("h5") {
            let h: i8 = h.as_str().parse().unwrap_or(99);
            let kind = c.name("half").map(|k| k.as_str()).unwrap_or("");
            if !(1..=12).contains(&h) {
                None
            } else if kind == "half past" {
                Some(Clock { h, m: 30, explicit: false, start: g.0, end: g.1 })
            } else if let Some(mp) = c.name("mp") {
                let m: i8 = mp.as_str().parse().unwrap_or(99);
                (m < 60).then_some(Clock { h, m, explicit: false, start: g.0, end: g.1 })
            } else if let Some(mt) = c.name("mt") {
                let m: i8 = mt.as_str().parse().unwrap_or(99);
                (m < 60 && m > 0).then_some(Clock { h: if h == 1 { 12 } else { h - 1 }, m: 60 - m, explicit: false, start: g.0, end: g.1 })
            } else if kind == "quarter past" {
                Some(Clock { h, m: 15, explicit: false, start: g.0, end: g.1 })
            } else {
                Some(Clock { h: if h == 1 { 12 } else { h - 1 }, m: 45, explicit: false, start: g.0, end: g.1 })
            }
        } else if let Some(h) = c.name("h6") {
            let v: i32 = h.as_str().parse().unwrap_or(9999);
            let tail = c.name("tail").map(|t| t.as_str().trim()).unwrap_or("");
            // "at 10 a m": spoken am/pm after a bare hour.
            let tail_end = c.name("tail").map(|t| t.end()).unwrap_or(g.1);
            let ampm = (tail == "a" || tail == "p") && text[tail_end..].starts_with(" m") && !text[tail_end + 2..].starts_with(|ch: char| ch.is_alphanumeric());
            // "at 500 users", "around 20 requests": amounts, not times.
            if NOT_TIME_UNIT.contains(&tail) && !ampm {
                continue;
            }
            let (h, m) = match (c.name("pt"), c.name("h7").and_then(|x| x.as_str().parse::<i8>().ok())) {
                // "at twenty past two", "at ten to three"
                (Some(pt), Some(h7)) if v < 60 && pt.as_str() == "past" => (h7, v as i8),
                (Some(_), Some(h7)) if v < 60 && v > 0 => (if h7 == 1 { 12 } else { h7 - 1 }, 60 - v as i8),
                _ if v >= 100 => ((v / 100) as i8, (v % 100) as i8),
                _ => (v as i8, 0),
            };
            if ampm {
                to24(h, m, Some(tail == "p")).map(|(h, m)| Clock { h, m, explicit: true, start: g.0, end: tail_end + 2 })
            } else if (1..=12).contains(&h) && (0..60).contains(&m) {
                let end = c.name("h6").map(|x| x.end()).unwrap_or(g.1);
                Some(Clock { h, m, explicit: false, start: g.0, end })
            } else {
                None
            }
        } else {
            None
        };
        if let Some(k) = clock {
            out.push(k);
        }
    }
    out
}

const NOT_TIME_UNIT: &[&str] = &[
    "users",
    "user",
    "people",
    "requests",
    "request",
    "calls",
    "call",
    "percent",
    "%",
    "per",
    "times",
    "of",
    "rows",
    "records",
    "dollars",
    "euros",
    "pounds",
    "seconds",
    "secs",
    "minutes",
    "mins",
    "hours",
    "days",
    "weeks",
    "months",
    "years",
    "ms",
    "milliseconds",
    "gb",
    "mb",
    "kb",
    "k",
    "agents",
    "seats",
    "customers",
    "items",
    "orders",
    "messages",
    "errors",
    "stores",
    "a",
    "an",
    "most",
    "least",
    "all",
    "x",
    "or",
    "and",
    "cents",
    "bucks",
    "degrees",
    "miles",
    "km",
    "lines",
    "numbers",
    "tickets",
    "pages",
    "files",
    "staff",
    "employees",
];

fn to24(h: i8, m: i8, pm: Option<bool>) -> Option<(i8, i8)> {
    if !(0..60).contains(&m) || !(1..=12).contains(&h) {
        return None;
    }
    Some(match pm {
        Some(true) if h < 12 => (h + 12, m),
        Some(false) if h == 12 => (0, m),
        _ => (h, m),
    })
}

fn parse_days(text: &str) -> Vec<Day> {
    let mut out = vec![];
    for c in DAY.captures_iter(text) {
        let g = c.get(0).map(|g| (g.start(), g.end())).unwrap_or((0, 0));
        let part = |p: Option<regex::Match>| {
            p.map(|p| match p.as_str() {
                "morning" => DayPart::Morning,
                "afternoon" => DayPart::Afternoon,
                "evening" => DayPart::Evening,
                _ => DayPart::Night,
            })
        };
        let day = if c.name("dat").is_some() {
            Some(Day { r: DayRef::Offset(2), part: None, eod: false, start: g.0, end: g.1 })
        } else if let Some(r) = c.name("rel") {
            let p = part(c.name("pod1"));
            match r.as_str() {
                "today" => Some(Day { r: DayRef::Offset(0), part: p, eod: false, start: g.0, end: g.1 }),
                "tonight" => Some(Day { r: DayRef::Offset(0), part: Some(DayPart::Night), eod: false, start: g.0, end: g.1 }),
                "tomorrow" => Some(Day { r: DayRef::Offset(1), part: p, eod: false, start: g.0, end: g.1 }),
                "yesterday" => Some(Day { r: DayRef::Offset(-1), part: p, eod: false, start: g.0, end: g.1 }),
                _ => None,
            }
        } else if let Some(p) = part(c.name("pod3")) {
            Some(Day { r: DayRef::Offset(0), part: Some(p), eod: false, start: g.0, end: g.1 })
        } else if let Some(e) = c.name("eo") {
            let s = e.as_str();
            let r = if s.contains("week") || s == "eow" {
                DayRef::EndOfWeek
            } else if s.contains("month") || s == "eom" {
                DayRef::EndOfMonth
            } else {
                DayRef::Offset(0)
            };
            Some(Day { r, part: None, eod: true, start: g.0, end: g.1 })
        } else if let Some(w) = c.name("wd") {
            let wm = match c.name("wmod").map(|m| m.as_str()) {
                Some("last") | Some("since") => Wmod::Last,
                Some("next") => Wmod::Next,
                _ => Wmod::Plain,
            };
            weekday(w.as_str()).map(|wd| Day { r: DayRef::Weekday(wd, wm), part: part(c.name("pod2")), eod: false, start: g.0, end: g.1 })
        } else if let (Some(mo), Some(d)) = (c.name("mon1").or(c.name("mon2")), c.name("d1").or(c.name("d2"))) {
            let y = c.name("y1").and_then(|y| y.as_str().parse().ok());
            match (month_num(mo.as_str()), d.as_str().parse::<i8>()) {
                (Some(m), Ok(d)) if (1..=31).contains(&d) => Some(Day { r: DayRef::Date(y, Some(m), d), part: None, eod: false, start: g.0, end: g.1 }),
                _ => None,
            }
        } else if let Some(d) = c.name("d3") {
            d.as_str().parse::<i8>().ok().filter(|d| (1..=31).contains(d)).map(|d| Day {
                r: DayRef::Date(None, None, d),
                part: None,
                eod: false,
                start: g.0,
                end: g.1,
            })
        } else {
            None
        };
        if let Some(d) = day {
            out.push(d);
        }
    }
    out
}

fn add_days(d: Date, n: i64) -> Option<Date> {
    d.checked_add(jiff::Span::new().days(n)).ok()
}

fn resolve_day(today: Date, r: DayRef, mode: Mode) -> Option<Date> {
    match r {
        DayRef::Offset(n) => add_days(today, n),
        DayRef::Weekday(wd, m) => {
            let t = i64::from(today.weekday().to_monday_zero_offset());
            let w = i64::from(wd.to_monday_zero_offset());
            let past = || {
                let back = (t - w).rem_euclid(7);
                add_days(today, -(if back == 0 { 7 } else { back }))
            };
            let fwd = |strict: bool| {
                let ahead = (w - t).rem_euclid(7);
                add_days(today, if ahead == 0 && strict { 7 } else { ahead })
            };
            match (m, mode) {
                (Wmod::Last, _) => past(),
                (Wmod::Next, _) => fwd(true),
                (Wmod::Plain, Mode::Past) => past(),
                (Wmod::Plain, _) => fwd(false),
            }
        }
        DayRef::EndOfWeek => {
            let t = i64::from(today.weekday().to_monday_zero_offset());
            add_days(today, (4 - t).rem_euclid(7))
        }
        DayRef::EndOfMonth => Some(today.last_of_month()),
        DayRef::Date(y, m, d) => {
            let month = m.unwrap_or(today.month());
            let year = y.unwrap_or(today.year());
            let mut date = Date::new(year, month, d).ok()?;
            if y.is_none() {
                match mode {
                    Mode::Past if date > today => {
                        date = if m.is_some() { Date::new(year - 1, month, d).ok()? } else { add_month(date, -1)? };
                    }
                    Mode::Deadline | Mode::Future if date < today => {
                        date = if m.is_some() { Date::new(year + 1, month, d).ok()? } else { add_month(date, 1)? };
                    }
                    _ => {}
                }
            }
            Some(date)
        }
    }
}

fn add_month(d: Date, n: i64) -> Option<Date> {
    d.checked_add(jiff::Span::new().months(n)).ok()
}

/// `date` at `h:m` in `tz`; None for a clock that is out of range (`Date::at` would panic)
/// or a civil time the zone cannot hold.
fn zoned_at(date: Date, h: i8, m: i8, tz: &TimeZone) -> Option<jiff::Zoned> {
    let t = jiff::civil::Time::new(h, m, 0, 0).ok()?;
    date.to_datetime(t).to_zoned(tz.clone()).ok()
}

fn fmt(z: &jiff::Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Resolve the first time expression in `text` (a sentence of the normalised view).
#[cfg(test)]
pub fn resolve_in(text: &str, call_time: jiff::Timestamp, tz_name: &str, mode: Mode) -> Option<Resolved> {
    resolve_all(text, call_time, tz_name, mode).into_iter().next()
}

/// Every resolvable time expression in `text`, in order.
pub fn resolve_all(text: &str, call_time: jiff::Timestamp, tz_name: &str, mode: Mode) -> Vec<Resolved> {
    resolve_all_with(text, call_time, tz_name, mode, 40)
}

/// As [`resolve_all`], pairing a clock with a day part up to `pair` bytes away.
pub fn resolve_all_with(text: &str, call_time: jiff::Timestamp, tz_name: &str, mode: Mode, pair: usize) -> Vec<Resolved> {
    let mut out = vec![];
    if text.len() > 4000 {
        // A sentence this long is not a time expression's home; scan only its start.
        let mut cut = 4000;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        return resolve_all_with(&text[..cut], call_time, tz_name, mode, pair);
    }
    let base_tz = TimeZone::get(tz_name).unwrap_or(TimeZone::UTC);
    // Relative offsets.
    for c in REL.captures_iter(text) {
        let g = c.get(0).map(|g| (g.start(), g.end())).unwrap_or((0, 0));
        let (n, u, sign) = match (c.name("n1"), c.name("u1"), c.name("n2"), c.name("u2")) {
            (Some(n), Some(u), _, _) => (n.as_str(), u.as_str(), 1i64),
            (_, _, Some(n), Some(u)) => (n.as_str(), u.as_str(), -1i64),
            _ => continue,
        };
        let minutes_per = if u.starts_with('h') { 60 } else { 1 };
        let count: f64 = match n {
            "an" | "a" => 1.0,
            "half an" => 0.5,
            "a couple of" | "couple of" => 2.0,
            "a few" => continue,
            x => x.parse().unwrap_or(0.0),
        };
        if count <= 0.0 || count > 1000.0 {
            continue;
        }
        let mins = (count * f64::from(minutes_per)) as i64 * sign;
        if let Ok(ts) = call_time.checked_add(jiff::SignedDuration::from_mins(mins)) {
            let z = ts.to_zoned(base_tz.clone());
            out.push(Resolved { rfc3339: fmt(&z), start: g.0, end: g.1, zone: None, precise: true });
        }
    }
    let clocks = parse_clocks(text);
    let mut days = parse_days(text);
    let mut used_days = vec![false; days.len()];
    // "end of day tomorrow", "end of day Friday": the other day part names the date.
    for i in 0..days.len() {
        if !(days[i].eod && matches!(days[i].r, DayRef::Offset(0))) {
            continue;
        }
        let near = (0..days.len()).find(|&j| {
            j != i && !days[j].eod && {
                let (a, b) = (days[i], days[j]);
                let dist = if b.start >= a.end { b.start - a.end } else { a.start.saturating_sub(b.end) };
                dist <= 4
            }
        });
        if let Some(j) = near {
            days[i].r = days[j].r;
            days[i].start = days[i].start.min(days[j].start);
            days[i].end = days[i].end.max(days[j].end);
            used_days[j] = true;
        }
    }
    // Zone words near a clock.
    let zone_after = |end: usize| -> Option<(&'static str, usize)> {
        let rest = text.get(end..)?;
        let rest_trim = rest.trim_start_matches([' ', ',']);
        let off = rest.len() - rest_trim.len();
        if off > 2 {
            return None;
        }
        let c = ZONE.captures(rest_trim)?;
        let m = c.get(0)?;
        if m.start() > 12 {
            return None;
        }
        let word = c.name("long").map(|_| m.as_str()).or(c.name("abbr").map(|a| a.as_str())).or(c.name("bare").map(|a| a.as_str()))?;
        zone_name(word).or_else(|| zone_name(m.as_str())).map(|z| (z, end + off + m.end()))
    };
    let sentence_zone = find_zone(text).map(|z| z.0);
    for k in &clocks {
        // Pair with the nearest day part within 40 bytes.
        let mut best: Option<(usize, usize)> = None;
        for (i, d) in days.iter().enumerate() {
            let dist = if d.end <= k.start { k.start - d.end } else { d.start.saturating_sub(k.end) };
            if dist <= pair && !used_days[i] && best.is_none_or(|(_, bd)| dist < bd) {
                best = Some((i, dist));
            }
        }
        let day = best.map(|(i, _)| {
            used_days[i] = true;
            days[i]
        });
        let (zone, zend) = match zone_after(k.end) {
            Some((z, e)) => (Some(z), e),
            None => (sentence_zone, k.end),
        };
        let tz = zone.and_then(|z| TimeZone::get(z).ok()).unwrap_or_else(|| base_tz.clone());
        let now = call_time.to_zoned(tz.clone());
        let today = now.date();
        let mut h = k.h;
        if !k.explicit {
            let part = day.and_then(|d| d.part).or_else(|| part_word_near(text, k.end));
            h = match part {
                Some(DayPart::Morning) => {
                    if h == 12 {
                        0
                    } else {
                        h
                    }
                }
                Some(DayPart::Afternoon) | Some(DayPart::Evening) | Some(DayPart::Night) => {
                    if h < 12 {
                        h + 12
                    } else {
                        h
                    }
                }
                None => {
                    if (1..=6).contains(&h) {
                        h + 12
                    } else {
                        h
                    }
                }
            };
        }
        let date = match day {
            Some(d) => resolve_day(today, d.r, mode),
            None => Some(today),
        };
        let Some(mut date) = date else { continue };
        let Some(mut z) = zoned_at(date, h, k.m, &tz) else { continue };
        if day.is_none() {
            match mode {
                Mode::Past if z.timestamp() > call_time => {
                    if let Some(d) = add_days(date, -1) {
                        date = d;
                    }
                }
                Mode::Deadline | Mode::Future if z.timestamp() < call_time => {
                    if let Some(d) = add_days(date, 1) {
                        date = d;
                    }
                }
                _ => {}
            }
            if let Some(z2) = zoned_at(date, h, k.m, &tz) {
                z = z2;
            }
        }
        let start = day.map(|d| d.start.min(k.start)).unwrap_or(k.start);
        let end = day.map(|d| d.end.max(zend)).unwrap_or(zend);
        out.push(Resolved { rfc3339: fmt(&z), start, end, zone, precise: true });
    }
    // Day parts without a clock.
    for (i, d) in days.iter().enumerate() {
        if used_days[i] {
            continue;
        }
        let default = match (mode, d.part, d.eod, d.r) {
            (_, _, true, _) => Some((17, 0)),
            (Mode::Past, _, _, DayRef::Weekday(..)) | (Mode::Past, _, _, DayRef::Date(..)) if d.part.is_none() => Some((0, 0)),
            (Mode::Past, _, _, _) => None,
            (_, Some(DayPart::Morning), _, _) => Some((9, 0)),
            (_, Some(DayPart::Afternoon), _, _) => Some((14, 0)),
            (_, Some(DayPart::Evening), _, _) => Some((18, 0)),
            (_, Some(DayPart::Night), _, _) => Some((20, 0)),
            (Mode::Deadline, None, _, _) => Some((17, 0)),
            (Mode::Future, None, _, _) => None,
        };
        let Some((h, m)) = default else { continue };
        let zone = sentence_zone;
        let tz = zone.and_then(|z| TimeZone::get(z).ok()).unwrap_or_else(|| base_tz.clone());
        let today = call_time.to_zoned(tz.clone()).date();
        let Some(date) = resolve_day(today, d.r, mode) else { continue };
        let Some(z) = zoned_at(date, h, m, &tz) else { continue };
        out.push(Resolved { rfc3339: fmt(&z), start: d.start, end: d.end, zone, precise: false });
    }
    out.sort_by_key(|r| r.start);
    out
}

fn part_word_near(text: &str, end: usize) -> Option<DayPart> {
    let rest = text.get(end..)?;
    // The next 30 bytes, cut on a char boundary.
    let rest = &rest[..super::lex::floor_boundary(rest, 30)];
    if rest.contains("morning") || rest.trim_start().starts_with("am") {
        Some(DayPart::Morning)
    } else if rest.contains("afternoon") {
        Some(DayPart::Afternoon)
    } else if rest.contains("evening") || rest.contains("tonight") || rest.contains("night") {
        Some(DayPart::Evening)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str, mode: Mode) -> Option<String> {
        let t: jiff::Timestamp = "2026-03-10T14:20:00Z".parse().unwrap();
        resolve_in(text, t, "America/New_York", mode).map(|r| r.rfc3339)
    }

    #[test]
    fn conventions() {
        assert_eq!(r("since 3pm yesterday", Mode::Past).as_deref(), Some("2026-03-09T15:00:00-04:00"));
        assert_eq!(r("at 930 this morning", Mode::Past).as_deref(), Some("2026-03-10T09:30:00-04:00"));
        assert_eq!(r("tomorrow morning", Mode::Future).as_deref(), Some("2026-03-11T09:00:00-04:00"));
        assert_eq!(r("tomorrow afternoon", Mode::Future).as_deref(), Some("2026-03-11T14:00:00-04:00"));
        assert_eq!(r("tonight", Mode::Future).as_deref(), Some("2026-03-10T20:00:00-04:00"));
        assert_eq!(r("by end of day", Mode::Deadline).as_deref(), Some("2026-03-10T17:00:00-04:00"));
        assert_eq!(r("by friday", Mode::Deadline).as_deref(), Some("2026-03-13T17:00:00-04:00"));
        assert_eq!(r("since last tuesday", Mode::Past).as_deref(), Some("2026-03-03T00:00:00-05:00"));
        assert_eq!(r("next monday at 10", Mode::Future).as_deref(), Some("2026-03-16T10:00:00-04:00"));
        assert_eq!(r("in 2 hours", Mode::Future).as_deref(), Some("2026-03-10T12:20:00-04:00"));
        assert_eq!(r("march 3rd at 4 pm", Mode::Past).as_deref(), Some("2026-03-03T16:00:00-05:00"));
        assert_eq!(r("at 10 am pacific", Mode::Future).as_deref(), Some("2026-03-10T10:00:00-07:00"));
        assert_eq!(r("call me at 9", Mode::Future).as_deref(), Some("2026-03-11T09:00:00-04:00"));
        assert_eq!(r("this morning", Mode::Past), None);
        assert_eq!(r("a while ago", Mode::Past), None);
    }
}
