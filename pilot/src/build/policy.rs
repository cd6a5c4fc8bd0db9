//! DestinationRule traffic policies: merging (subset over port level over top level, as Istio's
//! `MergeTrafficPolicy`) and translation into the model's cluster settings.

use weft_crds::Duration;
use weft_crds::networking::{
    ClientTlsSettings, ConnectionPoolSettings as CrdPool, DestinationRule,
    H2UpgradePolicy as CrdH2, LoadBalancerSettings, OutlierDetection as CrdOutlier, SimpleLb,
    TrafficPolicy,
};
use weft_proxy_config::{
    ConnectionPoolSettings, DEFAULT_WARMUP_AGGRESSION, DEFAULT_WARMUP_MINIMUM_PERCENT,
    H2UpgradePolicy, HttpPoolSettings, LbPolicy, LocalityDistribute, LocalityFailover,
    LocalityLbSetting, OutlierDetection, TcpKeepalive, TcpPoolSettings, Warmup,
};

use super::Context;
use crate::unsupported::Origin;

/// The parts of a traffic policy that apply to one (port, subset), each with the field path
/// it came from (for warnings).
#[derive(Default)]
pub(crate) struct MergedPolicy<'a> {
    pub load_balancer: Option<(&'a LoadBalancerSettings, String)>,
    pub connection_pool: Option<(&'a CrdPool, String)>,
    pub outlier_detection: Option<(&'a CrdOutlier, String)>,
    pub tls: Option<(&'a ClientTlsSettings, String)>,
}

impl<'a> MergedPolicy<'a> {
    /// The policy of `rule` for service port `port` and `subset` (its index in
    /// `spec.subsets`): the top-level policy, overridden field by field by its
    /// `portLevelSettings` for `port`, then by the subset's policy and the subset's port-level
    /// settings. Reports the policy's unsupported top-level fields.
    pub fn new(
        context: &mut Context<'_>,
        origin: &Origin<'_>,
        rule: &'a DestinationRule,
        port: u16,
        subset: Option<usize>,
    ) -> Self {
        let mut merged = Self::default();
        if let Some(policy) = &rule.spec.traffic_policy {
            merged.apply(context, origin, policy, "spec.trafficPolicy", port);
        }
        if let Some(index) = subset
            && let Some(policy) = rule
                .spec
                .subsets
                .get(index)
                .and_then(|subset| subset.traffic_policy.as_ref())
        {
            merged.apply(
                context,
                origin,
                policy,
                &format!("spec.subsets[{index}].trafficPolicy"),
                port,
            );
        }
        merged
    }

    fn apply(
        &mut self,
        context: &mut Context<'_>,
        origin: &Origin<'_>,
        policy: &'a TrafficPolicy,
        path: &str,
        port: u16,
    ) {
        let field = |name: &str| format!("{path}.{name}");
        if let Some(lb) = &policy.load_balancer {
            self.load_balancer = Some((lb, field("loadBalancer")));
        }
        if let Some(pool) = &policy.connection_pool {
            self.connection_pool = Some((pool, field("connectionPool")));
        }
        if let Some(outlier) = &policy.outlier_detection {
            self.outlier_detection = Some((outlier, field("outlierDetection")));
        }
        if let Some(tls) = &policy.tls {
            self.tls = Some((tls, field("tls")));
        }
        for (index, level) in policy.port_level_settings.iter().enumerate() {
            let number = level.port.as_ref().and_then(|selector| selector.number);
            if number != Some(u32::from(port)) {
                continue;
            }
            let level_field = |name: &str| format!("{path}.portLevelSettings[{index}].{name}");
            if let Some(lb) = &level.load_balancer {
                self.load_balancer = Some((lb, level_field("loadBalancer")));
            }
            if let Some(pool) = &level.connection_pool {
                self.connection_pool = Some((pool, level_field("connectionPool")));
            }
            if let Some(outlier) = &level.outlier_detection {
                self.outlier_detection = Some((outlier, level_field("outlierDetection")));
            }
            if let Some(tls) = &level.tls {
                self.tls = Some((tls, level_field("tls")));
            }
        }
        for (present, name, reason) in [
            (
                policy.tunnel.is_some(),
                "tunnel",
                "tunnelling upstream connections is not expressible; connections go direct",
            ),
            (
                policy.proxy_protocol.is_some(),
                "proxyProtocol",
                "the PROXY protocol header is not expressible; none is sent",
            ),
            (
                policy.retry_budget.is_some(),
                "retryBudget",
                "retry budgets are not expressible; connectionPool.http.maxRetries alone limits \
                 retries",
            ),
        ] {
            if present {
                context.warn(origin.unsupported(field(name), reason));
            }
        }
    }

    /// The model's load-balancing policy: `simple` mapped (`LEAST_CONN` is Istio's alias of
    /// `LEAST_REQUEST`; unset is Istio's default `LEAST_REQUEST`; with `consistentHash`, the
    /// policy for requests without the hash key, see `destination_rule::consistent_hash`).
    pub fn lb_policy(&self) -> LbPolicy {
        let Some((lb, _)) = &self.load_balancer else {
            return LbPolicy::default();
        };
        match lb.simple.unwrap_or_default() {
            SimpleLb::Unspecified | SimpleLb::LeastConn | SimpleLb::LeastRequest => {
                LbPolicy::LeastRequest
            }
            SimpleLb::Random => LbPolicy::Random,
            SimpleLb::RoundRobin => LbPolicy::RoundRobin,
            SimpleLb::Passthrough => LbPolicy::Passthrough,
        }
    }

    /// The model's locality load balancing (Istio `LoadBalancerSettings.localityLbSetting`,
    /// which replaces the mesh-wide setting as a whole); `None` when unset (the mesh default).
    /// `distribute` and `failover` entries without `from` or `to` cannot match, and
    /// `distribute` entries whose weights do not add up to 100 are invalid: they are dropped
    /// (Istio's validation refuses them, and the model's validation would refuse the whole
    /// config).
    pub fn locality_lb(&self) -> Option<LocalityLbSetting> {
        let (lb, _) = self.load_balancer.as_ref()?;
        let setting = lb.locality_lb_setting.as_ref()?;
        Some(LocalityLbSetting {
            enabled: setting.enabled.unwrap_or(true),
            distribute: setting
                .distribute
                .iter()
                .filter(|rule| {
                    rule.to
                        .values()
                        .map(|weight| u64::from(*weight))
                        .sum::<u64>()
                        == 100
                })
                .filter_map(|rule| {
                    Some(LocalityDistribute {
                        from: rule.from.clone()?,
                        to: rule.to.clone(),
                    })
                })
                .collect(),
            failover: setting
                .failover
                .iter()
                .filter_map(|rule| {
                    Some(LocalityFailover {
                        from: rule.from.clone()?,
                        to: rule.to.clone()?,
                    })
                })
                .collect(),
            failover_priority: setting.failover_priority.clone(),
        })
    }

    /// The model's slow start (Istio `LoadBalancerSettings.warmup`, else the deprecated
    /// `warmupDurationSecs` with Istio's defaults: minimum 10 %, aggression 1.0). Istio
    /// configures it only for `ROUND_ROBIN` and `LEAST_REQUEST` (and their aliases) without
    /// `consistentHash`; for other policies it is dropped, as Istio ignores it. A zero
    /// duration is off; a minimum outside 0–100 or an aggression below 1 (which Istio's
    /// validation refuses) is clamped into range, so the model's validation holds.
    pub fn warmup(&self) -> Option<Warmup> {
        let (lb, _) = self.load_balancer.as_ref()?;
        let ramped = matches!(
            lb.simple.unwrap_or_default(),
            SimpleLb::Unspecified
                | SimpleLb::LeastConn
                | SimpleLb::LeastRequest
                | SimpleLb::RoundRobin
        ) && lb.consistent_hash.is_none();
        if !ramped {
            return None;
        }
        let warmup = match (&lb.warmup, &lb.warmup_duration_secs) {
            (Some(warmup), _) => Warmup {
                duration_ms: millis(&warmup.duration),
                minimum_percent: warmup
                    .minimum_percent
                    .unwrap_or(DEFAULT_WARMUP_MINIMUM_PERCENT),
                aggression: warmup.aggression.unwrap_or(DEFAULT_WARMUP_AGGRESSION),
            },
            (None, Some(duration)) => Warmup {
                duration_ms: millis(duration),
                minimum_percent: DEFAULT_WARMUP_MINIMUM_PERCENT,
                aggression: DEFAULT_WARMUP_AGGRESSION,
            },
            (None, None) => return None,
        };
        let warmup = Warmup {
            minimum_percent: if warmup.minimum_percent.is_nan() {
                DEFAULT_WARMUP_MINIMUM_PERCENT
            } else {
                warmup.minimum_percent.clamp(0.0, 100.0)
            },
            aggression: if warmup.aggression.is_nan() {
                DEFAULT_WARMUP_AGGRESSION
            } else {
                warmup.aggression.max(1.0)
            },
            ..warmup
        };
        (warmup.duration_ms > 0).then_some(warmup)
    }

    /// The model's connection pool and HTTP/2 upgrade policy (Istio
    /// `ConnectionPoolSettings`); negative limits are treated as unset; fields without a model
    /// counterpart reported.
    pub fn connection_pool(
        &self,
        context: &mut Context<'_>,
        origin: &Origin<'_>,
    ) -> (ConnectionPoolSettings, H2UpgradePolicy) {
        let Some((pool, path)) = &self.connection_pool else {
            return (
                ConnectionPoolSettings::default(),
                H2UpgradePolicy::default(),
            );
        };
        let limit = |value: Option<i32>| value.and_then(|value| u32::try_from(value).ok());
        let mut tcp = TcpPoolSettings::default();
        if let Some(settings) = &pool.tcp {
            tcp.max_connections = limit(settings.max_connections);
            if let Some(timeout) = &settings.connect_timeout {
                tcp.connect_timeout_ms = millis(timeout);
            }
            tcp.tcp_keepalive = settings
                .tcp_keepalive
                .as_ref()
                .map(|keepalive| TcpKeepalive {
                    probes: keepalive.probes,
                    time_ms: keepalive.time.as_ref().map(millis),
                    interval_ms: keepalive.interval.as_ref().map(millis),
                });
            tcp.max_connection_duration_ms = settings.max_connection_duration.as_ref().map(millis);
            tcp.idle_timeout_ms = settings.idle_timeout.as_ref().map(millis);
        }
        let mut http = HttpPoolSettings::default();
        let mut h2_upgrade = H2UpgradePolicy::default();
        if let Some(settings) = &pool.http {
            http.http1_max_pending_requests = limit(settings.http1_max_pending_requests);
            http.http2_max_requests = limit(settings.http2_max_requests);
            http.max_requests_per_connection = limit(settings.max_requests_per_connection);
            http.max_retries = limit(settings.max_retries);
            http.idle_timeout_ms = settings.idle_timeout.as_ref().map(millis);
            h2_upgrade = match settings.h2_upgrade_policy.unwrap_or_default() {
                CrdH2::Default => H2UpgradePolicy::Default,
                CrdH2::DoNotUpgrade => H2UpgradePolicy::DoNotUpgrade,
                CrdH2::Upgrade => H2UpgradePolicy::Upgrade,
            };
            for (present, name) in [
                (settings.use_client_protocol.is_some(), "useClientProtocol"),
                (
                    settings.max_concurrent_streams.is_some(),
                    "maxConcurrentStreams",
                ),
            ] {
                if present {
                    context.warn(origin.unsupported(
                        format!("{path}.http.{name}"),
                        "not expressible in the model's HTTP pool settings; the proxy's default \
                         applies",
                    ));
                }
            }
        }
        (ConnectionPoolSettings { tcp, http }, h2_upgrade)
    }

    /// The model's outlier detection (Istio `OutlierDetection`, Istio's defaults for unset
    /// interval 10 s, base ejection time 30 s, max ejection 10 %). As Istio's
    /// `applyOutlierDetection`: the deprecated `consecutiveErrors` (when above 0) sets the
    /// gateway-error threshold and turns the 5xx check off, each unless its own field is set;
    /// `consecutiveLocalOriginFailures` counts only with `splitExternalLocalOriginErrors`.
    pub fn outlier_detection(&self) -> Option<OutlierDetection> {
        let (outlier, _) = self.outlier_detection.as_ref()?;
        let percent = |value: Option<i32>, default: f64| {
            value.map_or(default, |value| f64::from(value.clamp(0, 100)))
        };
        let legacy = outlier
            .consecutive_errors
            .and_then(|errors| u32::try_from(errors).ok())
            .filter(|errors| *errors > 0);
        let split = outlier.split_external_local_origin_errors.unwrap_or(false);
        Some(OutlierDetection {
            consecutive_5xx_errors: outlier.consecutive_5xx_errors.or(legacy.map(|_| 0)),
            consecutive_gateway_errors: outlier.consecutive_gateway_errors.or(legacy),
            split_external_local_origin_errors: split,
            consecutive_local_origin_failures: outlier
                .consecutive_local_origin_failures
                .filter(|_| split),
            interval_ms: outlier.interval.as_ref().map_or(10_000, millis),
            base_ejection_time_ms: outlier.base_ejection_time.as_ref().map_or(30_000, millis),
            max_ejection_percent: percent(outlier.max_ejection_percent, 10.0),
            min_health_percent: percent(outlier.min_health_percent, 0.0),
        })
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: &Duration) -> u64 {
    u64::try_from(duration.as_std().as_millis()).unwrap_or(u64::MAX)
}
