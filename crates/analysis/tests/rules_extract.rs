//! The rules engine's extractors: one test per kind of value, with negation, hedging,
//! speaker attribution and ASR-style text.

use dialnexa_analysis::rules::analyze;
use dialnexa_core::analysis::{Analysis, AnalysisConfig, AnalysisInput, turns};
use dialnexa_core::evidence::Role::{self, Agent, Caller};
use serde_json::{Value, json};

fn run_at(pairs: &[(Role, &str)], call_time: &str, tz: &str) -> Analysis {
    let schema = AnalysisConfig::default().resolve("analysis").unwrap();
    analyze(&AnalysisInput { call_time: call_time.parse().unwrap(), timezone: tz.into(), transcript: turns(pairs), schema })
}

fn run(pairs: &[(Role, &str)]) -> Analysis {
    run_at(pairs, "2026-03-10T14:20:00Z", "America/New_York")
}

fn field(a: &Analysis, name: &str) -> Option<Value> {
    a.fields.get(name).map(|f| f.value.clone())
}

fn text_of(pairs: &[(Role, &str)], a: &Analysis, name: &str) -> String {
    let f = &a.fields[name];
    pairs[f.span.turn as usize].1.chars().skip(f.span.start as usize).take((f.span.end - f.span.start) as usize).collect()
}

#[test]
fn caller_name_company_and_contacts() {
    let t = [
        (Agent, "Thanks for calling, this is Priya."),
        (
            Caller,
            "Hi Priya, this is Dana Whitfield from Copper Canyon Solar. My email is Dana.Whitfield@CopperCanyon.example.com and my cell is (415) 555-0123.",
        ),
    ];
    let a = run(&t);
    assert_eq!(field(&a, "caller_name"), Some(json!("Dana Whitfield")));
    assert_eq!(field(&a, "customer"), Some(json!("Copper Canyon Solar")));
    assert_eq!(field(&a, "caller_email"), Some(json!("dana.whitfield@coppercanyon.example.com")));
    assert_eq!(field(&a, "caller_phone"), Some(json!("+14155550123")));
    // Spans point at the caller's own words.
    assert_eq!(text_of(&t, &a, "caller_name"), "Dana Whitfield");
    assert_eq!(text_of(&t, &a, "caller_phone"), "(415) 555-0123");
    for f in a.fields.values() {
        assert!((0.0..=1.0).contains(&f.confidence));
    }
}

#[test]
fn asr_spoken_email_phone_endpoint_and_status() {
    let t = [
        (Agent, "support this is sam"),
        (Caller, "hi this is john smith from acme freight we get h t t p five oh three on slash v one slash orders in us east one"),
        (Agent, "whats the best email and number"),
        (Caller, "its john dot smith at acme dot example dot com and four one five five five five zero one two three"),
    ];
    let a = run(&t);
    assert_eq!(field(&a, "caller_email"), Some(json!("john.smith@acme.example.com")));
    assert_eq!(field(&a, "caller_phone"), Some(json!("+14155550123")));
    assert_eq!(field(&a, "endpoint"), Some(json!("/v1/orders")));
    assert_eq!(field(&a, "region"), Some(json!("us-east-1")));
    assert!(field(&a, "error_message").unwrap().as_str().unwrap().contains("503"));
    assert_eq!(text_of(&t, &a, "endpoint"), "slash v one slash orders");
    assert_eq!(text_of(&t, &a, "region"), "us east one");
}

#[test]
fn regions_in_aws_gcp_and_spoken_forms() {
    for (said, want) in [
        ("we run in U.S. East 1", "us-east-1"),
        ("our cluster is in eu-west-1", "eu-west-1"),
        ("it's gcp europe-west1", "europe-west1"),
        ("ap south east two", "ap-southeast-2"),
    ] {
        let a = run(&[(Agent, "Which region?"), (Caller, said)]);
        assert_eq!(field(&a, "region"), Some(json!(want)), "{said}");
    }
}

