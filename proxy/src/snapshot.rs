//! A config snapshot: a validated [`ProxyConfig`] compiled into the lookup structures the
//! request path uses (outbound services by original destination, route tables with compiled
//! regexes, clusters with balancers and pooled clients). Immutable once built; replaced whole
//! through the [`crate::config::ConfigStore`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use regex::Regex;
use weft_proxy_config::{
    BLACK_HOLE_CLUSTER, Cidr, Cluster, DirectResponseAction, Endpoint, FaultInjection,
    HeaderMutation, LbPolicy, Node, OutboundListener, PASSTHROUGH_CLUSTER, Protocol, ProxyConfig,
    RedirectAction, RetryOn, RetryPolicy, RouteAction, RouteConfiguration, TcpRoute,
    WeightedCluster,
};

use arc_swap::ArcSwap;

use crate::FastMap;
use crate::balance::{Endpoints, PickedEndpoint};
use crate::circuit::{CircuitBreaker, Counters};
use crate::http::CompiledCors;
use crate::mesh_tls::MeshTls;
use crate::router::{CompiledMatch, DomainIndex, RouterError};
use crate::upstream::{ClientKey, ClusterClients};

/// Why a config could not be turned into a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The config failed [`ProxyConfig::validate`]; every reason is listed.
    #[error("config is invalid: {}", join(.0))]
    Invalid(Vec<weft_proxy_config::ModelError>),
    /// A route table did not compile.
    #[error("config does not compile: {0}")]
    Router(#[from] RouterError),
    /// A CORS policy does not compile.
    #[error("{0}")]
    Cors(String),
    /// A header mutation has a name or value HTTP does not allow.
    #[error("{field}: header {name:?} cannot be sent")]
    Header {
        /// The mutation field.
        field: String,
        /// The header name.
        name: String,
    },
}

fn join(errors: &[weft_proxy_config::ModelError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A cluster's current endpoints and balancer, swapped whole when DNS discovery
/// ([`crate::dns`]) finds new addresses; a pick uses the balancer current at that moment.
pub struct ClusterEndpoints {
    current: ArcSwap<Endpoints>,
}

impl ClusterEndpoints {
    /// Endpoints starting with `endpoints`.
    pub fn new(endpoints: Arc<Endpoints>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::new(endpoints),
        })
    }

    /// The current endpoints and balancer.
    pub fn load(&self) -> Arc<Endpoints> {
        self.current.load_full()
    }

    /// Replaces the endpoints and balancer (picks in flight keep the old ones).
    pub fn store(&self, endpoints: Arc<Endpoints>) {
        self.current.store(endpoints);
    }

    /// [`Endpoints::pick`] on the current endpoints.
    pub fn pick(&self, exclude: Option<SocketAddr>) -> Option<PickedEndpoint> {
        self.load().pick(exclude)
    }

    /// [`Endpoints::pick_hashed`] on the current endpoints.
    pub fn pick_hashed(
        &self,
        exclude: Option<SocketAddr>,
        hash: Option<u64>,
    ) -> Option<PickedEndpoint> {
        self.load().pick_hashed(exclude, hash)
    }

    /// [`Endpoints::request_hash`] (the hash key does not depend on the addresses).
    pub fn request_hash(
        &self,
        parts: &http::request::Parts,
        source: Option<std::net::IpAddr>,
    ) -> Option<u64> {
        self.current.load().request_hash(parts, source)
    }

    /// [`Endpoints::source_hash`].
    pub fn source_hash(&self, source: std::net::IpAddr) -> Option<u64> {
        self.current.load().source_hash(source)
    }
}

/// A cluster at run time.
pub struct ClusterRuntime {
    /// The cluster's name (shared with each request's log: no copy per request).
    pub name: Arc<str>,
    /// Endpoints and balancer (swapped by DNS discovery for DNS clusters).
    pub endpoints: Arc<ClusterEndpoints>,
    /// Forward to the original destination instead of an endpoint (`PassthroughCluster`, or
    /// `PASSTHROUGH` load balancing).
    pub passthrough: bool,
    /// Drop traffic (`BlackHoleCluster`).
    pub black_hole: bool,
    /// Pooled clients, or why they could not be built (requests then fail with `UF`).
    pub clients: Result<Arc<ClusterClients>, String>,
    /// Circuit breaking limits and counters.
    pub breaker: CircuitBreaker,
}

