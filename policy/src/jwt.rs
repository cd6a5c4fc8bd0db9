//! `RequestAuthentication`: JWT extraction, verification against inline JWKS, and the header
//! edits a verified token asks for (Istio `security.istio.io/v1` `RequestAuthentication`,
//! `JWTRule`; Envoy `jwt_authn`).

mod extract;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use weft_proxy_config::JwtRule;

pub use extract::{JwtRequest, TokenLocation, extract_token, rule_tokens, token_locations};

/// Allowed clock difference, in seconds, when checking `exp` and `nbf` (Envoy `jwt_authn`'s
/// default `clock_skew_seconds`, which Istio keeps).
pub const CLOCK_SKEW_SECONDS: u64 = 60;

/// What a verified JWT says about the caller (Istio's `request.auth.*` attributes).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtIdentity {
    /// The `iss` claim; it selected the rule.
    pub issuer: String,
    /// The `sub` claim; empty when absent.
    pub subject: String,
    /// The `aud` claim (a string or a list in the token), as a list.
    pub audiences: Vec<String>,
    /// The `azp` claim (Istio `request.auth.presenter`).
    pub presenter: Option<String>,
    /// The whole payload (Istio `request.auth.claims[...]`).
    pub claims: Value,
    /// The index, in the rules given to [`validate_jwt`], of the rule that verified the token.
    pub rule: usize,
}

impl JwtIdentity {
    /// The request principal Istio derives from the token: `<iss>/<sub>`
    /// (`Source.requestPrincipals`, `request.auth.principal`).
    pub fn request_principal(&self) -> String {
        format!("{}/{}", self.issuer, self.subject)
    }
}

/// Why a JWT was rejected. The proxy answers [`crate::HTTP_UNAUTHENTICATED_STATUS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token is not three base64url segments with a JSON header and a JSON-object payload.
    #[error("JWT is malformed: {0} (expected three base64url segments: header.payload.signature)")]
    Malformed(&'static str),
    /// No `jwtRules[].issuer` equals the token's `iss`.
    #[error(
        "JWT issuer {issuer:?} is not trusted: no RequestAuthentication jwtRules[].issuer equals it"
    )]
    UnknownIssuer {
        /// The token's `iss` (empty when absent).
        issuer: String,
    },
    /// The rule for the issuer has no inline `jwks` (the control plane resolves `jwksUri`).
    #[error(
        "jwtRules[] with issuer {issuer:?} has no inline jwks; the control plane must resolve jwksUri"
    )]
    NoJwks {
        /// The rule's issuer.
        issuer: String,
    },
    /// The rule's `jwks` is not a JSON Web Key Set.
    #[error("jwtRules[] with issuer {issuer:?}: jwks is not a valid JWK set: {reason}")]
    BadJwks {
        /// The rule's issuer.
        issuer: String,
        /// The parser's message.
        reason: String,
    },
    /// No key of the rule's JWKS verifies the signature (none with the token's `kid` and
    /// algorithm, or the signature is wrong).
    #[error("JWT signature does not verify with any key of the jwks of issuer {issuer:?}")]
    BadSignature {
        /// The token's issuer.
        issuer: String,
    },
    /// `exp` lies more than [`CLOCK_SKEW_SECONDS`] in the past.
    #[error(
        "JWT expired at {exp} (now {now}, seconds since the epoch, {CLOCK_SKEW_SECONDS} s skew allowed)"
    )]
    Expired {
        /// The `exp` claim.
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// `nbf` lies more than [`CLOCK_SKEW_SECONDS`] in the future.
    #[error(
        "JWT is not valid before {nbf} (now {now}, seconds since the epoch, {CLOCK_SKEW_SECONDS} s skew allowed)"
    )]
    NotYetValid {
        /// The `nbf` claim.
        nbf: u64,
        /// The time of the check.
        now: u64,
    },
    /// A time claim is not a number.
    #[error("JWT claim {claim:?} must be a number of seconds since the epoch")]
    BadTimeClaim {
        /// `exp` or `nbf`.
        claim: &'static str,
    },
    /// The rule lists `audiences` and the token's `aud` contains none of them.
    #[error("JWT audiences {found:?} include none of jwtRules[].audiences of issuer {issuer:?}")]
    AudienceMismatch {
        /// The token's issuer.
        issuer: String,
        /// The token's `aud` values.
        found: Vec<String>,
    },
}

