//! Build arguments and environment through a build, as the classic builder scopes them:
//! - ARGs before the first FROM are global: usable in FROM lines only, unless a stage
//!   declares them again (`ARG NAME` without a value takes the global one);
//! - a `--build-arg` overrides a declared ARG's default; one never declared is reported as
//!   not consumed, and is not visible to any step;
//! - in an expansion, ENV (the image's and the stage's) wins over an ARG of the same name;
//! - RUN steps see the ARGs in scope as environment variables, but the image keeps only ENV;
//! - the proxy variables can be passed without being declared, and are never kept.

use std::collections::{BTreeMap, BTreeSet};

/// Build arguments every build accepts without an ARG line (Docker's list).
pub const PREDEFINED: &[&str] =
    &["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"];

/// The `--build-arg`s of a build and which of them some ARG used.
#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    given: BTreeMap<String, Option<String>>,
    used: BTreeSet<String>,
    /// The global ARGs' values (after `--build-arg`s).
    global: BTreeMap<String, Option<String>>,
}

impl BuildArgs {
    /// `given`: the `buildargs` of `POST /build`; a `None` value means "take it from the
    /// client's environment", which the client already resolved or left unset.
    pub fn new(given: BTreeMap<String, Option<String>>) -> Self {
        BuildArgs { given, ..Default::default() }
    }

    /// A global `ARG name[=default]` (before the first FROM).
    pub fn declare_global(&mut self, name: &str, default: Option<String>) {
        let value = self.resolve(name, default);
        self.global.insert(name.to_string(), value);
    }

    fn resolve(&mut self, name: &str, default: Option<String>) -> Option<String> {
        match self.given.get(name) {
            Some(v) => {
                self.used.insert(name.to_string());
                v.clone().or(default)
            }
            None => default,
        }
    }

    /// Looks up a variable for a FROM line: global ARGs only.
    pub fn global(&self, name: &str) -> Option<String> {
        self.global.get(name).cloned().flatten()
    }

    /// `--build-arg`s no ARG declared (the predefined ones excepted), for the warning
    /// "One or more build-args [...] were not consumed".
    pub fn unused(&self) -> Vec<String> {
        self.given.keys().filter(|k| !self.used.contains(*k) && !PREDEFINED.contains(&k.as_str())).cloned().collect()
    }

    /// A new stage's scope: no ARGs yet, the base image's ENV.
    pub fn stage(&self, image_env: &[String]) -> Scope {
        let mut env = Vec::new();
        for e in image_env {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            env.push((k.to_string(), v.to_string()));
        }
        Scope { env, args: Vec::new() }
    }

    /// An `ARG name[=default]` inside a stage: its value is the `--build-arg`, else the
    /// default, else (no default) the global ARG's value.
    pub fn declare(&mut self, scope: &mut Scope, name: &str, default: Option<String>) {
        let default = default.or_else(|| self.global.get(name).cloned().flatten());
        let value = self.resolve(name, default);
        scope.args.retain(|(k, _)| k != name);
        scope.args.push((name.to_string(), value));
    }

    /// The proxy variables given, for a RUN step's environment (never kept in the image).
    pub fn proxies(&self) -> Vec<(String, String)> {
        PREDEFINED.iter().filter_map(|k| Some((k.to_string(), self.given.get(*k)?.clone()?))).collect()
    }
}

/// What one stage's steps see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// ENV, in order: the base image's, then the stage's (an ENV replaces its name in place).
    pub env: Vec<(String, String)>,
    /// ARGs declared in the stage so far; `None`: declared without any value.
    pub args: Vec<(String, Option<String>)>,
}

impl Scope {
    /// For expansions: ENV first, then ARGs.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| self.args.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()))
    }

    pub fn set_env(&mut self, name: &str, value: String) {
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = value,
            None => self.env.push((name.to_string(), value)),
        }
    }

    /// The image config's `Env`.
    pub fn image_env(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// A RUN step's environment: ENV, plus ARGs (with a value) that no ENV shadows, plus
    /// the proxies. The ARGs part is also what makes two RUNs with other ARG values differ
    /// in the cache (Docker writes it as `|N a=b ...` before the command).
    pub fn run_env(&self, args: &BuildArgs) -> (Vec<String>, Vec<String>) {
        let mut from_args: Vec<String> = Vec::new();
        for (k, v) in &self.args {
            if let Some(v) = v {
                if !self.env.iter().any(|(e, _)| e == k) {
                    from_args.push(format!("{k}={v}"));
                }
            }
        }
        for (k, v) in args.proxies() {
            if !self.args.iter().any(|(a, _)| *a == k) {
                from_args.push(format!("{k}={v}"));
            }
        }
        let mut env = self.image_env();
        env.extend(from_args.iter().cloned());
        (env, from_args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, Option<&str>)]) -> BuildArgs {
        BuildArgs::new(pairs.iter().map(|(k, v)| (k.to_string(), v.map(String::from))).collect())
    }

    #[test]
    fn global_args_reach_from_lines_and_stages_that_redeclare_them() {
        let mut b = given(&[("TAG", Some("2")), ("UNUSED", Some("x")), ("HTTP_PROXY", Some("http://p:3128"))]);
        b.declare_global("TAG", Some("1".into()));
        b.declare_global("BASE", Some("busybox".into()));
        assert_eq!((b.global("TAG"), b.global("BASE")), (Some("2".into()), Some("busybox".into())));
        let mut s = b.stage(&["PATH=/bin".into()]);
        // Not redeclared: not visible in the stage.
        assert_eq!(s.lookup("BASE"), None);
        b.declare(&mut s, "BASE", None);
        assert_eq!(s.lookup("BASE"), Some("busybox".into()));
        assert_eq!(b.unused(), ["UNUSED"]);
    }

    #[test]
    fn env_wins_over_args_and_only_env_is_kept() {
        let mut b = given(&[("MODE", Some("prod"))]);
        let mut s = b.stage(&["PATH=/bin".into()]);
        b.declare(&mut s, "MODE", Some("dev".into()));
        b.declare(&mut s, "LEVEL", Some("3".into()));
        b.declare(&mut s, "EMPTY", None);
        assert_eq!(s.lookup("MODE"), Some("prod".into()), "--build-arg over the default");
        s.set_env("LEVEL", "9".into());
        assert_eq!(s.lookup("LEVEL"), Some("9".into()), "ENV over ARG");
        assert_eq!(s.image_env(), ["PATH=/bin", "LEVEL=9"]);
        let (env, from_args) = s.run_env(&b);
        assert_eq!(from_args, ["MODE=prod"]);
        assert_eq!(env, ["PATH=/bin", "LEVEL=9", "MODE=prod"]);
        s.set_env("PATH", "/usr/bin:/bin".into());
        assert_eq!(s.image_env()[0], "PATH=/usr/bin:/bin", "an ENV replaces its name in place");
    }

    #[test]
    fn proxies_reach_run_without_a_declaration_and_are_not_kept() {
        let b = given(&[("HTTPS_PROXY", Some("http://p")), ("NO_PROXY", None)]);
        let s = b.stage(&[]);
        let (env, from_args) = s.run_env(&b);
        assert_eq!(env, ["HTTPS_PROXY=http://p"]);
        assert_eq!(from_args, ["HTTPS_PROXY=http://p"]);
        assert!(s.image_env().is_empty());
        assert!(b.unused().is_empty(), "predefined args are never reported unused");
    }
}
