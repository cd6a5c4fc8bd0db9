//! The bridge from the request path's [`RequestLog`] to Istio's metrics and access log
//! ([`crate::telemetry::Telemetry`]): fills Istio's label sets from the proxy's own node (the
//! source for outbound, the destination for inbound) and what the request knows about the peer.

use std::hash::BuildHasher;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use parking_lot::RwLock;
use weft_proxy_config::Node;

use crate::config::ConfigStore;
use crate::request_log::{Direction, RequestLog, RequestObserver, ResponseFlags};
use crate::telemetry::{
    ConnectionRecord, PeerInfo, Reporter, RequestLabels, RequestProtocol, RequestRecord,
    RequestSeries, SecurityPolicy, ServiceInfo, Telemetry, TrafficLabels, UNKNOWN,
};

/// Most label sets kept resolved; past it the cache starts over (the metric families keep
/// every series regardless, so this only bounds the cache's own memory).
const MAX_CACHED_SERIES: usize = 4096;

/// What decides a request's Istio labels besides the proxy's own node: the reporter side, the
/// destination service, the peer's SPIFFE ID (inbound), the status and the response flags.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SeriesKey<'a> {
    inbound: bool,
    destination_service: &'a str,
    source_principal: Option<&'a str>,
    response_code: u16,
    flags: ResponseFlags,
}

impl SeriesKey<'_> {
    fn of(log: &RequestLog) -> SeriesKey<'_> {
        SeriesKey {
            inbound: log.direction == Direction::Inbound,
            destination_service: &log.destination_service,
            source_principal: log.source_principal.as_deref(),
            response_code: log.status,
            flags: log.flags,
        }
    }
}

/// An owned [`SeriesKey`].
#[derive(Debug)]
struct CachedKey {
    inbound: bool,
    destination_service: String,
    source_principal: Option<String>,
    response_code: u16,
    flags: ResponseFlags,
}

impl CachedKey {
    fn matches(&self, key: &SeriesKey<'_>) -> bool {
        self.inbound == key.inbound
            && self.response_code == key.response_code
            && self.flags == key.flags
            && self.destination_service == key.destination_service
            && self.source_principal.as_deref() == key.source_principal
    }
}

/// Resolved request series for one config version (the node's labels come from the config),
/// found by the hash of a borrowed [`SeriesKey`] so a hit allocates nothing.
#[derive(Default)]
struct SeriesCache {
    version: String,
    entries: usize,
    by_hash: crate::FastMap<u64, Vec<(CachedKey, RequestSeries)>>,
}

impl SeriesCache {
    fn get(&self, version: &str, hash: u64, key: &SeriesKey<'_>) -> Option<&RequestSeries> {
        if self.version != version {
            return None;
        }
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|(cached, _)| cached.matches(key))
            .map(|(_, series)| series)
    }

    fn insert(&mut self, version: &str, hash: u64, key: &SeriesKey<'_>, series: RequestSeries) {
        if self.version != version || self.entries >= MAX_CACHED_SERIES {
            self.by_hash.clear();
            self.entries = 0;
            version.clone_into(&mut self.version);
        }
        let bucket = self.by_hash.entry(hash).or_default();
        if bucket.iter().any(|(cached, _)| cached.matches(key)) {
            return;
        }
        bucket.push((
            CachedKey {
                inbound: key.inbound,
                destination_service: key.destination_service.to_owned(),
                source_principal: key.source_principal.map(str::to_owned),
                response_code: key.response_code,
                flags: key.flags,
            },
            series,
        ));
        self.entries += 1;
    }
}

/// A [`RequestObserver`] that records Istio's metrics and access log.
///
/// Per request it looks up the resolved metric series by a small borrowed key instead of
/// building and hashing Istio's 25-label set four times (the labels are built once per
/// distinct key and config version).
pub struct TelemetryObserver {
    telemetry: Arc<Telemetry>,
    store: Arc<ConfigStore>,
    /// The node's [`PeerInfo`] for the config version it was computed from.
    own: ArcSwapOption<(String, PeerInfo)>,
    series: RwLock<SeriesCache>,
    /// Hashes [`SeriesKey`]s (foldhash: SipHash cost ≈ 400 instructions per request here).
    key_hasher: foldhash::fast::RandomState,
}

