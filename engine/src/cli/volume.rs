//! `volume ...`, and the parsing of `--mount` and `--tmpfs` for `create`/`run`.

use super::client::Client;
use super::commands::{each, enc, filters, inspect_each, table};
use super::run::key_values;
use anyhow::{bail, Result};
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Map, Value};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Driver options (type=tmpfs, device=tmpfs, o=size=100m)
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        #[arg(long = "label")]
        label: Vec<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(short = 'f', long)]
        filter: Vec<String>,
    },
    /// Display detailed information on volumes
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused anonymous volumes (all unused ones with -a)
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(short = 'f', long)]
        force: bool,
    },
}

pub async fn run(client: &Client, cmd: VolumeCommand) -> Result<i32> {
    match cmd {
        VolumeCommand::Create { driver, opt, label, name } => {
            let body =
                json!({"Name": name.unwrap_or_default(), "Driver": driver, "DriverOpts": key_values(&opt), "Labels": key_values(&label)});
            let v = client.json(Method::POST, "/volumes/create", Some(body)).await?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(0)
        }
        VolumeCommand::Ls { quiet, filter } => {
            let path = format!("/volumes?filters={}", filters(&filter)?);
            let v = client.json(Method::GET, &path, None).await?;
            let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".into()]];
            for vol in v["Volumes"].as_array().cloned().unwrap_or_default() {
                let name = vol["Name"].as_str().unwrap_or("").to_string();
                if quiet {
                    println!("{name}");
                } else {
                    rows.push(vec!["local".into(), name]);
                }
            }
            if !quiet {
                table(&rows);
            }
            Ok(0)
        }
        VolumeCommand::Inspect { format, volumes } => inspect_each(client, "volumes", "", &volumes, format.as_deref()).await,
        VolumeCommand::Rm { force, volumes } => {
            each(&volumes, |n| async move {
                client.call(Method::DELETE, &format!("/volumes/{}?force={}", enc(&n), force as u8), None).await.map(drop)
            })
            .await
        }
        VolumeCommand::Prune { all, force: _ } => {
            let path = if all { format!("/volumes/prune?filters={}", enc(r#"{"all":{"true":true}}"#)) } else { "/volumes/prune".into() };
            let v = client.json(Method::POST, &path, None).await?;
            let deleted = v["VolumesDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in deleted {
                    println!("{}", d.as_str().unwrap_or(""));
                }
            }
            println!("\nTotal reclaimed space: {}", super::format::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0)));
            Ok(0)
        }
    }
}

/// `--mount type=bind,source=/a,target=/b,readonly` into a `HostConfig.Mounts` object.
pub fn mount_flag(spec: &str) -> Result<Value> {
    let mut m = Map::new();
    let mut typ = "volume".to_string();
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => typ = v.to_string(),
            "source" | "src" => {
                m.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(v.is_empty() || v == "true" || v == "1"));
            }
            "volume-nocopy" => {
                m.insert("VolumeOptions".into(), json!({"NoCopy": v.is_empty() || v == "true"}));
            }
            "bind-propagation" => {
                m.insert("BindOptions".into(), json!({"Propagation": v}));
            }
            "tmpfs-size" => {
                let size = crate::config::parse_size(v)?;
                m.entry("TmpfsOptions").or_insert_with(|| json!({}))["SizeBytes"] = json!(size);
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(v, 8).map_err(|_| anyhow::anyhow!("invalid tmpfs-mode {v:?}"))?;
                m.entry("TmpfsOptions").or_insert_with(|| json!({}))["Mode"] = json!(mode);
            }
            _ => bail!("invalid field {k:?} in --mount {spec:?}"),
        }
    }
    m.insert("Type".into(), json!(typ));
    Ok(Value::Object(m))
}
