//! Unit tests for the gateway model: parsing, round trips, redaction and validation.

use pretty_assertions::assert_eq;

use crate::*;

const SAMPLE: &str = include_str!("../../testdata/ingress-gateway.yaml");
const KEY_MARKER: &str = "NotARealKey";

fn sample() -> ProxyConfig {
    ProxyConfig::from_yaml(SAMPLE).unwrap()
}

fn server<'a>(config: &'a mut ProxyConfig, name: &str) -> &'a mut GatewayServer {
    config
        .gateways
        .iter_mut()
        .flat_map(|listener| listener.servers.iter_mut())
        .find(|server| server.name == name)
        .unwrap()
}

fn messages(config: &ProxyConfig) -> Vec<String> {
    config
        .validate()
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_error(config: &ProxyConfig, expected: &str) {
    let messages = messages(config);
    assert!(
        messages.iter().any(|message| message == expected),
        "expected {expected:?}, got {messages:?}"
    );
}

#[test]
fn sample_parses_istio_shaped_values_and_validates() {
    let mut config = sample();
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.node.proxy_type, ProxyType::Router);
    assert_eq!(config.gateways.len(), 3);
    assert_eq!(
        config.gateways[2].bind,
        Some("198.18.0.10".parse().unwrap())
    );
    let https = server(&mut config, "bookinfo/secure-gateway/https");
    let tls = https.tls.as_ref().unwrap();
    assert_eq!(tls.mode, ServerTlsMode::Simple);
    assert_eq!(tls.min_protocol_version, Some(TlsVersion::V1_2));
    assert!(https.terminates_tls() && https.serves_http() && https.is_tls());
    let redirect = server(&mut config, "bookinfo/secure-gateway/0");
    assert!(redirect.https_redirect);
    let passthrough = server(&mut config, "bookinfo/passthrough-gateway/0");
    assert!(!passthrough.terminates_tls() && !passthrough.serves_http());
    assert_eq!(
        passthrough.tls_routes[0].matches[0].sni_hosts,
        vec!["db.example.com".to_owned()]
    );
    let mtls = server(&mut config, "bookinfo/partner-gateway/mtls");
    let credential = mtls.tls.as_ref().unwrap().credential.as_ref().unwrap();
    assert_eq!(
        credential.ca_certificates(),
        Some("/etc/istio/partner/ca.crt")
    );
}

#[test]
fn json_and_yaml_round_trips_preserve_gateways() {
    let config = sample();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(ProxyConfig::from_json(&json).unwrap(), config);
    let yaml = config.to_yaml().unwrap();
    assert_eq!(ProxyConfig::from_yaml(&yaml).unwrap(), config);
}

#[test]
fn a_sidecar_config_serialises_no_gateways_key() {
    let config = ProxyConfig::from_yaml("node: {id: a, namespace: n}\n").unwrap();
    assert!(config.gateways.is_empty());
    assert!(!config.to_yaml().unwrap().contains("gateways"));
    assert!(!serde_json::to_string(&config).unwrap().contains("gateways"));
}

#[test]
fn unknown_gateway_fields_are_rejected() {
    let text = SAMPLE.replace("    port: 8080\n", "    port: 8080\n    colour: blue\n");
    let error = ProxyConfig::from_yaml(&text).unwrap_err().to_string();
    assert!(error.contains("colour"), "{error}");
}

#[test]
fn private_keys_never_show_in_debug_and_are_redacted_for_dumps() {
    let config = sample();
    assert!(!format!("{config:?}").contains(KEY_MARKER));
    assert!(format!("{config:?}").contains(REDACTED));
    // The wire form carries the key: the proxy needs it.
    assert!(config.to_yaml().unwrap().contains(KEY_MARKER));
    let redacted = config.redacted();
    assert!(!redacted.to_yaml().unwrap().contains(KEY_MARKER));
    assert!(
        !serde_json::to_string(&redacted)
            .unwrap()
            .contains(KEY_MARKER)
    );
    assert_eq!(redacted.validate(), Ok(()));
    // Only the key changed.
    let mut restored = redacted.clone();
    let original_key = match &sample().gateways[1].servers[0]
        .tls
        .as_ref()
        .unwrap()
        .credential
    {
        Some(TlsCredential::Inline { private_key, .. }) => private_key.clone(),
        other => panic!("expected an inline credential, got {other:?}"),
    };
    if let Some(TlsCredential::Inline { private_key, .. }) = &mut restored.gateways[1].servers[0]
        .tls
        .as_mut()
        .unwrap()
        .credential
    {
        assert_eq!(private_key.expose(), REDACTED);
        *private_key = original_key;
    }
    assert_eq!(restored, config);
}

