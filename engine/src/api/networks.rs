//! Network endpoints (`/networks/...`) and the network part of a container's inspect.

use super::error::{ApiError, ApiResult};
use super::query::{label_matches, prune_labels};
use super::router::{json, json_status, no_content, Ctx};
use crate::containers::model::Container;
use crate::events::Event;
use crate::network::model::Network;
use crate::network::{CreateOptions, NetworkError};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Map, Value};
use sha2::Digest as _;
use std::collections::BTreeMap;

/// Docker lists `host` and `none` as networks too; their ids are fixed per name.
const BUILTIN: &[(&str, &str)] = &[("host", "host"), ("none", "null")];

fn builtin_id(name: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("berth-network-{name}")))
}

fn builtin(name: &str, driver: &str) -> Value {
    json!({
        "Name": name, "Id": builtin_id(name), "Created": crate::util::time::ZERO, "Scope": "local", "Driver": driver,
        "EnableIPv6": false, "IPAM": {"Driver": "default", "Options": null, "Config": []}, "Internal": false,
        "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": {}, "Options": {}, "Labels": {},
    })
}

fn shape(ctx: &Ctx, n: &Network, with_containers: bool) -> Value {
    let mut containers = Map::new();
    if with_containers {
        for e in ctx.d.networks.endpoints_on(&n.id) {
            let name = ctx.d.containers.lookup(e.container.as_str()).map(|c| c.get().name).unwrap_or_default();
            containers.insert(
                e.container.to_string(),
                json!({"Name": name, "EndpointID": endpoint_id(&e.container, &n.id), "MacAddress": e.mac,
                       "IPv4Address": format!("{}/{}", e.ip, n.subnet.prefix()), "IPv6Address": ""}),
            );
        }
    }
    let mut ipam = json!({"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()});
    if let Some(r) = n.ip_range {
        ipam["IPRange"] = json!(r.to_string());
    }
    let mut options = n.options.clone();
    if n.default {
        options.insert("com.docker.network.bridge.default_bridge".into(), "true".into());
        options.insert("com.docker.network.bridge.name".into(), n.bridge.clone());
    }
    options.insert("com.docker.network.bridge.enable_icc".into(), n.icc.to_string());
    options.insert("com.docker.network.bridge.enable_ip_masquerade".into(), n.masquerade.to_string());
    options.insert("com.docker.network.driver.mtu".into(), n.mtu.to_string());
    json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": "bridge", "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [ipam]}, "Internal": n.internal, "Attachable": false,
        "Ingress": false, "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": containers,
        "Options": options, "Labels": n.labels,
    })
}

/// A stable id for a container's endpoint on a network (Docker's are random).
fn endpoint_id(c: &crate::util::id::ContainerId, net: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("{c}/{net}")))
}

