//! Throwaway certificates for edge TLS in tests and demos (a gateway's HTTPS server
//! certificate, a TLS backend behind a passthrough gateway): a self-signed CA and leaves for
//! DNS names, all PEM.

/// Why a certificate could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("generating a test certificate: {0}")]
pub struct PkiError(#[from] rcgen::Error);

/// A self-signed certificate authority.
pub struct TestCa {
    /// The CA certificate (PEM), what clients trust (`curl --cacert`).
    pub cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A leaf certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The PKCS#8 private key (PEM).
    pub key_pem: String,
}

impl Leaf {
    /// A Kubernetes Secret of type `kubernetes.io/tls` named `namespace/name` holding this
    /// certificate and key (`tls.crt`, `tls.key`, base64 as the API stores them), plus the CA
    /// `ca_pem` as `ca.crt` when given: what Istio's `credentialName` refers to. YAML text.
    pub fn tls_secret_yaml(&self, namespace: &str, name: &str, ca_pem: Option<&str>) -> String {
        use base64::Engine as _;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let ca = ca_pem.map_or_else(String::new, |pem| format!("  ca.crt: {}\n", encode(pem)));
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n{ca}",
            encode(&self.cert_pem),
            encode(&self.key_pem)
        )
    }
}

impl std::fmt::Debug for Leaf {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA with a fresh ECDSA P-256 key, common name `common_name`.
    ///
    /// Errors: [`PkiError`] when rcgen cannot build it.
    pub fn new(common_name: &str) -> Result<Self, PkiError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            cert_pem,
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// A server certificate for the DNS names `names` (subject alternative names), signed by
    /// this CA.
    ///
    /// Errors: [`PkiError`] for a name rcgen refuses.
    pub fn issue(&self, names: &[&str]) -> Result<Leaf, PkiError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>(),
        )?;
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, *first);
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
