//! Bundle signing keys: ed25519 through ring (already berth's TLS crypto, so no second
//! implementation in the binary).
//!
//! Files, as `berth bundle keygen --out DIR` writes them:
//! - `DIR/bundle.key`: the private key, PKCS#8 in PEM (`-----BEGIN PRIVATE KEY-----`), mode 0600.
//!   It stays on the build machine.
//! - `DIR/bundle.pub`: the public key as a trust file, ready to copy into a device's
//!   `/etc/berth/trust/`:
//!   ```toml
//!   key = "ed25519:<base64 of the 32-byte public key>"
//!   boards = ["rpi4"]          # optional: the only boards this key may sign for
//!   allow_downgrade = false    # optional: may this key's bundles go below the installed version
//!   ```

use anyhow::{bail, ensure, Context, Result};
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use serde::Deserialize;
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub const PRIVATE_FILE: &str = "bundle.key";
pub const PUBLIC_FILE: &str = "bundle.pub";

/// A key's short name in signatures and messages: the first 16 hex digits of the sha256 of
/// its public key.
pub fn key_id(public: &[u8]) -> String {
    crate::Digest::of(public).hex()[..16].to_string()
}

pub struct KeyPair {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl KeyPair {
    pub fn generate() -> Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("generating an ed25519 key failed"))?;
        Self::from_pkcs8(doc.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| anyhow::anyhow!("not an ed25519 PKCS#8 key: {e}"))?;
        Ok(KeyPair { pair, pkcs8: pkcs8.to_vec() })
    }

    /// Reads `DIR/bundle.key` (or the file itself when `path` is one).
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() { path.join(PRIVATE_FILE) } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading the signing key {}", file.display()))?;
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        ensure!(text.contains("-----BEGIN PRIVATE KEY-----"), "{} is not a PEM private key", file.display());
        let der = B64.decode(body.trim()).with_context(|| format!("{} is not valid PEM", file.display()))?;
        Self::from_pkcs8(&der).with_context(|| format!("reading {}", file.display()))
    }

    /// Writes `bundle.key` (0600) and `bundle.pub` into `dir`; refuses to overwrite a key.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let private = dir.join(PRIVATE_FILE);
        ensure!(!private.exists(), "{} exists: not overwriting a signing key", private.display());
        let wrapped: Vec<String> = B64.encode(&self.pkcs8).as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", wrapped.join("\n"));
        crate::durable::write_file_mode(&private, pem.as_bytes(), 0o600)?;
        let public = format!(
            "# berth bundle signing key {id}: copy into a device's /etc/berth/trust/\nkey = \"ed25519:{}\"\n# boards = [\"rpi4\"]\n# allow_downgrade = false\n",
            B64.encode(self.public()),
            id = self.id()
        );
        crate::durable::write_file(&dir.join(PUBLIC_FILE), public.as_bytes())
    }

    pub fn public(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn id(&self) -> String {
        key_id(self.public())
    }

    pub fn sign(&self, data: &[u8]) -> super::Signature {
        super::Signature { algorithm: "ed25519".into(), key: self.id(), signature: B64.encode(self.pair.sign(data).as_ref()) }
    }
}

/// A public key a device trusts, with what it may sign for.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// The trust file's name without `.pub`.
    pub name: String,
    pub id: String,
    pub public: Vec<u8>,
    pub boards: Vec<String>,
    pub allow_downgrade: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    key: String,
    #[serde(default)]
    boards: Vec<String>,
    #[serde(default)]
    allow_downgrade: bool,
}

