//! Reading a validation `AdmissionReview` from its body bytes in one pass, reading the object
//! straight into its typed form on the way.
//!
//! The reference path (`handle_validate_body_reference`) parses the whole body into a
//! `serde_json::Value`, takes the object out and reads the rest as the envelope; on a
//! 20-route VirtualService building (and dropping) that `Value` tree was most of the cost of
//! a call. [`split`] parses the body once: `request.object` is read as it comes into the mesh
//! object the request's `kind` names (`validation::parse::ObjectSeed`), `request.oldObject`
//! is kept as a borrowed [`RawValue`], and only the small envelope fields become `Value`s,
//! read into the same `AdmissionReview<DynamicObject>` the reference path reads. It gives up
//! (`None`) on anything unusual; the caller then takes the reference path, so every error
//! reply comes from there.

use std::fmt;

use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use weft_crds::MeshObject;

use crate::validation::parse::ObjectSeed;

/// The deepest nesting of arrays and objects [`split`] reads in `request.oldObject`, in
/// levels. serde_json refuses documents nested 128 levels deep when it builds a `Value`, but
/// not in a part it keeps raw; a body whose old object nests deeper than this is left to the
/// reference path, whose parse error is the reply. (`request.object` needs no such limit:
/// it is read, not kept raw, so serde_json counts its levels as it does for a `Value`.)
const MAX_DEPTH: usize = 100;

/// An admission review split from its body.
pub(super) struct Split {
    /// The review with `request.object` and `request.oldObject` empty, read exactly as the
    /// reference path reads it.
    pub(super) review: AdmissionReview<DynamicObject>,
    /// `request.object`, read as the mesh object it is; `None` when the request has none.
    pub(super) object: Option<MeshObject>,
}

/// Splits `body` into the review envelope and the object, read into its type.
///
/// Takes the request body. Returns `None` when the body is not UTF-8 or not valid JSON, is
/// not an object
/// whose `request` is an object, does not read as an `AdmissionReview<DynamicObject>`, has
/// an object that does not read as a served version of the kind `request.kind` names (before
/// it) for certain (see `ObjectSeed`), or an old object nested more than [`MAX_DEPTH`]
/// levels or with a `\u` escape of a UTF-16 surrogate. Repeated keys in the envelope keep the
/// last value, as in a `serde_json::Value`.
pub(super) fn split(body: &[u8]) -> Option<Split> {
    // Checked as UTF-8 once, whole, rather than string by string as `from_slice` does.
    let text = std::str::from_utf8(body).ok()?;
    let Body {
        document,
        object,
        old_object,
    } = serde_json::from_str(text).ok()?;
    if let Some(old) = old_object {
        // serde_json counts the nesting of what it reads as `Value`s, not of the raw parts;
        // the old object sits two levels down (the review, its request).
        let scan = scan(old.get());
        if 2 + scan.depth > MAX_DEPTH || scan.surrogate {
            return None;
        }
    }
    let review = serde_json::from_value(Value::Object(document)).ok()?;
    Some(Split { review, object })
}

/// A review body as [`split`] reads it in one pass: every top-level field as a `Value`,
/// except `request`, read by [`Request`].
struct Body<'a> {
    /// The review, with `request.object` and `request.oldObject` set to `null`.
    document: Map<String, Value>,
    /// `request.object`, read into its type.
    object: Option<MeshObject>,
    /// The text of `request.oldObject`, kept only to measure its nesting.
    old_object: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
        let mut body = Body {
            document: Map::new(),
            object: None,
            old_object: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == "request" {
                // A repeated `request` replaces the earlier one whole, objects included.
                let request: Request<'de> = map.next_value()?;
                body.object = request.object;
                body.old_object = request.old_object;
                Value::Object(request.fields)
            } else {
                map.next_value()?
            };
            body.document.insert(key, value);
        }
        Ok(body)
    }
}

/// The `request` of a review body: every field as a `Value`, except the two objects, the
/// object read into its type and the old object kept as text (both `null` in `fields`, where
/// the reference path leaves `null` after taking them out).
struct Request<'a> {
    fields: Map<String, Value>,
    object: Option<MeshObject>,
    old_object: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for Request<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionRequest object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request<'de>, A::Error> {
        let mut request = Request {
            fields: Map::new(),
            object: None,
            old_object: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "object" => {
                    // The kind the request names so far: the object is read as that kind.
                    let kind = request
                        .fields
                        .get("kind")
                        .and_then(|kind| kind.get("kind"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            de::Error::custom("request.kind.kind must come before request.object")
                        })?;
                    request.object = Some(map.next_value_seed(ObjectSeed { kind })?);
                    Value::Null
                }
                "oldObject" => {
                    request.old_object = Some(map.next_value()?);
                    Value::Null
                }
                _ => map.next_value()?,
            };
            request.fields.insert(key, value);
        }
        Ok(request)
    }
}

/// What one pass over a JSON text tells about the parts serde_json would check only in a
/// `Value`.
struct Scan {
    /// The deepest nesting of arrays and objects, in levels (`{}` is 1); brackets inside
    /// strings do not count.
    depth: usize,
    /// Whether any string holds a `\u` escape of a UTF-16 surrogate. serde_json refuses a
    /// lone one in a string it reads but not in a part it keeps raw, so a `Value` of the
    /// whole body can fail where the split succeeds.
    surrogate: bool,
}

