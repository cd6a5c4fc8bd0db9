//! JWT tests with the fixed keys of `testdata/` (regenerate `jwks.json` with
//! `testdata/make_jwks.py`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use weft_proxy_config::JwtRule;

use super::*;

const RSA_KEY: &str = include_str!("../../testdata/rsa.pem");
const OTHER_RSA_KEY: &str = include_str!("../../testdata/rsa-other.pem");
const EC_KEY: &str = include_str!("../../testdata/ec.pem");
const JWKS: &str = include_str!("../../testdata/jwks.json");

const ISSUER: &str = "https://issuer.example.com";
const NOW: u64 = 1_800_000_000;

fn rule() -> JwtRule {
    JwtRule {
        issuer: ISSUER.into(),
        jwks: Some(JWKS.into()),
        ..JwtRule::default()
    }
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "alice",
        "aud": ["svc-a", "svc-b"],
        "azp": "web-app",
        "exp": NOW + 3600,
        "nbf": NOW - 10,
        "groups": ["admin"],
        "org": {"team": "core"},
        "level": 3,
    })
}

fn sign_with(algorithm: Algorithm, kid: Option<&str>, pem: &str, claims: &Value) -> String {
    let key = match algorithm {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign_with(Algorithm::RS256, Some("rsa-1"), RSA_KEY, claims)
}

fn with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

#[test]
fn valid_rs256_token_yields_the_identity() {
    let identity = validate_jwt(&rs256(&claims()), &[rule()], NOW).unwrap();
    assert_eq!(identity.issuer, ISSUER);
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.audiences, ["svc-a", "svc-b"]);
    assert_eq!(identity.presenter.as_deref(), Some("web-app"));
    assert_eq!(identity.claims["org"]["team"], "core");
    assert_eq!(
        identity.request_principal(),
        "https://issuer.example.com/alice"
    );
    assert_eq!(identity.rule, 0);
}

#[test]
fn valid_es256_token_and_token_without_kid() {
    let token = sign_with(Algorithm::ES256, Some("ec-1"), EC_KEY, &claims());
    assert!(validate_jwt(&token, &[rule()], NOW).is_ok());
    let token = sign_with(Algorithm::ES256, None, EC_KEY, &claims());
    assert!(
        validate_jwt(&token, &[rule()], NOW).is_ok(),
        "no kid: every key is tried"
    );
    let token = sign_with(Algorithm::RS256, None, RSA_KEY, &claims());
    assert!(validate_jwt(&token, &[rule()], NOW).is_ok());
}

#[test]
fn rejections() {
    let audience_rule = JwtRule {
        audiences: vec!["svc-z".into()],
        ..rule()
    };
    let cases: Vec<(&str, String, Vec<JwtRule>, u64, JwtError)> = vec![
        (
            "expired beyond skew",
            rs256(&with(json!({"exp": NOW - 61}))),
            vec![rule()],
            NOW,
            JwtError::Expired {
                exp: NOW - 61,
                now: NOW,
            },
        ),
        (
            "not yet valid beyond skew",
            rs256(&with(json!({"nbf": NOW + 61}))),
            vec![rule()],
            NOW,
            JwtError::NotYetValid {
                nbf: NOW + 61,
                now: NOW,
            },
        ),
        (
            "exp not a number",
            rs256(&with(json!({"exp": "tomorrow"}))),
            vec![rule()],
            NOW,
            JwtError::BadTimeClaim { claim: "exp" },
        ),
        (
            "wrong issuer",
            rs256(&with(json!({"iss": "https://evil.example.com"}))),
            vec![rule()],
            NOW,
            JwtError::UnknownIssuer {
                issuer: "https://evil.example.com".into(),
            },
        ),
        (
            "wrong audience",
            rs256(&claims()),
            vec![audience_rule],
            NOW,
            JwtError::AudienceMismatch {
                issuer: ISSUER.into(),
                found: vec!["svc-a".into(), "svc-b".into()],
            },
        ),
        (
            "signed by a key outside the jwks",
            sign_with(Algorithm::RS256, Some("rsa-1"), OTHER_RSA_KEY, &claims()),
            vec![rule()],
            NOW,
            JwtError::BadSignature {
                issuer: ISSUER.into(),
            },
        ),
        (
            "kid naming no key",
            sign_with(Algorithm::RS256, Some("rsa-9"), RSA_KEY, &claims()),
            vec![rule()],
            NOW,
            JwtError::BadSignature {
                issuer: ISSUER.into(),
            },
        ),
        (
            "no inline jwks",
            rs256(&claims()),
            vec![JwtRule {
                jwks: None,
                jwks_uri: Some("https://x/jwks".into()),
                ..rule()
            }],
            NOW,
            JwtError::NoJwks {
                issuer: ISSUER.into(),
            },
        ),
        (
            "not a token",
            "abc.def".into(),
            vec![rule()],
            NOW,
            JwtError::Malformed("not three segments"),
        ),
    ];
    for (name, token, rules, now, want) in cases {
        assert_eq!(
            validate_jwt(&token, &rules, now),
            Err(want),
            "case {name:?}"
        );
    }
}

