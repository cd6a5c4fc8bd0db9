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
    let set = |name: &str, value: &str| HeaderEdit::Set {
        name: name.into(),
        value: value.into(),
    };

    let rules = [JwtRule {
        output_payload_to_header: Some("x-payload".into()),
        output_claim_to_headers: [
            ("x-sub", "sub"),
            ("x-team", "org.team"),
            ("x-level", "level"),
            ("x-groups", "groups"),
            ("x-none", "absent"),
            ("x-deeper", "org.team.name"),
        ]
        .map(|(header, claim)| (header.to_owned(), claim.to_owned()))
        .to_vec(),
        ..rule()
    }];
    let request = JwtRequest {
        headers: &[],
        query: Some(&query),
    };
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(
        header_edits(&rules, &found),
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
    assert_eq!(header_edits(&rules, &found), []);

    let rules = [rule()];
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(
        header_edits(&rules, &found),
        [HeaderEdit::Remove("authorization".into())]
    );
}

#[test]
fn claim_values_are_written_as_envoy_writes_them() {
    let token = rs256(&with(json!({
        "flag": true,
        "off": false,
        "big": 18_446_744_073_709_551_615_u64,
        "whole_float": 7.0,
        "half": 2.5,
        "negative": -3,
        "empty": "",
        "nothing": null,
        "nested": {"key": {"group": "blue", "n": 1}},
    })));
    let claims = [
        ("flag", Some("true")),
        ("off", Some("false")),
        ("big", Some("18446744073709551615")),
        ("whole_float", Some("7")),
        ("half", Some("2.500000")),
        ("negative", Some("-3.000000")),
        ("empty", None),
        ("nothing", None),
        ("groups", None),
        ("org", None),
        ("nested.key.group", Some("blue")),
        ("nested.key.n", Some("1")),
        ("nested.missing", None),
    ];
    let rules = [JwtRule {
        output_claim_to_headers: claims
            .iter()
            .map(|(claim, _)| (format!("x-{claim}"), (*claim).to_owned()))
            .collect(),
        ..rule()
    }];
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    let edits = header_edits(&rules, &found);
    for (claim, want) in claims {
        let header = format!("x-{claim}");
        let got = edits.iter().find_map(|edit| match edit {
            HeaderEdit::Set { name, value } if *name == header => Some(value.as_str()),
            _ => None,
        });
        assert_eq!(got, want, "claim {claim:?}");
    }
}

#[test]
fn sanitized_headers_list_every_output_header_of_every_rule() {
    let rules = [
        JwtRule {
            output_payload_to_header: Some("x-payload".into()),
            output_claim_to_headers: vec![("x-sub".into(), "sub".into())],
            ..rule()
        },
        JwtRule {
            issuer: "https://other.example.com".into(),
            output_claim_to_headers: vec![("x-group".into(), "group".into())],
            ..rule()
        },
    ];
    assert_eq!(
        sanitized_headers(&rules).collect::<Vec<_>>(),
        ["x-payload", "x-sub", "x-group"]
    );
}

#[test]
fn cookies_are_read_after_headers_and_params_and_replace_the_defaults() {
    let cookie_rule = JwtRule {
        from_cookies: vec!["session".into()],
        ..rule()
    };
    assert_eq!(
        token_locations(&cookie_rule).collect::<Vec<_>>(),
        [TokenLocation::Cookie("session")],
        "fromCookies alone turns Istio's default locations off"
    );
    let token = rs256(&claims());
    let bearer = format!("Bearer {token}");
    let cookie = format!("theme=dark; session={token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("cookie", cookie.as_str()),
    ];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    assert_eq!(
        rule_tokens(&cookie_rule, &request),
        [(TokenLocation::Cookie("session"), token.as_str())],
        "the Authorization header is not read by a rule with only fromCookies"
    );
    let found = authenticate(std::slice::from_ref(&cookie_rule), &request, NOW)
        .unwrap()
        .unwrap();
    assert_eq!(found.identity.subject, "alice");
    assert_eq!(
        header_edits(std::slice::from_ref(&cookie_rule), &found),
        [],
        "a token in a cookie stays in the cookie, as Envoy leaves it"
    );

    let every = JwtRule {
        from_headers: vec![("x-jwt".into(), String::new())],
        from_params: vec!["token".into()],
        from_cookies: vec!["session".into()],
        ..rule()
    };
    let headers = [("cookie", "session=c"), ("x-jwt", "h1"), ("x-jwt", "h2")];
    let request = JwtRequest {
        headers: &headers,
        query: Some("token=q"),
    };
    assert_eq!(
        rule_tokens(&every, &request)
            .into_iter()
            .map(|(_, token)| token)
            .collect::<Vec<_>>(),
        ["h1", "h2", "q", "c"],
        "headers (every occurrence), then parameters, then cookies"
    );
}

#[test]
fn every_token_a_rule_finds_must_verify() {
    let both = JwtRule {
        from_headers: vec![("x-jwt".into(), String::new())],
        from_cookies: vec!["session".into()],
        ..rule()
    };
    let valid = rs256(&claims());
    let expired = rs256(&with(json!({"exp": NOW - 3600, "sub": "bob"})));
    let cookie = format!("session={expired}");
    let headers = [("x-jwt", valid.as_str()), ("cookie", cookie.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    assert!(
        matches!(
            authenticate(std::slice::from_ref(&both), &request, NOW),
            Err(JwtError::Expired { .. })
        ),
        "a good header token does not carry an expired cookie token"
    );
    let cookie = format!("session={valid}");
    let headers = [("x-jwt", valid.as_str()), ("cookie", cookie.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    let found = authenticate(std::slice::from_ref(&both), &request, NOW)
        .unwrap()
        .unwrap();
    assert_eq!(found.tokens.len(), 2);
    assert_eq!(
        header_edits(std::slice::from_ref(&both), &found),
        [HeaderEdit::Remove("x-jwt".into())]
    );
}

#[test]
fn the_first_rule_whose_tokens_all_verify_gives_the_identity() {
    let header_rule = JwtRule {
        from_headers: vec![("x-jwt".into(), String::new())],
        ..rule()
    };
    let cookie_rule = JwtRule {
        from_cookies: vec!["session".into()],
        ..rule()
    };
    let rules = [header_rule, cookie_rule];
    let alice = rs256(&claims());
    let expired = rs256(&with(json!({"exp": NOW - 3600, "sub": "bob"})));
    let carol = rs256(&with(json!({"sub": "carol"})));

    // The header rule fails on an expired token; the cookie rule accepts its own.
    let cookie = format!("session={carol}");
    let headers = [("x-jwt", expired.as_str()), ("cookie", cookie.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(
        (found.identity.subject.as_str(), found.identity.rule),
        ("carol", 1)
    );

    // Both accept: the first rule wins.
    let headers = [("x-jwt", alice.as_str()), ("cookie", cookie.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    let found = authenticate(&rules, &request, NOW).unwrap().unwrap();
    assert_eq!(
        (found.identity.subject.as_str(), found.identity.rule),
        ("alice", 0)
    );

    // Only an expired token anywhere: the first rule's error.
    let headers = [("x-jwt", expired.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    assert!(matches!(
        authenticate(&rules, &request, NOW),
        Err(JwtError::Expired { .. })
    ));

    // A token at a location no rule reads is no token.
    let bearer = format!("Bearer {alice}");
    let headers = [("authorization", bearer.as_str())];
    let request = JwtRequest {
        headers: &headers,
        query: None,
    };
    assert_eq!(authenticate(&rules, &request, NOW), Ok(None));
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
