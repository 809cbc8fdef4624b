//! The application a bundle installs, in a small declarative form: a TOML app file on the
//! operator's workstation, the same structure as JSON inside the signed manifest.
//!
//! ```toml
//! [gate]                      # optional: how long the new application has to become healthy
//! timeout = "60s"
//! settle = "5s"               # containers without a healthcheck must run this long
//!
//! [containers.web]
//! image = "registry.example/app:2"
//! command = ["httpd", "-f", "-p", "80"]
//! env = ["MODE=prod"]
//! ports = ["8080:80"]
//! volumes = ["data:/data"]
//! restart = "unless-stopped"  # the default
//! [containers.web.healthcheck]
//! test = ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
//! interval = "2s"
//! retries = 3
//! ```

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    #[serde(default)]
    pub gate: Gate,
    pub containers: BTreeMap<String, Container>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    #[serde(default = "Gate::default_timeout")]
    pub timeout: String,
    #[serde(default = "Gate::default_settle")]
    pub settle: String,
}

impl Gate {
    fn default_timeout() -> String {
        "60s".into()
    }
    fn default_settle() -> String {
        "5s".into()
    }
    pub fn timeout(&self) -> Duration {
        parse_duration(&self.timeout).unwrap_or(Duration::from_secs(60))
    }
    pub fn settle(&self) -> Duration {
        parse_duration(&self.settle).unwrap_or(Duration::from_secs(5))
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate { timeout: Self::default_timeout(), settle: Self::default_settle() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`, as `docker run -p`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `NAME_OR_PATH:CONTAINER_PATH[:ro]`, as `docker run -v`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default = "Container::default_restart")]
    pub restart: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

impl Container {
    fn default_restart() -> String {
        "unless-stopped".into()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", prog, args...]` or `["CMD-SHELL", "command line"]`.
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
}

impl App {
    pub fn from_toml(text: &str) -> Result<Self> {
        let app: App = toml::from_str(text).context("the app file is not valid")?;
        app.validate()?;
        Ok(app)
    }

    /// What an installer relies on: container names usable as container names, images named,
    /// durations and restart policies it understands.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.containers.is_empty(), "the app has no containers");
        for what in [&self.gate.timeout, &self.gate.settle] {
            parse_duration(what).with_context(|| format!("gate: invalid duration {what:?}"))?;
        }
        for (name, c) in &self.containers {
            let valid = name.len() <= 64
                && name.chars().next().is_some_and(|ch| ch.is_ascii_alphanumeric())
                && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
            ensure!(valid, "container name {name:?} is not valid ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64)");
            ensure!(!c.image.is_empty(), "container {name}: no image");
            match c.restart.split(':').next().unwrap_or_default() {
                "no" | "always" | "unless-stopped" | "on-failure" => {}
                r => bail!("container {name}: restart policy {r:?} is not one of no, always, unless-stopped, on-failure[:N]"),
            }
            if let Some(h) = &c.healthcheck {
                ensure!(
                    matches!(h.test.first().map(String::as_str), Some("CMD" | "CMD-SHELL" | "NONE")),
                    "container {name}: healthcheck test must start with CMD, CMD-SHELL or NONE"
                );
                for d in [&h.interval, &h.timeout, &h.start_period].into_iter().flatten() {
                    parse_duration(d).with_context(|| format!("container {name}: invalid healthcheck duration {d:?}"))?;
                }
            }
        }
        Ok(())
    }

    /// The images the app runs, each once.
    pub fn images(&self) -> Vec<String> {
        let mut v: Vec<String> = self.containers.values().map(|c| c.image.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// `90s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::duration::parse_or_secs(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_file_reads_with_defaults() {
        let app = App::from_toml(
            r#"
[containers.web]
image = "app:2"
command = ["httpd", "-f"]
ports = ["8080:80"]
[containers.web.healthcheck]
test = ["CMD", "true"]
interval = "1s"
"#,
        )
        .unwrap();
        let web = &app.containers["web"];
        assert_eq!(web.restart, "unless-stopped");
        assert_eq!(app.gate.timeout(), Duration::from_secs(60));
        assert_eq!(web.healthcheck.as_ref().unwrap().interval.as_deref(), Some("1s"));
        assert_eq!(app.images(), vec!["app:2".to_string()]);
    }

    #[test]
    fn bad_app_files_are_refused_with_the_reason() {
        let cases = [
            ("", "containers"),
            ("[containers]\n", "no containers"),
            ("[containers.web]\n", "image"),
            ("[containers.web]\nimage = \"a\"\nrestart = \"sometimes\"\n", "restart policy"),
            ("[containers.\"../x\"]\nimage = \"a\"\n", "not valid"),
            ("[containers.web]\nimage = \"a\"\nport = [\"1:1\"]\n", "unknown field"),
            ("[gate]\ntimeout = \"soon\"\n[containers.web]\nimage = \"a\"\n", "invalid duration"),
        ];
        for (text, why) in cases {
            let err = format!("{:#}", App::from_toml(text).unwrap_err());
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("1d"), None);
    }
}
