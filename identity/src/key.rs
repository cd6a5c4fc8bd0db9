//! Private key material that cannot leak through `Debug` or logs.

use std::fmt;

use zeroize::Zeroizing;

/// A PEM-encoded PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`).
///
/// `Debug` prints `PrivateKeyPem([redacted])` and there is no `Display`, so the key cannot reach a
/// log line or an error message by accident; the buffer is wiped when dropped. Read the PEM text
/// with [`PrivateKeyPem::expose_secret`] only where it is written out (a Secret, a file, rustls).
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(Zeroizing<String>);

impl PrivateKeyPem {
    /// Wraps PEM text that holds a private key. The text is not parsed here.
    pub fn new(pem: String) -> Self {
        PrivateKeyPem(Zeroizing::new(pem))
    }

    /// The PEM text of the key. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem([redacted])")
    }
}

impl From<String> for PrivateKeyPem {
    fn from(pem: String) -> Self {
        PrivateKeyPem::new(pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n".into());
        let printed = format!("{key:?} {key:#?}");
        assert!(!printed.contains("c2VjcmV0"), "{printed}");
        assert!(!printed.contains("BEGIN"), "{printed}");
        assert_eq!(format!("{key:?}"), "PrivateKeyPem([redacted])");
        assert!(key.expose_secret().contains("c2VjcmV0"));
    }
}
