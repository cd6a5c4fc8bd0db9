//! HTTP route rules (Istio `validateHTTPRoute` and the checks it calls): the route/redirect/
//! direct-response/delegate choice, matches, rewrites, redirects, retries, faults, mirrors,
//! CORS and header manipulation.

use weft_crds::networking::{
    CorsPolicy, Headers, HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry,
    HttpRewrite, HttpRoute,
};

use super::super::path::Path;
use super::super::{Report, fields};
use super::{destination, destinations, gateway_name, source_namespace};

/// Envoy `x-envoy-retry-on` / `x-envoy-retry-grpc-on` policies Istio accepts in `retryOn`.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names (google.rpc.Code) accepted in `fault.abort.grpcStatus`.
const GRPC_STATUS: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// HTTP methods accepted in `corsPolicy.allowMethods`.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Checks one HTTP route at `path`; `in_delegate` when the VirtualService is itself a delegate
/// (which cannot delegate further).
pub(super) fn check_route(
    report: &mut Report,
    path: Path<'_>,
    route: &HttpRoute,
    in_delegate: bool,
) {
    let has_route = !route.route.is_empty();
    let (redirect, direct) = (route.redirect.is_some(), route.direct_response.is_some());
    if let Some(delegate) = &route.delegate {
        if in_delegate {
            report.error(
                path.field("delegate"),
                "a delegate VirtualService cannot delegate again",
            );
        }
        if has_route || redirect || direct {
            report.error(
                path.field("delegate"),
                "delegate cannot be set together with route, redirect or directResponse",
            );
        }
        match delegate.name.as_deref() {
            Some(name) if fields::dns_subdomain(name) => {}
            Some(name) => report.error(
                path.field("delegate").field("name"),
                format!("{name:?} is not a Kubernetes object name"),
            ),
            None => report.error(
                path.field("delegate").field("name"),
                "delegate name is required",
            ),
        }
        if let Some(ns) = &delegate.namespace
            && !fields::dns_label(ns, false)
        {
            report.error(
                path.field("delegate").field("namespace"),
                format!("{ns:?} is not a namespace name"),
            );
        }
    } else if !has_route && !redirect && !direct {
        report.error(
            path,
            "HTTP route, redirect, directResponse or delegate is required",
        );
    }
    if has_route && redirect {
        report.error(path, "HTTP route cannot contain both route and redirect");
    }
    if has_route && direct {
        report.error(
            path,
            "HTTP route cannot contain both route and directResponse",
        );
    }
    if redirect && direct {
        report.error(
            path,
            "HTTP route cannot contain both redirect and directResponse",
        );
    }
    if (redirect || direct) && route.fault.is_some() {
        report.error(
            path.field("fault"),
            "fault injection applies to routed traffic only, not to a redirect or directResponse",
        );
    }
    if redirect && route.rewrite.is_some() {
        report.error(
            path.field("rewrite"),
            "HTTP route rule cannot contain both rewrite and redirect",
        );
    }
    for (i, m) in route.match_.iter().enumerate() {
        http_match(report, path.field("match").index(i), m);
    }
    if has_route {
        let pairs: Vec<_> = route
            .route
            .iter()
            .map(|r| (&r.destination, r.weight))
            .collect();
        destinations(report, path, &pairs);
        for (i, r) in route.route.iter().enumerate() {
            if let Some(h) = &r.headers {
                headers(report, path.field("route").index(i).field("headers"), h);
            }
        }
    }
    if let Some(r) = &route.redirect {
        http_redirect(report, path.field("redirect"), r);
    }
    if let Some(d) = &route.direct_response {
        let at = path.field("directResponse");
        if !(200..=599).contains(&d.status) {
            report.error(
                at.field("status"),
                format!("status {} must be between 200 and 599", d.status),
            );
        }
        if let Some(body) = &d.body
            && body.string.is_some() == body.bytes.is_some()
        {
            report.error(
                at.field("body"),
                "exactly one of string or bytes must be set",
            );
        }
    }
    if let Some(r) = &route.rewrite {
        http_rewrite(report, path.field("rewrite"), r);
    }
    if let Some(t) = &route.timeout {
        fields::duration(report, path.field("timeout"), t);
    }
    if let Some(r) = &route.retries {
        retries(report, path.field("retries"), r);
    }
    if let Some(f) = &route.fault {
        fault(report, path.field("fault"), f);
    }
    mirrors(report, path, route);
    if let Some(c) = &route.cors_policy {
        cors(report, path.field("corsPolicy"), c);
    }
    if let Some(h) = &route.headers {
        headers(report, path.field("headers"), h);
    }
}

