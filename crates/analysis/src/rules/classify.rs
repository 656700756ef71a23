//! Triage: category (with reasons), severity, sentiment and the handoff signals.

use std::sync::LazyLock;

use dialnexa_core::analysis::{Category, Evidence, Sentiment, Severity, Signal};
use regex::Regex;

use super::doc::Doc;
use super::lex::negated;

#[derive(Clone, Copy, PartialEq)]
enum Who {
    Caller,
    Agent,
}

struct Cue {
    cat: Category,
    who: Who,
    weight: f64,
    re: Regex,
    what: &'static str,
}

fn cue(cat: Category, who: Who, weight: f64, what: &'static str, pat: &str) -> Cue {
    Cue { cat, who, weight, re: Regex::new(pat).expect("cue"), what }
}

static CUES: LazyLock<Vec<Cue>> = LazyLock::new(|| {
    use Category::*;
    use Who::*;
    vec![
        // Incidents: something is down or degraded now, with impact.
        cue(
            Incident,
            Caller,
            2.0,
            "an outage",
            r"\b(outage|is down|are down|went down|completely down|entire (?:api|site|platform|system) is|down for everyone|fast busy|not one call|nobody can|no one can|refusing connections|offline|degraded|spiking|all systems|stuck in queued|nothing starts|dispatchers are blind)\b",
        ),
        cue(
            Incident,
            Caller,
            1.5,
            "customer impact",
            r"\b(customers? (?:can't|cannot|aren't|are not)|users (?:can't|cannot)|losing (?:money|revenue|bookings|orders|sales)|every (?:single )?(?:one|request|send|webhook|delivery|build|order|caller)|every (?:single )?call (?:fails|is failing|gets|returns|drops)|all (?:of )?our (?:calls|requests|builds|numbers|inbound|orders|staff|stores|agents|customers|drivers)|whole weekend|the whole)\b",
        ),
        cue(
            Incident,
            Caller,
            1.0,
            "errors in production",
            r"\b(5\d\d|5xx|500s|503s|502s|504s|timing out|timeouts?|timed out|production|prod|since \d|since (?:this morning|yesterday|last night|saturday|sunday|monday|tuesday|wednesday|thursday|friday)|paged|pagerduty|on-call|on call|incident|unacceptable|(?:we've|we have) had zero|zero (?:bookings|orders|calls|payments|sales)|since (?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|midnight|noon)\b|urgent|arriving [\w ]+ late|way late|rejected with|err_)\b",
        ),
        cue(
            Incident,
            Caller,
            1.5,
            "degraded performance",
            r"\b(really slow|very slow|so slow|super slow|just slow|loads eventually|sits there pending|takes forever|latency|gone wrong|silently vanish|vanish(?:ed|es)?|dropped to (?:basically )?zero|stopped working|stopped (?:arriving|coming)|first fired|fired at|alert (?:\w+ )?fired|keeps firing|firing on and off)\b",
        ),
        cue(
            Incident,
            Caller,
            1.0,
            "a regression after a release",
            r"\b(since (?:your|the) (?:update|release|deploy|change)|after (?:your|the) (?:update|release|deploy)|right after you released|you shipped|your changelog|release notes)\b",
        ),
        cue(
            Incident,
            Agent,
            1.0,
            "the agent opened an incident",
            r"\b(priority incident|opening an incident|paging|page (?:the|our) on-call|incident bridge|status page|escalat(?:e|ing) (?:this|it) as)\b",
        ),
        // Bugs: reproducible defects.
        cue(
            Bug,
            Caller,
            2.0,
            "a reproducible defect",
            r"\b(bug|reproduce it|reproduced it|i reproduced|reproducible|repro|same thing every time|(?:i'd|id|i would|we'd) expect|always (?:one|a) (?:day|hour)|one day (?:early|late|off)|off by one|every time i|every time we|each time|consistently|steps to|something wrong with|didn't look right|doesn't look right|looked (?:a bit )?off|looks off|don't add up|doesn't add up|we expect|i expect)\b",
        ),
        cue(
            Bug,
            Caller,
            1.0,
            "wrong behaviour",
            r"\b(should (?:just )?(?:say|be|show|wait|have|find|go|introduce|validate|include|redact)|supposed to|expected|instead of|cuts? off|cutting off|truncat\w+|missing every|no results|greyed out|grayed out|wrong|doesn't match|in the sea|the whole transcript|only keeps|keeps only|drops)\b",
        ),
        cue(
            Bug,
            Agent,
            1.5,
            "the agent reproduced it",
            r"\b(i could reproduce|i can reproduce|reproduced it|clear reproduction|reproduction|log it as a bug|as a bug|bug reference|file a bug|filed a bug|engineering ticket|send it to the [\w ]+ team as a bug)\b",
        ),
        // Setup questions.
        cue(
            SetupQuestion,
            Caller,
            2.0,
            "a how-to question",
            r"\b(how do i|how do we|how can i|how can we|how to|how would i|how should i|how does (?:the|that) \w+ work|walk (?:me|us) through|where do i (?:find|set)|is there a way to|what's the (?:right|best) way|wiring up|wire up|set up|setting up|get [\w -]{1,40} going|fresh setup|haven't even started|nothing's failing|nothing is failing|nothing's broken|just want a walk-through|quick question|getting started|integrat(?:e|ing) with|want to (?:set|turn on|connect|give|add)|would like to set)\b",
        ),
        cue(
            SetupQuestion,
            Caller,
            1.0,
            "configuration",
            r"\b(configure|configuring|install|installed|npm install|pip install|documentation|the docs|the guide|log our calls into|connect (?:it|our|to)|assuming i've set something up wrong|set something up wrong|doc link|walk-through|walkthrough)\b",
        ),
        cue(
            SetupQuestion,
            Agent,
            1.0,
            "the agent explained the setup",
            r"\b(you'll need to|you need to (?:add|set|use|create|switch|enable|go)|walk you through|common setup|to connect it|go to \w+(?:,? \w+)?,? (?:then|and|choose|click)|open the \w+(?:'s)? \w+ tab|paste (?:those|that|it) into|create (?:a|the) (?:restricted |new )?key|you can create|the package called|our official|go to settings|under settings|here's how|the steps are|first,? (?:go|create|open)|in the dashboard,? (?:go|open|under)|setup guide|verification guide)\b",
        ),
        // Product confusion: works as designed.
        cue(
            ProductConfusion,
            Caller,
            1.5,
            "the caller misunderstood",
            r"\b(that makes sense|makes sense now|so it's not (?:broken|a second|an actual|really)|so it's just|on purpose|so they're (?:still )?(?:deleted|there|fine)|so it's not an error|not an error|so it's not a bug|so that's expected|that explains it|i don't understand|i thought|why does it|why is it|is that normal|is that expected|is this expected|confused|have you deleted|did you delete|vanished|i think there's an error in your|your report says|is that right)\b",
        ),
        cue(
            ProductConfusion,
            Agent,
            2.5,
            "it works as designed",
            r"\b(isn't a (?:charge|payment|bug)|is not a (?:charge|payment)|(?:pre-?)?authori[sz]ation hold|a temporary hold|drops off on its own|recycle bin|trash|soft[- ]delete\w*|can be restored|that's what [\w ]{1,30} means|on purpose|that's how [\w ]{1,30} works|expected behaviou?r|that's expected|is expected|working as (?:designed|intended)|by design|that's how it works|that is how it works|the normal status|is normal|that's normal|nothing is broken|not a bug|didn't fail|did not fail|not deleted|weren't deleted|were not deleted|archived|excludes? test|doesn't count|does not count|that's the correct|as expected|that's why|which is why|it's counting|is counting|that explains|the difference is|it's actually|(?:is|are) billed per|rounding|rounds up|per started minute|that's the intended)\b",
        ),
        // Account configuration.
        cue(
            AccountConfiguration,
            Caller,
            1.0,
            "an account setting",
            r"\b(seats?|roles?|permissions?|admin|sso|saml|okta|azure ad|rate limit|per second|api key|scopes?|add-on|addon|enforce|locked out|invite|viewer|contract says|we bought|we upgraded|should have)\b",
        ),
        cue(
            AccountConfiguration,
            Agent,
            2.0,
            "a setting on the account",
            r"\b(your account (?:is|was|still|has)|on your account|your workspace (?:is|was|has)|i've (?:updated|changed|enabled|raised|applied|switched|fixed|added|turned)|i can (?:enable|turn on|raise|update|change|switch|apply|add)|the setting|toggle|your role|viewer role|role (?:doesn't|does not)|enforce sso|enforced|wasn't applied|not applied|never applied|not enabled|wasn't enabled|isn't enabled|left at (?:the )?default|default (?:limit|rate)|limit on your account|allowlist|exempt|exception for|bypass|local admin|feature flag|wasn't switched on|was never (?:completed|enabled|switched on|applied)|never completed|i'm enabling|enabling it|it only has|only has the|it's missing|missing the|scope|re-send the verification|verif(?:y|ies) [\w ]+ separately|per workspace|each workspace|seats? (?:were|was) never|your plan does show)\b",
        ),
        cue(
            AccountConfiguration,
            Caller,
            2.0,
            "a role or permission",
            r"\b(it says (?:viewer|member|guest|read-only|basic)|should be (?:\w+ )?admins?|(?:wrong|right) role|what role|which role|role (?:is|was) wrong)\b",
        ),
        cue(
            AccountConfiguration,
            Agent,
            1.5,
            "a role change",
            r"\b((?:doesn't|does not) include|switching (?:them|him|her|you) to|switch (?:them|him|her|you) to|role (?:are|is) they|role are they|what role|which role)\b",
        ),
        // Known limitations.
        cue(
            KnownLimitation,
            Agent,
            3.0,
            "a documented limitation",
            r"\b(known limitation|current limitation|a limitation|limitation|only works (?:to|with|for|in|on)|you can only|the maximum|maximum retention|supports? (?:\w+ )?languages|isn't one of them|is only available|only available (?:for|on|in)|not one of the|not supported|isn't supported|is not supported|doesn't support|does not support|don't support|do not support|we only support|only supports?|only support|not available|isn't available|roadmap|feature request|hard limit|maximum (?:is|of)|max is|capped at|cap of|not possible|currently limited|limit of|documented limit|can't go beyond|cannot go beyond|won't go beyond|only goes up to|isn't something we|not something we|we don't offer|doesn't offer|is limited to|upper limit|at most)\b",
        ),
        cue(
            KnownLimitation,
            Caller,
            1.0,
            "asks what is possible",
            r"\b(does it support|do you support|is it possible|won't go beyond|only goes up to|it's just not supported|just not supported|not something i've set up wrong|limit|isn't in the (?:language )?dropdown|isn't in the list|not in the list|can't choose|no option|greyed out)\b",
        ),
        // Operational requests.
        cue(
            OperationalRequest,
            Caller,
            2.0,
            "a billing or admin task",
            r"\b(shipping address|delivery address|change the address|(?:subject|data) access request|dsar|right to be forgotten|erasure request|personal data|export of every|order number|we ordered|hasn't shipped|refund(?:ed)?|charged twice|double charged|invoice|billing address|card on file|update the card|service credit|credit note|renewal|at renewal|drop from|reduce (?:our )?seats|export of all|data request|gdpr|admin access|access to our|headsets|order \d+|shipment|number porting|porting|statement|i owe|overage|billed for|reissue|claim|cancel our contract|cancel (?:my|our) (?:account|subscription|plan|contract)|reset (?:my )?password|prove it is me|locked out of|insurance)\b",
        ),
        cue(
            OperationalRequest,
            Caller,
            0.5,
            "account administration",
            r"\b(billing|invoices?|payment|contract|vat|po number|address|receipt|charge[ds]?|seats)\b",
        ),
        cue(
            OperationalRequest,
            Agent,
            1.0,
            "the agent processed a request",
            r"\b(privacy team|data protection|hasn't shipped|(?:the )?new address|refund|credit note|invoice|reissue|billing team|finance team|data request form|approval link|payment link|tracking number|cancellation form|reset link|confirmation)\b",
        ),
        // Callbacks.
        cue(
            CallbackRequest,
            Caller,
            3.0,
            "asks to be called back",
            r"\b(can't (?:do|talk about) (?:this|that|it) (?:now|right now)|can't talk (?:now|right now)|(?:walking|going|heading) into (?:a|an|my|the) (?:\w+ )?meeting|make it (?:\d{1,2}(?::\d\d)?|tomorrow|monday|tuesday|wednesday|thursday|friday)|call (?:me|us) back|ring (?:me|us) back|call back|callback|give me a call|someone (?:to )?(?:call|ring) me|can someone (?:from [\w ]+ )?(?:call|ring)|have (?:someone|somebody) call|can we do this another time|another time|terrible time|bad time|about to go into a meeting|i am driving|i'm driving|walk [\w ]+ through it on a call)\b",
        ),
        cue(
            CallbackRequest,
            Agent,
            0.5,
            "the agent offered a callback",
            r"\b(set up a call|will call you at|would you like (?:us to call you back|a callback|a call back)|call you back|returning your (?:call|message)|book (?:a|an) [\w ]*call|call you (?:on|at|tomorrow|monday|tuesday|wednesday|thursday|friday))\b",
        ),
        // Other: wrong numbers, sales, thanks.
        cue(
            Other,
            Caller,
            1.5,
            "a thank-you call",
            r"\b(just calling to say thanks|calling to say thanks|just wanted to say thank|just a thank you|no problems, no requests|no requests|tell (?:her|his|their) manager|went (?:well )?beyond|above and beyond)\b",
        ),
        cue(
            Other,
            Caller,
            4.0,
            "not a support matter",
            r"\b(wrong number|wrong line|wrong department|podcast|journalist|reporter|press (?:inquiry|enquiry)|interview (?:someone|you|one of)|partnership (?:opportunity|proposal)|i'm not a customer|not a customer|we sell|is this [\w']+ pizzeria|pizza|pepperoni|not customers yet|evaluating (?:voice ai )?vendors|volume pricing|pricing for the|sales team|request a demo|book a demo)\b",
        ),
        cue(
            Other,
            Agent,
            2.0,
            "not a support matter",
            r"\b(wrong number|that's not us|marketing team|pass it on|lovely to hear|you've reached|this is not|pass your details to our sales team|sales team|glad (?:it's|to hear))\b",
        ),
    ]
});

