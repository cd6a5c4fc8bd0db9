//! [`ProxyConfig::validate`]: the checks that make a config safe to apply.
//!
//! Every error names the offending field by its path in the model (e.g.
//! `outbound[reviews:9080].http.virtual_hosts[0].routes[1].action.route.clusters`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::matcher::{HeaderMatch, StringMatch};
use crate::route::{HeaderMutation, RouteAction, RouteConfiguration, RouteMatch, WeightedCluster};
use crate::{BLACK_HOLE_CLUSTER, Cluster, PASSTHROUGH_CLUSTER, ProxyConfig};

mod gateway;
mod inbound;

/// One reason a [`ProxyConfig`] cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Two clusters share a name.
    #[error("clusters: the name {name:?} is used twice; cluster names must be unique")]
    DuplicateCluster {
        /// The repeated name.
        name: String,
    },
    /// A route, TCP route or mirror names a cluster that is not in `clusters`.
    #[error("{field}: cluster {cluster:?} is not defined in clusters")]
    UnknownCluster {
        /// The referring field.
        field: String,
        /// The missing cluster name.
        cluster: String,
    },
    /// A weighted-cluster list is empty or all its weights are 0.
    #[error("{field}: needs at least one cluster with a weight above 0")]
    NoWeightedCluster {
        /// The weighted-cluster list.
        field: String,
    },
    /// A percentage outside 0–100 (or NaN).
    #[error("{field}: percentage {value} is outside 0-100")]
    Percentage {
        /// The percentage field.
        field: String,
        /// The value found, as text.
        value: String,
    },
    /// A regex that does not compile.
    #[error("{field}: regex {pattern:?} is invalid: {reason}")]
    Regex {
        /// The regex field.
        field: String,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// Two outbound listeners claim the same (address, port), or two share a name.
    #[error("outbound: {key} is claimed by both {first:?} and {second:?}")]
    DuplicateOutbound {
        /// `<address>:<port>`, `*:<port>` for address-less listeners, or `name <name>`.
        key: String,
        /// The first listener's name.
        first: String,
        /// The second listener's name.
        second: String,
    },
    /// An HTTP listener without a route table.
    #[error("outbound[{listener}].http: protocol {protocol} needs an HTTP route table")]
    MissingHttpRoutes {
        /// The listener's name.
        listener: String,
        /// The listener's protocol.
        protocol: String,
    },
    /// An HTTP status outside the allowed range.
    #[error("{field}: status {code} is not allowed here (allowed: {allowed})")]
    Status {
        /// The status field.
        field: String,
        /// The value.
        code: u16,
        /// The allowed values.
        allowed: &'static str,
    },
    /// A port of 0.
    #[error("{field}: port 0 is not a valid port")]
    PortZero {
        /// The port field.
        field: String,
    },
    /// Two inbound port entries for the same port.
    #[error("inbound.ports: port {port} is listed twice")]
    DuplicateInboundPort {
        /// The repeated port.
        port: u16,
    },
    /// An inbound port's `default_endpoint` that is neither loopback nor unspecified, or has
    /// port 0 (Istio `Sidecar.ingress[].defaultEndpoint`: `127.0.0.1:PORT`, `[::1]:PORT`,
    /// `0.0.0.0:PORT` or `[::]:PORT`).
    #[error(
        "inbound.ports[{port}].default_endpoint: {endpoint} must be 127.0.0.1, ::1, 0.0.0.0 or :: \
         with a port above 0"
    )]
    InboundDefaultEndpoint {
        /// The inbound port.
        port: u16,
        /// The endpoint, as text.
        endpoint: String,
    },
    /// An endpoint with weight 0.
    #[error("clusters[{cluster}].endpoints[{index}]: weight must be at least 1")]
    EndpointWeight {
        /// The cluster's name.
        cluster: String,
        /// The endpoint's index.
        index: usize,
    },
    /// A virtual host with no domains.
    #[error("{field}: a virtual host needs at least one domain")]
    EmptyDomains {
        /// The virtual host.
        field: String,
    },
    /// A header name that is not a lowercase HTTP token.
    #[error("{field}: header name {name:?} must be a non-empty lowercase HTTP token")]
    HeaderName {
        /// The header field.
        field: String,
        /// The name.
        name: String,
    },
    /// A header value with control characters.
    #[error("{field}: value of header {name:?} contains control characters")]
    HeaderValue {
        /// The header field.
        field: String,
        /// The header name.
        name: String,
    },
    /// Two gateway listeners claim the same (bind address, port), or two share a name.
    #[error("gateways: {key} is claimed by both {first:?} and {second:?}")]
    DuplicateGatewayListener {
        /// `<bind>:<port>` (`*:<port>` without a bind address) or `name <name>`.
        key: String,
        /// The first listener's name.
        first: String,
        /// The second listener's name.
        second: String,
    },
    /// Two gateway servers share a name.
    #[error("gateways: server name {name:?} is used twice; server names must be unique")]
    DuplicateGatewayServer {
        /// The repeated name.
        name: String,
    },
    /// A list that needs at least one entry is empty (a listener's `servers`, a server's
    /// `hosts`, a TLS route's `match` or `sni_hosts`).
    #[error("{field}: needs at least one entry")]
    Empty {
        /// The empty list.
        field: String,
    },
    /// A gateway host or SNI that is not a DNS name, `*.suffix` or `*`.
    #[error("{field}: host {host:?} must be a DNS name, `*.suffix` or `*` (no namespace/ prefix)")]
    GatewayHost {
        /// The host list.
        field: String,
        /// The host.
        host: String,
    },
    /// Servers that cannot share a listener: TLS (`HTTPS`, `TLS`) with plaintext servers, or a
    /// `TCP` server with any other (Istio picks servers on a port by SNI or authority only).
    #[error("gateways[{listener}].servers: {reason}")]
    GatewayServerConflict {
        /// The listener's name.
        listener: String,
        /// Which rule is broken.
        reason: &'static str,
    },
    /// An `HTTPS` or `TLS` server without TLS settings.
    #[error("{field}: protocol {protocol} needs tls settings")]
    MissingServerTls {
        /// The server's `tls` field.
        field: String,
        /// The server's protocol.
        protocol: String,
    },
    /// A plaintext server (`HTTP`, `HTTP2`, `GRPC`, `TCP`) with TLS settings.
    #[error("{field}: protocol {protocol} is plaintext and takes no tls settings")]
    UnexpectedServerTls {
        /// The server's `tls` field.
        field: String,
        /// The server's protocol.
        protocol: String,
    },
    /// A TLS mode whose credential needs are not met: `SIMPLE`, `MUTUAL` and `OPTIONAL_MUTUAL`
    /// need a credential, `MUTUAL`/`OPTIONAL_MUTUAL` a client CA in it, and the passthrough
    /// modes and `ISTIO_MUTUAL` take none.
    #[error("{field}: mode {mode} {rule}")]
    TlsCredential {
        /// The `tls.credential` field.
        field: String,
        /// The TLS mode.
        mode: String,
        /// What the mode requires.
        rule: &'static str,
    },
    /// A credential part (file path or PEM text) that is empty.
    #[error("{field}: must not be empty")]
    EmptyCredentialPart {
        /// The empty field.
        field: String,
    },
    /// `min_protocol_version` above `max_protocol_version`.
    #[error("{field}: min_protocol_version {min} is above max_protocol_version {max}")]
    TlsVersionRange {
        /// The `tls` field.
        field: String,
        /// The minimum, as Istio spells it.
        min: String,
        /// The maximum, as Istio spells it.
        max: String,
    },
    /// A gateway server's routes do not fit its protocol and TLS mode: `route_config` exactly
    /// when it serves HTTP, `tls_routes` only with `PASSTHROUGH`, `tcp_routes` only on `TCP`
    /// and terminated `TLS` servers, `https_redirect` only on plaintext HTTP servers.
    #[error("{field}: {rule}")]
    GatewayRoutes {
        /// The offending field.
        field: String,
        /// The rule broken.
        rule: &'static str,
    },
    /// A cluster's setting breaks its rule: a `warmup` duration of 0 or an aggression below 1
    /// (Istio `WarmupConfiguration`), `distribute` weights that do not add up to 100 (Istio
    /// `LocalityLoadBalancerSetting.Distribute.to`), or a DNS name that is empty or has a
    /// weight of 0, or a DNS refresh rate of 0 ms (Envoy `dns_refresh_rate` must be positive).
    #[error("{field}: {rule}")]
    ClusterSetting {
        /// The offending field.
        field: String,
        /// The rule broken.
        rule: &'static str,
    },
    /// A cluster name that is not `<direction>|<port>|<subset>|<hostname>`.
    #[error("cluster name {name:?} is not of the form outbound|<port>|<subset>|<hostname>")]
    ClusterName {
        /// The text.
        name: String,
    },
}

