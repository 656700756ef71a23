//! Configuration in layers: built-in defaults, then an optional TOML file (`--config FILE` or
//! `DIALNEXA_CONFIG`), then environment variables (`DIALNEXA_<SETTING>` for every setting, and
//! `DATABASE_URL`), then command-line flags. Every field of [`Config`] is a setting: its TOML
//! key is the field name and its environment variable `DIALNEXA_` + the name in upper case
//! ([`SETTINGS`] lists them). List settings take comma-separated values in the environment.
//! A bad value is a startup error that names its variable (never a secret's value). Secrets
//! are redacted in `Debug`. docs/configuration.md describes every setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

/// The prefix of every DialNexa environment variable.
pub const ENV_PREFIX: &str = "DIALNEXA_";

#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://...` to use PostgreSQL; absent: SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// Bootstrap admin API key.
    pub admin_key: Option<String>,
    /// Public base URL used in links (call detail, transcript).
    pub public_url: Option<String>,
    /// Run the background workers in this process.
    pub workers: bool,
    pub demo: bool,
    /// The timezone of calls that do not say theirs (IANA name).
    pub default_timezone: String,
    /// Post-call analysis engine: `rules` (offline, the default) or `llm`.
    pub analysis_engine: String,
    /// OpenAI-compatible base URL for the `llm` engine, e.g. https://api.openai.com/v1.
    pub llm_url: Option<String>,
    pub llm_model: String,
    /// Secret: the LLM endpoint's API key.
    pub llm_api_key: Option<String>,
    pub llm_timeout_ms: u64,
    /// Attempts before analysis falls back to the rules engine.
    pub analysis_max_attempts: u32,
    /// Delivery attempts before a handoff is dead.
    pub handoff_max_attempts: u32,
    /// Seconds between delivery attempts (the last repeats).
    pub handoff_retry_secs: Vec<u64>,
    /// Per-request timeout towards integrations.
    pub handoff_timeout_ms: u64,
    /// How long a delivery may run before another worker may take it over.
    pub handoff_lease_ms: u64,
    /// How long an analysis may run before another worker may take it over.
    pub analysis_lease_ms: u64,
    /// Customers whose records wait for review (case-insensitive names).
    pub vip_customers: Vec<String>,
    /// Owner of callbacks and promises when a rule names none.
    pub follow_up_owner: String,
    /// Speech recognition: `wyoming://HOST:PORT` or an OpenAI-compatible `https://.../v1`.
    pub asr: Option<String>,
    /// Speech synthesis: `wyoming://HOST:PORT` or an OpenAI-compatible `https://.../v1`.
    pub tts: Option<String>,
    pub tts_voice: Option<String>,
    /// Secret: the API key of https speech providers.
    pub speech_api_key: Option<String>,
    /// Bound of the TTS audio cache, in bytes.
    pub audio_cache_bytes: usize,
    /// How long a web call's access token may wait before it is used.
    pub web_token_ttl_secs: u64,
    /// Quiet this long after the agent speaks: one reprompt, then hang up.
    pub silence_timeout_ms: u64,
    /// Live calls (web and phone) this node holds at once; more are refused with a clear error.
    pub max_live_calls: usize,
    /// How far caller audio may run ahead of the wall clock before the call ends as a protocol error.
    pub audio_ahead_ms: u64,
    /// Longest caller utterance: past it the turn ends (forced end of turn).
    pub max_utterance_ms: u64,
    /// Longest `Retry-After` a delivery waits for; a longer one is capped (the cap is recorded on the attempt).
    pub handoff_retry_after_max_secs: u64,
    /// Rate-limited attempts (429, or 503 with `Retry-After`) a handoff may spend, apart from `handoff_max_attempts`.
    pub handoff_rate_limit_attempts: u32,
    /// How long a ticket or alert waits for its call's enrichment (OpenGraph.io, Datadog, Heartbeat lookups) before it goes without it.
    pub handoff_enrichment_wait_ms: u64,
    /// How far back the same issue from the same caller counts as a repeat.
    pub handoff_dedup_window_days: u32,
    /// A caller matched to a Heartbeat user with less confidence than this goes to review first.
    pub handoff_min_match_confidence: f64,
    /// Rows `GET /v1/calls/export` reads from the database per page.
    pub export_page_rows: u32,
    /// The Twilio account phone calls go through (`AC…`); with the auth token it enables telephony.
    pub twilio_account_sid: Option<String>,
    /// Secret: the Twilio account's auth token (signs webhooks, authenticates REST calls).
    pub twilio_auth_token: Option<String>,
    /// The Twilio REST API base (the simulator's address in tests and `dialnexa dev carrier`).
    pub twilio_api_base: String,
    /// How long an outbound call rings before it is `no_answer`.
    pub ring_timeout_secs: u32,
    /// How often open phone calls are checked against the carrier (and how old one must be).
    pub reconcile_interval_secs: u64,
    /// How far ahead of real time agent audio goes to the carrier (it buffers and plays it smoothly).
    pub playout_lead_ms: u64,
    /// How long a phone call's media-stream token may wait before the carrier connects with it.
    pub stream_token_ttl_secs: u64,
    /// Concurrent outbound calls one number may have; more are refused.
    pub max_calls_per_number: u32,
    /// How long a number's inbound hook may take before the number's own agent answers.
    pub inbound_hook_timeout_ms: u64,
    /// The voice activity detector of live calls: `cascade` (WebRTC, then Silero where it is
    /// unsure), `webrtc`, or `energy` (frame energy over a noise floor).
    pub vad: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("dialnexa-data"),
            database_url: None,
            admin_key: None,
            public_url: None,
            workers: true,
            demo: false,
            default_timezone: "UTC".into(),
            analysis_engine: "rules".into(),
            llm_url: None,
            llm_model: "gpt-4o-mini".into(),
            llm_api_key: None,
            llm_timeout_ms: 30_000,
            analysis_max_attempts: 4,
            handoff_max_attempts: 8,
            handoff_retry_secs: vec![5, 300, 1800, 7200, 18000, 36000, 36000],
            handoff_timeout_ms: 15_000,
            handoff_lease_ms: 60_000,
            analysis_lease_ms: 120_000,
            vip_customers: vec![],
            follow_up_owner: "support".into(),
            asr: None,
            tts: None,
            tts_voice: None,
            speech_api_key: None,
            audio_cache_bytes: 64 * 1024 * 1024,
            web_token_ttl_secs: 120,
            silence_timeout_ms: 10_000,
            max_live_calls: 500,
            audio_ahead_ms: 2_000,
            max_utterance_ms: 30_000,
            handoff_retry_after_max_secs: 3600,
            handoff_rate_limit_attempts: 20,
            handoff_enrichment_wait_ms: 60_000,
            handoff_dedup_window_days: 7,
            handoff_min_match_confidence: 0.8,
            export_page_rows: 2000,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_api_base: dialnexa_voice::carrier::twilio::DEFAULT_API_BASE.into(),
            ring_timeout_secs: 30,
            reconcile_interval_secs: 60,
            playout_lead_ms: 200,
            stream_token_ttl_secs: 60,
            max_calls_per_number: 10,
            inbound_hook_timeout_ms: 1500,
            vad: "cascade".into(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(dialnexa_store::redact_url))
            .field("admin_key", &secret(&self.admin_key))
            .field("public_url", &self.public_url)
            .field("workers", &self.workers)
            .field("demo", &self.demo)
            .field("default_timezone", &self.default_timezone)
            .field("analysis_engine", &self.analysis_engine)
            .field("llm_url", &self.llm_url)
            .field("llm_model", &self.llm_model)
            .field("llm_api_key", &secret(&self.llm_api_key))
            .field("llm_timeout_ms", &self.llm_timeout_ms)
            .field("analysis_max_attempts", &self.analysis_max_attempts)
            .field("handoff_max_attempts", &self.handoff_max_attempts)
            .field("handoff_retry_secs", &self.handoff_retry_secs)
            .field("handoff_timeout_ms", &self.handoff_timeout_ms)
            .field("handoff_lease_ms", &self.handoff_lease_ms)
            .field("analysis_lease_ms", &self.analysis_lease_ms)
            .field("vip_customers", &self.vip_customers)
            .field("follow_up_owner", &self.follow_up_owner)
            .field("asr", &self.asr)
            .field("tts", &self.tts)
            .field("tts_voice", &self.tts_voice)
            .field("speech_api_key", &secret(&self.speech_api_key))
            .field("audio_cache_bytes", &self.audio_cache_bytes)
            .field("web_token_ttl_secs", &self.web_token_ttl_secs)
            .field("silence_timeout_ms", &self.silence_timeout_ms)
            .field("max_live_calls", &self.max_live_calls)
            .field("audio_ahead_ms", &self.audio_ahead_ms)
            .field("max_utterance_ms", &self.max_utterance_ms)
            .field("handoff_retry_after_max_secs", &self.handoff_retry_after_max_secs)
            .field("handoff_rate_limit_attempts", &self.handoff_rate_limit_attempts)
            .field("handoff_enrichment_wait_ms", &self.handoff_enrichment_wait_ms)
            .field("handoff_dedup_window_days", &self.handoff_dedup_window_days)
            .field("handoff_min_match_confidence", &self.handoff_min_match_confidence)
            .field("export_page_rows", &self.export_page_rows)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &secret(&self.twilio_auth_token))
            .field("twilio_api_base", &self.twilio_api_base)
            .field("ring_timeout_secs", &self.ring_timeout_secs)
            .field("reconcile_interval_secs", &self.reconcile_interval_secs)
            .field("playout_lead_ms", &self.playout_lead_ms)
            .field("stream_token_ttl_secs", &self.stream_token_ttl_secs)
            .field("max_calls_per_number", &self.max_calls_per_number)
            .field("inbound_hook_timeout_ms", &self.inbound_hook_timeout_ms)
            .field("vad", &self.vad)
            .finish()
    }
}

