//! Unit tests for route matching and virtual-host selection.

use std::collections::BTreeMap;

use http::HeaderMap;
use weft_proxy_config::{
    HeaderMatch, Node, RouteConfiguration, RouteMatch, StringMatch, VirtualHost,
};

use super::*;

fn view<'a>(path: &'a str, query: Option<&'a str>, headers: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        path,
        query,
        method: "GET",
        authority: "reviews:9080",
        scheme: "http",
        port: 9080,
        headers,
    }
}

fn node() -> Node {
    Node {
        namespace: "default".into(),
        labels: BTreeMap::from([("app".to_owned(), "productpage".to_owned())]),
        ..Node::default()
    }
}

fn compile(route_match: RouteMatch) -> Option<CompiledMatch> {
    CompiledMatch::compile("test", &route_match, &node()).unwrap()
}

#[test]
fn uri_matchers_follow_istio_semantics() {
    let headers = HeaderMap::new();
    let prefix = compile(RouteMatch {
        uri: Some(StringMatch::Prefix("/api".into())),
        ..RouteMatch::default()
    })
    .unwrap();
    assert!(prefix.matches(&view("/api/v1", None, &headers)));
    assert!(!prefix.matches(&view("/API/v1", None, &headers)));
    assert_eq!(prefix.uri_prefix.as_deref(), Some("/api"));

    let ignore_case = compile(RouteMatch {
        uri: Some(StringMatch::Exact("/Login".into())),
        ignore_uri_case: true,
        ..RouteMatch::default()
    })
    .unwrap();
    assert!(ignore_case.matches(&view("/login", None, &headers)));
    assert!(!ignore_case.matches(&view("/login/x", None, &headers)));

    let regex = compile(RouteMatch {
        uri: Some(StringMatch::Regex("/items/[0-9]+".into())),
        ..RouteMatch::default()
    })
    .unwrap();
    assert!(regex.matches(&view("/items/42", None, &headers)));
    // Whole-value match, as Envoy's safe_regex.
    assert!(!regex.matches(&view("/items/42/edit", None, &headers)));
}

#[test]
fn headers_without_headers_and_query_params() {
    let route_match = RouteMatch {
        headers: BTreeMap::from([
            ("end-user".to_owned(), HeaderMatch::Exact("jason".into())),
            ("x-canary".to_owned(), HeaderMatch::Present(true)),
        ]),
        without_headers: BTreeMap::from([(
            "x-block".to_owned(),
            HeaderMatch::Prefix("yes".into()),
        )]),
        query_params: BTreeMap::from([("debug".to_owned(), StringMatch::Exact("1".into()))]),
        ..RouteMatch::default()
    };
    let compiled = compile(route_match).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("end-user", "jason".parse().unwrap());
    headers.insert("x-canary", "".parse().unwrap());
    assert!(compiled.matches(&view("/", Some("a=2&debug=1"), &headers)));
    assert!(!compiled.matches(&view("/", Some("debug=0"), &headers)));
    assert!(!compiled.matches(&view("/", None, &headers)));
    headers.insert("x-block", "yes-please".parse().unwrap());
    assert!(!compiled.matches(&view("/", Some("debug=1"), &headers)));
    headers.remove("x-block");
    headers.remove("x-canary");
    assert!(!compiled.matches(&view("/", Some("debug=1"), &headers)));
}

#[test]
fn source_labels_and_namespace_are_decided_at_compile_time() {
    let selects = RouteMatch {
        source_labels: BTreeMap::from([("app".to_owned(), "productpage".to_owned())]),
        source_namespace: Some("default".into()),
        ..RouteMatch::default()
    };
    assert!(compile(selects).is_some());
    let other = RouteMatch {
        source_labels: BTreeMap::from([("app".to_owned(), "reviews".to_owned())]),
        ..RouteMatch::default()
    };
    assert!(compile(other).is_none());
    let other_namespace = RouteMatch {
        source_namespace: Some("prod".into()),
        ..RouteMatch::default()
    };
    assert!(compile(other_namespace).is_none());
}

#[test]
fn port_and_method_conditions() {
    let headers = HeaderMap::new();
    let compiled = compile(RouteMatch {
        port: Some(8080),
        method: Some(StringMatch::Exact("GET".into())),
        ..RouteMatch::default()
    })
    .unwrap();
    assert!(!compiled.matches(&view("/", None, &headers)));
    let mut request = view("/", None, &headers);
    request.port = 8080;
    assert!(compiled.matches(&request));
}

#[test]
fn domains_prefer_exact_then_longest_suffix_then_prefix_then_any() {
    let vhost = |name: &str, domains: &[&str]| VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        routes: Vec::new(),
    };
    let config = RouteConfiguration {
        virtual_hosts: vec![
            vhost("any", &["*"]),
            vhost("suffix", &["*.svc.cluster.local"]),
            vhost("long-suffix", &["*.default.svc.cluster.local"]),
            vhost("prefix", &["reviews.*"]),
            vhost(
                "exact",
                &["reviews.default.svc.cluster.local", "Reviews:9080"],
            ),
        ],
    };
    let index = DomainIndex::new(&config);
    assert_eq!(index.find("reviews.default.svc.cluster.local"), Some(4));
    assert_eq!(index.find("REVIEWS:9080"), Some(4));
    assert_eq!(index.find("ratings.default.svc.cluster.local"), Some(2));
    assert_eq!(index.find("ratings.prod.svc.cluster.local"), Some(1));
    assert_eq!(index.find("reviews.example"), Some(3));
    assert_eq!(index.find("example.com"), Some(0));
    let no_any = DomainIndex::new(&RouteConfiguration {
        virtual_hosts: vec![vhost("exact", &["a"])],
    });
    assert_eq!(no_any.find("b"), None);
}
