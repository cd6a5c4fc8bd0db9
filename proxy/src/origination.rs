//! TLS origination to upstreams outside the mesh (Istio DestinationRule `trafficPolicy.tls`
//! modes `SIMPLE` and `MUTUAL`, e.g. Istio's "Egress TLS Origination" task): the application
//! speaks plaintext to the sidecar, which opens TLS to the endpoint, verifying the server
//! against the given CA bundle (or the system bundle) and the SNI host name.
//!
//! With `subjectAltNames` (Istio `ClientTLSSettings.subjectAltNames`: "the proxy will verify
//! that the server certificate's subject alt name matches one of the specified values") the
//! chain is verified and the certificate must be valid for one of those names (DNS names or
//! IP addresses; URI SANs such as SPIFFE IDs are not matched); without them, for the name the
//! connection is made to (the SNI).
//!
//! The client certificate of `MUTUAL` comes from files, or inline from the Secret named by
//! `credentialName` ([`credential_client_config`]); a cluster whose credential is missing
//! fails its connections, never falling back to plaintext or to no client certificate.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use weft_proxy_config::ClientCredential;

/// Where the system CA bundle is looked for when a cluster gives no `ca_certificates`
/// (Debian/Ubuntu/Alpine, RHEL/Fedora, then BSD-style paths).
pub const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// Errors building an origination client configuration; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum OriginationError {
    /// No CA bundle was given and none of [`SYSTEM_CA_BUNDLES`] exists.
    #[error("no CA bundle: set ca_certificates or install one of {SYSTEM_CA_BUNDLES:?}")]
    NoBundle,
    /// A PEM file could not be read or has no usable item.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A `subjectAltNames` entry that is neither a DNS name nor an IP address.
    #[error("subjectAltNames: {name:?} is not a DNS name or IP address (URI SANs are not matched)")]
    SubjectAltName {
        /// The entry.
        name: String,
    },
    /// The `credentialName` Secret was missing or lacked the certificate or the key when the
    /// control plane read it (Istio's SDS would not serve it either): the cluster's
    /// connections fail.
    #[error(
        "credential {credential_name}: the Secret is missing or lacks a certificate and key \
         (keys tls.crt/tls.key or cert/key); connections fail until it has them"
    )]
    MissingCredential {
        /// The Secret, `<namespace>/<name>`.
        credential_name: String,
    },
    /// rustls rejected the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn pem_error(path: &str, reason: impl ToString) -> OriginationError {
    OriginationError::Pem {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// A client configuration trusting the CAs in `ca_certificates` (PEM; the system bundle when
/// `None`), presenting `client` (`(certificate chain PEM, private key PEM)` files) for
/// `MUTUAL`, offering the ALPN ids `alpn`, and accepting only server certificates valid for
/// one of `subject_alt_names` when it is not empty (Istio `subjectAltNames`; else the SNI).
/// TLS 1.2 and 1.3 with rustls' ring provider.
///
/// Errors: [`OriginationError`] naming the unreadable or unusable file, or a
/// `subjectAltNames` entry that is neither a DNS name nor an IP address.
pub fn client_config(
    ca_certificates: Option<&str>,
    client: Option<(&str, &str)>,
    alpn: &[&[u8]],
    subject_alt_names: &[String],
) -> Result<Arc<ClientConfig>, OriginationError> {
    let (roots, bundle) = match ca_certificates {
        Some(path) => (roots_from_file(path)?, path),
        None => system_roots()?,
    };
    let client = match client {
        None => None,
        Some((chain_path, key_path)) => {
            let chain = CertificateDer::pem_file_iter(chain_path)
                .map_err(|error| pem_error(chain_path, error))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| pem_error(chain_path, error))?;
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|error| pem_error(key_path, error))?;
            Some((chain, key, chain_path.to_owned()))
        }
    };
    build(roots, bundle, client, alpn, subject_alt_names)
}

