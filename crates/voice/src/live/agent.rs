//! Agents as the live loop sees them: a turn in, events out (sentences to say, fields,
//! timeline entries, the end of the call).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use dialnexa_core::ConfigError;
use dialnexa_core::DisconnectionReason;
use dialnexa_core::agent::FlowAgentConfig;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::session::{FlowSession, Outcome, Step};

#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// Say this (a sentence or more).
    Say(String),
    /// A field learned from the caller's last turn (char offsets in that turn's text).
    Field {
        name: String,
        value: Value,
        confidence: f64,
        start: u32,
        end: u32,
    },
    Timeline {
        kind: String,
        detail: String,
    },
    Transfer {
        to: String,
    },
    /// Hold the caller while the transport dials `to` and briefs them; the result comes back
    /// as `Inbound::TransferResult` (the call ends `transfer`, or [`LiveAgent::transfer_failed`]).
    WarmTransfer {
        to: String,
    },
    End(DisconnectionReason),
}

/// What an agent says when a warm transfer's target did not take the call and it has no
/// other plan.
pub const TRANSFER_FAILED_LINE: &str = "I'm sorry, I couldn't reach anyone to take your call right now. We will get back to you as soon as we can. Goodbye.";

#[async_trait]
pub trait LiveAgent: Send {
    /// The agent's opening.
    async fn start(&mut self) -> mpsc::Receiver<AgentEvent>;
    /// The agent's reply to a caller turn.
    async fn reply(&mut self, caller: &str) -> mpsc::Receiver<AgentEvent>;
    /// The caller pressed keypad keys (DTMF) as their turn.
    async fn pressed(&mut self, digits: &str) -> mpsc::Receiver<AgentEvent>;
    /// The agent was cut off after saying `spoken`.
    fn interrupted(&mut self, spoken: &str);
    /// A warm transfer failed (`why`): the agent takes the caller back and says so.
    async fn transfer_failed(&mut self, _why: &str) -> mpsc::Receiver<AgentEvent> {
        let (tx, rx) = mpsc::channel(4);
        let _ = tx.try_send(AgentEvent::Say(TRANSFER_FAILED_LINE.into()));
        let _ = tx.try_send(AgentEvent::End(DisconnectionReason::AgentHangup));
        rx
    }
}

/// The flow runtime in a live call.
pub struct FlowAgent {
    session: FlowSession,
}

impl FlowAgent {
    pub fn new(config: Arc<FlowAgentConfig>, variables: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        Ok(FlowAgent { session: FlowSession::new(config, variables)? })
    }
}

fn events(step: Result<Step, crate::SessionError>, warm: bool) -> mpsc::Receiver<AgentEvent> {
    let (tx, rx) = mpsc::channel(64);
    let mut out = vec![];
    match step {
        Ok(step) => {
            for ev in step.events {
                out.push(AgentEvent::Timeline { kind: ev.kind.as_str().to_owned(), detail: ev.detail });
            }
            for f in step.fields {
                out.push(AgentEvent::Field { name: f.name, value: f.value, confidence: f.confidence, start: f.start, end: f.end });
            }
            if let Some(u) = step.utterance {
                out.push(AgentEvent::Say(u));
            }
            match step.outcome {
                // The call goes on (held) until the transfer's outcome is known.
                Outcome::Ended(crate::Ending::Transfer { to }) if warm => out.push(AgentEvent::WarmTransfer { to }),
                Outcome::Ended(ending) => {
                    if let crate::Ending::Transfer { to } = &ending {
                        out.push(AgentEvent::Transfer { to: to.clone() });
                    }
                    out.push(AgentEvent::End(ending.disconnection_reason()));
                }
                Outcome::AwaitingCaller => {}
            }
        }
        Err(e) => out.push(AgentEvent::Timeline { kind: "agent_error".into(), detail: e.to_string() }),
    }
    for ev in out {
        let _ = tx.try_send(ev);
    }
    rx
}

