//! OpenID discovery (Istio `JWTRule.jwksUri`: "If not set, the OpenID Discovery endpoint of the
//! issuer will be used"): Pilot names the issuer's provider configuration document
//! (`weft_pilot`'s `openid_discovery_url`: `<issuer>/.well-known/openid-configuration`) in
//! place of a `jwksUri`; the resolver recognises it by that path, reads its `jwks_uri` (OpenID
//! Connect Discovery 1.0 section 3, REQUIRED) and fetches the key set from there.

use bytes::Bytes;
use weft_pilot::OPENID_DISCOVERY_PATH;

use super::JwksError;

/// Whether `url` names an OpenID provider configuration document: its path ends with
/// [`OPENID_DISCOVERY_PATH`] (a query string is ignored). A `jwksUri` written that way is
/// followed like a discovery document too, since such a document is never a key set.
pub fn is_discovery_document(url: &str) -> bool {
    url.parse::<http::Uri>()
        .is_ok_and(|uri| uri.path().ends_with(OPENID_DISCOVERY_PATH))
}

/// The `jwks_uri` of the provider configuration document `body` fetched from `url`.
///
/// Errors: [`JwksError::Discovery`] naming `url` when the body is not a UTF-8 JSON object or
/// has no non-empty string `jwks_uri`.
pub fn jwks_uri_of(url: &str, body: &Bytes) -> Result<String, JwksError> {
    let fail = |reason: String| JwksError::Discovery {
        uri: url.to_owned(),
        reason,
    };
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| fail(error.to_string()))?;
    if !document.is_object() {
        return Err(fail("the document is not a JSON object".to_owned()));
    }
    match document.get("jwks_uri") {
        Some(serde_json::Value::String(uri)) if !uri.is_empty() => Ok(uri.clone()),
        Some(_) => Err(fail("\"jwks_uri\" is not a non-empty string".to_owned())),
        None => Err(fail(
            "no \"jwks_uri\" (REQUIRED by OpenID Connect Discovery 1.0 section 3)".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents_are_recognised_by_their_well_known_path() {
        assert!(is_discovery_document(
            "https://idp.example/.well-known/openid-configuration"
        ));
        assert!(is_discovery_document(
            "http://198.18.0.254:80/realm/.well-known/openid-configuration?x=1"
        ));
        assert!(!is_discovery_document("https://idp.example/jwks.json"));
        assert!(!is_discovery_document(
            "https://idp.example/.well-known/openid-configuration/keys"
        ));
    }

    #[test]
    fn jwks_uri_is_read_from_the_document() {
        let url = "https://idp.example/.well-known/openid-configuration";
        let body = Bytes::from_static(
            br#"{"issuer":"https://idp.example","jwks_uri":"https://idp.example/keys"}"#,
        );
        assert_eq!(jwks_uri_of(url, &body).unwrap(), "https://idp.example/keys");
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"issuer":"https://idp.example"}"#,
            br#"{"jwks_uri":7}"#,
            br#"{"jwks_uri":""}"#,
        ] {
            let error = jwks_uri_of(url, &Bytes::from_static(bad)).unwrap_err();
            assert!(
                matches!(&error, JwksError::Discovery { uri, .. } if uri == url),
                "{error}"
            );
        }
    }
}