fn http_match(report: &mut Report, path: Path<'_>, m: &HttpMatchRequest) {
    let single = [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ];
    for (name, value) in single {
        if let Some(v) = value {
            fields::string_match(report, path.field(name), v);
        }
    }
    let maps = [
        ("headers", &m.headers),
        ("queryParams", &m.query_params),
        ("withoutHeaders", &m.without_headers),
    ];
    for (name, map) in maps {
        let field = path.field(name);
        for (key, value) in map {
            let at = field.field(key);
            if key.is_empty() {
                report.error(at, "the name to match must not be empty");
            }
            fields::string_match(report, at, value);
        }
    }
    if let Some(port) = m.port {
        fields::port(report, path.field("port"), port);
    }
    fields::labels(report, path.field("sourceLabels"), &m.source_labels);
    for (i, g) in m.gateways.iter().enumerate() {
        gateway_name(report, path.field("gateways").index(i), g);
    }
    source_namespace(report, path, m.source_namespace.as_deref());
}

fn http_redirect(report: &mut Report, path: Path<'_>, r: &HttpRedirect) {
    if r.uri.is_none()
        && r.authority.is_none()
        && r.port.is_none()
        && r.derive_port.is_none()
        && r.scheme.is_none()
    {
        report.error(
            path,
            "redirect must specify uri, authority, scheme, port or derivePort",
        );
    }
    if r.uri.as_deref() == Some("") {
        report.error(path.field("uri"), "redirect uri must not be empty");
    }
    if r.authority.as_deref() == Some("") {
        report.error(
            path.field("authority"),
            "redirect authority must not be empty",
        );
    }
    if r.port.is_some() && r.derive_port.is_some() {
        report.error(path, "only one of port or derivePort can be set");
    }
    if let Some(port) = r.port {
        fields::port(report, path.field("port"), port);
    }
    if let Some(code) = r.redirect_code
        && ![301, 302, 303, 307, 308].contains(&code)
    {
        report.error(
            path.field("redirectCode"),
            format!("{code} is not a redirect code: must be 301, 302, 303, 307 or 308"),
        );
    }
}

fn http_rewrite(report: &mut Report, path: Path<'_>, r: &HttpRewrite) {
    if r.uri.is_none() && r.authority.is_none() && r.uri_regex_rewrite.is_none() {
        report.error(
            path,
            "rewrite must specify uri, uriRegexRewrite or authority",
        );
    }
    if r.uri.is_some() && r.uri_regex_rewrite.is_some() {
        report.error(
            path,
            "rewrite may only contain one of uri or uriRegexRewrite",
        );
    }
    if let Some(regex) = &r.uri_regex_rewrite {
        let at = path.field("uriRegexRewrite");
        match regex.match_.as_deref() {
            Some(pattern) => fields::regex(report, at.field("match"), pattern),
            None => report.error(at.field("match"), "uriRegexRewrite.match is required"),
        }
        if regex.rewrite.is_none() {
            report.error(at.field("rewrite"), "uriRegexRewrite.rewrite is required");
        }
    }
}

fn retries(report: &mut Report, path: Path<'_>, r: &HttpRetry) {
    if let Some(attempts) = r.attempts
        && attempts < 0
    {
        report.error(
            path.field("attempts"),
            format!("attempts {attempts} cannot be negative"),
        );
    }
    if let Some(t) = &r.per_try_timeout {
        fields::duration(report, path.field("perTryTimeout"), t);
    }
    if let Some(t) = &r.backoff {
        fields::duration(report, path.field("backoff"), t);
    }
    if let Some(retry_on) = &r.retry_on {
        for policy in retry_on.split(',').map(str::trim) {
            let status = policy
                .parse::<u16>()
                .is_ok_and(|c| (100..=599).contains(&c));
            if !status && !RETRY_ON.contains(&policy) {
                report.error(
                    path.field("retryOn"),
                    format!(
                        "{policy:?} is not a retry policy: must be an HTTP status code or one of {}",
                        RETRY_ON.join(", ")
                    ),
                );
            }
        }
    }
}