/// A compiled header mutation, applied in the order remove, set, add.
#[derive(Debug, Default)]
pub struct CompiledMutation {
    /// Headers removed.
    pub remove: Vec<HeaderName>,
    /// Headers overwritten.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers appended.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl CompiledMutation {
    fn compile(field: &str, mutation: &HeaderMutation) -> Result<Self, SnapshotError> {
        let name = |name: &str| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| SnapshotError::Header {
                field: field.to_owned(),
                name: name.to_owned(),
            })
        };
        let pair = |(key, value): (&String, &String)| {
            let value = HeaderValue::from_str(value).map_err(|_| SnapshotError::Header {
                field: field.to_owned(),
                name: key.clone(),
            })?;
            Ok::<_, SnapshotError>((name(key)?, value))
        };
        Ok(Self {
            remove: mutation
                .remove
                .iter()
                .map(|key| name(key))
                .collect::<Result<_, _>>()?,
            set: mutation.set.iter().map(pair).collect::<Result<_, _>>()?,
            add: mutation.add.iter().map(pair).collect::<Result<_, _>>()?,
        })
    }

    /// Applies the mutation to `headers`.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }

    /// Whether the mutation changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// A compiled retry policy.
#[derive(Debug)]
pub struct CompiledRetry {
    /// Retries after the first try.
    pub attempts: u32,
    /// Per-try timeout.
    pub per_try_timeout: Option<Duration>,
    /// Back-off base interval.
    pub backoff_base: Duration,
    /// The conditions.
    pub retry_on: Vec<RetryOn>,
    /// Statuses for `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
}

impl CompiledRetry {
    fn compile(policy: &RetryPolicy) -> Self {
        Self {
            attempts: policy.attempts,
            per_try_timeout: policy.per_try_timeout_ms.map(Duration::from_millis),
            backoff_base: Duration::from_millis(policy.backoff_base_ms.max(1)),
            retry_on: policy.retry_on.clone(),
            retriable_status_codes: policy.retriable_status_codes.clone(),
        }
    }

    /// Whether any condition in `conditions` is enabled.
    pub fn on(&self, conditions: &[RetryOn]) -> bool {
        self.retry_on.iter().any(|on| conditions.contains(on))
    }

    /// Whether a gRPC status (the `grpc-status` of a trailers-only response) is retried:
    /// `cancelled` 1, `deadline-exceeded` 4, `resource-exhausted` 8, `internal` 13,
    /// `unavailable` 14 (Envoy's `x-envoy-retry-grpc-on`).
    pub fn retries_grpc(&self, code: u32) -> bool {
        let condition = match code {
            1 => RetryOn::Cancelled,
            4 => RetryOn::DeadlineExceeded,
            8 => RetryOn::ResourceExhausted,
            13 => RetryOn::Internal,
            14 => RetryOn::Unavailable,
            _ => return false,
        };
        self.on(&[condition])
    }

    /// Whether a response with `status` is retried (Envoy: `5xx`, `gateway-error`,
    /// `retriable-4xx` (409), `retriable-status-codes`).
    pub fn retries_status(&self, status: u16) -> bool {
        (status >= 500 && self.on(&[RetryOn::FiveXx]))
            || (matches!(status, 502..=504) && self.on(&[RetryOn::GatewayError]))
            || (status == 409 && self.on(&[RetryOn::Retriable4xx]))
            || (self.on(&[RetryOn::RetriableStatusCodes])
                && self.retriable_status_codes.contains(&status))
    }
}

/// A compiled `rewrite`.
#[derive(Debug)]
pub struct CompiledRewrite {
    /// Replacement for the matched prefix (or the whole path).
    pub uri: Option<String>,
    /// Regex rewrite of the path.
    pub uri_regex: Option<(Regex, String)>,
    /// Replacement authority.
    pub authority: Option<HeaderValue>,
}