/// How a setting's text in the environment becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `HOST:PORT`.
    Address,
    Path,
    /// Text that must not be empty.
    Text,
    /// Text; empty means unset.
    OptionalText,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    U32,
    U64,
    Usize,
    F64,
    /// Comma-separated whole numbers.
    U64List,
    /// Comma-separated text (items trimmed, empty items dropped).
    TextList,
}

/// One setting: a field of [`Config`], its TOML key.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub kind: Kind,
    /// Never echoed in messages or `Debug`.
    pub secret: bool,
    /// One line: what it does.
    pub about: &'static str,
}

impl Setting {
    /// `DIALNEXA_<KEY>`.
    pub fn env_name(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }
}

const fn s(key: &'static str, kind: Kind, about: &'static str) -> Setting {
    Setting { key, kind, secret: false, about }
}

const fn secret(key: &'static str, about: &'static str) -> Setting {
    Setting { key, kind: Kind::OptionalText, secret: true, about }
}

/// Every field of [`Config`], in order (a unit test checks that none is missing).
pub const SETTINGS: &[Setting] = &[
    s("listen", Kind::Address, "address the HTTP server listens on"),
    s("data_dir", Kind::Path, "data directory: the SQLite file, recordings"),
    secret("database_url", "postgres://... to use PostgreSQL (DATABASE_URL also works)"),
    secret("admin_key", "bootstrap admin API key (created when absent)"),
    s("public_url", Kind::OptionalText, "public base URL used in links (default http://<listen>)"),
    s("workers", Kind::Bool, "run the background workers (analysis, handoff delivery) in this process"),
    s("demo", Kind::Bool, "create the demo agent and number when absent"),
    s("default_timezone", Kind::Text, "IANA timezone of calls that do not say theirs"),
    s("analysis_engine", Kind::Text, "post-call analysis engine: rules or llm"),
    s("llm_url", Kind::OptionalText, "OpenAI-compatible base URL for the llm analysis engine and llm agents"),
    s("llm_model", Kind::Text, "model for the llm engine, and for llm agents that name none"),
    secret("llm_api_key", "API key of the LLM endpoint"),
    s("llm_timeout_ms", Kind::U64, "timeout of one LLM request"),
    s("analysis_max_attempts", Kind::U32, "analysis attempts before it falls back to the rules engine"),
    s("handoff_max_attempts", Kind::U32, "delivery attempts before a handoff is dead"),
    s("handoff_retry_secs", Kind::U64List, "seconds between delivery attempts, comma-separated (the last repeats)"),
    s("handoff_timeout_ms", Kind::U64, "per-request timeout towards integrations"),
    s("handoff_lease_ms", Kind::U64, "how long a delivery may run before another worker takes it over (at least 2x handoff_timeout_ms)"),
    s("analysis_lease_ms", Kind::U64, "how long an analysis may run before another worker takes it over (at least 2x llm_timeout_ms)"),
    s("vip_customers", Kind::TextList, "customers whose records wait for review, comma-separated (case-insensitive)"),
    s("follow_up_owner", Kind::Text, "owner of callbacks and promises when a rule names none"),
    s("asr", Kind::OptionalText, "speech recognition: wyoming://HOST:PORT or an OpenAI-compatible https://.../v1"),
    s("tts", Kind::OptionalText, "speech synthesis: wyoming://HOST:PORT or an OpenAI-compatible https://.../v1"),
    s("tts_voice", Kind::OptionalText, "the TTS voice (unset: the provider's default)"),
    secret("speech_api_key", "API key of https speech providers"),
    s("audio_cache_bytes", Kind::Usize, "bound of the TTS audio cache, in bytes"),
    s("web_token_ttl_secs", Kind::U64, "how long a web call's access token may wait before it is used"),
    s("silence_timeout_ms", Kind::U64, "quiet this long after the agent speaks: one reprompt, then hang up"),
    s("max_live_calls", Kind::Usize, "live calls this node holds at once; more are refused"),
    s("audio_ahead_ms", Kind::U64, "how far caller audio may run ahead of the wall clock before the call ends as a protocol error"),
    s("max_utterance_ms", Kind::U64, "longest caller utterance; past it the turn ends"),
    s("handoff_retry_after_max_secs", Kind::U64, "longest Retry-After a delivery waits for; longer ones are capped"),
    s("handoff_rate_limit_attempts", Kind::U32, "rate-limited attempts a handoff may spend, apart from handoff_max_attempts"),
    s("handoff_enrichment_wait_ms", Kind::U64, "how long a ticket or alert waits for its call's enrichment"),
    s("handoff_dedup_window_days", Kind::U32, "how far back the same issue from the same caller counts as a repeat"),
    s("handoff_min_match_confidence", Kind::F64, "a caller matched with less confidence than this (0..1) goes to review first"),
    s("export_page_rows", Kind::U32, "rows GET /v1/calls/export reads from the database per page"),
    s("twilio_account_sid", Kind::OptionalText, "the Twilio account sid (AC...); with the auth token it enables phone calls"),
    secret("twilio_auth_token", "the Twilio account's auth token"),
    s("twilio_api_base", Kind::Text, "the Twilio REST API base (default https://api.twilio.com; the simulator's URL in tests)"),
    s("ring_timeout_secs", Kind::U32, "how long an outbound call rings before it is no_answer"),
    s("reconcile_interval_secs", Kind::U64, "how often open phone calls are checked against the carrier"),
    s("playout_lead_ms", Kind::U64, "how far ahead of real time agent audio goes to the carrier"),
    s("stream_token_ttl_secs", Kind::U64, "how long a phone call's media-stream token may wait before it is used"),
    s("max_calls_per_number", Kind::U32, "concurrent outbound calls one number may have"),
    s("inbound_hook_timeout_ms", Kind::U64, "how long a number's inbound hook may take before the number's own agent answers"),
    s("vad", Kind::Text, "voice activity detector of live calls: cascade, webrtc or energy"),
];

