//! The carrier seam: how DialNexa speaks to a phone network.
//!
//! A [`Carrier`] verifies and parses the carrier's webhooks, writes the documents that answer
//! them (TwiML for Twilio), controls live calls through the carrier's REST API, and names the
//! dialect of its media stream ([`MediaDialect`]). The turn loop never sees any of it: a media
//! session turns the dialect's frames into [`crate::live::Inbound`] and the loop's
//! [`crate::live::Outbound`] back into frames. Twilio is the first implementation
//! ([`twilio`]); Telnyx, Plivo or a SIP gateway are other implementations of the same traits.

pub mod mulaw;
pub mod twilio;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use twilio::{Twilio, TwilioMedia};

/// A carrier's call status, as the carrier names it (kept apart from DialNexa's own status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
    /// A value this version does not know: never terminal.
    Other(String),
}

impl CarrierStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "in-progress" | "answered" => Self::InProgress,
            "completed" => Self::Completed,
            "busy" => Self::Busy,
            "no-answer" => Self::NoAnswer,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            other => Self::Other(other.chars().take(40).collect()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Other(s) => s,
        }
    }
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Busy | Self::NoAnswer | Self::Failed | Self::Canceled)
    }
    /// Progress order: callbacks can repeat or arrive out of order, and a status never moves
    /// back (a terminal one never changes).
    pub fn rank(&self) -> u8 {
        match self {
            Self::Other(_) => 0,
            Self::Queued => 1,
            Self::Initiated => 2,
            Self::Ringing => 3,
            Self::InProgress => 4,
            _ => 5,
        }
    }
}

/// Who answered, from the carrier's machine detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    Human,
    Machine,
    Unknown,
}

impl AnsweredBy {
    /// Twilio's values: `human`, `machine_start`, `machine_end_beep`, `machine_end_silence`,
    /// `machine_end_other`, `fax`, `unknown`.
    pub fn parse(s: &str) -> Self {
        match s {
            "human" => Self::Human,
            s if s.starts_with("machine") || s == "fax" => Self::Machine,
            _ => Self::Unknown,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Machine => "machine",
            Self::Unknown => "unknown",
        }
    }
}

/// One webhook or status callback, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub call_sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    pub status: CarrierStatus,
    /// `inbound`, `outbound-api`, `outbound-dial`.
    pub direction: String,
    /// The carrier's raw machine-detection answer (`machine_end_beep`, ...).
    pub answered_by: Option<String>,
    pub duration_secs: Option<u64>,
    pub sequence: Option<u64>,
    /// For the answer to a `<Dial action>`: how the dialed leg went.
    pub dial_status: Option<CarrierStatus>,
    pub dial_call_sid: Option<String>,
}

impl CallEvent {
    pub fn answered_by(&self) -> Option<AnsweredBy> {
        self.answered_by.as_deref().map(AnsweredBy::parse)
    }
    /// The machine-detection answer waited for the end of the greeting (the beep).
    pub fn message_ended(&self) -> bool {
        self.answered_by.as_deref().is_some_and(|a| a.starts_with("machine_end"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    #[error("the carrier could not be reached: {0}")]
    Unreachable(String),
    /// The carrier answered an error (its status, code and message).
    #[error("the carrier refused the request ({status}{}): {message}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Refused { status: u16, code: Option<i64>, message: String },
    #[error("the carrier's answer could not be read: {0}")]
    Protocol(String),
    #[error("a webhook field is missing or malformed: {0}")]
    BadWebhook(String),
    #[error("telephony is not configured: {0}")]
    NotConfigured(String),
}

/// Machine detection asked of the carrier for an outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineDetection {
    /// Decide as soon as possible (`machine_start` for a machine).
    Enable,
    /// Wait for the end of the greeting (the beep) before connecting.
    DetectMessageEnd,
}

/// Place a call.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundCall {
    pub to: String,
    pub from: String,
    /// The voice webhook the carrier requests once the callee answers.
    pub url: String,
    pub status_callback: String,
    pub machine_detection: Option<MachineDetection>,
    /// How long to ring before `no-answer`.
    pub ring_timeout_secs: u32,
    /// The same token on a retried request creates the call once.
    pub idempotency_token: String,
}

/// A call as the carrier's REST API describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierCall {
    pub sid: String,
    pub status: CarrierStatus,
    pub answered_by: Option<String>,
    pub duration_secs: Option<u64>,
}

/// A transfer target.
#[derive(Debug, Clone, PartialEq)]
pub struct DialTarget {
    pub to: String,
    pub caller_id: Option<String>,
    /// Requested when the dialed leg ends (its status decides what the caller hears next).
    pub action: Option<String>,
    pub timeout_secs: u32,
}

/// Media on the wire: the carrier's frames in, ours out.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaIn {
    Connected,
    Start {
        stream_sid: String,
        call_sid: String,
        parameters: BTreeMap<String, String>,
    },
    /// Caller audio, 16-bit PCM at the dialect's rate.
    Audio(Vec<i16>),
    Dtmf(char),
    /// A mark we sent came back: the audio before it has played (or was cleared).
    Mark(String),
    Stop,
}

/// A carrier's media-stream dialect (Twilio Media Streams, Telnyx, Vonage, ...).
pub trait MediaDialect: Send {
    /// The PCM rate of its audio.
    fn rate(&self) -> u32;
    /// One text frame in; an error says what is wrong with it (the call is not ended for one bad frame).
    fn parse(&mut self, text: &str) -> Result<MediaIn, String>;
    /// Audio out (PCM at [`Self::rate`]); several frames when long.
    fn audio(&self, pcm: &[i16]) -> Vec<String>;
    fn mark(&self, name: &str) -> String;
    fn clear(&self) -> String;
}

/// The carrier: webhooks, the documents that answer them, and call control.
#[async_trait]
pub trait Carrier: Send + Sync {
    /// `twilio`: the path segment of its webhooks (`/telephony/twilio/...`) and evidence.
    fn name(&self) -> &'static str;
    /// The webhook's signature check: `url` exactly as the carrier requested it, the form
    /// parameters, and the signature header. Constant time.
    fn verify(&self, url: &str, params: &[(String, String)], signature: Option<&str>) -> bool;
    fn parse_event(&self, params: &[(String, String)]) -> Result<CallEvent, CarrierError>;
    fn content_type(&self) -> &'static str;
    /// Connect the call's audio to our media WebSocket; `parameters` come back in its start frame.
    fn stream(&self, ws_url: &str, parameters: &[(&str, &str)]) -> String;
    /// Refuse the call (it is not answered and not billed).
    fn reject(&self) -> String;
    /// Say this, then hang up.
    fn say_hangup(&self, text: &str) -> String;
    /// Bridge the call to a number (a cold transfer).
    fn dial(&self, target: &DialTarget) -> String;
    /// Hang up.
    fn hangup_document(&self) -> String;
    /// Say this, then fetch `next` for what follows (a warm transfer's briefing).
    fn say_then(&self, text: &str, next: &str) -> String;
    /// Join the conference `name`; it ends when this participant leaves.
    fn conference(&self, name: &str) -> String;
    fn media(&self) -> Box<dyn MediaDialect>;

    async fn create_call(&self, call: &OutboundCall) -> Result<CarrierCall, CarrierError>;
    async fn fetch_call(&self, sid: &str) -> Result<CarrierCall, CarrierError>;
    /// Replace what a live call is doing with a document (a transfer); its media stream ends.
    async fn redirect(&self, sid: &str, document: &str) -> Result<(), CarrierError>;
    /// End the call (`completed`), answered or not.
    async fn hangup(&self, sid: &str) -> Result<(), CarrierError>;
}
