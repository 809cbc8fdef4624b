//! `create` and `run`.

use super::client::{demux, ApiFailure, Client};
use anyhow::{Context, Result};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Print help (-h is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set metadata on the container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Connect to a network: bridge (default), host, none, container:<name|id>, or a user network
    #[arg(long = "network", visible_alias = "net")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host ([hostIP:][hostPort:]containerPort[/proto])
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to ephemeral host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// IPv4 address (user networks only)
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Add a network-scoped alias for the container
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", visible_alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Bind mount a volume ([name|/host/path:]/container/path[:ro|rw|nocopy])
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=,target=,readonly)
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs (/path[:options])
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries]
    #[arg(long)]
    pub restart: Option<String>,
    /// Mount the volumes of another container (name[:ro|rw])
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Add an annotation to the container (e.g. native.umask=normal)
    #[arg(long = "annotation")]
    pub annotation: Vec<String>,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Log driver options (max-size, max-file)
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    #[arg(long = "stop-timeout", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    #[arg(long)]
    pub runtime: Option<String>,
    /// OCI hooks file (JSON with prestart/poststart/poststop) on the daemon's host
    #[arg(long = "hook-spec")]
    pub hook_spec: Option<std::path::PathBuf>,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `k=v` items (a bare `k` is `k=`), as the API's string maps.
pub(super) fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items.iter().map(|i| i.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((i.clone(), String::new()))).collect()
}

/// `--env-file`: `KEY=value` lines; `KEY` alone takes the value from this environment.
fn read_env_file(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| match l.split_once('=') {
            Some(_) => Some(l.to_string()),
            None => std::env::var(l).ok().map(|v| format!("{l}={v}")),
        })
        .collect())
}

fn body(a: &CreateArgs) -> Result<Value> {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(read_env_file(f)?);
    }
    for e in &a.env {
        env.push(if e.contains('=') { e.clone() } else { std::env::var(e).map(|v| format!("{e}={v}")).unwrap_or_else(|_| e.clone()) });
    }
    let mut hc = Map::new();
    hc.insert("AutoRemove".into(), json!(a.rm));
    hc.insert("ReadonlyRootfs".into(), json!(a.read_only));
    hc.insert("NetworkMode".into(), json!(a.network.clone().unwrap_or_else(|| "default".into())));
    if !a.annotation.is_empty() {
        hc.insert("Annotations".into(), json!(key_values(&a.annotation)));
    }
    if !a.cap_add.is_empty() {
        hc.insert("CapAdd".into(), json!(a.cap_add));
    }
    if !a.cap_drop.is_empty() {
        hc.insert("CapDrop".into(), json!(a.cap_drop));
    }
    if !a.log_opt.is_empty() {
        hc.insert("LogConfig".into(), json!({"Type": "json-file", "Config": key_values(&a.log_opt)}));
    }
    if let Some(r) = &a.runtime {
        hc.insert("Runtime".into(), json!(r));
    }
    if let Some(f) = &a.hook_spec {
        // The daemon reads the file: name it absolutely (the CLI runs where the daemon does;
        // a remote client names a file on the device).
        let abs = if f.is_absolute() { f.clone() } else { std::env::current_dir()?.join(f) };
        hc.insert("HookSpec".into(), json!(abs));
    }
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    for p in &a.publish {
        for (key, b) in crate::network::ports::parse_publish(p).map_err(anyhow::Error::msg)? {
            exposed.insert(key.clone(), json!({}));
            match bindings.get_mut(&key) {
                Some(Value::Array(list)) => list.push(b),
                _ => {
                    bindings.insert(key, json!([b]));
                }
            }
        }
    }
    for e in &a.expose {
        for (key, _) in crate::network::ports::parse_publish(e).map_err(anyhow::Error::msg)? {
            exposed.insert(key, json!({}));
        }
    }
    if !bindings.is_empty() {
        hc.insert("PortBindings".into(), Value::Object(bindings));
    }
    if a.publish_all {
        hc.insert("PublishAllPorts".into(), json!(true));
    }
    for (key, list) in [("Dns", &a.dns), ("DnsSearch", &a.dns_search), ("DnsOptions", &a.dns_option), ("ExtraHosts", &a.add_host)] {
        if !list.is_empty() {
            hc.insert(key.into(), json!(list));
        }
    }
    // As the docker CLI: `-v /path` is an anonymous volume (Config.Volumes), the rest binds.
    let mut anonymous = Map::new();
    let mut binds = Vec::new();
    for v in &a.volume {
        if v.starts_with('/') && !v.contains(':') {
            anonymous.insert(v.clone(), json!({}));
        } else {
            binds.push(v.clone());
        }
    }
    if !binds.is_empty() {
        hc.insert("Binds".into(), json!(binds));
    }
    if !a.mount.is_empty() {
        let mounts = a.mount.iter().map(|m| super::volume::mount_flag(m)).collect::<Result<Vec<_>>>()?;
        hc.insert("Mounts".into(), json!(mounts));
    }
    if !a.tmpfs.is_empty() {
        let t: Map<String, Value> =
            a.tmpfs.iter().map(|t| t.split_once(':').map(|(p, o)| (p.to_string(), json!(o))).unwrap_or((t.clone(), json!("")))).collect();
        hc.insert("Tmpfs".into(), Value::Object(t));
    }
    if let Some(r) = &a.restart {
        let (name, max) = match r.split_once(':') {
            Some((n, m)) => {
                (n, m.parse::<i64>().map_err(|_| anyhow::anyhow!("invalid restart policy {r:?}: the retry count must be a number"))?)
            }
            None => (r.as_str(), 0),
        };
        hc.insert("RestartPolicy".into(), json!({"Name": name, "MaximumRetryCount": max}));
    }
    if !a.volumes_from.is_empty() {
        hc.insert("VolumesFrom".into(), json!(a.volumes_from));
    }
    let mut endpoint = Map::new();
    if let Some(ip) = &a.ip {
        endpoint.insert("IPAMConfig".into(), json!({"IPv4Address": ip}));
    }
    if !a.network_alias.is_empty() {
        endpoint.insert("Aliases".into(), json!(a.network_alias));
    }
    if let Some(m) = &a.mac_address {
        endpoint.insert("MacAddress".into(), json!(m));
    }
    let mut c = json!({
        "Image": a.image,
        "Env": env,
        "Cmd": if a.command.is_empty() { Value::Null } else { json!(a.command) },
        "Labels": key_values(&a.label),
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "AttachStdin": a.interactive,
        "AttachStdout": true,
        "AttachStderr": true,
        "HostConfig": hc,
    });
    if let Some(v) = &a.entrypoint {
        c["Entrypoint"] = json!([v]);
    }
    if !exposed.is_empty() {
        c["ExposedPorts"] = Value::Object(exposed);
    }
    if !anonymous.is_empty() {
        c["Volumes"] = Value::Object(anonymous);
    }
    if !endpoint.is_empty() {
        let net = a.network.clone().unwrap_or_else(|| "bridge".into());
        c["NetworkingConfig"] = json!({"EndpointsConfig": {net: endpoint}});
    }
    for (k, v) in [("WorkingDir", &a.workdir), ("User", &a.user), ("Hostname", &a.hostname), ("StopSignal", &a.stop_signal)] {
        if let Some(v) = v {
            c[k] = json!(v);
        }
    }
    if let Some(t) = a.stop_timeout {
        c["StopTimeout"] = json!(t);
    }
    Ok(c)
}

