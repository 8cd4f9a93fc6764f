//! TLS towards the API server: turns [`TlsSettings`] (plus an optional exec-provided client identity)
//! into a rustls `ClientConfig`, and picks the name the server certificate must be valid for.
//!
//! Owns: CA bundles, client certificates and keys (PKCS#1, PKCS#8, SEC1), `insecure-skip-tls-verify`,
//! `tls-server-name`, and turning handshake failures into an [`Error::Tls`] a person can act on.
//! Always uses the ring provider explicitly: never the process-wide default, which another crate could set.
//! Must not: open connections (the transport does), read files (config does), or log key material
//! (`TlsSettings` has no `Debug`).
//! `updater::client` borrows the ring provider, the CA parsing and the insecure verifier.

use std::fmt;
use std::sync::{Arc, Once};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, DigitallySignedStruct, InconsistentKeys, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::Error;

/// A client certificate chain and its private key, both PEM.
pub type CertAndKey = (Vec<u8>, Vec<u8>);

/// How to verify the server and present ourselves at the TLS layer. PEM bytes, already read from files.
/// No `Debug`: it holds the client key.
/// ```compile_fail
/// fn show(t: &paperlb::kube::tls::TlsSettings) -> String { format!("{t:?}") }
/// ```
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// CA bundle (one or more PEM certificates); None = the platform has none we use: an error for https.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify`.
    pub insecure: bool,
    /// `tls-server-name`: the name to send as SNI and verify the certificate against.
    pub server_name: Option<String>,
    /// Static client certificate chain and key (PEM), from `client-certificate(-data)` and
    /// `client-key(-data)`: one field, so a certificate never comes without its key.
    pub client_identity: Option<CertAndKey>,
}

/// The provider every config of ours uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The host part of a server URL (`https://[::1]:6443/x` → `::1`), without brackets or port.
pub fn host_of(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // userinfo never appears in kubeconfig servers, but a stray one must not become the host.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(inner) = authority.strip_prefix('[') {
        return inner.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// The name the server certificate is verified against (and sent as SNI when it is a DNS name):
/// `tls-server-name` when set, else the URL's host. An IP address becomes `ServerName::IpAddress`,
/// so certificates with IP SANs (kubeadm, k3s, kind: `127.0.0.1`) verify.
pub fn server_name(server: &str, settings: &TlsSettings) -> Result<ServerName<'static>, Error> {
    let name = settings
        .server_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| host_of(server));
    ServerName::try_from(name.to_string()).map_err(|e| Error::Tls {
        server: server.to_string(),
        detail: format!("{name:?} is not a valid DNS name or IP address to verify against: {e}"),
    })
}

/// Build the rustls configuration for `server` from its settings. `exec_identity` (certificate chain
/// and key PEM from an exec plugin) wins over a static client certificate.
pub fn client_config(
    server: &str,
    settings: &TlsSettings,
    exec_identity: Option<&CertAndKey>,
) -> Result<Arc<ClientConfig>, Error> {
    let tls_err = |detail: String| Error::Tls {
        server: server.to_string(),
        detail,
    };
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("TLS versions: {e}")))?;

    // `config` refuses a certificate authority together with insecure-skip-tls-verify, as client-go
    // does, so `insecure` comes alone.
    let builder = if settings.insecure {
        static WARNED: Once = Once::new();
        WARNED.call_once(|| {
            log::warn!(
                "insecure-skip-tls-verify is set: the certificate of {server} is not verified; \
                 anyone on the path can impersonate the API server"
            );
        });
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert::new(&provider)))
    } else {
        let Some(ca_pem) = settings.ca_pem.as_deref() else {
            return Err(tls_err(
                "no certificate authority configured (certificate-authority(-data)) and \
                 insecure-skip-tls-verify is not set: cannot verify the server"
                    .into(),
            ));
        };
        builder.with_root_certificates(root_store(ca_pem).map_err(|e| tls_err(e.to_string()))?)
    };

    let identity = match exec_identity {
        Some((c, k)) => Some((c, k, "exec plugin client certificate")),
        None => settings
            .client_identity
            .as_ref()
            .map(|(c, k)| (c, k, "client-certificate")),
    };
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem, what)) => {
            let certified =
                certified_key(what, cert_pem, key_pem).map_err(|e| tls_err(e.to_string()))?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
        }
    };
    Ok(Arc::new(config))
}

