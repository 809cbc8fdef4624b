//! Image references as Docker parses them: `[domain/]path[:tag][@digest]`, normalised so that
//! `busybox`, `library/busybox:latest` and `docker.io/library/busybox:latest` are one name.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

const DEFAULT_DOMAIN: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";

/// A normalised image reference. It always has a tag or a digest (a bare name gets `latest`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidReference {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?}")]
    Syntax(String),
    #[error("invalid tag format: {0:?}")]
    Tag(String),
    #[error("invalid reference format: {0}")]
    Digest(String),
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or '-'+, as in distribution/reference.
    !c.is_empty()
        && !c.contains("..")
        && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

impl Reference {
    /// A reference to `repository` (any form `FromStr` accepts, without tag) with `tag`.
    pub fn with_tag(repository: &str, tag: &str) -> Result<Self, InvalidReference> {
        if !valid_tag(tag) {
            return Err(InvalidReference::Tag(tag.into()));
        }
        let mut r: Reference = repository.parse()?;
        if r.digest.is_some() || r.tag.as_deref() != Some(DEFAULT_TAG) || repository.contains('@') {
            return Err(InvalidReference::Syntax(repository.into()));
        }
        r.tag = Some(tag.into());
        Ok(r)
    }

    /// `docker.io/library/busybox`: the full repository name, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`: the repository as Docker prints it.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix("library/").unwrap_or(&self.path).to_string()
        } else {
            self.repository()
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `busybox:latest` (or `name@sha256:...`), as `docker images` and `RepoTags` show it.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(InvalidReference::Empty(s.into()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|e| InvalidReference::Digest(e.to_string()))?)),
            None => (s, None),
        };
        // A ':' after the last '/' is a tag; one before it belongs to a domain's port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(InvalidReference::Tag(t.into()));
            }
        }
        if name.is_empty() {
            return Err(InvalidReference::Syntax(s.into()));
        }
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" || d.bytes().any(|b| b.is_ascii_uppercase()) => {
                (d.to_string(), p.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(InvalidReference::Uppercase(s.into()));
        }
        if !valid_domain(&domain) || !path.split('/').all(valid_path_component) || name.len() > 255 {
            return Err(InvalidReference::Syntax(s.into()));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') { format!("library/{path}") } else { path };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { domain, path, tag, digest })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r("busybox"), r("docker.io/library/busybox:latest"));
        assert_eq!(r("busybox").familiar(), "busybox:latest");
        assert_eq!(r("me/app:1.0").familiar(), "me/app:1.0");
        assert_eq!(r("localhost:5000/app").to_string(), "localhost:5000/app:latest");
        assert_eq!(r("reg.example:5000/a/b:v2").familiar(), "reg.example:5000/a/b:v2");
        assert_eq!(r("localhost:5000/app").familiar(), "localhost:5000/app:latest");
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!("Busybox".parse::<Reference>(), Err(InvalidReference::Uppercase(_))));
        assert!("busybox:".parse::<Reference>().is_err());
        assert!("bad..name".parse::<Reference>().is_err());
        assert!("a/../b".parse::<Reference>().is_err());
        assert!("".parse::<Reference>().is_err());
        assert!("x@sha256:123".parse::<Reference>().is_err());
    }

    #[test]
    fn with_tag_replaces_default_tag() {
        assert_eq!(Reference::with_tag("busybox", "v1").unwrap().familiar(), "busybox:v1");
        assert!(Reference::with_tag("busybox:x", "v1").is_err());
        assert!(Reference::with_tag("busybox", "-bad").is_err());
    }
}
