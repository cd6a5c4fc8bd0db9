//! The bridge from the request path's [`RequestLog`] to Istio's metrics and access log
//! ([`crate::telemetry::Telemetry`]): fills Istio's label sets from the proxy's own node (the
//! source for outbound, the destination for inbound) and what the request knows about the peer.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use weft_proxy_config::Node;

use crate::config::ConfigStore;
use crate::request_log::{Direction, RequestLog, RequestObserver};
use crate::telemetry::{
    ConnectionRecord, PeerInfo, Reporter, RequestProtocol, RequestRecord, SecurityPolicy,
    ServiceInfo, Telemetry, TrafficLabels, UNKNOWN,
};

/// A [`RequestObserver`] that records Istio's metrics and access log.
pub struct TelemetryObserver {
    telemetry: Arc<Telemetry>,
    store: Arc<ConfigStore>,
    /// The node's [`PeerInfo`] for the config version it was computed from.
    own: ArcSwapOption<(String, PeerInfo)>,
}

impl TelemetryObserver {
    /// Records into `telemetry`, reading the proxy's own identity from `store`'s config.
    pub fn new(telemetry: Arc<Telemetry>, store: Arc<ConfigStore>) -> Self {
        Self {
            telemetry,
            store,
            own: ArcSwapOption::empty(),
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
}

impl RequestObserver for TelemetryObserver {
    fn on_request(&self, log: &RequestLog) {
        let labels = Arc::new(self.labels(log));
        let upstream_host = log.upstream_host.map(|host| host.to_string());
        let upstream_cluster =
            (!log.upstream_cluster.is_empty()).then(|| log.upstream_cluster.clone());
        if log.method.is_empty() {
            self.telemetry.record_connection(&ConnectionRecord {
                labels,
                response_flags: log.flags.to_string(),
                start_time: log.start,
                duration: log.duration,
                bytes_received: log.request_bytes,
                bytes_sent: log.response_bytes,
                upstream_host,
                upstream_cluster,
            });
            return;
        }
        self.telemetry.record_request(&RequestRecord {
            labels,
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
            upstream_host,
            upstream_cluster,
            request_id: (!log.request_id.is_empty()).then(|| log.request_id.clone()),
            traceparent: log.traceparent.clone(),
        });
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
