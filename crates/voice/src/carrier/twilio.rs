//! Twilio: the voice webhook and status callbacks (form posts signed with
//! `X-Twilio-Signature`), TwiML, the Calls REST API, and Media Streams (JSON text frames,
//! 8 kHz μ-law in base64). The contract: ../shared/reference/telephony.md.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use super::{CallEvent, Carrier, CarrierCall, CarrierError, CarrierStatus, DialTarget, MachineDetection, MediaDialect, MediaIn, OutboundCall, mulaw};

/// The real API; `DIALNEXA_TWILIO_API_BASE` overrides it (the simulator).
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// One μ-law frame of 20 ms at 8 kHz.
pub const FRAME_BYTES: usize = 160;

/// The largest caller `media` payload accepted (one second of audio; Twilio sends 20 ms).
pub const MAX_MEDIA_BYTES: usize = 8_000;

/// Twilio's signature over a URL and form parameters: base64(HMAC-SHA1(token, url + each
/// parameter sorted by name, name then value)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mac = signed_mac(auth_token, url, params);
    B64.encode(mac.finalize().into_bytes())
}

fn signed_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<sha1::Sha1> {
    // As Twilio's own validators do: names sorted, a repeated name's values sorted, and an
    // exact repeat counted once.
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// The URL as Twilio may have signed it: as given, and with the scheme's default port
/// added or removed (Twilio signs what it requested, and proxies differ on the port).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let (scheme, rest) = match url.split_once("://") {
        Some(p) => p,
        None => return out,
    };
    let default = match scheme {
        "https" | "wss" => "443",
        "http" | "ws" => "80",
        _ => return out,
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // An IPv6 literal's colons are inside the brackets.
    let port_at = authority.rfind(':').filter(|&i| !authority[i..].contains(']'));
    match port_at {
        Some(i) if &authority[i + 1..] == default => out.push(format!("{scheme}://{}{path}", &authority[..i])),
        Some(_) => {}
        None => out.push(format!("{scheme}://{authority}:{default}{path}")),
    }
    out
}

/// Check a signature against every URL variant, in constant time per comparison.
pub fn verify_signature(auth_token: &str, url: &str, params: &[(String, String)], header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| B64.decode(h.trim()).ok()) else {
        return false;
    };
    url_variants(url).iter().any(|u| signed_mac(auth_token, u, params).verify_slice(&given).is_ok())
}

/// XML text and attribute escaping for TwiML.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn twiml(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{body}</Response>")
}

/// The Twilio carrier: one account's credentials and its API base.
#[derive(Clone)]
pub struct Twilio {
    account_sid: String,
    auth_token: String,
    api_base: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio").field("account_sid", &self.account_sid).field("auth_token", &"[redacted]").field("api_base", &self.api_base).finish()
    }
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

impl Twilio {
    pub fn new(account_sid: &str, auth_token: &str, api_base: Option<&str>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            // A redirect would carry the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Twilio {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            api_base: api_base.unwrap_or(DEFAULT_API_BASE).trim_end_matches('/').to_owned(),
            http,
        }
    }

    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    fn calls_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Calls.json", self.api_base, self.account_sid)
    }

    fn call_url(&self, sid: &str) -> String {
        // A sid is letters and digits; anything else would change the path.
        let sid: String = sid.chars().filter(char::is_ascii_alphanumeric).take(64).collect();
        format!("{}/2010-04-01/Accounts/{}/Calls/{sid}.json", self.api_base, self.account_sid)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CarrierError> {
        let resp = req.basic_auth(&self.account_sid, Some(&self.auth_token)).send().await.map_err(|e| CarrierError::Unreachable(describe(&e)))?;
        let status = resp.status().as_u16();
        // Twilio's answers are small; a huge one is not Twilio.
        let body = read_capped(resp, 256 * 1024).await?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let message = v["message"].as_str().map(|m| m.chars().take(300).collect()).unwrap_or_else(|| format!("HTTP {status}"));
            return Err(CarrierError::Refused { status, code: v["code"].as_i64(), message });
        }
        if v.is_null() {
            return Err(CarrierError::Protocol("the answer is not JSON".into()));
        }
        Ok(v)
    }
}

