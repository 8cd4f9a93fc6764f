//! TLS for the updater API (`--tls-cert FILE --tls-key FILE`): a rustls server configuration (ring
//! provider) whose certificate is reloaded when either file changes.
//!
//! Owns: reading and checking the PEM pair (chain, PKCS#1/PKCS#8/SEC1 key, key belongs to the
//! certificate) and swapping it in. A new pair that does not load (half-written rotation, key
//! and certificate out of step, garbage) is logged and the previous pair keeps serving; a broken
//! pair at start is an error. The files are `stat`ed on each handshake and loaded again when they
//! change, and at least every [`RECHECK`](super::auth::RECHECK) (2 s). Must not: log key material,
//! or accept connections (`http` does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::Error;
use super::auth::Reloading;
use crate::kube::tls::{certificates, provider};

/// The server configuration for `cert` and `key`; Err when the pair does not load now.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let paths = vec![cert.to_path_buf(), key.to_path_buf()];
    let pair = |p: &[PathBuf]| load_pair(&p[0], &p[1]);
    let resolver = Reloading::new("TLS certificate", paths, pair)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(cert, format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(Arc::new(config))
}

/// Reads and checks one pair; the error names the file and the problem, never key bytes.
fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, Error> {
    let cert_pem = std::fs::read(cert).map_err(|e| tls_error(cert, e))?;
    let key_pem = std::fs::read(key).map_err(|e| tls_error(key, e))?;
    let chain = certificates(&cert_pem).map_err(|e| tls_error(cert, e))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| tls_error(key, format!("no usable private key in PEM ({e})")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| tls_error(key, e))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(e) => {
            let both = format!("{} and {}", cert.display(), key.display());
            return Err(tls_error(
                Path::new(&both),
                format!("do not belong together ({e})"),
            ));
        }
    }
    Ok(Arc::new(certified))
}

fn tls_error(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(detail.to_string()))
}

/// Serves the current pair to every handshake.
impl ResolvesServerCert for Reloading<Arc<CertifiedKey>> {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::testutil::Pki;

    #[test]
    fn a_pair_loads_and_broken_pairs_are_named_without_key_bytes() {
        let dir = std::env::temp_dir().join(format!("paperlb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key, other) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("o.pem"));
        let pki = Pki::new("tls-unit");
        let k = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&cert, pki.issue(&["127.0.0.1"], &k)).unwrap();
        std::fs::write(&key, k.serialize_pem()).unwrap();
        assert!(server_config(&cert, &key).is_ok());

        let k2 = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&other, k2.serialize_pem()).unwrap();
        let e = load_pair(&cert, &other).unwrap_err().to_string();
        assert!(e.contains("do not belong together"), "{e}");

        std::fs::write(
            &other,
            "-----BEGIN PRIVATE KEY-----\nU0VDUkVU\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load_pair(&cert, &other).unwrap_err().to_string();
        assert!(e.contains("o.pem") && !e.contains("U0VDUkVU"), "{e}");
        std::fs::write(&other, "not a certificate").unwrap();
        let e = load_pair(&other, &key).unwrap_err().to_string();
        assert!(e.contains("o.pem"), "{e}");
        assert!(server_config(&dir.join("missing.pem"), &key).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
