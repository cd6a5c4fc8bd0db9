//! The per-pod settings read from the pod's annotations, validated before anything is built.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;

use super::InjectError;
use crate::config::{InjectionConfig, ProxyResources};
use crate::names::{
    EXCLUDE_INBOUND_PORTS, EXCLUDE_OUTBOUND_IP_RANGES, EXCLUDE_OUTBOUND_PORTS, HEALTH_PORT,
    INCLUDE_INBOUND_PORTS, INCLUDE_OUTBOUND_IP_RANGES, INCLUDE_OUTBOUND_PORTS, PROMETHEUS_PORT,
    PROXY_CONFIG, PROXY_CPU, PROXY_CPU_LIMIT, PROXY_IMAGE, PROXY_LOG_LEVEL, PROXY_MEMORY,
    PROXY_MEMORY_LIMIT, REWRITE_APP_HTTP_PROBERS, STATUS_PORT,
};

/// Log levels the proxy accepts (Istio's `sidecar.istio.io/logLevel` values).
const LOG_LEVELS: [&str; 7] = [
    "trace", "debug", "info", "warning", "error", "critical", "off",
];

/// The traffic-capture settings for `istio-init`, already validated and normalised
/// (comma-separated, no spaces). Empty strings mean "flag not given".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capture {
    pub include_outbound_ip_ranges: String,
    pub exclude_outbound_ip_ranges: String,
    pub include_inbound_ports: String,
    /// Always holds the proxy's own ports 15020, 15021 and 15090, plus the pod's.
    pub exclude_inbound_ports: String,
    pub include_outbound_ports: String,
    pub exclude_outbound_ports: String,
}

/// The subset of Istio's `ProxyConfig` that `proxy.istio.io/config` may set for one pod.
/// Unknown fields are ignored (Istio has many that Weft does not implement); known fields with
/// the wrong type are an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProxyConfigOverrides {
    /// Worker threads (`ProxyConfig.concurrency`); 0 means one per CPU.
    pub concurrency: Option<u32>,
    /// Go duration (`ProxyConfig.terminationDrainDuration`), validated.
    pub termination_drain_duration: Option<String>,
    /// `ProxyConfig.holdApplicationUntilProxyStarts`.
    pub hold_application_until_proxy_starts: Option<bool>,
    /// `ProxyConfig.discoveryAddress`.
    pub discovery_address: Option<String>,
    /// `ProxyConfig.proxyMetadata`: extra environment variables on the proxy.
    #[serde(default)]
    pub proxy_metadata: BTreeMap<String, String>,
}

/// Everything about one pod's injection that its annotations can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodSettings {
    pub image: String,
    pub log_level: String,
    pub resources: ProxyResources,
    pub rewrite_app_http_probers: bool,
    pub hold_application: bool,
    pub discovery_address: String,
    pub concurrency: Option<u32>,
    pub termination_drain_duration: Option<String>,
    pub proxy_metadata: BTreeMap<String, String>,
    pub capture: Capture,
}

