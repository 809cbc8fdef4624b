//! `berth tls init` and `berth tls client`: a device's own CA, its server certificate, and
//! client certificates that carry a role. ECDSA P-256 keys; files in Docker's layout
//! (`ca.pem`, `cert.pem`, `key.pem`), keys mode 0600, every file written durably.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::net::IpAddr;
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// How long what `init` makes is valid: a device is flashed once and runs for years.
const CA_DAYS: i64 = 20 * 365;
const DEFAULT_DAYS: i64 = 10 * 365;
const CA_KEY: &str = "ca-key.pem";

/// A certificate and its key, PEM.
pub struct Issued {
    pub cert: String,
    pub key: String,
}

fn validity(p: &mut CertificateParams, not_before: OffsetDateTime, days: i64) {
    p.not_before = not_before;
    p.not_after = not_before + Duration::days(days);
}

fn name(cn: &str, ou: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "berth");
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn
}

/// A new CA: (certificate, key).
pub fn new_ca(cn: &str) -> Result<(Certificate, KeyPair)> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn, None);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut p, OffsetDateTime::now_utc() - Duration::hours(1), CA_DAYS);
    let cert = p.self_signed(&key).context("signing the CA certificate")?;
    Ok((cert, key))
}

/// The CA kept in `dir` (`ca.pem`, `ca-key.pem`), ready to sign.
pub fn load_ca(dir: &Path) -> Result<(Certificate, KeyPair)> {
    let key_pem = std::fs::read_to_string(dir.join(CA_KEY)).with_context(|| format!("reading {}", dir.join(CA_KEY).display()))?;
    let key = KeyPair::from_pem(&key_pem).context("parsing the CA key")?;
    let cert_pem = std::fs::read_to_string(dir.join("ca.pem")).with_context(|| format!("reading {}", dir.join("ca.pem").display()))?;
    // rcgen signs with a certificate object: rebuilt from the stored one (same name and key).
    let params = CertificateParams::from_ca_cert_pem(&cert_pem).context("parsing the CA certificate")?;
    let cert = params.self_signed(&key).context("loading the CA")?;
    Ok((cert, key))
}

/// A server certificate for `hosts` (DNS names) and `ips`.
pub fn server(ca: &(Certificate, KeyPair), hosts: &[String], ips: &[IpAddr], days: i64) -> Result<Issued> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(hosts.to_vec()).context("server names")?;
    p.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    p.distinguished_name = name(hosts.first().map(String::as_str).unwrap_or("berth"), None);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut p, OffsetDateTime::now_utc() - Duration::hours(1), days);
    let cert = p.signed_by(&key, &ca.0, &ca.1).context("signing the server certificate")?;
    Ok(Issued { cert: cert.pem(), key: key.serialize_pem() })
}

/// A client certificate for `cn` with `role` as its OU, valid from `not_before` for `days`.
pub fn client(ca: &(Certificate, KeyPair), cn: &str, role: &str, not_before: OffsetDateTime, days: i64) -> Result<Issued> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn, Some(role));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut p, not_before, days);
    let cert = p.signed_by(&key, &ca.0, &ca.1).context("signing the client certificate")?;
    Ok(Issued { cert: cert.pem(), key: key.serialize_pem() })
}

fn write(dir: &Path, file: &str, text: &str, mode: u32) -> Result<()> {
    berth_images::durable::write_file_mode(&dir.join(file), text.as_bytes(), mode)
}

