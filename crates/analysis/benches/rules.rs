//! Throughput of the rules engine on realistic five-minute calls.
//!
//! `cargo bench -p dialnexa-analysis --bench rules` builds a set of ~40-turn, ~800-word
//! transcripts (written and ASR-style, incidents, billing, callbacks, digressions), runs the
//! engine single-threaded for a few seconds and prints transcripts per second and the p50 /
//! p99 latency per transcript.

use std::time::{Duration, Instant};

use dialnexa_analysis::rules;
use dialnexa_core::analysis::{AnalysisConfig, AnalysisInput};
use dialnexa_core::evidence::{Role, TranscriptTurn};

const OPENINGS: &[&str] = &[
    "Hi, this is Dana Whitfield from Copper Canyon Solar. Our payments API has been throwing 503s since 3pm yesterday and nobody can check out.",
    "yeah hi this is brent kowalski at northshore freight your entire api is down i'm getting five hundreds on everything since six thirty this morning",
    "Morning. Harriet Okafor, finance systems at Pemberton & Vale. We were charged twice for February, invoice INV-20417, and I need the second charge refunded.",
    "hi there its siobhan murphy calling from clover craft brewing we have moved offices and i need the billing address changed on our account",
    "Hi, it's Oliver Bennett from Harrowgate Estates. I'm about to go into a meeting, could someone call me back tomorrow at 2pm UK time?",
];

const CALLER: &[&str] = &[
    "It's production, we're in us-east-1, and every call to POST /v2/payments returns a 503 with 'service unavailable'. We already checked our logs and the request ids are in the ticket.",
    "we're on the enterprise plan and about two thousand users are affected the error says err underscore rate underscore limit on slash v one slash orders",
    "No, it's not staging, we don't use staging for this. Maybe it's eu-west-1 for the other cluster, I'm not sure, but the broken one is definitely us east one.",
    "My email is john dot smith at example dot com and my cell is four one five five five five zero one two three, call me after 3 if you can.",
    "There's no workaround, we only have you, and retries get the same error. Our customers can't pay by card and we're losing orders every minute.",
    "Sorry, my dog is barking, hold on. Anyway, the weather here is ridiculous, thirty degrees in June, nobody has air conditioning. Where was I?",
    "When I click export and pick PDF, the file should contain the whole transcript but it cuts off after twenty pages. It happens every time.",
    "We rotated the webhook signing secret at 8:45 and since then every delivery fails with invalid signature. Our repo is acme/checkout-service, deploy 4812.",
    "The card on file expired, do you want me to read the new one? It's 4111 1111 1111 1111, and my password is hunter2 if you need to log in.",
    "Yes, that's right. Ticket ZD-10421, and we posted in #inc-payments on the shared Slack. The status page at https://status.example.com says all good, which is insulting.",
    "i think it started around ten fifteen but i'm not certain honestly it might have been earlier we noticed when the monitor called checkout-latency fired",
    "This is the third time I'm calling about this and if it isn't fixed today we are moving to another provider. Our SLA says four hours.",
];

const AGENT: &[&str] = &[
    "I'm really sorry about that. Which region is your integration pointed at?",
    "Thanks. Is that us-east-1, correct?",
    "Understood. I'm opening a priority incident now and I'll call you back within 15 minutes with what they find.",
    "I can see both payments against that invoice. I'll email you the refund confirmation by end of day tomorrow.",
    "Okay, can I get your account id and the best number to reach you?",
    "That's expected behaviour, actually: the export is capped at twenty pages on the starter plan. It's in the documentation.",
    "Got it. I'll escalate this to the webhooks team and post an update in your channel within two hours.",
    "Do you have any fallback in place, a secondary processor or a retry path that gets through?",
];

fn transcript(seed: usize) -> Vec<TranscriptTurn> {
    let mut turns = vec![];
    let mut words = 0;
    let mut i = seed as u64;
    turns.push(TranscriptTurn {
        index: 0,
        role: Role::Agent,
        text: "Thanks for calling support, this is Priya, how can I help?".into(),
        start_ms: 0,
        end_ms: 3000,
    });
    turns.push(TranscriptTurn { index: 1, role: Role::Caller, text: OPENINGS[seed % OPENINGS.len()].into(), start_ms: 3000, end_ms: 9000 });
    while turns.len() < 40 || words < 800 {
        i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let idx = turns.len() as u32;
        let pick = (i >> 33) as usize;
        let (role, text) = if idx.is_multiple_of(2) { (Role::Agent, AGENT[pick % AGENT.len()]) } else { (Role::Caller, CALLER[pick % CALLER.len()]) };
        let text = if seed % 3 == 1 && role == Role::Caller { text.to_lowercase().replace([',', '.', '?', '\''], "") } else { text.to_string() };
        words += text.split_whitespace().count();
        turns.push(TranscriptTurn { index: idx, role, text, start_ms: u64::from(idx) * 7000, end_ms: u64::from(idx) * 7000 + 6000 });
        if turns.len() > 60 {
            break;
        }
    }
    turns
}

fn main() {
    let schema = AnalysisConfig::default().resolve("analysis").expect("default schema");
    let inputs: Vec<AnalysisInput> = (0..32)
        .map(|s| AnalysisInput {
            call_time: "2026-03-10T14:20:00Z".parse().expect("time"),
            timezone: "America/New_York".into(),
            transcript: transcript(s),
            schema: schema.clone(),
        })
        .collect();
    let words: usize = inputs.iter().map(|i| i.transcript.iter().map(|t| t.text.split_whitespace().count()).sum::<usize>()).sum::<usize>() / inputs.len();
    let turns: usize = inputs.iter().map(|i| i.transcript.len()).sum::<usize>() / inputs.len();
    // Warm up (lazy regex compilation, caches).
    for i in &inputs {
        std::hint::black_box(rules::analyze(i));
    }
    let budget = Duration::from_secs(std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(4));
    let mut times = vec![];
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < budget {
        let input = &inputs[n % inputs.len()];
        let t = Instant::now();
        std::hint::black_box(rules::analyze(std::hint::black_box(input)));
        times.push(t.elapsed());
        n += 1;
    }
    let total = start.elapsed();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    println!("rules engine: {} transcripts (avg {turns} turns, {words} words) in {:.2}s, single thread", n, total.as_secs_f64());
    println!("  throughput  {:.0} transcripts/s", n as f64 / total.as_secs_f64());
    println!("  p50         {:.3} ms", pct(0.50).as_secs_f64() * 1e3);
    println!("  p99         {:.3} ms", pct(0.99).as_secs_f64() * 1e3);
}
