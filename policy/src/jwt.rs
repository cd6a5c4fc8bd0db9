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

pub use extract::{JwtRequest, TokenLocation, extract_token, token_locations};

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

/// A verified token and where it was found, as [`authenticate`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated<'a, 'r> {
    /// What the token says.
    pub identity: JwtIdentity,
    /// Where the token was.
    pub location: TokenLocation<'a>,
    /// The token text, borrowed from the request.
    pub token: &'r str,
}

/// Envoy `jwt_authn` as Istio configures it for the `rules` of the RequestAuthentications
/// selecting a workload: the first token found at any rule's locations (rules in order, see
/// [`token_locations`]) is verified with [`validate_jwt`] at `now` (seconds since the epoch).
///
/// Returns `Ok(None)` when the request carries no token (Istio allows it; an ALLOW policy
/// requiring `requestPrincipals` then denies it), `Ok(Some(..))` for a valid token, and the
/// [`JwtError`] of an invalid one (the proxy answers 401 before authorization).
pub fn authenticate<'a, 'r>(
    rules: &'a [JwtRule],
    request: &JwtRequest<'r>,
    now: u64,
) -> Result<Option<Authenticated<'a, 'r>>, JwtError> {
    let Some((location, token)) = extract_token(rules.iter().flat_map(token_locations), request)
    else {
        return Ok(None);
    };
    let identity = validate_jwt(token, rules, now)?;
    Ok(Some(Authenticated {
        identity,
        location,
        token,
    }))
}

/// Istio `ClaimToHeader`: copy claim `claim` (dotted for nested claims, e.g. `a.b`) into
/// request header `header`. The model's [`JwtRule`] cannot carry these yet; the caller
/// passes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// The request header to set.
    pub header: String,
    /// The claim to copy.
    pub claim: String,
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

/// The request edits a verified token asks for, per its rule (`authenticated.identity.rule`
/// indexes `rules`) and `claim_to_headers`:
/// - unless `forwardOriginalToken`, the token is removed from where it was found (a header
///   or a query parameter; Envoy leaves cookies alone);
/// - `outputPayloadToHeader`: that header receives the token's payload, base64url-encoded
///   as in the token;
/// - `outputClaimToHeaders`: each header receives its claim's value when the claim is a
///   string, number or boolean (other types and absent claims are skipped, as Envoy does).
///
/// Returns an empty list when the rule index is out of range.
pub fn header_edits(
    rules: &[JwtRule],
    authenticated: &Authenticated<'_, '_>,
    claim_to_headers: &[ClaimToHeader],
) -> Vec<HeaderEdit> {
    let mut edits = Vec::new();
    let Some(rule) = rules.get(authenticated.identity.rule) else {
        return edits;
    };
    if !rule.forward_original_token {
        match authenticated.location {
            TokenLocation::Header { name, .. } => edits.push(HeaderEdit::Remove(name.to_owned())),
            TokenLocation::QueryParam(name) => {
                edits.push(HeaderEdit::RemoveQueryParam(name.to_owned()));
            }
            TokenLocation::Cookie(_) => {}
        }
    }
    if let Some(header) = &rule.output_payload_to_header
        && let Some(payload) = authenticated.token.split('.').nth(1)
    {
        edits.push(HeaderEdit::Set {
            name: header.clone(),
            value: payload.to_owned(),
        });
    }
    for mapping in claim_to_headers {
        let mut claim = Some(&authenticated.identity.claims);
        for name in mapping.claim.split('.') {
            claim = claim.and_then(|value| value.get(name));
        }
        let value = match claim {
            Some(Value::String(text)) => text.clone(),
            Some(value @ (Value::Number(_) | Value::Bool(_))) => value.to_string(),
            _ => continue,
        };
        edits.push(HeaderEdit::Set {
            name: mapping.header.clone(),
            value,
        });
    }
    edits
}

#[cfg(test)]
mod tests;
