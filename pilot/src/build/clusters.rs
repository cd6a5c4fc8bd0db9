//! Outbound clusters: `outbound|<port>||<host>` for every visible service port and
//! `outbound|<port>|<subset>|<host>` for every subset of the DestinationRule that applies.
//! Their TLS follows the rule's `tls` (Istio `ClientTLSSettings`), including a `MUTUAL`
//! credential from the Secret named by `credentialName`, or Istio's auto mTLS.

use std::collections::BTreeSet;
use std::sync::Arc;

use weft_crds::networking::{ClientTlsMode, DestinationRule};
use weft_proxy_config::{
    ClientCredential, Cluster, ClusterName, DEFAULT_DNS_REFRESH_RATE_MS, DnsDiscovery, DnsEndpoint,
    DnsLookup, Endpoint, LbPolicy, MtlsMode, PrivateKeyPem, ProxyType, TransportSocket,
};

use super::Context;
use super::destination_rule;
use super::inbound::inferred_service_mtls;
use super::policy::MergedPolicy;
use super::scope::Scope;
use crate::cache::{Cached, PortClusters};
use crate::proxy::ProxyTarget;
use crate::registry::{ServiceInstance, ServiceLocation, ServiceResolution};
use crate::selector::selects;
use crate::unsupported::Origin;
use crate::view::{ClusterView, name_of, names_credential, namespace_of};

/// Every cluster of the proxy, sorted by name, as references into the view's cache (see
/// [`crate::cache::BuildCache`]); the warnings of the clusters used are recorded.
pub(crate) fn build(context: &mut Context<'_>, scope: &Scope<'_>) -> Vec<Arc<Cached<Cluster>>> {
    let mut clusters = Vec::new();
    for service in &scope.services {
        let rule = destination_rule::find(context, &service.hostname, &service.namespace);
        for port in scope.ports_of(service) {
            let view = context.view;
            let build = || port_clusters(view, context.target, service, *port, rule);
            // A credential comes from the proxy's namespace and applies by proxy type: such
            // clusters are not shared between proxies.
            let cached = if rule.is_some_and(names_credential) {
                Arc::new(build())
            } else {
                view.cache().clusters(service, *port, rule, build)
            };
            for warning in &cached.warnings {
                context.warn(warning.clone());
            }
            clusters.extend(cached.clusters.iter().cloned());
        }
    }
    clusters.sort_by(|a, b| a.value.name.cmp(&b.value.name));
    clusters.dedup_by(|a, b| a.value.name == b.value.name);
    clusters
}

/// The default cluster of `service` on `port` and one per subset of `rule`, with their JSON.
/// Proxy-independent: `target` only fills the build context, whose warnings are kept.
fn port_clusters(
    view: &ClusterView,
    target: &ProxyTarget,
    service: &ServiceInstance,
    port: u16,
    rule: Option<&DestinationRule>,
) -> PortClusters {
    let mut context = Context {
        view,
        target,
        warnings: BTreeSet::new(),
    };
    let subsets = rule.map_or(0, |rule| rule.spec.subsets.len());
    let clusters = std::iter::once(None)
        .chain((0..subsets).map(Some))
        .map(|subset| {
            Arc::new(Cached::new(cluster(
                &mut context,
                service,
                port,
                rule,
                subset,
            )))
        })
        .collect();
    PortClusters {
        clusters,
        warnings: context.warnings.into_iter().collect(),
    }
}