/// A client configuration for `MUTUAL` origination with a credential the control plane read
/// from the Secret named by Istio `ClientTLSSettings.credentialName` (PEM inline): presents
/// its certificate chain and key, trusts its CA (the system bundle when it has none), offers
/// `alpn` and checks `subject_alt_names` as [`client_config`] does.
///
/// Errors: [`OriginationError::MissingCredential`] when the Secret was missing or lacked the
/// certificate or key (every connection of the cluster then fails, as Envoy's does while its
/// SDS secret is missing: never a connection without the client certificate);
/// [`OriginationError::Pem`] naming the credential and the part (never its content) when a
/// part does not parse; as [`client_config`] otherwise.
pub fn credential_client_config(
    credential: &ClientCredential,
    alpn: &[&[u8]],
    subject_alt_names: &[String],
) -> Result<Arc<ClientConfig>, OriginationError> {
    let name = &credential.credential_name;
    let (chain_pem, key_pem) =
        credential
            .identity()
            .ok_or_else(|| OriginationError::MissingCredential {
                credential_name: name.clone(),
            })?;
    let (roots, bundle) = match &credential.ca_certificates {
        Some(pem) => {
            let label = format!("credential {name} (CA)");
            let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| pem_error(&label, error))?;
            (roots_from(certificates, &label)?, label)
        }
        None => {
            let (roots, path) = system_roots()?;
            (roots, path.to_owned())
        }
    };
    let chain_label = format!("credential {name} (certificate)");
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(&chain_label, error))?;
    // The parser's error is not shown: it could quote the key.
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        pem_error(
            &format!("credential {name} (key)"),
            "no usable PKCS#8, PKCS#1 or SEC1 private key",
        )
    })?;
    build(
        roots,
        &bundle,
        Some((chain, key, chain_label)),
        alpn,
        subject_alt_names,
    )
}

/// The first of [`SYSTEM_CA_BUNDLES`] that exists, loaded, and its path.
fn system_roots() -> Result<(RootCertStore, &'static str), OriginationError> {
    let path = SYSTEM_CA_BUNDLES
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .ok_or(OriginationError::NoBundle)?;
    Ok((roots_from_file(path)?, path))
}

fn roots_from_file(path: &str) -> Result<RootCertStore, OriginationError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, error))?;
    roots_from(certificates, path)
}

fn roots_from(
    certificates: Vec<CertificateDer<'static>>,
    label: &str,
) -> Result<RootCertStore, OriginationError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(pem_error(label, "no usable CA certificate"));
    }
    Ok(roots)
}

/// The client configuration over `roots` (loaded from `bundle`, named in errors) with the
/// client certificate chain and key (`client`, with the label of the chain's source).
fn build(
    roots: RootCertStore,
    bundle: &str,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String)>,
    alpn: &[&[u8]],
    subject_alt_names: &[String],
) -> Result<Arc<ClientConfig>, OriginationError> {
    let builder = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?;
    let builder = if subject_alt_names.is_empty() {
        builder.with_root_certificates(roots)
    } else {
        let names = subject_alt_names
            .iter()
            .map(|name| {
                ServerName::try_from(name.clone())
                    .map_err(|_| OriginationError::SubjectAltName { name: name.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
                .build()
                .map_err(|error| pem_error(bundle, error))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SubjectAltNameVerifier { inner, names }))
    };
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, key, label)) => {
            if chain.is_empty() {
                return Err(pem_error(&label, "no certificate"));
            }
            builder.with_client_auth_cert(chain, key)?
        }
    };
    config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Verifies the server's chain with the CA bundle and accepts the certificate when it is
