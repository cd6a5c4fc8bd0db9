//! Passive health checking (Istio `OutlierDetection`, Envoy's outlier detector in its
//! consecutive-errors modes): an endpoint that returns too many 5xx (or gateway errors) in a row
//! is ejected from load balancing at once for `base_ejection_time × its ejection multiplier`
//! (capped at 300 s, as Envoy's `max_ejection_time`), never more than `max_ejection_percent` of
//! the endpoints (but always at least one), and ejections are ignored while fewer than
//! `min_health_percent` of the endpoints are healthy.
//!
//! `interval` is Envoy's sweep: sweeps happen every `interval` from the cluster's clock origin;
//! an ejection ends at the first sweep after its time is up, and each sweep an endpoint spends
//! in rotation takes one off its multiplier (Envoy's `ejectTimeBackoff`), which each ejection
//! raises by one. Sweeps are computed when an endpoint is ejected, not run by a timer.
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
    /// Time between sweeps (`interval`, at least 1 ms): ejections end on a sweep, and each
    /// sweep in rotation lowers the ejection multiplier.
    pub interval: Duration,
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
            interval: Duration::from_millis(model.interval_ms.max(1)),
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

    /// Ejects the endpoint from `now_ms` (ms since the cluster's clock origin); returns the end
    /// of the ejection (ms): the first sweep (a multiple of `interval`) at least `base_ejection
    /// × multiplier` later. The multiplier (Envoy's `ejectTimeBackoff`) first loses one for
    /// each sweep since the endpoint last came back (the sweep that returned it excluded), then
    /// gains one; it stops growing once the ejection reaches the 300 s ceiling.
    pub fn eject(&self, policy: &OutlierPolicy, now_ms: u64) -> u64 {
        let ms = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let interval = ms(policy.interval).max(1);
        let base = ms(policy.base_ejection).max(1);
        let returned = self.ejected_until_ms.load(Ordering::Relaxed);
        let healthy_sweeps = u32::try_from((now_ms / interval).saturating_sub(returned / interval))
            .unwrap_or(u32::MAX);
        let ceiling = u32::try_from(ms(MAX_EJECTION).div_ceil(base)).unwrap_or(u32::MAX);
        let mut multiplier = 1;
        let _ = self
            .ejections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                multiplier = current
                    .saturating_sub(healthy_sweeps)
                    .saturating_add(1)
                    .min(ceiling.max(1));
                Some(multiplier)
            });
        let duration = policy
            .base_ejection
            .saturating_mul(multiplier)
            .min(MAX_EJECTION);
        let due = now_ms.saturating_add(ms(duration));
        let until = due.div_ceil(interval).saturating_mul(interval);
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
            interval: Duration::from_secs(10),
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
    fn an_ejection_ends_on_the_first_sweep_after_base_ejection_time() {
        let state = OutlierState::default();
        let policy = policy(1, 0);
        // 1 s + 30 s, rounded up to the 10 s sweeps.
        assert_eq!(state.eject(&policy, 1_000), 40_000);
        assert!(state.is_ejected(39_999));
        assert!(!state.is_ejected(40_000));
    }

    #[test]
    fn the_multiplier_grows_per_ejection_and_falls_per_sweep_in_rotation() {
        let state = OutlierState::default();
        let policy = policy(1, 0);
        assert_eq!(state.eject(&policy, 1_000), 40_000);
        // Back at the 40 s sweep, ejected again before the next one: 2 × 30 s.
        assert_eq!(state.eject(&policy, 45_000), 110_000);
        // One sweep (120 s) in rotation: 2 - 1 + 1.
        assert_eq!(state.eject(&policy, 125_000), 190_000);
        // Many sweeps in rotation: back to 1 × 30 s.
        assert_eq!(state.eject(&policy, 400_000), 430_000);
    }

    #[test]
    fn the_ejection_is_capped_at_300_s_and_the_multiplier_with_it() {
        let state = OutlierState::default();
        let policy = policy(1, 0);
        for _ in 0..20 {
            state.eject(&policy, 0);
        }
        assert_eq!(state.eject(&policy, 0), 300_000);
        // The multiplier stopped at 10 (10 × 30 s = 300 s): ten sweeps in rotation bring it
        // back to 1.
        assert_eq!(state.eject(&policy, 400_000), 430_000);
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
