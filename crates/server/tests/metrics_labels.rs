//! `/metrics` labels stay bounded whatever clients send: any method outside the standard
//! set is `other`, any path no route matches is `unmatched`, never the raw text.

use std::collections::BTreeSet;

use dialnexa_testkit::{DbBackend, TestApp};

const FLOOD: usize = 1500;

fn token() -> String {
    uuid::Uuid::now_v7().simple().to_string().to_ascii_uppercase()
}

/// The values of `label` in the exposition.
fn label_values(text: &str, label: &str) -> BTreeSet<String> {
    let needle = format!("{label}=\"");
    let mut values = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("dialnexa_http_")) {
        for (i, _) in line.match_indices(&needle) {
            values.insert(line[i + needle.len()..].split('"').next().unwrap_or_default().to_owned());
        }
    }
    values
}

async fn metrics(app: &TestApp) -> String {
    let r = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    assert_eq!(r.status(), 200);
    r.text().await.expect("metrics text")
}

#[tokio::test]
async fn random_methods_and_paths_do_not_grow_the_labels() {
    let app = TestApp::start(DbBackend::Sqlite).await;
    // The ordinary traffic every label set has.
    for path in ["/healthz", "/v1/calls", "/v1/calls/call_0123456789abcdef0123456789abcdef", "/no/such/page"] {
        let _ = app.get(path).await;
    }
    let _ = app.client.request(reqwest::Method::from_bytes(b"PURGE").unwrap(), app.url("/healthz")).send().await.expect("sent");
    let before = metrics(&app).await;

    let mut sent = vec![];
    for i in 0..FLOOD {
        let method = format!("M{}", token());
        let path = format!("/x{}/{}", token(), i);
        let req = match i % 3 {
            0 => app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url(&path)),
            1 => app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url("/healthz")),
            _ => app.client.get(app.url(&path)),
        };
        let r = req.send().await.expect("request sent");
        assert!(r.status().is_client_error(), "{method} {path}: {}", r.status());
        sent.push((method, path));
    }
    let after = metrics(&app).await;

    for (method, path) in sent.iter().step_by(7) {
        assert!(!after.contains(method.as_str()), "the method {method} became a label");
        assert!(!after.contains(path.as_str()), "the path {path} became a label");
    }
    let methods = label_values(&after, "method");
    let allowed: BTreeSet<String> = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"].iter().map(|m| (*m).to_owned()).collect();
    assert!(methods.is_subset(&allowed), "method labels: {methods:?}");
    assert!(methods.contains("other") && methods.contains("GET"), "method labels: {methods:?}");
    let routes = label_values(&after, "route");
    assert!(routes.contains("unmatched") && routes.contains("/healthz") && routes.contains("/v1/calls/{call_id}"), "route labels: {routes:?}");
    assert!(routes.iter().all(|r| r == "unmatched" || r.starts_with('/')), "route labels: {routes:?}");
    assert!(routes.iter().all(|r| !r.contains("/x")), "a raw path became a route label: {routes:?}");
    // The flood added no series: only the counts and latencies of the existing ones moved,
    // and /metrics' own series appeared.
    assert!(after.len() < before.len() + 4096, "/metrics grew from {} to {} bytes", before.len(), after.len());
    assert!(after.len() < 64 * 1024, "/metrics is {} bytes", after.len());
}
