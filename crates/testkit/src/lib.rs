//! Test support: [`TestApp`] starts the real router on port 0 with a fresh database
//! (SQLite in a temporary directory, or a PostgreSQL schema of its own) and a known API
//! key, and talks to it over real HTTP.

pub mod fake_llm;
pub mod fakes;

use std::sync::Arc;

use dialnexa_server::{AppState, Config};
use dialnexa_store::{Backend, Store};
use serde_json::Value;

pub use dialnexa_store::Backend as DbBackend;

/// What a request answered.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// The error code of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A change to the server's config before it starts.
type ConfigTweak = Box<dyn FnOnce(&mut Config) + Send>;

pub struct TestAppBuilder {
    backend: Backend,
    demo: bool,
    reuse: Option<(tempfile::TempDir, String, String)>,
    tweaks: Vec<ConfigTweak>,
}

impl TestAppBuilder {
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    pub fn demo(mut self) -> Self {
        self.demo = true;
        self
    }
    /// Change the server's config before it starts.
    pub fn config(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.tweaks.push(Box::new(f));
        self
    }
    /// Analyse with the `llm` engine against this endpoint.
    pub fn llm(self, url: &str) -> Self {
        let url = url.to_owned();
        self.config(move |c| {
            c.analysis_engine = "llm".into();
            c.llm_url = Some(url);
            c.llm_model = "fake-model".into();
            c.llm_timeout_ms = 1_000;
        })
    }
    pub async fn start(self) -> TestApp {
        let (dir, url, key) = match self.reuse {
            Some(r) => r,
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dialnexa_store::testing::fresh_url(self.backend, dir.path()).await.expect("fresh database");
                (dir, url, format!("dnx_test_{}", uuid::Uuid::now_v7().simple()))
            }
        };
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().to_path_buf(),
            database_url: Some(url.clone()),
            admin_key: Some(key.clone()),
            demo: self.demo,
            // Tests drive background work themselves: `run_pending_work`.
            workers: false,
            ..Config::default()
        };
        for f in self.tweaks {
            f(&mut config);
        }
        // Bind first, so links and stream URLs name the real address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        config.listen = addr;
        let state = dialnexa_server::prepare(&config).await.expect("app starts");
        let store = state.store.clone();
        let kept_state = state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(dialnexa_server::serve(state, listener, async {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            key,
            store,
            state: kept_state,
            dir: Some(dir),
            url,
            shutdown: Some(tx),
            server: Some(server),
            backend: self.backend,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// An admin API key.
    pub key: String,
    pub store: Arc<dyn Store>,
    pub state: AppState,
    pub backend: Backend,
    dir: Option<tempfile::TempDir>,
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder { backend: Backend::Sqlite, demo: false, reuse: None, tweaks: vec![] }
    }

    pub async fn start(backend: Backend) -> TestApp {
        Self::builder().backend(backend).start().await
    }

    /// The data directory (SQLite's file lives here).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.as_ref().map(|d| d.path()).expect("data dir")
    }

    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// Stop the server and start a new one on the same data, with the same API key.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let dir = self.dir.take().expect("data dir");
        TestAppBuilder { backend: self.backend, demo: false, reuse: Some((dir, self.url.clone(), self.key.clone())), tweaks: vec![] }.start().await
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }

    /// Run every background work item that is due now (analysis ...), until none is left.
    pub async fn run_pending_work(&self) -> usize {
        dialnexa_server::worker::drain(&self.state).await.expect("background work runs")
    }

    /// [`Self::run_pending_work`] as if the clock said `now` (to reach scheduled retries).
    pub async fn run_pending_work_at(&self, now: jiff::Timestamp) -> usize {
        dialnexa_server::worker::drain_at(&self.state, now).await.expect("background work runs")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        Resp { status, headers, text }
    }

    fn authed(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.key)
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.authed(reqwest::Method::GET, path)).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.authed(reqwest::Method::POST, path).json(body)).await
    }
    pub async fn post_idem(&self, path: &str, body: &Value, key: &str) -> Resp {
        self.send(self.authed(reqwest::Method::POST, path).header("Idempotency-Key", key).json(body)).await
    }
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Resp {
        self.send(self.authed(reqwest::Method::POST, path).header("content-type", "application/json").body(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(self.authed(reqwest::Method::PUT, path).json(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send(self.authed(reqwest::Method::PATCH, path).json(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.authed(reqwest::Method::DELETE, path)).await
    }
    /// A request without any API key.
    pub async fn get_anonymous(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path))).await
    }

    /// Create an agent from a config and publish it; returns its id.
    pub async fn published_agent(&self, name: &str, config: &Value) -> String {
        let r = self.post("/v1/agents", &serde_json::json!({ "name": name, "config": config })).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json()["agent_id"].as_str().expect("agent_id").to_owned();
        let p = self.post(&format!("/v1/agents/{id}/publish"), &serde_json::json!({})).await;
        assert_eq!(p.status, 200, "{}", p.text);
        id
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The demo agent's config.
pub fn demo_agent_config() -> Value {
    serde_json::from_str(dialnexa_voice::DEMO_AGENT_CONFIG).expect("demo JSON")
}

/// Runs `f` once per backend (a test body shared by SQLite and PostgreSQL).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::DbBackend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::DbBackend::Postgres).await } )* }
    };
}