/// The chain of `cert_pem` (`what`) with the first key of `key_pem` (PKCS#1, PKCS#8 or SEC1),
/// checked to belong together; an error names the half at fault and holds no key bytes. `config`
/// and `auth` check a kubeconfig's or an exec plugin's pair with it as they read it.
pub(crate) fn certified_key(
    what: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, PemError> {
    let chain = certificates(cert_pem).map_err(|e| PemError(format!("{what}: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| PemError(format!("{what} key: no usable private key in PEM ({e})")))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| PemError(format!("{what} key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(PemError(format!(
                "{what} and key do not belong together (public keys differ)"
            )));
        }
        // webpki cannot parse every certificate Go's TLS stack takes: X.509 v1 certificates
        // (`openssl x509 -req` without extensions) are refused with UnsupportedCertVersion, so
        // they go out unchecked, as they would from a Go program.
        Err(e) => log::debug!("key consistency not checked: {e}"),
    }
    Ok(certified)
}

/// A PEM bundle, or a client certificate and key, we cannot use. The message says what is wrong
/// (for a pair, the half at fault), never the bytes. Callers only show it: no kinds to match on.
#[derive(Debug)]
pub struct PemError(String);

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PemError {}

/// Every certificate of a PEM bundle; an empty bundle or a broken block is an error.
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError(format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(PemError("no PEM certificate found".into()));
    }
    Ok(certs)
}

pub(crate) fn root_store(ca_pem: &[u8]) -> Result<RootCertStore, PemError> {
    let certs =
        certificates(ca_pem).map_err(|e| PemError(format!("certificate authority: {e}")))?;
    let mut roots = RootCertStore::empty();
    let total = certs.len();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(PemError(format!(
            "certificate authority: none of the {total} certificate(s) could be used as a \
             trust anchor"
        )));
    }
    if ignored > 0 {
        log::warn!(
            "certificate authority bundle: ignored {ignored} of {total} unusable certificate(s)"
        );
    }
    Ok(roots)
}

/// Describe a handshake failure in the user's terms; `name` is what we verified against.
pub fn describe_handshake_error(e: &rustls::Error, name: &str) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "certificate presented by the server is not trusted for {name}: it is not signed by the \
             configured certificate authority"
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => format!(
            "certificate presented by the server is not valid for {name} ({e}); set tls-server-name \
             if the server is reached under another name"
        ),
        rustls::Error::InvalidCertificate(_) => {
            format!("certificate presented by the server is not valid for {name}: {e}")
        }
        _ => format!("handshake with {name} failed: {e}"),
    }
}

/// `insecure-skip-tls-verify`: any certificate is accepted, but the handshake signatures are still
/// checked, so the peer must at least hold the key of the certificate it shows.
#[derive(Debug)]
pub(crate) struct AnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyServerCert {
    pub(crate) fn new(provider: &CryptoProvider) -> AnyServerCert {
        AnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_handles_ipv6_ports_and_paths() {
        assert_eq!(host_of("https://127.0.0.1:6443"), "127.0.0.1");
        assert_eq!(host_of("https://[::1]:6443/base"), "::1");
        assert_eq!(host_of("https://api.example.com"), "api.example.com");
        assert_eq!(host_of("https://api.example.com/"), "api.example.com");
    }

    #[test]
    fn server_name_is_ip_for_ip_hosts_and_override_wins() {
        let s = TlsSettings::default();
        assert!(matches!(
            server_name("https://127.0.0.1:6443", &s).unwrap(),
            ServerName::IpAddress(_)
        ));
        let s = TlsSettings {
            server_name: Some("kubernetes.default.svc".into()),
            ..Default::default()
        };
        assert!(matches!(
            server_name("https://127.0.0.1:6443", &s).unwrap(),
            ServerName::DnsName(_)
        ));
    }

    #[test]
    fn missing_ca_without_insecure_is_an_error_naming_the_server() {
        let e = client_config("https://10.0.0.1:6443", &TlsSettings::default(), None).unwrap_err();
        assert!(matches!(&e, Error::Tls { server, .. } if server == "https://10.0.0.1:6443"));
    }

    #[test]
    fn garbage_ca_is_an_error() {
        let s = TlsSettings {
            ca_pem: Some(b"not pem".to_vec()),
            ..Default::default()
        };
        let e = client_config("https://127.0.0.1:1", &s, None).unwrap_err();
        assert!(e.to_string().contains("certificate authority"), "{e}");
        let msg = |e: PemError| e.to_string();
        assert_eq!(
            msg(root_store(b"not pem").unwrap_err()),
            "certificate authority: no PEM certificate found"
        );
        assert_eq!(
            msg(certificates(b"not pem").unwrap_err()),
            "no PEM certificate found"
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n";
        assert!(
            msg(root_store(broken).unwrap_err())
                .starts_with("certificate authority: bad PEM certificate: "),
        );
        assert!(msg(certificates(broken).unwrap_err()).starts_with("bad PEM certificate: "));
    }

    #[test]
    fn kubeconfig_fixture_client_key_loads() {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubeconfig/");
        let read = |f: &str| std::fs::read(format!("{base}{f}")).unwrap();
        let s = TlsSettings {
            ca_pem: Some(read("ca.crt")),
            client_identity: Some((read("client.crt"), read("client.key"))),
            ..Default::default()
        };
        client_config("https://127.0.0.1:6443", &s, None).unwrap();
    }

    #[test]
    fn key_errors_do_not_echo_key_material() {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubeconfig/");
        let s = TlsSettings {
            ca_pem: Some(std::fs::read(format!("{base}ca.crt")).unwrap()),
            client_identity: Some((
                std::fs::read(format!("{base}client.crt")).unwrap(),
                b"-----BEGIN PRIVATE KEY-----\nU0VDUkVU\n-----END PRIVATE KEY-----\n".to_vec(),
            )),
            ..Default::default()
        };
        let e = client_config("https://127.0.0.1:6443", &s, None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("U0VDUkVU"), "{e}");
    }
}