#[async_trait]
impl LiveAgent for FlowAgent {
    async fn start(&mut self) -> mpsc::Receiver<AgentEvent> {
        let step = self.session.start();
        events(step, self.session.warm_transfer())
    }
    async fn reply(&mut self, caller: &str) -> mpsc::Receiver<AgentEvent> {
        let step = self.session.caller_said(caller);
        events(step, self.session.warm_transfer())
    }
    async fn pressed(&mut self, digits: &str) -> mpsc::Receiver<AgentEvent> {
        let step = self.session.caller_pressed(digits);
        events(step, self.session.warm_transfer())
    }
    async fn transfer_failed(&mut self, why: &str) -> mpsc::Receiver<AgentEvent> {
        match self.session.transfer_failed(why) {
            // No plan for it in the flow: say so and end.
            Ok(step) if step.utterance.is_none() => {
                let (tx, rx) = mpsc::channel(8);
                for ev in step.events {
                    let _ = tx.try_send(AgentEvent::Timeline { kind: ev.kind.as_str().to_owned(), detail: ev.detail });
                }
                let _ = tx.try_send(AgentEvent::Say(TRANSFER_FAILED_LINE.into()));
                let _ = tx.try_send(AgentEvent::End(DisconnectionReason::AgentHangup));
                rx
            }
            step => events(step, self.session.warm_transfer()),
        }
    }
    fn interrupted(&mut self, _spoken: &str) {
        // A flow's next step does not depend on how much of the last prompt was heard.
    }
}

/// The `llm` runtime in a live call: its streamed sentences are spoken as they arrive.
pub struct LlmAgent {
    session: crate::llm_agent::LlmSession,
}

impl LlmAgent {
    pub fn new(session: crate::llm_agent::LlmSession) -> Self {
        LlmAgent { session }
    }
}

fn llm_events(turn: Result<crate::llm_agent::AgentTurn, crate::SessionError>, caller: Option<&str>) -> mpsc::Receiver<AgentEvent> {
    use crate::llm_agent::AgentEvent as L;
    let (tx, rx) = mpsc::channel(64);
    let caller_len = caller.map(|c| c.chars().count() as u32).unwrap_or(0);
    match turn {
        Err(e) => {
            let _ = tx.try_send(AgentEvent::Timeline { kind: "agent_error".into(), detail: e.to_string() });
        }
        Ok(mut turn) => {
            tokio::spawn(async move {
                while let Some(ev) = turn.recv().await {
                    let out = match ev {
                        L::Sentence(s) => Some(AgentEvent::Say(s)),
                        // The model recorded it from the caller's last turn (not a quoted span).
                        L::FieldRecorded { name, value } => Some(AgentEvent::Field { name, value, confidence: 0.7, start: 0, end: caller_len }),
                        L::ToolCalled { name, ok, detail } => Some(AgentEvent::Timeline {
                            kind: "tool_called".into(),
                            detail: format!("{name} {}: {detail}", if ok { "succeeded" } else { "failed" }),
                        }),
                        L::Transfer { to } => Some(AgentEvent::Transfer { to }),
                        L::WarmTransfer { to } => Some(AgentEvent::WarmTransfer { to }),
                        L::End { reason } => {
                            if let Some(r) = reason {
                                let _ = tx.send(AgentEvent::Timeline { kind: "end_call".into(), detail: format!("the agent ended the call: {r}") }).await;
                            }
                            Some(AgentEvent::End(DisconnectionReason::AgentHangup))
                        }
                        L::Error(e) => Some(AgentEvent::Timeline {
                            kind: "llm_error".into(),
                            detail: format!("the language model failed ({e}); the agent said its fallback line"),
                        }),
                        L::Done(outcome) => match outcome {
                            Outcome::Ended(ending) => Some(AgentEvent::End(ending.disconnection_reason())),
                            Outcome::AwaitingCaller => None,
                        },
                    };
                    if let Some(o) = out
                        && tx.send(o).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    }
    rx
}

#[async_trait]
impl LiveAgent for LlmAgent {
    async fn start(&mut self) -> mpsc::Receiver<AgentEvent> {
        llm_events(self.session.start(), None)
    }
    async fn reply(&mut self, caller: &str) -> mpsc::Receiver<AgentEvent> {
        llm_events(self.session.caller_said(caller), Some(caller))
    }
    async fn pressed(&mut self, digits: &str) -> mpsc::Receiver<AgentEvent> {
        // The model reads the keys as the caller's turn, marked as typed rather than spoken.
        let turn = format!("[keypad] the caller pressed: {digits}");
        llm_events(self.session.caller_said(&turn), Some(&turn))
    }
    fn interrupted(&mut self, spoken: &str) {
        self.session.interrupted(spoken);
    }
    async fn transfer_failed(&mut self, why: &str) -> mpsc::Receiver<AgentEvent> {
        // The model takes the caller back: it is told, as the next turn, what happened.
        let note = format!("[system] The warm transfer did not go through: {why}. Tell the caller, and help them yourself or offer a callback.");
        llm_events(self.session.caller_said(&note), None)
    }
}
