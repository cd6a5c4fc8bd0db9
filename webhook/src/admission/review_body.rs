//! Reading a validation `AdmissionReview` from its body bytes in one pass, leaving the object
//! as JSON text for the validator to read straight into its typed form.
//!
//! The reference path (`handle_validate_body_reference`) parses the whole body into a
//! `serde_json::Value`, takes the object out and reads the rest as the envelope; on a
//! 20-route VirtualService building (and dropping) that `Value` tree was most of the cost of
//! a call. [`split`] parses the body once, keeps `request.object` as a borrowed
//! [`RawValue`] and builds a `Value` only for the small envelope fields, which it reads into
//! the same `AdmissionReview<DynamicObject>` the reference path reads. It gives up (`None`)
//! on anything unusual; the caller then takes the reference path, so every error reply comes
//! from there.

use std::fmt;

use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The deepest nesting of arrays and objects [`split`] reads, in levels. serde_json refuses
/// documents nested 128 levels deep when it builds a `Value`, but not in a part it keeps raw
/// or skips; a body nested deeper than this is left to the reference path, whose parse error
/// is the reply.
const MAX_DEPTH: usize = 100;

/// An admission review split from its body.
pub(super) struct Split<'a> {
    /// The review with `request.object` and `request.oldObject` empty, read exactly as the
    /// reference path reads it.
    pub(super) review: AdmissionReview<DynamicObject>,
    /// The JSON text of `request.object` with its `apiVersion` and `kind`, when the request
    /// has an object and [`scan`] found both for certain.
    pub(super) object: Option<ObjectText<'a>>,
}

/// An object's JSON text with its `apiVersion` and `kind`, as [`scan`] found them.
pub(super) struct ObjectText<'a> {
    /// The object's `apiVersion`, e.g. `networking.istio.io/v1`.
    pub(super) api_version: &'a str,
    /// The object's `kind`, e.g. `VirtualService`.
    pub(super) kind: &'a str,
    /// The whole object's JSON text.
    pub(super) text: &'a str,
}

/// Splits `body` into the review envelope and the object's JSON text.
///
/// Takes the request body. Returns `None` when the body is not valid JSON, is nested more
/// than [`MAX_DEPTH`] levels, has a `\u` escape of a UTF-16 surrogate in either object,
/// is not an object whose `request` is an object, or does not
/// read as an `AdmissionReview<DynamicObject>`. Repeated keys keep the last value, as in a
/// `serde_json::Value`.
pub(super) fn split(body: &[u8]) -> Option<Split<'_>> {
    let Body {
        document,
        object,
        old_object,
    } = serde_json::from_slice(body).ok()?;
    // serde_json counts the nesting of what it reads as `Value`s, not of the raw parts; both
    // objects sit two levels down (the review, its request).
    let refused = |scan: &Scan<'_>| 2 + scan.depth > MAX_DEPTH || scan.surrogate;
    if let Some(old) = old_object
        && refused(&scan(old.get()))
    {
        return None;
    }
    let object = match object {
        Some(raw) => {
            let head = scan(raw.get());
            if refused(&head) {
                return None;
            }
            head.api_version
                .zip(head.kind)
                .map(|(api_version, kind)| ObjectText {
                    api_version,
                    kind,
                    text: raw.get(),
                })
        }
        None => None,
    };
    let review = serde_json::from_value(Value::Object(document)).ok()?;
    Some(Split { review, object })
}

/// A review body as [`split`] reads it in one pass: every top-level field as a `Value`,
/// except `request`, read by [`Request`].
struct Body<'a> {
    /// The review, with `request.object` and `request.oldObject` set to `null`.
    document: Map<String, Value>,
    /// The text of `request.object`.
    object: Option<&'a RawValue>,
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

/// The `request` of a review body: every field as a `Value`, except the two objects, kept
/// as text (and `null` in `fields`, where the reference path leaves `null` after taking
/// them out).
struct Request<'a> {
    fields: Map<String, Value>,
    object: Option<&'a RawValue>,
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
                    request.object = Some(map.next_value()?);
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

/// What one pass over an object's JSON text tells: how deeply it nests, and its top-level
/// `apiVersion` and `kind`.
struct Scan<'a> {
    /// The deepest nesting of arrays and objects, in levels (`{}` is 1); brackets inside
    /// strings do not count.
    depth: usize,
    /// The top-level `apiVersion` string; `None` unless it appears once, as a string written
    /// without escapes, under a key written without escapes.
    api_version: Option<&'a str>,
    /// The top-level `kind` string, on the same terms.
    kind: Option<&'a str>,
    /// Whether any string holds a `\u` escape of a UTF-16 surrogate. serde_json refuses a
    /// lone one in a string it reads but not in a part it skips, so a `Value` of the whole
    /// body can fail where reading the object's fields succeeds.
    surrogate: bool,
}

/// A top-level field [`scan`] looks for.
#[derive(Clone, Copy)]
enum Head {
    ApiVersion,
    Kind,
}

