//! Triage by the rules engine: one test per category, plus severity, sentiment and signals.

use dialnexa_analysis::rules::analyze;
use dialnexa_core::analysis::{Analysis, AnalysisConfig, AnalysisInput, Category, Sentiment, Severity, turns};
use dialnexa_core::evidence::Role::{self, Agent, Caller};

fn run(pairs: &[(Role, &str)]) -> Analysis {
    let schema = AnalysisConfig::default().resolve("analysis").unwrap();
    analyze(&AnalysisInput { call_time: "2026-03-10T14:20:00Z".parse().unwrap(), timezone: "America/New_York".into(), transcript: turns(pairs), schema })
}

fn cat(pairs: &[(Role, &str)]) -> Category {
    run(pairs).category
}

#[test]
fn incident() {
    let a = run(&[
        (Agent, "Support, this is Sam."),
        (Caller, "Our whole checkout is down. Every request to /v2/payments returns 503 since 2pm and nobody can check out. This is unacceptable."),
        (Agent, "I'm opening a priority incident now."),
    ]);
    assert_eq!(a.category, Category::Incident);
    assert_eq!(a.severity, Some(Severity::Sev1));
    assert!(a.category_reasons.iter().any(|r| r.contains('"')), "reasons quote the evidence: {:?}", a.category_reasons);
}

#[test]
fn bug_with_steps() {
    let a = run(&[
        (Agent, "What's happening?"),
        (
            Caller,
            "I found a bug in the export and I can reproduce it every time. When I click export and pick PDF, it should include the whole transcript but it cuts off after twenty pages.",
        ),
        (Agent, "I could reproduce it here too, I'll log it as a bug."),
    ]);
    assert_eq!(a.category, Category::Bug);
    assert!(matches!(a.severity, Some(Severity::Sev3) | Some(Severity::Sev2)));
}

#[test]
fn setup_question_even_with_not_working() {
    assert_eq!(
        cat(&[
            (Agent, "How can I help?"),
            (Caller, "The docs say the webhook fires on call.completed but I can't get the webhook to fire, it's not working. How do I configure it?"),
            (Agent, "You'll need to add the endpoint under Settings, Webhooks, then pick the events."),
        ]),
        Category::SetupQuestion
    );
}

#[test]
fn product_confusion() {
    assert_eq!(
        cat(&[
            (Agent, "Billing support."),
            (Caller, "I think your billing is wrong, the invoice says more minutes than our export."),
            (Agent, "Calls are billed per started minute, so that's expected; it's working as designed."),
            (Caller, "Oh, so it's not an error. Makes sense."),
        ]),
        Category::ProductConfusion
    );
}

#[test]
fn account_configuration() {
    assert_eq!(
        cat(&[
            (Agent, "Support."),
            (Caller, "We get 429s at 15 requests per second but our contract says 100 per second."),
            (Agent, "I see the rate limit on your account was left at the default. I've updated it to 100 now."),
        ]),
        Category::AccountConfiguration
    );
}

#[test]
fn known_limitation() {
    assert_eq!(
        cat(&[
            (Agent, "Support."),
            (Caller, "We need call recordings kept for ten years but the retention setting won't go beyond two years."),
            (Agent, "That's right, the maximum retention is 730 days on every plan. It's a known limitation and it's in the documentation."),
        ]),
        Category::KnownLimitation
    );
}

#[test]
fn operational_request() {
    assert_eq!(
        cat(&[
            (Agent, "Billing."),
            (Caller, "We were charged twice for February, invoice INV-20417. I need the second charge refunded."),
            (Agent, "I'll process the refund.")
        ]),
        Category::OperationalRequest
    );
}

#[test]
fn callback_request() {
    let a = run(&[
        (Agent, "Support."),
        (Caller, "I'm about to go into a meeting so I can't do this now. Could someone call me back tomorrow at 2pm?"),
        (Agent, "Of course, I'll have someone call you tomorrow at 2pm."),
    ]);
    assert_eq!(a.category, Category::CallbackRequest);
    assert_eq!(a.severity, None, "no severity outside incidents and bugs");
}

#[test]
fn other() {
    assert_eq!(cat(&[(Agent, "DialNexa support."), (Caller, "Hi, is this Tony's Pizzeria? I'd like a large pepperoni.")]), Category::Other);
    assert_eq!(cat(&[(Agent, "Hello?"), (Caller, "Sorry, wrong number.")]), Category::Other);
}

#[test]
fn negated_outage_words_do_not_make_an_incident_alone() {
    let a = run(&[(Agent, "Hi."), (Caller, "It's not down and nothing is broken. How do I set up SSO with Okta?")]);
    assert_eq!(a.category, Category::SetupQuestion);
}

#[test]
fn sentiment() {
    let angry = run(&[(Agent, "Hi."), (Caller, "This is the third time I'm calling. This is absolutely unacceptable and ridiculous!")]);
    assert_eq!(angry.sentiment, Sentiment::Angry);
    let negative = run(&[(Agent, "Hi."), (Caller, "I'm really frustrated, the export is broken again and I'm worried about the audit.")]);
    assert_eq!(negative.sentiment, Sentiment::Negative);
    let positive = run(&[(Agent, "Hi."), (Caller, "Just calling to say thanks, the new IVR is fantastic. You've been a real help.")]);
    assert_eq!(positive.sentiment, Sentiment::Positive);
    let neutral = run(&[(Agent, "Hi."), (Caller, "I need the billing address on our account changed.")]);
    assert_eq!(neutral.sentiment, Sentiment::Neutral);
}

