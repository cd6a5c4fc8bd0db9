//! Endpoint selection for a cluster: weighted round robin, weighted random, and least request
//! by power of two choices (Envoy's `ROUND_ROBIN`, `RANDOM`, `LEAST_REQUEST`; Istio
//! `LoadBalancerSettings.simple`), and consistent hashing by ring hash or Maglev (Istio
//! `LoadBalancerSettings.consistentHash`, see [`consistent_hash`]).
//!
//! Lock-free: a cluster's endpoints are immutable for the life of a config snapshot; the round
//! robin cursor and the per-endpoint active-request counts are atomics.

pub mod consistent_hash;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::time::Instant;

use rand::Rng;
use weft_proxy_config::{Endpoint, LbPolicy, Locality, OutlierDetection};

use crate::outlier::{OutlierPolicy, OutlierState, TryResult};
use consistent_hash::{ConsistentHashPolicy, HashKey, HashTable};

/// One endpoint of a cluster, with its live active-request count.
#[derive(Debug)]
pub struct EndpointState {
    /// Where to connect.
    pub address: SocketAddr,
    /// `address` as a URI authority, built once (the upstream request URI and pool key).
    pub authority: http::uri::Authority,
    /// Load-balancing weight (at least 1).
    pub weight: u32,
    /// Whether the endpoint runs a sidecar (auto mTLS applies).
    pub has_sidecar: bool,
    /// The endpoint's SPIFFE ID, if known.
    pub identity: Option<String>,
    active: AtomicUsize,
    outlier: OutlierState,
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

    /// Reports how the try to this endpoint ended, for outlier detection.
    pub fn report(&self, result: TryResult) {
        self.endpoints.report(self.index, result);
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
    /// Locality priority levels: ranges of `list` (sorted by priority), best first. One level
    /// covering everything when locality load balancing is off.
    levels: Vec<std::ops::Range<usize>>,
    outlier: Option<OutlierPolicy>,
    /// The clock origin of ejection times.
    origin: Instant,
    /// The latest end of any ejection (ms since `origin`): before it, picks check ejections.
    ejections_until_ms: AtomicU64,
    /// Consistent hashing: what requests are hashed on and the table over `list`.
    hash: Option<(HashKey, HashTable)>,
}

impl Endpoints {
    /// Builds the balancer for `endpoints` under `policy`, with passive health checking when
    /// `outlier` is set. With `locality` (the proxy's own), endpoints are tried by locality
    /// priority (same region/zone/sub-zone first, then same zone, same region, anywhere), a
    /// level being used while it has endpoints that are not ejected: Istio's default locality
    /// failover, which it enables only with outlier detection. Endpoints with weight 0 are
    /// treated as weight 1 (validation rejects them anyway).
    pub fn new(
        endpoints: &[Endpoint],
        policy: LbPolicy,
        outlier: Option<&OutlierDetection>,
        locality: Option<&Locality>,
    ) -> Arc<Self> {
        Self::new_hashed(endpoints, policy, outlier, locality, None)
    }