/// A compiled forwarding action.
pub struct ForwardPlan {
    /// Weighted destination clusters.
    pub clusters: Vec<(Arc<ClusterRuntime>, u32)>,
    /// Sum of the weights (at least 1).
    pub total_weight: u64,
    /// Route timeout.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: Option<CompiledRetry>,
    /// Fault injection.
    pub fault: Option<FaultInjection>,
    /// Rewrite.
    pub rewrite: Option<CompiledRewrite>,
    /// Request header mutation.
    pub request_headers: CompiledMutation,
    /// Response header mutation.
    pub response_headers: CompiledMutation,
    /// Mirrors: cluster and percentage.
    pub mirrors: Vec<(Arc<ClusterRuntime>, f64)>,
    /// CORS policy.
    pub cors: Option<CompiledCors>,
}

impl ForwardPlan {
    /// Picks a cluster in proportion to weight, using `point` in `0..total_weight`.
    pub fn cluster_at(&self, point: u64) -> Option<&Arc<ClusterRuntime>> {
        let mut point = point;
        for (cluster, weight) in &self.clusters {
            let weight = u64::from(*weight);
            if point < weight {
                return Some(cluster);
            }
            point -= weight;
        }
        self.clusters.last().map(|(cluster, _)| cluster)
    }
}

/// A compiled route action.
pub enum CompiledAction {
    /// Forward upstream.
    Forward(Box<ForwardPlan>),
    /// Redirect.
    Redirect(RedirectAction),
    /// Fixed response.
    DirectResponse(DirectResponseAction),
}

/// A compiled route.
pub struct CompiledRoute {
    /// The route's name (shared with each request's log: no copy per request).
    pub name: Arc<str>,
    /// Any-of matches; empty matches everything (routes whose matches all exclude this proxy
    /// are dropped at compile time).
    pub matches: Vec<CompiledMatch>,
    /// The action.
    pub action: CompiledAction,
}

/// A compiled virtual host.
pub struct CompiledVirtualHost {
    /// Name.
    pub name: String,
    /// Ordered routes.
    pub routes: Vec<CompiledRoute>,
}

/// A compiled route table.
pub struct RouteTable {
    /// Domain index into `virtual_hosts`.
    pub domains: DomainIndex,
    /// The virtual hosts.
    pub virtual_hosts: Vec<CompiledVirtualHost>,
}

/// A compiled TCP route.
pub struct CompiledTcpRoute {
    /// Any-of matches: `(port, subnets)`; empty matches everything.
    pub matches: Vec<(Option<u16>, Vec<Cidr>)>,
    /// Weighted clusters.
    pub clusters: Vec<(Arc<ClusterRuntime>, u32)>,
}

/// One outbound service at run time.
pub struct OutboundService {
    /// Listener name.
    pub name: String,
    /// The service's hostname (shared with each request's log: no copy per request).
    pub hostname: Arc<str>,
    /// Protocol.
    pub protocol: Protocol,
    /// HTTP routes.
    pub http: Option<RouteTable>,
    /// TCP routes.
    pub tcp: Vec<CompiledTcpRoute>,
}

/// A snapshot's clusters by name.
pub type Clusters = FastMap<String, Arc<ClusterRuntime>>;

/// A compiled config.
pub struct Snapshot {
    /// The config this was built from.
    pub config: Arc<ProxyConfig>,
    /// Outbound services.
    pub outbound: Vec<OutboundService>,
    by_address: FastMap<SocketAddr, usize>,
    by_port: FastMap<u16, usize>,
    clusters: Clusters,
    /// Gateway listeners (a `router` proxy's config), one per bound address.
    pub gateways: Vec<crate::gateway::GatewayPort>,
    /// Inbound ports' circuit breakers (`InboundPort::connection_pool`), counters kept across
    /// snapshots per port.
    inbound_breakers: HashMap<u16, CircuitBreaker>,
}

