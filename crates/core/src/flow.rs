//! The flow graph of a `flow` agent: nodes that speak, wait, collect, branch and end.
//!
//! This module holds the config format and its validation. The runtime that walks the graph
//! lives in `dialnexa-voice`; everything here is pure so that the API can refuse a broken
//! graph (with the JSON path of the fault) before any call uses it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::agent::ConfigError;
use crate::phone::PhoneNumber;

/// Variables every call provides, filled in by whoever starts the call.
pub const BUILTIN_VARIABLES: [&str; 5] = ["call_id", "from_number", "to_number", "agent_name", "agent_version"];

/// Default number of times a `collect` node asks (the first prompt included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;
/// Upper bound of `max_attempts`: more re-asking than this only annoys the caller.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;
pub const MAX_NODES: usize = 500;
pub const MAX_TEXT_CHARS: usize = 2_000;

/// The graph: where to start, named intents, and the nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowGraph {
    /// Id of the first node.
    pub start: String,
    /// Intent name → phrases; any phrase heard (and not negated) means the intent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub intents: BTreeMap<String, Vec<String>>,
    pub nodes: Vec<Node>,
}

/// One step of the flow. The `type` field selects the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    Say(SayNode),
    Ask(AskNode),
    Collect(CollectNode),
    Branch(BranchNode),
    Transfer(TransferNode),
    End(EndNode),
}

/// The agent speaks and moves on without waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SayNode {
    pub id: String,
    pub text: String,
    pub next: String,
}

/// The agent speaks, then waits for one caller turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskNode {
    pub id: String,
    pub text: String,
    pub next: String,
}

/// The agent asks for a typed value and re-asks until it hears one or runs out of attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectNode {
    pub id: String,
    pub field: String,
    pub field_type: FieldType,
    /// The values of an `enum` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Other phrases that mean an `enum` option (option → phrases), e.g. "everything is down"
    /// for `sev1`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub synonyms: BTreeMap<String, Vec<String>>,
    pub prompt: String,
    /// Said instead of `prompt` when asking again; without it the prompt is repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_prompt: Option<String>,
    /// How many times to ask in all, the first prompt included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    pub next: String,
    /// Where to go when no value was heard; defaults to `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<String>,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

impl CollectNode {
    pub fn fail_target(&self) -> &str {
        self.on_fail.as_deref().unwrap_or(&self.next)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Email,
    Phone,
    Enum,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Enum => "enum",
        }
    }
}

/// No speech: picks the first case that matches, or `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchNode {
    pub id: String,
    pub on: BranchOn,
    /// The collected field inspected when `on` is `field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub cases: Vec<BranchCase>,
    pub default: String,
}

/// What a branch inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchOn {
    /// The caller's last turn, against each case's `keywords`.
    Keywords,
    /// The caller's last turn, against the phrases of each case's `intent`.
    Intent,
    /// The value of a collected field.
    Field,
    /// The keys the caller pressed on the phone's keypad (DTMF) at the last `ask` node,
    /// against each case's `digits`.
    Digits,
}

impl BranchOn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keywords => "keywords",
            Self::Intent => "intent",
            Self::Field => "field",
            Self::Digits => "digits",
        }
    }
}

/// One case of a branch. Exactly one test is set, and it must suit the branch's `on`:
/// `keywords` or `intent`, or for fields one of `equals`, `in`, `present`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchCase {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Keypad keys, as pressed: `"1"`, `"42"`, `"*"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits: Option<String>,
    pub next: String,
}

