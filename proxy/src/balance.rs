//! Endpoint selection for a cluster: weighted round robin, weighted random, and least request
//! by power of two choices (Envoy's `ROUND_ROBIN`, `RANDOM`, `LEAST_REQUEST`; Istio
//! `LoadBalancerSettings.simple`), consistent hashing by ring hash or Maglev (Istio
//! `LoadBalancerSettings.consistentHash`, see [`consistent_hash`]), locality priorities and
//! weights (Istio `localityLbSetting`, see [`locality`]) and slow start (Istio `warmup`).
//!
//! A pick goes, as in Envoy: priority level (by the levels' health, overprovisioning 1.4) →
//! locality within the level (only with `distribute` weights) → endpoint by the policy,
//! skipping ejected endpoints.
//!
//! Lock-free: a cluster's endpoints are immutable for the life of a balancer; the round robin
//! cursor and the per-endpoint active-request counts are atomics.

pub mod consistent_hash;
pub mod locality;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use rand::Rng;
use weft_proxy_config::{
    Cluster, Endpoint, LbPolicy, Locality, LocalityLbSetting, Node, OutlierDetection, Warmup,
};

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
    /// When the endpoint joined the cluster (slow start counts from here; kept across
    /// rebuilds of the balancer while the address stays).
    pub joined: Instant,
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

/// One priority level: a range of the endpoint list, split into localities when they carry
/// `distribute` weights.
#[derive(Debug, Clone)]
struct Level {
    range: Range<usize>,
    /// `(range, locality weight)`; one group covering `range` (weight unused) without
    /// locality weights.
    groups: Vec<(Range<usize>, u64)>,
}

/// What a balancer is built from besides its endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct BalancerSettings<'a> {
    /// The policy (`PASSTHROUGH`: no picks).
    pub policy: LbPolicy,
    /// Passive health checking; also enables locality failover (Istio's rule).
    pub outlier: Option<&'a OutlierDetection>,
    /// Consistent hashing over the endpoints.
    pub consistent_hash: Option<&'a ConsistentHashPolicy>,
    /// The proxy's place; `None`: locality is ignored.
    pub origin: Option<locality::Origin<'a>>,
    /// The cluster's locality setting (`None`: the mesh default).
    pub locality_lb: Option<&'a LocalityLbSetting>,
    /// Slow start (only `ROUND_ROBIN` and `LEAST_REQUEST` use it).
    pub warmup: Option<&'a Warmup>,
    /// The balancer being replaced: endpoints it holds keep their join time.
    pub previous: Option<&'a Endpoints>,
}

/// A cluster's endpoints and its balancer.
#[derive(Debug)]
pub struct Endpoints {
    list: Vec<EndpointState>,
    /// `cumulative[i]` is the sum of the weights of endpoints `0..=i`.
    cumulative: Vec<u64>,
    policy: LbPolicy,
    cursor: AtomicU64,
    /// Priority levels, best first, over `list` (sorted by level, then locality).
    levels: Vec<Level>,
    outlier: Option<OutlierPolicy>,
    /// The clock origin of ejection times.
    origin: Instant,
    /// The latest end of any ejection (ms since `origin`): before it, picks check ejections.
    ejections_until_ms: AtomicU64,
    /// Consistent hashing: what requests are hashed on and the table over `list`.
    hash: Option<(HashKey, HashTable)>,
    /// Slow start and the time the last endpoint leaves it.
    warmup: Option<(Warmup, Instant)>,
}

impl Endpoints {
    /// The balancer of `cluster` over `endpoints` (its static endpoints, or addresses DNS
    /// discovery found) for the proxy `node`: the cluster's policy, outlier detection,
    /// consistent hashing, locality setting against the node's locality and labels, and
    /// slow start, with join times carried over from `previous`.
    pub fn for_cluster(
        cluster: &Cluster,
        endpoints: &[Endpoint],
        node: &Node,
        previous: Option<&Endpoints>,
    ) -> Arc<Self> {
        let hash = cluster
            .consistent_hash
            .as_ref()
            .and_then(ConsistentHashPolicy::from_model);
        Self::build(
            endpoints,
            BalancerSettings {
                policy: cluster.lb_policy,
                outlier: cluster.outlier_detection.as_ref(),
                consistent_hash: hash.as_ref(),
                origin: Some(locality::Origin {
                    locality: &node.locality,
                    labels: &node.labels,
                }),
                locality_lb: cluster.locality_lb.as_ref(),
                warmup: cluster.warmup.as_ref(),
                previous,
            },
        )
    }