static BUG_EXPECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b((?:i'd|id|i would|we'd|we would) expect|should (?:just )?(?:say|be|show|have|display)|supposed to|instead of)\b").expect("bug expect")
});
static BUG_REPRO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(every time|each time|reproduc\w+|same thing|always|consistently|every single time|(?:five|ten|several|a few|three|four) times)\b")
        .expect("bug repro")
});
static OP_ASK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(refund|credit (?:us|me|back)|cancel|charged (?:us |me )?twice|change the|update the|reissue)\b").expect("op ask"));

pub struct Triage {
    pub category: Category,
    pub reasons: Vec<String>,
}

fn quote(doc: &Doc, s: usize, e: usize) -> String {
    let Some(l) = doc.loc_lower(s, e) else { return String::new() };
    doc.text(l).to_string()
}

pub fn categorize(doc: &Doc, has_errors: bool, callback_main: bool) -> Triage {
    let mut scores: Vec<(Category, f64)> = Category::ALL.iter().map(|c| (*c, 0.0)).collect();
    let mut evidence: Vec<(Category, String, &'static str)> = vec![];
    let mut caller_ordinal = vec![0usize; doc.turns.len()];
    let mut k = 0;
    for (i, o) in caller_ordinal.iter_mut().enumerate() {
        if doc.is_caller(i) {
            k += 1;
            *o = k;
        }
    }
    for c in CUES.iter() {
        let mut hits = 0;
        for m in c.re.find_iter(&doc.lower) {
            let t = doc.turn_of_lower(m.start());
            let caller = doc.is_caller(t);
            if (c.who == Who::Caller) != caller {
                continue;
            }
            if caller
                && negated(doc, m.start(), m.end())
                && !matches!(c.cat, Category::KnownLimitation | Category::ProductConfusion | Category::SetupQuestion | Category::Other)
            {
                continue;
            }
            if !caller
                && c.cat != Category::Other
                && negated(doc, m.start(), m.end())
                && !matches!(c.cat, Category::KnownLimitation | Category::ProductConfusion)
            {
                continue;
            }
            hits += 1;
            // The opening says what the call is about; later digressions count less.
            let early = if caller {
                match caller_ordinal[t] {
                    0 | 1 => 1.6,
                    2 => 1.3,
                    3 | 4 => 1.0,
                    _ => 0.7,
                }
            } else {
                1.0
            };
            let hedged = if caller && doc.sentence_at(m.start()).is_some_and(|s| s.hedge == 2) { 0.5 } else { 1.0 };
            let w = c.weight * early * hedged / f64::from(hits).sqrt();
            if let Some(s) = scores.iter_mut().find(|(k, _)| *k == c.cat) {
                s.1 += w;
            }
            if hits == 1 {
                evidence.push((c.cat, quote(doc, m.start(), m.end()), c.what));
            }
            if hits >= 6 {
                break;
            }
        }
    }
    let get = |scores: &Vec<(Category, f64)>, c: Category| scores.iter().find(|(k, _)| *k == c).map(|x| x.1).unwrap_or(0.0);
    if has_errors {
        for (k, v) in scores.iter_mut() {
            if *k == Category::Incident {
                *v += 1.0;
            }
            if *k == Category::Bug {
                *v += 0.5;
            }
        }
    }
    // Expected-vs-actual plus reproduction is a bug report, whatever object (invoice, booking) it is about.
    if BUG_EXPECT.find_iter(&doc.lower).any(|m| doc.is_caller(doc.turn_of_lower(m.start())))
        && BUG_REPRO.find_iter(&doc.lower).any(|m| doc.is_caller(doc.turn_of_lower(m.start())))
        && !OP_ASK.find_iter(&doc.lower).any(|m| doc.is_caller(doc.turn_of_lower(m.start())))
    {
        for (k, v) in scores.iter_mut() {
            if *k == Category::Bug {
                *v += 2.0;
            }
        }
    }
    if callback_main {
        for (k, v) in scores.iter_mut() {
            if *k == Category::CallbackRequest {
                *v += 1.5;
            }
        }
    }
    // A how-to question mentioning "not working" stays a setup question; working-as-designed
    // answers beat the caller's sense of breakage.
    let mut best = scores.iter().copied().max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal)).unwrap_or((Category::Other, 0.0));
    if best.1 < 1.0 {
        best = (Category::Other, best.1);
    }
    // Incident vs bug: impact and urgency make an incident; steps without an outage make a bug.
    if best.0 == Category::Incident && get(&scores, Category::Bug) >= get(&scores, Category::Incident) * 0.8 && get(&scores, Category::Bug) >= 3.0 {
        best.0 = Category::Bug;
    }
    let category = best.0;
    let mut reasons: Vec<String> = evidence
        .iter()
        .filter(|(c, q, _)| *c == category && !q.is_empty())
        .take(3)
        .map(|(_, q, what)| format!("{} ({}): \"{}\"", what, if category == Category::Other { "no support topic" } else { category.as_str() }, q.trim()))
        .collect();
    if reasons.is_empty() {
        reasons.push(if category == Category::Other {
            "no support, billing or callback topic was recognised".to_string()
        } else {
            format!("highest score for {}", category.as_str())
        });
    }
    Triage { category, reasons }
}