impl Snapshot {
    /// Validates and compiles `config`. Clusters whose client settings did not change since
    /// `previous` keep their clients (and so their pooled connections). `tls` provides mTLS
    /// for `ISTIO_MUTUAL` clusters.
    ///
    /// Errors: [`SnapshotError::Invalid`] with every validation error, or a compile error.
    pub fn build(
        config: ProxyConfig,
        previous: Option<&Snapshot>,
        tls: Option<&Arc<dyn MeshTls>>,
    ) -> Result<Self, SnapshotError> {
        config.validate().map_err(SnapshotError::Invalid)?;
        let mut clusters = Clusters::default();
        for cluster in &config.clusters {
            let reused = previous
                .and_then(|snapshot| snapshot.clusters.get(&cluster.name))
                .and_then(|old| old.clients.as_ref().ok())
                .filter(|clients| clients.key == ClientKey::of(cluster))
                .cloned();
            let counters = previous
                .and_then(|snapshot| snapshot.clusters.get(&cluster.name))
                .map(|old| Arc::clone(old.breaker.counters()))
                .unwrap_or_default();
            let old_endpoints = previous
                .and_then(|snapshot| snapshot.clusters.get(&cluster.name))
                .map(|old| old.endpoints.load());
            let mut runtime = cluster_runtime(
                cluster,
                reused,
                tls,
                counters,
                &config.node,
                old_endpoints.as_deref(),
            );
            // Unchanged endpoints keep their balancer state: round-robin cursor, active
            // requests and outlier ejections (Envoy keeps host state across EDS updates).
            if let Some(old) = previous.and_then(|snapshot| {
                let old_model = snapshot.config.cluster(&cluster.name)?;
                let same = old_model.endpoints == cluster.endpoints
                    && snapshot.config.node.locality == config.node.locality
                    // Proxy labels matter only to `failoverPriority`.
                    && (snapshot.config.node.labels == config.node.labels
                        || cluster
                            .locality_lb
                            .as_ref()
                            .is_none_or(|setting| setting.failover_priority.is_empty()))
                    && old_model.locality_lb == cluster.locality_lb
                    && old_model.warmup == cluster.warmup
                    && old_model.lb_policy == cluster.lb_policy
                    && old_model.consistent_hash == cluster.consistent_hash
                    && old_model.outlier_detection == cluster.outlier_detection
                    && old_model.dns == cluster.dns;
                same.then(|| snapshot.clusters.get(&cluster.name))?
            }) {
                runtime.endpoints = Arc::clone(&old.endpoints);
            } else if let Some(dns) = &cluster.dns {
                // A new or changed DNS cluster: its own resolution task fills the endpoints;
                // the task ends when these endpoints are dropped with the last snapshot.
                let model = cluster.clone();
                let node = config.node.clone();
                crate::dns::spawn(
                    cluster.name.clone(),
                    dns.clone(),
                    Arc::downgrade(&runtime.endpoints),
                    move |target: &ClusterEndpoints, endpoints| {
                        target.store(balancer(&model, endpoints, &node, Some(&target.load())));
                    },
                );
            }
            clusters.insert(cluster.name.clone(), Arc::new(runtime));
        }
        for special in [PASSTHROUGH_CLUSTER, BLACK_HOLE_CLUSTER] {
            let cluster = Cluster {
                name: special.to_owned(),
                lb_policy: LbPolicy::Passthrough,
                consistent_hash: None,
                locality_lb: None,
                warmup: None,
                transport: Default::default(),
                protocol: Protocol::Unknown,
                h2_upgrade: Default::default(),
                connection_pool: Default::default(),
                outlier_detection: None,
                endpoints: Vec::new(),
                dns: None,
            };
            let reused = previous
                .and_then(|snapshot| snapshot.clusters.get(special))
                .and_then(|old| old.clients.as_ref().ok())
                .cloned();
            let mut runtime =
                cluster_runtime(&cluster, reused, None, Arc::default(), &config.node, None);
            runtime.black_hole = special == BLACK_HOLE_CLUSTER;
            clusters.insert(special.to_owned(), Arc::new(runtime));
        }
        let mut outbound = Vec::with_capacity(config.outbound.len());
        let mut by_address = FastMap::default();
        let mut by_port = FastMap::default();
        for (index, listener) in config.outbound.iter().enumerate() {
            outbound.push(compile_listener(listener, &config, &clusters)?);
            if listener.addresses.is_empty() {
                by_port.insert(listener.port, index);
            }
            for address in &listener.addresses {
                by_address.insert(SocketAddr::new(*address, listener.port), index);
            }
        }
        let gateways = crate::gateway::compile(&config, &clusters, previous, tls)?;
        let inbound_breakers = (config.inbound.ports.iter())
            .filter_map(|port| {
                let counters = previous.and_then(|old| old.inbound_breakers.get(&port.port));
                let counters = counters.map(|old| Arc::clone(old.counters()));
                let http2 = matches!(port.protocol, Protocol::Http2 | Protocol::Grpc);
                let pool = port.connection_pool.as_ref()?;
                Some((
                    port.port,
                    CircuitBreaker::new(pool, http2, counters.unwrap_or_default()),
                ))
            })
            .collect();
        Ok(Self {
            config: Arc::new(config),
            outbound,
            by_address,
            by_port,
            clusters,
            gateways,
            inbound_breakers,
        })
    }

