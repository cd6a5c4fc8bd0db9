//! Types shared by several networking kinds.

/// Placeholder so the module is not empty while the networking types are written.
pub const _PLACEHOLDER: () = ();
