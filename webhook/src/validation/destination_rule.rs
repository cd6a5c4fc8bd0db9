//! DestinationRule rules (Istio `validateDestinationRule`): host, subsets, traffic policies
//! (load balancer, connection pool, outlier detection, client TLS, tunnel, port-level
//! settings), workload selector and `exportTo`.

use std::collections::BTreeSet;

use weft_crds::networking::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRuleSpec,
    LoadBalancerSettings, OutlierDetection, TrafficPolicy,
};

use super::{Report, fields};

/// Checks a DestinationRule spec.
pub(super) fn check(spec: &DestinationRuleSpec, report: &mut Report) {
    if let Err(e) = fields::wildcard_domain(&spec.host) {
        report.error("spec.host", e);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in spec.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if !fields::dns_label(&subset.name, false) {
            report.error(
                format!("{path}.name"),
                format!(
                    "subset name {:?} must be a DNS label (1-63 lowercase letters, digits or '-')",
                    subset.name
                ),
            );
        }
        if !names.insert(subset.name.as_str()) {
            report.error(
                format!("{path}.name"),
                format!("duplicate subset name {:?}", subset.name),
            );
        }
        fields::labels(report, &format!("{path}.labels"), &subset.labels);
        if let Some(policy) = &subset.traffic_policy {
            traffic_policy(report, &format!("{path}.trafficPolicy"), policy, false);
        }
    }
    if let Some(policy) = &spec.traffic_policy {
        traffic_policy(report, "spec.trafficPolicy", policy, true);
    }
    if let Some(selector) = &spec.workload_selector {
        fields::labels(
            report,
            "spec.workloadSelector.matchLabels",
            &selector.match_labels,
        );
    }
    fields::export_to(report, "spec.exportTo", &spec.export_to);
}

fn traffic_policy(report: &mut Report, path: &str, p: &TrafficPolicy, top_level: bool) {
    if p.load_balancer.is_none()
        && p.connection_pool.is_none()
        && p.outlier_detection.is_none()
        && p.tls.is_none()
        && p.port_level_settings.is_empty()
        && p.tunnel.is_none()
        && p.proxy_protocol.is_none()
        && p.retry_budget.is_none()
    {
        report.error(path, "traffic policy must have at least one field");
    }
    if let Some(lb) = &p.load_balancer {
        load_balancer(report, &format!("{path}.loadBalancer"), lb);
    }
    if let Some(pool) = &p.connection_pool {
        connection_pool(report, &format!("{path}.connectionPool"), pool);
    }
    if let Some(od) = &p.outlier_detection {
        outlier_detection(report, &format!("{path}.outlierDetection"), od);
    }
    if let Some(tls) = &p.tls {
        client_tls(report, &format!("{path}.tls"), tls);
        let overridden = p.port_level_settings.iter().any(|s| {
            s.tls
                .as_ref()
                .is_some_and(|t| t.mode != Some(ClientTlsMode::Disable))
        });
        if top_level && tls.mode == Some(ClientTlsMode::Disable) && !overridden {
            report.warn(
                format!("{path}.tls.mode"),
                "TLS DISABLE with no port-level override sends plaintext to every port of the host, bypassing mutual TLS",
            );
        }
    }
    let mut ports = BTreeSet::new();
    for (i, s) in p.port_level_settings.iter().enumerate() {
        let at = format!("{path}.portLevelSettings[{i}]");
        match s.port.as_ref().and_then(|p| p.number) {
            Some(number) => {
                fields::port(report, &format!("{at}.port.number"), number);
                if !ports.insert(number) {
                    report.error(
                        format!("{at}.port.number"),
                        format!("duplicate port-level settings for port {number}"),
                    );
                }
            }
            None => report.error(
                format!("{at}.port"),
                "port-level settings need a port number",
            ),
        }
        if let Some(lb) = &s.load_balancer {
            load_balancer(report, &format!("{at}.loadBalancer"), lb);
        }
        if let Some(pool) = &s.connection_pool {
            connection_pool(report, &format!("{at}.connectionPool"), pool);
        }
        if let Some(od) = &s.outlier_detection {
            outlier_detection(report, &format!("{at}.outlierDetection"), od);
        }
        if let Some(tls) = &s.tls {
            client_tls(report, &format!("{at}.tls"), tls);
        }
    }
    if let Some(tunnel) = &p.tunnel {
        let at = format!("{path}.tunnel");
        if let Some(protocol) = &tunnel.protocol
            && protocol != "CONNECT"
            && protocol != "POST"
        {
            report.error(
                format!("{at}.protocol"),
                format!("tunnel protocol {protocol:?} must be CONNECT or POST"),
            );
        }
        let host = &tunnel.target_host;
        if host.parse::<std::net::IpAddr>().is_err()
            && let Err(e) = fields::dns_name(host)
        {
            report.error(format!("{at}.targetHost"), e);
        }
        fields::port(report, &format!("{at}.targetPort"), tunnel.target_port);
    }
    if let Some(budget) = &p.retry_budget
        && let Some(percent) = budget.percent
    {
        fields::percentage(report, &format!("{path}.retryBudget.percent"), percent);
    }
}

