//! `docker search`: a private registry's `_catalog` filtered by the term (`host[:port]/term`,
//! as Docker reads it), or Docker Hub's search for a plain term. Results as Docker's
//! `ImageSearchResponseItem`; `stars`, `is-official` and `is-automated` filters; a registry
//! that cannot be reached is a clear error, not an empty list.

use super::transport::{Credentials, Registry};
use anyhow::{Context, Result};
use berth_images::registry::is_loopback_host;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

/// Docker Hub's search endpoint (the v1 index; the registry itself has none).
const HUB_SEARCH: &str = "https://index.docker.io/v1/search";
/// Catalog pages read from a private registry, at most (1000 names a page).
const MAX_PAGES: usize = 20;
/// Largest answer read from a registry.
const MAX_BODY: usize = 8 << 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

/// `filters` of a search, already checked.
#[derive(Debug, Default, Clone)]
pub struct SearchFilters {
    pub stars: u64,
    pub is_official: Option<bool>,
    pub is_automated: Option<bool>,
}

impl SearchFilters {
    fn accepts(&self, r: &SearchResult) -> bool {
        r.star_count >= self.stars
            && self.is_official.is_none_or(|o| o == r.is_official)
            && self.is_automated.is_none_or(|a| a == r.is_automated)
    }
}

/// Where a term is looked up: `Some(host)` for a private registry, and the text to match.
pub fn split_term(term: &str) -> (Option<&str>, &str) {
    match term.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), rest),
        _ => (None, term),
    }
}

pub struct SearchOptions<'a> {
    pub limit: usize,
    pub filters: SearchFilters,
    pub insecure: &'a [String],
    pub certs_dir: &'a std::path::Path,
    pub credentials: Option<Credentials>,
}

pub async fn search(term: &str, opts: &SearchOptions<'_>) -> Result<Vec<SearchResult>> {
    let (host, text) = split_term(term);
    let mut found = match host {
        Some(host) => catalog(host, text, opts).await.with_context(|| format!("searching {host} for {text:?}"))?,
        None => hub(text, opts.limit)
            .await
            .with_context(|| format!("searching Docker Hub for {text:?} ({HUB_SEARCH} cannot be reached from here?)"))?,
    };
    found.retain(|r| opts.filters.accepts(r));
    found.truncate(opts.limit);
    Ok(found)
}

async fn read_json<T: serde::de::DeserializeOwned>(resp: hyper::Response<hyper::body::Incoming>, what: &str) -> Result<T> {
    let body =
        http_body_util::Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| anyhow::anyhow!("reading {what}: {e}"))?;
    serde_json::from_slice(&body.to_bytes()).with_context(|| format!("{what} is not the JSON expected"))
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Vec<String>,
}

/// The repositories of a private registry whose names hold `text`.
async fn catalog(host: &str, text: &str, opts: &SearchOptions<'_>) -> Result<Vec<SearchResult>> {
    let insecure = is_loopback_host(host) || opts.insecure.iter().any(|h| h == host);
    let reg = Registry::new(host, insecure, Some(opts.certs_dir), opts.credentials.clone())?;
    let needle = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut path = "/v2/_catalog?n=1000".to_string();
    for _ in 0..MAX_PAGES {
        let resp = reg.get(&path, &[]).await?;
        let next = resp.headers().get("link").and_then(|l| l.to_str().ok()).and_then(next_page);
        let page: Catalog = read_json(resp, "the registry's catalog").await?;
        out.extend(
            page.repositories
                .into_iter()
                .filter(|r| r.to_ascii_lowercase().contains(&needle))
                .map(|r| SearchResult { name: format!("{host}/{r}"), ..Default::default() }),
        );
        match next {
            Some(n) => path = n,
            None => break,
        }
    }
    Ok(out)
}

/// The next page's path from a `Link: </v2/_catalog?last=x&n=1000>; rel="next"` header.
fn next_page(link: &str) -> Option<String> {
    let (target, rel) = link.split_once(';')?;
    rel.contains("next").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string()).filter(|p| p.starts_with("/v2/"))
}

#[derive(Deserialize)]
struct HubAnswer {
    #[serde(default)]
    results: Vec<SearchResult>,
}

async fn hub(text: &str, limit: usize) -> Result<Vec<SearchResult>> {
    let q: String = text
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let resp = super::transport::get_url(&format!("{HUB_SEARCH}?q={q}&n={limit}")).await?;
    Ok(read_json::<HubAnswer>(resp, "Docker Hub's answer").await?.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry_as_docker_reads_them() {
        assert_eq!(split_term("busybox"), (None, "busybox"));
        assert_eq!(split_term("library/busybox"), (None, "library/busybox"));
        assert_eq!(split_term("127.0.0.1:5000/app"), (Some("127.0.0.1:5000"), "app"));
        assert_eq!(split_term("localhost/app"), (Some("localhost"), "app"));
        assert_eq!(split_term("reg.example/team/app"), (Some("reg.example"), "team/app"));
    }

    #[test]
    fn catalog_pages_and_filters() {
        assert_eq!(next_page(r#"</v2/_catalog?last=b&n=1000>; rel="next""#).as_deref(), Some("/v2/_catalog?last=b&n=1000"));
        assert_eq!(next_page(r#"<https://evil.example/x>; rel="next""#), None);
        let r = SearchResult { name: "x".into(), star_count: 3, is_official: true, ..Default::default() };
        assert!(SearchFilters { stars: 3, ..Default::default() }.accepts(&r));
        assert!(!SearchFilters { stars: 4, ..Default::default() }.accepts(&r));
        assert!(!SearchFilters { is_official: Some(false), ..Default::default() }.accepts(&r));
        assert!(SearchFilters { is_automated: Some(false), ..Default::default() }.accepts(&r));
    }
}