impl ProxyConfig {
    /// Checks the config's internal consistency: cluster names unique; every cluster a route,
    /// TCP route or mirror names exists (or is `PassthroughCluster`/`BlackHoleCluster`); weighted
    /// lists have a positive weight; percentages within 0–100; regexes compile; statuses in range
    /// (abort and direct response 200–599, redirect 301/302/303/307/308); header names lowercase
    /// tokens and values free of control characters; no two outbound listeners claim the same
    /// (address, port); HTTP listeners have a route table; inbound ports unique and non-zero, a
    /// port's default endpoint loopback or unspecified with a port above 0; endpoint
    /// weights at least 1; virtual hosts have domains. Gateways: listener ports 1–65535 and
    /// (bind, port) and names unique; server names unique; hosts present and well formed; TLS
    /// and plaintext servers never share a port, a `TCP` server is alone on its port; `HTTPS`/
    /// `TLS` servers have TLS settings and others none; each TLS mode has the credential it
    /// needs (and no other); min version not above max; routes fit the protocol and mode (a
    /// `PASSTHROUGH` server has no `route_config`); routes checked as outbound ones.
    ///
    /// Returns every problem found, not just the first.
    pub fn validate(&self) -> Result<(), Vec<ModelError>> {
        let mut errors = Vec::new();
        let clusters = self.check_clusters(&mut errors);
        inbound::check_inbound(&self.inbound, &mut errors);
        self.check_outbound(&clusters, &mut errors);
        gateway::check_gateways(&self.gateways, &clusters, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn check_clusters(&self, errors: &mut Vec<ModelError>) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        for cluster in &self.clusters {
            if !names.insert(cluster.name.as_str()) {
                errors.push(ModelError::DuplicateCluster {
                    name: cluster.name.clone(),
                });
            }
            for (index, endpoint) in cluster.endpoints.iter().enumerate() {
                if endpoint.weight == 0 {
                    errors.push(ModelError::EndpointWeight {
                        cluster: cluster.name.clone(),
                        index,
                    });
                }
                if endpoint.port == 0 {
                    errors.push(ModelError::PortZero {
                        field: format!("clusters[{}].endpoints[{index}].port", cluster.name),
                    });
                }
            }
            if let Some(outlier) = &cluster.outlier_detection {
                let field = format!("clusters[{}].outlier_detection", cluster.name);
                check_percentage(
                    &format!("{field}.max_ejection_percent"),
                    outlier.max_ejection_percent,
                    errors,
                );
                check_percentage(
                    &format!("{field}.min_health_percent"),
                    outlier.min_health_percent,
                    errors,
                );
            }
            check_balancing(cluster, errors);
            check_dns(cluster, errors);
        }
        names
    }

    fn check_outbound<'a>(&'a self, clusters: &BTreeSet<&str>, errors: &mut Vec<ModelError>) {
        let mut claimed: BTreeMap<String, &str> = BTreeMap::new();
        let mut claim = |key: String, name: &'a str, errors: &mut Vec<ModelError>| {
            if let Some(first) = claimed.get(&key) {
                errors.push(ModelError::DuplicateOutbound {
                    key,
                    first: (*first).to_owned(),
                    second: name.to_owned(),
                });
            } else {
                claimed.insert(key, name);
            }
        };
        for listener in &self.outbound {
            let name = listener.name.as_str();
            claim(format!("name {name}"), name, errors);
            if listener.port == 0 {
                errors.push(ModelError::PortZero {
                    field: format!("outbound[{name}].port"),
                });
            }
            if listener.addresses.is_empty() {
                claim(format!("*:{}", listener.port), name, errors);
            }
            for address in &listener.addresses {
                let key = match address {
                    IpAddr::V4(v4) => format!("{v4}:{}", listener.port),
                    IpAddr::V6(v6) => format!("[{v6}]:{}", listener.port),
                };
                claim(key, name, errors);
            }
            match &listener.http {
                Some(routes) => {
                    check_route_configuration(
                        &format!("outbound[{name}].http"),
                        routes,
                        clusters,
                        errors,
                    );
                }
                None if listener.protocol.is_http() => {
                    errors.push(ModelError::MissingHttpRoutes {
                        listener: name.to_owned(),
                        protocol: format!("{:?}", listener.protocol).to_uppercase(),
                    });
                }
                None => {}
            }
            for (index, route) in listener.tcp.iter().enumerate() {
                check_weighted(
                    &format!("outbound[{name}].tcp[{index}].clusters"),
                    &route.clusters,
                    clusters,
                    errors,
                );
            }
        }
    }
}