fn invalid(annotation: &'static str, value: &str, reason: impl Into<String>) -> InjectError {
    InjectError::InvalidAnnotation {
        annotation,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl PodSettings {
    /// Reads and validates every annotation the injector understands, falling back to
    /// `config`. Errors name the first annotation whose value is invalid.
    pub(crate) fn read(
        annotations: &BTreeMap<String, String>,
        config: &InjectionConfig,
    ) -> Result<Self, InjectError> {
        let get = |name: &str| annotations.get(name).map(String::as_str);
        let overrides = match get(PROXY_CONFIG) {
            Some(text) => parse_proxy_config(text)?,
            None => ProxyConfigOverrides::default(),
        };
        let log_level = match get(PROXY_LOG_LEVEL) {
            Some(level) if LOG_LEVELS.contains(&level) => level.to_string(),
            Some(level) => {
                return Err(invalid(
                    PROXY_LOG_LEVEL,
                    level,
                    format!("expected one of {LOG_LEVELS:?}"),
                ));
            }
            None => config.log_level.clone(),
        };
        let rewrite_app_http_probers = match get(REWRITE_APP_HTTP_PROBERS) {
            Some(value) => parse_bool(value).ok_or_else(|| {
                invalid(REWRITE_APP_HTTP_PROBERS, value, "expected true or false")
            })?,
            None => config.rewrite_app_http_probers,
        };
        let quantity = |name: &'static str, default: &Option<String>| match get(name) {
            Some(value) => validate_quantity(value)
                .map(|()| Some(value.to_string()))
                .map_err(|reason| invalid(name, value, reason)),
            None => Ok(default.clone()),
        };
        let defaults = &config.resources;
        let resources = ProxyResources {
            cpu_request: quantity(PROXY_CPU, &defaults.cpu_request)?,
            memory_request: quantity(PROXY_MEMORY, &defaults.memory_request)?,
            cpu_limit: quantity(PROXY_CPU_LIMIT, &defaults.cpu_limit)?,
            memory_limit: quantity(PROXY_MEMORY_LIMIT, &defaults.memory_limit)?,
        };
        let image = match get(PROXY_IMAGE) {
            Some(image) if !image.trim().is_empty() => image.trim().to_string(),
            Some(image) => return Err(invalid(PROXY_IMAGE, image, "must not be empty")),
            None => config.proxy_image.clone(),
        };
        let ports = |name: &'static str, allow_star: bool| match get(name) {
            Some(value) => {
                port_list(value, allow_star).map_err(|reason| invalid(name, value, reason))
            }
            None => Ok(Vec::new()),
        };
        let ranges = |name: &'static str, allow_star: bool| match get(name) {
            Some(value) => {
                cidr_list(value, allow_star).map_err(|reason| invalid(name, value, reason))
            }
            None => Ok(Vec::new()),
        };
        let mut include_outbound_ip_ranges = ranges(INCLUDE_OUTBOUND_IP_RANGES, true)?;
        if get(INCLUDE_OUTBOUND_IP_RANGES).is_none() {
            include_outbound_ip_ranges.push("*".to_string());
        }
        let mut include_inbound_ports = ports(INCLUDE_INBOUND_PORTS, true)?;
        if get(INCLUDE_INBOUND_PORTS).is_none() {
            include_inbound_ports.push("*".to_string());
        }
        let mut exclude_inbound: BTreeSet<u16> =
            BTreeSet::from([STATUS_PORT, HEALTH_PORT, PROMETHEUS_PORT]);
        for port in ports(EXCLUDE_INBOUND_PORTS, false)? {
            // `port_list` without `*` only yields numbers; skip anything else defensively.
            if let Ok(port) = port.parse::<u16>() {
                exclude_inbound.insert(port);
            }
        }
        let capture = Capture {
            include_outbound_ip_ranges: include_outbound_ip_ranges.join(","),
            exclude_outbound_ip_ranges: ranges(EXCLUDE_OUTBOUND_IP_RANGES, false)?.join(","),
            include_inbound_ports: include_inbound_ports.join(","),
            exclude_inbound_ports: exclude_inbound
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
            include_outbound_ports: ports(INCLUDE_OUTBOUND_PORTS, false)?.join(","),
            exclude_outbound_ports: ports(EXCLUDE_OUTBOUND_PORTS, false)?.join(","),
        };
        Ok(Self {
            image,
            log_level,
            resources,
            rewrite_app_http_probers,
            hold_application: overrides
                .hold_application_until_proxy_starts
                .unwrap_or(config.hold_application_until_proxy_starts),
            discovery_address: overrides
                .discovery_address
                .unwrap_or_else(|| config.discovery_address.clone()),
            concurrency: overrides.concurrency,
            termination_drain_duration: overrides.termination_drain_duration,
            proxy_metadata: overrides.proxy_metadata,
            capture,
        })
    }
}

/// Parses Go's `strconv.ParseBool` spellings, as Istio does for boolean annotations.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `proxy.istio.io/config` (YAML or JSON). An empty value is an empty config.
fn parse_proxy_config(text: &str) -> Result<ProxyConfigOverrides, InjectError> {
    if text.trim().is_empty() {
        return Ok(ProxyConfigOverrides::default());
    }
    let parsed: ProxyConfigOverrides = serde_yaml::from_str(text)
        .map_err(|e| invalid(PROXY_CONFIG, text, format!("not a ProxyConfig: {e}")))?;
    if let Some(duration) = &parsed.termination_drain_duration {
        if !weft_crds::duration::within_go_duration_range(duration) {
            return Err(invalid(
                PROXY_CONFIG,
                text,
                format!(
                    "terminationDrainDuration {duration:?} is out of range (at most \
                     {} seconds, as Go's time.Duration)",
                    weft_crds::duration::MAX_GO_DURATION_SECONDS
                ),
            ));
        }
        let value = kube::core::Duration::from_str(duration).map_err(|e| {
            invalid(
                PROXY_CONFIG,
                text,
                format!("terminationDrainDuration {duration:?}: {e}"),
            )
        })?;
        if value.is_negative() {
            return Err(invalid(
                PROXY_CONFIG,
                text,
                format!("terminationDrainDuration {duration:?} must not be negative"),
            ));
        }
    }
    if parsed
        .discovery_address
        .as_deref()
        .is_some_and(|a| a.trim().is_empty())
    {
        return Err(invalid(
            PROXY_CONFIG,
            text,
            "discoveryAddress must not be empty",
        ));
    }
    Ok(parsed)
}