impl TrustedKey {
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let f: TrustFile = toml::from_str(text).with_context(|| format!("trust file {name}.pub is not valid"))?;
        let Some(b64) = f.key.strip_prefix("ed25519:") else { bail!("trust file {name}.pub: key must be \"ed25519:<base64>\"") };
        let public = B64.decode(b64.trim()).with_context(|| format!("trust file {name}.pub: key is not base64"))?;
        ensure!(public.len() == 32, "trust file {name}.pub: an ed25519 public key has 32 bytes, not {}", public.len());
        Ok(TrustedKey { name: name.into(), id: key_id(&public), public, boards: f.boards, allow_downgrade: f.allow_downgrade })
    }

    /// Whether the key may sign for `board` (a key limited to boards signs for nothing on a
    /// device with no board name).
    pub fn allows_board(&self, board: Option<&str>) -> bool {
        self.boards.is_empty() || board.is_some_and(|b| self.boards.iter().any(|x| x == b))
    }
}

/// The keys a device trusts: every `*.pub` in its trust folder.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub dir: PathBuf,
    pub keys: Vec<TrustedKey>,
}

impl Trust {
    pub fn load(dir: &Path) -> Result<Self> {
        let mut keys = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Trust { dir: dir.into(), keys }),
            Err(e) => return Err(e).with_context(|| format!("reading the trust folder {}", dir.display())),
        };
        for entry in entries {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".pub")) else { continue };
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            keys.push(TrustedKey::parse(name, &text)?);
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Trust { dir: dir.into(), keys })
    }

    /// Checks `sig` over `data` with the trusted key it names.
    pub fn verify(&self, data: &[u8], sig: &super::Signature) -> Result<&TrustedKey> {
        ensure!(sig.algorithm == "ed25519", "signature algorithm {:?} is not supported (ed25519 only)", sig.algorithm);
        let Some(key) = self.keys.iter().find(|k| k.id == sig.key) else {
            bail!(
                "the bundle is signed by key {}, which this device does not trust (trusted: {} in {})",
                sig.key,
                self.describe(),
                self.dir.display()
            )
        };
        let raw = B64.decode(&sig.signature).context("the signature is not base64")?;
        UnparsedPublicKey::new(&ED25519, &key.public)
            .verify(data, &raw)
            .map_err(|_| anyhow::anyhow!("bad signature: bundle.json does not match the signature of key {} ({})", key.id, key.name))?;
        Ok(key)
    }

    fn describe(&self) -> String {
        if self.keys.is_empty() {
            return "no keys".into();
        }
        self.keys.iter().map(|k| format!("{} ({})", k.id, k.name)).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_key_signs_what_its_trust_file_verifies() {
        let dir = std::env::temp_dir().join(format!("berth-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let k = KeyPair::generate().unwrap();
        k.save(&dir).unwrap();
        assert!(k.save(&dir).is_err(), "a key is never overwritten");
        let again = KeyPair::load(&dir).unwrap();
        assert_eq!(again.id(), k.id());
        let trust_dir = dir.join("trust");
        std::fs::create_dir_all(&trust_dir).unwrap();
        std::fs::copy(dir.join(PUBLIC_FILE), trust_dir.join("vendor.pub")).unwrap();
        let trust = Trust::load(&trust_dir).unwrap();
        let sig = again.sign(b"manifest");
        assert_eq!(trust.verify(b"manifest", &sig).unwrap().name, "vendor");
        assert!(format!("{:#}", trust.verify(b"manifesT", &sig).unwrap_err()).contains("bad signature"));
        let other = KeyPair::generate().unwrap().sign(b"manifest");
        assert!(format!("{:#}", trust.verify(b"manifest", &other).unwrap_err()).contains("does not trust"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn board_limits() {
        let k = KeyPair::generate().unwrap();
        let text = format!("key = \"ed25519:{}\"\nboards = [\"rpi4\"]\n", B64.encode(k.public()));
        let t = TrustedKey::parse("v", &text).unwrap();
        assert!(t.allows_board(Some("rpi4")));
        assert!(!t.allows_board(Some("rpi5")));
        assert!(!t.allows_board(None));
        assert!(TrustedKey::parse("v", "key = \"rsa:abc\"").is_err());
    }
}
