//! Control-plane metrics in Prometheus format, with Istio's `pilot_*` names where Istio has one.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The discovery service's metrics. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct DiscoveryMetrics {
    /// Configs pushed to proxies, full or delta (Istio `pilot_xds_pushes`).
    pub pushes: Counter,
    /// Of `pushes`, those sent as deltas (Envoy's incremental xDS).
    pub delta_pushes: Counter,
    /// The size of each push's frame, bytes (Istio `pilot_xds_config_size_bytes`).
    pub config_size_bytes: Histogram,
    /// Pushes that could not be built or sent.
    pub push_errors: Counter,
    /// NACKs received (Istio `pilot_total_xds_rejects`).
    pub nacks: Counter,
    /// Connected proxies (Istio `pilot_xds`).
    pub connected: Gauge,
    /// Time to build one proxy's config, seconds.
    pub build_seconds: Histogram,
    /// Time to encode one push's frame (the config's JSON), seconds.
    pub encode_seconds: Histogram,
    /// Time from a config event to a proxy's ACK of the resulting push, seconds (Istio
    /// `pilot_proxy_convergence_time`).
    pub convergence_seconds: Histogram,
}

impl DiscoveryMetrics {
    /// New metrics registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            pushes: Counter::default(),
            delta_pushes: Counter::default(),
            config_size_bytes: Histogram::new(exponential_buckets(1024.0, 4.0, 10)),
            push_errors: Counter::default(),
            nacks: Counter::default(),
            connected: Gauge::default(),
            build_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            encode_seconds: Histogram::new(exponential_buckets(0.00001, 2.0, 16)),
            convergence_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        };
        registry.register(
            "pilot_xds_pushes",
            "Configs pushed to proxies",
            m.pushes.clone(),
        );
        registry.register(
            "weft_xds_delta_pushes",
            "Configs pushed to proxies as deltas (counted in pilot_xds_pushes too)",
            m.delta_pushes.clone(),
        );
        registry.register(
            "pilot_xds_config_size_bytes",
            "Size of each push's frame, bytes",
            m.config_size_bytes.clone(),
        );
        registry.register(
            "pilot_xds_push_errors",
            "Pushes that could not be built or sent",
            m.push_errors.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "NACKs received from proxies",
            m.nacks.clone(),
        );
        registry.register("pilot_xds", "Connected proxies", m.connected.clone());
        registry.register(
            "weft_config_build_seconds",
            "Time to build one proxy's configuration, seconds",
            m.build_seconds.clone(),
        );
        registry.register(
            "weft_config_encode_seconds",
            "Time to encode one push's frame, seconds",
            m.encode_seconds.clone(),
        );
        registry.register(
            "pilot_proxy_convergence_time",
            "Time from a config event to the proxy's ACK, seconds",
            m.convergence_seconds.clone(),
        );
        m
    }
}