/// `DIALNEXA_*` variables that are not settings of [`Config`], and who reads them.
pub const OTHER_ENV: &[(&str, &str)] = &[
    ("DIALNEXA_CONFIG", "the TOML config file (dialnexa --config)"),
    ("DIALNEXA_LOG", "the log filter (dialnexa, default info,sqlx=warn)"),
    ("DIALNEXA_TEST_DATABASE_URL", "the PostgreSQL server of the test suite (scripts/test, crates/store/src/testing.rs)"),
    ("DIALNEXA_SPEECH_DIR", "scripts/speech-servers: where the speech servers live"),
    ("DIALNEXA_ASR_PORT", "scripts/speech-servers: the Wyoming ASR server's port"),
    ("DIALNEXA_TTS_PORT", "scripts/speech-servers: the Wyoming TTS server's port"),
    ("DIALNEXA_ASR_THREADS", "scripts/speech-servers: whisper's threads"),
    ("DIALNEXA_SPEECH_START_TIMEOUT", "scripts/speech-servers: how long to wait for the servers"),
];

/// Variables with this prefix are secrets for agent HTTP tools (`DIALNEXA_SECRET_<NAME>`),
/// read by the voice crate.
pub use dialnexa_voice::llm_agent::SECRET_ENV_PREFIX;

