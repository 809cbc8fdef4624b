//! `network ...` and `port`.

use super::client::Client;
use super::commands::{each, enc, filters, inspect_each, table};
use super::run::key_values;
use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Map, Value};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network
    Create {
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway for the subnet
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container addresses from a sub-range
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        #[arg(long = "label")]
        label: Vec<String>,
        /// Driver options (com.docker.network.bridge.enable_icc=false, ...)
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        #[arg(long)]
        no_trunc: bool,
    },
    /// Display detailed information on networks
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove all unused networks
    Prune {
        #[arg(short = 'f', long)]
        force: bool,
    },
}

pub async fn run(client: &Client, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create { driver, subnet, gateway, ip_range, internal, label, opt, name } => {
            let mut pool = Map::new();
            for (k, v) in [("Subnet", subnet.first()), ("Gateway", gateway.first()), ("IPRange", ip_range.first())] {
                if let Some(v) = v {
                    pool.insert(k.into(), json!(v));
                }
            }
            let ipam =
                if pool.is_empty() { json!({"Driver": "default", "Config": []}) } else { json!({"Driver": "default", "Config": [pool]}) };
            let body = json!({"Name": name, "Driver": driver, "Internal": internal, "IPAM": ipam, "Labels": key_values(&label), "Options": key_values(&opt)});
            let v = client.json(Method::POST, "/networks/create", Some(body)).await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        NetworkCommand::Ls { quiet, filter, no_trunc } => {
            let path = format!("/networks?filters={}", filters(&filter)?);
            let list = client.json(Method::GET, &path, None).await?;
            let mut rows = vec![vec!["NETWORK ID".to_string(), "NAME".into(), "DRIVER".into(), "SCOPE".into()]];
            for n in list.as_array().cloned().unwrap_or_default() {
                let id = n["Id"].as_str().unwrap_or("");
                let id = if no_trunc { id.to_string() } else { id.chars().take(12).collect() };
                if quiet {
                    println!("{id}");
                    continue;
                }
                rows.push(vec![id, n["Name"].as_str().unwrap_or("").into(), n["Driver"].as_str().unwrap_or("").into(), "local".into()]);
            }
            if !quiet {
                table(&rows);
            }
            Ok(0)
        }
        NetworkCommand::Inspect { format, networks } => inspect_each(client, "networks", "", &networks, format.as_deref()).await,
        NetworkCommand::Rm { networks } => {
            each(&networks, |n| async move { client.call(Method::DELETE, &format!("/networks/{}", enc(&n)), None).await.map(drop) }).await
        }
        NetworkCommand::Connect { ip, alias, network, container } => {
            let mut ep = Map::new();
            if let Some(ip) = ip {
                ep.insert("IPAMConfig".into(), json!({"IPv4Address": ip}));
            }
            if !alias.is_empty() {
                ep.insert("Aliases".into(), json!(alias));
            }
            let body = json!({"Container": container, "EndpointConfig": ep});
            client.call(Method::POST, &format!("/networks/{}/connect", enc(&network)), Some(body)).await?;
            Ok(0)
        }
        NetworkCommand::Disconnect { force, network, container } => {
            let body = json!({"Container": container, "Force": force});
            client.call(Method::POST, &format!("/networks/{}/disconnect", enc(&network)), Some(body)).await?;
            Ok(0)
        }
        NetworkCommand::Prune { force: _ } => {
            let v = client.json(Method::POST, "/networks/prune", None).await?;
            let deleted = v["NetworksDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for d in deleted {
                    println!("{}", d.as_str().unwrap_or(""));
                }
            }
            Ok(0)
        }
    }
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`: the published ports, from inspect.
pub async fn port(client: &Client, container: &str, private: Option<&str>) -> Result<i32> {
    let v = client.json(Method::GET, &format!("/containers/{}/json", enc(container)), None).await?;
    let ports = v.pointer("/NetworkSettings/Ports").and_then(Value::as_object).cloned().unwrap_or_default();
    let want = private.map(|p| if p.contains('/') { p.to_string() } else { format!("{p}/tcp") });
    let mut found = false;
    for (key, bindings) in &ports {
        if want.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in bindings.as_array().cloned().unwrap_or_default() {
            found = true;
            let addr = format!("{}:{}", b["HostIp"].as_str().unwrap_or(""), b["HostPort"].as_str().unwrap_or(""));
            match &want {
                Some(_) => println!("{addr}"),
                None => println!("{key} -> {addr}"),
            }
        }
    }
    if !found {
        if let Some(w) = want {
            anyhow::bail!("Error: No public port '{w}' published for {container}");
        }
    }
    Ok(0)
}