    /// Builds the balancer for `endpoints` under `policy`, with passive health checking when
    /// `outlier` is set and, with it, Istio's default locality failover from `locality` (the
    /// proxy's own). Endpoints with weight 0 are treated as weight 1 (validation rejects them
    /// anyway).
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
        let labels = BTreeMap::new();
        Self::build(
            endpoints,
            BalancerSettings {
                policy,
                outlier,
                consistent_hash,
                origin: locality.map(|locality| locality::Origin {
                    locality,
                    labels: &labels,
                }),
                ..Default::default()
            },
        )
    }

    /// Builds the balancer for `endpoints` with `settings` (see [`BalancerSettings`]).
    pub fn build(endpoints: &[Endpoint], settings: BalancerSettings<'_>) -> Arc<Self> {
        let placements = match settings.origin {
            Some(origin) => locality::plan(
                origin,
                settings.locality_lb,
                endpoints,
                settings.outlier.is_some(),
            ),
            None => endpoints
                .iter()
                .map(|_| {
                    Some(locality::Placement {
                        priority: 0,
                        locality_weight: None,
                    })
                })
                .collect(),
        };
        let mut placed: Vec<(&Endpoint, locality::Placement)> = endpoints
            .iter()
            .zip(placements)
            .filter_map(|(endpoint, placement)| Some((endpoint, placement?)))
            .collect();
        // Stable: config order within a locality.
        placed.sort_by(|(_, a), (_, b)| {
            a.priority.cmp(&b.priority).then_with(|| {
                let key = |p: &locality::Placement| {
                    p.locality_weight.as_ref().map(|(locality, _)| {
                        (
                            locality.region.clone(),
                            locality.zone.clone(),
                            locality.sub_zone.clone(),
                        )
                    })
                };
                key(a).cmp(&key(b))
            })
        });
        let levels = levels_of(&placed);
        let now = Instant::now();
        let joined_before = |address: SocketAddr| {
            settings.previous.and_then(|previous| {
                previous
                    .list
                    .iter()
                    .find(|endpoint| endpoint.address == address)
                    .map(|endpoint| endpoint.joined)
            })
        };
        let mut total = 0u64;
        let mut cumulative = Vec::with_capacity(placed.len());
        let list = placed
            .iter()
            .map(|(endpoint, _)| {
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
                    joined: joined_before(address).unwrap_or(now),
                    active: AtomicUsize::new(0),
                    outlier: OutlierState::default(),
                }
            })
            .collect::<Vec<EndpointState>>();
        let hash = settings.consistent_hash.map(|hash| {
            let hosts: Vec<(String, u32)> = list
                .iter()
                .map(|endpoint| (endpoint.address.to_string(), endpoint.weight))
                .collect();
            (hash.key.clone(), HashTable::build(hash.algorithm, &hosts))
        });
        let slow_start = matches!(
            settings.policy,
            LbPolicy::RoundRobin | LbPolicy::LeastRequest
        );
        let warmup = settings.warmup.filter(|_| slow_start).and_then(|warmup| {
            let last = list.iter().map(|endpoint| endpoint.joined).max()?;
            Some((
                warmup.clone(),
                last + std::time::Duration::from_millis(warmup.duration_ms),
            ))
        });
        Arc::new(Self {
            list,
            cumulative,
            policy: settings.policy,
            cursor: AtomicU64::new(0),
            levels,
            outlier: OutlierPolicy::from_model(settings.outlier),
            origin: now,
            ejections_until_ms: AtomicU64::new(0),
            hash,
            warmup,
        })
    }

    /// The endpoints, by priority level (and locality), config order within.
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
        // Only ejections read the clock: without outlier detection, no clock read per pick.
        let now = if self.outlier.is_some() {
            self.now_ms()
        } else {
            0
        };
        let ejecting = self.ejecting(now);
        let level = self.choose_level(now, ejecting, None)?;
        let range = self.choose_group(level, now, ejecting);
        let mut index = match self.warming() {
            Some(at) => self.pick_warming(range.clone(), at),
            None => self.pick_static(range.clone()),
        };
        if range.len() > 1 && Some(self.list[index].address) == exclude {
            index = range.start + (index - range.start + 1) % range.len();
        }
        if ejecting {
            index = self.skip_ejected(index, &level.range, range, now);
        }
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
    /// [`Endpoints::pick`]) or outside the priority level the hash selects. Without a hash or
    /// without consistent hashing, the same as [`Endpoints::pick`]. `None` as
    /// [`Endpoints::pick`].
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
        let now = self.now_ms();
        let ejecting = self.ejecting(now);
        let level = self.choose_level(now, ejecting, Some(hash))?.range.clone();
        let ejections = ejecting && self.ejections_apply(&level, now);
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

    /// Whether some ejection may be in force at `now`.
    fn ejecting(&self, now: u64) -> bool {
        self.outlier.is_some() && now < self.ejections_until_ms.load(Ordering::Relaxed)
    }

    /// Whether ejections are in force for `range` at `now`: enough endpoints stay healthy
    /// (none healthy, or fewer than `min_health_percent`, is Envoy's panic mode, where
    /// ejections are ignored).
    fn ejections_apply(&self, range: &Range<usize>, now: u64) -> bool {
        let Some(policy) = &self.outlier else {
            return false;
        };
        let (healthy, total) = self.health(range, now);
        let healthy_percent = healthy as f64 * 100.0 / total.max(1) as f64;
        healthy > 0 && healthy_percent >= policy.min_health_percent
    }

    /// `(healthy, total)` endpoints of `range` at `now`.
    fn health(&self, range: &Range<usize>, now: u64) -> (usize, usize) {
        let endpoints = &self.list[range.clone()];
        let healthy = endpoints
            .iter()
            .filter(|endpoint| !endpoint.outlier.is_ejected(now))
            .count();
        (healthy, endpoints.len())
    }

    /// The priority level of this pick: the first level while nothing is ejected, else by
    /// Envoy's priority load ([`locality::priority_loads`]) with a random draw, or `hash`'s
    /// draw for consistent hashing (so a key stays on its level). `None` without endpoints.
    fn choose_level(&self, now: u64, ejecting: bool, hash: Option<u64>) -> Option<&Level> {
        let first = self.levels.first()?;
        if self.levels.len() == 1 || !ejecting {
            return Some(first);
        }
        let health: Vec<(usize, usize)> = self
            .levels
            .iter()
            .map(|level| self.health(&level.range, now))
            .collect();
        let loads = locality::priority_loads(&health);
        let draw = match hash {
            Some(hash) => (hash % 10_000) as f64 / 100.0,
            None => rand::rng().random_range(0.0..100.0),
        };
        let mut reached = 0.0;
        for (level, load) in self.levels.iter().zip(&loads) {
            reached += load;
            if *load > 0.0 && draw < reached {
                return Some(level);
            }
        }
        // Rounding left the draw past the last load: the last level with any load.
        self.levels
            .iter()
            .zip(&loads)
            .rev()
            .find(|(_, load)| **load > 0.0)
            .map(|(level, _)| level)
            .or(Some(first))
    }

    /// The endpoints of `level` to pick from: the level itself, or with locality weights one
    /// locality, drawn by weight × availability (Envoy's locality-weighted load balancing;
    /// the plain weights when every locality is unavailable).
    fn choose_group(&self, level: &Level, now: u64, ejecting: bool) -> Range<usize> {
        if level.groups.len() <= 1 {
            return level.range.clone();
        }
        let effective: Vec<f64> = level
            .groups
            .iter()
            .map(|(range, weight)| {
                let available = if ejecting {
                    let (healthy, total) = self.health(range, now);
                    locality::availability(healthy, total)
                } else {
                    1.0
                };
                *weight as f64 * available
            })
            .collect();
        let total: f64 = effective.iter().sum();
        let weights: Vec<f64> = if total > 0.0 {
            effective
        } else {
            level
                .groups
                .iter()
                .map(|(_, weight)| *weight as f64)
                .collect()
        };
        let index = weighted_draw(&weights).unwrap_or(0);
        level.groups[index].0.clone()
    }

    /// A pick in `range` by the policy over the static weights.
    fn pick_static(&self, range: Range<usize>) -> usize {
        if range.len() == 1 {
            // One candidate: every policy picks it (no draw, no cursor step).
            return range.start;
        }
        let base = range
            .start
            .checked_sub(1)
            .map_or(0, |before| self.cumulative[before]);
        let total = self.cumulative[range.end - 1] - base;
        match self.policy {
            LbPolicy::RoundRobin | LbPolicy::Passthrough => {
                self.by_weight(base + self.cursor.fetch_add(1, Ordering::Relaxed) % total)
            }
            LbPolicy::Random => self.by_weight(base + rand::rng().random_range(0..total)),
            LbPolicy::LeastRequest => {
                let mut rng = rand::rng();
                let first = self.by_weight(base + rng.random_range(0..total));
                let second = self.by_weight(base + rng.random_range(0..total));
                self.less_loaded(first, second, |index| f64::from(self.list[index].weight))
            }
        }
    }

    /// `Some(now)` while an endpoint may be in slow start.
    fn warming(&self) -> Option<Instant> {
        let (_, until) = self.warmup.as_ref()?;
        let now = Instant::now();
        (now < *until).then_some(now)
    }

    /// The weight of endpoint `index` at `now` under slow start ([`Warmup::weight_factor`]).
    fn warm_weight(&self, index: usize, now: Instant) -> f64 {
        let endpoint = &self.list[index];
        let factor = self.warmup.as_ref().map_or(1.0, |(warmup, _)| {
            let elapsed = now.saturating_duration_since(endpoint.joined).as_millis();
            warmup.weight_factor(u64::try_from(elapsed).unwrap_or(u64::MAX))
        });
        f64::from(endpoint.weight) * factor
    }

    /// A pick in `range` while endpoints are in slow start: weights change with time, so the
    /// draw is weighted random by the current weights (round robin included; Envoy's EDF
    /// scheduler gives the same shares), and least request compares active requests per
    /// unit of current weight.
    fn pick_warming(&self, range: Range<usize>, now: Instant) -> usize {
        let weights: Vec<f64> = range
            .clone()
            .map(|index| self.warm_weight(index, now))
            .collect();
        let draw = || range.start + weighted_draw(&weights).unwrap_or(0);
        match self.policy {
            LbPolicy::LeastRequest => {
                let (first, second) = (draw(), draw());
                self.less_loaded(first, second, |index| weights[index - range.start])
            }
            _ => draw(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `index`, or the next endpoint of `group` that is not ejected. Ejections are ignored
    /// when the `level` is in panic (see [`Endpoints::ejections_apply`]) or every endpoint of
    /// the group is ejected.
    fn skip_ejected(
        &self,
        index: usize,
        level: &Range<usize>,
        group: Range<usize>,
        now: u64,
    ) -> usize {
        if !self.ejections_apply(level, now) {
            return index;
        }
        (0..group.len())
            .map(|step| group.start + (index - group.start + step) % group.len())
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

    /// Of two endpoints, the one with fewer active requests per unit of `weight`.
    fn less_loaded(&self, first: usize, second: usize, weight: impl Fn(usize) -> f64) -> usize {
        let load = |index: usize| {
            (self.list[index].active_requests() as f64 + 1.0) / weight(index).max(f64::MIN_POSITIVE)
        };
        if load(second) < load(first) {
            second
        } else {
            first
        }
    }
}

/// The priority levels of `placed` (sorted by priority, then locality): one per priority,
/// each with one group per locality when placements carry locality weights.
fn levels_of(placed: &[(&Endpoint, locality::Placement)]) -> Vec<Level> {
    let mut levels: Vec<Level> = Vec::new();
    for (index, (_, placement)) in placed.iter().enumerate() {
        let same_level = levels
            .last()
            .is_some_and(|level| placed[level.range.start].1.priority == placement.priority);
        if !same_level {
            levels.push(Level {
                range: index..index,
                groups: Vec::new(),
            });
        }
        let Some(level) = levels.last_mut() else {
            continue;
        };
        level.range.end = index + 1;
        let locality = placement.locality_weight.as_ref();
        let same_group = level.groups.last().is_some_and(|(range, _)| {
            placed[range.start]
                .1
                .locality_weight
                .as_ref()
                .map(|(l, _)| l)
                == locality.map(|(l, _)| l)
        });
        match level.groups.last_mut() {
            Some((range, _)) if same_group => range.end = index + 1,
            _ => level
                .groups
                .push((index..index + 1, locality.map_or(1, |(_, weight)| *weight))),
        }
    }
    levels
}

/// An index drawn at random in proportion to `weights`; `None` when they sum to 0.
fn weighted_draw(weights: &[f64]) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 || weights.is_empty() {
        return None;
    }
    let mut point = rand::rng().random_range(0.0..total);
    for (index, weight) in weights.iter().enumerate() {
        if point < *weight {
            return Some(index);
        }
        point -= weight;
    }
    Some(weights.len() - 1)
}

#[cfg(test)]
mod tests;
