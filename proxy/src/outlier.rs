//! Passive health checking (Istio `OutlierDetection`, Envoy's outlier detector in its
//! consecutive-errors modes): an endpoint that returns too many 5xx (or gateway errors) in a row
//! is ejected from load balancing for `base_ejection_time × times ejected` (capped at 300 s, as
//! Envoy's `max_ejection_time`), never more than `max_ejection_percent` of the endpoints (but
//! always at least one), and ejections are ignored while fewer than `min_health_percent` of the
//! endpoints are healthy.
//!
//! Locally originated errors (connect failure, reset, per-try timeout) count as gateway errors
//! (Envoy maps them to 503) unless `split_external_local_origin_errors` is on; then they count
//! only toward `consecutive_local_origin_failures` (Envoy's default 5), and upstream 5xx only
//! toward the 5xx and gateway thresholds. Lock-free: per-endpoint atomics.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use weft_proxy_config::OutlierDetection;

/// Envoy's default `max_ejection_time`.
const MAX_EJECTION: Duration = Duration::from_secs(300);
/// Envoy's default `consecutive_5xx` when the policy does not set it.
const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
/// Envoy's default `consecutive_local_origin_failure` when the policy does not set it.
const DEFAULT_CONSECUTIVE_LOCAL_ORIGIN: u32 = 5;

/// The compiled policy of one cluster.
#[derive(Debug, Clone)]
pub struct OutlierPolicy {
    /// Eject after this many consecutive 5xx (0: off). Istio's unset means Envoy's default 5.
    pub consecutive_5xx: u32,
    /// Eject after this many consecutive 502/503/504 or local errors (0 or unset: off).
    pub consecutive_gateway: u32,
    /// Whether local-origin failures are counted apart (`split_external_local_origin_errors`).
    pub split_local_origin: bool,
    /// With `split_local_origin`: eject after this many consecutive local-origin failures
    /// (0: off).
    pub consecutive_local_origin: u32,
    /// First ejection's duration.
    pub base_ejection: Duration,
    /// Ceiling on the share of ejected endpoints, 0–100.
    pub max_ejection_percent: f64,
    /// Below this share of healthy endpoints, ejections are ignored, 0–100.
    pub min_health_percent: f64,
}

impl OutlierPolicy {
    /// The policy for a cluster's `outlier_detection`; `None` when it is absent.
    pub fn from_model(model: Option<&OutlierDetection>) -> Option<Self> {
        let model = model?;
        Some(Self {
            consecutive_5xx: model
                .consecutive_5xx_errors
                .unwrap_or(DEFAULT_CONSECUTIVE_5XX),
            consecutive_gateway: model.consecutive_gateway_errors.unwrap_or(0),
            split_local_origin: model.split_external_local_origin_errors,
            consecutive_local_origin: if model.split_external_local_origin_errors {
                model
                    .consecutive_local_origin_failures
                    .unwrap_or(DEFAULT_CONSECUTIVE_LOCAL_ORIGIN)
            } else {
                0
            },
            base_ejection: Duration::from_millis(model.base_ejection_time_ms),
            max_ejection_percent: model.max_ejection_percent,
            min_health_percent: model.min_health_percent,
        })
    }
}

/// How a try to an endpoint ended, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryResult {
    /// Any response below 500, or a connection established (TCP).
    Success,
    /// A 5xx response from the upstream; `gateway` for 502, 503 and 504.
    Failure {
        /// Whether it is a gateway error.
        gateway: bool,
    },
    /// A locally originated failure: connect failure or timeout, reset, per-try timeout.
    LocalOriginFailure,
}

impl TryResult {
    /// The result of an HTTP response status.
    pub fn from_status(status: u16) -> Self {
        if status >= 500 {
            Self::Failure {
                gateway: matches!(status, 502..=504),
            }
        } else {
            Self::Success
        }
    }

    /// A connect failure, reset or timeout.
    pub const LOCAL_ERROR: Self = Self::LocalOriginFailure;
}

/// Per-endpoint outlier state.
#[derive(Debug, Default)]
pub struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local_origin: AtomicU32,
    ejections: AtomicU32,
    /// Milliseconds since the cluster's clock origin until which the endpoint is ejected.
    ejected_until_ms: AtomicU64,
}

