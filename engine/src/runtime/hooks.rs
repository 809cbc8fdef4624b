//! OCI hooks from hook-spec files (the openEuler engine's `--hook-spec`): the daemon's
//! (`hook-spec` in daemon.json) run before each container's own.
//!
//! Rules, checked when the file is read (at daemon start, at create), so a bad spec is an
//! error before anything exists:
//! - the file is JSON with only `prestart`, `poststart`, `poststop` lists;
//! - each hook's `path` is absolute and, with every symlink resolved, inside
//!   `<data-root>/hooks`: only what the device's owner put there runs as root;
//! - `timeout`, when given, is a whole number of seconds from 1 to 120.
//!
//! The runtime runs the hooks; a failing prestart hook fails the start, and the runtime's
//! message, which carries the hook's stderr, goes back to the client.

use serde::{Deserialize, Serialize};
use std::path::Path;

const MAX_TIMEOUT: i64 = 120;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

impl HookSpec {
    pub fn is_empty(&self) -> bool {
        self.prestart.is_empty() && self.poststart.is_empty() && self.poststop.is_empty()
    }

    /// Reads and checks the hook-spec file `file` against the hooks directory `hooks_dir`.
    pub fn load(file: &Path, hooks_dir: &Path) -> Result<Self, String> {
        let text = std::fs::read(file).map_err(|e| format!("hook spec {}: {e}", file.display()))?;
        let spec: HookSpec = serde_json::from_slice(&text).map_err(|e| format!("hook spec {}: invalid JSON: {e}", file.display()))?;
        spec.check(hooks_dir).map_err(|e| format!("hook spec {}: {e}", file.display()))?;
        Ok(spec)
    }

    fn check(&self, hooks_dir: &Path) -> Result<(), String> {
        let allowed = std::fs::canonicalize(hooks_dir).map_err(|e| format!("the hooks directory {}: {e}", hooks_dir.display()))?;
        for (stage, hooks) in [("prestart", &self.prestart), ("poststart", &self.poststart), ("poststop", &self.poststop)] {
            for h in hooks {
                let path = Path::new(&h.path);
                if !path.is_absolute() {
                    return Err(format!("{stage} hook {:?}: the path must be absolute", h.path));
                }
                let real = std::fs::canonicalize(path).map_err(|e| format!("{stage} hook {:?}: {e}", h.path))?;
                if !real.starts_with(&allowed) {
                    return Err(format!(
                        "{stage} hook {:?} is outside {}: only hooks installed there may run",
                        h.path,
                        hooks_dir.display()
                    ));
                }
                if let Some(t) = h.timeout {
                    if !(1..=MAX_TIMEOUT).contains(&t) {
                        return Err(format!("{stage} hook {:?}: timeout {t} is outside 1..{MAX_TIMEOUT} seconds", h.path));
                    }
                }
            }
        }
        Ok(())
    }

    /// `self` (the daemon's) then `other` (a container's), stage by stage.
    pub fn then(&self, other: &HookSpec) -> HookSpec {
        let join = |a: &[Hook], b: &[Hook]| a.iter().chain(b).cloned().collect();
        HookSpec {
            prestart: join(&self.prestart, &other.prestart),
            poststart: join(&self.poststart, &other.poststart),
            poststop: join(&self.poststop, &other.poststop),
        }
    }

    /// Writes the hooks into a runtime spec (as JSON, before it is typed).
    pub fn apply(&self, spec: &mut serde_json::Value) {
        if !self.is_empty() {
            spec["hooks"] = serde_json::to_value(self).unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_paths_timeouts_and_json() {
        let root = std::env::temp_dir().join(format!("berth-hooks-{}", std::process::id()));
        let hooks = root.join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::write(hooks.join("ok.sh"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/bin/sh", hooks.join("sneaky")).unwrap();
        let write = |text: &str| {
            let f = root.join("spec.json");
            std::fs::write(&f, text).unwrap();
            HookSpec::load(&f, &hooks)
        };
        let ok = format!(r#"{{"prestart":[{{"path":"{}","args":["ok.sh","x"],"timeout":120}}]}}"#, hooks.join("ok.sh").display());
        assert_eq!(write(&ok).unwrap().prestart[0].args, ["ok.sh", "x"]);
        assert!(write("{not json").unwrap_err().contains("invalid JSON"));
        assert!(write(r#"{"prestart":[{"path":"/bin/sh"}]}"#).unwrap_err().contains("outside"));
        let link = format!(r#"{{"prestart":[{{"path":"{}"}}]}}"#, hooks.join("sneaky").display());
        assert!(write(&link).unwrap_err().contains("outside"), "a symlink out of the hooks directory");
        let slow = format!(r#"{{"poststop":[{{"path":"{}","timeout":121}}]}}"#, hooks.join("ok.sh").display());
        assert!(write(&slow).unwrap_err().contains("timeout 121"));
        let zero = format!(r#"{{"poststop":[{{"path":"{}","timeout":0}}]}}"#, hooks.join("ok.sh").display());
        assert!(write(&zero).is_err());
        assert!(write(r#"{"prestart":[{"path":"ok.sh"}]}"#).unwrap_err().contains("absolute"));
        assert!(write(r#"{"prestop":[]}"#).unwrap_err().contains("unknown field"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn daemon_hooks_come_first() {
        let h = |p: &str| Hook { path: p.into(), ..Default::default() };
        let d = HookSpec { prestart: vec![h("/d")], ..Default::default() };
        let c = HookSpec { prestart: vec![h("/c")], poststop: vec![h("/c2")], ..Default::default() };
        let all = d.then(&c);
        assert_eq!(all.prestart, vec![h("/d"), h("/c")]);
        let mut spec = serde_json::json!({});
        all.apply(&mut spec);
        assert_eq!(spec["hooks"]["prestart"][1]["path"], "/c");
        assert_eq!(spec["hooks"]["poststop"][0]["path"], "/c2");
        assert!(spec["hooks"].get("poststart").is_none());
    }
}
