//! The JWKS resolver (istiod's `JwksResolver`): the control plane fetches every
//! RequestAuthentication `jwksUri` (Istio `JWTRule.jwksUri`) over HTTP or HTTPS — or, for a rule
//! with neither `jwks` nor `jwksUri` whose issuer is an `http(s)` URL, the issuer's OpenID
//! discovery document and then the key set its `jwks_uri` names ([`discovery`]) — caches each
//! key set, refreshes it every [`JwksSettings::refresh_interval`] (Istio's
//! `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`, 20 min) and keeps the last good set when a refresh
//! fails. Addresses in Istio's `BLOCKED_CIDRS_IN_JWKS_URIS` are never connected to
//! ([`blocked`]). Pilot inlines the sets into the proxies' `JwtRule.jwks`
//! (`ClusterView::with_jwks`).
//!
//! The shell that owns a view tells the resolver which URIs the view names
//! ([`JwksResolver::want`], from `weft_pilot::jwks_fetches`), runs [`JwksResolver::run`] in a
//! task and rebuilds its view whenever [`JwksResolver::subscribe`] reports new key sets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub mod blocked;
pub mod discovery;
#[cfg(test)]
mod tests;

use blocked::FilteringResolver;
pub use blocked::{BLOCKED_CIDRS_ENV, BlockedCidrs};

/// How often a fetched key set is fetched again when the environment does not say: Istio's
/// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL` default, 20 min.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(20 * 60);

/// The first retry delay after a failed fetch (doubled on each further failure, capped at the
/// refresh interval): 1 s.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The largest JWKS body accepted: 1 MiB (a key set is a few KiB).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The environment variable that overrides the refresh interval (Istio's name; Go duration
/// syntax such as `20m` or `500ms`).
pub const REFRESH_INTERVAL_ENV: &str = "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL";

/// Why a key set could not be fetched (from a `jwksUri` or by OpenID discovery) or used. Each
/// message names the URL that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The URI is not an absolute `http://` or `https://` URL.
    #[error(
        "JWKS URL {uri:?} (jwtRules[].jwksUri, or the jwks_uri of an issuer's OpenID discovery document) is not an http:// or https:// URL: {reason}"
    )]
    BadUri {
        /// The URI as written in `jwtRules[].jwksUri`.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The fetch took longer than the rule's `timeout`.
    #[error(
        "fetching {uri:?} for a JWKS took longer than {timeout_ms} ms (RequestAuthentication jwtRules[].timeout, default 5 s)"
    )]
    Timeout {
        /// The URI.
        uri: String,
        /// The timeout that expired, in milliseconds.
        timeout_ms: u128,
    },
    /// Connecting, the TLS handshake (the server's certificate is verified against the
    /// system's roots) or reading the response failed.
    #[error("fetching {uri:?} for a JWKS failed: {reason}")]
    Fetch {
        /// The URI.
        uri: String,
        /// The client's message.
        reason: String,
    },
    /// The server answered with a status other than 200.
    #[error("{uri:?} answered a JWKS fetch with HTTP {status}; it needs 200 OK")]
    Status {
        /// The URI.
        uri: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The body is not a JSON Web Key Set (RFC 7517 section 5: an object with a `keys` array).
    #[error("{uri:?} did not return a JSON Web Key Set (RFC 7517: {{\"keys\": [...]}}): {reason}")]
    NotJwks {
        /// The URI.
        uri: String,
        /// What is wrong with the body.
        reason: String,
    },
    /// Every address of the URI's host lies in a range of `BLOCKED_CIDRS_IN_JWKS_URIS`, so the
    /// control plane does not connect (Istio's rule against fetches to internal services).
    #[error(
        "not fetching {uri:?}: host {host} has only addresses in BLOCKED_CIDRS_IN_JWKS_URIS ({addresses})"
    )]
    Blocked {
        /// The URI (a `jwksUri`, a discovery document, or the `jwks_uri` a document named).
        uri: String,
        /// The URI's host.
        host: String,
        /// Each refused address with the range that blocks it.
        addresses: String,
    },
    /// The issuer's OpenID discovery document (fetched for a rule without `jwks` and
    /// `jwksUri`) names no key set.
    #[error(
        "OpenID discovery document {uri:?} (jwtRules[].issuer without jwks or jwksUri) gives no jwks_uri: {reason}"
    )]
    Discovery {
        /// The document's URL (`<issuer>/.well-known/openid-configuration`).
        uri: String,
        /// What is wrong with the document.
        reason: String,
    },
    /// `BLOCKED_CIDRS_IN_JWKS_URIS` holds an entry that is neither a CIDR nor an address.
    #[error(
        "BLOCKED_CIDRS_IN_JWKS_URIS={value:?}: {entry:?} is not a CIDR (e.g. 10.0.0.0/8) or an IP address"
    )]
    BadBlockedCidr {
        /// The variable's value.
        value: String,
        /// The entry that does not parse.
        entry: String,
    },
    /// The HTTPS client could not be configured (rustls).
    #[error("cannot configure the HTTPS client for jwksUri fetches: {reason}")]
    Tls {
        /// rustls' message.
        reason: String,
    },
    /// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL` is not a Go duration above zero.
    #[error("{REFRESH_INTERVAL_ENV}={value:?} is not a duration above 0 (Go syntax, e.g. 20m)")]
    BadRefreshInterval {
        /// The variable's value.
        value: String,
    },
}