/// Verifies `token` against the rule whose `issuer` equals the token's `iss`, at `now`
/// (seconds since the Unix epoch), and returns what it says about the caller.
///
/// The signature must verify with a key of the rule's inline `jwks` (the key named by the
/// token's `kid`, else any key; RS*/PS*/ES*/EdDSA/HS* as the JWKS allows); `exp` and `nbf`,
/// when present, are checked with [`CLOCK_SKEW_SECONDS`] of slack (Envoy accepts a token
/// without `exp`); when the rule lists `audiences`, the token's `aud` must contain one.
/// Several rules with the same issuer are tried in order; the first that verifies wins.
///
/// Errors: [`JwtError`], one variant per rule above. The JWKS is parsed on every call (no
/// cache; the proxy may keep one per config generation).
pub fn validate_jwt(token: &str, rules: &[JwtRule], now: u64) -> Result<JwtIdentity, JwtError> {
    let payload = payload_of(token)?;
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed("bad header"))?;
    let issuer = payload
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut last_error = None;
    for (index, rule) in rules.iter().enumerate() {
        if rule.issuer != issuer {
            continue;
        }
        match verify_with_rule(token, &header, rule) {
            Ok(()) => {
                check_times(&payload, now)?;
                let identity = identity(payload, index);
                check_audiences(&identity, rule)?;
                return Ok(identity);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| JwtError::UnknownIssuer {
        issuer: issuer.to_owned(),
    }))
}

/// The payload segment decoded to a JSON object.
fn payload_of(token: &str) -> Result<Value, JwtError> {
    let mut segments = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Malformed("not three segments"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed("payload is not base64url"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed("payload is not JSON"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(JwtError::Malformed("payload is not a JSON object"))
    }
}

/// Checks the signature with the rule's JWKS.
fn verify_with_rule(
    token: &str,
    header: &jsonwebtoken::Header,
    rule: &JwtRule,
) -> Result<(), JwtError> {
    let issuer = || rule.issuer.clone();
    let jwks = rule
        .jwks
        .as_deref()
        .ok_or_else(|| JwtError::NoJwks { issuer: issuer() })?;
    let set: JwkSet = serde_json::from_str(jwks).map_err(|error| JwtError::BadJwks {
        issuer: issuer(),
        reason: error.to_string(),
    })?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let candidates = set
        .keys
        .iter()
        .filter(|jwk| match (&header.kid, &jwk.common.key_id) {
            (Some(wanted), Some(have)) => wanted == have,
            _ => true,
        });
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<Value>(token, &key, &validation) {
            Ok(_) => return Ok(()),
            Err(error) => match error.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidEcdsaKey => continue,
                _ => return Err(JwtError::Malformed("rejected by the JWT decoder")),
            },
        }
    }
    Err(JwtError::BadSignature { issuer: issuer() })
}

fn time_claim(payload: &Value, claim: &'static str) -> Result<Option<u64>, JwtError> {
    match payload.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|secs| *secs >= 0.0)
                    .map(|secs| secs as u64)
            })
            .map(Some)
            .ok_or(JwtError::BadTimeClaim { claim }),
    }
}

fn check_times(payload: &Value, now: u64) -> Result<(), JwtError> {
    if let Some(exp) = time_claim(payload, "exp")?
        && now > exp.saturating_add(CLOCK_SKEW_SECONDS)
    {
        return Err(JwtError::Expired { exp, now });
    }
    if let Some(nbf) = time_claim(payload, "nbf")?
        && now.saturating_add(CLOCK_SKEW_SECONDS) < nbf
    {
        return Err(JwtError::NotYetValid { nbf, now });
    }
    Ok(())
}

fn check_audiences(identity: &JwtIdentity, rule: &JwtRule) -> Result<(), JwtError> {
    if rule.audiences.is_empty()
        || identity
            .audiences
            .iter()
            .any(|audience| rule.audiences.contains(audience))
    {
        Ok(())
    } else {
        Err(JwtError::AudienceMismatch {
            issuer: identity.issuer.clone(),
            found: identity.audiences.clone(),
        })
    }
}

