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
    /// The JSON text of `request.object`, when the request has one.
    pub(super) object: Option<&'a RawValue>,
}

/// Splits `body` into the review envelope and the object's JSON text.
///
/// Takes the request body. Returns `None` when the body is not valid JSON, is nested more
/// than [`MAX_DEPTH`] levels, is not an object whose `request` is an object, or does not
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
    for raw in [object, old_object].into_iter().flatten() {
        if 2 + nesting_depth(raw.get().as_bytes()) > MAX_DEPTH {
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

/// The deepest nesting of arrays and objects in the JSON text `body`, in levels (`{}` is 1);
/// brackets inside strings do not count. Meaningful for valid JSON only.
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => {
                // Skip the string: to its closing quote, stepping over escapes.
                while let Some(found) = body.get(at..).and_then(|s| memchr::memchr2(b'"', b'\\', s))
                {
                    let end = at + found;
                    at = end + 1;
                    if body.get(end) == Some(&b'"') {
                        break;
                    }
                    at += 1; // the escaped byte
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nesting_depth_counts_levels_outside_strings() {
        assert_eq!(nesting_depth(b"1"), 0);
        assert_eq!(nesting_depth(b"{}"), 1);
        assert_eq!(nesting_depth(br#"{"a":[{"b":[]}],"c":{}}"#), 4);
        assert_eq!(nesting_depth(br#"{"[[[{{":"]]]}}"}"#), 1);
        assert_eq!(nesting_depth(br#"{"a\"[[":["\\",[["\"]"]]]}"#), 4);
        let deep = format!("{}{}", "[".repeat(150), "]".repeat(150));
        assert_eq!(nesting_depth(deep.as_bytes()), 150);
    }

    #[test]
    fn splits_out_the_object_text_and_empties_both_objects() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u","kind":{"group":"g","version":"v1","kind":"K"},
            "resource":{"group":"g","version":"v1","resource":"ks"},"operation":"UPDATE",
            "userInfo":{},"object":{"kind":"K", "x": [1, 2]},"oldObject":{"kind":"K"}}}"#;
        let split = split(body).unwrap();
        assert_eq!(split.object.unwrap().get(), r#"{"kind":"K", "x": [1, 2]}"#);
        let request = split.review.request.unwrap();
        assert_eq!(request.uid, "u");
        assert!(request.object.is_none() && request.old_object.is_none());
    }

    #[test]
    fn gives_up_on_what_it_does_not_read() {
        let deep = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"object":{}1{}}}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        for body in [
            &b"not json"[..],
            b"[1]",
            br#"{"request": [1]}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}"#,
            deep.as_bytes(),
        ] {
            assert!(split(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }
}