async fn create(client: &Client, a: &CreateArgs) -> Result<String> {
    let mut path = "/containers/create".to_string();
    if let Some(n) = &a.name {
        path.push_str(&format!("?name={}", n));
    }
    let body = body(a)?;
    let resp = match client.json(Method::POST, &path, Some(body.clone())).await {
        Ok(r) => r,
        Err(e) => {
            let missing =
                e.downcast_ref::<ApiFailure>().is_some_and(|f| f.status == StatusCode::NOT_FOUND && f.message.starts_with("No such image"));
            if !missing {
                return Err(e);
            }
            // As the docker CLI does: pull, then create again.
            eprintln!("Unable to find image '{}' locally", a.image);
            if super::commands::pull(client, &a.image, None, false, true).await? != 0 {
                anyhow::bail!("pulling {} failed", a.image);
            }
            client.json(Method::POST, &path, Some(body)).await?
        }
    };
    resp["Id"].as_str().map(String::from).context("the daemon answered create without an Id")
}

pub async fn create_cmd(client: &Client, a: CreateArgs) -> Result<i32> {
    let id = create(client, &a).await?;
    println!("{id}");
    Ok(0)
}

/// Docker's `run` exit codes when the command could not be started: 127 not found, 126 not
/// executable, 125 any other refusal.
fn start_failure_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

pub async fn run(client: &Client, a: RunArgs) -> Result<i32> {
    let c = &a.create;
    let id = match create(client, c).await {
        Ok(id) => id,
        Err(e) => {
            eprintln!("berth: {e:#}");
            return Ok(125);
        }
    };
    if a.detach {
        if let Err(e) = client.call(Method::POST, &format!("/containers/{id}/start"), None).await {
            eprintln!("berth: {e:#}");
            return Ok(start_failure_code(&e.to_string()));
        }
        println!("{id}");
        return Ok(0);
    }
    // Attach and register the wait before starting, so no output and no exit is missed.
    let stream = client.attach(&format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1")).await?;
    let cond = if c.rm { "removed" } else { "next-exit" };
    let wait = client.call(Method::POST, &format!("/containers/{id}/wait?condition={cond}"), None).await?;
    if let Err(e) = client.call(Method::POST, &format!("/containers/{id}/start"), None).await {
        eprintln!("berth: {e:#}");
        if c.rm {
            let _ = client.call(Method::DELETE, &format!("/containers/{id}?force=1"), None).await;
        }
        return Ok(start_failure_code(&e.to_string()));
    }
    demux(hyper_util::rt::TokioIo::new(stream)).await?;
    let bytes = http_body_util::BodyExt::collect(wait.into_body()).await?.to_bytes();
    let v: Value = serde_json::from_slice(&bytes).context("reading the wait result")?;
    Ok(v["StatusCode"].as_i64().unwrap_or(125) as i32)
}
