//! The offline, deterministic rules engine (being written).

use dialnexa_core::analysis::{Analysis, AnalysisInput, Category, Sentiment};

pub const VERSION: &str = "0.1.0";

pub fn analyze(input: &AnalysisInput) -> Analysis {
    Analysis {
        engine: "rules".into(),
        engine_version: VERSION.into(),
        model: None,
        prompt_version: None,
        summary: Default::default(),
        fields: Default::default(),
        category: Category::Other,
        category_reasons: vec![],
        severity: None,
        sentiment: Sentiment::Neutral,
        repeat_contact: Default::default(),
        cancellation_language: Default::default(),
        sla_risk: Default::default(),
        sensitive: Default::default(),
        redacted_transcript: input.transcript.clone(),
        reproducible_bug: Default::default(),
        callbacks: vec![],
        promises: vec![],
        truncated: None,
        warnings: vec![],
    }
}
