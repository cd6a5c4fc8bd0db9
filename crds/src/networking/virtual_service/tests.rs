//! Unit tests of VirtualService (de)serialization.

use super::*;
use crate::parse;

const RICH: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews-route
  namespace: bookinfo
spec:
  hosts:
  - reviews.bookinfo.svc.cluster.local
  gateways:
  - istio-system/bookinfo-gateway
  - mesh
  http:
  - name: reviews-v2-routes
    match:
    - name: jason
      uri:
        prefix: /wpcatalog
      headers:
        end-user:
          exact: jason
      queryParams:
        debug:
          regex: "^(true|1)$"
      withoutHeaders:
        x-canary:
          exact: "false"
      ignoreUriCase: true
      port: 9080
      sourceLabels:
        app: productpage
      sourceNamespace: bookinfo
    rewrite:
      uri: /newcatalog
    route:
    - destination:
        host: reviews.bookinfo.svc.cluster.local
        subset: v2
        port:
          number: 9080
      weight: 75
      headers:
        request:
          set:
            x-route: v2
    - destination:
        host: reviews.bookinfo.svc.cluster.local
        subset: v3
      weight: 25
    timeout: 1.5s
    retries:
      attempts: 3
      perTryTimeout: 500ms
      retryOn: 5xx,connect-failure
      backoff: 25ms
    fault:
      delay:
        fixedDelay: 7s
        percentage:
          value: 0.1
      abort:
        httpStatus: 503
        percentage:
          value: 50
    mirror:
      host: reviews-shadow
    mirrorPercentage:
      value: 10
    corsPolicy:
      allowOrigins:
      - exact: https://example.com
      - regex: "https://.*\\.example\\.org"
      allowMethods:
      - GET
      maxAge: 24h
      allowCredentials: false
      unmatchedPreflights: IGNORE
  - name: legacy
    redirect:
      uri: /v1/bookRatings
      authority: newratings.default.svc.cluster.local
      derivePort: FROM_REQUEST_PORT
      redirectCode: 308
  tcp:
  - match:
    - port: 27017
    route:
    - destination:
        host: mongo.backup.svc.cluster.local
        port:
          number: 5555
"#;

fn rich() -> VirtualService {
    parse::from_yaml(RICH).unwrap()
}

#[test]
fn round_trips_without_change() {
    let original: serde_json::Value = serde_yaml::from_str(RICH).unwrap();
    // apiVersion is written as the storage version (v1); the spec must come back unchanged.
    assert_eq!(
        serde_json::to_value(rich()).unwrap()["spec"],
        original["spec"]
    );
}

#[test]
fn string_matches_are_tagged_by_kind() {
    let vs = rich();
    let m = &vs.spec.http[0].match_[0];
    assert_eq!(m.uri, Some(StringMatch::Prefix("/wpcatalog".into())));
    assert_eq!(
        m.headers.get("end-user"),
        Some(&StringMatch::Exact("jason".into()))
    );
    assert_eq!(
        m.query_params.get("debug"),
        Some(&StringMatch::Regex("^(true|1)$".into()))
    );
    let cors = vs.spec.http[0].cors_policy.as_ref().unwrap();
    assert_eq!(
        cors.allow_origins[1],
        StringMatch::Regex(r"https://.*\.example\.org".into())
    );
}

#[test]
fn string_match_rejects_two_kinds_and_unknown_kinds() {
    let two = RICH.replace(
        "        prefix: /wpcatalog",
        "        prefix: /wpcatalog\n        exact: /x",
    );
    let err = parse::from_yaml::<VirtualService>(&two).unwrap_err();
    assert_eq!(err.path(), Some("spec.http[0].match[0].uri"));
    let unknown = RICH.replace("        prefix: /wpcatalog", "        suffix: /wpcatalog");
    let err = parse::from_yaml::<VirtualService>(&unknown).unwrap_err();
    assert_eq!(err.path(), Some("spec.http[0].match[0].uri"));
}

