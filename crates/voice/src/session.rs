//! The flow runtime: walks a flow graph one caller turn at a time.
//!
//! A session is driven from outside (a text script today, a live audio loop later): call
//! `start` once, then `caller_said` for each caller turn until the outcome is `Ended`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use dialnexa_core::agent::FlowAgentConfig;
use dialnexa_core::flow::{BranchNode, BranchOn, CaseTest, CollectNode, Node, render};
use dialnexa_core::{ConfigError, DisconnectionReason};
use serde::Serialize;
use serde_json::Value;

use crate::extract::{FieldSpec, extract, quoted};
use crate::text::{Token, first_affirmed, first_negated, slice, tokenize};

/// What happened inside the flow, in a stable snake_case vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowEventKind {
    NodeEntered,
    FieldCollected,
    /// A collect node ran out of attempts without hearing a value.
    FieldMissed,
    Reprompt,
    BranchTaken,
    Transfer,
    MaxTurnsReached,
    /// The runtime guard against a loop that never waits (validation refuses those graphs).
    LoopBoundReached,
    /// The caller pressed keypad keys (DTMF).
    DigitsPressed,
}

impl FlowEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeEntered => "node_entered",
            Self::FieldCollected => "field_collected",
            Self::FieldMissed => "field_missed",
            Self::Reprompt => "reprompt",
            Self::BranchTaken => "branch_taken",
            Self::Transfer => "transfer",
            Self::MaxTurnsReached => "max_turns_reached",
            Self::LoopBoundReached => "loop_bound_reached",
            Self::DigitsPressed => "digits_pressed",
        }
    }
}

impl fmt::Display for FlowEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened, with a sentence a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowEvent {
    pub kind: FlowEventKind,
    pub detail: String,
}

/// A field heard in the caller turn just processed. `start`/`end` are character offsets
/// (Unicode scalar values, end exclusive) in that turn's text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectedField {
    pub name: String,
    pub value: Value,
    pub confidence: f64,
    pub start: u32,
    pub end: u32,
}

/// How the flow ended the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Ending {
    AgentHangup,
    Transfer { to: String },
    MaxTurns,
}

impl Ending {
    pub fn disconnection_reason(&self) -> DisconnectionReason {
        match self {
            Self::AgentHangup => DisconnectionReason::AgentHangup,
            Self::Transfer { .. } => DisconnectionReason::Transfer,
            Self::MaxTurns => DisconnectionReason::MaxTurns,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// The agent has spoken and waits for the caller's next turn.
    AwaitingCaller,
    Ended(Ending),
}

/// The agent's answer to one caller turn (or the opening of the call).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What the agent says now: the texts of every node passed before the next wait,
    /// joined into one turn. `None` when the agent says nothing (e.g. max turns reached).
    pub utterance: Option<String>,
    pub events: Vec<FlowEvent>,
    /// Fields heard in the caller turn this step answers.
    pub fields: Vec<CollectedField>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session has already started")]
    AlreadyStarted,
    #[error("the session has not started: call start() first")]
    NotStarted,
    #[error("the call has ended")]
    Ended,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    NotStarted,
    /// Waiting at an ask (or collect) node; `attempt` counts the prompts said so far.
    Waiting {
        node: usize,
        attempt: u32,
    },
    Ended {
        node: Option<usize>,
    },
}

/// One conversation with a flow agent.
#[derive(Debug, Clone)]
pub struct FlowSession {
    config: Arc<FlowAgentConfig>,
    variables: BTreeMap<String, String>,
    collected: BTreeMap<String, Value>,
    state: State,
    agent_turns: u32,
    last_caller_text: String,
    /// The keys pressed at the last wait, when the caller answered with the keypad.
    last_digits: Option<String>,
}

/// Collects what one step produces.
struct StepBuilder {
    texts: Vec<String>,
    events: Vec<FlowEvent>,
    fields: Vec<CollectedField>,
}

impl StepBuilder {
    fn new() -> Self {
        Self { texts: Vec::new(), events: Vec::new(), fields: Vec::new() }
    }

    fn event(&mut self, kind: FlowEventKind, detail: String) {
        self.events.push(FlowEvent { kind, detail });
    }

    fn finish(self, outcome: Outcome) -> Step {
        let utterance = (!self.texts.is_empty()).then(|| self.texts.join(" "));
        Step { utterance, events: self.events, fields: self.fields, outcome }
    }
}

impl FlowSession {
    /// A session for one call. `variables` are the call's own (built-ins such as `call_id`
    /// included); they override the config's defaults. The config is validated again so
    /// that a hand-built config cannot send the runtime to a node that does not exist.
    pub fn new(config: Arc<FlowAgentConfig>, variables: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        config.flow.validate(&config.variables, "flow")?;
        let mut merged = config.variables.clone();
        merged.extend(variables);
        Ok(Self {
            config,
            variables: merged,
            collected: BTreeMap::new(),
            state: State::NotStarted,
            agent_turns: 0,
            last_caller_text: String::new(),
            last_digits: None,
        })
    }

