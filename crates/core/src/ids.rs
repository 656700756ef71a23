//! Typed, prefixed identifiers (`call_…`, `agent_…`). The random part is a UUIDv7 in
//! simple hex, so ids sort by creation time and keyset pagination stays index-friendly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind} id (expected '{prefix}' followed by 32 hex digits)")]
pub struct IdParseError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

macro_rules! typed_id {
    ($name:ident, $prefix:literal, $kind:literal) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id, time-ordered.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn parse(value: &str) -> Result<Self, IdParseError> {
                let ok =
                    value.strip_prefix($prefix).is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                if ok { Ok(Self(value.to_owned())) } else { Err(IdParseError { kind: $kind, prefix: $prefix, value: value.chars().take(80).collect() }) }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(AgentId, "agent_", "agent");
typed_id!(CallId, "call_", "call");
typed_id!(AnnotationId, "ann_", "annotation");
typed_id!(ApiKeyId, "key_", "API key");
typed_id!(WorkItemId, "work_", "work item");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reject() {
        let id = CallId::generate();
        assert!(id.as_str().starts_with("call_"));
        assert_eq!(CallId::parse(id.as_str()).unwrap(), id);
        assert!(CallId::parse("agent_0190").is_err());
        assert!(CallId::parse("call_xyz").is_err());
        assert!(AgentId::parse(id.as_str()).is_err());
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = CallId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = CallId::generate();
        assert!(a < b);
    }
}