#[test]
fn durations_parse_and_keep_their_text() {
    let vs = rich();
    let route = &vs.spec.http[0];
    let timeout = route.timeout.as_ref().unwrap();
    assert_eq!(timeout.as_std(), std::time::Duration::from_millis(1500));
    assert_eq!(timeout.as_str(), "1.5s");
    let retries = route.retries.as_ref().unwrap();
    assert_eq!(
        retries.per_try_timeout.as_ref().unwrap().as_std(),
        std::time::Duration::from_millis(500)
    );
    let delay = route.fault.as_ref().and_then(|f| f.delay.as_ref()).unwrap();
    assert_eq!(delay.percentage.unwrap().value, 0.1);
    let bad = RICH.replace("timeout: 1.5s", "timeout: abc");
    let err = parse::from_yaml::<VirtualService>(&bad).unwrap_err();
    assert_eq!(err.path(), Some("spec.http[0].timeout"));
    assert!(err.to_string().contains("abc"), "{err}");
    let negative = RICH.replace("timeout: 1.5s", "timeout: -1s");
    assert!(parse::from_yaml::<VirtualService>(&negative).is_err());
}

#[test]
fn enum_spellings() {
    let vs = rich();
    let redirect = vs.spec.http[1].redirect.as_ref().unwrap();
    assert_eq!(
        redirect.derive_port,
        Some(RedirectPortSelection::FromRequestPort)
    );
    assert_eq!(redirect.redirect_code, Some(308));
    assert_eq!(
        serde_json::to_value(RedirectPortSelection::FromProtocolDefault).unwrap(),
        "FROM_PROTOCOL_DEFAULT"
    );
    for (text, value) in [
        ("UNSPECIFIED", UnmatchedPreflights::Unspecified),
        ("FORWARD", UnmatchedPreflights::Forward),
        ("IGNORE", UnmatchedPreflights::Ignore),
    ] {
        assert_eq!(
            serde_json::from_value::<UnmatchedPreflights>(text.into()).unwrap(),
            value
        );
    }
    let bad = RICH.replace("derivePort: FROM_REQUEST_PORT", "derivePort: FROM_REQUEST");
    let err = parse::from_yaml::<VirtualService>(&bad).unwrap_err();
    assert_eq!(err.path(), Some("spec.http[1].redirect.derivePort"));
}

#[test]
fn weights_must_be_integers() {
    let bad = RICH.replace("weight: 25", "weight: \"25\"");
    let err = parse::from_yaml::<VirtualService>(&bad).unwrap_err();
    assert_eq!(err.path(), Some("spec.http[0].route[1].weight"));
}

#[test]
fn unknown_fields_are_refused() {
    let bad = RICH.replace(
        "    timeout: 1.5s",
        "    timeout: 1.5s\n    circuitBreaker: {}",
    );
    let err = parse::from_yaml::<VirtualService>(&bad).unwrap_err();
    assert!(err.to_string().contains("circuitBreaker"), "{err}");
    assert!(
        err.path().is_some_and(|p| p.starts_with("spec.http[0]")),
        "{err}"
    );
}

#[test]
fn deprecated_fields_still_parse() {
    let text = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: legacy
spec:
  hosts: [ratings]
  http:
  - route:
    - destination:
        host: ratings
    mirror:
      host: ratings-shadow
    mirrorPercent: 5
    corsPolicy:
      allowOrigin: ["*"]
    fault:
      delay:
        fixedDelay: 2s
        percent: 10
"#;
    let vs: VirtualService = parse::from_yaml(text).unwrap();
    let route = &vs.spec.http[0];
    assert_eq!(route.mirror_percent, Some(5));
    assert_eq!(
        route.cors_policy.as_ref().unwrap().allow_origin,
        vec!["*".to_string()]
    );
    assert_eq!(
        route
            .fault
            .as_ref()
            .and_then(|f| f.delay.as_ref())
            .unwrap()
            .percent,
        Some(10)
    );
}

#[test]
fn direct_response_body() {
    let route: HttpRoute = serde_json::from_value(serde_json::json!({
        "directResponse": {"status": 503, "body": {"string": "unknown path"}}
    }))
    .unwrap();
    let response = route.direct_response.unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(
        response.body.unwrap().string.as_deref(),
        Some("unknown path")
    );
    assert!(
        serde_json::from_value::<HttpRoute>(serde_json::json!({"directResponse": {"body": {}}}))
            .is_err(),
        "status is required"
    );
}
