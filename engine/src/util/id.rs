//! Object ids: 64 lowercase hex digits, random, like Docker's.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

/// A container id. Validated on construction, so it is always safe in a path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// A fresh random id (256 bits from the kernel's CSPRNG).
    pub fn random() -> std::io::Result<Self> {
        let mut buf = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
        Ok(ContainerId(hex::encode(buf)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-digit form `docker ps` prints.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid container id {0:?}")]
pub struct InvalidId(pub String);

impl FromStr for ContainerId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(ContainerId(s.to_string()))
        } else {
            Err(InvalidId(s.to_string()))
        }
    }
}

impl TryFrom<String> for ContainerId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        s.parse()
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContainerId({})", self.short())
    }
}

/// A container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. Docker's pattern asks for two characters
/// at least; berth also takes one (`--name x`), which nothing else can mistake for an id.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let a = ContainerId::random().unwrap();
        let b = ContainerId::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<ContainerId>().unwrap(), a);
        assert!("../etc".parse::<ContainerId>().is_err());
    }

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("web_1.a-b"));
        assert!(valid_name("x"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
    }
}