pub fn list(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    for k in filters.keys() {
        if !["name", "id", "driver", "type", "label"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let mut all: Vec<(bool, BTreeMap<String, String>, Value)> =
        ctx.d.networks.list().iter().map(|n| (n.default, n.labels.clone(), shape(ctx, n, false))).collect();
    all.extend(BUILTIN.iter().map(|(name, driver)| (true, BTreeMap::new(), builtin(name, driver))));
    let keep = |(is_builtin, labels, v): &(bool, BTreeMap<String, String>, Value)| {
        filters.iter().all(|(k, vals)| {
            vals.iter().any(|f| match k.as_str() {
                "name" => v["Name"].as_str().unwrap_or("").contains(f.as_str()),
                "id" => v["Id"].as_str().unwrap_or("").starts_with(f.as_str()),
                "driver" => v["Driver"] == f.as_str(),
                "type" => (f == "builtin") == *is_builtin,
                "label" => label_matches(labels, f),
                _ => false,
            })
        })
    };
    let out: Vec<Value> = all.into_iter().filter(keep).map(|(_, _, v)| v).collect();
    json(&out)
}

pub fn inspect(ctx: &Ctx, name: &str) -> ApiResult {
    if let Some((n, d)) = BUILTIN.iter().find(|(n, _)| *n == name || builtin_id(n) == name) {
        return json(&builtin(n, d));
    }
    let n = ctx.d.networks.find(name).map_err(anyhow::Error::from)?;
    json(&shape(ctx, &n, true))
}

fn strings_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object().map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()).unwrap_or_default()
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let body: Option<Value> = super::query::read_json(req.into_body()).await?;
    let body = body.ok_or_else(|| ApiError::bad_request("request body is empty: a network config is required"))?;
    if body["EnableIPv6"] == true {
        return Err(ApiError::not_implemented("IPv6 networks (--ipv6)"));
    }
    let configs = body.pointer("/IPAM/Config").and_then(Value::as_array).cloned().unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::not_implemented("more than one IPAM pool per network"));
    }
    let cfg = configs.first().cloned().unwrap_or_default();
    let field = |k: &str| cfg.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    if cfg.get("AuxiliaryAddresses").is_some_and(|a| a.as_object().is_some_and(|m| !m.is_empty())) {
        return Err(ApiError::not_implemented("--aux-address"));
    }
    let opts = CreateOptions {
        name: body["Name"].as_str().unwrap_or("").to_string(),
        driver: body["Driver"].as_str().unwrap_or("").to_string(),
        subnet: field("Subnet"),
        gateway: field("Gateway"),
        ip_range: field("IPRange"),
        internal: body["Internal"].as_bool().unwrap_or(false),
        labels: strings_map(&body["Labels"]),
        options: strings_map(&body["Options"]),
    };
    let networks = ctx.d.networks.clone();
    let net = tokio::task::spawn_blocking(move || networks.create(opts)).await.map_err(anyhow::Error::from)??;
    ctx.d.events.emit(Event::new("network", "create", net.id.clone()).attr("name", net.name.clone()).attr("type", "bridge"));
    json_status(StatusCode::CREATED, &json!({"Id": net.id, "Warning": ""}))
}

pub async fn remove(ctx: &Ctx, name: &str) -> ApiResult {
    if BUILTIN.iter().any(|(n, _)| *n == name) {
        return Err(NetworkError::Conflict(format!("{name} is a pre-defined network and cannot be removed")).into());
    }
    let net = ctx.d.networks.find(name)?;
    let networks = ctx.d.networks.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || networks.remove(&name)).await.map_err(anyhow::Error::from)??;
    ctx.d.events.emit(Event::new("network", "destroy", net.id).attr("name", net.name).attr("type", "bridge"));
    no_content()
}

pub async fn prune(ctx: &Ctx) -> ApiResult {
    let labels = prune_labels(&ctx.q.filters()?, &[])?;
    let networks = ctx.d.networks.clone();
    let removed = tokio::task::spawn_blocking(move || networks.prune(&|l| labels.iter().all(|f| label_matches(l, f))))
        .await
        .map_err(anyhow::Error::from)??;
    json(&json!({"NetworksDeleted": removed}))
}

/// `POST /networks/{id}/connect`: `{"Container": .., "EndpointConfig": {..}}`.
pub async fn connect(ctx: &Ctx, network: &str, req: Request<Incoming>) -> ApiResult {
    let body: Option<Value> = super::query::read_json(req.into_body()).await?;
    let body = body.ok_or_else(|| ApiError::bad_request("request body is empty: Container is required"))?;
    let container = body["Container"].as_str().filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad_request("Container is required"))?;
    let ep = &body["EndpointConfig"];
    let req = crate::network::EndpointRequest::from_settings(ep).map_err(|e| ApiError::bad_request(e.to_string()))?;
    ctx.d.containers.connect(container, network, req).await?;
    json(&Value::Null)
}