fn cluster(
    context: &mut Context<'_>,
    service: &ServiceInstance,
    port: u16,
    rule: Option<&DestinationRule>,
    subset: Option<usize>,
) -> Cluster {
    for warning in &service.unsupported {
        context.warn(warning.clone());
    }
    let subset_spec = subset.and_then(|index| rule.and_then(|rule| rule.spec.subsets.get(index)));
    let subset_name = subset_spec.map_or("", |subset| subset.name.as_str());
    let name = ClusterName::outbound(port, subset_name, &service.hostname).to_string();
    let protocol = service
        .port(port)
        .map(|entry| entry.protocol)
        .unwrap_or_default();
    let mut endpoints: Vec<Endpoint> = service
        .endpoints_for(port)
        .filter(|endpoint| {
            subset_spec.is_none_or(|subset| selects(&subset.labels, &endpoint.labels))
        })
        .cloned()
        .collect();
    let dns_endpoints: Vec<DnsEndpoint> = service
        .dns_endpoints_for(port)
        .filter(|endpoint| {
            subset_spec.is_none_or(|subset| selects(&subset.labels, &endpoint.labels))
        })
        .cloned()
        .collect();
    let lookup = match service.resolution {
        ServiceResolution::DnsRoundRobin => DnsLookup::Logical,
        _ => DnsLookup::Strict,
    };
    let passthrough = match service.resolution {
        ServiceResolution::Passthrough => true,
        ServiceResolution::Dns | ServiceResolution::DnsRoundRobin => {
            endpoints.is_empty() && service.dns_endpoints.is_empty()
        }
        ServiceResolution::ClientSideLb => false,
    };
    let mut built = Cluster {
        name,
        lb_policy: LbPolicy::default(),
        consistent_hash: None,
        locality_lb: None,
        warmup: None,
        transport: TransportSocket::Plaintext,
        protocol,
        h2_upgrade: Default::default(),
        connection_pool: Default::default(),
        outlier_detection: None,
        endpoints: Vec::new(),
        dns: None,
    };
    let mut tls = None;
    if let Some(rule) = rule {
        let origin = Origin {
            kind: "DestinationRule",
            namespace: namespace_of(&rule.metadata),
            name: name_of(&rule.metadata),
        };
        let merged = MergedPolicy::new(context, &origin, rule, port, subset);
        built.lb_policy = merged.lb_policy();
        built.locality_lb = merged.locality_lb();
        built.warmup = merged.warmup();
        built.consistent_hash = merged
            .load_balancer
            .as_ref()
            .and_then(|(lb, path)| destination_rule::consistent_hash(context, &origin, lb, path));
        let (pool, h2_upgrade) = merged.connection_pool(context, &origin);
        built.connection_pool = pool;
        built.h2_upgrade = h2_upgrade;
        built.outlier_detection = merged.outlier_detection();
        tls = merged
            .tls
            .map(|(settings, path)| (settings.clone(), path, origin_owned(&origin, rule)));
    }
    if passthrough {
        built.lb_policy = LbPolicy::Passthrough;
        endpoints.clear();
    } else if !service.dns_endpoints.is_empty() {
        // Istio: DNS -> STRICT_DNS, DNS_ROUND_ROBIN -> LOGICAL_DNS, with respect_dns_ttl.
        built.dns = Some(DnsDiscovery {
            lookup,
            endpoints: dns_endpoints.clone(),
            refresh_rate_ms: DEFAULT_DNS_REFRESH_RATE_MS,
            respect_dns_ttl: true,
        });
    }
    let sni = format!("outbound_.{port}_.{subset_name}_.{}", service.hostname);
    let expected_identities = || expected_identities(service, port);
    built.transport = match tls {
        None => auto_mtls(
            context,
            service,
            endpoints.iter().any(|endpoint| endpoint.has_sidecar)
                || dns_endpoints.iter().any(|endpoint| endpoint.has_sidecar),
            sni,
            expected_identities(),
        ),
        Some((settings, path, owner)) => {
            let origin = Origin {
                kind: "DestinationRule",
                namespace: &owner.0,
                name: &owner.1,
            };
            let mode = settings.mode.unwrap_or_default();
            let credential_name = settings
                .credential_name
                .as_deref()
                .filter(|name| !name.is_empty());
            for (present, name, reason) in [
                (
                    credential_name.is_some() && mode != ClientTlsMode::Mutual,
                    "credentialName",
                    // Weft reads a credential for MUTUAL only (see below).
                    "certificates from a Kubernetes Secret are not expressible; the file fields \
                     apply",
                ),
                (
                    settings.insecure_skip_verify.is_some(),
                    "insecureSkipVerify",
                    "skipping server verification is not expressible; the server is verified",
                ),
                (
                    settings.ca_crl.is_some(),
                    "caCrl",
                    "certificate revocation lists are not expressible; none is checked",
                ),
            ] {
                if present {
                    context.warn(origin.unsupported(format!("{path}.{name}"), reason));
                }
            }
            let credential = credential_name
                .filter(|_| mode == ClientTlsMode::Mutual)
                .and_then(|name| {
                    let applies = context.target.proxy_type != ProxyType::Sidecar || owner.2;
                    if !applies {
                        context.warn(origin.unsupported(
                            format!("{path}.credentialName"),
                            "applies at sidecars only when the DestinationRule has a \
                             workloadSelector (Istio's rule); the file fields apply",
                        ));
                    }
                    applies.then(|| client_credential(context, &origin, &path, name))
                });
            match mode {
                _ if credential.is_some() => TransportSocket::Mutual {
                    client_certificate: String::new(),
                    private_key: String::new(),
                    ca_certificates: None,
                    sni: settings.sni.clone(),
                    subject_alt_names: settings.subject_alt_names.clone(),
                    credential,
                },
                ClientTlsMode::Disable => TransportSocket::Plaintext,
                // Istio's `buildUpstreamTLSSettings`: the rule's own `sni` and
                // `subjectAltNames` win over the generated ones, and a user-supplied
                // ISTIO_MUTUAL is the whole cluster's transport, not auto mTLS's match.
                ClientTlsMode::IstioMutual => TransportSocket::IstioMutual {
                    expected_identities: if settings.subject_alt_names.is_empty() {
                        expected_identities()
                    } else {
                        settings.subject_alt_names.clone()
                    },
                    sni: settings
                        .sni
                        .clone()
                        .filter(|sni| !sni.is_empty())
                        .unwrap_or(sni),
                    every_endpoint: true,
                },
                ClientTlsMode::Simple => TransportSocket::Simple {
                    ca_certificates: settings.ca_certificates.clone(),
                    sni: settings.sni.clone(),
                    subject_alt_names: settings.subject_alt_names.clone(),
                },
                ClientTlsMode::Mutual => {
                    match (&settings.client_certificate, &settings.private_key) {
                        (Some(certificate), Some(key)) => TransportSocket::Mutual {
                            client_certificate: certificate.clone(),
                            private_key: key.clone(),
                            ca_certificates: settings.ca_certificates.clone(),
                            sni: settings.sni.clone(),
                            subject_alt_names: settings.subject_alt_names.clone(),
                            credential: None,
                        },
                        _ => {
                            context.warn(origin.unsupported(
                                format!("{path}.mode"),
                                "MUTUAL without clientCertificate and privateKey files is not \
                                 expressible; TLS is originated without a client certificate \
                                 (SIMPLE)",
                            ));
                            TransportSocket::Simple {
                                ca_certificates: settings.ca_certificates.clone(),
                                sni: settings.sni.clone(),
                                subject_alt_names: settings.subject_alt_names.clone(),
                            }
                        }
                    }
                }
            }
        }
    };
    built.endpoints = endpoints;
    built
}