#[test]
fn tampered_payload_fails_the_signature() {
    let token = rs256(&claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(with(json!({"sub": "mallory"})).to_string());
    parts[1] = &forged;
    let forged = parts.join(".");
    assert_eq!(
        validate_jwt(&forged, &[rule()], NOW),
        Err(JwtError::BadSignature {
            issuer: ISSUER.into()
        })
    );
}

#[test]
fn time_checks_allow_the_clock_skew() {
    let token = rs256(&with(json!({"exp": NOW - 60, "nbf": NOW + 60})));
    assert!(validate_jwt(&token, &[rule()], NOW).is_ok());
    let token = rs256(&with(json!({"exp": null, "nbf": null})));
    assert!(
        validate_jwt(&token, &[rule()], NOW).is_ok(),
        "exp and nbf are optional"
    );
}

#[test]
fn audiences_accept_any_listed_and_string_form() {
    let rules = [JwtRule {
        audiences: vec!["svc-x".into(), "svc-b".into()],
        ..rule()
    }];
    assert!(validate_jwt(&rs256(&claims()), &rules, NOW).is_ok());
    let token = rs256(&with(json!({"aud": "svc-x"})));
    assert_eq!(
        validate_jwt(&token, &rules, NOW).unwrap().audiences,
        ["svc-x"]
    );
}

#[test]
fn issuer_selects_the_rule() {
    let rules = [
        JwtRule {
            issuer: "https://other.example.com".into(),
            ..rule()
        },
        rule(),
    ];
    assert_eq!(
        validate_jwt(&rs256(&claims()), &rules, NOW).unwrap().rule,
        1
    );
}

/// `(name, headers, query, where the token should be found)`.
type ExtractionCase<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<&'a str>,
    Option<TokenLocation<'a>>,
);

#[test]
fn default_locations_and_extraction() {
    let token = rs256(&claims());
    let bearer = format!("Bearer {token}");
    let lower = format!("bearer {token}");
    let query = format!("a=1&access_token={token}");
    let rules = [rule()];
    let cases: Vec<ExtractionCase<'_>> = vec![
        (
            "authorization header",
            vec![("Authorization", &bearer)],
            None,
            Some(TokenLocation::Header {
                name: "authorization",
                prefix: "Bearer ",
            }),
        ),
        (
            "prefix ignores case",
            vec![("authorization", &lower)],
            None,
            Some(TokenLocation::Header {
                name: "authorization",
                prefix: "Bearer ",
            }),
        ),
        (
            "access_token parameter",
            vec![],
            Some(&query),
            Some(TokenLocation::QueryParam("access_token")),
        ),
        (
            "other scheme",
            vec![("Authorization", "Basic abc")],
            None,
            None,
        ),
        ("nothing", vec![], Some("a=1"), None),
    ];
    for (name, headers, query, want) in cases {
        let request = JwtRequest {
            headers: &headers,
            query,
        };
        let found = extract_token(rules.iter().flat_map(token_locations), &request);
        assert_eq!(found.map(|(location, _)| location), want, "case {name:?}");
        if let Some((_, found)) = found {
            assert_eq!(found, token, "case {name:?}");
        }
    }
}

