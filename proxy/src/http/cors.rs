//! Istio `CorsPolicy` as Envoy's CORS filter applies it: an allowed preflight is answered by the
//! proxy; an allowed actual request gets the `Access-Control-Allow-*` headers on its response;
//! requests from other origins pass through untouched (Istio's `unmatchedPreflights: FORWARD`).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::router::Matcher;
use crate::upstream::ProxyBody;

/// A compiled CORS policy.
#[derive(Debug)]
pub struct CompiledCors {
    origins: Vec<Matcher>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
}

impl CompiledCors {
    /// Compiles `policy`. Errors: a message naming `field` when an origin regex does not
    /// compile or a header list is not a valid header value.
    pub fn compile(field: &str, policy: &weft_proxy_config::CorsPolicy) -> Result<Self, String> {
        let list = |name: &str, values: &[String]| -> Result<Option<HeaderValue>, String> {
            if values.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(&values.join(","))
                .map(Some)
                .map_err(|_| format!("{field}.{name}: not a valid header value"))
        };
        let origins = policy
            .allow_origins
            .iter()
            .enumerate()
            .map(|(index, origin)| {
                Matcher::compile(&format!("{field}.allow_origins[{index}]"), origin, false)
                    .map_err(|error| error.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            origins,
            allow_methods: list("allow_methods", &policy.allow_methods)?,
            allow_headers: list("allow_headers", &policy.allow_headers)?,
            expose_headers: list("expose_headers", &policy.expose_headers)?,
            max_age: policy.max_age_ms.map(|ms| HeaderValue::from(ms / 1000)),
            allow_credentials: policy.allow_credentials.unwrap_or(false),
        })
    }

    /// The request's `Origin` if this policy allows it.
    pub fn allowed_origin<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|matcher| matcher.matches(text))
            .then_some(origin)
    }

    /// Whether the request is a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`).
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The proxy's answer to an allowed preflight from `origin`: 200 with the allow headers.
    pub fn preflight_response(&self, origin: &HeaderValue) -> Response<ProxyBody> {
        let mut response = Response::new(super::local::full_body(""));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if let Some(methods) = &self.allow_methods {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods.clone());
        }
        if let Some(allow) = &self.allow_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow.clone());
        }
        if let Some(max_age) = &self.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        response
    }

    /// Adds the actual-request headers for an allowed `origin` to `response`.
    pub fn decorate(&self, origin: HeaderValue, headers: &mut HeaderMap) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(expose) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}
