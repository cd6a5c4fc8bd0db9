//! Server certificates of gateway servers that terminate TLS (`SIMPLE`, `MUTUAL`,
//! `OPTIONAL_MUTUAL`): a rustls [`ServerConfig`] per server, built from the credential's PEM
//! files (Istio `serverCertificate`/`privateKey`/`caCertificates`) or from the PEM the control
//! plane resolved from a Secret (`credentialName`).
//!
//! File credentials are re-read when a file changes (mtime, size or inode; checked at most
//! once per [`RECHECK_INTERVAL`], on a handshake), as the workload [`crate::tls::CertStore`]
//! does: new handshakes get the new certificate, established connections keep theirs, and a
//! set that fails to load leaves the previous one in force. Inline credentials change with the
//! pushed config.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use weft_proxy_config::{ServerTls, ServerTlsMode, TlsCredential, TlsVersion};

/// How often a handshake may look at the credential files for changes.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why a server's TLS configuration could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The server terminates TLS but has no credential (`tls.credential` is required for
    /// `SIMPLE`, `MUTUAL` and `OPTIONAL_MUTUAL`).
    #[error("server {server}: tls.credential is required for mode {mode:?}")]
    Missing {
        /// The server.
        server: String,
        /// Its TLS mode.
        mode: ServerTlsMode,
    },
    /// A credential file could not be read.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// No PEM certificate where one was expected.
    #[error("{what}: no PEM certificate")]
    NoCertificates {
        /// Which credential part (a path or `<secret> server_certificate`).
        what: String,
    },
    /// No PEM private key where one was expected.
    #[error("{what}: no PEM private key (PKCS#8, PKCS#1 or SEC1 expected)")]
    NoKey {
        /// Which credential part.
        what: String,
    },
    /// `MUTUAL`/`OPTIONAL_MUTUAL` without a usable client CA (`ca_certificates`).
    #[error("server {server}: client CA unusable for mode {mode:?}: {reason}")]
    ClientCa {
        /// The server.
        server: String,
        /// Its TLS mode.
        mode: ServerTlsMode,
        /// Why.
        reason: String,
    },
    /// `min_protocol_version`/`max_protocol_version` leave no version rustls speaks (TLS 1.2
    /// and 1.3).
    #[error(
        "server {server}: no TLS version between min_protocol_version and max_protocol_version that the proxy supports (TLS 1.2, 1.3)"
    )]
    Versions {
        /// The server.
        server: String,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("server {server}: {reason}")]
    Config {
        /// The server.
        server: String,
        /// rustls' message.
        reason: String,
    },
}

/// File identity used to notice changes cheaply, per file: (mtime, length, inode).
type Fingerprint = Vec<Option<(SystemTime, u64, u64)>>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    paths
        .iter()
        .map(|path| {
            std::fs::metadata(path).ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.ino(),
                )
            })
        })
        .collect()
}

/// The TLS configuration of one terminating server, reloaded when its files change.
pub struct ServerCredential {
    server: String,
    settings: ServerTls,
    alpn: Vec<Vec<u8>>,
    files: Vec<PathBuf>,
    current: ArcSwapOption<ServerConfig>,
    last_error: parking_lot::Mutex<Option<CredentialError>>,
    checked: parking_lot::Mutex<(Instant, Fingerprint)>,
}

impl std::fmt::Debug for ServerCredential {
    /// Names the server and mode; never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredential")
            .field("server", &self.server)
            .field("mode", &self.settings.mode)
            .field("loaded", &self.current.load().is_some())
            .finish_non_exhaustive()
    }
}

