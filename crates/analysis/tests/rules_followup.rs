//! Times, sensitive data, callbacks, promises, summaries and robustness of the rules engine.

use dialnexa_analysis::rules::analyze;
use dialnexa_core::analysis::{Analysis, AnalysisConfig, AnalysisInput, turns};
use dialnexa_core::evidence::Role::{self, Agent, Caller};
use dialnexa_core::evidence::TranscriptTurn;
use serde_json::json;

fn run_at(pairs: &[(Role, &str)], call_time: &str, tz: &str) -> Analysis {
    let schema = AnalysisConfig::default().resolve("analysis").unwrap();
    analyze(&AnalysisInput { call_time: call_time.parse().unwrap(), timezone: tz.into(), transcript: turns(pairs), schema })
}

fn run(pairs: &[(Role, &str)]) -> Analysis {
    run_at(pairs, "2026-03-10T14:20:00Z", "America/New_York")
}

fn field(a: &Analysis, name: &str) -> Option<serde_json::Value> {
    a.fields.get(name).map(|f| f.value.clone())
}

#[test]
fn start_times_resolve_against_the_call_with_dst() {
    // 2026-03-08 is the US spring-forward day: yesterday (the 9th) is already -04:00.
    let a = run(&[(Agent, "When did it start?"), (Caller, "It started at 3pm yesterday.")]);
    assert_eq!(field(&a, "start_time"), Some(json!("2026-03-09T15:00:00-04:00")));
    let b = run(&[(Agent, "When?"), (Caller, "Since last Tuesday, every call fails.")]);
    assert_eq!(field(&b, "start_time"), Some(json!("2026-03-03T00:00:00-05:00")));
    let c = run(&[(Agent, "When?"), (Caller, "since nine thirty this morning it's been failing")]);
    assert_eq!(field(&c, "start_time"), Some(json!("2026-03-10T09:30:00-04:00")));
    let vague = run(&[(Agent, "When?"), (Caller, "It started a while ago, this morning sometime.")]);
    assert_eq!(field(&vague, "start_time"), None);
    // Sydney, first Sunday of April 2026: clocks go back at 3am; 1am is still +11:00.
    let d = run_at(&[(Agent, "When?"), (Caller, "since one a m on sunday the widget shows fully booked")], "2026-04-06T00:30:00Z", "Australia/Sydney");
    assert_eq!(field(&d, "start_time"), Some(json!("2026-04-05T01:00:00+11:00")));
}

#[test]
fn deadlines_use_17_00_without_a_clock() {
    let a = run(&[(Agent, "When do you need it?"), (Caller, "We need the corrected invoice by Friday.")]);
    assert_eq!(field(&a, "deadline"), Some(json!("2026-03-13T17:00:00-04:00")));
    let b = run(&[(Caller, "Please refund the duplicate charge."), (Agent, "I'll email you the refund confirmation by end of day tomorrow.")]);
    assert_eq!(field(&b, "deadline"), Some(json!("2026-03-11T17:00:00-04:00")));
}

#[test]
fn callbacks_with_zone_words_and_corrections() {
    let a = run_at(
        &[
            (Agent, "billing how can i help"),
            (Caller, "yeah call me back at four one five five five five zero one nine nine tomorrow at ten a m pacific"),
            (Agent, "okay tomorrow at ten a m pacific time"),
        ],
        "2026-04-23T20:30:00Z",
        "America/Chicago",
    );
    assert_eq!(a.callbacks.len(), 1);
    let cb = &a.callbacks[0];
    assert_eq!(cb.phone.as_deref(), Some("+14155550199"));
    assert_eq!(cb.preferred_time.as_deref(), Some("2026-04-24T10:00:00-07:00"));
    assert_eq!(cb.timezone.as_deref(), Some("America/Los_Angeles"));
    assert_eq!(field(&a, "callback_time"), Some(json!("2026-04-24T10:00:00-07:00")));
    assert_eq!(field(&a, "callback_timezone"), Some(json!("America/Los_Angeles")));
    // "around three, no actually make it half past three" → 15:30.
    let b = run_at(
        &[(Agent, "support"), (Caller, "can someone ring me back this afternoon around three no actually make it half past three perth time")],
        "2026-08-13T04:05:00Z",
        "Australia/Perth",
    );
    assert_eq!(b.callbacks[0].preferred_time.as_deref(), Some("2026-08-13T15:30:00+08:00"));
    // "tomorrow morning" → 09:00; UK time.
    let c = run(&[(Agent, "Hi."), (Caller, "Could you call me back tomorrow morning, UK time?")]);
    assert_eq!(c.callbacks[0].preferred_time.as_deref(), Some("2026-03-11T09:00:00+00:00"));
}

#[test]
fn promises_the_agent_made() {
    let a = run(&[
        (Caller, "Tom Reyes here. We were charged twice, please refund it."),
        (Agent, "I'll email you the refund confirmation by end of day tomorrow."),
        (Caller, "Thanks."),
    ]);
    let p = &a.promises[0];
    assert!(p.what.contains("email you the refund confirmation"));
    assert_eq!(p.channel.as_deref(), Some("email"));
    assert_eq!(p.by_when.as_deref(), Some("2026-03-11T17:00:00-04:00"));
    assert_eq!(p.to_whom.as_deref(), Some("Tom Reyes"));
    assert!(field(&a, "promised_next_step").unwrap().as_str().unwrap().contains("email you the refund confirmation"));
    // Caller statements are never promises.
    let b = run(&[(Caller, "I'll send you the logs tomorrow."), (Agent, "Thanks.")]);
    assert!(b.promises.is_empty());
}