/// The resolver's timing and the addresses it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// How long a fetched key set is used before it is fetched again (Istio's
    /// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`, default 20 min).
    pub refresh_interval: Duration,
    /// The delay before the first retry of a failed fetch, doubled on each further failure and
    /// capped at `refresh_interval` (default 1 s).
    pub retry_interval: Duration,
    /// The address ranges never connected to (Istio's `BLOCKED_CIDRS_IN_JWKS_URIS`, default
    /// none).
    pub blocked_cidrs: BlockedCidrs,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            blocked_cidrs: BlockedCidrs::default(),
        }
    }
}

impl JwksSettings {
    /// The settings with the refresh interval from `value`, the value of
    /// [`REFRESH_INTERVAL_ENV`] (`None` when unset: 20 min).
    ///
    /// Errors: [`JwksError::BadRefreshInterval`] when the value is not a Go duration above 0.
    pub fn from_env_value(value: Option<&str>) -> Result<Self, JwksError> {
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let refresh_interval = weft_crds::Duration::parse(value)
            .map(|d| d.as_std())
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| JwksError::BadRefreshInterval {
                value: value.to_owned(),
            })?;
        Ok(Self {
            refresh_interval,
            ..Self::default()
        })
    }

    /// The settings from the environment as `lookup` reads it (a variable's value by name;
    /// `None` when unset): [`REFRESH_INTERVAL_ENV`] and [`BLOCKED_CIDRS_ENV`].
    ///
    /// Errors: [`JwksError::BadRefreshInterval`], [`JwksError::BadBlockedCidr`].
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, JwksError> {
        let interval = lookup(REFRESH_INTERVAL_ENV);
        let blocked_cidrs = match lookup(BLOCKED_CIDRS_ENV) {
            Some(value) => BlockedCidrs::parse(&value)?,
            None => BlockedCidrs::default(),
        };
        Ok(Self {
            blocked_cidrs,
            ..Self::from_env_value(interval.as_deref())?
        })
    }
}

/// One wanted URI's state.
#[derive(Debug, Clone)]
struct Entry {
    /// The fetch timeout (the rule's `timeout`).
    timeout: Duration,
    /// When the next fetch is due; `None` when never fetched.
    next_fetch: Option<Instant>,
    /// Failed fetches since the last success.
    failures: u32,
}

/// Fetches, caches and refreshes the key sets of the wanted `jwksUri`s. Cheap to share behind
/// an `Arc`; no lock is held across a fetch.
pub struct JwksResolver {
    client: Client<HttpsConnector<HttpConnector<FilteringResolver>>, Empty<Bytes>>,
    settings: JwksSettings,
    entries: Mutex<BTreeMap<String, Entry>>,
    wanted: watch::Sender<BTreeMap<String, Duration>>,
    sets: watch::Sender<Arc<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for JwksResolver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JwksResolver")
            .field("settings", &self.settings)
            .field("entries", &*self.entries.lock())
            .finish()
    }
}