    /// The agent's opening: everything up to the first wait (or the end).
    pub fn start(&mut self) -> Result<Step, SessionError> {
        if self.state != State::NotStarted {
            return Err(SessionError::AlreadyStarted);
        }
        let mut b = StepBuilder::new();
        let outcome = match self.config.flow.node_index(&self.config.flow.start) {
            Some(i) => self.walk(i, &mut b),
            None => self.end(None, Ending::AgentHangup),
        };
        Ok(b.finish(outcome))
    }

    /// The caller finished a turn: process it and return the agent's response.
    pub fn caller_said(&mut self, text: &str) -> Result<Step, SessionError> {
        let (node_index, attempt) = match self.state {
            State::NotStarted => return Err(SessionError::NotStarted),
            State::Ended { .. } => return Err(SessionError::Ended),
            State::Waiting { node, attempt } => (node, attempt),
        };
        self.last_caller_text = text.to_owned();
        self.last_digits = None;
        let config = Arc::clone(&self.config);
        let mut b = StepBuilder::new();
        let outcome = match config.flow.nodes.get(node_index) {
            Some(Node::Ask(a)) => self.goto(&a.next, &mut b),
            Some(Node::Collect(c)) => self.answer_collect(node_index, c, attempt, text, &mut b),
            // Only ask and collect nodes wait; anything else here is a runtime bug, and
            // ending the call beats guessing where to go.
            _ => self.end(Some(node_index), Ending::AgentHangup),
        };
        Ok(b.finish(outcome))
    }

    /// The caller pressed keypad keys (DTMF) where the flow waits: at an `ask` node they are
    /// the answer a following `branch` on `digits` inspects; at a `collect` node they are the
    /// answer itself (an account number typed on the keypad).
    pub fn caller_pressed(&mut self, digits: &str) -> Result<Step, SessionError> {
        let (node_index, attempt) = match self.state {
            State::NotStarted => return Err(SessionError::NotStarted),
            State::Ended { .. } => return Err(SessionError::Ended),
            State::Waiting { node, attempt } => (node, attempt),
        };
        let digits: String = digits.chars().filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#')).take(64).collect();
        self.last_caller_text = String::new();
        self.last_digits = Some(digits.clone());
        let config = Arc::clone(&self.config);
        let mut b = StepBuilder::new();
        b.event(FlowEventKind::DigitsPressed, format!("the caller pressed {digits}"));
        let outcome = match config.flow.nodes.get(node_index) {
            Some(Node::Ask(a)) => self.goto(&a.next, &mut b),
            Some(Node::Collect(c)) => {
                let typed = digits.trim_end_matches('#').to_owned();
                self.answer_collect(node_index, c, attempt, &typed, &mut b)
            }
            _ => self.end(Some(node_index), Ending::AgentHangup),
        };
        Ok(b.finish(outcome))
    }

    /// The flow ended at a warm `transfer` node.
    pub fn warm_transfer(&self) -> bool {
        match self.state {
            State::Ended { node: Some(i) } => matches!(self.config.flow.nodes.get(i), Some(Node::Transfer(t)) if t.warm),
            _ => false,
        }
    }

    /// A warm transfer's target did not take the call: the flow goes on at the node's
    /// `on_fail` (an empty step ending the call when it has none).
    pub fn transfer_failed(&mut self, why: &str) -> Result<Step, SessionError> {
        let State::Ended { node: Some(i) } = self.state else { return Err(SessionError::NotStarted) };
        let config = Arc::clone(&self.config);
        let Some(Node::Transfer(t)) = config.flow.nodes.get(i) else { return Err(SessionError::Ended) };
        let mut b = StepBuilder::new();
        b.event(FlowEventKind::Transfer, format!("the warm transfer to {} failed ({why})", t.to));
        let outcome = match &t.on_fail {
            Some(next) => self.goto(next, &mut b),
            None => self.end(Some(i), Ending::AgentHangup),
        };
        Ok(b.finish(outcome))
    }

    /// The node the flow is at: where it waits, or where it ended.
    pub fn current_node(&self) -> Option<&str> {
        let i = match self.state {
            State::NotStarted => return None,
            State::Waiting { node, .. } => Some(node),
            State::Ended { node } => node,
        }?;
        self.config.flow.nodes.get(i).map(Node::id)
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended { .. })
    }