/// Checks every virtual host and route of `routes`; `field` is the route table's path.
fn check_route_configuration(
    field: &str,
    routes: &RouteConfiguration,
    clusters: &BTreeSet<&str>,
    errors: &mut Vec<ModelError>,
) {
    for (vh_index, vhost) in routes.virtual_hosts.iter().enumerate() {
        let field = format!("{field}.virtual_hosts[{vh_index}]");
        if vhost.domains.is_empty() {
            errors.push(ModelError::EmptyDomains {
                field: field.clone(),
            });
        }
        for (index, route) in vhost.routes.iter().enumerate() {
            let field = format!("{field}.routes[{index}]");
            for (m_index, route_match) in route.matches.iter().enumerate() {
                check_route_match(&format!("{field}.match[{m_index}]"), route_match, errors);
            }
            check_action(&format!("{field}.action"), &route.action, clusters, errors);
        }
    }
}

fn check_route_match(field: &str, route_match: &RouteMatch, errors: &mut Vec<ModelError>) {
    let string_matches = [
        ("uri", &route_match.uri),
        ("scheme", &route_match.scheme),
        ("method", &route_match.method),
        ("authority", &route_match.authority),
    ];
    for (name, matcher) in string_matches {
        if let Some(pattern) = matcher.as_ref().and_then(StringMatch::regex_pattern) {
            check_regex(&format!("{field}.{name}"), pattern, errors);
        }
    }
    for (name, matcher) in &route_match.query_params {
        if let Some(pattern) = matcher.regex_pattern() {
            check_regex(&format!("{field}.query_params[{name}]"), pattern, errors);
        }
    }
    for (kind, headers) in [
        ("headers", &route_match.headers),
        ("without_headers", &route_match.without_headers),
    ] {
        for (name, matcher) in headers {
            let header_field = format!("{field}.{kind}");
            check_header_name(&header_field, name, errors);
            if let Some(pattern) = matcher.regex_pattern() {
                check_regex(&format!("{header_field}[{name}]"), pattern, errors);
            }
            if let HeaderMatch::Exact(value) | HeaderMatch::Prefix(value) = matcher {
                check_header_value(&header_field, name, value, errors);
            }
        }
    }
    if route_match.port == Some(0) {
        errors.push(ModelError::PortZero {
            field: format!("{field}.port"),
        });
    }
}