    /// The outbound service for an original destination: by exact (VIP, port), else by port
    /// alone for address-less listeners.
    pub fn outbound_for(&self, destination: SocketAddr) -> Option<&OutboundService> {
        let destination = normalize(destination);
        self.by_address
            .get(&destination)
            .or_else(|| self.by_port.get(&destination.port()))
            .and_then(|index| self.outbound.get(*index))
    }

    /// The gateway listener bound at `address` (as [`crate::gateway::GatewayPort::address`]).
    pub fn gateway_at(&self, address: SocketAddr) -> Option<&crate::gateway::GatewayPort> {
        self.gateways.iter().find(|port| port.address == address)
    }

    /// The cluster named `name`, including the special `PassthroughCluster` and
    /// `BlackHoleCluster`.
    pub fn cluster(&self, name: &str) -> Option<&Arc<ClusterRuntime>> {
        self.clusters.get(name)
    }

    /// The circuit breaker of inbound port `port`, when its config sets a connection pool.
    pub fn inbound_breaker(&self, port: u16) -> Option<&CircuitBreaker> {
        self.inbound_breakers.get(&port)
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so dual-stack sockets find IPv4 VIPs.
pub fn normalize(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => address,
        },
        SocketAddr::V4(_) => address,
    }
}

fn cluster_runtime(
    cluster: &Cluster,
    reused: Option<Arc<ClusterClients>>,
    tls: Option<&Arc<dyn MeshTls>>,
    counters: Arc<Counters>,
    node: &Node,
    previous: Option<&Endpoints>,
) -> ClusterRuntime {
    let clients = match reused {
        Some(clients) => Ok(clients),
        None => ClusterClients::new(cluster, tls).map(Arc::new),
    };
    if let Err(reason) = &clients {
        tracing::warn!(cluster = %cluster.name, %reason, "cluster unusable; requests fail with UF");
    }
    ClusterRuntime {
        name: cluster.name.as_str().into(),
        // A DNS cluster starts empty (`UH`) until its first answer.
        endpoints: ClusterEndpoints::new(balancer(
            cluster,
            if cluster.dns.is_some() {
                &[]
            } else {
                &cluster.endpoints
            },
            node,
            previous,
        )),
        passthrough: cluster.lb_policy == LbPolicy::Passthrough,
        black_hole: false,
        breaker: CircuitBreaker::new(
            &cluster.connection_pool,
            ClientKey::of(cluster).http2(),
            counters,
        ),
        clients,
    }
}

/// The balancer of `cluster` over `endpoints` (its static endpoints, or the addresses DNS
/// discovery found) for the proxy `node` (locality load balancing reads its locality and
/// labels); endpoints of `previous` keep their join time (slow start).
fn balancer(
    cluster: &Cluster,
    endpoints: &[Endpoint],
    node: &Node,
    previous: Option<&Endpoints>,
) -> Arc<Endpoints> {
    Endpoints::for_cluster(cluster, endpoints, node, previous)
}

