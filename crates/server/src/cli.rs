//! The command line: `serve`, `migrate`, `call test`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "dialnexa",
    version,
    about = "Self-hosted AI voice agents: calls that explain themselves",
    after_help = "Every command reads the configuration layers: defaults < --config FILE < DIALNEXA_* environment variables < flags.\n`dialnexa serve --help` lists the variables; docs/configuration.md describes every setting."
)]
pub struct Cli {
    /// A TOML config file: any setting by name, e.g. `handoff_lease_ms = 2000` (docs/configuration.md).
    #[arg(long, global = true, env = "DIALNEXA_CONFIG", hide_env_values = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Where SQLite keeps its file (default ./dialnexa-data).
    #[arg(long, env = "DIALNEXA_DATA_DIR", hide_env_values = true)]
    data_dir: Option<PathBuf>,
    /// postgres://... to use PostgreSQL instead of SQLite (DATABASE_URL also works).
    #[arg(long, env = "DIALNEXA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (and run the workers).
    #[command(after_help = crate::config::env_help())]
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "DIALNEXA_LISTEN", hide_env_values = true, value_parser = parse_listen)]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        store: StoreArgs,
        /// Create the demo agent "Support line" and the demo number +15550100000 when absent.
        #[arg(long, env = "DIALNEXA_DEMO", hide_env_values = true, value_parser = parse_demo)]
        demo: bool,
        /// Speech recognition: wyoming://HOST:PORT or an OpenAI-compatible https://.../v1.
        #[arg(long, env = "DIALNEXA_ASR", hide_env_values = true)]
        asr: Option<String>,
        /// Speech synthesis: wyoming://HOST:PORT or an OpenAI-compatible https://.../v1.
        #[arg(long, env = "DIALNEXA_TTS", hide_env_values = true)]
        tts: Option<String>,
        /// OpenAI-compatible chat-completions base URL for llm agents and the llm analysis engine (key in DIALNEXA_LLM_API_KEY).
        #[arg(long, env = "DIALNEXA_LLM_URL", hide_env_values = true)]
        llm: Option<String>,
        /// The base URL at which the carrier (and browsers) reach this server, e.g. https://voice.example.com.
        #[arg(long, env = "DIALNEXA_PUBLIC_URL", hide_env_values = true)]
        public_url: Option<String>,
        /// The Twilio account sid (AC...); the auth token is read from DIALNEXA_TWILIO_AUTH_TOKEN only.
        #[arg(long, env = "DIALNEXA_TWILIO_ACCOUNT_SID", hide_env_values = true)]
        twilio_account_sid: Option<String>,
        /// The Twilio REST API base (default https://api.twilio.com; a simulator's URL for `dialnexa dev carrier`).
        #[arg(long, env = "DIALNEXA_TWILIO_API_BASE", hide_env_values = true)]
        twilio_api_base: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Calls from the command line.
    Call {
        #[command(subcommand)]
        call: CallCommand,
    },
    /// Post-call analysis tools.
    Analysis {
        #[command(subcommand)]
        analysis: AnalysisCommand,
    },
    /// Development tools.
    Dev {
        #[command(subcommand)]
        dev: DevCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Run the Twilio-compatible carrier simulator beside a DialNexa server (docs/telephony.md):
    /// it holds the given numbers, sends their calls' signed webhooks to the server, streams
    /// caller audio, and answers the REST API the server calls. Point the server at it with
    /// DIALNEXA_TWILIO_API_BASE; both read DIALNEXA_TWILIO_ACCOUNT_SID and DIALNEXA_TWILIO_AUTH_TOKEN.
    Carrier {
        /// Where the simulator listens (its REST API and its /sim control API).
        #[arg(long, default_value = "127.0.0.1:8099", value_parser = parse_listen)]
        listen: std::net::SocketAddr,
        /// The DialNexa server the carrier calls (its public URL).
        #[arg(long, env = "DIALNEXA_PUBLIC_URL", hide_env_values = true, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// A number the simulated account holds (repeat the flag for several).
        #[arg(long = "number", default_value = "+15550100000")]
        numbers: Vec<String>,
        /// Speech synthesis for the callers' scripts: wyoming://HOST:PORT or https://.../v1 (without it callers speak a tone).
        #[arg(long, env = "DIALNEXA_TTS", hide_env_values = true)]
        tts: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AnalysisCommand {
    /// Score an engine against labelled transcripts: every *.json in DIR.
    Eval {
        dir: PathBuf,
        #[arg(long, value_parser = ["rules", "llm"], default_value = "rules")]
        engine: String,
        /// Print one JSON object instead of the report.
        #[arg(long)]
        json: bool,
        /// List every miss.
        #[arg(long)]
        verbose: bool,
        /// OpenAI-compatible base URL for `--engine llm`.
        #[arg(long, env = "DIALNEXA_LLM_URL", hide_env_values = true)]
        llm_url: Option<String>,
        /// The model for `--engine llm`.
        #[arg(long, env = "DIALNEXA_LLM_MODEL", hide_env_values = true)]
        llm_model: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CallCommand {
    /// Run a test call: the agent against a caller script (one line per caller turn; blank
    /// lines and lines starting with '#' are skipped; a JSON array of strings also works).
    Test {
        /// The agent's name or id.
        #[arg(long)]
        agent: String,
        /// A published version (default: the latest published).
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        script: PathBuf,
        /// Print the whole call detail as JSON instead of the transcript.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The log filter when `DIALNEXA_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";

/// Logs to stderr, filtered by `DIALNEXA_LOG` (tracing's `EnvFilter` syntax); a filter that
/// does not parse is reported and the default is used.
fn init_tracing() {
    let default = || tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER);
    let (filter, problem) = match std::env::var("DIALNEXA_LOG") {
        Ok(s) if s.trim().is_empty() => (default(), None),
        Ok(s) => match tracing_subscriber::EnvFilter::try_new(s.trim()) {
            Ok(f) => (f, None),
            Err(e) => (default(), Some(e.to_string())),
        },
        Err(std::env::VarError::NotPresent) => (default(), None),
        Err(e) => (default(), Some(e.to_string())),
    };
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    if let Some(problem) = problem {
        tracing::warn!("DIALNEXA_LOG is not a valid log filter ({problem}); using {DEFAULT_LOG_FILTER}");
    }
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.trim().parse().map_err(|_| "expected HOST:PORT like 127.0.0.1:8080 (--listen or DIALNEXA_LISTEN)".to_owned())
}

/// `--demo` or `DIALNEXA_DEMO` (true/false, 1/0, yes/no, on/off).
fn parse_demo(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err("expected true or false (--demo or DIALNEXA_DEMO)".to_owned()),
    }
}

/// A flag's text; empty (an empty environment variable) counts as absent.
fn given(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn store_overrides(store: StoreArgs) -> Overrides {
    Overrides { data_dir: store.data_dir.filter(|d| !d.as_os_str().is_empty()), database_url: given(store.database_url), ..Overrides::default() }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { listen, store, demo, asr, tts, llm, public_url, twilio_account_sid, twilio_api_base } => {
            let config = Config::load(
                cli.config.as_deref(),
                &Overrides {
                    listen,
                    demo: demo.then_some(true),
                    asr: given(asr),
                    tts: given(tts),
                    llm_url: given(llm),
                    public_url: given(public_url),
                    twilio_account_sid: given(twilio_account_sid),
                    twilio_api_base: given(twilio_api_base),
                    ..store_overrides(store)
                },
            )?;
            let state = crate::app::prepare(&config).await?;
            let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(%addr, database = state.store.backend().as_str(), "DialNexa is serving");
            println!("DialNexa listening on http://{addr} (database: {})", state.store.backend().as_str());
            if config.demo {
                println!("Demo: agent '{}' and number {} are ready; try POST /v1/calls/test", crate::demo::DEMO_AGENT_NAME, crate::demo::DEMO_NUMBER);
            }
            crate::app::serve(state, listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
        }
        Command::Dev { dev: DevCommand::Carrier { listen, server, numbers, tts } } => {
            let config = Config::load(cli.config.as_deref(), &Overrides::default())?;
            let (Some(sid), Some(token)) = (config.twilio_account_sid.clone(), config.twilio_auth_token.clone()) else {
                return Err("the simulator needs the account the server uses: set DIALNEXA_TWILIO_ACCOUNT_SID and DIALNEXA_TWILIO_AUTH_TOKEN".into());
            };
            let mut cfg = dialnexa_carrier_sim::SimConfig::new(sid, token);
            if let Some(url) = given(tts).or(config.tts.clone()) {
                cfg = cfg
                    .with_tts(dialnexa_voice::speech::tts_from_url(&url, config.speech_api_key.clone(), config.tts_voice.clone()).map_err(|e| e.to_string())?);
            }
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let sim = dialnexa_carrier_sim::CarrierSim::start_on(listener, cfg).await;
            let server = server.trim_end_matches('/').to_owned();
            for n in &numbers {
                dialnexa_core::PhoneNumber::parse(n).map_err(|e| format!("--number {n}: {e}"))?;
                sim.set_number(n, &format!("{server}/telephony/twilio/voice"), Some(&format!("{server}/telephony/twilio/status")));
            }
            let base = sim.api_base();
            println!("Carrier simulator on {base}: start DialNexa with DIALNEXA_TWILIO_API_BASE={base}");
            println!("Numbers {} send their calls to {server}/telephony/twilio/voice", numbers.join(", "));
            println!(
                "Place a call:  curl -X POST {base}/sim/calls -H 'content-type: application/json' -d '{{\"from\": \"+14155550123\", \"to\": \"{}\", \"script\": {{\"steps\": [{{\"kind\": \"wait_for_agent\", \"quiet_ms\": 800}}, {{\"kind\": \"say\", \"text\": \"Hello\"}}, {{\"kind\": \"wait_for_agent\", \"quiet_ms\": 800}}, {{\"kind\": \"hangup\"}}]}}}}'",
                numbers.first().map(String::as_str).unwrap_or("+15550100000")
            );
            println!("See it:        curl {base}/sim/calls");
            let _ = tokio::signal::ctrl_c().await;
            Ok(())
        }
        Command::Migrate { store } => {
            let config = Config::load(cli.config.as_deref(), &store_overrides(store))?;
            if config.database_url.is_none() {
                std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
            }
            dialnexa_store::SqlStore::connect(&config.store_url()).await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }
        Command::Analysis { analysis: AnalysisCommand::Eval { dir, engine, json, verbose, llm_url, llm_model } } => {
            let config = Config::load(cli.config.as_deref(), &Overrides { llm_url: given(llm_url), llm_model: given(llm_model), ..Overrides::default() })?;
            eval(&dir, &engine, json, verbose, &config).await
        }
        Command::Call { call: CallCommand::Test { agent, version, script, json, store } } => {
            let config = Config::load(cli.config.as_deref(), &store_overrides(store))?;
            let state = crate::app::prepare(&config).await?;
            let text = std::fs::read_to_string(&script).map_err(|e| format!("cannot read {}: {e}", script.display()))?;
            let lines = parse_script(&text)?;
            let agent_id = match dialnexa_core::AgentId::parse(&agent) {
                Ok(id) => id,
                Err(_) => state.store.find_agent_by_name(&agent).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("no agent named '{agent}'"))?.agent_id,
            };
            let req = crate::testcall::TestCallRequest { agent_id: Some(agent_id), agent_version: version, caller_script: lines, ..Default::default() };
            let call_id = crate::testcall::run(state.store.as_ref(), req, &crate::api::calls::analysis_plan(&state), jiff::Timestamp::now())
                .await
                .map_err(|e| format!("{} ({})", e.message, e.code))?;
            // The command line has no background workers: analyse now.
            crate::worker::drain(&state).await.map_err(|e| e.to_string())?;
            let detail = state.store.get_call(&call_id).await.map_err(|e| e.to_string())?;
            let out = crate::api::calls::call_out(&state, detail).await.map_err(|e| e.message)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
            } else {
                print!("{}", render_transcript(&out));
            }
            Ok(())
        }
    }
}

async fn eval(dir: &std::path::Path, engine: &str, json: bool, verbose: bool, config: &Config) -> Result<(), String> {
    use dialnexa_analysis::{Engine, EngineError, eval};
    let cases = eval::load_dir(dir)?;
    let schema = eval::eval_schema();
    let llm: Option<dialnexa_analysis::llm::LlmEngine> = match engine {
        "llm" => {
            let url = config.llm_url.clone().ok_or("--engine llm needs --llm-url or DIALNEXA_LLM_URL")?;
            Some(
                dialnexa_analysis::llm::LlmEngine::new(dialnexa_analysis::llm::LlmConfig {
                    base_url: url,
                    model: config.llm_model.clone(),
                    api_key: config.llm_api_key.clone(),
                    timeout: std::time::Duration::from_millis(config.llm_timeout_ms),
                })
                .map_err(|e| e.to_string())?,
            )
        }
        _ => None,
    };
    let mut results = Vec::with_capacity(cases.len());
    let mut fallbacks = 0;
    let started = std::time::Instant::now();
    for case in cases {
        let input = case.input(&schema);
        let analysis = match &llm {
            None => dialnexa_analysis::analyze_offline(&input),
            Some(engine) => {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match engine.analyze(&input).await {
                        Ok(a) => break a,
                        Err(EngineError::Retryable { retry_after, .. }) if attempt < 3 => {
                            tokio::time::sleep(retry_after.unwrap_or(std::time::Duration::from_secs(1)).min(std::time::Duration::from_secs(10))).await;
                        }
                        Err(e) => {
                            eprintln!("{}: llm failed ({e}); using the rules engine", case.name);
                            fallbacks += 1;
                            break dialnexa_analysis::analyze_offline(&input);
                        }
                    }
                }
            }
        };
        results.push((case, analysis));
    }
    let elapsed = started.elapsed();
    let report = eval::score(&results);
    if json {
        let mut v = report.to_json();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("engine".into(), serde_json::json!(engine));
            m.insert("fallbacks".into(), serde_json::json!(fallbacks));
            m.insert("elapsed_ms".into(), serde_json::json!(elapsed.as_millis() as u64));
        }
        println!("{v}");
    } else {
        println!("engine: {engine}{}\n", if fallbacks > 0 { format!(" ({fallbacks} cases fell back to rules)") } else { String::new() });
        print!("{}", report.render(verbose));
    }
    Ok(())
}

/// One caller turn per line; or a JSON array of strings.
pub fn parse_script(text: &str) -> Result<Vec<String>, String> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str::<Vec<String>>(text).map_err(|e| format!("the script looks like JSON but is not an array of strings: {e}"));
    }
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect())
}

fn clock(ms: u64) -> String {
    format!("{:02}:{:02}.{}", ms / 60_000, (ms / 1000) % 60, (ms % 1000) / 100)
}

pub fn render_transcript(c: &crate::api::calls::CallOut) -> String {
    let mut s = format!(
        "call {}  agent {} v{}  {}\nroute: {}\n\n",
        c.call_id,
        c.agent_id.as_deref().unwrap_or("-"),
        c.agent_version.map(|v| v.to_string()).unwrap_or_default(),
        c.status,
        c.route.get("explanation").and_then(|v| v.as_str()).unwrap_or("")
    );
    for t in &c.transcript {
        s.push_str(&format!("[{}] {:>6}: {}\n", clock(t.start_ms), t.role, t.text));
    }
    s.push_str(&format!("\nended: {} after {} ms\n", c.disconnection_reason.as_deref().unwrap_or("-"), c.duration_ms.unwrap_or(0)));
    if !c.extracted_fields.is_empty() {
        s.push_str("fields:\n");
        for (k, f) in &c.extracted_fields {
            s.push_str(&format!("  {k} = {} (turn {}, confidence {:.2})\n", f.value, f.span.turn, f.confidence));
        }
    }
    s
}
