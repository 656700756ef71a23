//! Ids, dates and form encoding.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// `prefix` + 32 lowercase hex digits, the shape of every Twilio SID.
pub fn sid(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(34);
    s.push_str(prefix);
    for _ in 0..32 {
        let d: u8 = rng.random_range(0..16);
        s.push(char::from_digit(u32::from(d), 16).unwrap_or('0'));
    }
    s
}

/// RFC 2822, as Twilio writes `start_time` and callback `Timestamp`: "Tue, 06 Feb 2024 12:00:00 +0000".
pub fn rfc2822(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", WD[days.rem_euclid(7) as usize], d, MON[(m - 1) as usize], y, tod / 3600, tod % 3600 / 60, tod % 60)
}

// Howard Hinnant's days → civil date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn form_encode(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `+` and 2–15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&d.len()) && d.bytes().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_ids() {
        assert_eq!(rfc2822(UNIX_EPOCH + Duration::from_secs(1_707_220_800)), "Tue, 06 Feb 2024 12:00:00 +0000");
        assert_eq!(rfc2822(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let s = sid("CA");
        assert_eq!(s.len(), 34);
        assert!(s[2..].bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(is_e164("+15551234567") && !is_e164("5551234567") && !is_e164("+0123") && !is_e164("+1555abc"));
    }
}