/// valid for one of `names` (Istio `subjectAltNames`) instead of the SNI.
#[derive(Debug)]
struct SubjectAltNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ServerCertVerifier for SubjectAltNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut last = rustls::Error::General("no subjectAltNames".to_owned());
        for name in &self.names {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            {
                Ok(verified) => return Ok(verified),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// A CA (PEM) and a server configuration whose certificate it issued for `names`.
    fn server(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
        let (ca_pem, _, key_pem, leaf) = issued_for(names);
        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        (ca_pem, Arc::new(config))
    }

    /// Whether a handshake to `sni` succeeds with `subject_alt_names` checked.
    async fn handshake(server_names: &[&str], sni: &str, subject_alt_names: &[&str]) -> bool {
        let (ca_pem, server) = server(server_names);
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let sans: Vec<String> = subject_alt_names.iter().map(|s| (*s).to_owned()).collect();
        let client = client_config(ca.to_str(), None, &[], &sans).unwrap();
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let accept = tokio::spawn(async move { TlsAcceptor::from(server).accept(server_io).await });
        let name = ServerName::try_from(sni.to_owned()).unwrap();
        let connected = TlsConnector::from(client).connect(name, client_io).await;
        let _ = accept.await;
        connected.is_ok()
    }

    #[tokio::test]
    async fn subject_alt_names_replace_the_sni_in_server_verification() {
        assert!(handshake(&["secure.test"], "secure.test", &[]).await);
        assert!(
            !handshake(&["secure.test"], "other.test", &[]).await,
            "SNI checked"
        );
        assert!(
            handshake(&["secure.test", "alt.test"], "lb.test", &["alt.test"]).await,
            "a listed SAN the certificate holds is enough"
        );
        assert!(
            !handshake(&["secure.test"], "secure.test", &["other.test"]).await,
            "a certificate without any listed SAN is refused"
        );
    }

    /// A CA and a certificate it issued for `name`: (CA PEM, chain PEM, key PEM, chain DER).
    fn issued(name: &str) -> (String, String, String, CertificateDer<'static>) {
        issued_for(&[name])
    }

    /// As [`issued`], for a certificate valid for every one of `names`.
    fn issued_for(names: &[&str]) -> (String, String, String, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
        (ca_pem, leaf.pem(), key.serialize_pem(), leaf.der().clone())
    }

    /// Handshakes with `client` to a server (`secure.test`) that requires a client certificate
    /// issued by `client_ca`; returns the client certificate the server saw.
    async fn mutual_handshake(
        client: Arc<ClientConfig>,
        server_chain: &str,
        server_key: &str,
        client_ca: &str,
    ) -> Option<CertificateDer<'static>> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(client_ca.as_bytes()) {
            roots.add(certificate.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                CertificateDer::pem_slice_iter(server_chain.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(server_key.as_bytes()).unwrap(),
            )
            .unwrap();
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let accept = tokio::spawn(async move {
            let stream = TlsAcceptor::from(Arc::new(server))
                .accept(server_io)
                .await
                .ok()?;
            let peer = stream.get_ref().1.peer_certificates()?.first()?.clone();
            Some(peer.into_owned())
        });
        let name = ServerName::try_from("secure.test").unwrap();
        let connected = TlsConnector::from(client).connect(name, client_io).await;
        let seen = accept.await.unwrap();
        connected.ok().and(seen)
    }

    #[tokio::test]
    async fn an_inline_credential_is_presented_and_its_ca_verifies_the_server() {
        let (server_ca, server_chain, server_key, _) = issued("secure.test");
        let (client_ca, client_chain, client_key, client_der) = issued("client.test");
        let credential = ClientCredential {
            credential_name: "demo/client".to_owned(),
            certificate_chain: Some(client_chain),
            private_key: Some(weft_proxy_config::PrivateKeyPem::new(client_key)),
            ca_certificates: Some(server_ca),
        };
        let client = credential_client_config(&credential, &[], &[]).unwrap();
        let seen = mutual_handshake(client, &server_chain, &server_key, &client_ca).await;
        assert_eq!(
            seen,
            Some(client_der),
            "the server saw the Secret's certificate"
        );

        // A CA that did not issue the server's certificate: the handshake fails.
        let (other_ca, ..) = issued("other.test");
        let wrong = ClientCredential {
            ca_certificates: Some(other_ca),
            ..credential
        };
        let client = credential_client_config(&wrong, &[], &[]).unwrap();
        let seen = mutual_handshake(client, &server_chain, &server_key, &client_ca).await;
        assert_eq!(seen, None);
    }

    #[test]
    fn a_missing_or_bad_credential_is_an_error_that_never_shows_the_key() {
        let missing = ClientCredential {
            credential_name: "demo/absent".to_owned(),
            certificate_chain: None,
            private_key: None,
            ca_certificates: None,
        };
        let error = credential_client_config(&missing, &[], &[]).unwrap_err();
        assert!(
            matches!(&error, OriginationError::MissingCredential { credential_name }
                if credential_name == "demo/absent"),
            "{error}"
        );
        let (ca, chain, ..) = issued("client.test");
        let bad_key = ClientCredential {
            credential_name: "demo/bad".to_owned(),
            certificate_chain: Some(chain),
            private_key: Some(weft_proxy_config::PrivateKeyPem::new(
                "-----BEGIN PRIVATE KEY-----\nTOP-SECRET\n-----END PRIVATE KEY-----\n",
            )),
            ca_certificates: Some(ca),
        };
        let error = credential_client_config(&bad_key, &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("demo/bad") && !error.contains("TOP-SECRET"),
            "{error}"
        );
    }

    #[test]
    fn uri_subject_alt_names_are_refused_with_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, _) = server(&["secure.test"]);
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let error = client_config(
            ca.to_str(),
            None,
            &[],
            &["spiffe://cluster.local/ns/a/sa/b".to_owned()],
        )
        .unwrap_err();
        assert!(error.to_string().contains("spiffe://"), "{error}");
    }
}
