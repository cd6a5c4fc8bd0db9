//! Load-balancing and connection settings of a cluster that mirror nested Istio messages:
//! locality load balancing (`LocalityLoadBalancerSetting`), slow start (`WarmupConfiguration`)
//! and TCP keepalive (`ConnectionPoolSettings.TCPSettings.TcpKeepalive`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Locality load balancing of a cluster (Istio `LocalityLoadBalancerSetting`). The proxy
/// applies it against its own locality ([`crate::Node::locality`]) and labels, as Istio's
/// Pilot does per proxy when it builds endpoints:
///
/// - `enabled: false`: endpoints are balanced regardless of locality.
/// - `distribute` (when a rule's `from` matches the proxy): traffic is split over the
///   localities of `to` by weight; endpoints of other localities get none. Applies without
///   outlier detection.
/// - otherwise, with outlier detection only (Istio: "failover needs outlier detection"),
///   endpoints get priorities: by `failover_priority` labels when set (then by `failover`
///   too when that is set), else by locality — same region/zone/sub-zone first, then same
///   zone, same region, the `failover` region for the proxy's region, anywhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityLbSetting {
    /// `enabled` (default true).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// `distribute`: per source locality, the traffic weights of destination localities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// `failover`: the region each source region fails over to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// `failoverPriority`: labels, most important first, each `key` or `key=value` (the value
    /// to match instead of the proxy's own). The topology labels
    /// `topology.kubernetes.io/region`, `topology.kubernetes.io/zone` and
    /// `topology.istio.io/subzone` read the proxy's and endpoints' localities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
}

fn default_enabled() -> bool {
    true
}

impl Default for LocalityLbSetting {
    /// Istio's mesh default: enabled, no rules.
    fn default() -> Self {
        Self {
            enabled: true,
            distribute: Vec::new(),
            failover: Vec::new(),
            failover_priority: Vec::new(),
        }
    }
}

/// One `distribute` rule (Istio `LocalityLoadBalancerSetting.Distribute`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityDistribute {
    /// The source locality pattern, `region/zone/sub-zone`, `*` matching any segment (see
    /// [`crate::Locality::matches`]).
    pub from: String,
    /// Destination locality patterns and their weights (Istio: adding up to 100).
    pub to: BTreeMap<String, u32>,
}

/// One `failover` rule (Istio `LocalityLoadBalancerSetting.Failover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityFailover {
    /// The source region.
    pub from: String,
    /// The region traffic fails over to when `from`'s endpoints are unhealthy.
    pub to: String,
}

/// Istio's default `warmup.minimumPercent` (Envoy's `slow_start_config.min_weight_percent`).
pub const DEFAULT_WARMUP_MINIMUM_PERCENT: f64 = 10.0;
/// Istio's default `warmup.aggression` (Envoy's `slow_start_config.aggression`): linear.
pub const DEFAULT_WARMUP_AGGRESSION: f64 = 1.0;

/// Slow start of new endpoints (Istio `WarmupConfiguration`, Envoy `slow_start_config`): an
/// endpoint that joined the cluster `t` ms ago, with `t < duration_ms`, has weight
/// `weight × max(minimum_percent / 100, (max(t, 1 s) / duration) ^ (1 / aggression))`.
/// Only `ROUND_ROBIN` and `LEAST_REQUEST` clusters use it (Istio's rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// `duration` (or `warmupDurationSecs`) in ms: the slow-start window.
    pub duration_ms: u64,
    /// `minimumPercent`, 0–100 (default 10).
    #[serde(default = "default_minimum_percent")]
    pub minimum_percent: f64,
    /// `aggression`, at least 1 (default 1.0, linear).
    #[serde(default = "default_aggression")]
    pub aggression: f64,
}

fn default_minimum_percent() -> f64 {
    DEFAULT_WARMUP_MINIMUM_PERCENT
}

fn default_aggression() -> f64 {
    DEFAULT_WARMUP_AGGRESSION
}

impl Warmup {
    /// The share (0–1) of its weight an endpoint has `elapsed_ms` after joining: 1 once the
    /// window is over, else Envoy's time factor `max(elapsed, 1 s) / window` raised to
    /// `1 / aggression`, at least `minimum_percent / 100`. An aggression below 1 is read as 1
    /// and a minimum outside 0–100 is clamped.
    pub fn weight_factor(&self, elapsed_ms: u64) -> f64 {
        if elapsed_ms >= self.duration_ms {
            return 1.0;
        }
        let time_factor = elapsed_ms.max(1_000) as f64 / self.duration_ms as f64;
        let ramp = time_factor.min(1.0).powf(1.0 / self.aggression.max(1.0));
        ramp.max(self.minimum_percent.clamp(0.0, 100.0) / 100.0)
    }
}

/// TCP keepalive of upstream sockets (Istio `TCPSettings.TcpKeepalive`); unset fields keep
/// the operating system's defaults (Linux: 9 probes, 2 h, 75 s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpKeepalive {
    /// `probes`: unanswered probes before the connection is dead (`TCP_KEEPCNT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// `time` in ms: idle time before the first probe (`TCP_KEEPIDLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    /// `interval` in ms: time between probes (`TCP_KEEPINTVL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warmup(duration_ms: u64, minimum_percent: f64, aggression: f64) -> Warmup {
        Warmup {
            duration_ms,
            minimum_percent,
            aggression,
        }
    }

    #[test]
    fn warmup_ramps_linearly_from_the_minimum_to_full_weight() {
        let linear = warmup(100_000, 10.0, 1.0);
        // Envoy counts at least one second, so the first second sits at the minimum.
        assert_eq!(linear.weight_factor(0), 0.1);
        assert_eq!(linear.weight_factor(5_000), 0.1);
        assert!((linear.weight_factor(50_000) - 0.5).abs() < 1e-9);
        assert!((linear.weight_factor(99_000) - 0.99).abs() < 1e-9);
        assert_eq!(linear.weight_factor(100_000), 1.0);
        assert_eq!(linear.weight_factor(u64::MAX), 1.0);
    }

    #[test]
    fn aggression_speeds_the_ramp_and_minimum_is_a_floor() {
        let aggressive = warmup(100_000, 0.0, 2.0);
        // (0.25)^(1/2) = 0.5: a higher aggression gives more weight early (Envoy's curve).
        assert!((aggressive.weight_factor(25_000) - 0.5).abs() < 1e-9);
        assert!((aggressive.weight_factor(1_000) - 0.1).abs() < 1e-9);
        let floor = warmup(100_000, 30.0, 1.0);
        assert_eq!(floor.weight_factor(20_000), 0.3);
        assert!((floor.weight_factor(40_000) - 0.4).abs() < 1e-9);
        // Out-of-range inputs are clamped rather than producing weights above 1 or NaN.
        let odd = warmup(10_000, 250.0, 0.0);
        assert_eq!(odd.weight_factor(5_000), 1.0);
    }

    #[test]
    fn defaults_are_istios() {
        let parsed: Warmup = serde_yaml::from_str("duration_ms: 60000").unwrap();
        assert_eq!(parsed, warmup(60_000, 10.0, 1.0));
        let setting: LocalityLbSetting = serde_yaml::from_str("{}").unwrap();
        assert_eq!(setting, LocalityLbSetting::default());
        assert!(setting.enabled);
        let text = serde_json::to_string(&LocalityLbSetting::default()).unwrap();
        assert_eq!(text, r#"{"enabled":true}"#);
    }
}