#[test]
fn signals_with_evidence() {
    let a = run(&[
        (Agent, "Hi."),
        (
            Caller,
            "This is the third time I'm calling about this. If it isn't fixed we will cancel our contract and switch to a competitor. Our SLA says four hours.",
        ),
    ]);
    for s in [&a.repeat_contact, &a.cancellation_language, &a.sla_risk] {
        assert!(s.detected);
        assert!(!s.evidence.is_empty() && !s.evidence[0].quote.is_empty());
    }
    let calm = run(&[(Agent, "Hi."), (Caller, "We're not thinking of cancelling, we just need a copy of the invoice.")]);
    assert!(!calm.cancellation_language.detected);
    assert!(!calm.repeat_contact.detected);
}

// Generalisation rules: each with sentences of our own, not from any eval set.

#[test]
fn expected_vs_actual_on_an_everyday_object_is_a_bug() {
    // Reproduction plus an expectation makes a defect report even when the object is an invoice or a receipt.
    let c = cat(&[
        (Agent, "What's up?"),
        (
            Caller,
            "Whenever I add a discount line to a receipt and press send, the total on the emailed receipt ignores the discount. Same thing every time. I'd expect the total to include it.",
        ),
        (Agent, "Thanks, I'll pass that to the team."),
    ]);
    assert_eq!(c, Category::Bug);
}

#[test]
fn works_as_designed_and_accepted_is_product_confusion() {
    let c = cat(&[
        (Caller, "There's a charge on my card from you that I don't recognise, it looks like a second payment."),
        (Agent, "That's a temporary hold we place when a card is added. It isn't a charge and it disappears after a few days."),
        (Caller, "Oh, okay, that makes sense. So it's not a second payment then."),
    ]);
    assert_eq!(c, Category::ProductConfusion);
    let c = cat(&[
        (Caller, "Archived tickets still come up when I search, I thought archiving removed them."),
        (Agent, "They sit in the recycle bin for a month so they can be restored, that's how search works."),
        (Caller, "Right, so it's not broken, it's doing that on purpose."),
    ]);
    assert_eq!(c, Category::ProductConfusion);
}

#[test]
fn press_and_wrong_line_calls_are_other() {
    let c = cat(&[
        (
            Caller,
            "Hello, I may have the wrong line. I'm a reporter writing a piece on call centres and wondered if someone could interview one of your engineers.",
        ),
        (Agent, "That's not us, but I'll pass it to our marketing team."),
    ]);
    assert_eq!(c, Category::Other);
    let c = cat(&[
        (Caller, "Nothing's wrong, I just wanted to say thank you. Your colleague went above and beyond for us last month."),
        (Agent, "That's lovely to hear, I'll pass it on."),
        (Caller, "No problems, no requests, that's all."),
    ]);
    assert_eq!(c, Category::Other);
}

#[test]
fn role_fix_is_account_configuration() {
    let c = cat(&[
        (Caller, "Two of our managers can't open the reports page. I looked and it says viewer for both, they should be admins."),
        (Agent, "Viewer doesn't include reports, so switching them to admin will sort it."),
    ]);
    assert_eq!(c, Category::AccountConfiguration);
}

#[test]
fn address_changes_and_data_requests_are_operational() {
    let c = cat(&[
        (Caller, "We ordered three headsets last week and we're moving offices. Can you change the shipping address on it?"),
        (Agent, "It hasn't shipped, so I can update it to the new address now."),
    ]);
    assert_eq!(c, Category::OperationalRequest);
    let c = cat(&[
        (Caller, "A former client has sent us a subject access request and we need every recording that holds their personal data."),
        (Agent, "I'll route that to our privacy team."),
    ]);
    assert_eq!(c, Category::OperationalRequest);
}

#[test]
fn cannot_talk_now_is_a_callback_request() {
    let c = cat(&[
        (Caller, "Hi, I want to go over our renewal but I'm heading into a meeting, so I can't do this now."),
        (Agent, "No problem, when suits you?"),
        (Caller, "Make it 4 this afternoon."),
    ]);
    assert_eq!(c, Category::CallbackRequest);
}

#[test]
fn sentiment_generalises() {
    let s = |pairs: &[(Role, &str)]| run(pairs).sentiment;
    // Past trouble and reassurance are not today's mood.
    assert_ne!(
        s(&[(Caller, "Don't panic, nothing's broken. We had a terrible week back in March but it's been smooth since. Your support has been much better.")]),
        Sentiment::Negative
    );
    // A conditional threat to leave plus "ridiculous" is anger.
    assert_eq!(s(&[(Caller, "This is ridiculous. If it isn't sorted by Friday we're switching to a competitor.")]), Sentiment::Angry);
    // Strong loss language is negative.
    assert_eq!(s(&[(Caller, "The ordering page is completely dead and we're bleeding money every hour.")]), Sentiment::Negative);
}
