//! Registry credentials of the CLI user, encrypted at rest as the openEuler engine keeps
//! them: `config.json` (mode 0600) holds, per registry, `user:password` sealed with
//! AES-256-GCM (ring), the registry's name as associated data so an entry cannot be moved to
//! another registry; the 256-bit key is a file of its own, `aeskey` (mode 0600), beside it.
//! A copied or leaked config is useless without the key; a deleted key makes every stored
//! login unreadable, which the CLI says plainly ("log in again") instead of failing on bytes.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use std::path::PathBuf;

const HUB: &str = "docker.io";
const KEY_FILE: &str = "aeskey";
const KEY_LEN: usize = 32;

fn dir() -> Result<PathBuf> {
    let home =
        std::env::var_os("BERTH_CONFIG").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".berth")));
    home.context("neither BERTH_CONFIG nor HOME is set")
}

/// The client config and its key file, in one directory.
struct Store {
    dir: PathBuf,
}

impl Store {
    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    fn load(&self) -> Result<Value> {
        match std::fs::read(self.config_path()) {
            Ok(data) => serde_json::from_slice(&data).with_context(|| format!("reading {}", self.config_path().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({"auths": {}})),
            Err(e) => Err(e.into()),
        }
    }

    fn save(&self, v: &Value) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        berth_images::durable::write_file_mode(&self.config_path(), &serde_json::to_vec_pretty(v)?, 0o600)
    }

    /// The key, if its file is there and whole.
    fn key(&self) -> Result<Option<LessSafeKey>> {
        let bytes = match std::fs::read(self.key_path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.key_path().display())),
        };
        if bytes.len() != KEY_LEN {
            bail!("the key file {} is damaged ({} bytes, not {KEY_LEN})", self.key_path().display(), bytes.len());
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| anyhow!("the key file {} is not an AES-256 key", self.key_path().display()))?;
        Ok(Some(LessSafeKey::new(key)))
    }

    /// The key, made when there is none. A new key cannot open what an old one sealed:
    /// those entries are dropped from `v`.
    fn key_or_new(&self, v: &mut Value) -> Result<LessSafeKey> {
        if let Some(k) = self.key()? {
            return Ok(k);
        }
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow!("no randomness for a new key"))?;
        std::fs::create_dir_all(&self.dir)?;
        berth_images::durable::write_file_mode(&self.key_path(), &bytes, 0o600)?;
        if let Some(auths) = v["auths"].as_object_mut() {
            auths.retain(|_, e| e.get("sealed").is_none());
        }
        Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes make an AES-256 key")))
    }
}

fn store_here() -> Result<Store> {
    Ok(Store { dir: dir()? })
}

