//! Every `DIALNEXA_*` name the documentation, `dialnexa serve --help` or a test's
//! `.env("DIALNEXA_...")` mentions must take effect: a setting of `Config` (set it to a
//! non-default value and the loaded `Config` shows it), or a known exception whose reader is
//! checked in the code. A name nobody reads fails this test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use dialnexa_server::config::{Config, OTHER_ENV, Overrides, SETTINGS};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Names that are not `Config` settings: (name, the file that reads it, what that file must
/// contain on a line that is not a comment, why it is not a setting).
const EXCEPTIONS: &[(&str, &str, &str, &str)] = &[
    ("DIALNEXA_CONFIG", "crates/server/src/cli.rs", "env = \"DIALNEXA_CONFIG\"", "names the TOML file, so it cannot live in it"),
    ("DIALNEXA_LOG", "crates/server/src/cli.rs", "std::env::var(\"DIALNEXA_LOG\")", "the log filter, set up before the configuration loads"),
    (
        "DIALNEXA_TEST_DATABASE_URL",
        "crates/store/src/testing.rs",
        "std::env::var(\"DIALNEXA_TEST_DATABASE_URL\")",
        "the test suite's PostgreSQL, not the server's",
    ),
    ("DIALNEXA_SPEECH_DIR", "scripts/speech-servers", "${DIALNEXA_SPEECH_DIR:-", "the speech-server script's install directory"),
    ("DIALNEXA_ASR_PORT", "scripts/speech-servers", "${DIALNEXA_ASR_PORT:-", "the speech-server script's ASR port"),
    ("DIALNEXA_TTS_PORT", "scripts/speech-servers", "${DIALNEXA_TTS_PORT:-", "the speech-server script's TTS port"),
    ("DIALNEXA_ASR_THREADS", "scripts/speech-servers", "${DIALNEXA_ASR_THREADS:-", "the speech-server script's whisper threads"),
    ("DIALNEXA_SPEECH_START_TIMEOUT", "scripts/speech-servers", "${DIALNEXA_SPEECH_START_TIMEOUT:-", "the speech-server script's wait for the servers"),
];

/// Prefixes: any name that starts with one is read by that code.
const PREFIXES: &[(&str, &str, &str, &str)] = &[(
    "DIALNEXA_SECRET_",
    "crates/voice/src/llm_agent.rs",
    "SECRET_ENV_PREFIX: &str = \"DIALNEXA_SECRET_\"",
    "secrets of agent HTTP tools, named by the agent config",
)];

/// The `DIALNEXA_[A-Z0-9_]+` names in a text.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("DIALNEXA_").map(|i| i + from) {
        let mut end = i + "DIALNEXA_".len();
        while end < bytes.len() && (bytes[end].is_ascii_uppercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_') {
            end += 1;
        }
        let glued = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if !glued && end > i + "DIALNEXA_".len() {
            names.insert(text[i..end].to_owned());
        }
        from = end;
    }
    names
}