impl ServerCredential {
    /// Builds the TLS configuration of `server` from `settings`, offering the ALPN ids in
    /// `alpn` (`h2`, `http/1.1` for HTTPS servers; none for TLS servers proxied as TCP). A
    /// credential that cannot be loaded yet is logged and retried on later handshakes
    /// ([`ServerCredential::config`] returns its error meanwhile).
    pub fn new(server: &str, settings: &ServerTls, alpn: &[&[u8]]) -> Self {
        let files = match &settings.credential {
            Some(TlsCredential::Files {
                server_certificate,
                private_key,
                ca_certificates,
            }) => [
                Some(server_certificate),
                Some(private_key),
                ca_certificates.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(PathBuf::from)
            .collect(),
            _ => Vec::new(),
        };
        let credential = Self {
            server: server.to_owned(),
            settings: settings.clone(),
            alpn: alpn.iter().map(|id| id.to_vec()).collect(),
            checked: parking_lot::Mutex::new((Instant::now(), fingerprint(&files))),
            files,
            current: ArcSwapOption::empty(),
            last_error: parking_lot::Mutex::new(None),
        };
        credential.reload();
        credential
    }

    /// The TLS settings this credential was built from.
    pub fn settings(&self) -> &ServerTls {
        &self.settings
    }

    /// The current configuration for a new handshake. File credentials are re-read first when
    /// a file changed since the last look (at most once per [`RECHECK_INTERVAL`]).
    ///
    /// Errors: the [`CredentialError`] of the last load when no configuration was ever built.
    pub fn config(&self) -> Result<Arc<ServerConfig>, CredentialError> {
        if !self.files.is_empty() {
            let changed = {
                let mut checked = self.checked.lock();
                if checked.0.elapsed() >= RECHECK_INTERVAL || self.current.load().is_none() {
                    let now = fingerprint(&self.files);
                    let changed = now != checked.1 || self.current.load().is_none();
                    *checked = (Instant::now(), now);
                    changed
                } else {
                    false
                }
            };
            if changed {
                self.reload();
            }
        }
        match self.current.load_full() {
            Some(config) => Ok(config),
            None => Err(self
                .last_error
                .lock()
                .clone()
                .unwrap_or(CredentialError::Missing {
                    server: self.server.clone(),
                    mode: self.settings.mode,
                })),
        }
    }

    fn reload(&self) {
        match build(&self.server, &self.settings, &self.alpn) {
            Ok(config) => {
                tracing::info!(server = %self.server, "gateway server certificate loaded");
                self.current.store(Some(Arc::new(config)));
                *self.last_error.lock() = None;
            }
            Err(error) => {
                tracing::warn!(server = %self.server, %error, "gateway server certificate not loaded; keeping the previous one");
                *self.last_error.lock() = Some(error);
            }
        }
    }
}

/// The PEM text of one credential part: the file's contents, or the inline text.
fn read_file(path: &str) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(Path::new(path)).map_err(|source| CredentialError::Read {
        path: PathBuf::from(path),
        reason: source.to_string(),
    })
}

/// Chain, key and client CA as PEM bytes, with a label per part for error messages.
struct Material {
    chain: (Vec<u8>, String),
    key: (Vec<u8>, String),
    ca: Option<(Vec<u8>, String)>,
}