/// The clusters of `entries` with a positive weight that exist in `clusters`, with their
/// weights (unknown clusters are dropped; validation reports them).
pub(crate) fn weighted(
    entries: &[WeightedCluster],
    clusters: &Clusters,
) -> Vec<(Arc<ClusterRuntime>, u32)> {
    entries
        .iter()
        .filter(|entry| entry.weight > 0)
        .filter_map(|entry| {
            clusters
                .get(&entry.cluster)
                .map(|cluster| (Arc::clone(cluster), entry.weight))
        })
        .collect()
}

fn compile_listener(
    listener: &OutboundListener,
    config: &ProxyConfig,
    clusters: &Clusters,
) -> Result<OutboundService, SnapshotError> {
    let http = match &listener.http {
        None => None,
        Some(table) => Some(compile_route_table(
            &format!("outbound[{}].http", listener.name),
            table,
            config,
            clusters,
        )?),
    };
    let tcp = compile_tcp_routes(&listener.tcp, config, clusters);
    Ok(OutboundService {
        name: listener.name.clone(),
        hostname: listener.hostname.as_str().into(),
        protocol: listener.protocol,
        http,
        tcp,
    })
}

/// Compiles TCP routes: match blocks whose `source_labels` exclude this proxy are dropped, and
/// routes left without a match block that selects it are dropped.
pub(crate) fn compile_tcp_routes(
    routes: &[TcpRoute],
    config: &ProxyConfig,
    clusters: &Clusters,
) -> Vec<CompiledTcpRoute> {
    routes
        .iter()
        .map(|route| {
            let matches = route
                .matches
                .iter()
                .filter(|l4| {
                    l4.source_labels
                        .iter()
                        .all(|(key, value)| config.node.labels.get(key) == Some(value))
                })
                .map(|l4| (l4.port, l4.destination_subnets.clone()))
                .collect::<Vec<_>>();
            (route, matches)
        })
        .filter(|(route, matches)| route.matches.is_empty() || !matches.is_empty())
        .map(|(route, matches)| CompiledTcpRoute {
            matches,
            clusters: weighted(&route.clusters, clusters),
        })
        .collect()
}

/// Compiles an HTTP route table; `field` names it in errors (e.g. `outbound[x].http`).
/// Routes whose match blocks all exclude this proxy (by source labels) are dropped.
///
/// Errors: a [`SnapshotError`] for a regex, header or CORS policy that does not compile.
pub(crate) fn compile_route_table(
    field: &str,
    table: &RouteConfiguration,
    config: &ProxyConfig,
    clusters: &Clusters,
) -> Result<RouteTable, SnapshotError> {
    let mut virtual_hosts = Vec::with_capacity(table.virtual_hosts.len());
    for (vh_index, vhost) in table.virtual_hosts.iter().enumerate() {
        let mut routes = Vec::with_capacity(vhost.routes.len());
        for (index, route) in vhost.routes.iter().enumerate() {
            let field = format!("{field}.virtual_hosts[{vh_index}].routes[{index}]");
            let mut matches = Vec::with_capacity(route.matches.len());
            for (m_index, route_match) in route.matches.iter().enumerate() {
                let match_field = format!("{field}.match[{m_index}]");
                if let Some(compiled) =
                    CompiledMatch::compile(&match_field, route_match, &config.node)?
                {
                    matches.push(compiled);
                }
            }
            if !route.matches.is_empty() && matches.is_empty() {
                continue; // No match block selects this proxy.
            }
            routes.push(CompiledRoute {
                name: route.name.as_str().into(),
                matches,
                action: compile_action(&field, &route.action, clusters)?,
            });
        }
        virtual_hosts.push(CompiledVirtualHost {
            name: vhost.name.clone(),
            routes,
        });
    }
    Ok(RouteTable {
        domains: DomainIndex::new(table),
        virtual_hosts,
    })
}