/// The binary with a controlled environment: nothing of ours leaks in from the test run.
fn dialnexa() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialnexa"));
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// Run to the end, or fail after a while (a bad value must stop the server, not let it serve).
fn run_briefly(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("the binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} was still running after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn serve_help() -> String {
    let out = dialnexa().args(["serve", "--help"]).output().expect("the binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// Where each name is mentioned: README.md, docs/*.md, `serve --help`, and the names tests
/// set on the binary with `.env("DIALNEXA_...")`.
fn mentioned() -> BTreeMap<String, BTreeSet<String>> {
    let mut sources: Vec<(String, String)> = vec![("README.md".into(), read("README.md"))];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs")).expect("docs/").map(|e| e.expect("entry").path()).collect();
    docs.sort();
    for doc in docs.into_iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let rel = doc.strip_prefix(root()).expect("under root").display().to_string();
        sources.push((rel, std::fs::read_to_string(&doc).expect("doc")));
    }
    sources.push(("dialnexa serve --help".into(), serve_help()));
    let mut tests: Vec<PathBuf> = std::fs::read_dir(root().join("crates/server/tests"))
        .expect("tests/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    tests.sort();
    // This file sets made-up names on purpose.
    for test in tests.into_iter().filter(|t| !t.ends_with("config_names.rs")) {
        let text = std::fs::read_to_string(&test).expect("test source");
        let set: String = text
            .split(".env(\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default())
            .filter(|n| n.starts_with("DIALNEXA_"))
            .collect::<Vec<_>>()
            .join(" ");
        sources.push((test.strip_prefix(root()).expect("under root").display().to_string(), set));
    }
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (source, text) in sources {
        for name in names_in(&text) {
            out.entry(name).or_default().insert(source.clone());
        }
    }
    out
}

/// The reader's text is on a line of `file` that is not a comment.
fn code_reads(file: &str, needle: &str) -> bool {
    let comment = if file.ends_with(".rs") { "//" } else { "#" };
    read(file).lines().map(str::trim_start).filter(|l| !l.starts_with(comment)).any(|l| l.contains(needle))
}

fn defaults() -> serde_json::Map<String, Value> {
    match serde_json::to_value(Config::default()).expect("config serializes") {
        Value::Object(m) => m,
        other => panic!("config is not an object: {other}"),
    }
}

/// A valid non-default value for a setting: (the variable's text, the field it gives, other
/// variables it needs).
fn sample(key: &str, default: &Value) -> (String, Value, Vec<(&'static str, &'static str)>) {
    match (key, default) {
        ("listen", _) => ("127.0.0.1:9".into(), json!("127.0.0.1:9"), vec![]),
        ("default_timezone", _) => ("Europe/Paris".into(), json!("Europe/Paris"), vec![]),
        ("analysis_engine", _) => ("llm".into(), json!("llm"), vec![("DIALNEXA_LLM_URL", "http://127.0.0.1:9/v1")]),
        ("database_url", _) => ("postgres://u:pw@db.example/dialnexa".into(), json!("postgres://u:pw@db.example/dialnexa"), vec![]),
        ("handoff_min_match_confidence", _) => ("0.55".into(), json!(0.55), vec![]),
        (_, Value::Null) => ("https://example.test/v1".into(), json!("https://example.test/v1"), vec![]),
        (_, Value::String(s)) => (format!("{s}-changed"), json!(format!("{s}-changed")), vec![]),
        (_, Value::Bool(b)) => ((!b).to_string(), json!(!b), vec![]),
        (_, Value::Number(n)) if n.is_u64() => {
            let v = n.as_u64().expect("u64") + 7;
            (v.to_string(), json!(v), vec![])
        }
        (_, Value::Number(n)) => {
            let v = if n.as_f64() == Some(0.25) { 0.5 } else { 0.25 };
            (v.to_string(), json!(v), vec![])
        }
        (_, Value::Array(items)) if items.first().is_some_and(Value::is_number) => (" 1, 2,3".into(), json!([1, 2, 3]), vec![]),
        (_, Value::Array(_)) => ("Acme Corp, Globex".into(), json!(["Acme Corp", "Globex"]), vec![]),
        (_, other) => panic!("{key}: no sample for {other}"),
    }
}

fn load(env: &[(&str, &str)]) -> Result<Config, String> {
    Config::load_from(None, &Overrides::default(), env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}

/// Set `name` and check that the loaded config differs from the defaults exactly there.
fn takes_effect(name: &str, key: &str) -> Result<(), String> {
    let defaults = defaults();
    let default = defaults.get(key).ok_or_else(|| format!("{name}: '{key}' is not a field of Config"))?;
    let (text, want, companions) = sample(key, default);
    let mut env = vec![(name, text.as_str())];
    env.extend(companions.iter().copied());
    let loaded = load(&env).map_err(|e| format!("{name}={text}: does not load: {e}"))?;
    let got = serde_json::to_value(&loaded).expect("serializes");
    let mut expected = Value::Object(defaults.clone());
    expected[key] = want;
    for (companion, value) in &companions {
        let k = companion.strip_prefix("DIALNEXA_").expect("prefix").to_ascii_lowercase();
        expected[k.as_str()] = json!(value);
    }
    if got != expected {
        return Err(format!("{name}={text}: the loaded config is\n{got:#}\nexpected\n{expected:#}"));
    }
    Ok(())
}

#[test]
fn every_mentioned_name_takes_effect() {
    let fields = defaults();
    let mut failures = vec![];
    let mentioned = mentioned();
    for (name, sources) in &mentioned {
        let from = sources.iter().cloned().collect::<Vec<_>>().join(", ");
        if let Some((prefix, file, needle, _why)) = PREFIXES.iter().find(|(p, ..)| name.starts_with(p)) {
            if !code_reads(file, needle) {
                failures.push(format!("{name} ({from}): {file} no longer reads the prefix {prefix}"));
            }
            continue;
        }
        if name.ends_with('_') {
            continue; // a prefix or a placeholder like DIALNEXA_HANDOFF_*
        }
        if let Some((_, file, needle, _why)) = EXCEPTIONS.iter().find(|(n, ..)| n == name) {
            if !code_reads(file, needle) {
                failures.push(format!("{name} ({from}): {file} no longer reads it (expected `{needle}`)"));
            }
            continue;
        }
        let key = name["DIALNEXA_".len()..].to_ascii_lowercase();
        if !fields.contains_key(&key) {
            failures.push(format!("{name} ({from}): nothing reads it: not a Config setting nor a known exception"));
            continue;
        }
        if let Err(e) = takes_effect(name, &key) {
            failures.push(format!("{name} ({from}): {e}"));
        }
    }
    assert!(failures.is_empty(), "names that do not take effect:\n{}", failures.join("\n"));
    // The scan found something: the crash test's lease settings, the speech script's, a secret.
    for name in
        ["DIALNEXA_HANDOFF_LEASE_MS", "DIALNEXA_ANALYSIS_LEASE_MS", "DIALNEXA_HANDOFF_TIMEOUT_MS", "DIALNEXA_ASR_PORT", "DIALNEXA_LOG", "DIALNEXA_SECRET_"]
    {
        assert!(mentioned.contains_key(name), "{name} was expected among {:?}", mentioned.keys());
    }
}

#[test]
fn every_setting_is_documented_and_in_the_help() {
    let doc = read("docs/configuration.md");
    let help = serve_help();
    let doc_names = names_in(&doc);
    for s in SETTINGS {
        let name = s.env_name();
        assert!(doc_names.contains(&name), "docs/configuration.md does not name {name}");
        assert!(doc.contains(&format!("`{}`", s.key)), "docs/configuration.md does not name the TOML key `{}`", s.key);
        assert!(help.contains(&name), "serve --help does not name {name}");
        assert!(takes_effect(&name, s.key).is_ok(), "{name}: {:?}", takes_effect(&name, s.key));
    }
    for (name, ..) in EXCEPTIONS {
        assert!(doc_names.contains(*name), "docs/configuration.md does not name {name}");
    }
    assert!(doc.contains("DATABASE_URL") && help.contains("DATABASE_URL"));
    // The flags say which variable they read.
    for flag in [
        "DIALNEXA_LISTEN",
        "DIALNEXA_DATA_DIR",
        "DIALNEXA_DATABASE_URL",
        "DIALNEXA_DEMO",
        "DIALNEXA_ASR",
        "DIALNEXA_TTS",
        "DIALNEXA_LLM_URL",
        "DIALNEXA_CONFIG",
    ] {
        assert!(help.contains(&format!("[env: {flag}]")), "serve --help: no [env: {flag}] on its flag\n{help}");
    }
    let readme = read("README.md");
    let running = readme.split("## Running it").nth(1).expect("README has Running it").split("\n## ").next().unwrap_or_default();
    assert!(running.contains("docs/configuration.md"), "README's Running it should point at docs/configuration.md");
}

#[test]
fn the_code_and_this_test_agree_on_the_exceptions() {
    let ours: BTreeSet<&str> = EXCEPTIONS.iter().map(|(n, ..)| *n).collect();
    let theirs: BTreeSet<&str> = OTHER_ENV.iter().map(|(n, _)| *n).collect();
    assert_eq!(ours, theirs, "config::OTHER_ENV (no warning for these) and this test's exceptions differ");
    assert_eq!(dialnexa_server::config::SECRET_ENV_PREFIX, PREFIXES[0].0);
}

#[test]
fn a_name_nobody_reads_is_caught() {
    // What the main test does with a name a doc might invent.
    let key = "handoff_lease_secs";
    assert!(!defaults().contains_key(key));
    assert!(names_in("set `DIALNEXA_HANDOFF_LEASE_SECS=5` or DIALNEXA_HANDOFF_* or XDIALNEXA_NO").contains("DIALNEXA_HANDOFF_LEASE_SECS"));
    assert!(!names_in("XDIALNEXA_NO").contains("DIALNEXA_NO"));
}

#[test]
fn the_crash_test_settings_take_effect() {
    let c = load(&[("DIALNEXA_HANDOFF_LEASE_MS", "2000"), ("DIALNEXA_ANALYSIS_LEASE_MS", "2000"), ("DIALNEXA_HANDOFF_TIMEOUT_MS", "1000")]).unwrap();
    assert_eq!((c.handoff_lease_ms, c.analysis_lease_ms, c.handoff_timeout_ms), (2000, 2000, 1000));
}

#[test]
fn dialnexa_config_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dialnexa.toml");
    let data = dir.path().join("from-file");
    std::fs::write(&file, format!("data_dir = {:?}\nhandoff_retry_secs = [1, 2]\n", data.display().to_string())).unwrap();
    let out = dialnexa().arg("migrate").env("DIALNEXA_CONFIG", &file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(data.join("dialnexa.db").exists(), "the file's data_dir was not used");
    // The environment beats the file.
    let env_data = dir.path().join("from-env");
    let out = dialnexa().arg("migrate").env("DIALNEXA_CONFIG", &file).env("DIALNEXA_DATA_DIR", &env_data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env_data.join("dialnexa.db").exists(), "DIALNEXA_DATA_DIR was not used");
}

#[test]
fn dialnexa_log_sets_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dialnexa().arg("migrate").arg("--data-dir").arg(dir.path().join("a")).output().unwrap();
    assert!(quiet.status.success(), "{}", String::from_utf8_lossy(&quiet.stderr));
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("DEBUG"), "{}", String::from_utf8_lossy(&quiet.stderr));
    let loud = dialnexa().arg("migrate").arg("--data-dir").arg(dir.path().join("b")).env("DIALNEXA_LOG", "debug").output().unwrap();
    assert!(loud.status.success(), "{}", String::from_utf8_lossy(&loud.stderr));
    assert!(String::from_utf8_lossy(&loud.stderr).contains("DEBUG"), "DIALNEXA_LOG=debug logged no debug line: {}", String::from_utf8_lossy(&loud.stderr));
}

#[test]
fn a_bad_value_stops_the_binary_and_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [("DIALNEXA_HANDOFF_RETRY_SECS", "5,soon"), ("DIALNEXA_WORKERS", "perhaps"), ("DIALNEXA_LISTEN", "nowhere")] {
        let out = run_briefly(dialnexa().arg("serve").arg("--data-dir").arg(dir.path()).env(name, value));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value} started");
        assert!(err.contains(name), "{name}={value}: {err}");
    }
    // A secret's value is never echoed.
    let out = run_briefly(
        dialnexa()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .env("DIALNEXA_ADMIN_KEY", "dnx_hunter2_secret")
            .env("DIALNEXA_LLM_API_KEY", "sk-hunter2")
            .env("DIALNEXA_ANALYSIS_ENGINE", "nonsense"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nonsense") && !err.contains("hunter2"), "{err}");
}

#[test]
fn a_typo_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let out = dialnexa().arg("migrate").arg("--data-dir").arg(dir.path()).env("DIALNEXA_HANDOF_LEASE_MS", "2000").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("DIALNEXA_HANDOF_LEASE_MS") && err.contains("did you mean DIALNEXA_HANDOFF_LEASE_MS"), "{err}");
}