fn check_action(
    field: &str,
    action: &RouteAction,
    clusters: &BTreeSet<&str>,
    errors: &mut Vec<ModelError>,
) {
    match action {
        RouteAction::Route(forward) => {
            let field = format!("{field}.route");
            check_weighted(
                &format!("{field}.clusters"),
                &forward.clusters,
                clusters,
                errors,
            );
            if let Some(fault) = &forward.fault {
                if let Some(delay) = &fault.delay {
                    check_percentage(
                        &format!("{field}.fault.delay.percentage"),
                        delay.percentage,
                        errors,
                    );
                }
                if let Some(abort) = &fault.abort {
                    check_percentage(
                        &format!("{field}.fault.abort.percentage"),
                        abort.percentage,
                        errors,
                    );
                    if !(200..=599).contains(&abort.http_status) {
                        errors.push(ModelError::Status {
                            field: format!("{field}.fault.abort.http_status"),
                            code: abort.http_status,
                            allowed: "200-599",
                        });
                    }
                }
            }
            if let Some(regex) = forward.rewrite.as_ref().and_then(|r| r.uri_regex.as_ref()) {
                check_regex(
                    &format!("{field}.rewrite.uri_regex"),
                    &regex.pattern,
                    errors,
                );
            }
            for (index, mirror) in forward.mirrors.iter().enumerate() {
                let mirror_field = format!("{field}.mirrors[{index}]");
                check_percentage(
                    &format!("{mirror_field}.percentage"),
                    mirror.percentage,
                    errors,
                );
                check_cluster_exists(&mirror_field, &mirror.cluster, clusters, errors);
            }
            check_mutation(
                &format!("{field}.request_headers"),
                &forward.request_headers,
                errors,
            );
            check_mutation(
                &format!("{field}.response_headers"),
                &forward.response_headers,
                errors,
            );
        }
        RouteAction::Redirect(redirect) => {
            if ![301, 302, 303, 307, 308].contains(&redirect.redirect_code) {
                errors.push(ModelError::Status {
                    field: format!("{field}.redirect.redirect_code"),
                    code: redirect.redirect_code,
                    allowed: "301, 302, 303, 307, 308",
                });
            }
        }
        RouteAction::DirectResponse(direct) => {
            if !(200..=599).contains(&direct.status) {
                errors.push(ModelError::Status {
                    field: format!("{field}.direct_response.status"),
                    code: direct.status,
                    allowed: "200-599",
                });
            }
        }
    }
}

