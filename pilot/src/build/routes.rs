//! HTTP routes: a VirtualService's `http` routes translated for one (service, port), or the
//! default route to the service's cluster.

use std::collections::BTreeSet;

use weft_crds::StringMatch as CrdStringMatch;
use weft_crds::networking::{
    CorsPolicy as CrdCors, Destination, HeaderOperations, HttpMatchRequest, HttpRetry, HttpRoute,
    UnmatchedPreflights, VirtualService,
};
use weft_proxy_config::{
    BLACK_HOLE_CLUSTER, ClusterName, CorsPolicy, DirectResponseAction, FaultAbort, FaultDelay,
    FaultInjection, ForwardAction, HeaderMatch, HeaderMutation, Mirror, RedirectAction,
    RegexRewrite, RetryOn, RetryPolicy, Rewrite, Route, RouteAction, RouteMatch, StringMatch,
    WeightedCluster,
};

use super::Context;
use super::gateway::{GatewayName, names_binding};
use super::policy::millis;
use super::scope::Scope;
use crate::host::resolve_host;
use crate::registry::ServiceInstance;
use crate::selector::selects;
use crate::unsupported::Origin;
use crate::view::{name_of, namespace_of};

/// What route translation needs besides the context.
pub(crate) struct RouteInputs<'s, 'a> {
    pub scope: &'s Scope<'a>,
    pub clusters: &'s BTreeSet<String>,
    /// The listener's service port, or the gateway server's port.
    pub port: u16,
    /// The gateway the routes are built for (`None`: the sidecars' reserved gateway `mesh`);
    /// decides which `gateways` lists of matches apply.
    pub gateway: Option<&'s GatewayName>,
}

/// Istio's default retry policy for routes without `retries`: 2 attempts on
/// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` with
/// retriable status 503.
pub(crate) fn default_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        per_try_timeout_ms: None,
        retry_on: vec![
            RetryOn::ConnectFailure,
            RetryOn::RefusedStream,
            RetryOn::Unavailable,
            RetryOn::Cancelled,
            RetryOn::RetriableStatusCodes,
        ],
        retriable_status_codes: vec![503],
        backoff_base_ms: 25,
    }
}

/// The route Istio generates without a VirtualService: every request to the service's cluster,
/// with the default retry policy and no timeout.
pub(crate) fn default_route(service: &ServiceInstance, port: u16) -> Route {
    Route {
        name: "default".to_owned(),
        matches: Vec::new(),
        action: RouteAction::Route(Box::new(ForwardAction {
            clusters: vec![WeightedCluster {
                cluster: ClusterName::outbound(port, "", &service.hostname).to_string(),
                weight: 100,
            }],
            retry: Some(default_retry()),
            ..ForwardAction::default()
        })),
    }
}

/// The cluster a VirtualService destination names: the host resolved in the VirtualService's
/// namespace, the destination port (else the service's only port, else the listener's port)
/// and the subset. An unknown host, port or subset is reported and routed to
/// `BlackHoleCluster` (Istio would name a missing cluster and fail the request).
pub(crate) fn destination_cluster(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    origin: &Origin<'_>,
    path: &str,
    destination: &Destination,
) -> String {
    let mesh = context.view.mesh();
    let host = resolve_host(&destination.host, origin.namespace, &mesh.cluster_domain);
    let Some(service) = inputs.scope.service(&host) else {
        context.warn(origin.unsupported(
            format!("{path}.host"),
            format!("host {host:?} is not a service visible to this proxy; requests fail (BlackHoleCluster)"),
        ));
        return BLACK_HOLE_CLUSTER.to_owned();
    };
    let ports = inputs.scope.ports_of(service);
    let port = match destination.port.as_ref().and_then(|port| port.number) {
        Some(number) => u16::try_from(number).ok(),
        None if ports.len() == 1 => ports.first().copied(),
        None => ports.contains(&inputs.port).then_some(inputs.port),
    };
    let subset = destination.subset.as_deref().unwrap_or("");
    let name = port.map(|port| ClusterName::outbound(port, subset, &service.hostname).to_string());
    match name {
        Some(name) if inputs.clusters.contains(&name) => name,
        _ => {
            context.warn(origin.unsupported(
                path.to_owned(),
                format!(
                    "no cluster for host {host:?} port {port:?} subset {subset:?} (unknown port \
                     or subset); requests fail (BlackHoleCluster)"
                ),
            ));
            BLACK_HOLE_CLUSTER.to_owned()
        }
    }
}

