//! DialNexa live conversations: the agent runtimes.
//!
//! Today: the `flow` runtime ([`FlowSession`]), driven turn by turn, and text test calls
//! ([`run_text_call`]) on a simulated speech clock.

pub mod carrier;
mod extract;
pub mod live;
pub mod llm_agent;
mod session;
pub mod speech;
mod text;
mod text_call;

#[cfg(test)]
mod tests;

pub use extract::{CONFIDENCE_EXACT, CONFIDENCE_FREE_TEXT, CONFIDENCE_SPOKEN, CONFIDENCE_UNNORMALISED_PHONE, Extraction, FieldSpec, extract};
pub use llm_agent::{AgentEvent, AgentTurn, LlmClient, LlmError, LlmSession, SentenceSplitter, TurnRecord};
pub use session::{CollectedField, Ending, FlowEvent, FlowEventKind, FlowSession, Outcome, SessionError, Step};
pub use text::NEGATION_WINDOW;
pub use text_call::{FlowTimelineEvent, TextCall, TransferInfo, clock, run_text_call};

/// The demo agent ("Support line"): a flow agent that takes a technical incident report.
/// The same JSON is the example in `docs/agents.md` (a test keeps them equal).
pub const DEMO_AGENT_CONFIG: &str = include_str!("demo_agent.json");