/// `user:password` sealed for `server`: base64 of nonce + ciphertext + tag.
fn seal(key: &LessSafeKey, server: &str, secret: &str) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).map_err(|_| anyhow!("no randomness for a nonce"))?;
    let mut data = secret.as_bytes().to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(server.as_bytes()), &mut data)
        .map_err(|_| anyhow!("encrypting the credentials for {server}"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

fn open(key: &LessSafeKey, server: &str, sealed: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(sealed).ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let mut data = rest.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key.open_in_place(nonce, Aad::from(server.as_bytes()), &mut data).ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// The key a registry is stored under.
pub fn server_key(server: Option<&str>) -> String {
    match server.map(|s| s.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/')) {
        None | Some("") | Some("index.docker.io") | Some("registry-1.docker.io") => HUB.to_string(),
        Some(s) => s.to_string(),
    }
}

fn store_in(s: &Store, server: &str, username: &str, password: &str) -> Result<()> {
    let mut v = s.load()?;
    let key = s.key_or_new(&mut v)?;
    v["auths"][server] = json!({ "sealed": seal(&key, server, &format!("{username}:{password}"))? });
    s.save(&v)
}

pub fn store(server: &str, username: &str, password: &str) -> Result<()> {
    store_in(&store_here()?, server, username, password)
}

pub fn forget(server: &str) -> Result<bool> {
    let s = store_here()?;
    let mut v = s.load()?;
    let removed = v["auths"].as_object_mut().and_then(|m| m.remove(server)).is_some();
    s.save(&v)?;
    Ok(removed)
}

/// The stored `(user, password)` for `server`: `None` when not logged in there; an error
/// that says to log in again when the entry cannot be opened.
fn lookup(s: &Store, server: &str) -> Result<Option<(String, String)>> {
    let v = s.load()?;
    let Some(sealed) = v["auths"][server]["sealed"].as_str() else { return Ok(None) };
    let again = |why: String| anyhow!("the stored login for {server} cannot be read: {why}; log in again (berth login {server})");
    let key = s.key()?.ok_or_else(|| again(format!("its key file {} is missing", s.key_path().display())))?;
    let plain = open(&key, server, sealed).ok_or_else(|| again(format!("it does not open with the key in {}", s.key_path().display())))?;
    let (u, p) = plain.split_once(':').ok_or_else(|| again("it holds no user:password".into()))?;
    Ok(Some((u.to_string(), p.to_string())))
}

/// The `X-Registry-Auth` header value for the registry of `image`, if logged in there.
pub fn header_for(image: &str) -> Result<Option<String>> {
    let Ok(r) = image.parse::<berth_images::Reference>() else { return Ok(None) };
    let repo = r.repository();
    let Some(domain) = repo.split('/').next() else { return Ok(None) };
    Ok(lookup(&store_here()?, domain)?.map(|(u, p)| {
        let body = json!({"username": u, "password": p, "serveraddress": domain}).to_string();
        base64::engine::general_purpose::URL_SAFE.encode(body)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn store(tag: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("berth-cred-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Store { dir }
    }

    #[test]
    fn passwords_are_sealed_with_a_separate_key() {
        let s = store("seal");
        store_in(&s, "reg.example:5000", "edge", "s3cret").unwrap();
        let config = std::fs::read_to_string(s.config_path()).unwrap();
        assert!(!config.contains("s3cret") && !config.contains("edge"), "plain credentials on disk: {config}");
        let b64 = base64::engine::general_purpose::STANDARD.encode("edge:s3cret");
        assert!(!config.contains(&b64), "Docker's plain base64 on disk");
        for p in [s.config_path(), s.key_path()] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
        assert_eq!(lookup(&s, "reg.example:5000").unwrap(), Some(("edge".into(), "s3cret".into())));
        assert_eq!(lookup(&s, "other").unwrap(), None);
        std::fs::remove_dir_all(&s.dir).unwrap();
    }

    #[test]
    fn an_entry_moved_or_changed_does_not_open() {
        let s = store("move");
        store_in(&s, "a.example", "u", "p").unwrap();
        let mut v = s.load().unwrap();
        let sealed = v["auths"]["a.example"].clone();
        v["auths"]["b.example"] = sealed;
        s.save(&v).unwrap();
        let err = lookup(&s, "b.example").unwrap_err().to_string();
        assert!(err.contains("does not open") && err.contains("log in again"), "{err}");
        std::fs::remove_dir_all(&s.dir).unwrap();
    }

    #[test]
    fn a_deleted_key_asks_for_a_new_login() {
        let s = store("nokey");
        store_in(&s, "reg.example", "u", "p").unwrap();
        std::fs::remove_file(s.key_path()).unwrap();
        let err = lookup(&s, "reg.example").unwrap_err().to_string();
        assert!(err.contains("key file") && err.contains("is missing") && err.contains("log in again (berth login reg.example)"), "{err}");
        // A new login makes a new key; what the old key sealed is dropped, the new entry opens.
        store_in(&s, "other.example", "u2", "p2").unwrap();
        assert_eq!(lookup(&s, "reg.example").unwrap(), None);
        assert_eq!(lookup(&s, "other.example").unwrap(), Some(("u2".into(), "p2".into())));
        std::fs::remove_dir_all(&s.dir).unwrap();
    }
}