/// The routes of `vs` for the listener, in order. Routes whose every match cannot apply to
/// this proxy (another listener port, `sourceLabels` or `sourceNamespace` the proxy lacks,
/// `gateways` not naming `mesh` or the gateway built) are dropped, as Istio does; `delegate` routes are reported.
pub(crate) fn virtual_service_routes(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    vs: &VirtualService,
) -> Vec<Route> {
    let origin = Origin {
        kind: "VirtualService",
        namespace: namespace_of(&vs.metadata),
        name: name_of(&vs.metadata),
    };
    let mut routes = Vec::new();
    for (index, route) in vs.spec.http.iter().enumerate() {
        let path = format!("spec.http[{index}]");
        if route.delegate.is_some() {
            context.warn(origin.unsupported(
                format!("{path}.delegate"),
                "delegate VirtualServices are not supported; the route is left out",
            ));
            continue;
        }
        let mut matches = Vec::new();
        for (match_index, request) in route.match_.iter().enumerate() {
            let match_path = format!("{path}.match[{match_index}]");
            if let Some(translated) =
                translate_match(context, inputs, &origin, &match_path, request)
            {
                matches.push(translated);
            }
        }
        if !route.match_.is_empty() && matches.is_empty() {
            continue;
        }
        let Some(action) = translate_action(context, inputs, &origin, &path, route) else {
            continue;
        };
        routes.push(Route {
            name: route.name.clone().unwrap_or_default(),
            matches,
            action,
        });
    }
    routes
}

fn translate_match(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    origin: &Origin<'_>,
    path: &str,
    request: &HttpMatchRequest,
) -> Option<RouteMatch> {
    let target = context.target;
    if let Some(port) = request.port
        && port != u32::from(inputs.port)
    {
        return None;
    }
    if !request.gateways.is_empty()
        && !names_binding(&request.gateways, origin.namespace, inputs.gateway)
    {
        return None;
    }
    if !selects(&request.source_labels, &target.labels) {
        return None;
    }
    if request
        .source_namespace
        .as_ref()
        .is_some_and(|namespace| *namespace != target.namespace)
    {
        return None;
    }
    if request.stat_prefix.is_some() {
        context.warn(origin.unsupported(
            format!("{path}.statPrefix"),
            "per-route statistics prefixes are not expressible; ignored",
        ));
    }
    let headers = |map: &std::collections::BTreeMap<String, CrdStringMatch>| {
        map.iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), header_match(value)))
            .collect()
    };
    Some(RouteMatch {
        uri: request.uri.as_ref().map(string_match),
        scheme: request.scheme.as_ref().map(string_match),
        method: request.method.as_ref().map(string_match),
        authority: request.authority.as_ref().map(string_match),
        headers: headers(&request.headers),
        without_headers: headers(&request.without_headers),
        query_params: request
            .query_params
            .iter()
            .map(|(name, value)| (name.clone(), string_match(value)))
            .collect(),
        port: None,
        source_labels: Default::default(),
        source_namespace: None,
        ignore_uri_case: request.ignore_uri_case.unwrap_or(false),
    })
}

fn string_match(value: &CrdStringMatch) -> StringMatch {
    match value {
        CrdStringMatch::Exact(text) => StringMatch::Exact(text.clone()),
        CrdStringMatch::Prefix(text) => StringMatch::Prefix(text.clone()),
        CrdStringMatch::Regex(text) => StringMatch::Regex(text.clone()),
    }
}

fn header_match(value: &CrdStringMatch) -> HeaderMatch {
    match value {
        CrdStringMatch::Exact(text) => HeaderMatch::Exact(text.clone()),
        CrdStringMatch::Prefix(text) => HeaderMatch::Prefix(text.clone()),
        CrdStringMatch::Regex(text) => HeaderMatch::Regex(text.clone()),
    }
}