/// What went wrong, without the URL (it holds the account sid) or the body.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, CarrierError> {
    let mut out = vec![];
    while let Some(chunk) = resp.chunk().await.map_err(|e| CarrierError::Unreachable(describe(&e)))? {
        if out.len() + chunk.len() > cap {
            return Err(CarrierError::Protocol(format!("the answer is over {cap} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn call_of(v: &Value) -> Result<CarrierCall, CarrierError> {
    let sid = v["sid"].as_str().ok_or_else(|| CarrierError::Protocol("the call has no sid".into()))?.to_owned();
    Ok(CarrierCall {
        sid,
        status: CarrierStatus::parse(v["status"].as_str().unwrap_or_default()),
        answered_by: v["answered_by"].as_str().map(str::to_owned),
        duration_secs: v["duration"].as_str().and_then(|d| d.parse().ok()).or_else(|| v["duration"].as_u64()),
    })
}

#[async_trait]
impl Carrier for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn verify(&self, url: &str, params: &[(String, String)], signature: Option<&str>) -> bool {
        verify_signature(&self.auth_token, url, params, signature)
    }

    fn parse_event(&self, params: &[(String, String)]) -> Result<CallEvent, CarrierError> {
        let req = |name: &str| field(params, name).map(str::to_owned).ok_or_else(|| CarrierError::BadWebhook(format!("{name} is missing")));
        let call_sid = req("CallSid")?;
        if call_sid.len() > 64 || !call_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(CarrierError::BadWebhook("CallSid is not a call sid".into()));
        }
        // The signature (with this account's token) authenticates the request; a subaccount's
        // calls carry the subaccount's sid.
        let account_sid: String = req("AccountSid")?.chars().take(64).collect();
        Ok(CallEvent {
            call_sid,
            account_sid,
            from: field(params, "From").unwrap_or_default().chars().take(64).collect(),
            to: field(params, "To").unwrap_or_default().chars().take(64).collect(),
            status: CarrierStatus::parse(&req("CallStatus")?),
            direction: field(params, "Direction").unwrap_or("inbound").chars().take(32).collect(),
            answered_by: field(params, "AnsweredBy").map(|a| a.chars().take(40).collect()),
            duration_secs: field(params, "CallDuration").and_then(|d| d.parse().ok()),
            sequence: field(params, "SequenceNumber").and_then(|d| d.parse().ok()),
            dial_status: field(params, "DialCallStatus").map(CarrierStatus::parse),
            dial_call_sid: field(params, "DialCallSid").map(|a| a.chars().take(64).collect()),
        })
    }

    fn content_type(&self) -> &'static str {
        "text/xml"
    }

    fn stream(&self, ws_url: &str, parameters: &[(&str, &str)]) -> String {
        let params: String =
            parameters.iter().map(|(k, v)| format!("<Parameter name=\"{}\" value=\"{}\"/>", xml_escape(k), xml_escape(v))).collect::<Vec<_>>().join("");
        twiml(&format!("<Connect><Stream url=\"{}\">{params}</Stream></Connect>", xml_escape(ws_url)))
    }

    fn reject(&self) -> String {
        twiml("<Reject reason=\"rejected\"/>")
    }

    fn say_hangup(&self, text: &str) -> String {
        twiml(&format!("<Say>{}</Say><Hangup/>", xml_escape(text)))
    }

    fn dial(&self, t: &DialTarget) -> String {
        let mut attrs = format!(" timeout=\"{}\"", t.timeout_secs.clamp(5, 600));
        if let Some(c) = &t.caller_id {
            attrs.push_str(&format!(" callerId=\"{}\"", xml_escape(c)));
        }
        if let Some(a) = &t.action {
            attrs.push_str(&format!(" action=\"{}\" method=\"POST\"", xml_escape(a)));
        }
        twiml(&format!("<Dial{attrs}><Number>{}</Number></Dial>", xml_escape(&t.to)))
    }

    fn hangup_document(&self) -> String {
        twiml("<Hangup/>")
    }

    fn say_then(&self, text: &str, next: &str) -> String {
        twiml(&format!("<Say>{}</Say><Redirect method=\"POST\">{}</Redirect>", xml_escape(text), xml_escape(next)))
    }

    fn conference(&self, name: &str) -> String {
        twiml(&format!(
            "<Dial><Conference startConferenceOnEnter=\"true\" endConferenceOnExit=\"true\" beep=\"false\">{}</Conference></Dial>",
            xml_escape(name)
        ))
    }

    fn media(&self) -> Box<dyn MediaDialect> {
        Box::new(TwilioMedia::default())
    }

    async fn create_call(&self, c: &OutboundCall) -> Result<CarrierCall, CarrierError> {
        let mut form: Vec<(&str, String)> = vec![
            ("To", c.to.clone()),
            ("From", c.from.clone()),
            ("Url", c.url.clone()),
            ("Method", "POST".into()),
            ("StatusCallback", c.status_callback.clone()),
            ("StatusCallbackMethod", "POST".into()),
            ("Timeout", c.ring_timeout_secs.clamp(5, 600).to_string()),
        ];
        for e in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent", e.into()));
        }
        match c.machine_detection {
            Some(MachineDetection::Enable) => form.push(("MachineDetection", "Enable".into())),
            Some(MachineDetection::DetectMessageEnd) => form.push(("MachineDetection", "DetectMessageEnd".into())),
            None => {}
        }
        let v = self.send(self.http.post(self.calls_url()).header("I-Twilio-Idempotency-Token", &c.idempotency_token).form(&form)).await?;
        call_of(&v)
    }

    async fn fetch_call(&self, sid: &str) -> Result<CarrierCall, CarrierError> {
        let v = self.send(self.http.get(self.call_url(sid))).await?;
        call_of(&v)
    }

    async fn redirect(&self, sid: &str, document: &str) -> Result<(), CarrierError> {
        self.send(self.http.post(self.call_url(sid)).form(&[("Twiml", document)])).await.map(|_| ())
    }

    async fn hangup(&self, sid: &str) -> Result<(), CarrierError> {
        self.send(self.http.post(self.call_url(sid)).form(&[("Status", "completed")])).await.map(|_| ())
    }
}

