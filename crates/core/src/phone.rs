//! Phone numbers in E.164, parsed with the `phonenumber` crate (libphonenumber's metadata).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("'{0}' is not in E.164 form: it must start with '+' and the country code, digits only, e.g. +15550100000")]
    NotE164(String),
    #[error("'{0}' is not a valid phone number")]
    Invalid(String),
}

/// A phone number in canonical E.164 (`+15550100000`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts E.164 only: `+`, then 8 to 15 digits. The number must also parse as a number
    /// of a known country; the 555-01xx fiction range of the North American plan is accepted
    /// because demo and test numbers live there.
    pub fn parse(input: &str) -> Result<Self, PhoneNumberError> {
        let shown: String = input.chars().take(40).collect();
        let digits = input
            .strip_prefix('+')
            .filter(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
            .ok_or_else(|| PhoneNumberError::NotE164(shown.clone()))?;
        let parsed = phonenumber::parse(None, input).map_err(|_| PhoneNumberError::Invalid(shown.clone()))?;
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        if e164.trim_start_matches('+') != digits {
            return Err(PhoneNumberError::Invalid(shown));
        }
        // libphonenumber marks the fictional 555 area code and exchange invalid for most areas; keep it
        // usable (it is what demos and docs use) but reject other numbers it rejects.
        let fictional_nanp = digits.len() == 11 && digits.starts_with('1') && (&digits[1..4] == "555" || &digits[4..7] == "555");
        if !fictional_nanp && !phonenumber::is_valid(&parsed) {
            return Err(PhoneNumberError::Invalid(shown));
        }
        Ok(Self(e164))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = PhoneNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164() {
        for ok in ["+15550100000", "+14155552671", "+442071838750", "+33142685300", "+4930901820"] {
            assert_eq!(PhoneNumber::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
    }

    #[test]
    fn rejects_non_e164() {
        for bad in [
            "",
            "5550100000",
            "15550100000",
            "+1 555 010 0000",
            "+1-555-010-0000",
            "+0123456789",
            "+1",
            "+1234567890123456",
            "+15550100000x",
            "tel:+15550100000",
            "+999123456789",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