/// `POST /networks/{id}/disconnect`: `{"Container": .., "Force": bool}`.
pub async fn disconnect(ctx: &Ctx, network: &str, req: Request<Incoming>) -> ApiResult {
    let body: Option<Value> = super::query::read_json(req.into_body()).await?;
    let body = body.ok_or_else(|| ApiError::bad_request("request body is empty: Container is required"))?;
    let container = body["Container"].as_str().filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad_request("Container is required"))?;
    ctx.d.containers.disconnect(container, network).await?;
    json(&Value::Null)
}

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> Self {
        anyhow::Error::from(e).into()
    }
}

/// `NetworkSettings.Ports` keys (`80/tcp`) for a container: bound ports while it runs, the
/// exposed ones (unbound: `null`) otherwise.
pub fn port_map(ctx: &Ctx, c: &Container) -> Map<String, Value> {
    let mut out = Map::new();
    for k in c.config.exposed_ports.as_ref().map(|e| e.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        out.insert(k, Value::Null);
    }
    for m in ctx.d.networks.ports_of(&c.id) {
        let key = format!("{}/{}", m.container_port, m.proto.as_str());
        let entry =
            json!({"HostIp": m.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()), "HostPort": m.host_port.to_string()});
        match out.get_mut(&key) {
            Some(Value::Array(a)) => a.push(entry),
            _ => {
                out.insert(key, json!([entry]));
            }
        }
    }
    out
}

/// `ps`'s `Ports`: one entry per bound port.
pub fn port_summary(ctx: &Ctx, c: &Container) -> Vec<Value> {
    ctx.d
        .networks
        .ports_of(&c.id)
        .iter()
        .map(|m| {
            json!({"IP": m.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()), "PrivatePort": m.container_port,
                   "PublicPort": m.host_port, "Type": m.proto.as_str()})
        })
        .collect()
}

/// `NetworkSettings` of a container's inspect.
pub fn settings(ctx: &Ctx, c: &Container) -> Value {
    let running = c.state.is_running();
    let mut networks = Map::new();
    let mut first: Option<(String, String, u8, String)> = None;
    for e in ctx.d.networks.endpoints_of(&c.id) {
        let Ok(n) = ctx.d.networks.find(&e.network) else { continue };
        // Docker shows the address only while the container runs; berth keeps it for the
        // container's life, and says so.
        let ip = e.ip.to_string();
        if first.is_none() {
            first = Some((ip.clone(), n.gateway.to_string(), n.subnet.prefix(), e.mac.clone()));
        }
        networks.insert(
            n.name.clone(),
            json!({"IPAMConfig": if e.static_ip { json!({"IPv4Address": ip}) } else { Value::Null }, "Links": null,
                   "Aliases": Some(&e.aliases).filter(|a| !a.is_empty()), "MacAddress": e.mac, "NetworkID": n.id, "EndpointID": if running { endpoint_id(&c.id, &n.id) } else { String::new() },
                   "Gateway": n.gateway.to_string(), "IPAddress": ip, "IPPrefixLen": n.subnet.prefix(), "IPv6Gateway": "",
                   "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": Some(&e.driver_opts).filter(|o| !o.is_empty()), "DNSNames": [c.name.clone(), c.id.short().to_string()]}),
        );
    }
    if networks.is_empty() {
        let mode = if c.host_config.network_mode.is_empty() { "none" } else { c.host_config.network_mode.as_str() };
        if mode == "host" || mode == "none" {
            networks.insert(mode.to_string(), json!({"NetworkID": builtin_id(mode), "IPAddress": "", "Gateway": "", "MacAddress": ""}));
        }
    }
    let (ip, gw, prefix, mac) = first.unwrap_or_default();
    let sandbox = if running && ctx.d.networks.is_active(&c.id) {
        crate::network::netns::dir(&ctx.d.cfg.exec_root).join(c.id.as_str()).display().to_string()
    } else {
        String::new()
    };
    json!({
        "Bridge": "", "SandboxID": if sandbox.is_empty() { String::new() } else { c.id.to_string() }, "SandboxKey": sandbox,
        "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": port_map(ctx, c), "IPAddress": ip, "Gateway": gw, "IPPrefixLen": prefix, "MacAddress": mac,
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "", "EndpointID": "", "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null, "Networks": networks,
    })
}
