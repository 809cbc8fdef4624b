//! Remote management over TCP: TLS with rustls (ring), Docker's modes and keys, client roles
//! from certificates, and `berth tls` to make the certificates.
//!
//! - `tls`: the daemon proves who it is; clients are anonymous and get the viewer role.
//! - `tlsverify`: a client must present a certificate signed by the CA (`tlscacert`); its
//!   role comes from the certificate (see [`roles`]).
//!
//! Plain TCP is refused unless `insecure-plain-tcp` is set, and then only on loopback.

pub mod certs;
pub mod roles;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the daemon's certificates are unless configured: `ca.pem`, `cert.pem`, `key.pem`.
pub const DEFAULT_DIR: &str = "/etc/berth/tls";

#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// Require and verify client certificates (`tlsverify`).
    pub verify: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Revoked client certificates (`tlscrl`, PEM), as `berth tls revoke` writes them.
    pub crl: Option<PathBuf>,
    /// Where roles come from and what they grant (`tls-role-field`, `tls-operator-exec`).
    pub policy: roles::Policy,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificates in {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// Refuses a certificate outside its validity period, with the reason.
fn check_validity(cert: &CertificateDer<'_>, what: &str) -> Result<()> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| anyhow::anyhow!("{what}: not an X.509 certificate: {e}"))?;
    let v = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < v.not_before {
        bail!("{what} is not valid yet (not before {})", v.not_before);
    }
    if now > v.not_after {
        bail!("{what} expired on {}", v.not_after);
    }
    Ok(())
}

impl TlsConfig {
    /// The rustls server configuration: TLS 1.2 and 1.3 with the ring provider, our chain,
    /// and (with `verify`) client certificates checked against the CA.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let chain = read_certs(&self.cert)?;
        check_validity(&chain[0], &format!("the server certificate {}", self.cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(&self.key).with_context(|| format!("reading the key {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS versions")?;
        let builder = if self.verify {
            let mut roots = rustls::RootCertStore::empty();
            for ca in read_certs(&self.ca)? {
                roots.add(ca).with_context(|| format!("the CA certificate in {}", self.ca.display()))?;
            }
            let mut crls = Vec::new();
            if let Some(path) = &self.crl {
                for c in rustls::pki_types::CertificateRevocationListDer::pem_file_iter(path)
                    .with_context(|| format!("reading the CRL {}", path.display()))?
                {
                    crls.push(c.with_context(|| format!("parsing the CRL {}", path.display()))?);
                }
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls)
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key).context("the server certificate and key do not go together")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