fn translate_action(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    origin: &Origin<'_>,
    path: &str,
    route: &HttpRoute,
) -> Option<RouteAction> {
    if let Some(redirect) = &route.redirect {
        if redirect.derive_port.is_some() {
            context.warn(origin.unsupported(
                format!("{path}.redirect.derivePort"),
                "deriving the redirect port is not expressible; the port is kept unless `port` \
                 is set",
            ));
        }
        return Some(RouteAction::Redirect(RedirectAction {
            uri: redirect.uri.clone(),
            authority: redirect.authority.clone(),
            port: redirect.port.and_then(|port| u16::try_from(port).ok()),
            scheme: redirect.scheme.clone(),
            redirect_code: redirect
                .redirect_code
                .and_then(|code| u16::try_from(code).ok())
                .unwrap_or(301),
        }));
    }
    if let Some(direct) = &route.direct_response {
        let body = direct.body.as_ref().and_then(|body| {
            if body.bytes.is_some() {
                context.warn(origin.unsupported(
                    format!("{path}.directResponse.body.bytes"),
                    "binary bodies are not expressible; the response has no body",
                ));
            }
            body.string.clone()
        });
        return Some(RouteAction::DirectResponse(DirectResponseAction {
            status: u16::try_from(direct.status).unwrap_or(500),
            body,
        }));
    }
    if route.route.is_empty() {
        return None;
    }
    let single = route.route.len() == 1;
    let mut request_headers = mutation(route.headers.as_ref().and_then(|h| h.request.as_ref()));
    let mut response_headers = mutation(route.headers.as_ref().and_then(|h| h.response.as_ref()));
    let mut clusters = Vec::new();
    for (index, destination) in route.route.iter().enumerate() {
        let destination_path = format!("{path}.route[{index}]");
        let cluster = destination_cluster(
            context,
            inputs,
            origin,
            &format!("{destination_path}.destination"),
            &destination.destination,
        );
        let weight = destination
            .weight
            .map_or(if single { 100 } else { 0 }, |weight| {
                u32::try_from(weight).unwrap_or(0)
            });
        clusters.push(WeightedCluster { cluster, weight });
        if let Some(headers) = &destination.headers {
            if single {
                // One destination: its header operations are the route's.
                merge(&mut request_headers, mutation(headers.request.as_ref()));
                merge(&mut response_headers, mutation(headers.response.as_ref()));
            } else {
                context.warn(origin.unsupported(
                    format!("{destination_path}.headers"),
                    "per-destination header operations with several destinations are not \
                     expressible; ignored",
                ));
            }
        }
    }
    let mut forward = ForwardAction {
        clusters,
        timeout_ms: route.timeout.as_ref().map(millis).filter(|ms| *ms > 0),
        retry: retry(context, origin, path, route.retries.as_deref()),
        fault: None,
        rewrite: None,
        request_headers,
        response_headers,
        mirrors: Vec::new(),
        cors: None,
    };
    if let Some(fault) = &route.fault {
        let delay = fault.delay.as_ref().and_then(|delay| {
            if delay.exponential_delay.is_some() {
                context.warn(origin.unsupported(
                    format!("{path}.fault.delay.exponentialDelay"),
                    "exponential delays are not expressible; ignored",
                ));
            }
            let percentage = delay
                .percentage
                .map(|p| p.value)
                .or(delay.percent.map(f64::from))
                .unwrap_or(100.0);
            delay.fixed_delay.as_ref().map(|fixed| FaultDelay {
                fixed_delay_ms: millis(fixed),
                percentage,
            })
        });
        let abort = fault.abort.as_ref().and_then(|abort| {
            for (present, field) in [
                (abort.grpc_status.is_some(), "grpcStatus"),
                (abort.http2_error.is_some(), "http2Error"),
            ] {
                if present {
                    context.warn(origin.unsupported(
                        format!("{path}.fault.abort.{field}"),
                        "only HTTP status aborts are expressible; ignored",
                    ));
                }
            }
            let percentage = abort.percentage.map_or(100.0, |p| p.value);
            abort.http_status.map(|status| FaultAbort {
                http_status: u16::try_from(status).unwrap_or(500),
                percentage,
            })
        });
        if delay.is_some() || abort.is_some() {
            forward.fault = Some(FaultInjection { delay, abort });
        }
    }
    if let Some(rewrite) = &route.rewrite {
        forward.rewrite = Some(Rewrite {
            uri: rewrite.uri.clone(),
            uri_regex: rewrite.uri_regex_rewrite.as_ref().and_then(|regex| {
                Some(RegexRewrite {
                    pattern: regex.match_.clone()?,
                    substitution: group_references(regex.rewrite.as_deref().unwrap_or("")),
                })
            }),
            authority: rewrite.authority.clone(),
        });
    }
    if let Some(mirror) = &route.mirror {
        let cluster =
            destination_cluster(context, inputs, origin, &format!("{path}.mirror"), mirror);
        let percentage = route
            .mirror_percentage
            .map(|p| p.value)
            .or(route.mirror_percent.map(f64::from))
            .or(route.mirror_percent_legacy.map(f64::from))
            .unwrap_or(100.0);
        forward.mirrors.push(Mirror {
            cluster,
            percentage,
        });
    }
    for (index, mirror) in route.mirrors.iter().enumerate() {
        let cluster = destination_cluster(
            context,
            inputs,
            origin,
            &format!("{path}.mirrors[{index}].destination"),
            &mirror.destination,
        );
        forward.mirrors.push(Mirror {
            cluster,
            percentage: mirror.percentage.map_or(100.0, |p| p.value),
        });
    }
    if let Some(cors) = &route.cors_policy {
        forward.cors = Some(translate_cors(context, origin, path, cors));
    }
    Some(RouteAction::Route(Box::new(forward)))
}

