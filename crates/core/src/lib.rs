//! DialNexa's domain: the words of DESIGN.md §2 as types, and the rules that need no I/O.
//!
//! Nothing here touches a database, the network or the clock: time is passed in.

pub mod agent;
pub mod analysis;
pub mod call;
pub mod entry;
pub mod evidence;
pub mod flow;
pub mod hash;
pub mod ids;
pub mod phone;
pub mod retry;
pub mod route;

pub use agent::{AgentConfig, ConfigError};
pub use call::{CallStatus, DisconnectionReason, IllegalTransition};
pub use entry::{Direction, EntryPoint};
pub use evidence::{Annotation, AnnotationKind, ExtractedField, Role, Span, TimelineEvent, TranscriptTurn};
pub use ids::{AgentId, AnnotationId, ApiKeyId, CallId, WorkItemId};
pub use phone::{PhoneNumber, PhoneNumberError};
pub use retry::{RetryDelay, RetryHint, RetrySchedule};