#[test]
fn sensitive_data_is_found_and_redacted() {
    let t = [
        (Agent, "Billing."),
        (
            Caller,
            "The new card is 4111 1111 1111 1111. My password is Tulp!2026brouwer. My social security number is 123-45-6789. I was diagnosed with diabetes last year.",
        ),
    ];
    let a = run(&t);
    assert!(a.sensitive.detected);
    for k in ["card_number", "password", "national_id", "health"] {
        assert!(a.sensitive.kinds.iter().any(|x| x == k), "{k}: {:?}", a.sensitive.kinds);
    }
    let red = &a.redacted_transcript[1].text;
    for secret in ["4111 1111 1111 1111", "Tulp!2026brouwer", "123-45-6789", "diabetes"] {
        assert!(!red.contains(secret), "{secret} in {red}");
        for e in &a.sensitive.evidence {
            assert!(!e.quote.contains(secret));
        }
    }
    assert!(red.contains("[card number]") && red.contains("[password]"));
    assert_eq!(field(&a, "sensitive_data"), Some(json!(true)));
    // Spoken digits, Luhn-checked; a non-Luhn number is not a card.
    let b = run(&[(Agent, "hi"), (Caller, "its four one one one one one one one one one one one one one one one")]);
    assert!(b.sensitive.kinds.contains(&"card_number".to_string()));
    let c = run(&[(Agent, "hi"), (Caller, "the order number is 1234 5678 9012 3456")]);
    assert!(!c.sensitive.kinds.contains(&"card_number".to_string()));
    assert!(!run(&[(Agent, "hi"), (Caller, "I can send a password reset link?")]).sensitive.detected);
}

#[test]
fn summary_reproducibility() {
    let a = run(&[
        (Agent, "Hi."),
        (
            Caller,
            "Diego Salcedo from Summit Ridge. When I click export for Nov 1 to Nov 3 in the recordings export, I expected all 214 recordings but I get 203.",
        ),
        (Agent, "What's the impact?"),
        (Caller, "Our auditors can't complete the review."),
        (Agent, "I'll send it to the recordings team as a bug and email you the reference."),
    ]);
    let n = a.summary.text.matches(". ").count() + 1;
    assert!((2..=5).contains(&n), "{}", a.summary.text);
    assert!(a.summary.text.contains("Diego Salcedo"));
    assert!(a.summary.next_step.is_some());
    assert!(a.summary.impact.as_deref().is_some_and(|i| i.contains("auditors")));
    assert!(a.reproducible_bug.reproducible, "{:?}", a.reproducible_bug.missing);
    let b = run(&[(Agent, "Hi."), (Caller, "Something is weird with the Gantt view sometimes.")]);
    assert!(!b.reproducible_bug.reproducible);
    assert!(b.reproducible_bug.missing.contains(&"steps".to_string()));
}

fn input(transcript: Vec<TranscriptTurn>) -> AnalysisInput {
    AnalysisInput {
        call_time: "2026-03-10T14:20:00Z".parse().unwrap(),
        timezone: "Not/AZone".into(),
        transcript,
        schema: AnalysisConfig::default().resolve("analysis").unwrap(),
    }
}

#[test]
fn odd_inputs_do_not_panic() {
    let empty = analyze(&input(vec![]));
    assert!(empty.fields.is_empty());
    assert!(!empty.summary.text.is_empty());
    let agent_only = analyze(&input(turns(&[(Agent, "Hello? Is anyone there? Is that us-east-1?"), (Agent, "I'll call back later.")])));
    assert!(!agent_only.fields.contains_key("region"));
    let weird = [
        "",
        " ",
        "🙂🙂 ☎️ İstanbul ǅ ﬁ ß ẞ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{200b}\u{0301}é\u{0301}",
        "slash slash slash dot dot at at @ @ # # ## '' \"\" “” ‘’",
        "nine nine nine nine nine nine nine nine nine nine nine nine nine nine nine nine nine nine nine nine nine hundred thousand million",
        "a a a a a a a b b b c c u s e a s t o n e oh oh oh oh",
        "4111111111111111 123-45-6789 my password is",
        "at 99:99 pm on the 45th of march since 0 o'clock in 99999 hours",
        "\n\t\r mixed\u{0000}controls\u{001b}[0m",
    ];
    for w in weird {
        let a = analyze(&input(turns(&[(Agent, w), (Caller, w), (Caller, w)])));
        assert_eq!(a.redacted_transcript.len(), 3);
    }
    // A huge turn with many cues.
    let big = "Our API is down since 3pm, error 503 on /v1/orders in us-east-1, call me back at 415 555 0123. ".repeat(2_000);
    let a = analyze(&input(turns(&[(Agent, "Hi."), (Caller, &big)])));
    assert_eq!(a.fields.get("region").map(|f| f.value.clone()), Some(json!("us-east-1")));
    let many: Vec<(Role, &str)> = (0..3000).map(|i| if i % 2 == 0 { (Agent, "Okay?") } else { (Caller, "yes it's prod in eu west one") }).collect();
    let a = analyze(&input(turns(&many)));
    assert_eq!(a.fields.get("environment").map(|f| f.value.clone()), Some(json!("production")));
}