fn check_weighted(
    field: &str,
    weighted: &[WeightedCluster],
    clusters: &BTreeSet<&str>,
    errors: &mut Vec<ModelError>,
) {
    if weighted.iter().all(|entry| entry.weight == 0) {
        errors.push(ModelError::NoWeightedCluster {
            field: field.to_owned(),
        });
    }
    for entry in weighted {
        check_cluster_exists(field, &entry.cluster, clusters, errors);
    }
}

fn check_cluster_exists(
    field: &str,
    cluster: &str,
    clusters: &BTreeSet<&str>,
    errors: &mut Vec<ModelError>,
) {
    let special = cluster == PASSTHROUGH_CLUSTER || cluster == BLACK_HOLE_CLUSTER;
    if !special && !clusters.contains(cluster) {
        errors.push(ModelError::UnknownCluster {
            field: field.to_owned(),
            cluster: cluster.to_owned(),
        });
    }
}

/// The rules of a cluster's slow start and locality weights (Istio's validation of
/// `WarmupConfiguration` and `LocalityLoadBalancerSetting.distribute`).
fn check_balancing(cluster: &Cluster, errors: &mut Vec<ModelError>) {
    let mut broken = |field: String, rule: &'static str| {
        errors.push(ModelError::ClusterSetting { field, rule });
    };
    if let Some(warmup) = &cluster.warmup {
        let field = format!("clusters[{}].warmup", cluster.name);
        if warmup.duration_ms == 0 {
            broken(format!("{field}.duration_ms"), "must be above 0");
        }
        if warmup.aggression.is_nan() || warmup.aggression < 1.0 {
            broken(format!("{field}.aggression"), "must be at least 1");
        }
        if !(0.0..=100.0).contains(&warmup.minimum_percent) {
            broken(
                format!("{field}.minimum_percent"),
                "must be between 0 and 100",
            );
        }
    }
    if let Some(locality) = &cluster.locality_lb {
        for (index, rule) in locality.distribute.iter().enumerate() {
            let total: u64 = rule.to.values().map(|weight| u64::from(*weight)).sum();
            if total != 100 {
                broken(
                    format!(
                        "clusters[{}].locality_lb.distribute[{index}].to",
                        cluster.name
                    ),
                    "weights must add up to 100",
                );
            }
        }
    }
}