/// Twilio Media Streams: one connection's state (its stream, the sequence so far).
#[derive(Debug, Default)]
pub struct TwilioMedia {
    stream_sid: Option<String>,
    last_sequence: u64,
}

/// Twilio sends numbers as strings; accept both.
fn num(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

impl MediaDialect for TwilioMedia {
    fn rate(&self) -> u32 {
        8_000
    }

    fn parse(&mut self, text: &str) -> Result<MediaIn, String> {
        let v: Value = serde_json::from_str(text).map_err(|_| "a frame that is not JSON".to_owned())?;
        let event = v["event"].as_str().ok_or("a frame without an event")?;
        if event == "connected" {
            return Ok(MediaIn::Connected);
        }
        // Audio order: a media message whose sequenceNumber repeats or precedes the last one
        // is dropped (a gap is only lost audio, and is accepted). Events (mark, dtmf, stop)
        // are taken whatever their number: a late mark still says what was played.
        if event == "media"
            && let Some(seq) = num(&v["sequenceNumber"])
        {
            if seq <= self.last_sequence {
                return Err(format!("media message {seq} out of order (after {})", self.last_sequence));
            }
            self.last_sequence = seq;
        }
        if event == "start" {
            if self.stream_sid.is_some() {
                return Err("a second start message".into());
            }
            let start = &v["start"];
            let stream_sid = start["streamSid"].as_str().or(v["streamSid"].as_str()).ok_or("a start message without streamSid")?.to_owned();
            let call_sid = start["callSid"].as_str().unwrap_or_default().chars().take(64).collect();
            let mut parameters = BTreeMap::new();
            if let Some(m) = start["customParameters"].as_object() {
                for (k, val) in m.iter().take(32) {
                    if let Some(s) = val.as_str() {
                        parameters.insert(k.chars().take(64).collect(), s.chars().take(512).collect());
                    }
                }
            }
            if let Some(enc) = start["mediaFormat"]["encoding"].as_str()
                && enc != "audio/x-mulaw"
            {
                return Err(format!("a stream in {} (only audio/x-mulaw is spoken)", enc.chars().take(40).collect::<String>()));
            }
            self.stream_sid = Some(stream_sid.clone());
            return Ok(MediaIn::Start { stream_sid, call_sid, parameters });
        }
        let Some(sid) = &self.stream_sid else {
            return Err(format!("a {} message before start", event.chars().take(20).collect::<String>()));
        };
        if v["streamSid"].as_str().is_some_and(|s| s != sid) {
            return Err("a message for another stream".into());
        }
        match event {
            "media" => {
                let m = &v["media"];
                if m["track"].as_str().is_some_and(|t| t != "inbound" && t != "inbound_track") {
                    return Err("audio of another track".into());
                }
                let payload = m["payload"].as_str().ok_or("a media message without payload")?;
                if payload.len() > MAX_MEDIA_BYTES * 4 / 3 + 4 {
                    return Err(format!("a media payload over {MAX_MEDIA_BYTES} bytes"));
                }
                let bytes = B64.decode(payload).map_err(|_| "a media payload that is not base64".to_owned())?;
                Ok(MediaIn::Audio(mulaw::decode(&bytes)))
            }
            "dtmf" => {
                let d = v["dtmf"]["digit"].as_str().unwrap_or_default();
                let mut chars = d.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => Ok(MediaIn::Dtmf(c)),
                    _ => Err("a dtmf message without a digit".into()),
                }
            }
            "mark" => Ok(MediaIn::Mark(v["mark"]["name"].as_str().ok_or("a mark without a name")?.chars().take(64).collect())),
            "stop" => Ok(MediaIn::Stop),
            other => Err(format!("an unknown event '{}'", other.chars().take(20).collect::<String>())),
        }
    }

    fn audio(&self, pcm: &[i16]) -> Vec<String> {
        let sid = self.stream_sid.clone().unwrap_or_default();
        pcm.chunks(FRAME_BYTES)
            .map(|c| json!({ "event": "media", "streamSid": sid, "media": { "payload": B64.encode(mulaw::encode(c)) } }).to_string())
            .collect()
    }

    fn mark(&self, name: &str) -> String {
        json!({ "event": "mark", "streamSid": self.stream_sid.clone().unwrap_or_default(), "mark": { "name": name } }).to_string()
    }

    fn clear(&self) -> String {
        json!({ "event": "clear", "streamSid": self.stream_sid.clone().unwrap_or_default() }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_params() -> Vec<(String, String)> {
        [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn signature_matches_the_reference_vector() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(signature("12345", url, &vector_params()), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_signature("12345", url, &vector_params(), Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")));
        // Parameter order on the wire does not matter: they are sorted.
        let mut reversed = vector_params();
        reversed.reverse();
        assert!(verify_signature("12345", url, &reversed, Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")));
        assert!(!verify_signature("12346", url, &vector_params(), Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")));
        assert!(!verify_signature("12345", url, &vector_params(), None));
        assert!(!verify_signature("12345", url, &vector_params(), Some("not base64!")));
        let mut changed = vector_params();
        changed[2].1 = "1235".into();
        assert!(!verify_signature("12345", url, &changed, Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")));
    }

    #[test]
    fn signature_holds_with_and_without_the_default_port() {
        let params = vector_params();
        // Signed with the port, received without it; and the other way round.
        let with_port = signature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &params);
        assert!(verify_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params, Some(&with_port)));
        let without = signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params);
        assert!(verify_signature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &params, Some(&without)));
        let http = signature("12345", "http://example.org/voice", &params);
        assert!(verify_signature("12345", "http://example.org:80/voice", &params, Some(&http)));
        // Another port is another URL.
        let other = signature("12345", "https://mycompany.com:8443/myapp.php?foo=1&bar=2", &params);
        assert!(!verify_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params, Some(&other)));
        assert_eq!(url_variants("https://[::1]/x"), vec!["https://[::1]/x".to_owned(), "https://[::1]:443/x".to_owned()]);
        assert_eq!(url_variants("http://h:80"), vec!["http://h:80".to_owned(), "http://h".to_owned()]);
    }

    #[test]
    fn twiml_is_escaped() {
        let t = Twilio::new("AC1", "tok", None);
        let doc = t.stream("wss://h/x?token=a&b=\"c\"", &[("call_id", "<id>")]);
        assert!(doc.contains("url=\"wss://h/x?token=a&amp;b=&quot;c&quot;\""), "{doc}");
        assert!(doc.contains("value=\"&lt;id&gt;\""), "{doc}");
        assert!(t.say_hangup("a\u{1}b & c").contains("<Say>ab &amp; c</Say>"));
        assert!(format!("{t:?}").contains("[redacted]") && !format!("{t:?}").contains("tok\""));
    }

    #[test]
    fn media_dialect_follows_the_stream() {
        let mut m = TwilioMedia::default();
        assert_eq!(m.parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#), Ok(MediaIn::Connected));
        assert!(m.parse(r#"{"event":"media","sequenceNumber":"1","media":{"payload":"//8="}}"#).unwrap_err().contains("before start"));
        let start = r#"{"event":"start","sequenceNumber":"2","streamSid":"MZ1","start":{"streamSid":"MZ1","callSid":"CA1","customParameters":{"t":"x"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        match m.parse(start).unwrap() {
            MediaIn::Start { stream_sid, call_sid, parameters } => {
                assert_eq!((stream_sid.as_str(), call_sid.as_str(), parameters["t"].as_str()), ("MZ1", "CA1", "x"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            m.parse(r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","payload":"//8="}}"#),
            Ok(MediaIn::Audio(vec![0, 0]))
        );
        assert!(m.parse(r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"payload":"//8="}}"#).unwrap_err().contains("out of order"));
        assert!(m.parse(r#"{"event":"media","sequenceNumber":4,"streamSid":"MZ2","media":{"payload":"//8="}}"#).is_err());
        // A mark is taken even with a stale number.
        assert_eq!(m.parse(r#"{"event":"mark","sequenceNumber":"0","streamSid":"MZ1","mark":{"name":"m0"}}"#), Ok(MediaIn::Mark("m0".into())));
        assert_eq!(m.parse(r#"{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"7"}}"#), Ok(MediaIn::Dtmf('7')));
        assert!(m.parse(r#"{"event":"dtmf","sequenceNumber":"6","streamSid":"MZ1","dtmf":{"digit":"77"}}"#).is_err());
        assert_eq!(m.parse(r#"{"event":"mark","sequenceNumber":"7","streamSid":"MZ1","mark":{"name":"m1"}}"#), Ok(MediaIn::Mark("m1".into())));
        assert!(m.parse("not json").is_err());
        assert!(m.parse(r#"{"event":"media","sequenceNumber":"8","streamSid":"MZ1","media":{"payload":"%%%"}}"#).is_err());
        assert_eq!(m.parse(r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ1","stop":{}}"#), Ok(MediaIn::Stop));
        let frames = m.audio(&vec![0i16; 400]);
        assert_eq!(frames.len(), 3);
        let v: Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(v["streamSid"], "MZ1");
        assert_eq!(B64.decode(v["media"]["payload"].as_str().unwrap()).unwrap().len(), 160);
    }

    #[test]
    fn statuses_never_move_back() {
        assert!(CarrierStatus::parse("completed").rank() > CarrierStatus::parse("in-progress").rank());
        assert!(CarrierStatus::parse("busy").is_terminal());
        assert!(!CarrierStatus::parse("something-new").is_terminal());
    }
}