    /// Fields collected so far (a field collected twice keeps its latest value).
    pub fn collected(&self) -> &BTreeMap<String, Value> {
        &self.collected
    }

    /// Agent turns spoken so far.
    pub fn agent_turns(&self) -> u32 {
        self.agent_turns
    }

    pub fn config(&self) -> &FlowAgentConfig {
        &self.config
    }

    fn end(&mut self, node: Option<usize>, ending: Ending) -> Outcome {
        self.state = State::Ended { node };
        Outcome::Ended(ending)
    }

    fn goto(&mut self, id: &str, b: &mut StepBuilder) -> Outcome {
        match self.config.flow.node_index(id) {
            Some(i) => self.walk(i, b),
            None => self.end(None, Ending::AgentHangup),
        }
    }

    fn render(&self, template: &str) -> String {
        render(template, &|name: &str| self.collected.get(name).map(value_text).or_else(|| self.variables.get(name).cloned()))
    }

    /// Queue speech. The first speech of a step opens a new agent turn, which the
    /// `max_turns` bound may refuse; `false` means the call must end instead.
    fn speak(&mut self, text: &str, b: &mut StepBuilder) -> bool {
        if b.texts.is_empty() {
            if self.agent_turns >= self.config.max_turns {
                b.event(FlowEventKind::MaxTurnsReached, format!("the agent reached its bound of {} turns; ending the call", self.config.max_turns));
                return false;
            }
            self.agent_turns += 1;
        }
        let rendered = self.render(text);
        b.texts.push(rendered);
        true
    }

    /// Run nodes from `from` until one waits or ends the call.
    fn walk(&mut self, from: usize, b: &mut StepBuilder) -> Outcome {
        let config = Arc::clone(&self.config);
        let nodes = &config.flow.nodes;
        // Without a wait, visiting more nodes than the graph has means a loop.
        let bound = nodes.len() + 1;
        let mut current = from;
        for _ in 0..bound {
            let Some(node) = nodes.get(current) else {
                return self.end(None, Ending::AgentHangup);
            };
            b.event(FlowEventKind::NodeEntered, format!("entered {} node '{}'", node.kind(), node.id()));
            let next = match node {
                Node::Say(n) => {
                    if !self.speak(&n.text, b) {
                        return self.end(Some(current), Ending::MaxTurns);
                    }
                    n.next.as_str()
                }
                Node::Ask(n) => {
                    if !self.speak(&n.text, b) {
                        return self.end(Some(current), Ending::MaxTurns);
                    }
                    self.state = State::Waiting { node: current, attempt: 1 };
                    return Outcome::AwaitingCaller;
                }
                Node::Collect(n) => {
                    if !self.speak(&n.prompt, b) {
                        return self.end(Some(current), Ending::MaxTurns);
                    }
                    self.state = State::Waiting { node: current, attempt: 1 };
                    return Outcome::AwaitingCaller;
                }
                Node::Branch(n) => self.branch(n, b),
                Node::Transfer(n) => {
                    if !self.speak(&n.text, b) {
                        return self.end(Some(current), Ending::MaxTurns);
                    }
                    b.event(FlowEventKind::Transfer, format!("transferring the call to {}", n.to));
                    return self.end(Some(current), Ending::Transfer { to: n.to.clone() });
                }
                Node::End(n) => {
                    if !self.speak(&n.text, b) {
                        return self.end(Some(current), Ending::MaxTurns);
                    }
                    return self.end(Some(current), Ending::AgentHangup);
                }
            };
            match config.flow.node_index(next) {
                Some(i) => current = i,
                None => return self.end(Some(current), Ending::AgentHangup),
            }
        }
        b.event(FlowEventKind::LoopBoundReached, format!("passed {bound} nodes without waiting for the caller; ending the call"));
        self.end(Some(current), Ending::MaxTurns)
    }

