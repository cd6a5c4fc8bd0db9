//! SPIFFE workload identities as Istio issues them: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
//!
//! Rules implemented here:
//! - SPIFFE ID syntax from the SPIFFE standard (`SPIFFE-ID.md` §2): scheme `spiffe` in lower case,
//!   a trust domain of `[a-z0-9._-]` only (no port, user info, upper case or percent-encoding),
//!   at most 255 bytes, an ID of at most 2048 bytes, no query or fragment.
//! - Istio's path layout `/ns/<namespace>/sa/<service account>` (`pkg/spiffe`), and Istio's principal
//!   form `<trust domain>/ns/<namespace>/sa/<service account>` that `AuthorizationPolicy`
//!   `source.principals` compare against (security.istio.io/v1 `Source.principals`).
//! - Kubernetes names: a namespace is an RFC 1123 DNS label (`[a-z0-9-]`, at most 63 bytes, starting
//!   and ending alphanumeric); a service account name is an RFC 1123 DNS subdomain (dot-separated labels,
//!   at most 253 bytes), which is what the API server accepts for `ServiceAccount.metadata.name`.

use std::fmt;
use std::str::FromStr;

/// The URI scheme of a SPIFFE ID (SPIFFE-ID.md §2.1), always lower case.
pub const SPIFFE_SCHEME: &str = "spiffe://";

/// Maximum length of a trust domain in bytes (SPIFFE-ID.md §2.2).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Maximum length of a whole SPIFFE ID in bytes (SPIFFE-ID.md §2.4).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// Maximum length of a Kubernetes namespace (an RFC 1123 label) in bytes.
pub const MAX_DNS_LABEL_LEN: usize = 63;

/// Maximum length of a Kubernetes service account name (an RFC 1123 subdomain) in bytes.
pub const MAX_DNS_SUBDOMAIN_LEN: usize = 253;

/// A workload identity.
///
/// Today the only form is Istio's Kubernetes SPIFFE identity. Build one with [`Identity::spiffe`]
/// (validated) or by parsing a SPIFFE ID (`"spiffe://cluster.local/ns/default/sa/sleep".parse()`);
/// [`fmt::Display`] prints the SPIFFE ID back, and [`Identity::principal`] gives the form used by
/// `AuthorizationPolicy` `principals`. Constructing the variant directly skips validation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`.
    Spiffe {
        /// The trust domain, e.g. `cluster.local` (MeshConfig `trustDomain`).
        trust_domain: String,
        /// The Kubernetes namespace of the workload.
        namespace: String,
        /// The Kubernetes service account the workload runs as.
        service_account: String,
    },
}

