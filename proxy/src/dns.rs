//! DNS discovery of a cluster's endpoints: Envoy's `STRICT_DNS` and `LOGICAL_DNS` cluster
//! types, which Istio uses for ServiceEntry `resolution: DNS` and `DNS_ROUND_ROBIN`.
//!
//! Resolution never runs on the request path. Each DNS cluster has a background task
//! ([`spawn`]) that resolves its names with the system resolver configuration
//! (`/etc/resolv.conf`, `/etc/hosts`, read by `hickory-resolver`), turns the answers into
//! endpoints ([`endpoints_from_answers`]) and hands them to the cluster, which swaps its
//! balancer; then it sleeps until the next refresh ([`next_refresh`]). A name whose
//! resolution fails keeps its last good addresses, as Envoy does.

use std::net::IpAddr;
use std::sync::Weak;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use weft_proxy_config::{DnsDiscovery, DnsLookup, Endpoint};

/// The shortest wait between two resolutions of a cluster, whatever the TTL (1 s), so a
/// zero or tiny TTL does not turn into a query loop.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// The endpoints of a DNS cluster for the latest `answers`, one entry per name of
/// `discovery.endpoints` in the same order (`None`: never resolved). `STRICT_DNS`: every
/// address of every name, each with its name's port, labels, locality and weight.
/// `LOGICAL_DNS`: one endpoint, the first address of the first name (Envoy uses only the
/// first address of the answer for new connections).
pub fn endpoints_from_answers(
    discovery: &DnsDiscovery,
    answers: &[Option<Vec<IpAddr>>],
) -> Vec<Endpoint> {
    let resolved = discovery
        .endpoints
        .iter()
        .zip(answers)
        .filter_map(|(name, answer)| answer.as_ref().map(|addresses| (name, addresses)));
    match discovery.lookup {
        DnsLookup::Strict => resolved
            .flat_map(|(name, addresses)| addresses.iter().map(|address| name.at(*address)))
            .collect(),
        DnsLookup::Logical => resolved
            .take(1)
            .filter_map(|(name, addresses)| addresses.first().map(|address| name.at(*address)))
            .collect(),
    }
}

/// How long to wait before resolving again. `ttl` is the shortest remaining TTL of the
/// answers just received (`None` after a failure, or when nothing was received): with
/// `respect_dns_ttl` the wait is the TTL bounded by [`MIN_REFRESH`] and the cluster's
/// `refresh_rate_ms` (Envoy `dns_refresh_rate`, 5000 ms by default); otherwise, or after a
/// failure, it is `refresh_rate_ms` (at least [`MIN_REFRESH`]).
pub fn next_refresh(discovery: &DnsDiscovery, ttl: Option<Duration>) -> Duration {
    let rate = Duration::from_millis(discovery.refresh_rate_ms).max(MIN_REFRESH);
    match ttl {
        Some(ttl) if discovery.respect_dns_ttl => ttl.clamp(MIN_REFRESH, rate),
        _ => rate,
    }
}

/// Starts the resolution task of the DNS cluster `cluster` on the current tokio runtime.
/// `publish` receives `target` and the endpoints each time they change (the first time after
/// the first answer); the task ends when `target` is dropped. Without a tokio runtime, or
/// when the system resolver configuration cannot be read, nothing is resolved (logged) and
/// the cluster keeps no endpoints (requests fail with `UH`).
pub fn spawn<T: Send + Sync + 'static>(
    cluster: String,
    discovery: DnsDiscovery,
    target: Weak<T>,
    publish: impl Fn(&T, &[Endpoint]) + Send + 'static,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%cluster, "no async runtime: DNS cluster not resolved");
        return;
    };
    runtime.spawn(resolve_forever(cluster, discovery, target, publish));
}

/// The system resolver: `/etc/resolv.conf` (what `ip netns exec` bind-mounts from
/// `/etc/netns/<ns>/resolv.conf`) and `/etc/hosts`, IPv4 first (IPv6 when a name has no A
/// record).
fn system_resolver() -> Result<TokioResolver, hickory_resolver::ResolveError> {
    let mut builder = TokioResolver::builder_tokio()?;
    builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    Ok(builder.build())
}