/// Istio's `RegexRewrite.rewrite` writes groups as `\1`; the model as `$1`.
fn group_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn mutation(operations: Option<&HeaderOperations>) -> HeaderMutation {
    operations.map_or_else(HeaderMutation::default, |operations| HeaderMutation {
        set: lowercase_keys(&operations.set),
        add: lowercase_keys(&operations.add),
        remove: operations
            .remove
            .iter()
            .map(|name| name.to_ascii_lowercase())
            .collect(),
    })
}

fn lowercase_keys(
    map: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    map.iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect()
}

fn merge(into: &mut HeaderMutation, from: HeaderMutation) {
    into.set.extend(from.set);
    into.add.extend(from.add);
    into.remove.extend(from.remove);
}

/// Istio's `HTTPRetry`: unset → the default policy; `attempts` 0 or unset with `retries`
/// present → no retries (Istio disables retries then); `retryOn` parsed into conditions and
/// status codes, unknown conditions reported.
fn retry(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    retries: Option<&HttpRetry>,
) -> Option<RetryPolicy> {
    let Some(retries) = retries else {
        return Some(default_retry());
    };
    let attempts = retries
        .attempts
        .and_then(|attempts| u32::try_from(attempts).ok())
        .filter(|attempts| *attempts > 0)?;
    let mut policy = default_retry();
    policy.attempts = attempts;
    policy.per_try_timeout_ms = retries.per_try_timeout.as_ref().map(millis);
    if let Some(backoff) = &retries.backoff {
        policy.backoff_base_ms = millis(backoff);
    }
    if let Some(retry_on) = &retries.retry_on {
        policy.retry_on.clear();
        policy.retriable_status_codes.clear();
        for condition in retry_on.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if let Ok(status) = condition.parse::<u16>() {
                policy.retriable_status_codes.push(status);
                if !policy.retry_on.contains(&RetryOn::RetriableStatusCodes) {
                    policy.retry_on.push(RetryOn::RetriableStatusCodes);
                }
                continue;
            }
            let parsed = match condition {
                "5xx" => Some(RetryOn::FiveXx),
                "gateway-error" => Some(RetryOn::GatewayError),
                "reset" => Some(RetryOn::Reset),
                "connect-failure" => Some(RetryOn::ConnectFailure),
                "retriable-4xx" => Some(RetryOn::Retriable4xx),
                "refused-stream" => Some(RetryOn::RefusedStream),
                "retriable-status-codes" => Some(RetryOn::RetriableStatusCodes),
                "cancelled" => Some(RetryOn::Cancelled),
                "deadline-exceeded" => Some(RetryOn::DeadlineExceeded),
                "internal" => Some(RetryOn::Internal),
                "resource-exhausted" => Some(RetryOn::ResourceExhausted),
                "unavailable" => Some(RetryOn::Unavailable),
                _ => None,
            };
            match parsed {
                Some(parsed) if !policy.retry_on.contains(&parsed) => policy.retry_on.push(parsed),
                Some(_) => {}
                None => context.warn(origin.unsupported(
                    format!("{path}.retries.retryOn"),
                    format!("retry condition {condition:?} is not expressible; ignored"),
                )),
            }
        }
    }
    if retries.retry_remote_localities == Some(true) {
        context.warn(origin.unsupported(
            format!("{path}.retries.retryRemoteLocalities"),
            "locality-aware retries are not expressible; retries may go to any locality",
        ));
    }
    if retries.retry_ignore_previous_hosts == Some(false) {
        context.warn(origin.unsupported(
            format!("{path}.retries.retryIgnorePreviousHosts"),
            "host selection on retry is not expressible; the proxy's default applies",
        ));
    }
    Some(policy)
}

fn translate_cors(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    cors: &CrdCors,
) -> CorsPolicy {
    if cors
        .unmatched_preflights
        .is_some_and(|mode| mode != UnmatchedPreflights::Unspecified)
    {
        context.warn(origin.unsupported(
            format!("{path}.corsPolicy.unmatchedPreflights"),
            "handling of unmatched preflights is not expressible; they are forwarded",
        ));
    }
    let mut allow_origins: Vec<StringMatch> = cors.allow_origins.iter().map(string_match).collect();
    // The deprecated `allowOrigin` lists exact origins; `*` allows any.
    allow_origins.extend(cors.allow_origin.iter().map(|origin| {
        if origin == "*" {
            StringMatch::Regex(".*".to_owned())
        } else {
            StringMatch::Exact(origin.clone())
        }
    }));
    CorsPolicy {
        allow_origins,
        allow_methods: cors.allow_methods.clone(),
        allow_headers: cors.allow_headers.clone(),
        expose_headers: cors.expose_headers.clone(),
        max_age_ms: cors.max_age.as_ref().map(millis),
        allow_credentials: cors.allow_credentials,
    }
}