/// The setting a `DIALNEXA_*` variable names, if any.
pub fn setting_for_env(name: &str) -> Option<&'static Setting> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    SETTINGS.iter().find(|s| s.key.len() == rest.len() && s.key.bytes().zip(rest.bytes()).all(|(k, r)| k.to_ascii_uppercase() == r))
}

/// Flags given on the command line (they win over every other layer).
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_account_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_api_base: Option<String>,
}

/// A value read from the environment, typed by its setting's [`Kind`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum EnvValue {
    Unset(Option<()>),
    Bool(bool),
    Int(u64),
    Float(f64),
    Text(String),
    Ints(Vec<u64>),
    Texts(Vec<String>),
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parse one environment variable for its setting. The error names the variable; it shows the
/// value only when the setting is not a secret.
fn parse_env(setting: &Setting, name: &str, raw: &str) -> Result<EnvValue, String> {
    let value = raw.trim();
    let bad = |expected: &str| {
        if setting.secret { format!("{name}: invalid value; expected {expected}") } else { format!("{name}: invalid value '{value}'; expected {expected}") }
    };
    let int = |expected: &str, max: u64| value.parse::<u64>().ok().filter(|n| *n <= max).map(EnvValue::Int).ok_or_else(|| bad(expected));
    match setting.kind {
        Kind::Address => value.parse::<SocketAddr>().map(|_| EnvValue::Text(value.to_owned())).map_err(|_| bad("an address like 127.0.0.1:8080")),
        Kind::Path | Kind::Text if value.is_empty() => Err(format!("{name}: is empty")),
        Kind::Path | Kind::Text => Ok(EnvValue::Text(value.to_owned())),
        Kind::OptionalText if value.is_empty() => Ok(EnvValue::Unset(None)),
        Kind::OptionalText => Ok(EnvValue::Text(value.to_owned())),
        Kind::Bool => parse_bool(value).map(EnvValue::Bool).ok_or_else(|| bad("true or false")),
        Kind::U32 => int("a whole number (at most 4294967295)", u64::from(u32::MAX)),
        Kind::U64 => int("a whole number", u64::MAX),
        Kind::Usize => int("a whole number", usize::MAX as u64),
        Kind::F64 => value.parse::<f64>().ok().filter(|f| f.is_finite()).map(EnvValue::Float).ok_or_else(|| bad("a number like 0.8")),
        Kind::U64List if value.is_empty() => Ok(EnvValue::Ints(vec![])),
        Kind::U64List => value
            .split(',')
            .map(|item| item.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map(EnvValue::Ints)
            .map_err(|_| bad("comma-separated whole numbers like 5,60,300")),
        Kind::TextList => Ok(EnvValue::Texts(value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect())),
    }
}

/// The environment layer: every `DIALNEXA_<SETTING>` (and `DATABASE_URL`, which
/// `DIALNEXA_DATABASE_URL` beats), typed. Also the warnings for unknown `DIALNEXA_*` names.
fn env_layer(env: &BTreeMap<String, String>) -> Result<(BTreeMap<&'static str, EnvValue>, Vec<String>), String> {
    let mut values = BTreeMap::new();
    if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.trim().is_empty()) {
        values.insert("database_url", EnvValue::Text(url.trim().to_owned()));
    }
    let mut warnings = vec![];
    for (name, raw) in env {
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        match setting_for_env(name) {
            Some(setting) => {
                values.insert(setting.key, parse_env(setting, name, raw)?);
            }
            None => warnings.extend(unknown_env_warning(name)),
        }
    }
    Ok((values, warnings))
}