/// The rule's namespace and name, and whether it has a `workloadSelector`.
fn origin_owned(origin: &Origin<'_>, rule: &DestinationRule) -> (String, String, bool) {
    (
        origin.namespace.to_owned(),
        origin.name.to_owned(),
        has_workload_selector(rule),
    )
}

fn has_workload_selector(rule: &DestinationRule) -> bool {
    rule.spec
        .workload_selector
        .as_ref()
        .is_some_and(|selector| !selector.match_labels.is_empty())
}

/// The client credential of Istio `ClientTLSSettings.credentialName` `name` (at `path` of
/// `origin`), read from the Secrets of the proxy's namespace (Istio: the Secret "must exist in
/// the namespace of the proxy using the certificates"; see [`crate::view::Credential`] for
/// the keys). A missing Secret, or one without certificate or key, is reported and leaves the
/// part `None`: the proxy then fails the cluster's connections, as Envoy does while its SDS
/// secret is missing, instead of connecting without the client certificate.
fn client_credential(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    name: &str,
) -> ClientCredential {
    let namespace = context.target.namespace.clone();
    let found = context.view.credential(&namespace, name);
    let problem = if !found.found {
        Some(format!(
            "Secret {namespace}/{name} not found in the proxy's namespace"
        ))
    } else if found.certificate_chain.is_none() || found.private_key.is_none() {
        Some(format!(
            "Secret {namespace}/{name} lacks a certificate and key (keys tls.crt/tls.key or \
             cert/key)"
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        context.warn(origin.unsupported(
            format!("{path}.credentialName"),
            format!("{problem}; connections to this destination fail until it does (Istio's SDS)"),
        ));
    }
    ClientCredential {
        credential_name: format!("{namespace}/{name}"),
        certificate_chain: found.certificate_chain,
        private_key: found.private_key.map(PrivateKeyPem::new),
        ca_certificates: found.ca_certificates,
    }
}

/// Istio's auto mTLS for a cluster without DestinationRule `tls`: mutual TLS to endpoints
/// that run a sidecar (the model applies it per endpoint by `has_sidecar`), plaintext
/// otherwise; plaintext for the whole cluster when the service is `MESH_EXTERNAL`, when no
/// endpoint runs a sidecar, or when the PeerAuthentication of the service's namespace (or the
/// mesh) is `DISABLE` (Istio's `BestEffortInferServiceMTLSMode`).
fn auto_mtls(
    context: &Context<'_>,
    service: &ServiceInstance,
    any_sidecar: bool,
    sni: String,
    expected_identities: Vec<String>,
) -> TransportSocket {
    let external = service.location == ServiceLocation::MeshExternal;
    let disabled = inferred_service_mtls(context.view, &service.namespace) == MtlsMode::Disable;
    if external || !any_sidecar || disabled {
        TransportSocket::Plaintext
    } else {
        TransportSocket::IstioMutual {
            expected_identities,
            sni,
            every_endpoint: false,
        }
    }
}

/// The identities a server may present: the ServiceEntry's `subjectAltNames` when set, else
/// the SPIFFE IDs of the service's endpoints (all ports), sorted.
fn expected_identities(service: &ServiceInstance, port: u16) -> Vec<String> {
    if !service.subject_alt_names.is_empty() {
        return service.subject_alt_names.clone();
    }
    service
        .endpoints_for(port)
        .filter_map(|endpoint| endpoint.identity.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tls_tests;