impl TelemetryObserver {
    /// Records into `telemetry`, reading the proxy's own identity from `store`'s config.
    pub fn new(telemetry: Arc<Telemetry>, store: Arc<ConfigStore>) -> Self {
        Self {
            telemetry,
            store,
            own: ArcSwapOption::empty(),
            series: RwLock::new(SeriesCache::default()),
            key_hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The proxy's own workload as a peer, recomputed only when the config version changes.
    fn own_peer(&self) -> PeerInfo {
        let Some(snapshot) = self.store.snapshot() else {
            return PeerInfo::default();
        };
        let version = &snapshot.config.version;
        if let Some(cached) = self.own.load().as_ref()
            && cached.0 == *version
        {
            return cached.1.clone();
        }
        let peer = node_peer(&snapshot.config.node);
        self.own
            .store(Some(Arc::new((version.clone(), peer.clone()))));
        peer
    }

    fn labels(&self, log: &RequestLog) -> TrafficLabels {
        let own = self.own_peer();
        match log.direction {
            Direction::Outbound => TrafficLabels {
                reporter: Reporter::Source,
                source: own,
                destination: PeerInfo::default(),
                destination_service: service_info(&log.destination_service),
                connection_security_policy: SecurityPolicy::Unknown,
            },
            Direction::Inbound => TrafficLabels {
                reporter: Reporter::Destination,
                source: log
                    .source_principal
                    .as_deref()
                    .map_or_else(PeerInfo::default, principal_peer),
                destination: own,
                destination_service: service_info(&log.destination_service),
                connection_security_policy: if log.source_principal.is_some() {
                    SecurityPolicy::MutualTls
                } else {
                    SecurityPolicy::None
                },
            },
        }
    }

    /// Records `log` in its request metrics' series: the cached one (recorded under the
    /// cache's read lock, so a hit clones nothing), or resolved and cached.
    fn record_request(&self, log: &RequestLog) {
        let snapshot = self.store.snapshot();
        let version = snapshot
            .as_ref()
            .map_or("", |snapshot| snapshot.config.version.as_str());
        let key = SeriesKey::of(log);
        let hash = self.key_hasher.hash_one(&key);
        if let Some(series) = self.series.read().get(version, hash, &key) {
            series.record(log.duration, log.request_bytes, log.response_bytes);
            return;
        }
        let labels = RequestLabels::new(
            &self.labels(log),
            RequestProtocol::Http.as_str(),
            log.status,
            None,
            &log.flags.to_string(),
        );
        let series = self.telemetry.request_series(&labels);
        series.record(log.duration, log.request_bytes, log.response_bytes);
        self.series.write().insert(version, hash, &key, series);
    }
}

impl RequestObserver for TelemetryObserver {
    fn on_request(&self, log: &RequestLog) {
        let upstream_host = |log: &RequestLog| log.upstream_host.map(|host| host.to_string());
        let upstream_cluster = |log: &RequestLog| {
            (!log.upstream_cluster.is_empty()).then(|| log.upstream_cluster.to_string())
        };
        if log.method.is_empty() {
            self.telemetry.record_connection(&ConnectionRecord {
                labels: Arc::new(self.labels(log)),
                response_flags: log.flags.to_string(),
                start_time: log.start,
                duration: log.duration,
                bytes_received: log.request_bytes,
                bytes_sent: log.response_bytes,
                upstream_host: upstream_host(log),
                upstream_cluster: upstream_cluster(log),
            });
            return;
        }
        self.record_request(log);
        if !self.telemetry.access_log_enabled() {
            return;
        }
        self.telemetry.log_request(&RequestRecord {
            labels: Arc::new(self.labels(log)),
            request_protocol: RequestProtocol::Http,
            version: match log.protocol {
                "HTTP/2" => http::Version::HTTP_2,
                "HTTP/1.0" => http::Version::HTTP_10,
                _ => http::Version::HTTP_11,
            },
            method: http::Method::from_bytes(log.method.as_bytes()).unwrap_or_default(),
            path: log.path.clone(),
            authority: (!log.authority.is_empty()).then(|| log.authority.clone()),
            response_code: log.status,
            grpc_status: None,
            response_flags: log.flags.to_string(),
            start_time: log.start,
            duration: log.duration,
            request_bytes: log.request_bytes,
            response_bytes: log.response_bytes,
            upstream_host: upstream_host(log),
            upstream_cluster: upstream_cluster(log),
            request_id: (!log.request_id.is_empty()).then(|| log.request_id.clone()),
            traceparent: log.traceparent.clone(),
            audit_policy: log.audit_policy.clone(),
        });
    }

    /// Only the access log reads them; the metrics' labels do not.
    fn wants_details(&self) -> bool {
        self.telemetry.access_log_enabled()
    }
}

fn or_unknown(value: &str) -> String {
    if value.is_empty() {
        UNKNOWN.to_owned()
    } else {
        value.to_owned()
    }
}

/// The proxy's node as Istio's peer labels: canonical service from
/// `service.istio.io/canonical-name`, else `app`, else the workload name (Istio's rule).
fn node_peer(node: &Node) -> PeerInfo {
    let label = |key: &str| node.labels.get(key).map(String::as_str).unwrap_or("");
    let canonical = [
        label("service.istio.io/canonical-name"),
        label("app"),
        &node.workload_name,
    ]
    .into_iter()
    .find(|value| !value.is_empty())
    .unwrap_or("");
    let revision = [
        label("service.istio.io/canonical-revision"),
        label("version"),
    ]
    .into_iter()
    .find(|value| !value.is_empty())
    .unwrap_or("latest");
    PeerInfo {
        workload: or_unknown(&node.workload_name),
        namespace: or_unknown(&node.namespace),
        principal: if node.service_account.is_empty() {
            UNKNOWN.to_owned()
        } else {
            node.spiffe_id()
        },
        app: or_unknown(label("app")),
        version: or_unknown(label("version")),
        canonical_service: or_unknown(canonical),
        canonical_revision: revision.to_owned(),
        cluster: UNKNOWN.to_owned(),
    }
}

/// A peer known only by its SPIFFE ID: principal and namespace
/// (`spiffe://<td>/ns/<namespace>/sa/<sa>`).
fn principal_peer(principal: &str) -> PeerInfo {
    let namespace = principal
        .split('/')
        .skip_while(|part| *part != "ns")
        .nth(1)
        .unwrap_or(UNKNOWN);
    PeerInfo {
        namespace: namespace.to_owned(),
        principal: principal.to_owned(),
        ..PeerInfo::default()
    }
}

/// `reviews.default.svc.cluster.local` as host, name `reviews`, namespace `default`.
fn service_info(host: &str) -> ServiceInfo {
    if host.is_empty() {
        return ServiceInfo::default();
    }
    let mut parts = host.split('.');
    let name = parts.next().unwrap_or(host);
    let namespace = if host.contains(".svc.") {
        parts.next().unwrap_or(UNKNOWN)
    } else {
        UNKNOWN
    };
    ServiceInfo {
        host: host.to_owned(),
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_info_splits_kubernetes_hosts() {
        let info = service_info("reviews.default.svc.cluster.local");
        assert_eq!(
            (info.name.as_str(), info.namespace.as_str()),
            ("reviews", "default")
        );
        let external = service_info("api.example.com");
        assert_eq!(
            (external.name.as_str(), external.namespace.as_str()),
            ("api", UNKNOWN)
        );
        assert_eq!(service_info(""), ServiceInfo::default());
    }

    #[test]
    fn principal_gives_namespace() {
        let peer = principal_peer("spiffe://cluster.local/ns/shop/sa/web");
        assert_eq!(peer.namespace, "shop");
        assert_eq!(peer.principal, "spiffe://cluster.local/ns/shop/sa/web");
        assert_eq!(peer.workload, UNKNOWN);
    }

    fn request_log(
        direction: Direction,
        status: u16,
        flags: ResponseFlags,
        principal: Option<&str>,
    ) -> RequestLog {
        RequestLog {
            direction,
            start: std::time::SystemTime::now(),
            duration: std::time::Duration::from_millis(3),
            method: "GET".into(),
            authority: "reviews:9080".into(),
            path: "/".into(),
            protocol: "HTTP/1.1",
            status,
            flags,
            request_id: String::new(),
            route_name: crate::request_log::empty_name(),
            upstream_cluster: crate::request_log::empty_name(),
            upstream_host: None,
            downstream_peer: None,
            source_principal: principal.map(str::to_owned),
            attempts: 1,
            destination_service: "reviews.default.svc.cluster.local".into(),
            request_bytes: 0,
            response_bytes: 1024,
            traceparent: None,
            audit_policy: None,
        }
    }

    fn node_config(workload: &str) -> weft_proxy_config::ProxyConfig {
        weft_proxy_config::ProxyConfig::from_yaml(&format!(
            "node: {{id: a, namespace: default, workload_name: {workload}, labels: {{app: productpage}}}}\n"
        ))
        .unwrap()
    }

    /// The value of the one `istio_requests_total` line carrying every label in `labels`.
    fn requests_total(text: &str, labels: &[&str]) -> Option<u64> {
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("istio_requests_total{"))
            .filter(|line| labels.iter().all(|label| line.contains(label)))
            .collect();
        assert!(lines.len() <= 1, "{labels:?} matches {lines:?}");
        lines.first()?.rsplit(' ').next()?.parse().ok()
    }

    /// The HTTP path copies authority, path and request ids into the log only when the access
    /// log will print them.
    #[test]
    fn only_an_access_log_asks_for_request_details() {
        let store = ConfigStore::new(None);
        let observer = |access_log| {
            let mut registry = prometheus_client::registry::Registry::default();
            let telemetry = Arc::new(Telemetry::new(&mut registry, access_log));
            TelemetryObserver::new(telemetry, Arc::clone(&store))
        };
        assert!(!observer(crate::telemetry::AccessLog::off()).wants_details());
        let logging = observer(crate::telemetry::AccessLog::to_writer(std::io::sink()));
        assert!(logging.wants_details());
    }

    #[test]
    fn cached_series_count_per_label_set_and_follow_config_versions() {
        let mut registry = prometheus_client::registry::Registry::default();
        let telemetry = Arc::new(Telemetry::new(
            &mut registry,
            crate::telemetry::AccessLog::off(),
        ));
        let store = ConfigStore::new(None);
        store.apply(node_config("productpage-v1")).unwrap();
        let observer = TelemetryObserver::new(telemetry, Arc::clone(&store));
        let ok = ResponseFlags::empty();
        for _ in 0..2 {
            observer.on_request(&request_log(Direction::Outbound, 200, ok, None));
        }
        let overflow = ResponseFlags::UPSTREAM_OVERFLOW;
        observer.on_request(&request_log(Direction::Outbound, 503, overflow, None));
        let alice = "spiffe://cluster.local/ns/shop/sa/alice";
        let bob = "spiffe://cluster.local/ns/shop/sa/bob";
        observer.on_request(&request_log(Direction::Inbound, 200, ok, Some(alice)));
        observer.on_request(&request_log(Direction::Inbound, 200, ok, Some(bob)));
        observer.on_request(&request_log(Direction::Inbound, 200, ok, Some(bob)));
        store.apply(node_config("productpage-v2")).unwrap();
        observer.on_request(&request_log(Direction::Outbound, 200, ok, None));

        let text = crate::telemetry::encode(&registry).unwrap();
        let v1 = "source_workload=\"productpage-v1\"";
        let source = "reporter=\"source\"";
        let service = "destination_service=\"reviews.default.svc.cluster.local\"";
        let code = |code: &str| format!("response_code=\"{code}\"");
        assert_eq!(
            requests_total(
                &text,
                &[source, v1, service, &code("200"), "response_flags=\"-\""]
            ),
            Some(2)
        );
        assert_eq!(
            requests_total(&text, &[source, v1, &code("503"), "response_flags=\"UO\""]),
            Some(1)
        );
        let inbound = "reporter=\"destination\"";
        let mtls = "connection_security_policy=\"mutual_tls\"";
        let principal = |who: &str| format!("source_principal=\"{who}\"");
        assert_eq!(
            requests_total(&text, &[inbound, mtls, &principal(alice)]),
            Some(1)
        );
        assert_eq!(
            requests_total(&text, &[inbound, mtls, &principal(bob)]),
            Some(2)
        );
        assert_eq!(
            requests_total(&text, &[source, "source_workload=\"productpage-v2\""]),
            Some(1)
        );
    }

    #[test]
    fn node_peer_follows_istio_canonical_rules() {
        let node = Node {
            namespace: "default".into(),
            workload_name: "reviews-v2".into(),
            service_account: "bookinfo-reviews".into(),
            labels: [
                ("app".to_owned(), "reviews".to_owned()),
                ("version".to_owned(), "v2".to_owned()),
            ]
            .into(),
            trust_domain: "cluster.local".into(),
            ..Node::default()
        };
        let peer = node_peer(&node);
        assert_eq!(peer.canonical_service, "reviews");
        assert_eq!(peer.canonical_revision, "v2");
        assert_eq!(
            peer.principal,
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        let bare = node_peer(&Node {
            workload_name: "job".into(),
            ..Node::default()
        });
        assert_eq!(bare.canonical_service, "job");
        assert_eq!(bare.canonical_revision, "latest");
        assert_eq!(bare.principal, UNKNOWN);
    }
}
