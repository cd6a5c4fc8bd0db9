//! Endpoint selection for a cluster: weighted round robin, weighted random, and least request
//! by power of two choices (Envoy's `ROUND_ROBIN`, `RANDOM`, `LEAST_REQUEST`; Istio
//! `LoadBalancerSettings.simple`).
//!
//! Lock-free: a cluster's endpoints are immutable for the life of a config snapshot; the round
//! robin cursor and the per-endpoint active-request counts are atomics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rand::Rng;
use weft_proxy_config::{Endpoint, LbPolicy};

/// One endpoint of a cluster, with its live active-request count.
#[derive(Debug)]
pub struct EndpointState {
    /// Where to connect.
    pub address: SocketAddr,
    /// Load-balancing weight (at least 1).
    pub weight: u32,
    /// Whether the endpoint runs a sidecar (auto mTLS applies).
    pub has_sidecar: bool,
    /// The endpoint's SPIFFE ID, if known.
    pub identity: Option<String>,
    active: AtomicUsize,
}

impl EndpointState {
    /// Requests currently in flight to this endpoint.
    pub fn active_requests(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// A picked endpoint; counts as one active request until dropped.
#[derive(Debug)]
pub struct PickedEndpoint {
    endpoints: Arc<Endpoints>,
    index: usize,
}

impl PickedEndpoint {
    /// The picked endpoint.
    pub fn endpoint(&self) -> &EndpointState {
        &self.endpoints.list[self.index]
    }
}

impl Drop for PickedEndpoint {
    fn drop(&mut self) {
        self.endpoints.list[self.index]
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A cluster's endpoints and its balancer.
#[derive(Debug)]
pub struct Endpoints {
    list: Vec<EndpointState>,
    /// `cumulative[i]` is the sum of the weights of endpoints `0..=i`.
    cumulative: Vec<u64>,
    policy: LbPolicy,
    cursor: AtomicU64,
}

impl Endpoints {
    /// Builds the balancer for `endpoints` under `policy`. Endpoints with weight 0 are treated as
    /// weight 1 (validation rejects them anyway).
    pub fn new(endpoints: &[Endpoint], policy: LbPolicy) -> Arc<Self> {
        let mut total = 0u64;
        let mut cumulative = Vec::with_capacity(endpoints.len());
        let list = endpoints
            .iter()
            .map(|endpoint| {
                let weight = endpoint.weight.max(1);
                total += u64::from(weight);
                cumulative.push(total);
                EndpointState {
                    address: SocketAddr::new(endpoint.address, endpoint.port),
                    weight,
                    has_sidecar: endpoint.has_sidecar,
                    identity: endpoint.identity.clone(),
                    active: AtomicUsize::new(0),
                }
            })
            .collect();
        Arc::new(Self {
            list,
            cumulative,
            policy,
            cursor: AtomicU64::new(0),
        })
    }

    /// The endpoints, in config order.
    pub fn list(&self) -> &[EndpointState] {
        &self.list
    }

    /// Picks an endpoint by the cluster's policy, skipping `exclude` when another endpoint
    /// exists (so a retry goes elsewhere, like Envoy's previous-hosts retry predicate). `None`
    /// when the cluster has no endpoints (response flag `UH`) or the policy is `PASSTHROUGH`.
    pub fn pick(self: &Arc<Self>, exclude: Option<SocketAddr>) -> Option<PickedEndpoint> {
        let total = *self.cumulative.last()?;
        let mut index = match self.policy {
            LbPolicy::Passthrough => return None,
            LbPolicy::RoundRobin => {
                self.by_weight(self.cursor.fetch_add(1, Ordering::Relaxed) % total)
            }
            LbPolicy::Random => self.by_weight(rand::rng().random_range(0..total)),
            LbPolicy::LeastRequest => {
                let mut rng = rand::rng();
                let first = self.by_weight(rng.random_range(0..total));
                let second = self.by_weight(rng.random_range(0..total));
                self.less_loaded(first, second)
            }
        };
        if self.list.len() > 1 && Some(self.list[index].address) == exclude {
            index = (index + 1) % self.list.len();
        }
        self.list[index].active.fetch_add(1, Ordering::Relaxed);
        Some(PickedEndpoint {
            endpoints: Arc::clone(self),
            index,
        })
    }

    /// The endpoint whose weight range contains `point` (`0 <= point < total`).
    fn by_weight(&self, point: u64) -> usize {
        self.cumulative
            .partition_point(|end| *end <= point)
            .min(self.list.len().saturating_sub(1))
    }

    /// Of two endpoints, the one with fewer active requests per unit of weight.
    fn less_loaded(&self, first: usize, second: usize) -> usize {
        let load = |index: usize| {
            let endpoint = &self.list[index];
            (endpoint.active_requests() as u64 + 1) * 1_000_000 / u64::from(endpoint.weight)
        };
        if load(second) < load(first) {
            second
        } else {
            first
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::*;

    fn endpoint(last: u8, weight: u32) -> Endpoint {
        Endpoint {
            address: IpAddr::from([10, 0, 0, last]),
            port: 80,
            labels: Default::default(),
            locality: Default::default(),
            weight,
            has_sidecar: false,
            identity: None,
        }
    }

    fn last_octet(picked: &PickedEndpoint) -> u8 {
        match picked.endpoint().address.ip() {
            IpAddr::V4(v4) => v4.octets()[3],
            IpAddr::V6(_) => 0,
        }
    }

    #[test]
    fn round_robin_follows_weights_exactly() {
        let endpoints = Endpoints::new(&[endpoint(1, 1), endpoint(2, 3)], LbPolicy::RoundRobin);
        let picks: Vec<u8> = (0..8)
            .map(|_| last_octet(&endpoints.pick(None).unwrap()))
            .collect();
        assert_eq!(picks, [1, 2, 2, 2, 1, 2, 2, 2]);
    }

    #[test]
    fn empty_cluster_has_no_pick() {
        let endpoints = Endpoints::new(&[], LbPolicy::RoundRobin);
        assert!(endpoints.pick(None).is_none());
    }

    #[test]
    fn exclude_moves_to_another_endpoint() {
        let endpoints = Endpoints::new(&[endpoint(1, 1), endpoint(2, 1)], LbPolicy::Random);
        let first = SocketAddr::from(([10, 0, 0, 1], 80));
        for _ in 0..50 {
            assert_eq!(last_octet(&endpoints.pick(Some(first)).unwrap()), 2);
        }
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let endpoints = Endpoints::new(&[endpoint(1, 1), endpoint(2, 1)], LbPolicy::LeastRequest);
        // Hold many requests on whichever endpoint comes first.
        let held: Vec<PickedEndpoint> = (0..1).map(|_| endpoints.pick(None).unwrap()).collect();
        let busy = last_octet(&held[0]);
        let mut counts: HashMap<u8, usize> = HashMap::new();
        for _ in 0..200 {
            let picked = endpoints.pick(None).unwrap();
            *counts.entry(last_octet(&picked)).or_default() += 1;
        }
        // With P2C the idle endpoint wins whenever both are sampled (about half the time) and
        // ties go to the first sample, so the busy endpoint gets clearly less than half.
        let busy_count = counts.get(&busy).copied().unwrap_or(0);
        assert!(
            busy_count < 80,
            "busy endpoint picked {busy_count}/200 times"
        );
        drop(held);
        assert!(endpoints.list().iter().all(|e| e.active_requests() == 0));
    }

    #[test]
    fn picked_endpoint_counts_as_active_until_dropped() {
        let endpoints = Endpoints::new(&[endpoint(1, 1)], LbPolicy::RoundRobin);
        let picked = endpoints.pick(None).unwrap();
        assert_eq!(endpoints.list()[0].active_requests(), 1);
        drop(picked);
        assert_eq!(endpoints.list()[0].active_requests(), 0);
    }
}