/// The single test of a case, once validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CaseTest<'a> {
    Keywords(&'a [String]),
    Intent(&'a str),
    Equals(&'a serde_json::Value),
    In(&'a [serde_json::Value]),
    Present(bool),
    Digits(&'a str),
}

impl BranchCase {
    /// The case's test, or `None` when none or several are set (validation refuses both).
    pub fn test(&self) -> Option<CaseTest<'_>> {
        let mut tests = Vec::with_capacity(1);
        if let Some(k) = &self.keywords {
            tests.push(CaseTest::Keywords(k));
        }
        if let Some(i) = &self.intent {
            tests.push(CaseTest::Intent(i));
        }
        if let Some(v) = &self.equals {
            tests.push(CaseTest::Equals(v));
        }
        if let Some(v) = &self.one_of {
            tests.push(CaseTest::In(v));
        }
        if let Some(p) = self.present {
            tests.push(CaseTest::Present(p));
        }
        if let Some(d) = &self.digits {
            tests.push(CaseTest::Digits(d));
        }
        if tests.len() == 1 { tests.pop() } else { None }
    }
}

/// The agent speaks, then hands the call to another number; the call ends for the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferNode {
    pub id: String,
    pub text: String,
    /// E.164 destination.
    pub to: String,
    /// A warm transfer (phone calls): the caller holds while the target is dialed and briefed
    /// with the call's summary; the agent leaves once the target has joined. False: cold
    /// (the call is handed over at once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
    /// With `warm`: where the flow goes on when the target does not take the call (absent:
    /// the agent says so and ends the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<String>,
}

/// The agent speaks, then hangs up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndNode {
    pub id: String,
    pub text: String,
}

impl Node {
    pub fn id(&self) -> &str {
        match self {
            Self::Say(n) => &n.id,
            Self::Ask(n) => &n.id,
            Self::Collect(n) => &n.id,
            Self::Branch(n) => &n.id,
            Self::Transfer(n) => &n.id,
            Self::End(n) => &n.id,
        }
    }

    /// The `type` string of the node.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Say(_) => "say",
            Self::Ask(_) => "ask",
            Self::Collect(_) => "collect",
            Self::Branch(_) => "branch",
            Self::Transfer(_) => "transfer",
            Self::End(_) => "end",
        }
    }

    /// Whether the flow stops at this node for a caller turn (or ends there).
    pub fn waits(&self) -> bool {
        matches!(self, Self::Ask(_) | Self::Collect(_))
    }

    /// Every node id this node can lead to, with the JSON path (relative to the node) of
    /// the reference.
    pub fn targets(&self) -> Vec<(String, &str)> {
        match self {
            Self::Say(n) => vec![("next".to_owned(), n.next.as_str())],
            Self::Ask(n) => vec![("next".to_owned(), n.next.as_str())],
            Self::Collect(n) => {
                let mut t = vec![("next".to_owned(), n.next.as_str())];
                if let Some(f) = &n.on_fail {
                    t.push(("on_fail".to_owned(), f.as_str()));
                }
                t
            }
            Self::Branch(n) => {
                let mut t: Vec<(String, &str)> = n.cases.iter().enumerate().map(|(i, c)| (format!("cases[{i}].next"), c.next.as_str())).collect();
                t.push(("default".to_owned(), n.default.as_str()));
                t
            }
            Self::Transfer(n) => n.on_fail.iter().map(|f| ("on_fail".to_owned(), f.as_str())).collect(),
            Self::End(_) => Vec::new(),
        }
    }

    /// The texts the node speaks, with the field name of each (for error paths).
    fn texts(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Say(n) => vec![("text", n.text.as_str())],
            Self::Ask(n) => vec![("text", n.text.as_str())],
            Self::Collect(n) => {
                let mut t = vec![("prompt", n.prompt.as_str())];
                if let Some(r) = &n.retry_prompt {
                    t.push(("retry_prompt", r.as_str()));
                }
                t
            }
            Self::Branch(_) => Vec::new(),
            Self::Transfer(n) => vec![("text", n.text.as_str())],
            Self::End(n) => vec![("text", n.text.as_str())],
        }
    }
}