impl JwksResolver {
    /// A resolver with no wanted URI. HTTPS servers are verified against the system's root
    /// certificates (`rustls-native-certs`); when none can be loaded, every HTTPS fetch fails
    /// with [`JwksError::Fetch`] and the reason is logged once here. Host names are resolved by
    /// the system resolver with `settings.blocked_cidrs` removed from each answer.
    ///
    /// Errors: [`JwksError::Tls`] when rustls refuses its default protocol versions.
    pub fn new(settings: JwksSettings) -> Result<Self, JwksError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "cannot load a system root certificate for jwksUri HTTPS");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!("no system root certificate loaded: HTTPS jwksUri fetches will fail");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| JwksError::Tls {
                reason: error.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !settings.blocked_cidrs.is_empty() {
            tracing::info!(blocked = ?settings.blocked_cidrs, "JWKS fetches refuse {BLOCKED_CIDRS_ENV}");
        }
        let mut http = HttpConnector::new_with_resolver(FilteringResolver::new(Arc::new(
            settings.blocked_cidrs.clone(),
        )));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            settings,
            entries: Mutex::new(BTreeMap::new()),
            wanted: watch::Sender::new(BTreeMap::new()),
            sets: watch::Sender::new(Arc::new(BTreeMap::new())),
        })
    }

    /// A resolver configured from the environment ([`JwksSettings::from_env`]), running in a task
    /// until `shutdown`, that calls `changed.notify_one()` whenever its key sets change (the
    /// Kubernetes mode's view builder then rebuilds the view).
    ///
    /// Errors: [`JwksError::BadRefreshInterval`], [`JwksError::BadBlockedCidr`],
    /// [`JwksError::Tls`].
    pub fn spawn_from_env(
        changed: Arc<tokio::sync::Notify>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, JwksError> {
        let settings = JwksSettings::from_env(|name| std::env::var(name).ok())?;
        let resolver = Arc::new(Self::new(settings)?);
        let mut sets = resolver.subscribe();
        tokio::spawn({
            let (resolver, shutdown) = (resolver.clone(), shutdown.clone());
            async move { resolver.run(shutdown).await }
        });
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed_sets = sets.changed() => if changed_sets.is_err() { return },
                    () = shutdown.cancelled() => return,
                }
                changed.notify_one();
            }
        });
        Ok(resolver)
    }

    /// Records the URIs the current view names with their fetch timeouts (from
    /// `weft_pilot::jwks_fetches`) and returns the key sets known now for them (JSON text by
    /// URI; a URI never fetched has none). URIs no longer wanted are forgotten; new ones are
    /// fetched by [`JwksResolver::run`] right away.
    pub fn want(&self, fetches: BTreeMap<String, Duration>) -> BTreeMap<String, String> {
        {
            let mut entries = self.entries.lock();
            entries.retain(|uri, _| fetches.contains_key(uri));
            for (uri, timeout) in &fetches {
                entries
                    .entry(uri.clone())
                    .and_modify(|entry| entry.timeout = *timeout)
                    .or_insert(Entry {
                        timeout: *timeout,
                        next_fetch: None,
                        failures: 0,
                    });
            }
        }
        let mut known = BTreeMap::new();
        self.sets.send_if_modified(|current| {
            known = current
                .iter()
                .filter(|(uri, _)| fetches.contains_key(*uri))
                .map(|(uri, set)| (uri.clone(), set.clone()))
                .collect();
            let modified = known.len() != current.len();
            if modified {
                *current = Arc::new(known.clone());
            }
            modified
        });
        self.wanted.send_if_modified(|current| {
            let modified = *current != fetches;
            *current = fetches;
            modified
        });
        known
    }

    /// A receiver of the cached key sets (JSON text by URI), marked changed whenever a fetch
    /// brings a set that differs from the cached one or a URI is first resolved.
    pub fn subscribe(&self) -> watch::Receiver<Arc<BTreeMap<String, String>>> {
        self.sets.subscribe()
    }

    /// The cached key sets now (JSON text by URI).
    pub fn key_sets(&self) -> Arc<BTreeMap<String, String>> {
        self.sets.borrow().clone()
    }

    /// Fetches every wanted URI that is due (never fetched, its refresh interval passed, or its
    /// retry delay passed after a failure), all at once. A success replaces the cached set; a
    /// failure is logged and keeps the last good set (Istio keeps serving it too). Returns
    /// whether the cached sets changed.
    pub async fn refresh_due(&self) -> bool {
        let now = Instant::now();
        let due: Vec<(String, Duration)> = self
            .entries
            .lock()
            .iter()
            .filter(|(_, entry)| entry.next_fetch.is_none_or(|at| at <= now))
            .map(|(uri, entry)| (uri.clone(), entry.timeout))
            .collect();
        if due.is_empty() {
            return false;
        }
        let results = futures::future::join_all(
            due.iter()
                .map(|(uri, timeout)| async move { (uri, self.fetch(uri, *timeout).await) }),
        )
        .await;
        let mut fetched = BTreeMap::new();
        {
            let mut entries = self.entries.lock();
            let now = Instant::now();
            for (uri, result) in results {
                let Some(entry) = entries.get_mut(uri) else {
                    continue; // no longer wanted
                };
                match result {
                    Ok(set) => {
                        entry.failures = 0;
                        entry.next_fetch = Some(now + self.settings.refresh_interval);
                        fetched.insert(uri.clone(), set);
                    }
                    Err(error) => {
                        entry.failures = entry.failures.saturating_add(1);
                        let backoff = self
                            .settings
                            .retry_interval
                            .saturating_mul(1 << entry.failures.saturating_sub(1).min(16))
                            .min(self.settings.refresh_interval);
                        entry.next_fetch = Some(now + backoff);
                        tracing::warn!(url = %uri, %error, failures = entry.failures, retry_ms = backoff.as_millis() as u64, "jwksUri fetch failed; the last good key set stays in force");
                    }
                }
            }
        }
        let wanted = self.wanted.borrow().clone();
        self.sets.send_if_modified(|current| {
            let mut next: BTreeMap<String, String> = current
                .iter()
                .filter(|(uri, _)| wanted.contains_key(*uri))
                .map(|(uri, set)| (uri.clone(), set.clone()))
                .collect();
            next.extend(fetched);
            let modified = **current != next;
            if modified {
                *current = Arc::new(next);
            }
            modified
        })
    }

    /// Runs until `shutdown`: fetches what is due, then sleeps until the next fetch is due or
    /// the wanted URIs change ([`JwksResolver::want`]).
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut wanted = self.wanted.subscribe();
        loop {
            if self.refresh_due().await {
                tracing::info!("JWKS key sets changed; pushing to affected proxies");
            }
            let next = self
                .entries
                .lock()
                .values()
                .filter_map(|entry| entry.next_fetch)
                .min();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                changed = wanted.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Fetches the key set for `uri` once and returns it if it is a JSON Web Key Set. `uri` is
    /// a `jwksUri`, or an issuer's OpenID discovery document
    /// ([`discovery::is_discovery_document`]), in which case the document is fetched first and
    /// the key set from the `jwks_uri` it names. Each request is an HTTP/1.1 GET (HTTPS
    /// verified against the system roots) bounded by `timeout` (the rule's `timeout`; a
    /// discovery takes up to twice that), to an address outside the blocked ranges.
    ///
    /// Errors: [`JwksError::BadUri`], [`JwksError::Blocked`], [`JwksError::Timeout`],
    /// [`JwksError::Fetch`], [`JwksError::Status`] (not 200), [`JwksError::Discovery`] (a
    /// document without `jwks_uri`), [`JwksError::NotJwks`] (not JSON with a `keys` array, or
    /// larger than [`MAX_JWKS_BYTES`]); each names the URL that failed.
    pub async fn fetch(&self, uri: &str, timeout: Duration) -> Result<String, JwksError> {
        if discovery::is_discovery_document(uri) {
            let document = self.get(uri, timeout).await?;
            let jwks_uri = discovery::jwks_uri_of(uri, &document)?;
            let body = self.get(&jwks_uri, timeout).await?;
            return check_jwks(&jwks_uri, &body);
        }
        let body = self.get(uri, timeout).await?;
        check_jwks(uri, &body)
    }

    /// One HTTP/1.1 GET of `uri` bounded by `timeout`; the body (at most [`MAX_JWKS_BYTES`]) of
    /// a 200 answer.
    async fn get(&self, uri: &str, timeout: Duration) -> Result<Bytes, JwksError> {
        let parsed: http::Uri =
            uri.parse()
                .map_err(|error: http::uri::InvalidUri| JwksError::BadUri {
                    uri: uri.to_owned(),
                    reason: error.to_string(),
                })?;
        let Some(host) = parsed
            .host()
            .filter(|_| matches!(parsed.scheme_str(), Some("http" | "https")))
        else {
            return Err(JwksError::BadUri {
                uri: uri.to_owned(),
                reason: "needs a scheme http or https and a host".to_owned(),
            });
        };
        self.settings.blocked_cidrs.check_literal(uri, host)?;
        let host = host.to_owned();
        let request = http::Request::get(parsed)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|error| JwksError::BadUri {
                uri: uri.to_owned(),
                reason: error.to_string(),
            })?;
        let fetch = async {
            let fail = |reason: String| JwksError::Fetch {
                uri: uri.to_owned(),
                reason,
            };
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|error| match blocked::find_blocked(&error) {
                        Some(blocked) => JwksError::Blocked {
                            uri: uri.to_owned(),
                            host: host.clone(),
                            addresses: blocked.addresses.clone(),
                        },
                        None => fail(error_chain(&error)),
                    })?;
            let status = response.status();
            if status != http::StatusCode::OK {
                return Err(JwksError::Status {
                    uri: uri.to_owned(),
                    status: status.as_u16(),
                });
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|error| fail(error.to_string()))?
                .to_bytes();
            Ok(body)
        };
        tokio::time::timeout(timeout, fetch)
            .await
            .map_err(|_| JwksError::Timeout {
                uri: uri.to_owned(),
                timeout_ms: timeout.as_millis(),
            })?
    }
}

/// `error` and its sources, joined with `: ` (hyper's top-level message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The body as text if it is a JSON object with a `keys` array (RFC 7517 section 5).
fn check_jwks(uri: &str, body: &Bytes) -> Result<String, JwksError> {
    let not_jwks = |reason: String| JwksError::NotJwks {
        uri: uri.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(body)
        .map_err(|error| not_jwks(format!("body is not UTF-8: {error}")))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| not_jwks(error.to_string()))?;
    if !value.get("keys").is_some_and(serde_json::Value::is_array) {
        return Err(not_jwks("no \"keys\" array".to_owned()));
    }
    Ok(text.to_owned())
}
