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

#[cfg(test)]
mod tests {
    use super::*;
    use dialnexa_core::analysis::AnalysisConfig;
    use dialnexa_core::evidence::{Role, TranscriptTurn};

    fn input(turns: usize, chars_each: usize) -> AnalysisInput {
        AnalysisInput {
            call_time: jiff::Timestamp::UNIX_EPOCH,
            timezone: "UTC".into(),
            transcript: (0..turns)
                .map(|i| TranscriptTurn {
                    index: i as u32,
                    role: if i % 2 == 0 { Role::Agent } else { Role::Caller },
                    text: "é".repeat(chars_each),
                    start_ms: 0,
                    end_ms: 0,
                })
                .collect(),
            schema: AnalysisConfig::default().resolve("analysis").unwrap(),
        }
    }

    #[test]
    fn short_transcripts_are_not_cut() {
        let (same, t) = truncate(&input(10, 50));
        assert!(t.is_none());
        assert_eq!(same.transcript.len(), 10);
    }

    #[test]
    fn long_transcripts_are_cut_and_the_cut_is_recorded() {
        let (cut, t) = truncate(&input(MAX_TURNS + 500, 10));
        let t = t.unwrap();
        assert_eq!((cut.transcript.len(), t.kept_turns, t.original_turns), (MAX_TURNS, MAX_TURNS, MAX_TURNS + 500));
        let (cut, t) = truncate(&input(10, MAX_CHARS / 4));
        let t = t.unwrap();
        assert_eq!(t.kept_chars, MAX_CHARS);
        assert_eq!(cut.transcript.iter().map(|x| x.text.chars().count()).sum::<usize>(), MAX_CHARS);
        let a = analyze_offline(&input(MAX_TURNS + 1, 5));
        assert!(a.truncated.is_some() && !a.warnings.is_empty());
    }

    #[test]
    fn empty_and_one_sided_transcripts_do_not_fail() {
        for i in [input(0, 0), input(1, 20)] {
            let a = analyze_offline(&i);
            assert!(a.fields.is_empty());
        }
    }
}
