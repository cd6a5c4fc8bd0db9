//! Unit tests of DestinationRule (de)serialization.

use super::*;
use crate::parse;

const RICH: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews.bookinfo.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie:
          name: user
          ttl: 0s
          attributes:
          - name: SameSite
            value: Strict
        ringHash:
          minimumRingSize: 2048
    outlierDetection:
      consecutive5xxErrors: 7
      interval: 5m
      baseEjectionTime: 15m
    retryBudget:
      percent: 20
      minRetryConcurrency: 3
  subsets:
  - name: v1
    labels:
      version: v1
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
        warmup:
          duration: 60s
          minimumPercent: 12.5
"#;

fn rich() -> DestinationRule {
    parse::from_yaml(RICH).unwrap()
}

#[test]
fn parses_nested_policies() {
    let dr = rich();
    let policy = dr.spec.traffic_policy.as_ref().unwrap();
    let hash = policy
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.consistent_hash.as_ref())
        .unwrap();
    let cookie = hash.http_cookie.as_ref().unwrap();
    assert_eq!(cookie.name, "user");
    assert_eq!(
        cookie.ttl.as_ref().unwrap().as_std(),
        std::time::Duration::ZERO
    );
    assert_eq!(cookie.attributes[0].value.as_deref(), Some("Strict"));
    assert_eq!(
        hash.ring_hash.as_ref().unwrap().minimum_ring_size,
        Some(2048)
    );
    let outlier = policy.outlier_detection.as_ref().unwrap();
    assert_eq!(outlier.consecutive_5xx_errors, Some(7));
    assert_eq!(
        outlier.base_ejection_time.as_ref().unwrap().as_std(),
        std::time::Duration::from_secs(900)
    );
    let subset_lb = dr.spec.subsets[0]
        .traffic_policy
        .as_ref()
        .and_then(|p| p.load_balancer.as_ref())
        .unwrap();
    assert_eq!(subset_lb.simple, Some(SimpleLb::RoundRobin));
    assert_eq!(
        subset_lb.warmup.as_ref().unwrap().minimum_percent,
        Some(12.5)
    );
}

#[test]
fn round_trips_without_change() {
    let original: serde_json::Value = serde_yaml::from_str(RICH).unwrap();
    let back = serde_json::to_value(rich()).unwrap();
    assert_eq!(back, original);
}

#[test]
fn simple_lb_spellings() {
    for (text, lb) in [
        ("UNSPECIFIED", SimpleLb::Unspecified),
        ("LEAST_CONN", SimpleLb::LeastConn),
        ("RANDOM", SimpleLb::Random),
        ("PASSTHROUGH", SimpleLb::Passthrough),
        ("ROUND_ROBIN", SimpleLb::RoundRobin),
        ("LEAST_REQUEST", SimpleLb::LeastRequest),
    ] {
        assert_eq!(serde_json::from_value::<SimpleLb>(text.into()).unwrap(), lb);
        assert_eq!(serde_json::to_value(lb).unwrap(), text);
    }
    assert!(serde_json::from_value::<SimpleLb>("round_robin".into()).is_err());
}

#[test]
fn client_tls_mode_spellings() {
    for (text, mode) in [
        ("DISABLE", ClientTlsMode::Disable),
        ("SIMPLE", ClientTlsMode::Simple),
        ("MUTUAL", ClientTlsMode::Mutual),
        ("ISTIO_MUTUAL", ClientTlsMode::IstioMutual),
    ] {
        assert_eq!(
            serde_json::from_value::<ClientTlsMode>(text.into()).unwrap(),
            mode
        );
        assert_eq!(serde_json::to_value(mode).unwrap(), text);
    }
}

#[test]
fn errors_name_the_path() {
    let bad = RICH.replace("simple: ROUND_ROBIN", "simple: FASTEST");
    let err = parse::from_yaml::<DestinationRule>(&bad).unwrap_err();
    assert_eq!(
        err.path(),
        Some("spec.subsets[0].trafficPolicy.loadBalancer.simple")
    );
    let bad = RICH.replace("interval: 5m", "interval: five");
    let err = parse::from_yaml::<DestinationRule>(&bad).unwrap_err();
    assert_eq!(
        err.path(),
        Some("spec.trafficPolicy.outlierDetection.interval")
    );
    let bad = RICH.replace("minRetryConcurrency", "minRetries");
    let err = parse::from_yaml::<DestinationRule>(&bad).unwrap_err();
    assert_eq!(
        err.path(),
        Some("spec.trafficPolicy.retryBudget.minRetries")
    );
}

#[test]
fn locality_weights_map_to_integers() {
    let lb: LocalityLoadBalancerSetting = serde_json::from_value(serde_json::json!({
        "distribute": [{"from": "us-west/zone1/*", "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20}}],
        "enabled": true
    }))
    .unwrap();
    assert_eq!(lb.distribute[0].to.get("us-west/zone2/*"), Some(&20));
    assert!(
        serde_json::from_value::<LocalityLoadBalancerSetting>(serde_json::json!({
            "distribute": [{"to": {"us-west/zone1/*": "eighty"}}]
        }))
        .is_err()
    );
}

#[test]
fn client_tls_settings_lists_every_tls_block_top_level_first() {
    let rule: DestinationRule = parse::from_yaml(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec:
  host: db.shop.svc.cluster.local
  trafficPolicy:
    tls: {mode: SIMPLE, sni: top}
    portLevelSettings:
    - port: {number: 5432}
      tls: {mode: MUTUAL, credentialName: port-cert}
  subsets:
  - name: plain
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL, sni: subset}
"#,
    )
    .unwrap();
    let blocks: Vec<_> = rule
        .spec
        .client_tls_settings()
        .map(|tls| {
            (
                tls.sni.clone().unwrap_or_default(),
                tls.credential_name.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        blocks,
        [
            ("top".to_string(), String::new()),
            (String::new(), "port-cert".to_string()),
            ("subset".to_string(), String::new()),
        ]
    );
}