/// Scans the JSON text `text` once; see [`Scan`]. Meaningful for valid JSON only (the text
/// of a `RawValue`, which serde_json has checked).
fn scan(text: &str) -> Scan {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    let mut surrogate = false;
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        match byte {
            b'"' => {
                // To the closing quote, stepping over escapes.
                while let Some(found) = bytes
                    .get(at..)
                    .and_then(|s| memchr::memchr2(b'"', b'\\', s))
                {
                    let end = at + found;
                    at = end + 1;
                    if bytes.get(end) == Some(&b'"') {
                        break;
                    }
                    // A `\u` escape of a UTF-16 surrogate (D800-DFFF).
                    surrogate |= bytes.get(at) == Some(&b'u')
                        && matches!(bytes.get(at + 1), Some(b'd' | b'D'))
                        && matches!(
                            bytes.get(at + 2),
                            Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                        );
                    at += 1; // the escaped byte
                }
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Scan {
        depth: deepest,
        surrogate,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn scan_counts_levels_outside_strings() {
        let depth = |text: &str| scan(text).depth;
        assert_eq!(depth("1"), 0);
        assert_eq!(depth("{}"), 1);
        assert_eq!(depth(r#"{"a":[{"b":[]}],"c":{}}"#), 4);
        assert_eq!(depth(r#"{"[[[{{":"]]]}}"}"#), 1);
        assert_eq!(depth(r#"{"a\"[[":["\\",[["\"]"]]]}"#), 4);
        assert_eq!(
            depth(&format!("{}{}", "[".repeat(150), "]".repeat(150))),
            150
        );
    }

    #[test]
    fn scan_finds_surrogate_escapes_in_strings_only() {
        let surrogate = |text: &str| scan(text).surrogate;
        assert!(surrogate(r#"{"a":["\ud800"]}"#));
        assert!(surrogate(r#"{"\uDFFF":1}"#));
        assert!(!surrogate(r#"{"a":"\u00e9\ue000\\ud800"}"#));
        assert!(!surrogate(r#"{"a":"ud800"}"#));
    }

    /// A review body whose request names `request_kind` and carries `object`.
    fn body(request_kind: &str, object: &str, old_object: &str) -> String {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u",
            "kind":{{"group":"networking.istio.io","version":"v1","kind":"{request_kind}"}},
            "resource":{{"group":"networking.istio.io","version":"v1","resource":"virtualservices"}},
            "operation":"UPDATE","userInfo":{{}},"object":{object},"oldObject":{old_object}}}}}"#
        )
    }

    const OBJECT: &str = r#"{"metadata":{"name":"a","namespace":"n"},"kind":"VirtualService",
        "spec":{"hosts":["a"],"http":[{"route":[{"destination":{"host":"a"}}]}]},
        "apiVersion":"networking.istio.io/v1"}"#;

    #[test]
    fn reads_the_object_into_its_type_and_empties_both_objects() {
        let split = split(body("VirtualService", OBJECT, r#"{"kind":"K"}"#).as_bytes()).unwrap();
        let value: Value = serde_json::from_str(OBJECT).unwrap();
        assert_eq!(split.object, Some(MeshObject::from_value(value).unwrap()));
        let request = split.review.request.unwrap();
        assert_eq!(request.uid, "u");
        assert!(request.object.is_none() && request.old_object.is_none());
    }

    #[test]
    fn gives_up_on_what_it_does_not_read() {
        let deep = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        let with_junk = |junk: &str| OBJECT.replacen("{", &format!(r#"{{"junk":{junk},"#), 1);
        // Within the limits, the same reviews split.
        for object in [with_junk(&deep(MAX_DEPTH - 3)), with_junk(r#""\u00e9""#)] {
            let body = body("VirtualService", &object, &deep(MAX_DEPTH - 3));
            assert!(split(body.as_bytes()).is_some(), "{body}");
        }
        // The object before the kind the request names: nothing to read it as.
        let kind_last = body("VirtualService", OBJECT, "{}")
            .replacen(
                r#""kind":{"group":"networking.istio.io","version":"v1","kind":"VirtualService"},"#,
                "",
                1,
            )
            .replace(
                r#""oldObject":{}}}"#,
                r#""oldObject":{},"kind":{"group":"g","version":"v1","kind":"VirtualService"}}}"#,
            );
        for body in [
            "not json".to_string(),
            "[1]".into(),
            r#"{"request": [1]}"#.into(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}"#
                .into(),
            // serde_json's own limit (128 levels, counted from the body) in a skipped field.
            body("VirtualService", &with_junk(&deep(126)), "{}"),
            body("VirtualService", &with_junk(r#"["\ud800"]"#), "{}"),
            body("VirtualService", OBJECT, &deep(MAX_DEPTH - 1)),
            body("VirtualService", OBJECT, r#"["\uDC00"]"#),
            body("Gateway", OBJECT, "{}"),
            body("Pod", OBJECT, "{}"),
            body("VirtualService", "null", "{}"),
            body("VirtualService", &OBJECT.replace("/v1\"", "/v9\""), "{}"),
            body(
                "VirtualService",
                &OBJECT.replace("\"spec\"", "\"spec\":{},\"spec\""),
                "{}",
            ),
            body(
                "VirtualService",
                &OBJECT.replace("\"hosts\"", "\"x\":1,\"hosts\""),
                "{}",
            ),
            kind_last,
        ] {
            assert!(split(body.as_bytes()).is_none(), "{body}");
        }
        // Not UTF-8: a Latin-1 byte in the object's name.
        let text = body("VirtualService", OBJECT, "{}");
        let mut bytes = text.clone().into_bytes();
        let at = text.find(r#""a""#).unwrap() + 1;
        bytes[at] = 0xe9;
        assert!(split(&bytes).is_none());
        bytes[at] = b'e';
        assert!(split(&bytes).is_some());
    }
}