fn fault(report: &mut Report, path: Path<'_>, f: &HttpFaultInjection) {
    if f.delay.is_none() && f.abort.is_none() {
        report.error(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(delay) = &f.delay {
        let at = path.field("delay");
        if delay.exponential_delay.is_some() {
            report.error(
                at.field("exponentialDelay"),
                "exponentialDelay is not supported yet",
            );
        }
        match &delay.fixed_delay {
            Some(d) => fields::duration(report, at.field("fixedDelay"), d),
            None if delay.exponential_delay.is_none() => {
                report.error(at.field("fixedDelay"), "delay must set fixedDelay")
            }
            None => {}
        }
        if let Some(p) = delay.percentage {
            fields::percentage(report, at.field("percentage").field("value"), p.value);
        }
        if let Some(p) = delay.percent {
            fields::percentage(report, at.field("percent"), f64::from(p));
        }
    }
    if let Some(abort) = &f.abort {
        let at = path.field("abort");
        let set = usize::from(abort.http_status.is_some())
            + usize::from(abort.grpc_status.is_some())
            + usize::from(abort.http2_error.is_some());
        if set != 1 {
            report.error(
                at,
                "abort must set exactly one of httpStatus, grpcStatus or http2Error",
            );
        }
        if let Some(status) = abort.http_status
            && !(200..=599).contains(&status)
        {
            report.error(
                at.field("httpStatus"),
                format!("httpStatus {status} must be between 200 and 599"),
            );
        }
        if let Some(status) = &abort.grpc_status {
            let numeric = status.parse::<u8>().is_ok_and(|c| c <= 16);
            if !numeric && !GRPC_STATUS.contains(&status.as_str()) {
                report.error(
                    at.field("grpcStatus"),
                    format!("{status:?} is not a gRPC status code name (e.g. UNAVAILABLE)"),
                );
            }
        }
        if abort.http2_error.is_some() {
            report.error(at.field("http2Error"), "http2Error is not supported yet");
        }
        if let Some(p) = abort.percentage {
            fields::percentage(report, at.field("percentage").field("value"), p.value);
        }
    }
}

fn mirrors(report: &mut Report, path: Path<'_>, route: &HttpRoute) {
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        report.error(path, "only one of mirror or mirrors can be set");
    }
    if let Some(m) = &route.mirror {
        destination(report, path.field("mirror"), m);
    }
    if let Some(p) = route.mirror_percentage {
        fields::percentage(
            report,
            path.field("mirrorPercentage").field("value"),
            p.value,
        );
    }
    for (name, value) in [
        ("mirrorPercent", route.mirror_percent),
        ("mirror_percent", route.mirror_percent_legacy),
    ] {
        if let Some(v) = value {
            fields::percentage(report, path.field(name), f64::from(v));
        }
    }
    let mirrors = path.field("mirrors");
    for (i, m) in route.mirrors.iter().enumerate() {
        let at = mirrors.index(i);
        destination(report, at.field("destination"), &m.destination);
        if let Some(p) = m.percentage {
            fields::percentage(report, at.field("percentage").field("value"), p.value);
        }
    }
}

fn cors(report: &mut Report, path: Path<'_>, c: &CorsPolicy) {
    for (i, origin) in c.allow_origins.iter().enumerate() {
        fields::string_match(report, path.field("allowOrigins").index(i), origin);
    }
    for (i, method) in c.allow_methods.iter().enumerate() {
        if !METHODS.contains(&method.as_str()) {
            report.error(
                path.field("allowMethods").index(i),
                format!("{method:?} is not an HTTP method ({})", METHODS.join(", ")),
            );
        }
    }
    for (name, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, header) in list.iter().enumerate() {
            if header != "*" {
                fields::header_name(report, path.field(name).index(i), header);
            }
        }
    }
    if let Some(age) = &c.max_age {
        let at = path.field("maxAge");
        fields::duration(report, at, age);
        if age.as_std().subsec_nanos() != 0 {
            report.error(at, "maxAge is only accurate to whole seconds");
        }
    }
}

/// Checks header manipulation: every name set, added or removed is a valid header name.
pub(super) fn headers(report: &mut Report, path: Path<'_>, h: &Headers) {
    for (side, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        for (op, names) in [("set", &ops.set), ("add", &ops.add)] {
            for name in names.keys() {
                fields::header_name(report, path.field(side).field(op).field(name), name);
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            fields::header_name(report, path.field(side).field("remove").index(i), name);
        }
    }
}
