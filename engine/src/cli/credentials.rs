//! Registry credentials of the CLI user: `~/.berth/config.json`, mode 0600, Docker's
//! `{"auths": {"host": {"auth": base64("user:password")}}}` shape. Encryption at rest comes
//! with the login work of the build issue.

use anyhow::{Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::path::PathBuf;

const HUB: &str = "docker.io";

fn path() -> Result<PathBuf> {
    let home =
        std::env::var_os("BERTH_CONFIG").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".berth")));
    Ok(home.context("neither BERTH_CONFIG nor HOME is set")?.join("config.json"))
}

fn load() -> Result<Value> {
    match std::fs::read(path()?) {
        Ok(data) => serde_json::from_slice(&data).context("reading the berth client config"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({"auths": {}})),
        Err(e) => Err(e.into()),
    }
}

fn save(v: &Value) -> Result<()> {
    let p = path()?;
    std::fs::create_dir_all(p.parent().unwrap())?;
    berth_images::durable::write_file(&p, &serde_json::to_vec_pretty(v)?)
}

/// The key a registry is stored under.
pub fn server_key(server: Option<&str>) -> String {
    match server.map(|s| s.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/')) {
        None | Some("") | Some("index.docker.io") | Some("registry-1.docker.io") => HUB.to_string(),
        Some(s) => s.to_string(),
    }
}

pub fn store(server: &str, username: &str, password: &str) -> Result<()> {
    let mut v = load()?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    v["auths"][server] = json!({"auth": auth});
    save(&v)
}

pub fn forget(server: &str) -> Result<bool> {
    let mut v = load()?;
    let removed = v["auths"].as_object_mut().and_then(|m| m.remove(server)).is_some();
    save(&v)?;
    Ok(removed)
}

/// The `X-Registry-Auth` header value for the registry of `image`, if logged in there.
pub fn header_for(image: &str) -> Option<String> {
    let r: berth_images::Reference = image.parse().ok()?;
    let repo = r.repository();
    let domain = repo.split('/').next()?;
    let v = load().ok()?;
    let auth = v["auths"][domain]["auth"].as_str()?;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(auth).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    let body = json!({"username": u, "password": p, "serveraddress": domain}).to_string();
    Some(base64::engine::general_purpose::URL_SAFE.encode(body))
}
