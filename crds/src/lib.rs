//! Weft's API types: Istio's `networking.istio.io` and `security.istio.io` kinds, field for
//! field as Istio's reference documents them, and Weft's own `Mesh` kind.
//!
//! The JSON form is Istio's (camelCase fields, `SCREAMING_CASE` enum values, durations as
//! strings such as `1.5s`, `oneOf` matches as externally tagged enums), so existing Istio YAML
//! parses unchanged. [`crd::all`] generates the CustomResourceDefinitions; [`parse`] and
//! [`object`] read documents with errors that name the field path.
#![warn(missing_docs)]

pub mod crd;
pub mod duration;
pub mod mesh;
pub mod networking;
pub mod object;
pub mod parse;
pub mod security;
pub mod selector;
pub mod status;
pub mod string_match;

pub use duration::Duration;
pub use object::{MeshObject, parse_documents};
pub use status::IstioStatus;
pub use string_match::StringMatch;