static SEV1: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(sev ?1|p1|completely down|completely dead|not a single (?:\w+ )?(?:customer|user|caller|order|payment) can|entire (?:api|site|platform|system|service)|(?:api|site|platform|system|service) is (?:completely )?down|total outage|everything is down|not one call|nobody can|no one can|revenue (?:has )?stopped|down for everyone|all (?:of )?our customers|can't process any|can't take any|zero (?:calls|orders|payments) (?:are )?(?:coming|going) through)\b").expect("sev1")
});
static SEV2: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(sev ?2|p2|many|most of|half|no workaround|hurting|every single|all of (?:our|them)|all \d+|can't log in|cannot log in|customers can't|customers aren't|blocked|stalled|major|significant|key flow|way late|timing out|\d+ engineers|losing)\b").expect("sev2")
});
static SEV3: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(sev ?3|p3|some of|a few|intermittent|sometimes|workaround|partial|per ?cent|percent|slow|only some|small|a handful|occasionally|we split|export each)\b").expect("sev3")
});
static SEV4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(sev ?4|p4|cosmetic|minor|small thing|typo|not a big deal|no big deal|alignment|just a question|something weird|a bit off|once or twice|once maybe twice|glitch)\b").expect("sev4")
});

pub fn severity(doc: &Doc, category: Category) -> Option<(Severity, Option<(usize, usize)>)> {
    if !matches!(category, Category::Incident | Category::Bug) {
        return None;
    }
    let hit = |re: &Regex| {
        re.find_iter(&doc.lower).find(|m| doc.is_caller(doc.turn_of_lower(m.start())) && !negated(doc, m.start(), m.end())).map(|m| (m.start(), m.end()))
    };
    let s4 = hit(&SEV4);
    let s1 = hit(&SEV1);
    let s2 = hit(&SEV2);
    let s3 = hit(&SEV3);
    let r = if s4.is_some() && s1.is_none() {
        (Severity::Sev4, s4)
    } else if category == Category::Incident {
        if s1.is_some() {
            (Severity::Sev1, s1)
        } else if s3.is_some() && s2.is_none() {
            (Severity::Sev3, s3)
        } else {
            (Severity::Sev2, s2)
        }
    } else if s1.is_some() && s2.is_some() {
        (Severity::Sev2, s2)
    } else if s3.is_some() || s2.is_none() {
        (Severity::Sev3, s3)
    } else {
        (Severity::Sev3, s2)
    };
    Some(r)
}

static ANGRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(unacceptable|ridiculous|insulting|furious|lawyer|third time|fourth time|fifth time|i am done|i'm done|fed up|sick of|useless|incompetent|worst|pathetic|joke|absolutely unacceptable|moving our [\w ]+ to another|another provider|cancel|damn|hell|what the|you people|doesn't pay|not sixteen|three weeks!)\b|!!").expect("angry")
});
static NEG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(bleeding (?:money|cash|revenue|customers)|completely dead|dead in the water|frustrat\w+|annoy\w+|disappoint\w+|concern\w+|worried|worry|hurting|stressful|not happy|unhappy|terrible|struggling|hammered|hurry|it's been a day|don't understand|nobody has replied|nobody has told|urgent|unfortunately|awful|upset|losing|angry|this matters|serious problem|not what i wanted|come on|costs? us|we need this|before the|on hold|embarrass\w*|tedious|bit worse|hurt(?:s|ing)?|blame[sd]?|stressed|nightmare|mess|panic|panicking|can't afford|a big problem|big deal for us|won't be ready|miss the)\b").expect("neg")
});
static POS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(thanks so much|thank you so much|thank you very much|awesome|brilliant|love it|appreciate it|really appreciate|fantastic|wonderful|amazing|excellent|real help|very helpful|so helpful|super helpful|clear answer|great help|to say thanks|hold times have dropped|explaining it so clearly|so clearly|(?:went|goes|gone) (?:well )?beyond|above and beyond|just a thank you|you're the best|you guys are the best|much better|you folks are great|you've been great|made my day|that's great news|great news|delighted|thrilled)\b").expect("pos")
});

static THREAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:moving|switching|going|move|switch|take (?:our|my) business) (?:over )?to (?:a competitor|one of your competitors|another (?:provider|vendor))\b").expect("threat")
});
static CALM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(back in (?:january|february|march|april|may|june|july|august|september|october|november|december|\d{4}|the day)|last year|years? ago|used to be|before you panic|don't panic|nothing's (?:broken|down|wrong)|nothing is (?:broken|down|wrong)|no problems)\b").expect("calm")
});

pub fn sentiment(doc: &Doc) -> Sentiment {
    let count = |re: &Regex| {
        re.find_iter(&doc.lower)
            .filter(|m| {
                let t = doc.turn_of_lower(m.start());
                doc.is_caller(t) && !negated(doc, m.start(), m.end())
            })
            .count() as f64
    };
    // A threat to leave counts even when conditional ("if this isn't fixed we're moving to a competitor").
    let threat = THREAT.find_iter(&doc.lower).filter(|m| doc.is_caller(doc.turn_of_lower(m.start()))).count() as f64;
    let angry = count(&ANGRY) + threat;
    // Trouble in a reassurance ("nothing's broken") or in the past ("that outage back in January") is not today's mood.
    let neg = NEG
        .find_iter(&doc.lower)
        .filter(|m| {
            let t = doc.turn_of_lower(m.start());
            doc.is_caller(t)
                && !negated(doc, m.start(), m.end())
                && !doc.sentence_at(m.start()).is_some_and(|s| CALM.is_match(&doc.lower[s.start..s.end.min(doc.lower.len())]))
        })
        .count() as f64;
    let pos = count(&POS);
    // Shouting: several all-caps words or exclamation marks in caller turns.
    let mut shout = 0.0;
    for (i, t) in doc.src.iter().enumerate() {
        if doc.is_caller(i) {
            shout += t
                .text
                .split_whitespace()
                .filter(|w| w.len() >= 4 && w.chars().all(|c| c.is_uppercase() || !c.is_alphabetic()) && w.chars().any(|c| c.is_alphabetic()))
                .count() as f64
                * 0.5;
            shout += t.text.matches('!').count() as f64 * 0.3;
        }
    }
    let a = angry + shout * 0.5;
    if a >= 2.0 || (angry >= 1.0 && neg >= 3.0) {
        Sentiment::Angry
    } else if angry >= 1.0 || neg >= 1.0 && neg > pos {
        Sentiment::Negative
    } else if pos >= 1.0 && pos > neg {
        Sentiment::Positive
    } else {
        Sentiment::Neutral
    }
}