fn identity(claims: Value, rule: usize) -> JwtIdentity {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let audiences = match claims.get("aud") {
        Some(Value::String(audience)) => vec![audience.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    JwtIdentity {
        issuer: text("iss").unwrap_or_default(),
        subject: text("sub").unwrap_or_default(),
        audiences,
        presenter: text("azp"),
        rule,
        claims,
    }
}

/// A request whose tokens verified, as [`authenticate`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated<'a, 'r> {
    /// What the first token says (the request principal Istio derives).
    pub identity: JwtIdentity,
    /// Every token at the accepting rule's locations, with where it was found, in
    /// [`token_locations`] order; all of them verified. Never empty.
    pub tokens: Vec<(TokenLocation<'a>, &'r str)>,
}

/// Envoy `jwt_authn` as Istio configures it for the `rules` of the RequestAuthentications
/// selecting a workload (one provider per rule, any of them, or no token at all), at `now`
/// (seconds since the epoch):
/// - a rule *accepts* the request when it finds at least one token at its own locations
///   ([`rule_tokens`]: headers, then query parameters, then cookies) and every one of them
///   verifies with it ([`validate_jwt`] against that rule alone). Envoy requires all tokens
///   of a provider to be valid so that a bad token cannot ride along with a good one;
/// - the first accepting rule, in order, gives the identity: that of its first token;
/// - no token at any rule's location: `Ok(None)` (Istio allows the request; an ALLOW policy
///   requiring `requestPrincipals` then denies it);
/// - tokens, but no rule accepts: the [`JwtError`] of the first rule that found a token (the
///   proxy answers 401 before authorization).
///
/// Istio leaves the principal of a request carrying several tokens undefined; a token that
/// only another rule reads does not stop a rule from accepting (rule A reading `Authorization`
/// accepts even when rule B's cookie holds an expired token).
pub fn authenticate<'a, 'r>(
    rules: &'a [JwtRule],
    request: &JwtRequest<'r>,
    now: u64,
) -> Result<Option<Authenticated<'a, 'r>>, JwtError> {
    let mut first_error = None;
    for (index, rule) in rules.iter().enumerate() {
        let tokens = rule_tokens(rule, request);
        let Some((_, first)) = tokens.first() else {
            continue;
        };
        let verified = tokens
            .iter()
            .skip(1)
            .try_for_each(|(_, token)| {
                validate_jwt(token, std::slice::from_ref(rule), now).map(drop)
            })
            .and_then(|()| validate_jwt(first, std::slice::from_ref(rule), now));
        match verified {
            Ok(mut identity) => {
                identity.rule = index;
                return Ok(Some(Authenticated { identity, tokens }));
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(None), Err)
}

/// The request headers a verified token may write, for every rule: each rule's
/// `outputPayloadToHeader` and `outputClaimToHeaders` headers. Envoy removes them from every
/// request before looking for tokens, so what reaches the application under these names was
/// written by the proxy (Istio `ClaimToHeader.header`: "overridden if it already exists").
pub fn sanitized_headers(rules: &[JwtRule]) -> impl Iterator<Item = &str> {
    rules.iter().flat_map(|rule| {
        rule.output_payload_to_header.as_deref().into_iter().chain(
            rule.output_claim_to_headers
                .iter()
                .map(|(header, _)| header.as_str()),
        )
    })
}

/// One change to the request forwarded to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Set (replace) a request header.
    Set {
        /// The header name.
        name: String,
        /// The new value.
        value: String,
    },
    /// Remove every occurrence of a request header.
    Remove(String),
    /// Remove a query parameter from the request target.
    RemoveQueryParam(String),
}

/// The request edits the accepting rule (`authenticated.identity.rule` indexes `rules`) asks
/// for, after [`sanitized_headers`] were removed:
/// - unless `forwardOriginalToken`, each token is removed from where it was found (a header
///   or a query parameter; Envoy leaves cookies alone);
/// - `outputPayloadToHeader`: that header receives the first token's payload,
///   base64url-encoded as in the token;
/// - `outputClaimToHeaders`: each header receives its claim of the first token (`.` walks
///   into nested objects), written as Envoy's `claim_to_headers` writes it: a string as is, a
///   boolean as `true`/`false`, a whole non-negative number as an integer, any other number
///   with six decimals (`-1.000000`, `2.500000`). Absent, empty-string, list, object and null
///   claims set nothing.
///
/// Returns an empty list when the rule index is out of range.
pub fn header_edits(rules: &[JwtRule], authenticated: &Authenticated<'_, '_>) -> Vec<HeaderEdit> {
    let mut edits = Vec::new();
    let Some(rule) = rules.get(authenticated.identity.rule) else {
        return edits;
    };
    if !rule.forward_original_token {
        for (location, _) in &authenticated.tokens {
            match location {
                TokenLocation::Header { name, .. } => {
                    edits.push(HeaderEdit::Remove((*name).to_owned()));
                }
                TokenLocation::QueryParam(name) => {
                    edits.push(HeaderEdit::RemoveQueryParam((*name).to_owned()));
                }
                TokenLocation::Cookie(_) => {}
            }
        }
    }
    if let Some(header) = &rule.output_payload_to_header
        && let Some((_, token)) = authenticated.tokens.first()
        && let Some(payload) = token.split('.').nth(1)
    {
        edits.push(HeaderEdit::Set {
            name: header.clone(),
            value: payload.to_owned(),
        });
    }
    for (header, claim) in &rule.output_claim_to_headers {
        if let Some(value) = claim_text(&authenticated.identity.claims, claim) {
            edits.push(HeaderEdit::Set {
                name: header.clone(),
                value,
            });
        }
    }
    edits
}

/// The text Envoy's `claim_to_headers` writes for the claim at dotted `path`; `None` when
/// nothing is written (see [`header_edits`]).
fn claim_text(claims: &Value, path: &str) -> Option<String> {
    let mut claim = claims;
    for name in path.split('.') {
        claim = claim.get(name)?;
    }
    match claim {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(match number.as_u64() {
            Some(whole) => whole.to_string(),
            None => {
                let float = number.as_f64()?;
                if float >= 0.0 && float < u64::MAX as f64 && float.fract() == 0.0 {
                    format!("{float:.0}")
                } else {
                    format!("{float:.6}")
                }
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
