//! HTTP handlers, one module per resource of API.md.

pub mod agents;
pub mod annotations;
pub mod calls;
pub mod export;
pub mod handoffs;
pub mod health;
pub mod integrations;
pub mod numbers;
pub mod openapi;
pub mod recording;
pub mod routes;

use serde::Serialize;

/// RFC 3339 in UTC, as every timestamp in the API.
pub fn rfc3339(ts: jiff::Timestamp) -> String {
    ts.to_string()
}

/// A page of a list: `{"<items>": [...], "next_cursor": "..." | null}`.
pub fn page<T: Serialize>(name: &str, items: &[T], next_cursor: Option<String>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(name.to_owned(), serde_json::to_value(items).unwrap_or_default());
    m.insert("next_cursor".to_owned(), next_cursor.map(serde_json::Value::String).unwrap_or(serde_json::Value::Null));
    serde_json::Value::Object(m)
}

/// Split `limit + 1` fetched rows into the page and whether there is more.
pub fn split_page<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    (rows, more)
}