fn load_balancer(report: &mut Report, path: &str, lb: &LoadBalancerSettings) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        report.error(path, "only one of simple or consistentHash can be set");
    }
    if let Some(hash) = &lb.consistent_hash {
        let at = format!("{path}.consistentHash");
        let keys = usize::from(hash.http_header_name.is_some())
            + usize::from(hash.http_cookie.is_some())
            + usize::from(hash.http_query_parameter_name.is_some());
        if keys > 1 {
            report.error(
                &at,
                "only one of httpHeaderName, httpCookie or httpQueryParameterName can be set",
            );
        }
        if hash.ring_hash.is_some() && hash.maglev.is_some() {
            report.error(&at, "only one of ringHash or maglev can be set");
        }
        if let Some(cookie) = &hash.http_cookie {
            if cookie.name.is_empty() {
                report.error(format!("{at}.httpCookie.name"), "cookie name is required");
            }
            if let Some(ttl) = &cookie.ttl
                && !ttl.as_std().subsec_nanos().is_multiple_of(1_000_000)
            {
                report.error(
                    format!("{at}.httpCookie.ttl"),
                    "only durations to millisecond precision are supported",
                );
            }
        }
        if let Some(size) = hash.maglev.as_ref().and_then(|m| m.table_size)
            && !is_prime(size)
        {
            report.error(
                format!("{at}.maglev.tableSize"),
                format!("table size {size} must be a prime number"),
            );
        }
    }
    if let Some(locality) = &lb.locality_lb_setting {
        let at = format!("{path}.localityLbSetting");
        if !locality.distribute.is_empty() && !locality.failover.is_empty() {
            report.error(
                &at,
                "can not simultaneously specify 'distribute' and 'failover'",
            );
        }
        for (i, d) in locality.distribute.iter().enumerate() {
            let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
            if total != 100 {
                report.error(
                    format!("{at}.distribute[{i}].to"),
                    format!("total weight {total} != 100: locality weights must sum to 100"),
                );
            }
        }
        for (i, f) in locality.failover.iter().enumerate() {
            if f.from.is_some() && f.from == f.to {
                report.error(
                    format!("{at}.failover[{i}]"),
                    "failover 'from' and 'to' must differ",
                );
            }
        }
    }
    if let Some(d) = &lb.warmup_duration_secs {
        fields::duration(report, &format!("{path}.warmupDurationSecs"), d);
    }
    if let Some(w) = &lb.warmup {
        let at = format!("{path}.warmup");
        fields::duration(report, &format!("{at}.duration"), &w.duration);
        if let Some(p) = w.minimum_percent {
            fields::percentage(report, &format!("{at}.minimumPercent"), p);
        }
        if let Some(a) = w.aggression
            && a < 1.0
        {
            report.error(
                format!("{at}.aggression"),
                format!("aggression {a} must be at least 1"),
            );
        }
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn connection_pool(report: &mut Report, path: &str, pool: &ConnectionPoolSettings) {
    if pool.tcp.is_none() && pool.http.is_none() {
        report.error(path, "connection pool must have at least one field");
    }
    if let Some(tcp) = &pool.tcp {
        let at = format!("{path}.tcp");
        non_negative(report, &format!("{at}.maxConnections"), tcp.max_connections);
        for (name, d) in [
            ("connectTimeout", &tcp.connect_timeout),
            ("maxConnectionDuration", &tcp.max_connection_duration),
            ("idleTimeout", &tcp.idle_timeout),
        ] {
            if let Some(d) = d {
                fields::duration(report, &format!("{at}.{name}"), d);
            }
        }
        if let Some(k) = &tcp.tcp_keepalive {
            for (name, d) in [("time", &k.time), ("interval", &k.interval)] {
                if let Some(d) = d {
                    fields::duration(report, &format!("{at}.tcpKeepalive.{name}"), d);
                }
            }
        }
    }
    if let Some(http) = &pool.http {
        let at = format!("{path}.http");
        for (name, v) in [
            ("http1MaxPendingRequests", http.http1_max_pending_requests),
            ("http2MaxRequests", http.http2_max_requests),
            ("maxRequestsPerConnection", http.max_requests_per_connection),
            ("maxRetries", http.max_retries),
            ("maxConcurrentStreams", http.max_concurrent_streams),
        ] {
            non_negative(report, &format!("{at}.{name}"), v);
        }
        if let Some(d) = &http.idle_timeout {
            fields::duration(report, &format!("{at}.idleTimeout"), d);
        }
    }
}

fn non_negative(report: &mut Report, path: &str, value: Option<i32>) {
    if let Some(v) = value
        && v < 0
    {
        report.error(path, format!("{v} must be non-negative"));
    }
}

fn outlier_detection(report: &mut Report, path: &str, od: &OutlierDetection) {
    non_negative(
        report,
        &format!("{path}.consecutiveErrors"),
        od.consecutive_errors,
    );
    for (name, d) in [
        ("interval", &od.interval),
        ("baseEjectionTime", &od.base_ejection_time),
    ] {
        if let Some(d) = d {
            fields::duration(report, &format!("{path}.{name}"), d);
        }
    }
    for (name, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if let Some(v) = v {
            fields::percentage(report, &format!("{path}.{name}"), f64::from(v));
        }
    }
}

/// Client TLS (Istio `validateTLS`): with `credentialName` (SIMPLE/MUTUAL) no file paths; MUTUAL
/// without `credentialName` needs a client certificate and private key.
fn client_tls(report: &mut Report, path: &str, tls: &ClientTlsSettings) {
    let mode = tls.mode.unwrap_or_default();
    let with_credential = tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty());
    let files = tls.client_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some()
        || tls.ca_crl.is_some();
    if matches!(mode, ClientTlsMode::Simple | ClientTlsMode::Mutual) && with_credential {
        if files {
            report.error(
                path,
                "cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
            );
        }
        return;
    }
    if mode == ClientTlsMode::Mutual {
        if tls
            .client_certificate
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            report.error(
                format!("{path}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if tls.private_key.as_deref().unwrap_or_default().is_empty() {
            report.error(
                format!("{path}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
    if mode == ClientTlsMode::IstioMutual && (files || with_credential) {
        report.error(
            path,
            "ISTIO_MUTUAL uses the mesh's certificates: clientCertificate, privateKey, caCertificates, caCrl and credentialName must not be set",
        );
    }
}