/// `berth tls init`: a CA and a server certificate in `dir` (made 0700). Refuses to replace an
/// existing CA: every client certificate hangs on it.
pub fn init(dir: &Path, hosts: &[String], ips: &[IpAddr]) -> Result<()> {
    if dir.join("ca.pem").exists() {
        anyhow::bail!("{} already holds a CA (ca.pem): remove it first to start over", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let ca = new_ca("berth device CA")?;
    let srv = server(&ca, hosts, ips, DEFAULT_DAYS)?;
    write(dir, CA_KEY, &ca.1.serialize_pem(), 0o600)?;
    write(dir, "ca.pem", &ca.0.pem(), 0o644)?;
    write(dir, "key.pem", &srv.key, 0o600)?;
    write(dir, "cert.pem", &srv.cert, 0o644)?;
    Ok(())
}

/// `berth tls client`: a client certificate signed by the CA in `ca_dir`, written with the
/// CA certificate to `out` in the layout `DOCKER_CERT_PATH` expects.
pub fn issue_client(ca_dir: &Path, out: &Path, cn: &str, role: &str, days: i64) -> Result<()> {
    anyhow::ensure!(super::roles::Role::parse(role).is_some(), "unknown role {role:?} (admin, operator, viewer)");
    let ca = load_ca(ca_dir)?;
    let c = client(&ca, cn, role, OffsetDateTime::now_utc() - Duration::hours(1), days)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // The CA file itself: the object rcgen signs with is rebuilt from it and differs in
    // details (serial, extensions) that stricter verifiers (OpenSSL) do not accept.
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).with_context(|| format!("reading {}", ca_dir.join("ca.pem").display()))?;
    write(out, "ca.pem", &ca_pem, 0o644)?;
    write(out, "key.pem", &c.key, 0o600)?;
    write(out, "cert.pem", &c.cert, 0o644)?;
    Ok(())
}

/// The serials revoked so far (hex, one a line), next to the CA.
const REVOKED: &str = "revoked.txt";

/// `berth tls revoke`: adds the certificate's serial to the CA's revoked list and writes
/// `crl.pem` (signed by the CA) listing them all. The daemon reads it at start and on SIGHUP
/// (`tlscrl`).
pub fn revoke(ca_dir: &Path, cert: &Path) -> Result<()> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert).with_context(|| format!("reading {}", cert.display()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    let serial = hex::encode(parsed.raw_serial());
    let mut list = std::fs::read_to_string(ca_dir.join(REVOKED)).unwrap_or_default();
    if !list.lines().any(|l| l == serial) {
        list.push_str(&serial);
        list.push('\n');
    }
    let ca = load_ca(ca_dir)?;
    let now = OffsetDateTime::now_utc();
    let revoked = list
        .lines()
        .map(|s| {
            Ok(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&hex::decode(s).with_context(|| format!("serial {s:?} in {REVOKED}"))?),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(CA_DAYS),
        crl_number: rcgen::SerialNumber::from(now.unix_timestamp() as u64),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca.0, &ca.1)
    .context("signing the CRL")?;
    write(ca_dir, REVOKED, &list, 0o644)?;
    write(ca_dir, "crl.pem", &crl.pem().context("encoding the CRL")?, 0o644)?;
    Ok(())
}

/// `berth tls ...`.
pub fn run(command: crate::cli::TlsCommand) -> Result<()> {
    use crate::cli::TlsCommand;
    match command {
        TlsCommand::Init { dir, mut hostnames, mut ips } => {
            if hostnames.is_empty() {
                hostnames.push("localhost".into());
                if let Ok(h) = nix::unistd::gethostname() {
                    hostnames.push(h.to_string_lossy().into_owned());
                }
            }
            if ips.is_empty() {
                ips.push(IpAddr::from([127, 0, 0, 1]));
            }
            init(&dir, &hostnames, &ips)?;
            println!("CA and server certificate written to {} (for {} and {ips:?})", dir.display(), hostnames.join(", "));
        }
        TlsCommand::Revoke { ca_dir, cert } => {
            revoke(&ca_dir, &cert)?;
            println!("revoked {}; send the daemon SIGHUP to apply {}", cert.display(), ca_dir.join("crl.pem").display());
        }
        TlsCommand::Client { ca_dir, out, name, role, days } => {
            issue_client(&ca_dir, &out, &name, &role, days.unwrap_or(DEFAULT_DAYS))?;
            println!("client certificate for {name} ({role}) written to {}", out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_client_certificates_carry_their_role() {
        let dir = std::env::temp_dir().join(format!("berth-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        init(&dir, &["device.local".into()], &["127.0.0.1".parse().unwrap()]).unwrap();
        assert!(init(&dir, &[], &[]).is_err(), "a second init replaced the CA");
        issue_client(&dir, &dir.join("viewer"), "alice", "viewer", 30).unwrap();
        let pem = std::fs::read(dir.join("viewer/cert.pem")).unwrap();
        let der =
            rustls::pki_types::pem::PemObject::from_pem_slice(&pem).map(|c: rustls::pki_types::CertificateDer<'_>| c.to_vec()).unwrap();
        let (role, subject) = super::super::roles::of_certificate(&der, Default::default());
        assert_eq!(role, super::super::roles::Role::Viewer);
        assert!(subject.contains("CN=alice"), "{subject}");
        assert!(issue_client(&dir, &dir.join("x"), "bob", "root", 30).is_err());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("ca-key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
        // The server side accepts what init made.
        let mut cfg = super::super::TlsConfig {
            verify: true,
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            crl: None,
            policy: Default::default(),
        };
        cfg.server_config().unwrap();
        // Revoking writes a CRL the server takes, listing every serial revoked so far.
        revoke(&dir, &dir.join("viewer/cert.pem")).unwrap();
        issue_client(&dir, &dir.join("other"), "carol", "admin", 30).unwrap();
        revoke(&dir, &dir.join("other/cert.pem")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(REVOKED)).unwrap().lines().count(), 2);
        cfg.crl = Some(dir.join("crl.pem"));
        cfg.server_config().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
