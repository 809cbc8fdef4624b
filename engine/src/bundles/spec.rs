//! An app container as the engine creates it: the app file's few fields become a Docker
//! create request, labelled so the container can be told apart as the application's.

use crate::containers::CreateRequest;
use anyhow::{Context, Result};
use berth_images::bundle::app::{parse_duration, Container};
use serde_json::{json, Map, Value};

pub const LABEL_VERSION: &str = "berth.bundle.version";
pub const LABEL_NAME: &str = "berth.bundle.container";

pub fn create_request(name: &str, c: &Container, version: u64) -> Result<CreateRequest> {
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    for p in &c.ports {
        for (key, b) in
            crate::network::ports::parse_publish(p).map_err(anyhow::Error::msg).with_context(|| format!("container {name}: port {p:?}"))?
        {
            exposed.insert(key.clone(), json!({}));
            match bindings.get_mut(&key) {
                Some(Value::Array(list)) => list.push(b),
                _ => {
                    bindings.insert(key, json!([b]));
                }
            }
        }
    }
    let (policy, max) = match c.restart.split_once(':') {
        Some((n, m)) => (n.to_string(), m.parse::<i64>().with_context(|| format!("container {name}: restart {:?}", c.restart))?),
        None => (c.restart.clone(), 0),
    };
    let mut body = json!({
        "Image": c.image,
        "Env": c.env,
        "Labels": {LABEL_VERSION: version.to_string(), LABEL_NAME: name},
        "ExposedPorts": exposed,
        "HostConfig": {
            "PortBindings": bindings,
            "Binds": c.volumes,
            "RestartPolicy": {"Name": policy, "MaximumRetryCount": max},
        },
    });
    if let Some(cmd) = &c.command {
        body["Cmd"] = json!(cmd);
    }
    if let Some(h) = &c.healthcheck {
        let ns = |d: &Option<String>| d.as_deref().and_then(parse_duration).map_or(0, |d| d.as_nanos() as u64);
        body["Healthcheck"] = json!({
            "Test": h.test,
            "Interval": ns(&h.interval),
            "Timeout": ns(&h.timeout),
            "StartPeriod": ns(&h.start_period),
            "Retries": h.retries.unwrap_or(0),
        });
    }
    serde_json::from_value(body).with_context(|| format!("container {name}: building its create request"))
}
