//! Admission logic: sidecar injection and mesh config validation (Galley), as pure functions
#![warn(missing_docs)]