/// A warning for a `DIALNEXA_*` variable nobody reads, with the likely intended name.
pub fn unknown_env_warning(name: &str) -> Option<String> {
    if setting_for_env(name).is_some() || OTHER_ENV.iter().any(|(n, _)| *n == name) || name.starts_with(SECRET_ENV_PREFIX) {
        return None;
    }
    let known = SETTINGS.iter().map(Setting::env_name).chain(OTHER_ENV.iter().map(|(n, _)| (*n).to_owned()));
    let squash = |s: &str| s.chars().filter(|c| *c != '_').collect::<String>().to_ascii_uppercase();
    let best = known.map(|k| (if squash(&k) == squash(name) { 0 } else { edit_distance(&k, &name.to_ascii_uppercase()) }, k)).min();
    Some(match best {
        Some((d, k)) if d <= 3 => format!("{name} is not a DialNexa setting and is ignored; did you mean {k}?"),
        _ => format!("{name} is not a DialNexa setting and is ignored (docs/configuration.md lists them)"),
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The TOML file's keys must be settings: a typo is an error, not a silently ignored line.
fn check_file_keys(path: &Path) -> Result<(), String> {
    let data = Toml::file_exact(path).data().map_err(|e| format!("config file {}: {e}", path.display()))?;
    for dict in data.values() {
        for key in dict.keys() {
            if !SETTINGS.iter().any(|s| s.key == key) {
                let hint = SETTINGS.iter().map(|s| (edit_distance(s.key, key), s.key)).min().filter(|(d, _)| *d <= 3);
                return Err(match hint {
                    Some((_, k)) => format!("config file {}: unknown setting '{key}' (did you mean '{k}'?)", path.display()),
                    None => format!("config file {}: unknown setting '{key}' (docs/configuration.md lists them)", path.display()),
                });
            }
        }
    }
    Ok(())
}

/// A layer's bad value, said without echoing a secret.
fn extract_error(e: figment::Error) -> String {
    let key = e.path.last().cloned().unwrap_or_default();
    match SETTINGS.iter().find(|s| s.key == key) {
        Some(setting) if setting.secret => {
            let source = e.metadata.as_ref().map(|m| match &m.source {
                Some(src) => format!("{} {src}", m.name),
                None => m.name.to_string(),
            });
            format!("invalid configuration: '{key}' has the wrong type (expected text){}", source.map(|s| format!(" in {s}")).unwrap_or_default())
        }
        _ => format!("invalid configuration: {e}"),
    }
}

impl Config {
    /// Load from the process environment: see [`Config::load_from`].
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, String> {
        let mut env = vec![];
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().map(str::to_owned) else { continue };
            if !(name.starts_with(ENV_PREFIX) || name == "DATABASE_URL") {
                continue;
            }
            match value.into_string() {
                Ok(v) => env.push((name, v)),
                Err(_) => return Err(format!("{name}: is not valid UTF-8")),
            }
        }
        Self::load_from(file, overrides, env)
    }

    /// The layers with an explicit environment: defaults < the TOML `file` < `env`
    /// (`DIALNEXA_<SETTING>`, `DATABASE_URL`) < `overrides` (flags). Unknown `DIALNEXA_*`
    /// names are logged as warnings.
    pub fn load_from(file: Option<&Path>, overrides: &Overrides, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, String> {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            check_file_keys(path)?;
            fig = fig.merge(Toml::file_exact(path));
        }
        let (values, warnings) = env_layer(&env)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        for (key, value) in values {
            fig = fig.merge(Serialized::default(key, value));
        }
        fig = fig.merge(Serialized::defaults(overrides));
        let config: Config = fig.extract().map_err(extract_error)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if jiff::tz::TimeZone::get(&self.default_timezone).is_err() {
            return Err(format!("default_timezone '{}' is not an IANA timezone", self.default_timezone));
        }
        match self.analysis_engine.as_str() {
            "rules" => {}
            "llm" if self.llm_url.is_some() => {}
            "llm" => return Err("analysis_engine = llm needs llm_url (DIALNEXA_LLM_URL)".into()),
            other => return Err(format!("analysis_engine '{other}' is unknown (rules or llm)")),
        }
        if self.handoff_max_attempts == 0 || self.handoff_retry_secs.is_empty() {
            return Err("handoff_max_attempts must be at least 1 and handoff_retry_secs not empty".into());
        }
        if self.analysis_max_attempts == 0 {
            return Err("analysis_max_attempts must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.handoff_min_match_confidence) {
            return Err(format!("handoff_min_match_confidence {} is not between 0 and 1", self.handoff_min_match_confidence));
        }
        if self.export_page_rows == 0 {
            return Err("export_page_rows must be at least 1".into());
        }
        Ok(())
    }

    /// The store URL: PostgreSQL when configured, else SQLite in the data directory.
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("dialnexa.db").display()),
        }
    }

    pub fn handoff_retry_schedule(&self) -> Vec<std::time::Duration> {
        self.handoff_retry_secs.iter().map(|s| std::time::Duration::from_secs(*s)).collect()
    }

    /// The configured voice activity detector.
    pub fn vad_kind(&self) -> Result<dialnexa_voice::live::VadKind, String> {
        match self.vad.trim() {
            "cascade" => Ok(dialnexa_voice::live::VadKind::Cascade),
            "webrtc" => Ok(dialnexa_voice::live::VadKind::WebRtc),
            "energy" => Ok(dialnexa_voice::live::VadKind::Energy),
            other => Err(format!("DIALNEXA_VAD must be cascade, webrtc or energy, not '{}'", other.chars().take(20).collect::<String>())),
        }
    }

    pub fn public_base(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_owned()
    }
}

