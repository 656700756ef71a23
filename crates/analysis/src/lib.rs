//! Post-call analysis: from a transcript alone, what the call was about and where each fact
//! came from.
//!
//! Two engines behind one [`Engine`] trait: [`rules`], offline and deterministic (the
//! default), and [`llm`], any OpenAI-compatible chat-completions endpoint, validated against
//! the schema and falling back to `rules` when its answer cannot be used.

pub mod eval;
pub mod llm;
pub mod rules;

use async_trait::async_trait;
use dialnexa_core::analysis::{Analysis, AnalysisInput, Truncation};

/// The most of a transcript an engine reads: longer calls are cut, and the cut is recorded.
pub const MAX_TURNS: usize = 2_000;
pub const MAX_CHARS: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Worth another try later (the service was down, slow or rate-limited).
    #[error("{message}")]
    Retryable { message: String, retry_after: Option<std::time::Duration> },
    /// The answer could not be used (not JSON, not the schema, not grounded).
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    async fn analyze(&self, input: &AnalysisInput) -> Result<Analysis, EngineError>;
}

/// Cap a transcript at [`MAX_TURNS`] and [`MAX_CHARS`], keeping its beginning.
pub fn truncate(input: &AnalysisInput) -> (AnalysisInput, Option<Truncation>) {
    let original_turns = input.transcript.len();
    let original_chars: usize = input.transcript.iter().map(|t| t.text.chars().count()).sum();
    if original_turns <= MAX_TURNS && original_chars <= MAX_CHARS {
        return (input.clone(), None);
    }
    let mut kept = Vec::new();
    let mut chars = 0;
    for t in input.transcript.iter().take(MAX_TURNS) {
        let n = t.text.chars().count();
        if chars + n > MAX_CHARS {
            let room = MAX_CHARS - chars;
            if room > 0 {
                let mut cut = t.clone();
                cut.text = t.text.chars().take(room).collect();
                chars += room;
                kept.push(cut);
            }
            break;
        }
        chars += n;
        kept.push(t.clone());
    }
    let truncation = Truncation { original_turns, kept_turns: kept.len(), original_chars, kept_chars: chars };
    (AnalysisInput { transcript: kept, ..input.clone() }, Some(truncation))
}

/// The offline engine as an [`Engine`].
pub struct RulesEngine;

#[async_trait]
impl Engine for RulesEngine {
    fn name(&self) -> &'static str {
        "rules"
    }
    async fn analyze(&self, input: &AnalysisInput) -> Result<Analysis, EngineError> {
        Ok(analyze_offline(input))
    }
}

/// Run the rules engine with the transcript cap applied.
pub fn analyze_offline(input: &AnalysisInput) -> Analysis {
    let (capped, truncation) = truncate(input);
    let mut a = rules::analyze(&capped);
    if let Some(t) = truncation {
        a.warnings.push(format!(
            "transcript cut from {} turns / {} characters to {} / {} before analysis",
            t.original_turns, t.original_chars, t.kept_turns, t.kept_chars
        ));
        a.truncated = Some(t);
    }
    a
}