    fn answer_collect(&mut self, node_index: usize, c: &CollectNode, attempt: u32, text: &str, b: &mut StepBuilder) -> Outcome {
        let spec = FieldSpec { field_type: c.field_type, options: &c.options, synonyms: &c.synonyms };
        if let Some(x) = extract(spec, text) {
            b.event(
                FlowEventKind::FieldCollected,
                format!(
                    "collected {} = {} ({}, confidence {:.2}) from \"{}\"",
                    c.field,
                    x.value,
                    c.field_type.as_str(),
                    x.confidence,
                    quoted(text, x.start, x.end)
                ),
            );
            b.fields.push(CollectedField {
                name: c.field.clone(),
                value: x.value.clone(),
                confidence: x.confidence,
                start: u32::try_from(x.start).unwrap_or(u32::MAX),
                end: u32::try_from(x.end).unwrap_or(u32::MAX),
            });
            self.collected.insert(c.field.clone(), x.value);
            return self.goto(&c.next, b);
        }
        if attempt < c.max_attempts {
            b.event(
                FlowEventKind::Reprompt,
                format!("no {} heard for {} (attempt {attempt} of {}); asking again", c.field_type.as_str(), c.field, c.max_attempts),
            );
            let prompt = c.retry_prompt.as_deref().unwrap_or(&c.prompt);
            if !self.speak(prompt, b) {
                return self.end(Some(node_index), Ending::MaxTurns);
            }
            self.state = State::Waiting { node: node_index, attempt: attempt + 1 };
            return Outcome::AwaitingCaller;
        }
        b.event(
            FlowEventKind::FieldMissed,
            format!("no {} heard for {} after {} attempts; going to '{}' without it", c.field_type.as_str(), c.field, c.max_attempts, c.fail_target()),
        );
        self.goto(c.fail_target(), b)
    }

    /// Pick the target of a branch and record why.
    fn branch<'n>(&self, n: &'n BranchNode, b: &mut StepBuilder) -> &'n str {
        let tokens = tokenize(&self.last_caller_text);
        for (j, case) in n.cases.iter().enumerate() {
            if let Some(why) = self.case_matches(n, case.test(), &tokens) {
                b.event(FlowEventKind::BranchTaken, format!("branch '{}' on {}: case {j} matched ({why}); going to '{}'", n.id, n.on.as_str(), case.next));
                return &case.next;
            }
        }
        let mut why = String::from("no case matched");
        if matches!(n.on, BranchOn::Keywords | BranchOn::Intent) {
            let phrases: Vec<&str> = n.cases.iter().flat_map(|c| self.case_phrases(c.test())).collect();
            if let Some((p, m)) = first_negated(&tokens, &phrases)
                && let Some(neg) = m.negated_by
            {
                why = format!(
                    "no case matched; \"{}\" was heard but negated by \"{}\"",
                    phrases.get(p).copied().unwrap_or_default(),
                    slice(&self.last_caller_text, &tokens, neg, neg + 1)
                );
            }
        }
        b.event(FlowEventKind::BranchTaken, format!("branch '{}' on {}: {why}; going to default '{}'", n.id, n.on.as_str(), n.default));
        &n.default
    }

    fn case_phrases<'a>(&'a self, test: Option<CaseTest<'a>>) -> Vec<&'a str> {
        match test {
            Some(CaseTest::Keywords(k)) => k.iter().map(String::as_str).collect(),
            Some(CaseTest::Intent(i)) => self.config.flow.intents.get(i).map(|p| p.iter().map(String::as_str).collect()).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Why a case matches, or `None`.
    fn case_matches(&self, n: &BranchNode, test: Option<CaseTest<'_>>, tokens: &[Token]) -> Option<String> {
        let heard =
            |phrases: Vec<&str>| first_affirmed(tokens, &phrases).map(|(_, m)| format!("heard \"{}\"", slice(&self.last_caller_text, tokens, m.first, m.last)));
        let field = n.field.as_deref().unwrap_or_default();
        let value = self.collected.get(field);
        match test? {
            t @ CaseTest::Keywords(_) => heard(self.case_phrases(Some(t))),
            t @ CaseTest::Intent(name) => heard(self.case_phrases(Some(t))).map(|h| format!("intent {name}: {h}")),
            CaseTest::Equals(want) => value.filter(|v| values_equal(v, want)).map(|v| format!("{field} = {v}")),
            CaseTest::In(list) => value.filter(|v| list.iter().any(|w| values_equal(v, w))).map(|v| format!("{field} = {v}, one of the listed values")),
            CaseTest::Present(true) => value.map(|v| format!("{field} was collected ({v})")),
            CaseTest::Present(false) => value.is_none().then(|| format!("{field} was not collected")),
            CaseTest::Digits(want) => {
                let pressed = self.last_digits.as_deref()?;
                (pressed.trim_end_matches('#') == want.trim_end_matches('#')).then(|| format!("the caller pressed {pressed}"))
            }
        }
    }
}

/// Strings compare without regard to case ("SEV1" is "sev1"); numbers by value.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// How a collected value is said when a template names it.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A session over a config that skipped validation, to test the runtime's own guards.
    pub(crate) fn unchecked(config: FlowAgentConfig) -> FlowSession {
        FlowSession {
            config: Arc::new(config),
            variables: BTreeMap::new(),
            collected: BTreeMap::new(),
            state: State::NotStarted,
            agent_turns: 0,
            last_caller_text: String::new(),
            last_digits: None,
        }
    }
}
