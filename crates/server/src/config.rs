//! Configuration in layers: built-in defaults, then an optional TOML file, then
//! `DIALNEXA_*` environment variables (and `DATABASE_URL`), then command-line flags.
//! Secrets are redacted in `Debug`.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

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
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(dialnexa_store::redact_url))
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("public_url", &self.public_url)
            .field("workers", &self.workers)
            .field("demo", &self.demo)
            .field("default_timezone", &self.default_timezone)
            .field("analysis_engine", &self.analysis_engine)
            .field("llm_url", &self.llm_url)
            .field("llm_model", &self.llm_model)
            .field("llm_api_key", &self.llm_api_key.as_ref().map(|_| "<redacted>"))
            .field("llm_timeout_ms", &self.llm_timeout_ms)
            .field("handoff_max_attempts", &self.handoff_max_attempts)
            .field("handoff_retry_secs", &self.handoff_retry_secs)
            .field("vip_customers", &self.vip_customers)
            .field("asr", &self.asr)
            .field("tts", &self.tts)
            .field("speech_api_key", &self.speech_api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
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
}

impl Config {
    pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed("DIALNEXA_").map(|k| k.as_str().to_ascii_lowercase().into()).only(&[
            "listen",
            "data_dir",
            "database_url",
            "admin_key",
            "public_url",
            "workers",
        ]));
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            fig = fig.merge(Serialized::default("database_url", url));
        }
        fig = fig.merge(Serialized::defaults(overrides));
        let config: Config = fig.extract().map_err(|e| format!("invalid configuration: {e}"))?;
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

    pub fn public_base(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = Config {
            database_url: Some("postgres://u:hunter2@h/db".into()),
            admin_key: Some("dnx_secret".into()),
            llm_api_key: Some("sk-llm-secret".into()),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("dnx_secret") && !shown.contains("sk-llm-secret"), "{shown}");
    }

    #[test]
    fn flags_win_over_defaults() {
        let o = Overrides { listen: Some("127.0.0.1:9999".parse().unwrap()), data_dir: Some("/tmp/x".into()), ..Default::default() };
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert!(c.store_url().starts_with("sqlite:///tmp/x/"));
    }
}
