//! `X-Twilio-Signature` (telephony.md §5): the sim signs; the server under test verifies.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// base64(HMAC-SHA1(auth_token, url + each param sorted by name as name+value)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // A stable sort keeps repeated names in their sent order, as Twilio's own helpers do.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = String::from(url);
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_documented_vector() {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let params =
            vec![p("To", "+18005551212"), p("CallSid", "CA1234567890ABCDE"), p("Digits", "1234"), p("From", "+12349013030"), p("Caller", "+12349013030")];
        assert_eq!(signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }
}