/// Splits a comma-separated list, trimming spaces and dropping empty items (Istio's
/// `splitPorts`/`splitIPs` tolerate `"80, 443,"`).
fn items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Validates a comma-separated list of ports (1-65535), or `*` alone when `allow_star`.
fn port_list(value: &str, allow_star: bool) -> Result<Vec<String>, String> {
    if allow_star && value.trim() == "*" {
        return Ok(vec!["*".to_string()]);
    }
    items(value)
        .map(|item| match item.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port.to_string()),
            _ => Err(format!("{item:?} is not a port number (1-65535)")),
        })
        .collect()
}

/// Validates a comma-separated list of CIDRs (`10.0.0.0/8`, `fd00::/8`), or `*` alone when
/// `allow_star`.
fn cidr_list(value: &str, allow_star: bool) -> Result<Vec<String>, String> {
    if allow_star && value.trim() == "*" {
        return Ok(vec!["*".to_string()]);
    }
    items(value)
        .map(|item| {
            let bad = || format!("{item:?} is not a CIDR such as 10.0.0.0/8");
            let (addr, len) = item.split_once('/').ok_or_else(bad)?;
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(format!("{item:?}: prefix length {len} exceeds {max}"));
            }
            Ok(item.to_string())
        })
        .collect()
}

/// Checks a non-negative Kubernetes quantity: a decimal number followed by an optional binary
/// (`Ki`..`Ei`) or decimal (`n`, `u`, `m`, `k`, `M`..`E`) suffix or exponent (`1e3`), as in
/// `k8s.io/apimachinery` `resource.ParseQuantity`.
fn validate_quantity(value: &str) -> Result<(), String> {
    let bad = || format!("{value:?} is not a Kubernetes quantity such as 100m or 128Mi");
    let number_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(number_end);
    let digits = number.strip_prefix('+').unwrap_or(number);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let numeric = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !numeric(whole) || !numeric(fraction) {
        return Err(bad());
    }
    const SUFFIXES: [&str; 16] = [
        "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let exponent_ok = |s: &str| {
        let rest = s
            .strip_prefix(['e', 'E'])
            .map(|r| r.strip_prefix(['+', '-']).unwrap_or(r));
        rest.is_some_and(|r| !r.is_empty() && numeric(r))
    };
    if SUFFIXES.contains(&suffix) || exponent_ok(suffix) {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_kubernetes_syntax() {
        for ok in ["100m", "1", "0.5", "128Mi", "1Gi", "2e3", "1.5G", "+1"] {
            assert_eq!(validate_quantity(ok), Ok(()), "{ok}");
        }
        for bad in ["", "m", "-1", "1.2.3", "12MB", "abc", "1e", "."] {
            assert!(validate_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_lists_reject_out_of_range_and_star_where_not_allowed() {
        assert_eq!(port_list(" 80, 443,", false).unwrap(), ["80", "443"]);
        assert_eq!(port_list("*", true).unwrap(), ["*"]);
        assert!(port_list("*", false).is_err());
        assert!(port_list("0", false).is_err());
        assert!(port_list("70000", false).is_err());
        assert!(port_list("http", false).is_err());
    }

    #[test]
    fn cidr_lists_require_prefix_lengths_in_range() {
        assert_eq!(
            cidr_list("10.0.0.0/8, fd00::/8", false).unwrap(),
            ["10.0.0.0/8", "fd00::/8"]
        );
        assert!(cidr_list("10.0.0.1", false).is_err());
        assert!(cidr_list("10.0.0.0/33", false).is_err());
        assert!(cidr_list("*", false).is_err());
        assert_eq!(cidr_list("*", true).unwrap(), ["*"]);
    }

    #[test]
    fn proxy_config_parses_supported_fields_and_ignores_unknown_ones() {
        let parsed = parse_proxy_config(
            "concurrency: 2\nterminationDrainDuration: 10s\nholdApplicationUntilProxyStarts: true\ntracing: {}\n",
        )
        .unwrap();
        assert_eq!(parsed.concurrency, Some(2));
        assert_eq!(parsed.termination_drain_duration.as_deref(), Some("10s"));
        assert_eq!(parsed.hold_application_until_proxy_starts, Some(true));
    }

    #[test]
    fn proxy_config_errors_name_the_annotation() {
        for bad in [
            "concurrency: many",
            "terminationDrainDuration: soon",
            "[1, 2]",
        ] {
            let err = parse_proxy_config(bad).unwrap_err();
            assert!(err.to_string().contains(PROXY_CONFIG), "{err}");
        }
    }
}
