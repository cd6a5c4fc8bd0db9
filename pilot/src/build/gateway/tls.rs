//! A server's TLS settings (Istio `ServerTLSSettings`) and its credential: files on the gateway,
//! or the Secret named by `credentialName` in the gateway proxy's namespace (Istio's SDS:
//! "the secret must be in the same namespace as the gateway deployment").

use weft_crds::networking::{Server, ServerTlsMode as CrdMode, ServerTlsSettings, TlsProtocol};
use weft_proxy_config::{
    GatewayProtocol, PrivateKeyPem, ServerTls, ServerTlsMode, TlsCredential, TlsVersion,
};

use crate::build::Context;
use crate::unsupported::Origin;
use crate::view::{CA_KEYS, CA_SECRET_SUFFIX};

/// The server's [`ServerTls`] (for `HTTPS` and `TLS` servers) and its `https_redirect` flag
/// (plaintext HTTP servers). Returns `None`, after reporting why, when the server must be left
/// out: an `HTTPS`/`TLS` server without TLS settings, or a credential that cannot be found. Fields the model cannot express are reported and ignored.
pub(super) fn translate(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    spec: &Server,
    protocol: GatewayProtocol,
) -> Option<(Option<ServerTls>, bool)> {
    let path = format!("{path}.tls");
    let is_tls = matches!(protocol, GatewayProtocol::Https | GatewayProtocol::Tls);
    let Some(settings) = &spec.tls else {
        if is_tls {
            context.warn(origin.unsupported(
                path,
                format!(
                    "a {} server needs tls settings (Istio rejects it); the server is left out",
                    protocol.as_str()
                ),
            ));
            return None;
        }
        return Some((None, false));
    };
    let redirect = settings.https_redirect == Some(true);
    if !is_tls {
        let plaintext_http = matches!(
            protocol,
            GatewayProtocol::Http | GatewayProtocol::Http2 | GatewayProtocol::Grpc
        );
        if redirect && !plaintext_http {
            context.warn(origin.unsupported(
                format!("{path}.httpsRedirect"),
                "httpsRedirect applies to plaintext HTTP servers only; ignored",
            ));
        }
        if settings.mode.is_some() || has_certificates(settings) {
            context.warn(origin.unsupported(
                format!("{path}.mode"),
                format!(
                    "a {} server is plaintext: its TLS mode and certificates are ignored",
                    protocol.as_str()
                ),
            ));
        }
        return Some((None, redirect && plaintext_http));
    }
    if redirect {
        context.warn(origin.unsupported(
            format!("{path}.httpsRedirect"),
            "httpsRedirect applies to plaintext HTTP servers only; ignored",
        ));
    }
    let mode = match settings.mode.unwrap_or_default() {
        CrdMode::Passthrough => ServerTlsMode::Passthrough,
        CrdMode::Simple => ServerTlsMode::Simple,
        CrdMode::Mutual => ServerTlsMode::Mutual,
        CrdMode::IstioMutual => ServerTlsMode::IstioMutual,
        CrdMode::OptionalMutual => ServerTlsMode::OptionalMutual,
        CrdMode::AutoPassthrough => ServerTlsMode::AutoPassthrough,
    };
    report_ignored(context, origin, &path, settings);
    let credential = if mode.needs_credential() {
        Some(credential(context, origin, &path, settings, mode)?)
    } else {
        if has_certificates(settings) {
            context.warn(origin.unsupported(
                format!("{path}.credentialName"),
                format!(
                    "mode {} uses no server certificate from the Gateway; ignored",
                    mode.as_str()
                ),
            ));
        }
        None
    };
    let version = |protocol: Option<TlsProtocol>| {
        protocol.map(|protocol| match protocol {
            TlsProtocol::TlsAuto => TlsVersion::Auto,
            TlsProtocol::Tlsv1_0 => TlsVersion::V1_0,
            TlsProtocol::Tlsv1_1 => TlsVersion::V1_1,
            TlsProtocol::Tlsv1_2 => TlsVersion::V1_2,
            TlsProtocol::Tlsv1_3 => TlsVersion::V1_3,
        })
    };
    Some((
        Some(ServerTls {
            mode,
            credential,
            subject_alt_names: settings.subject_alt_names.clone(),
            min_protocol_version: version(settings.min_protocol_version),
            max_protocol_version: version(settings.max_protocol_version),
            cipher_suites: settings.cipher_suites.clone(),
        }),
        false,
    ))
}

fn has_certificates(settings: &ServerTlsSettings) -> bool {
    settings.credential_name.is_some()
        || !settings.credential_names.is_empty()
        || settings.server_certificate.is_some()
        || settings.private_key.is_some()
        || !settings.tls_certificates.is_empty()
}