/// The rules of a DNS cluster's names (Envoy `STRICT_DNS`/`LOGICAL_DNS` clusters).
fn check_dns(cluster: &Cluster, errors: &mut Vec<ModelError>) {
    let Some(dns) = &cluster.dns else {
        return;
    };
    let field = format!("clusters[{}].dns", cluster.name);
    if dns.refresh_rate_ms == 0 {
        errors.push(ModelError::ClusterSetting {
            field: format!("{field}.refresh_rate_ms"),
            rule: "must be above 0",
        });
    }
    for (index, endpoint) in dns.endpoints.iter().enumerate() {
        let at = format!("{field}.endpoints[{index}]");
        if endpoint.hostname.is_empty() {
            errors.push(ModelError::ClusterSetting {
                field: format!("{at}.hostname"),
                rule: "must not be empty",
            });
        }
        if endpoint.port == 0 {
            errors.push(ModelError::PortZero {
                field: format!("{at}.port"),
            });
        }
        if endpoint.weight == 0 {
            errors.push(ModelError::ClusterSetting {
                field: format!("{at}.weight"),
                rule: "must be at least 1",
            });
        }
    }
}

fn check_percentage(field: &str, value: f64, errors: &mut Vec<ModelError>) {
    if !(0.0..=100.0).contains(&value) {
        errors.push(ModelError::Percentage {
            field: field.to_owned(),
            value: value.to_string(),
        });
    }
}

fn check_regex(field: &str, pattern: &str, errors: &mut Vec<ModelError>) {
    if let Err(error) = regex::Regex::new(pattern) {
        errors.push(ModelError::Regex {
            field: field.to_owned(),
            pattern: pattern.to_owned(),
            reason: error.to_string(),
        });
    }
}

fn check_mutation(field: &str, mutation: &HeaderMutation, errors: &mut Vec<ModelError>) {
    for (name, value) in mutation.set.iter().chain(&mutation.add) {
        check_header_name(field, name, errors);
        check_header_value(field, name, value, errors);
    }
    for name in &mutation.remove {
        check_header_name(field, name, errors);
    }
}

/// RFC 9110 token characters, lowercase only (HTTP/2 requires lowercase names).
fn check_header_name(field: &str, name: &str, errors: &mut Vec<ModelError>) {
    let valid = !name.is_empty()
        && name.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&byte)
        });
    if !valid {
        errors.push(ModelError::HeaderName {
            field: field.to_owned(),
            name: name.to_owned(),
        });
    }
}

fn check_header_value(field: &str, name: &str, value: &str, errors: &mut Vec<ModelError>) {
    if value
        .bytes()
        .any(|byte| (byte < 0x20 && byte != b'\t') || byte == 0x7f)
    {
        errors.push(ModelError::HeaderValue {
            field: field.to_owned(),
            name: name.to_owned(),
        });
    }
}
