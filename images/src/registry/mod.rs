//! The OCI distribution / Docker registry v2 protocol, as far as it is pure data: manifest
//! and index formats, the platform choice for multi-arch images, the `WWW-Authenticate`
//! challenge. The HTTP transport lives with the daemon.

pub mod auth;
pub mod manifest;
pub mod platform;

use crate::reference::Reference;

/// Where a reference's repository lives: the registry host (Docker Hub's API host for
/// `docker.io`) and the repository path on it.
pub fn endpoint(r: &Reference) -> (String, String) {
    let repo = r.repository();
    let (domain, path) = repo.split_once('/').unwrap_or(("docker.io", &repo));
    let host = if domain == "docker.io" { "registry-1.docker.io".to_string() } else { domain.to_string() };
    (host, path.to_string())
}

/// Registries reached over plain HTTP without being configured as insecure: loopback only,
/// as Docker does (127.0.0.0/8 is insecure by default).
pub fn is_loopback_host(host: &str) -> bool {
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint(&"busybox".parse().unwrap()), ("registry-1.docker.io".into(), "library/busybox".into()));
        assert_eq!(endpoint(&"127.0.0.1:5000/a/b:1".parse().unwrap()), ("127.0.0.1:5000".into(), "a/b".into()));
        assert!(is_loopback_host("127.0.0.1:5000") && is_loopback_host("localhost") && !is_loopback_host("example.com:5000"));
    }
}
