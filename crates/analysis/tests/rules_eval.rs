//! The rules engine on the labelled eval set (`crates/analysis/eval`).
//! `cargo test -p dialnexa-analysis --test rules_eval -- --nocapture` prints the report.

use std::path::Path;

use dialnexa_analysis::{analyze_offline, eval};

#[test]
fn eval_set_scores() {
    let dir = std::env::var("EVAL_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("eval"));
    let cases = match eval::load_dir(&dir) {
        Ok(c) => c,
        Err(e) if e.starts_with("no *.json") => return,
        Err(e) => panic!("{e}"),
    };
    let schema = eval::eval_schema();
    let results: Vec<_> = cases
        .into_iter()
        .map(|c| {
            let a = analyze_offline(&c.input(&schema));
            (c, a)
        })
        .collect();
    if let Ok(want) = std::env::var("EVAL_CASE") {
        for (c, a) in &results {
            if want.split(',').any(|w| c.name.starts_with(w)) {
                println!("== {} expected {}\n{}", c.name, c.expected.category.as_str(), serde_json::to_string_pretty(&serde_json::json!({"category": a.category, "reasons": a.category_reasons, "severity": a.severity, "sentiment": a.sentiment, "fields": a.fields, "summary": a.summary, "callbacks": a.callbacks, "promises": a.promises, "signals": [&a.repeat_contact, &a.cancellation_language, &a.sla_risk], "sensitive": a.sensitive})).unwrap_or_default());
            }
        }
    }
    if std::env::var("EVAL_SEV").is_ok() {
        for (c, a) in &results {
            let es = c.expected.severity.map(|s| s.as_str()).unwrap_or("-");
            let ps = a.severity.map(|s| s.as_str()).unwrap_or("-");
            let et = c.expected.sentiment.map(|s| s.as_str()).unwrap_or("-");
            println!(
                "{:60} sev {es}/{ps} {} sent {et}/{} {}",
                c.name,
                if es == ps || es == "-" { "" } else { "X" },
                a.sentiment.as_str(),
                if et == a.sentiment.as_str() || et == "-" { "" } else { "X" }
            );
        }
    }
    let report = eval::score(&results);
    println!("{}", report.render(std::env::var("EVAL_VERBOSE").is_ok()));
    assert!(report.field_f1 >= 0.85, "field F1 {:.3} below 0.85", report.field_f1);
    assert!(report.category_accuracy >= 0.85, "category accuracy {:.3} below 0.85", report.category_accuracy);
}
