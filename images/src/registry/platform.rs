//! Platforms (`linux/arm64/v8`) and the choice among a multi-arch index's entries.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            other => (other, None),
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant: variant.map(String::from) }
    }

    /// Does an index entry's platform serve this one? A missing variant on either side
    /// matches (most arm64 images do not say v8).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let norm_arch = |a: &str| match a {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            other => other.to_string(),
        };
        match parts.as_slice() {
            [os, arch] => Ok(Platform { os: os.to_string(), architecture: norm_arch(arch), variant: None }),
            [os, arch, variant] => Ok(Platform { os: os.to_string(), architecture: norm_arch(arch), variant: Some(variant.to_string()) }),
            _ => Err(format!("invalid platform {s:?}: expected os/arch[/variant]")),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let want: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(want.matches(&"linux/arm64".parse().unwrap()));
        assert!(!want.matches(&"linux/arm64/v9".parse().unwrap()));
        assert!(!want.matches(&"linux/amd64".parse().unwrap()));
        assert_eq!("linux/aarch64".parse::<Platform>().unwrap().architecture, "arm64");
        assert!("linux".parse::<Platform>().is_err());
    }
}
