//! The shipped eval set is a gate: the rules engine must keep field F1 and category
//! accuracy at or above 0.85 on it (`dialnexa analysis eval crates/analysis/eval` prints
//! the full report).

use dialnexa_analysis::{analyze_offline, eval};

const FIELD_F1_MIN: f64 = 0.85;
const CATEGORY_ACCURACY_MIN: f64 = 0.85;

#[test]
fn rules_engine_meets_the_bar_on_the_shipped_set() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("eval");
    let cases = eval::load_dir(&dir).expect("the eval set loads");
    assert!(cases.len() >= 60, "the shipped set has at least 60 cases, found {}", cases.len());
    let schema = eval::eval_schema();
    let results: Vec<_> = cases
        .into_iter()
        .map(|c| {
            let a = analyze_offline(&c.input(&schema));
            (c, a)
        })
        .collect();
    let report = eval::score(&results);
    let shown = report.render(true);
    assert!(report.field_f1 >= FIELD_F1_MIN, "field F1 {:.3} < {FIELD_F1_MIN}\n{shown}", report.field_f1);
    assert!(report.category_accuracy >= CATEGORY_ACCURACY_MIN, "category accuracy {:.3} < {CATEGORY_ACCURACY_MIN}\n{shown}", report.category_accuracy);
    println!("{shown}");
}

#[test]
fn every_case_file_is_well_formed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("eval");
    let cases = eval::load_dir(&dir).expect("every case parses, names only built-in fields and a real timezone");
    for c in &cases {
        assert!(!c.transcript.is_empty(), "{}", c.name);
        assert!(!c.expected.fields.is_empty() || c.expected.category.as_str() == "other", "{} labels no field", c.name);
        for name in c.absent() {
            assert!(!c.expected.fields.contains_key(name), "{}: {name} is both labelled and absent", c.name);
        }
    }
}
