//! Registry logins as Docker clients send them: `X-Registry-Auth` (one login, for a pull or
//! push) and `X-Registry-Config` (every login the client has, for a build's pulls), both
//! base64url JSON; and the server names they use (`https://index.docker.io/v1/`).

use super::error::{ApiError, ApiResult};
use crate::images::transport::Credentials;
use base64::Engine;
use std::collections::BTreeMap;

/// A header's base64 (url-safe, padded or not, or standard) JSON, if the header is there.
fn json_header(headers: &hyper::HeaderMap, name: &str) -> ApiResult<Option<serde_json::Value>> {
    let Some(raw) = headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) else { return Ok(None) };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = b64
        .decode(raw.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .map_err(|_| ApiError::bad_request(format!("{name} is not base64")))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|_| ApiError::bad_request(format!("{name} is not JSON")))
}

/// `username` and `password`, or `auth` (base64 of `user:password`).
fn credentials(v: &serde_json::Value) -> Option<Credentials> {
    let (mut username, mut password) = (v["username"].as_str().unwrap_or("").to_string(), v["password"].as_str().unwrap_or("").to_string());
    if username.is_empty() {
        let auth = v["auth"].as_str().and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())?;
        let auth = String::from_utf8_lossy(&auth).into_owned();
        let (u, p) = auth.split_once(':')?;
        (username, password) = (u.to_string(), p.to_string());
    }
    (!username.is_empty()).then_some(Credentials { username, password })
}

/// `X-Registry-Auth`.
pub fn registry_auth(headers: &hyper::HeaderMap) -> ApiResult<Option<Credentials>> {
    Ok(json_header(headers, "X-Registry-Auth")?.as_ref().and_then(credentials))
}

/// `X-Registry-Config`: the logins by registry host (`docker.io` for Docker Hub).
pub fn registry_logins(headers: &hyper::HeaderMap) -> ApiResult<BTreeMap<String, Credentials>> {
    let Some(v) = json_header(headers, "X-Registry-Config")? else { return Ok(BTreeMap::new()) };
    let map = v.as_object().ok_or_else(|| ApiError::bad_request("X-Registry-Config is not a JSON object"))?;
    Ok(map
        .iter()
        .filter_map(|(server, login)| {
            let host = server_host(server);
            let host = if host == "index.docker.io" || host == "registry-1.docker.io" { "docker.io".to_string() } else { host };
            Some((host, credentials(login)?))
        })
        .collect())
}

/// `https://host:port/v1/` → `host:port`.
pub fn server_host(server: &str) -> String {
    server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, v: serde_json::Value) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        h.insert(name, base64::engine::general_purpose::URL_SAFE.encode(v.to_string()).parse().unwrap());
        h
    }

    #[test]
    fn logins_in_both_headers_and_both_shapes() {
        let a = registry_auth(&headers("x-registry-auth", serde_json::json!({"username": "u", "password": "p"}))).unwrap().unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        let auth = base64::engine::general_purpose::STANDARD.encode("v:q");
        let all = registry_logins(&headers(
            "x-registry-config",
            serde_json::json!({"https://index.docker.io/v1/": {"auth": auth}, "reg.example:5000": {"username": "w", "password": "r"}, "empty": {}}),
        ))
        .unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["docker.io", "reg.example:5000"]);
        assert_eq!(all["docker.io"].username, "v");
        let mut bad = hyper::HeaderMap::new();
        bad.insert("x-registry-config", "%%%".parse().unwrap());
        let e = registry_logins(&bad).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (hyper::StatusCode::BAD_REQUEST, "X-Registry-Config is not base64"));
    }
}