impl FlowGraph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id() == id)
    }

    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == id)
    }

    /// Names of the fields `collect` nodes gather, in node order, each once.
    pub fn collected_fields(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for node in &self.nodes {
            if let Node::Collect(c) = node
                && seen.insert(c.field.as_str())
            {
                out.push(c.field.clone());
            }
        }
        out
    }

    /// The first `collect` node that gathers `field` (its type and options describe it).
    pub fn collector_of(&self, field: &str) -> Option<&CollectNode> {
        self.nodes.iter().find_map(|n| match n {
            Node::Collect(c) if c.field == field => Some(c),
            _ => None,
        })
    }

    /// Check everything serde cannot: references, names, templates, reachability and
    /// loops that never wait. `path` is the JSON path of the graph (`flow`).
    pub fn validate(&self, variables: &BTreeMap<String, String>, path: &str) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::new(format!("{path}.nodes"), "a flow needs at least one node"));
        }
        if self.nodes.len() > MAX_NODES {
            return Err(ConfigError::new(format!("{path}.nodes"), format!("at most {MAX_NODES} nodes")));
        }
        self.check_intents(path)?;

        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let id = node.id();
            if !is_identifier(id) {
                return Err(ConfigError::new(
                    format!("{path}.nodes[{i}].id"),
                    "node ids are lower-case letters, digits and '_', starting with a letter (at most 64)",
                ));
            }
            if let Some(first) = index.insert(id, i) {
                return Err(ConfigError::new(format!("{path}.nodes[{i}].id"), format!("duplicate node id '{id}' (also nodes[{first}])")));
            }
        }
        if !index.contains_key(self.start.as_str()) {
            return Err(ConfigError::new(format!("{path}.start"), format!("no node has id '{}'", shown(&self.start))));
        }

        let fields: BTreeSet<&str> = self
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Collect(c) => Some(c.field.as_str()),
                _ => None,
            })
            .collect();
        let known_var = |name: &str| variables.contains_key(name) || fields.contains(name) || BUILTIN_VARIABLES.contains(&name);

        for (i, node) in self.nodes.iter().enumerate() {
            let at = format!("{path}.nodes[{i}]");
            for (key, text) in node.texts() {
                check_text(text, &format!("{at}.{key}"), &known_var)?;
            }
            for (key, target) in node.targets() {
                if !index.contains_key(target) {
                    return Err(ConfigError::new(format!("{at}.{key}"), format!("no node has id '{}'", shown(target))));
                }
            }
            match node {
                Node::Collect(c) => check_collect(c, &at)?,
                Node::Branch(b) => self.check_branch(b, &at)?,
                Node::Transfer(t) => {
                    if let Err(e) = PhoneNumber::parse(&t.to) {
                        return Err(ConfigError::new(format!("{at}.to"), e.to_string()));
                    }
                    if t.on_fail.is_some() && !t.warm {
                        return Err(ConfigError::new(format!("{at}.on_fail"), "only a warm transfer can fail back to the flow (set warm: true)"));
                    }
                }
                Node::Say(_) | Node::Ask(_) | Node::End(_) => {}
            }
        }

        self.check_silent_cycles(&index, path)?;
        self.check_reachable(&index, path)
    }

    fn check_intents(&self, path: &str) -> Result<(), ConfigError> {
        for (name, phrases) in &self.intents {
            let at = format!("{path}.intents.{}", shown(name));
            if !is_identifier(name) {
                return Err(ConfigError::new(at, "intent names are lower-case letters, digits and '_', starting with a letter"));
            }
            if phrases.is_empty() {
                return Err(ConfigError::new(at, "an intent needs at least one phrase"));
            }
            for (j, p) in phrases.iter().enumerate() {
                check_phrase(p, &format!("{at}[{j}]"))?;
            }
        }
        Ok(())
    }

    fn check_branch(&self, b: &BranchNode, at: &str) -> Result<(), ConfigError> {
        let collector = match (b.on, &b.field) {
            (BranchOn::Field, None) => {
                return Err(ConfigError::new(format!("{at}.field"), "a branch on a field names the field"));
            }
            (BranchOn::Field, Some(f)) => match self.collector_of(f) {
                Some(c) => Some(c),
                None => {
                    return Err(ConfigError::new(format!("{at}.field"), format!("no collect node collects '{}'", shown(f))));
                }
            },
            (_, Some(_)) => {
                return Err(ConfigError::new(format!("{at}.field"), format!("only a branch on a field names one (this one is on {})", b.on.as_str())));
            }
            (_, None) => None,
        };
        if b.cases.is_empty() {
            return Err(ConfigError::new(format!("{at}.cases"), "a branch needs at least one case"));
        }
        for (j, case) in b.cases.iter().enumerate() {
            let cat = format!("{at}.cases[{j}]");
            let expected = match b.on {
                BranchOn::Keywords => "keywords",
                BranchOn::Intent => "intent",
                BranchOn::Field => "one of equals, in, present",
                BranchOn::Digits => "digits",
            };
            let Some(test) = case.test() else {
                return Err(ConfigError::new(cat, format!("a case of a branch on {} has exactly one test: {expected}", b.on.as_str())));
            };
            let suits = matches!(
                (b.on, test),
                (BranchOn::Keywords, CaseTest::Keywords(_))
                    | (BranchOn::Intent, CaseTest::Intent(_))
                    | (BranchOn::Field, CaseTest::Equals(_) | CaseTest::In(_) | CaseTest::Present(_))
                    | (BranchOn::Digits, CaseTest::Digits(_))
            );
            if !suits {
                return Err(ConfigError::new(cat, format!("a case of a branch on {} tests {expected}", b.on.as_str())));
            }
            match test {
                CaseTest::Keywords(words) => {
                    if words.is_empty() {
                        return Err(ConfigError::new(format!("{cat}.keywords"), "list at least one keyword"));
                    }
                    for (k, w) in words.iter().enumerate() {
                        check_phrase(w, &format!("{cat}.keywords[{k}]"))?;
                    }
                }
                CaseTest::Intent(name) => {
                    if !self.intents.contains_key(name) {
                        return Err(ConfigError::new(format!("{cat}.intent"), format!("no intent '{}' in flow.intents", shown(name))));
                    }
                }
                CaseTest::Equals(v) => {
                    check_case_value(v, collector, &format!("{cat}.equals"))?;
                }
                CaseTest::In(values) => {
                    if values.is_empty() {
                        return Err(ConfigError::new(format!("{cat}.in"), "list at least one value"));
                    }
                    for (k, v) in values.iter().enumerate() {
                        check_case_value(v, collector, &format!("{cat}.in[{k}]"))?;
                    }
                }
                CaseTest::Present(_) => {}
                CaseTest::Digits(d) => {
                    if d.is_empty() || d.len() > 32 || !d.chars().all(|c| c.is_ascii_digit() || matches!(c, '*' | '#')) {
                        return Err(ConfigError::new(format!("{cat}.digits"), "keypad keys: 1 to 32 of 0-9, * and #"));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_reachable(&self, index: &HashMap<&str, usize>, path: &str) -> Result<(), ConfigError> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = index.get(self.start.as_str()).copied().into_iter().collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            for (_, t) in self.nodes[i].targets() {
                if let Some(&j) = index.get(t) {
                    stack.push(j);
                }
            }
        }
        match seen.iter().position(|s| !s) {
            Some(i) => {
                Err(ConfigError::new(format!("{path}.nodes[{i}]"), format!("node '{}' cannot be reached from start '{}'", self.nodes[i].id(), self.start)))
            }
            None => Ok(()),
        }
    }

    /// A cycle of `say` and `branch` nodes never waits for the caller, and a branch sees the
    /// same caller turn each time round, so once entered it would speak forever.
    fn check_silent_cycles(&self, index: &HashMap<&str, usize>, path: &str) -> Result<(), ConfigError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let non_waiting = |i: usize| matches!(self.nodes[i], Node::Say(_) | Node::Branch(_));
        let mut mark = vec![Mark::New; self.nodes.len()];
        for root in 0..self.nodes.len() {
            if mark[root] != Mark::New || !non_waiting(root) {
                continue;
            }
            // Iterative DFS so a long chain of nodes cannot overflow the stack.
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            mark[root] = Mark::Open;
            while let Some(&mut (i, ref mut next_edge)) = stack.last_mut() {
                let targets = self.nodes[i].targets();
                if let Some((key, t)) = targets.get(*next_edge) {
                    *next_edge += 1;
                    let Some(&j) = index.get(*t) else { continue };
                    if !non_waiting(j) {
                        continue;
                    }
                    match mark[j] {
                        Mark::Open => {
                            let from = stack.iter().position(|&(n, _)| n == j).unwrap_or(0);
                            let mut ids: Vec<&str> = stack[from..].iter().map(|&(n, _)| self.nodes[n].id()).collect();
                            ids.push(self.nodes[j].id());
                            return Err(ConfigError::new(
                                format!("{path}.nodes[{i}].{key}"),
                                format!("the loop {} never waits for the caller (add an ask or collect node)", ids.join(" -> ")),
                            ));
                        }
                        Mark::New => {
                            mark[j] = Mark::Open;
                            stack.push((j, 0));
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[i] = Mark::Done;
                    stack.pop();
                }
            }
        }
        Ok(())
    }
}

fn check_collect(c: &CollectNode, at: &str) -> Result<(), ConfigError> {
    if !is_identifier(&c.field) {
        return Err(ConfigError::new(format!("{at}.field"), "field names are lower-case letters, digits and '_', starting with a letter"));
    }
    if BUILTIN_VARIABLES.contains(&c.field.as_str()) {
        return Err(ConfigError::new(format!("{at}.field"), format!("'{}' is a built-in variable and cannot be collected", c.field)));
    }
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&c.max_attempts) {
        return Err(ConfigError::new(format!("{at}.max_attempts"), format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}")));
    }
    if c.field_type == FieldType::Enum {
        if c.options.is_empty() {
            return Err(ConfigError::new(format!("{at}.options"), "an enum field lists its options"));
        }
        let mut seen = BTreeSet::new();
        for (j, o) in c.options.iter().enumerate() {
            check_phrase(o, &format!("{at}.options[{j}]"))?;
            if !seen.insert(o.to_lowercase()) {
                return Err(ConfigError::new(format!("{at}.options[{j}]"), format!("duplicate option '{}'", shown(o))));
            }
        }
        for (option, phrases) in &c.synonyms {
            let sat = format!("{at}.synonyms.{}", shown(option));
            if !c.options.contains(option) {
                return Err(ConfigError::new(sat, "not one of the options"));
            }
            for (k, p) in phrases.iter().enumerate() {
                check_phrase(p, &format!("{sat}[{k}]"))?;
            }
        }
    } else {
        if !c.options.is_empty() {
            return Err(ConfigError::new(format!("{at}.options"), "only an enum field has options"));
        }
        if !c.synonyms.is_empty() {
            return Err(ConfigError::new(format!("{at}.synonyms"), "only an enum field has synonyms"));
        }
    }
    Ok(())
}

fn check_case_value(v: &serde_json::Value, collector: Option<&CollectNode>, at: &str) -> Result<(), ConfigError> {
    use serde_json::Value;
    if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
        return Err(ConfigError::new(at, "must be a string, number or boolean"));
    }
    if let (Some(c), Value::String(s)) = (collector, v)
        && c.field_type == FieldType::Enum
        && !c.options.iter().any(|o| o.eq_ignore_ascii_case(s))
    {
        return Err(ConfigError::new(at, format!("'{}' is not an option of field '{}' ({})", shown(s), c.field, c.options.join(", "))));
    }
    Ok(())
}

fn check_phrase(p: &str, at: &str) -> Result<(), ConfigError> {
    if !p.chars().any(char::is_alphanumeric) {
        return Err(ConfigError::new(at, "must contain a word"));
    }
    if p.chars().count() > 200 {
        return Err(ConfigError::new(at, "at most 200 characters"));
    }
    Ok(())
}

fn check_text(text: &str, at: &str, known: &impl Fn(&str) -> bool) -> Result<(), ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(at, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ConfigError::new(at, format!("at most {MAX_TEXT_CHARS} characters")));
    }
    let segments = parse_template(text).map_err(|e| ConfigError::new(at, e))?;
    for s in segments {
        if let Segment::Var { name, .. } = s
            && !known(name)
        {
            return Err(ConfigError::new(
                at,
                format!("unknown variable '{{{{{name}}}}}': declare it in variables, collect it, or use a built-in ({})", BUILTIN_VARIABLES.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Names are shown in messages; a hostile config must not make them huge.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A piece of a `{{variable}}` template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    /// `{{name}}` or `{{name|fallback}}`.
    Var {
        name: &'a str,
        fallback: Option<&'a str>,
    },
}

/// Split a template into text and variables. `{{ name }}` may have spaces inside the braces;
/// `{{name|words}}` says `words` when the variable has no value. A `{{` without a closing
/// `}}`, or with something other than a variable name inside, is an error.
pub fn parse_template(template: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Segment::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("'{{' without a closing '}}'".to_owned());
        };
        let inner = &after[..close];
        if inner.contains("{{") {
            return Err("'{{' without a closing '}}'".to_owned());
        }
        let (name, fallback) = match inner.split_once('|') {
            Some((n, f)) => (n.trim(), Some(f.trim())),
            None => (inner.trim(), None),
        };
        if !is_identifier(name) {
            return Err(format!("'{{{{{}}}}}' is not a variable: names are lower-case letters, digits and '_'", shown(inner)));
        }
        out.push(Segment::Var { name, fallback });
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    Ok(out)
}

/// The variable names a template uses, in order (repeats included).
pub fn template_variables(template: &str) -> Result<Vec<&str>, String> {
    Ok(parse_template(template)?
        .into_iter()
        .filter_map(|s| match s {
            Segment::Var { name, .. } => Some(name),
            Segment::Text(_) => None,
        })
        .collect())
}

/// Fill in a template. A variable without a value says its fallback, or nothing; the
/// whitespace that leaves behind is tidied so the agent does not say "Thanks , what".
/// A malformed template (refused by validation) is said as written rather than failing a
/// live call.
pub fn render(template: &str, lookup: &impl Fn(&str) -> Option<String>) -> String {
    let Ok(segments) = parse_template(template) else {
        return template.to_owned();
    };
    let mut out = String::with_capacity(template.len());
    let mut had_gap = false;
    for s in segments {
        match s {
            Segment::Text(t) => out.push_str(t),
            Segment::Var { name, fallback } => match lookup(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(&v),
                None => match fallback.filter(|f| !f.is_empty()) {
                    Some(f) => out.push_str(f),
                    None => had_gap = true,
                },
            },
        }
    }
    if had_gap { tidy_spaces(&out) } else { out }
}

fn tidy_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        let glue = word.starts_with([',', '.', '!', '?', ';', ':']);
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') && s.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentConfig;
    use serde_json::json;

    fn example() -> serde_json::Value {
        json!({
            "kind": "flow",
            "variables": {"company": "Acme"},
            "flow": {
                "start": "greet",
                "intents": {
                    "outage": ["down", "outage", "not loading", "five hundred"],
                    "billing": ["invoice", "charge", "refund"]
                },
                "nodes": [
                    {"id": "greet", "type": "say", "text": "Hi, this is {{company}} support.", "next": "ask_name"},
                    {"id": "ask_name", "type": "collect", "field": "caller_name", "field_type": "string",
                     "prompt": "Who am I speaking with?", "retry_prompt": "Sorry, could you repeat your name?",
                     "max_attempts": 2, "next": "ask_issue", "on_fail": "ask_issue"},
                    {"id": "ask_issue", "type": "ask", "text": "Thanks {{caller_name}}. What is going wrong?", "next": "route"},
                    {"id": "route", "type": "branch", "on": "intent",
                     "cases": [{"intent": "outage", "next": "sev"}, {"intent": "billing", "next": "bye"}], "default": "kw"},
                    {"id": "kw", "type": "branch", "on": "keywords",
                     "cases": [{"keywords": ["yes", "yeah", "correct"], "next": "escalate"}], "default": "bye"},
                    {"id": "sev", "type": "collect", "field": "severity", "field_type": "enum",
                     "options": ["sev1", "sev2", "sev3"], "prompt": "How bad is it?", "next": "by_field"},
                    {"id": "by_field", "type": "branch", "on": "field", "field": "severity",
                     "cases": [{"equals": "sev1", "next": "escalate"}, {"in": ["sev2", "sev3"], "next": "bye"},
                               {"present": true, "next": "bye"}], "default": "bye"},
                    {"id": "escalate", "type": "transfer", "text": "Let me connect you to the on-call engineer.", "to": "+15550100001"},
                    {"id": "bye", "type": "end", "text": "Thanks, we'll follow up by email."}
                ]
            }
        })
    }

    fn err_at(mut v: serde_json::Value, edit: impl FnOnce(&mut serde_json::Value)) -> ConfigError {
        edit(&mut v);
        match AgentConfig::parse(&v) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    fn path_of(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        err_at(example(), edit).path
    }

    #[test]
    fn example_parses() {
        let cfg = AgentConfig::parse(&example()).expect("valid");
        let AgentConfig::Flow(f) = cfg else { panic!("flow") };
        assert_eq!(f.flow.collected_fields(), vec!["caller_name", "severity"]);
        assert_eq!(f.flow.nodes.len(), 9);
        let Some(Node::Collect(c)) = f.flow.node("sev") else { panic!("collect") };
        assert_eq!(c.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(c.fail_target(), "by_field");
    }

    #[test]
    fn normalised_config_round_trips() {
        let AgentConfig::Flow(f) = AgentConfig::parse(&example()).expect("valid") else { panic!("flow") };
        let v = serde_json::to_value(&f).expect("serialise");
        assert_eq!(AgentConfig::parse(&v).expect("valid again"), AgentConfig::Flow(f));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = err_at(example(), |v| v["flow"]["nodes"][0]["colour"] = json!("red"));
        assert!(e.message.contains("colour"), "{e}");
        assert!(e.path.starts_with("flow.nodes[0]"), "{e}");
        let e = err_at(example(), |v| v["flow"]["nodes"][0]["type"] = json!("sing"));
        assert!(e.message.contains("sing"), "{e}");
        assert!(e.path.starts_with("flow.nodes[0]"), "{e}");
        let e = err_at(example(), |v| v["flow"]["extra"] = json!(1));
        assert_eq!(e.path, "flow.extra");
    }

    #[test]
    fn validation_paths() {
        assert_eq!(path_of(|v| v["flow"]["nodes"] = json!([])), "flow.nodes");
        assert_eq!(path_of(|v| v["flow"]["start"] = json!("nowhere")), "flow.start");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["id"] = json!("greet")), "flow.nodes[1].id");
        assert_eq!(path_of(|v| v["flow"]["nodes"][2]["id"] = json!("Ask Issue")), "flow.nodes[2].id");
        assert_eq!(path_of(|v| v["flow"]["nodes"][0]["next"] = json!("nope")), "flow.nodes[0].next");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["on_fail"] = json!("nope")), "flow.nodes[1].on_fail");
        assert_eq!(path_of(|v| v["flow"]["nodes"][3]["default"] = json!("nope")), "flow.nodes[3].default");
        assert_eq!(path_of(|v| v["flow"]["nodes"][3]["cases"][1]["next"] = json!("nope")), "flow.nodes[3].cases[1].next");
        assert_eq!(path_of(|v| v["flow"]["nodes"][3]["cases"][0]["intent"] = json!("weather")), "flow.nodes[3].cases[0].intent");
        assert_eq!(path_of(|v| v["flow"]["nodes"][6]["field"] = json!("shoe_size")), "flow.nodes[6].field");
        assert_eq!(
            path_of(|v| {
                v["flow"]["nodes"][6].as_object_mut().map(|o| o.remove("field"));
            }),
            "flow.nodes[6].field"
        );
        assert_eq!(path_of(|v| v["flow"]["nodes"][3]["field"] = json!("severity")), "flow.nodes[3].field");
        assert_eq!(path_of(|v| v["flow"]["nodes"][6]["cases"][0]["equals"] = json!("sev9")), "flow.nodes[6].cases[0].equals");
        assert_eq!(path_of(|v| v["flow"]["nodes"][6]["cases"][1]["in"] = json!([])), "flow.nodes[6].cases[1].in");
        assert_eq!(path_of(|v| v["flow"]["nodes"][4]["cases"][0] = json!({"intent": "outage", "next": "bye"})), "flow.nodes[4].cases[0]");
        assert_eq!(path_of(|v| v["flow"]["nodes"][4]["cases"][0]["intent"] = json!("outage")), "flow.nodes[4].cases[0]");
        assert_eq!(path_of(|v| v["flow"]["nodes"][4]["cases"][0]["keywords"][1] = json!("  ")), "flow.nodes[4].cases[0].keywords[1]");
        assert_eq!(path_of(|v| v["flow"]["nodes"][4]["cases"] = json!([])), "flow.nodes[4].cases");
        assert_eq!(path_of(|v| v["flow"]["nodes"][5]["options"] = json!([])), "flow.nodes[5].options");
        assert_eq!(path_of(|v| v["flow"]["nodes"][5]["options"][2] = json!("SEV1")), "flow.nodes[5].options[2]");
        assert_eq!(path_of(|v| v["flow"]["nodes"][5]["synonyms"] = json!({"sev7": ["meh"]})), "flow.nodes[5].synonyms.sev7");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["options"] = json!(["a"])), "flow.nodes[1].options");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["max_attempts"] = json!(0)), "flow.nodes[1].max_attempts");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["field"] = json!("call_id")), "flow.nodes[1].field");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["field"] = json!("Name")), "flow.nodes[1].field");
        assert_eq!(path_of(|v| v["flow"]["nodes"][0]["text"] = json!("  ")), "flow.nodes[0].text");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["prompt"] = json!("")), "flow.nodes[1].prompt");
        assert_eq!(path_of(|v| v["flow"]["nodes"][1]["retry_prompt"] = json!("")), "flow.nodes[1].retry_prompt");
        assert_eq!(path_of(|v| v["flow"]["nodes"][8]["text"] = json!("")), "flow.nodes[8].text");
        assert_eq!(path_of(|v| v["flow"]["nodes"][7]["to"] = json!("5550100001")), "flow.nodes[7].to");
        assert_eq!(path_of(|v| v["flow"]["intents"]["Outage"] = json!(["x"])), "flow.intents.Outage");
        assert_eq!(path_of(|v| v["flow"]["intents"]["billing"] = json!([])), "flow.intents.billing");
        assert_eq!(path_of(|v| v["flow"]["intents"]["billing"][2] = json!("!")), "flow.intents.billing[2]");
    }

    #[test]
    fn template_errors_name_the_text() {
        let e = err_at(example(), |v| v["flow"]["nodes"][0]["text"] = json!("Hi {{customer}}"));
        assert_eq!(e.path, "flow.nodes[0].text");
        assert!(e.message.contains("customer"), "{e}");
        let e = err_at(example(), |v| v["flow"]["nodes"][2]["text"] = json!("Hi {{caller_name"));
        assert_eq!(e.path, "flow.nodes[2].text");
        let e = err_at(example(), |v| v["flow"]["nodes"][2]["text"] = json!("Hi {{ two words }}"));
        assert_eq!(e.path, "flow.nodes[2].text");
        let e = err_at(example(), |v| v["flow"]["nodes"][7]["text"] = json!("Hi {{}}"));
        assert_eq!(e.path, "flow.nodes[7].text");
        // Built-ins, config variables and collected fields are all known.
        let ok = {
            let mut v = example();
            v["flow"]["nodes"][0]["text"] =
                json!("{{agent_name}} v{{agent_version}} for {{company}}, call {{ call_id }} from {{from_number}} to {{to_number}}, {{severity|no severity}}.");
            v
        };
        AgentConfig::parse(&ok).expect("known variables");
    }

    #[test]
    fn unreachable_nodes_are_refused() {
        let e = err_at(example(), |v| {
            if let Some(a) = v["flow"]["nodes"].as_array_mut() {
                a.push(json!({"id": "orphan", "type": "end", "text": "Bye."}));
            }
        });
        assert_eq!(e.path, "flow.nodes[9]");
        assert!(e.message.contains("orphan"), "{e}");
    }

    #[test]
    fn loops_that_never_wait_are_refused() {
        let e = err_at(example(), |v| v["flow"]["nodes"][0]["next"] = json!("greet"));
        assert_eq!(e.path, "flow.nodes[0].next");
        let e = err_at(example(), |v| {
            v["flow"]["nodes"][3]["default"] = json!("greet");
            v["flow"]["nodes"][2] = json!({"id": "ask_issue", "type": "say", "text": "Go on.", "next": "route"});
            v["flow"]["nodes"][0]["next"] = json!("ask_issue");
            v["flow"]["nodes"][1]["next"] = json!("ask_issue");
        });
        assert_eq!(e.path, "flow.nodes[3].default");
        assert!(e.message.contains("greet -> ask_issue -> route -> greet"), "{e}");
        // A loop through an ask is fine: it waits each time round.
        let mut v = example();
        v["flow"]["nodes"][4]["default"] = json!("ask_issue");
        AgentConfig::parse(&v).expect("waiting loop is valid");
    }

    #[test]
    fn templates() {
        let segs = parse_template("Hi {{ name | there }}, {{x}}!").expect("ok");
        assert_eq!(
            segs,
            vec![
                Segment::Text("Hi "),
                Segment::Var { name: "name", fallback: Some("there") },
                Segment::Text(", "),
                Segment::Var { name: "x", fallback: None },
                Segment::Text("!"),
            ]
        );
        assert!(parse_template("a {{b").is_err());
        assert!(parse_template("a {{b {{c}}").is_err());
        assert!(parse_template("a {b} }} c").is_ok());
        assert_eq!(template_variables("{{a}} {{b|c}}").expect("ok"), vec!["a", "b"]);
        let lookup = |n: &str| (n == "name").then(|| "Ada".to_owned());
        assert_eq!(render("Hi {{name}}.", &lookup), "Hi Ada.");
        assert_eq!(render("Thanks {{other}}, what?", &lookup), "Thanks, what?");
        assert_eq!(render("Thanks {{other|friend}}.", &lookup), "Thanks friend.");
        assert_eq!(render("Broken {{name", &lookup), "Broken {{name");
    }
}
