//! A throw-away certificate authority and a server certificate it signed, for
//! `127.0.0.1` and `localhost`: what TLS-enabled test servers present, and the CA file
//! their clients verify them with.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

#[derive(Debug)]
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn generate() -> TestCerts {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_cert =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params")
                .signed_by(&server_key, &issuer)
                .expect("server certificate");
        let certs = TestCerts { dir };
        std::fs::write(certs.ca(), ca_cert.pem()).expect("write CA");
        std::fs::write(certs.cert(), server_cert.pem()).expect("write certificate");
        write_private(&certs.key(), &server_key.serialize_pem());
        certs
    }

    /// The CA certificate (PEM) clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM, mode 0600).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// Servers refuse private keys others can read.
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}
