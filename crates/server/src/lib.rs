//! The `dialnexa` binary's library: HTTP API, CLI and (later) workers. The only crate that
//! wires the others together.

pub mod api;
pub mod app;
pub mod auth;
pub mod blobs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod demo;
pub mod error;
pub mod extract;
pub mod handoffs;
pub mod idempotency;
pub mod llmcall;
pub mod state;
pub mod telephony;
pub mod testcall;
pub mod webcall;
pub mod worker;

pub use app::{prepare, router, serve};
pub use config::Config;
pub use state::AppState;
