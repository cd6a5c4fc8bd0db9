//! Durations as Istio writes them: strings such as `1.5s`, `300ms` or `1h2m`.
//!
//! Istio's API uses `google.protobuf.Duration`, which Istio's JSON decoder accepts in Go's
//! `time.ParseDuration` syntax. Weft keeps the text exactly as written (so a document
//! serializes back without change) next to the parsed value.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative duration written as a Go duration string (`1.5s`, `300ms`, `2m30s`).
///
/// Serializes back to the exact text it was parsed from. Mirrors Istio's use of
/// `google.protobuf.Duration` in fields such as `HTTPRoute.timeout`.
#[derive(Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: std::time::Duration,
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not a Go duration (`<number><unit>` repeated, units ns, us, µs, ms, s, m, h).
    #[error("invalid duration {text:?}: {reason} (expected a value such as \"1.5s\" or \"300ms\")")]
    Syntax {
        /// The text that was given.
        text: String,
        /// What the Go-syntax parser said.
        reason: String,
    },
    /// Durations in the mesh API are never negative.
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
    /// Longer than Go's `time.Duration` holds (2^63 − 1 ns, about 292 years), or with a
    /// negative or non-finite part: Istio's Go decoder refuses these.
    #[error(
        "invalid duration {0:?}: out of range (at most {MAX_GO_DURATION_SECONDS} seconds, as Go's time.Duration)"
    )]
    OutOfRange(String),
}

/// The longest duration Go's `time.ParseDuration` accepts, in seconds: 2^63 − 1 ns (about 292
/// years). Istio's Go code refuses anything longer as an invalid duration.
pub const MAX_GO_DURATION_SECONDS: f64 = 9_223_372_036.854_775;

/// False when the Go duration `text` is beyond [`MAX_GO_DURATION_SECONDS`] or has a negative or
/// non-finite part; true otherwise, including for text that is not a duration at all (the
/// parser reports that). Reads the text as `kube::core::Duration::from_str` does, which panics
/// on exactly these values (`std::time::Duration::mul_f64` and `+` overflow), so it must not see
/// them. A leading sign applies to the whole value and is checked by the parser.
pub fn within_go_duration_range(text: &str) -> bool {
    let mut rest = text.trim_start_matches('+').trim_start_matches('-');
    let mut seconds = 0.0_f64;
    while !rest.is_empty() && rest != "0" {
        let Some(unit_start) = rest.find(char::is_alphabetic) else {
            return true;
        };
        let (number, tail) = rest.split_at(unit_start);
        let unit_end = tail
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let Ok(number) = number.parse::<f64>() else {
            return true;
        };
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return true,
        };
        if number.is_nan() || number < 0.0 {
            return false;
        }
        seconds += number * scale;
        rest = tail;
    }
    seconds.is_finite() && seconds <= MAX_GO_DURATION_SECONDS
}

impl Duration {
    /// Parses `text` (Go `time.ParseDuration` syntax). Errors when the syntax is wrong or the
    /// value is negative.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        Self::parse_owned(text.to_owned())
    }

    /// [`Duration::parse`] keeping the `text` it is given (no copy: deserialization hands over
    /// the string it read). Errors as [`Duration::parse`].
    fn parse_owned(text: String) -> Result<Self, DurationError> {
        if !within_go_duration_range(&text) {
            return Err(DurationError::OutOfRange(text));
        }
        let parsed = match kube::core::Duration::from_str(&text) {
            Ok(parsed) => parsed,
            Err(error) => {
                return Err(DurationError::Syntax {
                    reason: error.to_string(),
                    text,
                });
            }
        };
        if parsed.is_negative() {
            return Err(DurationError::Negative(text));
        }
        Ok(Self {
            text,
            value: parsed.into(),
        })
    }

    /// Builds a duration from a value, written in seconds with up to nanosecond precision
    /// (`1.5s`), the form Istio's own JSON encoder emits.
    pub fn from_std(value: std::time::Duration) -> Self {
        let text = if value.subsec_nanos() == 0 {
            format!("{}s", value.as_secs())
        } else {
            let frac = format!("{:09}", value.subsec_nanos());
            format!("{}.{}s", value.as_secs(), frac.trim_end_matches('0'))
        };
        Self { text, value }
    }

    /// The parsed value.
    pub fn as_std(&self) -> std::time::Duration {
        self.value
    }

    /// The text exactly as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({})", self.text)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_owned(text).map_err(de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as \"1.5s\", \"300ms\" or \"1m\" (Go duration syntax)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_and_parses_value() {
        let d = Duration::parse("1.5s").unwrap();
        assert_eq!(d.as_std(), std::time::Duration::from_millis(1500));
        assert_eq!(d.as_str(), "1.5s");
        let d = Duration::parse("2m30s").unwrap();
        assert_eq!(d.as_std(), std::time::Duration::from_secs(150));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2m30s\"");
    }

    #[test]
    fn rejects_bad_and_negative() {
        assert!(matches!(
            Duration::parse("abc"),
            Err(DurationError::Syntax { .. })
        ));
        assert!(matches!(
            Duration::parse("5"),
            Err(DurationError::Syntax { .. })
        ));
        assert!(matches!(
            Duration::parse("-1s"),
            Err(DurationError::Negative(_))
        ));
    }

    #[test]
    fn from_std_writes_seconds() {
        assert_eq!(
            Duration::from_std(std::time::Duration::from_millis(1500)).as_str(),
            "1.5s"
        );
        assert_eq!(
            Duration::from_std(std::time::Duration::from_secs(10)).as_str(),
            "10s"
        );
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn values_beyond_go_durations_are_refused_not_a_panic() {
        // Found by fuzzing the validating webhook: kube's parser panics on these.
        for text in [
            "5004444444444444444444444444444444444444444444444444444444444444us",
            "18446744073709551615s1s",
            "1s-2s",
            "2562048h",
        ] {
            assert_eq!(
                Duration::parse(text),
                Err(DurationError::OutOfRange(text.to_string())),
                "{text}"
            );
        }
        assert!(Duration::parse("2562047h").is_ok());
        assert!(Duration::parse("1.5s").is_ok());
    }
}