fn material(credential: &TlsCredential) -> Result<Material, CredentialError> {
    Ok(match credential {
        TlsCredential::Files {
            server_certificate,
            private_key,
            ca_certificates,
        } => Material {
            chain: (read_file(server_certificate)?, server_certificate.clone()),
            key: (read_file(private_key)?, private_key.clone()),
            ca: match ca_certificates {
                Some(path) => Some((read_file(path)?, path.clone())),
                None => None,
            },
        },
        TlsCredential::Inline {
            credential_name,
            server_certificate,
            private_key,
            ca_certificates,
        } => Material {
            chain: (
                server_certificate.as_bytes().to_vec(),
                format!("{credential_name} server_certificate"),
            ),
            key: (
                private_key.expose().as_bytes().to_vec(),
                format!("{credential_name} private_key"),
            ),
            ca: ca_certificates.as_ref().map(|pem| {
                (
                    pem.as_bytes().to_vec(),
                    format!("{credential_name} ca_certificates"),
                )
            }),
        },
    })
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| CredentialError::NoCertificates {
            what: what.to_owned(),
        })?;
    if certs.is_empty() {
        return Err(CredentialError::NoCertificates {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// The protocol versions between `min` and `max` that rustls implements (Istio's defaults:
/// TLS 1.2 to TLS 1.3; `TLS_AUTO` means the default).
fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = match min {
        None | Some(TlsVersion::Auto) => TlsVersion::V1_2,
        Some(version) => version,
    };
    let max = match max {
        None | Some(TlsVersion::Auto) => TlsVersion::V1_3,
        Some(version) => version,
    };
    [
        (TlsVersion::V1_2, &rustls::version::TLS12),
        (TlsVersion::V1_3, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(version, _)| (min..=max).contains(version))
    .map(|(_, supported)| supported)
    .collect()
}

/// Builds the rustls configuration of a terminating server: its certificate, client
/// verification for `MUTUAL` (required) and `OPTIONAL_MUTUAL` (optional) against the
/// credential's CA, the protocol versions and the ALPN ids. Session resumption stays on (these
/// are edge clients, not mesh peers).
///
/// Errors: any [`CredentialError`].
pub fn build(
    server: &str,
    settings: &ServerTls,
    alpn: &[Vec<u8>],
) -> Result<ServerConfig, CredentialError> {
    let credential = settings
        .credential
        .as_ref()
        .ok_or_else(|| CredentialError::Missing {
            server: server.to_owned(),
            mode: settings.mode,
        })?;
    let material = material(credential)?;
    let chain = certificates(&material.chain.0, &material.chain.1)?;
    let key =
        PrivateKeyDer::from_pem_slice(&material.key.0).map_err(|_| CredentialError::NoKey {
            what: material.key.1.clone(),
        })?;
    let provider = crate::tls::provider();
    let versions = versions(settings.min_protocol_version, settings.max_protocol_version);
    if versions.is_empty() {
        return Err(CredentialError::Versions {
            server: server.to_owned(),
        });
    }
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|error| CredentialError::Config {
            server: server.to_owned(),
            reason: error.to_string(),
        })?;
    let builder = if settings.mode.needs_client_ca() {
        let client_ca = |reason: String| CredentialError::ClientCa {
            server: server.to_owned(),
            mode: settings.mode,
            reason,
        };
        let (pem, what) = material
            .ca
            .as_ref()
            .ok_or_else(|| client_ca("no ca_certificates in the credential".to_owned()))?;
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certificates(pem, what)?);
        if added == 0 {
            return Err(client_ca(format!("{what}: no usable CA certificate")));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if settings.mode == ServerTlsMode::OptionalMutual {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let verifier = verifier
            .build()
            .map_err(|error| client_ca(error.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config =
        builder
            .with_single_cert(chain, key)
            .map_err(|error| CredentialError::Config {
                server: server.to_owned(),
                reason: error.to_string(),
            })?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// The DNS, URI, email and IP subject alternative names of a DER certificate, as text (IPs in
/// their usual notation); empty for an unparsable certificate.
pub fn subject_alt_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(value)
            | GeneralName::URI(value)
            | GeneralName::RFC822Name(value) => Some((*value).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|octets| std::net::Ipv4Addr::from(octets).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|octets| std::net::Ipv6Addr::from(octets).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Istio `ServerTLSSettings.subjectAltNames`: whether the client certificate `leaf` carries one
/// of `accepted` (exact match). An empty `accepted` accepts any certificate; a client without
/// certificate (`OPTIONAL_MUTUAL`) passes, since there is nothing to check.
pub fn client_san_accepted(accepted: &[String], leaf: Option<&CertificateDer<'_>>) -> bool {
    if accepted.is_empty() {
        return true;
    }
    match leaf {
        None => true,
        Some(leaf) => subject_alt_names(leaf)
            .iter()
            .any(|name| accepted.iter().any(|want| want == name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Vec<rustls::ProtocolVersion> {
        versions.iter().map(|v| v.version).collect()
    }

    #[test]
    fn protocol_versions_follow_istio_defaults_and_bounds() {
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(names(&versions(None, None)), [TLSv1_2, TLSv1_3]);
        assert_eq!(
            names(&versions(Some(TlsVersion::Auto), Some(TlsVersion::Auto))),
            [TLSv1_2, TLSv1_3]
        );
        assert_eq!(names(&versions(Some(TlsVersion::V1_3), None)), [TLSv1_3]);
        assert_eq!(names(&versions(None, Some(TlsVersion::V1_2))), [TLSv1_2]);
        assert_eq!(
            names(&versions(Some(TlsVersion::V1_0), Some(TlsVersion::V1_1))),
            Vec::<rustls::ProtocolVersion>::new()
        );
    }

    #[test]
    fn a_missing_credential_file_is_an_error_naming_the_file() {
        let settings = ServerTls {
            mode: ServerTlsMode::Simple,
            credential: Some(TlsCredential::Files {
                server_certificate: "/nonexistent/tls.crt".into(),
                private_key: "/nonexistent/tls.key".into(),
                ca_certificates: None,
            }),
            subject_alt_names: Vec::new(),
            min_protocol_version: None,
            max_protocol_version: None,
            cipher_suites: Vec::new(),
        };
        let credential = ServerCredential::new("ns/gw/https", &settings, &[]);
        let Err(CredentialError::Read { path, .. }) = credential.config() else {
            panic!("expected a read error");
        };
        assert_eq!(path, PathBuf::from("/nonexistent/tls.crt"));
    }

    #[test]
    fn subject_alt_names_are_only_checked_when_listed() {
        assert!(client_san_accepted(&[], None));
        assert!(client_san_accepted(&["a.example".to_owned()], None));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der();
        assert!(client_san_accepted(&["a.example".to_owned()], Some(der)));
        assert!(!client_san_accepted(&["b.example".to_owned()], Some(der)));
        assert_eq!(subject_alt_names(der), ["a.example"]);
    }
}