/// Why a string is not a valid [`Identity`]. Each variant names the part that is wrong and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The input does not start with `spiffe://`.
    #[error(
        "SPIFFE ID {input:?} must start with the lower-case scheme \"spiffe://\" (SPIFFE-ID.md §2.1)"
    )]
    MissingScheme {
        /// The input as given.
        input: String,
    },
    /// The input is longer than [`MAX_SPIFFE_ID_LEN`].
    #[error("SPIFFE ID is {len} bytes long; at most 2048 are allowed (SPIFFE-ID.md §2.4)")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// The trust domain is empty.
    #[error("trust domain is empty; set it to e.g. \"cluster.local\" (SPIFFE-ID.md §2.2)")]
    EmptyTrustDomain,
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`].
    #[error("trust domain is {len} bytes long; at most 255 are allowed (SPIFFE-ID.md §2.2)")]
    TrustDomainTooLong {
        /// Length of the trust domain in bytes.
        len: usize,
    },
    /// The trust domain holds a character outside `[a-z0-9._-]`.
    #[error(
        "trust domain {trust_domain:?} contains {character:?}; only lower-case letters, digits, '.', '-' and '_' are allowed (SPIFFE-ID.md §2.2)"
    )]
    InvalidTrustDomain {
        /// The trust domain as given.
        trust_domain: String,
        /// The first character that is not allowed.
        character: char,
    },
    /// The path is not `/ns/<namespace>/sa/<service account>`.
    #[error(
        "SPIFFE ID path {path:?} must be \"/ns/<namespace>/sa/<service account>\" (Istio's Kubernetes identity layout)"
    )]
    InvalidPath {
        /// The path part of the ID (everything after the trust domain).
        path: String,
    },
    /// The namespace is not an RFC 1123 DNS label.
    #[error(
        "namespace {namespace:?} is not a DNS label: {rule} (Kubernetes namespace names are RFC 1123 labels)"
    )]
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
        /// The rule that is broken.
        rule: &'static str,
    },
    /// The service account is not an RFC 1123 DNS subdomain.
    #[error(
        "service account {service_account:?} is not a DNS subdomain: {rule} (Kubernetes service account names are RFC 1123 subdomains)"
    )]
    InvalidServiceAccount {
        /// The service account name as given.
        service_account: String,
        /// The rule that is broken.
        rule: &'static str,
    },
}

impl Identity {
    /// Builds a validated SPIFFE identity from its three parts.
    ///
    /// Errors: [`IdentityError::EmptyTrustDomain`], [`IdentityError::TrustDomainTooLong`],
    /// [`IdentityError::InvalidTrustDomain`], [`IdentityError::InvalidNamespace`],
    /// [`IdentityError::InvalidServiceAccount`] and [`IdentityError::TooLong`], checked in that order.
    pub fn spiffe(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Result<Self, IdentityError> {
        let identity = Identity::Spiffe {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        };
        identity.validate()?;
        Ok(identity)
    }

    /// Parses Istio's principal form `<trust domain>/ns/<namespace>/sa/<service account>` (the
    /// strings in `AuthorizationPolicy` `source.principals`, without wildcards).
    ///
    /// Errors: as [`Identity::spiffe`], plus [`IdentityError::InvalidPath`] when the layout is wrong.
    pub fn from_principal(principal: &str) -> Result<Self, IdentityError> {
        let (trust_domain, path) = match principal.find('/') {
            Some(slash) => principal.split_at(slash),
            None => (principal, ""),
        };
        Self::from_parts(trust_domain, path)
    }

    /// Checks every part of the identity against the rules in the module documentation.
    ///
    /// Returns `Ok(())` or the first broken rule (same errors and order as [`Identity::spiffe`]).
    pub fn validate(&self) -> Result<(), IdentityError> {
        let Identity::Spiffe {
            trust_domain,
            namespace,
            service_account,
        } = self;
        validate_trust_domain(trust_domain)?;
        validate_namespace(namespace)?;
        validate_service_account(service_account)?;
        let len = self.to_string().len();
        if len > MAX_SPIFFE_ID_LEN {
            return Err(IdentityError::TooLong { len });
        }
        Ok(())
    }

    /// The trust domain, e.g. `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        let Identity::Spiffe { trust_domain, .. } = self;
        trust_domain
    }

    /// The Kubernetes namespace.
    pub fn namespace(&self) -> &str {
        let Identity::Spiffe { namespace, .. } = self;
        namespace
    }

    /// The Kubernetes service account name.
    pub fn service_account(&self) -> &str {
        let Identity::Spiffe {
            service_account, ..
        } = self;
        service_account
    }

    /// Istio's principal form, `<trust domain>/ns/<namespace>/sa/<service account>`: the SPIFFE ID
    /// without its scheme, as matched by `AuthorizationPolicy` `source.principals`.
    pub fn principal(&self) -> String {
        let Identity::Spiffe {
            trust_domain,
            namespace,
            service_account,
        } = self;
        format!("{trust_domain}/ns/{namespace}/sa/{service_account}")
    }

    fn from_parts(trust_domain: &str, path: &str) -> Result<Self, IdentityError> {
        validate_trust_domain(trust_domain)?;
        let invalid_path = || IdentityError::InvalidPath {
            path: path.to_owned(),
        };
        let mut segments = path.strip_prefix('/').ok_or_else(invalid_path)?.split('/');
        let (Some("ns"), Some(namespace), Some("sa"), Some(service_account), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(invalid_path());
        };
        Self::spiffe(trust_domain, namespace, service_account)
    }
}

impl fmt::Display for Identity {
    /// Prints the SPIFFE ID, `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Identity::Spiffe {
            trust_domain,
            namespace,
            service_account,
        } = self;
        write!(
            f,
            "{SPIFFE_SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}"
        )
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    /// Parses a SPIFFE ID. Errors as [`Identity::spiffe`], plus [`IdentityError::MissingScheme`],
    /// [`IdentityError::TooLong`] and [`IdentityError::InvalidPath`].
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(IdentityError::TooLong { len: input.len() });
        }
        let rest =
            input
                .strip_prefix(SPIFFE_SCHEME)
                .ok_or_else(|| IdentityError::MissingScheme {
                    input: input.to_owned(),
                })?;
        let (trust_domain, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        Self::from_parts(trust_domain, path)
    }
}

