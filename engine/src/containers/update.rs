//! `update`: new limits and restart policy for a container. Docker's rules: a zero (or
//! absent) value leaves a setting as it is; the merged settings must pass the same checks as
//! at create; a running container gets them through `runc update` before the record says so.

use super::model::RestartPolicy;
use super::restart::Policy;
use super::{ContainerError, Containers};
use anyhow::Result;
use serde_json::{Map, Value};
use std::sync::Arc;

/// `HostConfig` keys `update` may change, with the runtime's `update` flag for each.
const UPDATABLE: &[(&str, Option<&str>)] = &[
    ("Memory", Some("--memory")),
    ("MemoryReservation", Some("--memory-reservation")),
    ("MemorySwap", Some("--memory-swap")),
    ("CpuShares", Some("--cpu-share")),
    ("CpuPeriod", Some("--cpu-period")),
    ("CpuQuota", Some("--cpu-quota")),
    ("CpusetCpus", Some("--cpuset-cpus")),
    ("CpusetMems", Some("--cpuset-mems")),
    ("BlkioWeight", Some("--blkio-weight")),
    ("PidsLimit", Some("--pids-limit")),
    // Translated to a period and a quota below.
    ("NanoCpus", None),
    // Refused by `validate` when set, as at create.
    ("KernelMemory", None),
];

/// Keys of a resources document that cannot change on an existing container.
const FIXED: &[&str] = &["Devices", "Ulimits", "BlkioWeightDevice", "DeviceCgroupRules", "DeviceRequests", "CgroupParent"];

/// Is this request value a change (Docker's "zero means unchanged")?
fn is_change(key: &str, v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Number(n) => key == "PidsLimit" || n.as_i64() != Some(0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Bool(b) => *b,
        Value::Object(o) => !o.is_empty(),
    }
}

/// The runtime `update` arguments for the keys that changed.
fn runtime_args(changed: &Map<String, Value>) -> Vec<String> {
    let mut args = Vec::new();
    for (key, flag) in UPDATABLE {
        let (Some(flag), Some(v)) = (flag, changed.get(*key)) else { continue };
        let v = match (key, v) {
            (&"PidsLimit", Value::Number(n)) if n.as_i64().unwrap_or(0) <= 0 => "-1".to_string(),
            (_, Value::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        };
        args.extend([flag.to_string(), v]);
    }
    if let Some(n) = changed.get("NanoCpus").and_then(Value::as_i64) {
        args.extend(["--cpu-period".into(), "100000".into(), "--cpu-quota".into(), (n / 10_000).to_string()]);
    }
    args
}

impl Containers {
    /// Applies `req` (a `Resources` document with an optional `RestartPolicy`); returns
    /// Docker's warnings (none today).
    pub async fn update_config(self: &Arc<Self>, name: &str, req: Map<String, Value>) -> Result<Vec<String>> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        let mut changed = Map::new();
        for (key, v) in &req {
            if key == "RestartPolicy" || !is_change(key, v) {
                continue;
            }
            if FIXED.contains(&key.as_str()) {
                return Err(ContainerError::Invalid(format!("{key} cannot be updated on an existing container")).into());
            }
            if !UPDATABLE.iter().any(|(k, _)| k == key) {
                continue;
            }
            changed.insert(key.clone(), v.clone());
        }
        let mut extra = c.host_config.extra.clone();
        if changed.contains_key("NanoCpus") {
            // A CPU count replaces a period and quota set before.
            extra.remove("CpuPeriod");
            extra.remove("CpuQuota");
        }
        extra.extend(changed.clone());
        crate::runtime::resources::validate(&extra).map_err(ContainerError::Invalid)?;

        let policy: Option<RestartPolicy> = match req.get("RestartPolicy") {
            Some(v) if !v.is_null() => {
                Some(serde_json::from_value(v.clone()).map_err(|e| ContainerError::Invalid(format!("RestartPolicy: {e}")))?)
            }
            _ => None,
        };
        let policy = policy.filter(|p| !p.name.is_empty());
        if let Some(p) = &policy {
            let parsed = Policy::of(Some(p))?;
            if c.host_config.auto_remove && parsed != Policy::No {
                return Err(ContainerError::Invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                )
                .into());
            }
        }

        let args = runtime_args(&changed);
        if c.state.is_running() && !args.is_empty() {
            let rt =
                self.cfg.runtimes.get(&c.runtime).ok_or_else(|| {
                    ContainerError::Conflict(format!("the runtime {} of container {} is not configured", c.runtime, c.id))
                })?;
            let mut verb: Vec<&str> = vec!["update"];
            verb.extend(args.iter().map(String::as_str));
            verb.push(c.id.as_str());
            crate::runtime::command(&self.cfg.exec_root, rt, &verb)
                .await
                .map_err(|e| ContainerError::Invalid(format!("Cannot update container {}: {e:#}", c.id)))?;
        }
        self.update(&entry, |r| {
            r.host_config.extra = extra;
            if let Some(p) = policy {
                r.host_config.restart_policy = Some(p);
            }
        })?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changed_values_reach_the_runtime() {
        let req = json!({"Memory": 314572800, "CpuShares": 0, "CpusetCpus": "", "PidsLimit": 0, "NanoCpus": 500_000_000});
        let changed: Map<String, Value> =
            req.as_object().unwrap().iter().filter(|(k, v)| is_change(k, v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(
            runtime_args(&changed),
            ["--memory", "314572800", "--pids-limit", "-1", "--cpu-period", "100000", "--cpu-quota", "50000"]
        );
    }
}
