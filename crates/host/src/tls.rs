//! TLS for the host's own connections out (PostgreSQL, Redis): rustls with ring (the
//! provider reqwest already brings), certificates always verified — against a CA file
//! the operator names, else the public roots (webpki-roots).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A client configuration trusting the certificates in `ca_file` (PEM), or the public
/// roots when none is named.
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading CA certificates from {}", path.display()))?
            {
                roots
                    .add(cert.with_context(|| format!("a certificate in {}", path.display()))?)
                    .with_context(|| format!("a CA certificate in {}", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("{} holds no certificate", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// A PEM file's bytes (what the Redis client takes as its root certificates).
pub fn read_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