/// Scans the JSON text `text` once; see [`Scan`]. Meaningful for valid JSON only (the text
/// of a `RawValue`, which serde_json has checked). Where the top-level fields could read
/// differently in a `serde_json::Value` (a repeat, where the value keeps the last; an escape;
/// a value that is not a string), they are reported as not found, and the caller takes the
/// `Value` path.
fn scan(text: &str) -> Scan<'_> {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    let mut found: [Option<&str>; 2] = [None, None];
    // At the top level of an object: whether the next string is a key, and which looked-for
    // key awaits its value.
    let (mut at_key, mut awaiting): (bool, Option<Head>) = (false, None);
    let (mut unsure, mut surrogate) = (false, false);
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        match byte {
            b'"' => {
                let start = at;
                let mut escaped = false;
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
                    escaped = true;
                    // A `\u` escape of a UTF-16 surrogate (D800-DFFF): serde_json checks
                    // those only in strings it reads, not in the parts it skips.
                    surrogate |= bytes.get(at) == Some(&b'u')
                        && matches!(bytes.get(at + 1), Some(b'd' | b'D'))
                        && matches!(
                            bytes.get(at + 2),
                            Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                        );
                    at += 1; // the escaped byte
                }
                if depth != 1 {
                    continue;
                }
                let string = text.get(start..at.saturating_sub(1));
                if at_key {
                    at_key = false;
                    unsure |= escaped;
                    awaiting = match string {
                        Some("apiVersion") => Some(Head::ApiVersion),
                        Some("kind") => Some(Head::Kind),
                        _ => None,
                    };
                } else if let Some(head) = awaiting.take() {
                    let slot = &mut found[head as usize];
                    unsure |= escaped || slot.is_some() || string.is_none();
                    *slot = string;
                }
            }
            b'{' | b'[' => {
                // A looked-for field whose value is an object or a list.
                unsure |= depth == 1 && awaiting.is_some();
                depth += 1;
                deepest = deepest.max(depth);
                at_key = depth == 1 && byte == b'{';
            }
            b'}' | b']' | b',' => {
                // A looked-for field whose value was a number, `true`, `false` or `null`.
                unsure |= depth == 1 && awaiting.is_some();
                if byte == b',' {
                    at_key = depth == 1;
                } else {
                    depth = depth.saturating_sub(1);
                }
            }
            _ => {}
        }
    }
    let [api_version, kind] = if unsure { [None, None] } else { found };
    Scan {
        depth: deepest,
        api_version,
        kind,
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
    fn scan_finds_the_top_level_type_fields() {
        let text = r#"{"metadata": {"kind": "Inner", "apiVersion": "x"}, "kind": "VirtualService",
            "spec": {"kind": ["a"]}, "apiVersion" : "networking.istio.io/v1", "n": [1, {"kind": 2}]}"#;
        let found = scan(text);
        assert_eq!(found.api_version, Some("networking.istio.io/v1"));
        assert_eq!(found.kind, Some("VirtualService"));
        assert_eq!(found.depth, 3);
        let missing = scan(r#"{"apiVersion": "v1", "spec": {"kind": "K"}}"#);
        assert_eq!((missing.api_version, missing.kind), (Some("v1"), None));
    }

    #[test]
    fn scan_reports_neither_type_field_where_a_value_could_read_differently() {
        for text in [
            r#"{"apiVersion": "v1", "kind": "A", "kind": "B"}"#,
            r#"{"apiVersion": "v1", "kind": "A", "apiVersion": "v2"}"#,
            r#"{"apiVersion": "v1", "kind": "\u0041"}"#,
            r#"{"apiVersion": "v1", "\u006bind": "A", "kind": "B"}"#,
            r#"{"apiVersion": "v1", "kind": null}"#,
            r#"{"apiVersion": "v1", "kind": 7}"#,
            r#"{"apiVersion": "v1", "kind": ["A"]}"#,
            r#"{"apiVersion": {"v": 1}, "kind": "A"}"#,
            r#"{"kind": "A", "apiVersion": true}"#,
        ] {
            let found = scan(text);
            assert_eq!((found.api_version, found.kind), (None, None), "{text}");
        }
    }

    #[test]
    fn splits_out_the_object_text_and_empties_both_objects() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u","kind":{"group":"g","version":"v1","kind":"K"},
            "resource":{"group":"g","version":"v1","resource":"ks"},"operation":"UPDATE",
            "userInfo":{},"object":{"apiVersion":"g/v1","kind":"K", "x": [1, 2]},"oldObject":{"kind":"K"}}}"#;
        let split = split(body).unwrap();
        let object = split.object.unwrap();
        assert_eq!(
            object.text,
            r#"{"apiVersion":"g/v1","kind":"K", "x": [1, 2]}"#
        );
        assert_eq!((object.api_version, object.kind), ("g/v1", "K"));
        let request = split.review.request.unwrap();
        assert_eq!(request.uid, "u");
        assert!(request.object.is_none() && request.old_object.is_none());
    }

    #[test]
    fn gives_up_on_what_it_does_not_read() {
        let deep = |field: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u",
                "kind":{{"group":"g","version":"v1","kind":"K"}},"resource":{{"group":"g","version":"v1","resource":"ks"}},
                "operation":"UPDATE","userInfo":{{}},"{field}":{}1{}}}}}"#,
                "[".repeat(MAX_DEPTH - 1),
                "]".repeat(MAX_DEPTH - 1)
            )
        };
        // Within the depth limit, the same review splits.
        let shallow = deep("object")
            .replace(&"[".repeat(MAX_DEPTH - 2), "")
            .replace(&"]".repeat(MAX_DEPTH - 2), "");
        assert!(split(shallow.as_bytes()).is_some(), "{shallow}");
        for body in [
            &b"not json"[..],
            b"[1]",
            br#"{"request": [1]}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}"#,
            deep("object").as_bytes(),
            deep("oldObject").as_bytes(),
            shallow.replace("[1]", r#"["\ud800"]"#).as_bytes(),
            shallow
                .replace("\"object\"", "\"oldObject\"")
                .replace("[1]", r#"["\uDC00"]"#)
                .as_bytes(),
        ] {
            assert!(split(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }
}