fn signal(doc: &Doc, re: &Regex, negatable: bool, redact: &dyn Fn(&str) -> String) -> Signal {
    let mut ev = vec![];
    for m in re.find_iter(&doc.lower) {
        let t = doc.turn_of_lower(m.start());
        if !doc.is_caller(t) || negatable && negated(doc, m.start(), m.end()) {
            continue;
        }
        let Some(s) = doc.sentence_at(m.start()) else { continue };
        let (text, loc) = doc.sentence_orig(s);
        if ev.iter().any(|e: &Evidence| e.span.turn == loc.turn as u32 && e.span.start == loc.start as u32) {
            continue;
        }
        ev.push(Evidence { span: super::span(doc, loc), quote: redact(text) });
        if ev.len() >= 3 {
            break;
        }
    }
    Signal { detected: !ev.is_empty(), evidence: ev }
}

static REPEAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(second time|third time|fourth time|fifth time|(?:called|calling|rang|phoned) (?:before|yesterday|last week|twice|three times|again|about this (?:already|before))|already (?:called|reported|opened|emailed|raised|contacted|spoke|sent)|(?:opened|raised|emailed|reported|logged) (?:a ticket|one|it|this) (?:yesterday|last week|earlier|already)|opened one yesterday|follow(?:ing)? up on|still (?:waiting|haven't heard|no response|not fixed)|nobody has (?:replied|told|got back|called|responded)|no one has (?:replied|got back|called|responded)|last time i called|previous call|keep calling|i've sent every document|twice\.|emailed it in yesterday|(?:my|a) colleague opened|again\b)").expect("repeat")
});
static CANCEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(cancel (?:our|my|the) (?:account|subscription|contract|service|plan)|cancell?ing (?:our|my|the)|cancellation|terminate (?:our|the|my)|switch(?:ing)? to (?:a competitor|another (?:provider|vendor))|moving (?:our|my) [\w ]{0,20}to another (?:provider|vendor)|to another provider|take our business elsewhere|looking at (?:other (?:providers|vendors)|alternatives|competitors)|(?:not|won't|will not) (?:be )?renew\w*|leave you|close (?:our|my) account|drop from \d+ seats)\b").expect("cancel")
});
static SLA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(sla|slas|service level|uptime (?:guarantee|commitment)|contractual|contract says|our contract|breach|penalt(?:y|ies)|service credit|99\.9\d*|response time commitment|lawyer|legal action|within the hour|store window|miss the)\b").expect("sla")
});

pub fn signals(doc: &Doc, redact: &dyn Fn(&str) -> String) -> (Signal, Signal, Signal) {
    (signal(doc, &REPEAT, true, redact), signal(doc, &CANCEL, true, redact), signal(doc, &SLA, true, redact))
}