    /// As [`Endpoints::new`], with consistent hashing when `consistent_hash` is set (Istio
    /// `LoadBalancerSettings.consistentHash`): the ring or Maglev table is built over the
    /// endpoints (keyed by `address:port`, in proportion to weight) and
    /// [`Endpoints::pick_hashed`] uses it; `policy` still balances requests without a key.
    pub fn new_hashed(
        endpoints: &[Endpoint],
        policy: LbPolicy,
        outlier: Option<&OutlierDetection>,
        locality: Option<&Locality>,
        consistent_hash: Option<&ConsistentHashPolicy>,
    ) -> Arc<Self> {
        let priority = |endpoint: &Endpoint| {
            locality.map_or(0, |own| locality_priority(own, &endpoint.locality))
        };
        let mut sorted: Vec<&Endpoint> = endpoints.iter().collect();
        sorted.sort_by_key(|endpoint| priority(endpoint));
        let mut levels: Vec<std::ops::Range<usize>> = Vec::new();
        for (index, endpoint) in sorted.iter().enumerate() {
            match levels.last_mut() {
                Some(level) if priority(sorted[level.start]) == priority(endpoint) => {
                    level.end = index + 1;
                }
                _ => levels.push(index..index + 1),
            }
        }
        let endpoints = sorted;
        let mut total = 0u64;
        let mut cumulative = Vec::with_capacity(endpoints.len());
        let list = endpoints
            .iter()
            .map(|endpoint| {
                let weight = endpoint.weight.max(1);
                total += u64::from(weight);
                cumulative.push(total);
                let address = SocketAddr::new(endpoint.address, endpoint.port);
                EndpointState {
                    address,
                    authority: http::uri::Authority::try_from(address.to_string())
                        .unwrap_or_else(|_| http::uri::Authority::from_static("invalid")),
                    weight,
                    has_sidecar: endpoint.has_sidecar,
                    identity: endpoint.identity.clone(),
                    active: AtomicUsize::new(0),
                    outlier: OutlierState::default(),
                }
            })
            .collect::<Vec<EndpointState>>();
        let hash = consistent_hash.map(|hash| {
            let hosts: Vec<(String, u32)> = list
                .iter()
                .map(|endpoint| (endpoint.address.to_string(), endpoint.weight))
                .collect();
            (hash.key.clone(), HashTable::build(hash.algorithm, &hosts))
        });
        Arc::new(Self {
            list,
            cumulative,
            policy,
            cursor: AtomicU64::new(0),
            levels,
            outlier: OutlierPolicy::from_model(outlier),
            origin: Instant::now(),
            ejections_until_ms: AtomicU64::new(0),
            hash,
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
        if self.policy == LbPolicy::Passthrough {
            return None;
        }
        let level = self.active_level()?;
        let base = level
            .start
            .checked_sub(1)
            .map_or(0, |before| self.cumulative[before]);
        let total = self.cumulative[level.end - 1] - base;
        let mut index = match self.policy {
            LbPolicy::Passthrough => return None,
            LbPolicy::RoundRobin => {
                self.by_weight(base + self.cursor.fetch_add(1, Ordering::Relaxed) % total)
            }
            LbPolicy::Random => self.by_weight(base + rand::rng().random_range(0..total)),
            LbPolicy::LeastRequest => {
                let mut rng = rand::rng();
                let first = self.by_weight(base + rng.random_range(0..total));
                let second = self.by_weight(base + rng.random_range(0..total));
                self.less_loaded(first, second)
            }
        };
        if level.len() > 1 && Some(self.list[index].address) == exclude {
            index = level.start + (index - level.start + 1) % level.len();
        }
        index = self.skip_ejected(index, level.clone());
        self.list[index].active.fetch_add(1, Ordering::Relaxed);
        Some(PickedEndpoint {
            endpoints: Arc::clone(self),
            index,
        })
    }

    /// The hash of the request `parts` from `source` under the cluster's consistent-hash key;
    /// `None` without consistent hashing or when the request lacks the key.
    pub fn request_hash(
        &self,
        parts: &http::request::Parts,
        source: Option<IpAddr>,
    ) -> Option<u64> {
        self.hash.as_ref()?.0.hash(parts, source)
    }

    /// The hash of a connection from `source` when the cluster hashes on the source IP
    /// (`useSourceIp`, the only key that applies to TCP); `None` otherwise.
    pub fn source_hash(&self, source: IpAddr) -> Option<u64> {
        match self.hash.as_ref()? {
            (HashKey::SourceIp, _) => {
                Some(consistent_hash::hash_bytes(source.to_string().as_bytes()))
            }
            _ => None,
        }
    }

    /// Picks the endpoint that `hash` (from [`Endpoints::request_hash`] or
    /// [`Endpoints::source_hash`]) maps to, skipping, in the table's order, endpoints that are
    /// `exclude`, ejected by outlier detection (unless the ejections are ignored, as in
    /// [`Endpoints::pick`]) or outside the active locality level. Without a hash or without
    /// consistent hashing, the same as [`Endpoints::pick`]. `None` as [`Endpoints::pick`].
    pub fn pick_hashed(
        self: &Arc<Self>,
        exclude: Option<SocketAddr>,
        hash: Option<u64>,
    ) -> Option<PickedEndpoint> {
        let (Some(hash), Some((_, table))) = (hash, &self.hash) else {
            return self.pick(exclude);
        };
        if self.policy == LbPolicy::Passthrough {
            return None;
        }
        let level = self.active_level()?.clone();
        let now = self.now_ms();
        let ejections = self.ejections_apply(&level, now);
        let usable = |index: &usize| {
            level.contains(index)
                && Some(self.list[*index].address) != exclude
                && !(ejections && self.list[*index].outlier.is_ejected(now))
        };
        let index = table
            .candidates(hash)
            .find(usable)
            .or_else(|| table.candidates(hash).find(|index| level.contains(index)))?;
        self.list[index].active.fetch_add(1, Ordering::Relaxed);
        Some(PickedEndpoint {
            endpoints: Arc::clone(self),
            index,
        })
    }

    /// Whether ejections are in force for `level` at `now`: some endpoint is ejected, and
    /// enough stay healthy (none healthy, or fewer than `min_health_percent`, is Envoy's panic
    /// mode, where ejections are ignored).
    fn ejections_apply(&self, level: &std::ops::Range<usize>, now: u64) -> bool {
        let Some(policy) = &self.outlier else {
            return false;
        };
        if now >= self.ejections_until_ms.load(Ordering::Relaxed) {
            return false;
        }
        let endpoints = &self.list[level.clone()];
        let healthy = endpoints
            .iter()
            .filter(|endpoint| !endpoint.outlier.is_ejected(now))
            .count();
        let healthy_percent = healthy as f64 * 100.0 / endpoints.len() as f64;
        healthy > 0 && healthy_percent >= policy.min_health_percent
    }

    /// The best locality level that has an endpoint not ejected (the first level when no
    /// ejection is in force or all are ejected); `None` without endpoints.
    fn active_level(&self) -> Option<&std::ops::Range<usize>> {
        let first = self.levels.first()?;
        if self.levels.len() == 1 || self.outlier.is_none() {
            return Some(first);
        }
        let now = self.now_ms();
        if now >= self.ejections_until_ms.load(Ordering::Relaxed) {
            return Some(first);
        }
        Some(
            self.levels
                .iter()
                .find(|level| {
                    self.list[(*level).clone()]
                        .iter()
                        .any(|endpoint| !endpoint.outlier.is_ejected(now))
                })
                .unwrap_or(first),
        )
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `index`, or the next endpoint of `level` that is not ejected. Ejections are ignored when
    /// every endpoint of the level is ejected or fewer than `min_health_percent` are healthy
    /// (Envoy's panic mode).
    fn skip_ejected(&self, index: usize, level: std::ops::Range<usize>) -> usize {
        let now = self.now_ms();
        if !self.ejections_apply(&level, now) {
            return index;
        }
        (0..level.len())
            .map(|step| level.start + (index - level.start + step) % level.len())
            .find(|candidate| !self.list[*candidate].outlier.is_ejected(now))
            .unwrap_or(index)
    }

    /// Records a try's result on endpoint `index` and ejects it when a threshold trips and the
    /// ejection ceiling allows (always at least one endpoint, as Envoy).
    fn report(&self, index: usize, result: TryResult) {
        let (Some(policy), Some(endpoint)) = (&self.outlier, self.list.get(index)) else {
            return;
        };
        if !endpoint.outlier.record(policy, result) {
            return;
        }
        let now = self.now_ms();
        if endpoint.outlier.is_ejected(now) {
            return;
        }
        let ejected = self
            .list
            .iter()
            .filter(|endpoint| endpoint.outlier.is_ejected(now))
            .count();
        let ceiling =
            ((self.list.len() as f64 * policy.max_ejection_percent / 100.0) as usize).max(1);
        if ejected >= ceiling {
            return;
        }
        let until = endpoint.outlier.eject(policy, now);
        self.ejections_until_ms.fetch_max(until, Ordering::Relaxed);
        tracing::info!(endpoint = %endpoint.address, ejected_ms = until - now, "outlier ejected");
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

/// Istio's locality failover priority of an endpoint for a proxy at `own`: 0 same region, zone
/// and sub-zone; 1 same region and zone; 2 same region; 3 elsewhere. Everything is 0 when the
/// proxy's region is unknown.
fn locality_priority(own: &Locality, endpoint: &Locality) -> u8 {
    if own.region.is_empty() {
        0
    } else if endpoint.region != own.region {
        3
    } else if endpoint.zone != own.zone {
        2
    } else if endpoint.sub_zone != own.sub_zone {
        1
    } else {
        0
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
        let endpoints = Endpoints::new(
            &[endpoint(1, 1), endpoint(2, 3)],
            LbPolicy::RoundRobin,
            None,
            None,
        );
        let picks: Vec<u8> = (0..8)
            .map(|_| last_octet(&endpoints.pick(None).unwrap()))
            .collect();
        assert_eq!(picks, [1, 2, 2, 2, 1, 2, 2, 2]);
    }

    #[test]
    fn empty_cluster_has_no_pick() {
        let endpoints = Endpoints::new(&[], LbPolicy::RoundRobin, None, None);
        assert!(endpoints.pick(None).is_none());
    }

    #[test]
    fn exclude_moves_to_another_endpoint() {
        let endpoints = Endpoints::new(
            &[endpoint(1, 1), endpoint(2, 1)],
            LbPolicy::Random,
            None,
            None,
        );
        let first = SocketAddr::from(([10, 0, 0, 1], 80));
        for _ in 0..50 {
            assert_eq!(last_octet(&endpoints.pick(Some(first)).unwrap()), 2);
        }
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let endpoints = Endpoints::new(
            &[endpoint(1, 1), endpoint(2, 1)],
            LbPolicy::LeastRequest,
            None,
            None,
        );
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

    fn outlier(max_ejection_percent: f64) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx_errors: Some(2),
            consecutive_gateway_errors: None,
            interval_ms: 10_000,
            base_ejection_time_ms: 60_000,
            max_ejection_percent,
            min_health_percent: 0.0,
        }
    }

    #[test]
    fn ejected_endpoint_is_skipped() {
        let policy = outlier(50.0);
        let endpoints = Endpoints::new(
            &[endpoint(1, 1), endpoint(2, 1)],
            LbPolicy::RoundRobin,
            Some(&policy),
            None,
        );
        let bad = endpoints.pick(None).unwrap();
        assert_eq!(last_octet(&bad), 1);
        bad.report(TryResult::from_status(503));
        bad.report(TryResult::from_status(503));
        drop(bad);
        for _ in 0..10 {
            assert_eq!(last_octet(&endpoints.pick(None).unwrap()), 2);
        }
    }

    #[test]
    fn ejections_respect_the_ceiling_but_allow_one() {
        let policy = outlier(10.0);
        let endpoints = Endpoints::new(
            &[endpoint(1, 1), endpoint(2, 1), endpoint(3, 1)],
            LbPolicy::RoundRobin,
            Some(&policy),
            None,
        );
        for index in 0..3 {
            for _ in 0..2 {
                endpoints.report(index, TryResult::LOCAL_ERROR);
            }
        }
        let now = endpoints.now_ms();
        let ejected: Vec<bool> = endpoints
            .list()
            .iter()
            .map(|endpoint| endpoint.outlier.is_ejected(now))
            .collect();
        assert_eq!(ejected, [true, false, false]);
    }

    #[test]
    fn successes_reset_the_count() {
        let policy = outlier(100.0);
        let endpoints = Endpoints::new(
            &[endpoint(1, 1), endpoint(2, 1)],
            LbPolicy::RoundRobin,
            Some(&policy),
            None,
        );
        endpoints.report(0, TryResult::from_status(500));
        endpoints.report(0, TryResult::Success);
        endpoints.report(0, TryResult::from_status(500));
        assert!(!endpoints.list()[0].outlier.is_ejected(endpoints.now_ms()));
    }

    fn located(last: u8, region: &str, zone: &str) -> Endpoint {
        Endpoint {
            locality: Locality {
                region: region.into(),
                zone: zone.into(),
                sub_zone: String::new(),
            },
            ..endpoint(last, 1)
        }
    }

    #[test]
    fn locality_failover_prefers_the_closest_healthy_level() {
        let own = Locality {
            region: "r1".into(),
            zone: "z1".into(),
            sub_zone: String::new(),
        };
        let policy = outlier(100.0);
        let endpoints = Endpoints::new(
            &[
                located(3, "r2", "z9"),
                located(2, "r1", "z2"),
                located(1, "r1", "z1"),
            ],
            LbPolicy::RoundRobin,
            Some(&policy),
            Some(&own),
        );
        let picks = |endpoints: &Arc<Endpoints>| -> Vec<u8> {
            (0..4)
                .map(|_| last_octet(&endpoints.pick(None).unwrap()))
                .collect()
        };
        assert_eq!(picks(&endpoints), [1, 1, 1, 1]);
        // Endpoint order in the list is by priority: same zone, same region, elsewhere.
        endpoints.report(0, TryResult::LOCAL_ERROR);
        endpoints.report(0, TryResult::LOCAL_ERROR);
        assert_eq!(picks(&endpoints), [2, 2, 2, 2]);
        endpoints.report(1, TryResult::LOCAL_ERROR);
        endpoints.report(1, TryResult::LOCAL_ERROR);
        assert_eq!(picks(&endpoints), [3, 3, 3, 3]);
    }

    #[test]
    fn without_locality_all_endpoints_share_one_level() {
        let endpoints = Endpoints::new(
            &[located(1, "r1", "z1"), located(2, "r2", "z2")],
            LbPolicy::RoundRobin,
            None,
            None,
        );
        let picks: Vec<u8> = (0..4)
            .map(|_| last_octet(&endpoints.pick(None).unwrap()))
            .collect();
        assert_eq!(picks, [1, 2, 1, 2]);
    }

    fn hashed(outlier: Option<&OutlierDetection>) -> Arc<Endpoints> {
        let policy = ConsistentHashPolicy {
            key: HashKey::Header(http::HeaderName::from_static("x-user")),
            algorithm: consistent_hash::HashAlgorithm::default(),
        };
        Endpoints::new_hashed(
            &[endpoint(1, 1), endpoint(2, 1), endpoint(3, 1)],
            LbPolicy::RoundRobin,
            outlier,
            None,
            Some(&policy),
        )
    }

    #[test]
    fn consistent_hash_sticks_to_one_endpoint_per_key_and_spreads_keys() {
        let endpoints = hashed(None);
        let mut owners = std::collections::BTreeSet::new();
        for user in 0..30 {
            let parts = http::Request::get("/")
                .header("x-user", format!("user-{user}"))
                .body(())
                .unwrap()
                .into_parts()
                .0;
            let hash = endpoints.request_hash(&parts, None);
            assert!(hash.is_some());
            let first = last_octet(&endpoints.pick_hashed(None, hash).unwrap());
            for _ in 0..5 {
                assert_eq!(
                    last_octet(&endpoints.pick_hashed(None, hash).unwrap()),
                    first
                );
            }
            owners.insert(first);
        }
        assert_eq!(owners.len(), 3, "30 keys should reach all 3 endpoints");
        // Without a key the cluster's own policy (round robin here) applies.
        let picks: Vec<u8> = (0..3)
            .map(|_| last_octet(&endpoints.pick_hashed(None, None).unwrap()))
            .collect();
        assert_eq!(picks, [1, 2, 3]);
    }

    #[test]
    fn consistent_hash_moves_off_excluded_and_ejected_endpoints() {
        let policy = outlier(100.0);
        let endpoints = hashed(Some(&policy));
        let hash = Some(7);
        let owner = endpoints.pick_hashed(None, hash).unwrap();
        let (owner_octet, owner_address) = (last_octet(&owner), owner.endpoint().address);
        drop(owner);
        let retry = endpoints.pick_hashed(Some(owner_address), hash).unwrap();
        assert_ne!(last_octet(&retry), owner_octet);
        let index = endpoints
            .list()
            .iter()
            .position(|e| e.address == owner_address)
            .unwrap();
        endpoints.report(index, TryResult::from_status(500));
        endpoints.report(index, TryResult::from_status(500));
        let moved = last_octet(&endpoints.pick_hashed(None, hash).unwrap());
        assert_ne!(moved, owner_octet, "an ejected endpoint loses its keys");
        assert_eq!(
            last_octet(&endpoints.pick_hashed(None, hash).unwrap()),
            moved
        );
    }

    #[test]
    fn source_hash_applies_only_to_use_source_ip() {
        let by_header = hashed(None);
        let source: IpAddr = "198.18.0.9".parse().unwrap();
        assert_eq!(by_header.source_hash(source), None);
        let by_source = Endpoints::new_hashed(
            &[endpoint(1, 1), endpoint(2, 1)],
            LbPolicy::RoundRobin,
            None,
            None,
            Some(&ConsistentHashPolicy {
                key: HashKey::SourceIp,
                algorithm: consistent_hash::HashAlgorithm::Maglev {
                    table_size: consistent_hash::DEFAULT_MAGLEV_TABLE_SIZE,
                },
            }),
        );
        let hash = by_source.source_hash(source);
        assert!(hash.is_some());
        let first = last_octet(&by_source.pick_hashed(None, hash).unwrap());
        assert_eq!(
            last_octet(&by_source.pick_hashed(None, hash).unwrap()),
            first
        );
    }

    #[test]
    fn picked_endpoint_counts_as_active_until_dropped() {
        let endpoints = Endpoints::new(&[endpoint(1, 1)], LbPolicy::RoundRobin, None, None);
        let picked = endpoints.pick(None).unwrap();
        assert_eq!(endpoints.list()[0].active_requests(), 1);
        drop(picked);
        assert_eq!(endpoints.list()[0].active_requests(), 0);
    }
}