/// A setting's default, as the help and the docs show it.
fn default_text(key: &str) -> String {
    let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
    match &defaults[key] {
        serde_json::Value::Null => "unset".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "empty".into(),
        serde_json::Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The environment variables `dialnexa` reads, for `--help`.
pub fn env_help() -> String {
    let mut out = String::from(
        "Configuration: defaults < TOML file (--config, DIALNEXA_CONFIG) < environment < flags.\n\
         Every setting below is also a TOML key (the name in lower case, without DIALNEXA_).\n\
         List settings take comma-separated values. docs/configuration.md describes each one.\n\n\
         Environment variables (default in brackets):\n",
    );
    for setting in SETTINGS {
        let default = if setting.key == "database_url" { "unset: SQLite under data_dir".to_owned() } else { default_text(setting.key) };
        out.push_str(&format!("  {:<37} {} [{default}]\n", setting.env_name(), setting.about));
    }
    out.push_str(&format!("  {:<37} the same as DIALNEXA_DATABASE_URL, which wins when both are set\n", "DATABASE_URL"));
    out.push_str(&format!("  {:<37} the log filter (tracing EnvFilter syntax) [info,sqlx=warn]\n", "DIALNEXA_LOG"));
    out.push_str(&format!("  {:<37} a secret for agent HTTP tools, named in the agent config\n", "DIALNEXA_SECRET_<NAME>"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Config {
            database_url: Some("postgres://u:hunter2@h/db".into()),
            admin_key: Some("dnx_secret".into()),
            llm_api_key: Some("sk-llm-secret".into()),
            speech_api_key: Some("sk-speech-secret".into()),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        for secret in ["hunter2", "dnx_secret", "sk-llm-secret", "sk-speech-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("max_live_calls") && shown.contains("handoff_min_match_confidence"), "{shown}");
    }

    #[test]
    fn every_field_is_a_setting_and_in_debug() {
        let fields: Vec<String> = match serde_json::to_value(Config::default()).unwrap() {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => unreachable!(),
        };
        let mut keys: Vec<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
        keys.sort();
        let mut sorted = fields.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "SETTINGS must list every field of Config");
        let shown = format!("{:?}", Config::default());
        for f in &fields {
            assert!(shown.contains(&format!("{f}:")), "Debug misses {f}");
        }
        let secrets: Vec<&str> = SETTINGS.iter().filter(|s| s.secret).map(|s| s.key).collect();
        assert_eq!(secrets, ["database_url", "admin_key", "llm_api_key", "speech_api_key", "twilio_auth_token"]);
    }

    #[test]
    fn flags_win_over_defaults() {
        let o = Overrides { listen: Some("127.0.0.1:9999".parse().unwrap()), data_dir: Some("/tmp/x".into()), ..Default::default() };
        let c = Config::load_from(None, &o, []).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert!(c.store_url().starts_with("sqlite:///tmp/x/"));
    }

    #[test]
    fn layers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dialnexa.toml");
        std::fs::write(&file, "handoff_lease_ms = 1111\nanalysis_lease_ms = 2222\nllm_model = \"from-file\"\nvip_customers = [\"Acme\"]\n").unwrap();
        let e = env(&[("DIALNEXA_ANALYSIS_LEASE_MS", "3333"), ("DIALNEXA_LLM_MODEL", "from-env")]);
        let o = Overrides { llm_model: Some("from-flag".into()), ..Default::default() };
        let c = Config::load_from(Some(&file), &o, e).unwrap();
        assert_eq!(c.handoff_lease_ms, 1111, "file over default");
        assert_eq!(c.analysis_lease_ms, 3333, "env over file");
        assert_eq!(c.llm_model, "from-flag", "flag over env");
        assert_eq!(c.vip_customers, ["Acme"]);
    }

    #[test]
    fn lists_are_comma_separated() {
        let c = Config::load_from(
            None,
            &Overrides::default(),
            env(&[("DIALNEXA_HANDOFF_RETRY_SECS", "5, 60,300"), ("DIALNEXA_VIP_CUSTOMERS", "Acme Corp, Globex,")]),
        )
        .unwrap();
        assert_eq!(c.handoff_retry_secs, [5, 60, 300]);
        assert_eq!(c.vip_customers, ["Acme Corp", "Globex"]);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("DIALNEXA_HANDOFF_RETRY_SECS", "5,soon"),
            ("DIALNEXA_HANDOFF_LEASE_MS", "2s"),
            ("DIALNEXA_WORKERS", "maybe"),
            ("DIALNEXA_LISTEN", "localhost"),
            ("DIALNEXA_HANDOFF_DEDUP_WINDOW_DAYS", "99999999999"),
            ("DIALNEXA_HANDOFF_MIN_MATCH_CONFIDENCE", "high"),
            ("DIALNEXA_LLM_MODEL", ""),
        ] {
            let err = Config::load_from(None, &Overrides::default(), env(&[(name, value)])).unwrap_err();
            assert!(err.starts_with(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn errors_never_echo_secrets() {
        let e = env(&[("DIALNEXA_DATABASE_URL", "postgres://u:hunter2@h/db"), ("DIALNEXA_ADMIN_KEY", "dnx_hunter3"), ("DIALNEXA_ANALYSIS_ENGINE", "bogus")]);
        let err = Config::load_from(None, &Overrides::default(), e).unwrap_err();
        assert!(err.contains("bogus") && !err.contains("hunter"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "admin_key = 1234567\n").unwrap();
        let err = Config::load_from(Some(&file), &Overrides::default(), []).unwrap_err();
        assert!(err.contains("admin_key") && !err.contains("1234567"), "{err}");
    }

    #[test]
    fn database_url_from_either_variable() {
        let c = Config::load_from(None, &Overrides::default(), env(&[("DATABASE_URL", "postgres://a/generic")])).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://a/generic"));
        let c =
            Config::load_from(None, &Overrides::default(), env(&[("DATABASE_URL", "postgres://a/generic"), ("DIALNEXA_DATABASE_URL", "postgres://a/ours")]))
                .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://a/ours"));
        // Empty: unset, also over the file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "llm_url = \"http://from-file/v1\"\ntts_voice = \"alloy\"\n").unwrap();
        let c = Config::load_from(Some(&file), &Overrides::default(), env(&[("DATABASE_URL", ""), ("DIALNEXA_LLM_URL", "")])).unwrap();
        assert_eq!((c.database_url, c.llm_url, c.tts_voice.as_deref()), (None, None, Some("alloy")));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "handof_lease_ms = 5\n").unwrap();
        let err = Config::load_from(Some(&file), &Overrides::default(), []).unwrap_err();
        assert!(err.contains("handof_lease_ms") && err.contains("did you mean 'handoff_lease_ms'"), "{err}");
    }

    #[test]
    fn typos_are_warned_about() {
        assert!(unknown_env_warning("DIALNEXA_HANDOF_LEASE_MS").unwrap().contains("did you mean DIALNEXA_HANDOFF_LEASE_MS"));
        assert!(unknown_env_warning("DIALNEXA_LLMURL").unwrap().contains("did you mean DIALNEXA_LLM_URL"));
        assert!(unknown_env_warning("DIALNEXA_ZZZZZZZZZZZZZZZZZZZ").unwrap().contains("is not a DialNexa setting"));
        for known in ["DIALNEXA_LLM_URL", "DIALNEXA_LOG", "DIALNEXA_CONFIG", "DIALNEXA_SECRET_CRM_TOKEN", "DIALNEXA_ASR_PORT", "DIALNEXA_TEST_DATABASE_URL"] {
            assert_eq!(unknown_env_warning(known), None, "{known}");
        }
        // Names are case-sensitive, like the environment.
        assert!(setting_for_env("DIALNEXA_listen").is_none());
    }

    #[test]
    fn help_names_every_variable() {
        let help = env_help();
        for s in SETTINGS {
            assert!(help.contains(&s.env_name()), "{}", s.env_name());
        }
        assert!(help.contains("DIALNEXA_HANDOFF_RETRY_SECS") && help.contains("[5,300,1800,7200,18000,36000,36000]"), "{help}");
    }
}