async fn resolve_forever<T>(
    cluster: String,
    discovery: DnsDiscovery,
    target: Weak<T>,
    publish: impl Fn(&T, &[Endpoint]),
) {
    let resolver = match system_resolver() {
        Ok(resolver) => resolver,
        Err(error) => {
            tracing::warn!(%cluster, %error, "cannot read the system resolver configuration; DNS cluster not resolved");
            return;
        }
    };
    let mut answers: Vec<Option<Vec<IpAddr>>> = vec![None; discovery.endpoints.len()];
    let mut published: Option<Vec<Endpoint>> = None;
    while target.strong_count() > 0 {
        let lookups = discovery
            .endpoints
            .iter()
            .map(|name| resolver.lookup_ip(name.hostname.as_str()));
        let results = futures::future::join_all(lookups).await;
        let now = Instant::now();
        let mut ttl: Option<Duration> = None;
        let mut failed = false;
        for ((name, result), answer) in discovery.endpoints.iter().zip(results).zip(&mut answers) {
            match result {
                Ok(lookup) => {
                    let mut addresses: Vec<IpAddr> = lookup.iter().collect();
                    if discovery.lookup == DnsLookup::Strict {
                        // STRICT_DNS hosts are a set: the order of an answer is not a change.
                        addresses.sort();
                        addresses.dedup();
                    }
                    let remaining = lookup.valid_until().saturating_duration_since(now);
                    ttl = Some(ttl.map_or(remaining, |shortest| shortest.min(remaining)));
                    *answer = Some(addresses);
                }
                Err(error) => {
                    failed = true;
                    tracing::warn!(%cluster, hostname = %name.hostname, %error, "DNS resolution failed; keeping the last good addresses");
                }
            }
        }
        let endpoints = endpoints_from_answers(&discovery, &answers);
        let resolved_once = answers.iter().any(Option::is_some);
        if resolved_once && published.as_ref() != Some(&endpoints) {
            let Some(target) = target.upgrade() else {
                return;
            };
            tracing::info!(
                %cluster,
                addresses = ?endpoints.iter().map(|endpoint| endpoint.address).collect::<Vec<_>>(),
                "DNS cluster endpoints changed"
            );
            publish(&target, &endpoints);
            published = Some(endpoints);
        }
        tokio::time::sleep(next_refresh(&discovery, if failed { None } else { ttl })).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_proxy_config::DnsEndpoint;

    fn discovery(lookup: DnsLookup, names: &[(&str, u16)]) -> DnsDiscovery {
        DnsDiscovery {
            lookup,
            endpoints: names
                .iter()
                .map(|(hostname, port)| DnsEndpoint {
                    hostname: (*hostname).to_owned(),
                    port: *port,
                    labels: Default::default(),
                    locality: Default::default(),
                    weight: 2,
                    has_sidecar: false,
                })
                .collect(),
            refresh_rate_ms: 5_000,
            respect_dns_ttl: true,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn strict_dns_uses_every_address_of_every_name_with_its_port() {
        let discovery = discovery(DnsLookup::Strict, &[("a.test", 80), ("b.test", 8080)]);
        let answers = [
            Some(vec![ip("198.18.0.1"), ip("198.18.0.2")]),
            Some(vec![ip("198.18.0.3")]),
        ];
        let endpoints = endpoints_from_answers(&discovery, &answers);
        let got: Vec<(IpAddr, u16, u32)> = endpoints
            .iter()
            .map(|endpoint| (endpoint.address, endpoint.port, endpoint.weight))
            .collect();
        assert_eq!(
            got,
            vec![
                (ip("198.18.0.1"), 80, 2),
                (ip("198.18.0.2"), 80, 2),
                (ip("198.18.0.3"), 8080, 2)
            ]
        );
    }

    #[test]
    fn logical_dns_uses_only_the_first_address_of_the_first_name() {
        let discovery = discovery(DnsLookup::Logical, &[("a.test", 80)]);
        let answers = [Some(vec![ip("198.18.0.9"), ip("198.18.0.1")])];
        let endpoints = endpoints_from_answers(&discovery, &answers);
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].address, ip("198.18.0.9"));
    }

    #[test]
    fn names_never_resolved_give_no_endpoints() {
        let discovery = discovery(DnsLookup::Strict, &[("a.test", 80), ("b.test", 80)]);
        let endpoints = endpoints_from_answers(&discovery, &[None, Some(vec![ip("198.18.0.3")])]);
        assert_eq!(endpoints.len(), 1);
        assert!(endpoints_from_answers(&discovery, &[None, None]).is_empty());
    }

    #[tokio::test]
    async fn a_dns_cluster_of_a_snapshot_gets_its_resolved_addresses_swapped_in() {
        let config = weft_proxy_config::ProxyConfig::from_yaml(
            "node: {id: a, namespace: default}\n\
             clusters:\n  - name: outbound|80||ip.test\n    dns:\n      endpoints: [{hostname: 127.0.0.1, port: 8080}]\n",
        )
        .unwrap();
        let snapshot = crate::snapshot::Snapshot::build(config, None, None).unwrap();
        let cluster = snapshot.cluster("outbound|80||ip.test").unwrap();
        // An IP literal resolves to itself without a query; the task publishes it.
        let mut resolved = Vec::new();
        for _ in 0..500 {
            resolved = cluster
                .endpoints
                .load()
                .list()
                .iter()
                .map(|endpoint| endpoint.address)
                .collect();
            if !resolved.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(resolved, vec!["127.0.0.1:8080".parse().unwrap()]);
    }

    #[test]
    fn refresh_follows_the_ttl_within_one_second_and_the_refresh_rate() {
        let mut discovery = discovery(DnsLookup::Strict, &[("a.test", 80)]);
        let secs = Duration::from_secs;
        assert_eq!(next_refresh(&discovery, Some(secs(3))), secs(3));
        assert_eq!(next_refresh(&discovery, Some(secs(300))), secs(5));
        assert_eq!(next_refresh(&discovery, Some(Duration::ZERO)), secs(1));
        assert_eq!(next_refresh(&discovery, None), secs(5), "after a failure");
        discovery.respect_dns_ttl = false;
        assert_eq!(next_refresh(&discovery, Some(secs(3))), secs(5));
        discovery.refresh_rate_ms = 10;
        assert_eq!(next_refresh(&discovery, None), secs(1), "never below 1 s");
    }
}