impl OutlierState {
    /// Whether the endpoint is ejected at `now_ms`.
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until_ms.load(Ordering::Relaxed)
    }

    /// Counts `result`; returns whether a threshold of `policy` was just reached (the caller
    /// then decides whether the ejection is allowed).
    pub fn record(&self, policy: &OutlierPolicy, result: TryResult) -> bool {
        let upstream_failure = |gateway: bool| {
            let fives = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
            let mut tripped = policy.consecutive_5xx > 0 && fives >= policy.consecutive_5xx;
            if gateway {
                let gateways = self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1;
                tripped |= policy.consecutive_gateway > 0 && gateways >= policy.consecutive_gateway;
            }
            tripped
        };
        match result {
            TryResult::Success => {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
                self.consecutive_gateway.store(0, Ordering::Relaxed);
                self.consecutive_local_origin.store(0, Ordering::Relaxed);
                false
            }
            TryResult::Failure { gateway } => {
                // A response came back: the connection worked (a local-origin success).
                self.consecutive_local_origin.store(0, Ordering::Relaxed);
                upstream_failure(gateway)
            }
            // Without the split, Envoy maps a local-origin failure to a 503 (a gateway error).
            TryResult::LocalOriginFailure if !policy.split_local_origin => upstream_failure(true),
            TryResult::LocalOriginFailure => {
                let failures = self
                    .consecutive_local_origin
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                policy.consecutive_local_origin > 0 && failures >= policy.consecutive_local_origin
            }
        }
    }

    /// Ejects the endpoint from `now_ms`; returns the end of the ejection (ms).
    pub fn eject(&self, policy: &OutlierPolicy, now_ms: u64) -> u64 {
        let times = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let duration = policy.base_ejection.saturating_mul(times).min(MAX_EJECTION);
        let until = now_ms.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self.ejected_until_ms.store(until, Ordering::Relaxed);
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local_origin.store(0, Ordering::Relaxed);
        until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(consecutive_5xx: u32, consecutive_gateway: u32) -> OutlierPolicy {
        OutlierPolicy {
            consecutive_5xx,
            consecutive_gateway,
            split_local_origin: false,
            consecutive_local_origin: 0,
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 10.0,
            min_health_percent: 0.0,
        }
    }

    #[test]
    fn thresholds_trip_on_consecutive_failures_only() {
        let state = OutlierState::default();
        let policy = policy(3, 0);
        assert!(!state.record(&policy, TryResult::from_status(500)));
        assert!(!state.record(&policy, TryResult::from_status(500)));
        assert!(!state.record(&policy, TryResult::from_status(200)));
        assert!(!state.record(&policy, TryResult::from_status(503)));
        assert!(!state.record(&policy, TryResult::from_status(500)));
        assert!(state.record(&policy, TryResult::LOCAL_ERROR));
    }

    #[test]
    fn gateway_threshold_ignores_plain_500() {
        let state = OutlierState::default();
        let policy = policy(0, 2);
        assert!(!state.record(&policy, TryResult::from_status(500)));
        assert!(!state.record(&policy, TryResult::from_status(502)));
        assert!(state.record(&policy, TryResult::from_status(504)));
    }

    #[test]
    fn ejection_time_grows_with_each_ejection_and_is_capped() {
        let state = OutlierState::default();
        let policy = policy(1, 0);
        assert_eq!(state.eject(&policy, 1_000), 31_000);
        assert!(state.is_ejected(30_999));
        assert!(!state.is_ejected(31_000));
        assert_eq!(state.eject(&policy, 100_000), 160_000);
        for _ in 0..20 {
            state.eject(&policy, 0);
        }
        assert_eq!(state.eject(&policy, 0), 300_000);
    }

    #[test]
    fn unset_5xx_threshold_defaults_to_envoys_five() {
        let model = OutlierDetection {
            consecutive_5xx_errors: None,
            consecutive_gateway_errors: None,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failures: Some(2),
            interval_ms: 10_000,
            base_ejection_time_ms: 30_000,
            max_ejection_percent: 10.0,
            min_health_percent: 0.0,
        };
        let policy = OutlierPolicy::from_model(Some(&model)).unwrap();
        assert_eq!((policy.consecutive_5xx, policy.consecutive_gateway), (5, 0));
        // Without the split, consecutiveLocalOriginFailures is not used (Istio's rule).
        assert_eq!(policy.consecutive_local_origin, 0);
        let split = OutlierDetection {
            split_external_local_origin_errors: true,
            consecutive_local_origin_failures: None,
            ..model
        };
        let policy = OutlierPolicy::from_model(Some(&split)).unwrap();
        assert!(policy.split_local_origin);
        assert_eq!(policy.consecutive_local_origin, 5, "Envoy's default");
        assert!(OutlierPolicy::from_model(None).is_none());
    }

    #[test]
    fn without_split_local_origin_failures_count_as_gateway_errors() {
        let state = OutlierState::default();
        let policy = policy(0, 2);
        assert!(!state.record(&policy, TryResult::LOCAL_ERROR));
        assert!(state.record(&policy, TryResult::from_status(503)));
    }

    #[test]
    fn with_split_local_origin_failures_are_counted_apart() {
        let state = OutlierState::default();
        let policy = OutlierPolicy {
            split_local_origin: true,
            consecutive_local_origin: 3,
            ..policy(2, 0)
        };
        // Local failures do not feed the 5xx count...
        assert!(!state.record(&policy, TryResult::LOCAL_ERROR));
        assert!(!state.record(&policy, TryResult::LOCAL_ERROR));
        assert!(!state.record(&policy, TryResult::from_status(500)));
        // ...and a response (even a 5xx) means the connection worked: the local count resets.
        assert!(!state.record(&policy, TryResult::LOCAL_ERROR));
        assert!(!state.record(&policy, TryResult::LOCAL_ERROR));
        assert!(
            state.record(&policy, TryResult::from_status(500)),
            "2nd 500 in a row"
        );
        let fresh = OutlierState::default();
        assert!(!fresh.record(&policy, TryResult::LOCAL_ERROR));
        assert!(!fresh.record(&policy, TryResult::LOCAL_ERROR));
        assert!(
            fresh.record(&policy, TryResult::LOCAL_ERROR),
            "3rd local failure"
        );
    }
}