fn report_ignored(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    settings: &ServerTlsSettings,
) {
    for (present, field, reason) in [
        (
            settings.ca_crl.is_some(),
            "caCrl",
            "certificate revocation lists are not expressible; none is checked",
        ),
        (
            !settings.verify_certificate_spki.is_empty(),
            "verifyCertificateSpki",
            "pinning client certificates by SPKI is not expressible; not checked",
        ),
        (
            !settings.verify_certificate_hash.is_empty(),
            "verifyCertificateHash",
            "pinning client certificates by hash is not expressible; not checked",
        ),
        (
            settings.credential_names.len() > 1,
            "credentialNames",
            "only one certificate per server is expressible; the first is used",
        ),
        (
            !settings.tls_certificates.is_empty(),
            "tlsCertificates",
            "several certificate files per server are not expressible; ignored (use \
             serverCertificate/privateKey or credentialName)",
        ),
    ] {
        if present {
            context.warn(origin.unsupported(format!("{path}.{field}"), reason));
        }
    }
}

/// The credential of a `SIMPLE`, `MUTUAL` or `OPTIONAL_MUTUAL` server: the Secret named by
/// `credentialName` (or the first `credentialNames`) in the proxy's namespace, else the files.
/// The client CA (mutual modes) comes from `caCertCredentialName`, else the credential Secret,
/// else the Secret `<credentialName>-cacert`, as Istio's SDS looks it up.
fn credential(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    settings: &ServerTlsSettings,
    mode: ServerTlsMode,
) -> Option<TlsCredential> {
    let name = settings
        .credential_name
        .as_deref()
        .or(settings.credential_names.first().map(String::as_str));
    let Some(name) = name else {
        return files(context, origin, path, settings, mode);
    };
    let namespace = context.target.namespace.clone();
    let view = context.view;
    let missing = |context: &mut Context<'_>, field: &str, what: String| {
        context.warn(origin.unsupported(
            format!("{path}.{field}"),
            format!("{what}; the server is left out (Istio's listener would not become ready)"),
        ));
    };
    // Istio's SDS lookup, shared with DestinationRule credentials (`view::secrets`).
    let found = view.credential(&namespace, name);
    if !found.found {
        missing(
            context,
            "credentialName",
            format!("Secret {namespace}/{name} not found in the gateway proxy's namespace"),
        );
        return None;
    }
    let (Some(server_certificate), Some(private_key)) =
        (found.certificate_chain, found.private_key)
    else {
        missing(
            context,
            "credentialName",
            format!(
                "Secret {namespace}/{name} lacks a certificate and key (keys tls.crt/tls.key or \
                 cert/key)"
            ),
        );
        return None;
    };
    let ca_certificates = if mode.needs_client_ca() {
        // `caCertCredentialName` names the CA's Secret itself; else the credential's own CA,
        // else `<credentialName>-cacert` (both in `found`).
        let found = match settings.ca_cert_credential_name.as_deref() {
            Some(ca_name) => view
                .secret(&namespace, ca_name)
                .and_then(|s| s.text(&CA_KEYS)),
            None => found.ca_certificates,
        };
        if found.is_none() {
            missing(
                context,
                "credentialName",
                format!(
                    "mode {} needs a client CA: key ca.crt or cacert in Secret {namespace}/{name} \
                     or in Secret {namespace}/{name}{CA_SECRET_SUFFIX} (or caCertCredentialName)",
                    mode.as_str()
                ),
            );
            return None;
        }
        found
    } else {
        None
    };
    Some(TlsCredential::Inline {
        credential_name: format!("{namespace}/{name}"),
        server_certificate,
        private_key: PrivateKeyPem::new(private_key),
        ca_certificates,
    })
}

fn files(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    settings: &ServerTlsSettings,
    mode: ServerTlsMode,
) -> Option<TlsCredential> {
    let present = |field: &Option<String>| field.clone().filter(|text| !text.trim().is_empty());
    let (Some(server_certificate), Some(private_key)) = (
        present(&settings.server_certificate),
        present(&settings.private_key),
    ) else {
        context.warn(origin.unsupported(
            format!("{path}.mode"),
            format!(
                "mode {} needs credentialName or serverCertificate and privateKey (Istio rejects \
                 it); the server is left out",
                mode.as_str()
            ),
        ));
        return None;
    };
    let ca_certificates = present(&settings.ca_certificates).filter(|_| mode.needs_client_ca());
    if mode.needs_client_ca() && ca_certificates.is_none() {
        context.warn(origin.unsupported(
            format!("{path}.caCertificates"),
            format!(
                "mode {} needs caCertificates to verify clients (Istio rejects it); the server \
                 is left out",
                mode.as_str()
            ),
        ));
        return None;
    }
    Some(TlsCredential::Files {
        server_certificate,
        private_key,
        ca_certificates,
    })
}