#[test]
fn error_codes_messages_and_exceptions() {
    let cases = [
        ("Our OTP requests are rejected with ERR_RATE_LIMIT since noon.", "ERR_RATE_LIMIT"),
        ("The import stops with 'file exceeds 10,000 row limit'.", "file exceeds 10,000 row limit"),
        ("The worker crashes with a NullPointerException on startup.", "NullPointerException"),
        ("Every webhook fails our check with invalid signature.", "invalid signature"),
        ("The calls API returns 429 Too Many Requests.", "429"),
        ("Deliveries fail with connection timed out.", "timed out"),
    ];
    for (said, want) in cases {
        let a = run(&[(Agent, "What's happening?"), (Caller, said)]);
        let got = field(&a, "error_message").unwrap_or(Value::Null);
        assert!(got.as_str().is_some_and(|g| g.to_lowercase().contains(&want.to_lowercase())), "{said} → {got}");
    }
}

#[test]
fn versions_deploys_tickets_repos_channels_and_status_pages() {
    let t = [
        (Agent, "Go ahead."),
        (
            Caller,
            "It broke after v2.14.0 went out. We backed off in acme/checkout-service but no luck. I opened ticket ZD-10421, posted in #inc-payments, and https://status.acme.example.com/incidents/42 says all good.",
        ),
    ];
    let a = run(&t);
    assert_eq!(field(&a, "deploy"), Some(json!("v2.14.0")));
    assert_eq!(field(&a, "repo"), Some(json!("acme/checkout-service")));
    assert_eq!(field(&a, "support_ticket"), Some(json!("ZD-10421")));
    assert_eq!(field(&a, "escalation_channel"), Some(json!("#inc-payments")));
    assert_eq!(field(&a, "status_page_link"), Some(json!("https://status.acme.example.com/incidents/42")));
    let b = run(&[(Agent, "Hi."), (Caller, "since deploy 4812 every send fails, and release 2026.03.1 did not fix it")]);
    assert_eq!(field(&b, "deploy"), Some(json!("deploy 4812")));
}

#[test]
fn related_ids_accounts_and_numbers() {
    let a = run(&[
        (Agent, "How can I help?"),
        (Caller, "Invoice INV-20417 charged us twice. Our account is ACME-4521. It affects about 2,000 users who can't log in."),
    ]);
    assert_eq!(field(&a, "related_object_id"), Some(json!("INV-20417")));
    assert_eq!(field(&a, "account"), Some(json!("ACME-4521")));
    assert_eq!(field(&a, "affected_users"), Some(json!(2000)));
    let b = run(&[(Agent, "How many?"), (Caller, "two thousand users are affected they cannot log in")]);
    assert_eq!(field(&b, "affected_users"), Some(json!(2000)));
    let c = run(&[(Agent, "How many?"), (Caller, "Roughly 2k users are locked out.")]);
    assert_eq!(field(&c, "affected_users"), Some(json!(2000)));
}

#[test]
fn enums_environment_plan_urgency() {
    let a = run(&[(Agent, "Hi."), (Caller, "We're on the enterprise plan, it's prod that's failing, and this is urgent.")]);
    assert_eq!(field(&a, "environment"), Some(json!("production")));
    assert_eq!(field(&a, "plan"), Some(json!("enterprise")));
    assert_eq!(field(&a, "urgency"), Some(json!("urgent")));
    let b = run(&[(Agent, "Hi."), (Caller, "No rush at all, it's only our staging environment.")]);
    assert_eq!(field(&b, "environment"), Some(json!("staging")));
    assert_eq!(field(&b, "urgency"), Some(json!("low")));
}