#[test]
fn tls_settings_must_fit_the_protocol() {
    let mut config = sample();
    server(&mut config, "bookinfo/bookinfo-gateway/http").tls = Some(ServerTls {
        mode: ServerTlsMode::Simple,
        credential: None,
        subject_alt_names: Vec::new(),
        min_protocol_version: None,
        max_protocol_version: None,
        cipher_suites: Vec::new(),
    });
    server(&mut config, "bookinfo/secure-gateway/https").tls = None;
    assert_error(
        &config,
        "gateways[0.0.0.0_8080].servers[bookinfo/bookinfo-gateway/http].tls: protocol HTTP is \
         plaintext and takes no tls settings",
    );
    assert_error(
        &config,
        "gateways[0.0.0.0_8443].servers[bookinfo/secure-gateway/https].tls: protocol HTTPS needs \
         tls settings",
    );
}

#[test]
fn each_tls_mode_gets_the_credential_it_needs() {
    let mut config = sample();
    let mtls = server(&mut config, "bookinfo/partner-gateway/mtls");
    if let Some(TlsCredential::Files {
        ca_certificates, ..
    }) = &mut mtls.tls.as_mut().unwrap().credential
    {
        *ca_certificates = None;
    }
    let passthrough = server(&mut config, "bookinfo/passthrough-gateway/0");
    passthrough.tls.as_mut().unwrap().credential = Some(TlsCredential::Files {
        server_certificate: "/c".to_owned(),
        private_key: String::new(),
        ca_certificates: None,
    });
    let prefix = "gateways[0.0.0.0_8443].servers";
    assert_error(
        &config,
        &format!(
            "{prefix}[bookinfo/partner-gateway/mtls].tls.credential: mode MUTUAL needs \
             ca_certificates in the credential to verify clients"
        ),
    );
    assert_error(
        &config,
        &format!(
            "{prefix}[bookinfo/passthrough-gateway/0].tls.credential: mode PASSTHROUGH takes no \
             credential (passthrough, or the proxy's own mesh certificate)"
        ),
    );
    assert_error(
        &config,
        &format!(
            "{prefix}[bookinfo/passthrough-gateway/0].tls.credential.files.private_key: must not \
             be empty"
        ),
    );
}