/// Why no [`Identity`] could be read from a certificate ([`Identity::from_certificate_der`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SvidError {
    /// The bytes are not a DER X.509 certificate.
    #[error("not a valid X.509 certificate ({0})")]
    InvalidCertificate(String),
    /// The certificate has no URI SAN (not an Istio/Weft workload certificate).
    #[error(
        "certificate has no URI subject alternative name (X509-SVID.md §2 requires exactly one)"
    )]
    NoUriSan,
    /// The certificate has more than one URI SAN.
    #[error("certificate has {0:?} as URI SANs; X509-SVID.md §2 allows exactly one")]
    SeveralUriSans(Vec<String>),
    /// The URI SAN is not a valid Istio SPIFFE ID.
    #[error("certificate URI SAN is not a valid SPIFFE ID: {0}")]
    Invalid(#[from] IdentityError),
}

impl Identity {
    /// Reads the identity of a workload certificate (an X.509-SVID, leaf DER): its single URI SAN,
    /// parsed as a SPIFFE ID (SPIFFE `X509-SVID.md` §2). Use it on a peer's leaf after the TLS
    /// stack has verified the chain; it does not verify anything itself.
    ///
    /// Errors: [`SvidError::InvalidCertificate`], [`SvidError::NoUriSan`],
    /// [`SvidError::SeveralUriSans`], [`SvidError::Invalid`].
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, SvidError> {
        let cert = crate::x509::parse(der).map_err(SvidError::InvalidCertificate)?;
        let mut uris = crate::x509::uri_sans(&cert).map_err(SvidError::InvalidCertificate)?;
        match uris.len() {
            0 => Err(SvidError::NoUriSan),
            1 => Ok(uris.remove(0).parse()?),
            _ => Err(SvidError::SeveralUriSans(uris)),
        }
    }
}

/// Checks a trust domain against SPIFFE-ID.md §2.2: non-empty, at most 255 bytes, `[a-z0-9._-]` only.
///
/// Errors: [`IdentityError::EmptyTrustDomain`], [`IdentityError::TrustDomainTooLong`] or
/// [`IdentityError::InvalidTrustDomain`] naming the first offending character.
pub fn validate_trust_domain(trust_domain: &str) -> Result<(), IdentityError> {
    if trust_domain.is_empty() {
        return Err(IdentityError::EmptyTrustDomain);
    }
    if trust_domain.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdentityError::TrustDomainTooLong {
            len: trust_domain.len(),
        });
    }
    if let Some(character) = trust_domain
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        return Err(IdentityError::InvalidTrustDomain {
            trust_domain: trust_domain.to_owned(),
            character,
        });
    }
    Ok(())
}

fn validate_namespace(namespace: &str) -> Result<(), IdentityError> {
    dns_label_rule(namespace).map_err(|rule| IdentityError::InvalidNamespace {
        namespace: namespace.to_owned(),
        rule,
    })
}

fn validate_service_account(service_account: &str) -> Result<(), IdentityError> {
    dns_subdomain_rule(service_account).map_err(|rule| IdentityError::InvalidServiceAccount {
        service_account: service_account.to_owned(),
        rule,
    })
}

/// RFC 1123 label as Kubernetes checks it (`IsDNS1123Label`); returns the broken rule.
pub(crate) fn dns_label_rule(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("must not be empty");
    }
    if label.len() > MAX_DNS_LABEL_LEN {
        return Err("must be at most 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must contain only lower-case letters, digits and '-'");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// RFC 1123 subdomain as Kubernetes checks it (`IsDNS1123Subdomain`); returns the broken rule.
pub(crate) fn dns_subdomain_rule(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_DNS_SUBDOMAIN_LEN {
        return Err("must be at most 253 characters");
    }
    name.split('.').try_for_each(|label| {
        if label.is_empty() {
            return Err("must not contain empty labels (leading, trailing or double '.')");
        }
        dns_label_rule(label)
    })
}

#[cfg(test)]
mod tests;