#[test]
fn negation_drops_negated_values() {
    let a = run(&[
        (Agent, "Are you seeing errors?"),
        (Caller, "No errors in the logs at all. It's not down, it's just slow. We don't use staging, and it's not eu-west-1."),
    ]);
    assert_eq!(field(&a, "error_message"), None);
    assert_ne!(field(&a, "environment"), Some(json!("staging")));
    assert_eq!(field(&a, "region"), None);
}

#[test]
fn hedging_lowers_confidence_or_drops_the_value() {
    let strong = run(&[(Agent, "Which region?"), (Caller, "Maybe it's eu-west-1? I'm not sure.")]);
    assert_eq!(field(&strong, "region"), None);
    let mild = run(&[(Agent, "Which region?"), (Caller, "I think it's eu-west-1.")]);
    let plain = run(&[(Agent, "Which region?"), (Caller, "It's eu-west-1.")]);
    assert_eq!(field(&mild, "region"), Some(json!("eu-west-1")));
    assert!(mild.fields["region"].confidence < plain.fields["region"].confidence);
}

#[test]
fn speaker_attribution_read_backs_and_corrections() {
    // The agent's read-back counts only when confirmed, grounded with less confidence.
    let confirmed = run(&[(Caller, "Our API is failing."), (Agent, "Is that us-east-1?"), (Caller, "Yes, correct.")]);
    assert_eq!(field(&confirmed, "region"), Some(json!("us-east-1")));
    assert!(confirmed.fields["region"].confidence < 0.8);
    assert_eq!(confirmed.fields["region"].span.turn, 1);
    let unconfirmed = run(&[(Caller, "Our API is failing."), (Agent, "Is that us-east-1?"), (Caller, "Hmm, let me check.")]);
    assert_eq!(field(&unconfirmed, "region"), None);
    // A caller correction wins.
    let corrected = run(&[(Caller, "Our API is failing."), (Agent, "Is your account hosted in eu central one?"), (Caller, "no it's eu north one")]);
    assert_eq!(field(&corrected, "region"), Some(json!("eu-north-1")));
    // The agent's own email is not the caller's.
    let agent_email = run(&[(Agent, "You can write to help@vendor.example.com."), (Caller, "Thanks, bye.")]);
    assert_eq!(field(&agent_email, "caller_email"), None);
}

#[test]
fn free_text_fields() {
    let a = run(&[
        (Agent, "What's going on?"),
        (Caller, "When I click export and pick PDF, the file should contain the whole transcript but it cuts off after page twenty."),
        (Agent, "What's the impact?"),
        (Caller, "Our auditors can't review long calls, so the quarterly audit is blocked."),
        (Agent, "Any workaround?"),
        (Caller, "For now we export to docx instead."),
    ]);
    assert!(field(&a, "steps").unwrap().as_str().unwrap().contains("click export"));
    assert!(field(&a, "expected_behavior").unwrap().as_str().unwrap().contains("whole transcript"));
    assert!(field(&a, "actual_behavior").unwrap().as_str().unwrap().contains("cuts off"));
    assert!(field(&a, "business_impact").unwrap().as_str().unwrap().contains("can't review"));
    assert!(field(&a, "workaround").unwrap().as_str().unwrap().contains("docx"));
    let none = run(&[(Agent, "Do you have a workaround?"), (Caller, "No. There's no workaround, we only have you.")]);
    assert_eq!(field(&none, "workaround"), Some(json!("none")));
}

#[test]
fn booleans_logs_and_approval() {
    let a = run(&[(Agent, "Hi."), (Caller, "I checked the logs and I have request ids to share. Reissuing it needs approval from our finance team.")]);
    assert_eq!(field(&a, "logs_referenced"), Some(json!(true)));
    assert_eq!(field(&a, "approval_required"), Some(json!(true)));
}