#[test]
fn configured_locations_replace_the_defaults() {
    let rule = JwtRule {
        from_headers: vec![("x-jwt".into(), String::new())],
        from_params: vec!["token".into()],
        ..rule()
    };
    let locations: Vec<_> = token_locations(&rule).collect();
    assert_eq!(
        locations,
        [
            TokenLocation::Header {
                name: "x-jwt",
                prefix: ""
            },
            TokenLocation::QueryParam("token"),
        ]
    );
    let headers = [("Authorization", "Bearer abc")];
    let request = JwtRequest {
        headers: &headers,
        query: Some("token=t1"),
    };
    assert_eq!(
        extract_token(token_locations(&rule), &request),
        Some((TokenLocation::QueryParam("token"), "t1")),
        "Authorization is not read once fromHeaders is set"
    );
    let headers = [("X-JWT", "t2")];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    assert_eq!(
        extract_token(token_locations(&rule), &request).map(|found| found.1),
        Some("t2")
    );
}

#[test]
fn cookie_extraction() {
    let headers = [("cookie", "a=1; session=\"tok\"; b=2")];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    let locations = [TokenLocation::Cookie("session")];
    assert_eq!(
        extract_token(locations, &request).map(|found| found.1),
        Some("tok")
    );
    let locations = [TokenLocation::Cookie("missing")];
    assert_eq!(extract_token(locations, &request), None);
}

#[test]
fn authenticate_missing_valid_and_invalid() {
    let rules = [rule()];
    let none = JwtRequest::default();
    assert_eq!(authenticate(&rules, &none, NOW), Ok(None));

    let bearer = format!("Bearer {}", rs256(&claims()));
    let headers = [("authorization", bearer.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(found.identity.subject, "alice");

    let expired = format!("Bearer {}", rs256(&with(json!({"exp": NOW - 3600}))));
    let headers = [("authorization", expired.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    assert!(matches!(
        authenticate(&rules, &request, NOW),
        Err(JwtError::Expired { .. })
    ));
}

#[test]
fn header_edits_follow_the_rule() {
    let token = rs256(&claims());
    let query = format!("access_token={token}");
    let payload = token.split('.').nth(1).unwrap().to_owned();
    let claim_to_headers = [
        ClaimToHeader {
            header: "x-sub".into(),
            claim: "sub".into(),
        },
        ClaimToHeader {
            header: "x-team".into(),
            claim: "org.team".into(),
        },
        ClaimToHeader {
            header: "x-level".into(),
            claim: "level".into(),
        },
        ClaimToHeader {
            header: "x-groups".into(),
            claim: "groups".into(),
        },
        ClaimToHeader {
            header: "x-none".into(),
            claim: "absent".into(),
        },
    ];
    let set = |name: &str, value: &str| HeaderEdit::Set {
        name: name.into(),
        value: value.into(),
    };

    let rules = [JwtRule {
        output_payload_to_header: Some("x-payload".into()),
        ..rule()
    }];
    let request = JwtRequest {
        headers: &[],
        query: Some(&query),
    };
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(
        header_edits(&rules, &found, &claim_to_headers),
        [
            HeaderEdit::RemoveQueryParam("access_token".into()),
            set("x-payload", &payload),
            set("x-sub", "alice"),
            set("x-team", "core"),
            set("x-level", "3"),
        ]
    );

    let rules = [JwtRule {
        forward_original_token: true,
        ..rule()
    }];
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(header_edits(&rules, &found, &[]), []);

    let rules = [rule()];
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(
        header_edits(&rules, &found, &[]),
        [HeaderEdit::Remove("authorization".into())]
    );
}

#[test]
fn algorithm_confusion_is_rejected() {
    // `alg: none` is not an algorithm jsonwebtoken knows: the header does not parse.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    let unsigned = format!("{header}.{payload}.");
    assert_eq!(
        validate_jwt(&unsigned, &[rule()], NOW),
        Err(JwtError::Malformed("bad header"))
    );
    // HS256 keyed with the RSA modulus: no `oct` key in the JWKS can verify it.
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let modulus = jwks["keys"][0]["n"].as_str().unwrap();
    let key = EncodingKey::from_secret(modulus.as_bytes());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    assert_eq!(
        validate_jwt(&forged, &[rule()], NOW),
        Err(JwtError::BadSignature {
            issuer: ISSUER.into()
        })
    );
}