#[test]
fn istio_mutual_needs_no_credential() {
    let mut config = sample();
    let https = server(&mut config, "bookinfo/secure-gateway/https");
    let tls = https.tls.as_mut().unwrap();
    tls.mode = ServerTlsMode::IstioMutual;
    tls.credential = None;
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn min_version_above_max_is_rejected() {
    let mut config = sample();
    let tls = server(&mut config, "bookinfo/secure-gateway/https")
        .tls
        .as_mut()
        .unwrap();
    tls.min_protocol_version = Some(TlsVersion::V1_3);
    tls.max_protocol_version = Some(TlsVersion::V1_2);
    assert_error(
        &config,
        "gateways[0.0.0.0_8443].servers[bookinfo/secure-gateway/https].tls: min_protocol_version \
         TLSV1_3 is above max_protocol_version TLSV1_2",
    );
    let tls = server(&mut config, "bookinfo/secure-gateway/https")
        .tls
        .as_mut()
        .unwrap();
    tls.max_protocol_version = Some(TlsVersion::Auto);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn routes_must_fit_the_server() {
    let mut config = sample();
    let tcp_routes = server(&mut config, "bookinfo/mysql-gateway/tcp")
        .tcp_routes
        .clone();
    let tls_routes = server(&mut config, "bookinfo/passthrough-gateway/0")
        .tls_routes
        .clone();
    let http = server(&mut config, "bookinfo/bookinfo-gateway/http");
    http.tcp_routes = tcp_routes;
    http.tls_routes = tls_routes;
    server(&mut config, "bookinfo/secure-gateway/https").route_config = None;
    server(&mut config, "bookinfo/secure-gateway/https").https_redirect = true;
    let prefix = "gateways[0.0.0.0_8080].servers[bookinfo/bookinfo-gateway/http]";
    assert_error(
        &config,
        &format!("{prefix}.tls_routes: only PASSTHROUGH servers take TLS routes"),
    );
    assert_error(
        &config,
        &format!(
            "{prefix}.tcp_routes: only TCP servers and TLS servers that terminate TLS take TCP \
             routes"
        ),
    );
    let prefix = "gateways[0.0.0.0_8443].servers[bookinfo/secure-gateway/https]";
    assert_error(
        &config,
        &format!(
            "{prefix}.route_config: a server that serves HTTP (HTTP, HTTP2, GRPC, terminated \
             HTTPS) needs a route table"
        ),
    );
    assert_error(
        &config,
        &format!(
            "{prefix}.https_redirect: only plaintext HTTP servers (HTTP, HTTP2, GRPC) redirect to \
             https"
        ),
    );
}

#[test]
fn gateway_routes_are_checked_like_outbound_routes() {
    let mut config = sample();
    config
        .clusters
        .retain(|cluster| !cluster.name.contains("productpage") && !cluster.name.contains("db."));
    let prefix = "gateways[0.0.0.0_8080].servers[bookinfo/bookinfo-gateway/http]";
    assert_error(
        &config,
        &format!(
            "{prefix}.route_config.virtual_hosts[0].routes[0].action.route.clusters: cluster \
             \"outbound|9080||productpage.bookinfo.svc.cluster.local\" is not defined in clusters"
        ),
    );
    assert_error(
        &config,
        "gateways[0.0.0.0_8443].servers[bookinfo/passthrough-gateway/0].tls_routes[0].clusters: \
         cluster \"outbound|5432||db.bookinfo.svc.cluster.local\" is not defined in clusters",
    );
}

#[test]
fn servers_sharing_a_port_must_be_compatible() {
    let mut config = sample();
    let plain = config.gateways[0].servers[0].clone();
    config.gateways[1].servers.push(GatewayServer {
        name: "bookinfo/other/0".to_owned(),
        ..plain.clone()
    });
    config.gateways[2].servers.push(GatewayServer {
        name: "bookinfo/other/1".to_owned(),
        ..plain
    });
    assert_error(
        &config,
        "gateways[0.0.0.0_8443].servers: TLS servers (HTTPS, TLS) and plaintext servers cannot \
         share a port",
    );
    assert_error(
        &config,
        "gateways[198.18.0.10_3306].servers: a TCP server cannot share its port with another \
         server",
    );
}

#[test]
fn names_ports_and_hosts_are_checked() {
    let mut config = sample();
    config.gateways[2].port = 0;
    config.gateways[2].bind = None;
    let duplicate = config.gateways[0].servers[0].clone();
    config.gateways[0].servers[1].name = duplicate.name.clone();
    config.gateways[0].servers[0].hosts = vec!["bookinfo/reviews.example.com".to_owned()];
    config.gateways[0].servers[1].hosts = Vec::new();
    config.gateways[1].servers[2].tls_routes[0].matches[0].sni_hosts =
        vec!["-bad.example.com".to_owned()];
    assert_error(
        &config,
        "gateways[198.18.0.10_3306].port: port 0 is not a valid port",
    );
    assert_error(
        &config,
        "gateways: server name \"bookinfo/bookinfo-gateway/http\" is used twice; server names \
         must be unique",
    );
    assert_error(
        &config,
        "gateways[0.0.0.0_8080].servers[bookinfo/bookinfo-gateway/http].hosts: host \
         \"bookinfo/reviews.example.com\" must be a DNS name, `*.suffix` or `*` (no namespace/ \
         prefix)",
    );
    assert_error(
        &config,
        "gateways[0.0.0.0_8080].servers[bookinfo/bookinfo-gateway/http].hosts: needs at least \
         one entry",
    );
    assert_error(
        &config,
        "gateways[0.0.0.0_8443].servers[bookinfo/passthrough-gateway/0].tls_routes[0].match[0]\
         .sni_hosts: host \"-bad.example.com\" must be a DNS name, `*.suffix` or `*` (no \
         namespace/ prefix)",
    );
}

#[test]
fn listeners_on_other_addresses_may_share_a_port() {
    let mut config = sample();
    let mut second = config.gateways[2].clone();
    second.name = "198.18.0.11_3306".to_owned();
    second.bind = Some("198.18.0.11".parse().unwrap());
    second.servers[0].name = "bookinfo/mysql-gateway/second".to_owned();
    config.gateways.push(second);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn host_matching_follows_istio_wildcards() {
    assert!(host_matches("*", "anything.example.com"));
    assert!(host_matches("*.example.com", "a.example.com"));
    assert!(host_matches("*.example.com", "a.b.Example.com"));
    assert!(!host_matches("*.example.com", "example.com"));
    assert!(!host_matches("*.example.com", "aexample.com"));
    assert!(host_matches("Secure.example.com", "secure.example.COM"));
    assert!(!host_matches("secure.example.com", "other.example.com"));
}
