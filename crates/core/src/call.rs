//! The call state machine and the vocabulary of how calls end.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `registered → ringing → ongoing → ended`, or `not_connected` / `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Registered,
    Ringing,
    Ongoing,
    Ended,
    NotConnected,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a call cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: CallStatus,
    pub to: CallStatus,
}

impl CallStatus {
    pub const ALL: [CallStatus; 6] = [Self::Registered, Self::Ringing, Self::Ongoing, Self::Ended, Self::NotConnected, Self::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Ringing => "ringing",
            Self::Ongoing => "ongoing",
            Self::Ended => "ended",
            Self::NotConnected => "not_connected",
            Self::Error => "error",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Ended | Self::NotConnected | Self::Error)
    }

    /// The only legal moves. Web and test calls skip `ringing`; a call that never
    /// connected is `not_connected`; anything still open can fail into `error`.
    pub fn can_become(self, to: CallStatus) -> bool {
        use CallStatus::*;
        matches!(
            (self, to),
            (Registered, Ringing)
                | (Registered, Ongoing)
                | (Registered, NotConnected)
                | (Ringing, Ongoing)
                | (Ringing, NotConnected)
                | (Ongoing, Ended)
                | (Registered | Ringing | Ongoing, Error)
        )
    }

    pub fn transition(self, to: CallStatus) -> Result<CallStatus, IllegalTransition> {
        if self.can_become(to) { Ok(to) } else { Err(IllegalTransition { from: self, to }) }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CallStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown call status '{}'", s.chars().take(40).collect::<String>()))
    }
}

/// Who or what ended the call. A small, stable vocabulary: the API, exports and
/// rules name these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectionReason {
    /// The caller hung up (for test calls: the caller script ran out).
    UserHangup,
    /// The agent ended the call (an `end` node, or the end-call tool).
    AgentHangup,
    /// The agent transferred the call.
    Transfer,
    NoAnswer,
    Busy,
    /// The maximum call duration was reached.
    MaxDuration,
    /// The agent reached its bound on turns (a flow that would otherwise loop).
    MaxTurns,
    SilenceTimeout,
    TerminatedByApi,
    /// Inbound call to a number with no route (no inbound agent, inactive number ...).
    NoRoute,
    DialFailed,
    ErrorAsr,
    ErrorTts,
    ErrorLlm,
    ErrorNoAudio,
    /// The caller's side broke the media protocol (audio far ahead of real time, an oversized frame).
    ErrorProtocol,
    ErrorInternal,
    /// An outbound call reached voicemail or an answering machine (the agent's voicemail
    /// policy then hung up, or left its message and hung up).
    VoicemailReached,
    /// The carrier's media stream broke off mid-call (no `stop`, no close): the call's audio path was lost.
    ErrorMediaDropped,
}

impl DisconnectionReason {
    pub const ALL: [DisconnectionReason; 19] = [
        Self::UserHangup,
        Self::AgentHangup,
        Self::Transfer,
        Self::NoAnswer,
        Self::Busy,
        Self::MaxDuration,
        Self::MaxTurns,
        Self::SilenceTimeout,
        Self::TerminatedByApi,
        Self::NoRoute,
        Self::DialFailed,
        Self::ErrorAsr,
        Self::ErrorTts,
        Self::ErrorLlm,
        Self::ErrorNoAudio,
        Self::ErrorProtocol,
        Self::ErrorInternal,
        Self::VoicemailReached,
        Self::ErrorMediaDropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserHangup => "user_hangup",
            Self::AgentHangup => "agent_hangup",
            Self::Transfer => "transfer",
            Self::NoAnswer => "no_answer",
            Self::Busy => "busy",
            Self::MaxDuration => "max_duration",
            Self::MaxTurns => "max_turns",
            Self::SilenceTimeout => "silence_timeout",
            Self::TerminatedByApi => "terminated_by_api",
            Self::NoRoute => "no_route",
            Self::DialFailed => "dial_failed",
            Self::ErrorAsr => "error_asr",
            Self::ErrorTts => "error_tts",
            Self::ErrorLlm => "error_llm",
            Self::ErrorNoAudio => "error_no_audio",
            Self::ErrorProtocol => "error_protocol",
            Self::ErrorInternal => "error_internal",
            Self::VoicemailReached => "voicemail_reached",
            Self::ErrorMediaDropped => "error_media_dropped",
        }
    }

    /// Who ended it: `caller`, `agent`, `platform`, `provider` or `config`.
    pub fn owner(self) -> &'static str {
        match self {
            Self::UserHangup | Self::NoAnswer | Self::Busy | Self::ErrorProtocol | Self::VoicemailReached => "caller",
            Self::AgentHangup | Self::Transfer => "agent",
            Self::MaxDuration | Self::MaxTurns | Self::SilenceTimeout | Self::TerminatedByApi | Self::ErrorInternal => "platform",
            Self::DialFailed | Self::ErrorAsr | Self::ErrorTts | Self::ErrorLlm | Self::ErrorNoAudio | Self::ErrorMediaDropped => "provider",
            Self::NoRoute => "config",
        }
    }

    /// The status a call ends in for this reason.
    pub fn final_status(self) -> CallStatus {
        match self {
            Self::NoAnswer | Self::Busy | Self::DialFailed | Self::NoRoute => CallStatus::NotConnected,
            Self::ErrorAsr | Self::ErrorTts | Self::ErrorLlm | Self::ErrorNoAudio | Self::ErrorProtocol | Self::ErrorInternal | Self::ErrorMediaDropped => {
                CallStatus::Error
            }
            _ => CallStatus::Ended,
        }
    }
}

impl fmt::Display for DisconnectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DisconnectionReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown disconnection reason '{}'", s.chars().take(40).collect::<String>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallStatus::*;

    #[test]
    fn legal_paths() {
        assert_eq!(Registered.transition(Ringing).and_then(|s| s.transition(Ongoing)).and_then(|s| s.transition(Ended)), Ok(Ended));
        assert_eq!(Registered.transition(Ongoing), Ok(Ongoing));
        assert_eq!(Ringing.transition(NotConnected), Ok(NotConnected));
        assert_eq!(Ongoing.transition(Error), Ok(Error));
    }

    #[test]
    fn illegal_transitions_are_refused() {
        for from in CallStatus::ALL {
            for to in CallStatus::ALL {
                let legal = from.can_become(to);
                if from.is_terminal() {
                    assert!(!legal, "{from} is terminal but may become {to}");
                }
                assert_eq!(from.transition(to).is_ok(), legal);
            }
        }
        assert_eq!(Ended.transition(Ongoing), Err(IllegalTransition { from: Ended, to: Ongoing }));
        assert!(Ongoing.transition(Ringing).is_err());
        assert!(Ongoing.transition(NotConnected).is_err());
        assert!(Ringing.transition(Registered).is_err());
    }

    #[test]
    fn reasons_round_trip_and_end_in_a_terminal_status() {
        for r in DisconnectionReason::ALL {
            assert_eq!(r.as_str().parse::<DisconnectionReason>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.as_str()));
            assert!(r.final_status().is_terminal());
        }
    }
}