#[test]
fn monitors_alerts_and_owners() {
    let a = run(&[
        (Agent, "Hi."),
        (Caller, "Our Datadog monitor hookrelay-delivery-lag fired, the alert is 'Webhook lag > 5m'. Khalid Rahman is our incident commander."),
    ]);
    assert_eq!(field(&a, "monitor"), Some(json!("hookrelay-delivery-lag")));
    assert_eq!(field(&a, "alert"), Some(json!("Webhook lag > 5m")));
    assert_eq!(field(&a, "owner"), Some(json!("Khalid Rahman")));
}

#[test]
fn product_area_is_a_short_phrase() {
    let a = run(&[(Agent, "Hi."), (Caller, "I'm calling about your reporting dashboard, it's really slow.")]);
    assert_eq!(field(&a, "product_area"), Some(json!("reporting dashboard")));
    let b = run(&[(Agent, "Hi."), (Caller, "We want to give our contractor an api key that can only read transcripts.")]);
    assert_eq!(field(&b, "product_area"), Some(json!("api key")));
}

#[test]
fn only_schema_fields_and_custom_fields_by_type() {
    let schema: dialnexa_core::analysis::AnalysisConfig = serde_json::from_value(json!({
        "schemas": ["operational_follow_up"],
        "fields": [
            {"name": "tier", "type": "enum", "options": ["gold", "silver"]},
            {"name": "order_count", "type": "number"},
            {"name": "wants_newsletter", "type": "boolean"},
            {"name": "favourite_colour", "type": "string"}
        ]
    }))
    .unwrap();
    let schema = schema.resolve("analysis").unwrap();
    let a = analyze(&AnalysisInput {
        call_time: "2026-03-10T14:20:00Z".parse().unwrap(),
        timezone: "America/New_York".into(),
        transcript: turns(&[(Agent, "Hi."), (Caller, "We're a gold customer in us-east-1 and we place 40 orders a day. Please no newsletter.")]),
        schema,
    });
    assert_eq!(field(&a, "tier"), Some(json!("gold")));
    assert_eq!(field(&a, "order_count"), Some(json!(40)));
    assert_eq!(field(&a, "wants_newsletter"), Some(json!(false)));
    assert_eq!(field(&a, "favourite_colour"), None, "ungrounded custom fields stay absent");
    assert_eq!(field(&a, "region"), None, "not in this schema");
}

// Generalisation rules: each with sentences of our own, not from any eval set.

#[test]
fn bare_people_counts_are_affected_users() {
    let a = run(&[(Agent, "How many are affected?"), (Caller, "Forty agents sitting on their hands, the phones won't connect.")]);
    assert_eq!(field(&a, "affected_users"), Some(json!(40)));
    let a = run(&[(Caller, "The invite link fails for our new hires. It's nine new starters so far.")]);
    assert_eq!(field(&a, "affected_users"), Some(json!(9)));
}

#[test]
fn alert_name_before_the_word_alert() {
    let a = run(&[(Caller, "Our QueueDepthCritical alert first went off at six and the workers are stalling.")]);
    assert_eq!(field(&a, "alert"), Some(json!("QueueDepthCritical")));
}

#[test]
fn plan_from_paying_and_even_on() {
    let a = run(&[(Caller, "Why can't I export more than a year? We're paying Pro for this.")]);
    assert_eq!(field(&a, "plan"), Some(json!("pro")));
}

#[test]
fn callback_time_from_make_it_and_accepted_offer() {
    let a = run(&[(Caller, "I'm stuck in traffic, I can't talk now. Make it 3:15 tomorrow afternoon, Central."), (Agent, "3:15 Central tomorrow, noted.")]);
    assert_eq!(field(&a, "callback_time"), Some(json!("2026-03-11T15:15:00-05:00")));
    assert_eq!(field(&a, "callback_timezone"), Some(json!("America/Chicago")));
    let a = run(&[(Caller, "The sync is still failing."), (Agent, "I'll ring you back at 4pm with news."), (Caller, "Alright, 4pm then.")]);
    assert_eq!(field(&a, "callback_time"), Some(json!("2026-03-10T16:00:00-04:00")));
}
