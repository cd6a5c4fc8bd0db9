//! String, header and address matchers shared by inbound and outbound rules.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string matcher (Istio `StringMatch`: exactly one of `exact`, `prefix`, `regex`).
///
/// Serialised as a single-key map, e.g. `{prefix: /api}`. Regexes use RE2 syntax (Rust `regex`)
/// and must match the whole string (Envoy's `safe_regex` semantics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    /// The value equals this string.
    Exact(String),
    /// The value starts with this string.
    Prefix(String),
    /// The whole value matches this RE2 regex.
    Regex(String),
}

impl StringMatch {
    /// The regex pattern, if this is a regex matcher (for validation and pre-compilation).
    pub fn regex_pattern(&self) -> Option<&str> {
        match self {
            Self::Regex(pattern) => Some(pattern),
            Self::Exact(_) | Self::Prefix(_) => None,
        }
    }
}

/// A header matcher (Istio `HTTPMatchRequest.headers` / `withoutHeaders` values).
///
/// Istio spells "the header is present, any value" as an empty `StringMatch` (`{}`); this model
/// makes it explicit: `{present: true}`. `{present: false}` means "the header is absent".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatch {
    /// The header's value equals this string.
    Exact(String),
    /// The header's value starts with this string.
    Prefix(String),
    /// The header's whole value matches this RE2 regex.
    Regex(String),
    /// `true`: the header is present with any value; `false`: the header is absent.
    Present(bool),
}

impl HeaderMatch {
    /// The regex pattern, if this is a regex matcher.
    pub fn regex_pattern(&self) -> Option<&str> {
        match self {
            Self::Regex(pattern) => Some(pattern),
            Self::Exact(_) | Self::Prefix(_) | Self::Present(_) => None,
        }
    }
}

/// An IP prefix such as `10.0.0.0/8` or `fd00::/8` (Istio `L4MatchAttributes.destinationSubnets`,
/// `AuthorizationPolicy` `ipBlocks`). A bare address means a host prefix (`/32` or `/128`).
/// Serialised as its string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    /// The network address (host bits are kept as written; matching masks them).
    pub address: IpAddr,
    /// The prefix length in bits: at most 32 for IPv4, 128 for IPv6.
    pub prefix_len: u8,
}

/// Errors from parsing a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("CIDR {0:?}: the address is not an IP address")]
    Address(String),
    /// The prefix length is not a number or is longer than the address.
    #[error("CIDR {0:?}: the prefix length must be 0-32 for IPv4 and 0-128 for IPv6")]
    PrefixLen(String),
}

impl Cidr {
    /// Whether `ip` lies inside this prefix. An IPv4 prefix never contains an IPv6 address and
    /// vice versa (IPv4-mapped IPv6 addresses are converted to IPv4 first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(text.to_owned()))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|len| *len <= max)
                .ok_or_else(|| CidrError::PrefixLen(text.to_owned()))?,
        };
        Ok(Self {
            address,
            prefix_len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> Self {
        cidr.to_string()
    }
}