fn compile_action(
    field: &str,
    action: &RouteAction,
    clusters: &Clusters,
) -> Result<CompiledAction, SnapshotError> {
    Ok(match action {
        RouteAction::Redirect(redirect) => CompiledAction::Redirect(redirect.clone()),
        RouteAction::DirectResponse(direct) => CompiledAction::DirectResponse(direct.clone()),
        RouteAction::Route(forward) => {
            let weighted_clusters = weighted(&forward.clusters, clusters);
            let total_weight = weighted_clusters
                .iter()
                .map(|(_, weight)| u64::from(*weight))
                .sum::<u64>()
                .max(1);
            let rewrite = match &forward.rewrite {
                None => None,
                Some(rewrite) => Some(CompiledRewrite {
                    uri: rewrite.uri.clone(),
                    uri_regex: match &rewrite.uri_regex {
                        None => None,
                        Some(regex) => Some((
                            Regex::new(&regex.pattern).map_err(|source| RouterError::Regex {
                                field: format!("{field}.route.rewrite.uri_regex"),
                                pattern: regex.pattern.clone(),
                                source,
                            })?,
                            regex.substitution.clone(),
                        )),
                    },
                    authority: match &rewrite.authority {
                        None => None,
                        Some(authority) => {
                            Some(HeaderValue::from_str(authority).map_err(|_| {
                                SnapshotError::Header {
                                    field: format!("{field}.route.rewrite.authority"),
                                    name: "host".to_owned(),
                                }
                            })?)
                        }
                    },
                }),
            };
            CompiledAction::Forward(Box::new(ForwardPlan {
                clusters: weighted_clusters,
                total_weight,
                timeout: forward.timeout_ms.map(Duration::from_millis),
                retry: forward
                    .retry
                    .as_ref()
                    .filter(|retry| retry.attempts > 0)
                    .map(CompiledRetry::compile),
                fault: forward.fault.clone(),
                rewrite,
                request_headers: CompiledMutation::compile(
                    &format!("{field}.route.request_headers"),
                    &forward.request_headers,
                )?,
                response_headers: CompiledMutation::compile(
                    &format!("{field}.route.response_headers"),
                    &forward.response_headers,
                )?,
                mirrors: forward
                    .mirrors
                    .iter()
                    .filter_map(|mirror| {
                        clusters
                            .get(&mirror.cluster)
                            .map(|cluster| (Arc::clone(cluster), mirror.percentage))
                    })
                    .collect(),
                cors: forward
                    .cors
                    .as_ref()
                    .map(|cors| CompiledCors::compile(&format!("{field}.route.cors"), cors))
                    .transpose()
                    .map_err(SnapshotError::Cors)?,
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint_port: u16, label: &str) -> ProxyConfig {
        ProxyConfig::from_yaml(&format!(
            "node: {{id: a, namespace: default, labels: {{x: {label}}}}}\n\
             clusters:\n  - name: c\n    endpoints: [{{address: 10.0.0.1, port: {endpoint_port}}}]\n"
        ))
        .unwrap()
    }

    #[test]
    fn unchanged_clusters_keep_balancer_and_clients_across_updates() {
        let first = Snapshot::build(config(80, "one"), None, None).unwrap();
        let second = Snapshot::build(config(80, "two"), Some(&first), None).unwrap();
        let (old, new) = (first.cluster("c").unwrap(), second.cluster("c").unwrap());
        assert!(Arc::ptr_eq(&old.endpoints, &new.endpoints));
        assert!(Arc::ptr_eq(
            old.clients.as_ref().unwrap(),
            new.clients.as_ref().unwrap()
        ));
        let third = Snapshot::build(config(81, "two"), Some(&second), None).unwrap();
        let changed = third.cluster("c").unwrap();
        assert!(!Arc::ptr_eq(&new.endpoints, &changed.endpoints));
        assert!(Arc::ptr_eq(
            new.clients.as_ref().unwrap(),
            changed.clients.as_ref().unwrap()
        ));
    }

    #[test]
    fn invalid_config_is_rejected_with_every_reason() {
        let mut config = config(80, "one");
        config.clusters.push(config.clusters[0].clone());
        config.clusters[0].endpoints[0].weight = 0;
        let Err(SnapshotError::Invalid(errors)) = Snapshot::build(config, None, None) else {
            panic!("expected a validation error");
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
