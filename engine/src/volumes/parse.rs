//! The API's ways of asking for mounts, into one list: `HostConfig.Binds` (`-v`),
//! `HostConfig.Mounts` (`--mount`), `HostConfig.Tmpfs` (`--tmpfs`) and `Config.Volumes`
//! (anonymous volumes: `-v /path` and the image's VOLUME). Pure; every error is the user's.

use super::model::{valid_name, MountPoint, Source};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

const PROPAGATIONS: &[&str] = &["private", "rprivate", "shared", "rshared", "slave", "rslave"];

/// A volume named in a request, or `None` for an anonymous one (named at create).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub mount: MountPoint,
    /// For volume mounts: the name asked for (`None`: anonymous).
    pub name: Option<String>,
}

fn check_destination(d: &str) -> Result<String, String> {
    if !d.starts_with('/') {
        return Err(format!("invalid mount config: the mount destination {d:?} is not an absolute path"));
    }
    let clean: String = {
        let parts: Vec<&str> = d.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        if parts.contains(&"..") {
            return Err(format!("invalid mount config: the mount destination {d:?} contains '..'"));
        }
        format!("/{}", parts.join("/"))
    };
    if clean == "/" {
        return Err("invalid mount config: the destination cannot be '/'".into());
    }
    Ok(clean)
}

fn volume_or_bind(source: &str, dest: &str, rw: bool, nocopy: bool, propagation: &str) -> Result<Request, String> {
    let destination = check_destination(dest)?;
    if source.starts_with('/') {
        return Ok(Request {
            mount: MountPoint {
                destination,
                source: Source::Bind(PathBuf::from(source)),
                rw,
                nocopy: false,
                propagation: propagation.into(),
            },
            name: None,
        });
    }
    if !source.is_empty() && !valid_name(source) {
        return Err(format!(
            "create {source}: {source:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    let name = (!source.is_empty()).then(|| source.to_string());
    Ok(Request {
        mount: MountPoint { destination, source: Source::Volume(source.to_string()), rw, nocopy, propagation: String::new() },
        name,
    })
}

/// One `-v` entry: `src:dst[:opts]` (src a path or a volume name), or `dst` alone.
pub fn bind_spec(spec: &str) -> Result<Request, String> {
    let bad = || format!("invalid volume specification: {spec:?}");
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(bad()),
    };
    if dst.is_empty() || (parts.len() > 1 && src.is_empty()) {
        return Err(bad());
    }
    let (mut rw, mut nocopy, mut propagation) = (true, false, "rprivate".to_string());
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            "nocopy" => nocopy = true,
            "z" | "Z" => {}
            p if PROPAGATIONS.contains(&p) => propagation = p.to_string(),
            _ => return Err(format!("invalid mode {o:?} in volume specification {spec:?}")),
        }
    }
    volume_or_bind(src, dst, rw, nocopy, &propagation)
}

/// Everything a create request asks for, duplicates refused.
pub fn requests(hc_extra: &serde_json::Map<String, Value>, volumes: &BTreeMap<String, Value>) -> Result<Vec<Request>, String> {
    let mut out: Vec<Request> = Vec::new();
    match hc_extra.get("Binds") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for b in list {
                out.push(bind_spec(b.as_str().ok_or("HostConfig.Binds must be a list of strings")?)?);
            }
        }
        Some(_) => return Err("HostConfig.Binds must be a list of strings".into()),
    }
    match hc_extra.get("Mounts") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for m in list {
                out.push(mount_object(m)?);
            }
        }
        Some(_) => return Err("HostConfig.Mounts must be a list".into()),
    }
    match hc_extra.get("Tmpfs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (dest, opts) in map {
                let opts: Vec<String> = opts.as_str().unwrap_or("").split(',').filter(|o| !o.is_empty()).map(String::from).collect();
                let rw = !opts.iter().any(|o| o == "ro");
                out.push(Request {
                    mount: MountPoint {
                        destination: check_destination(dest)?,
                        source: Source::Tmpfs(opts),
                        rw,
                        nocopy: true,
                        propagation: String::new(),
                    },
                    name: None,
                });
            }
        }
        Some(_) => return Err("HostConfig.Tmpfs must be an object of path: options".into()),
    }
    for dest in volumes.keys() {
        let d = check_destination(dest)?;
        if !out.iter().any(|r| r.mount.destination == d) {
            out.push(volume_or_bind("", &d, true, false, "")?);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &out {
        if !seen.insert(r.mount.destination.clone()) {
            return Err(format!("Duplicate mount point: {}", r.mount.destination));
        }
    }
    Ok(out)
}

/// One `HostConfig.Mounts` object (`--mount`).
fn mount_object(m: &Value) -> Result<Request, String> {
    let typ = m["Type"].as_str().unwrap_or("");
    let target = m["Target"].as_str().or(m["Destination"].as_str()).unwrap_or("");
    if target.is_empty() {
        return Err("invalid mount config: Target is required".into());
    }
    let source = m["Source"].as_str().unwrap_or("");
    let rw = !m["ReadOnly"].as_bool().unwrap_or(false);
    match typ {
        "bind" => {
            if !source.starts_with('/') {
                return Err(format!("invalid mount config for type \"bind\": invalid mount path: {source:?} mount path must be absolute"));
            }
            let propagation = m.pointer("/BindOptions/Propagation").and_then(Value::as_str).filter(|p| !p.is_empty()).unwrap_or("rprivate");
            if !PROPAGATIONS.contains(&propagation) {
                return Err(format!("invalid propagation mode {propagation:?}"));
            }
            volume_or_bind(source, target, rw, false, propagation)
        }
        "volume" => {
            if source.starts_with('/') {
                return Err(format!("invalid mount config for type \"volume\": {source:?} is a path; use type=bind"));
            }
            if m.pointer("/VolumeOptions/DriverConfig/Name").and_then(Value::as_str).is_some_and(|d| !d.is_empty() && d != "local") {
                return Err("only the local volume driver is available".into());
            }
            let nocopy = m.pointer("/VolumeOptions/NoCopy").and_then(Value::as_bool).unwrap_or(false);
            volume_or_bind(source, target, rw, nocopy, "")
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err("invalid mount config for type \"tmpfs\": Source must not be set".into());
            }
            let mut opts = Vec::new();
            if let Some(size) = m.pointer("/TmpfsOptions/SizeBytes").and_then(Value::as_i64).filter(|s| *s > 0) {
                opts.push(format!("size={size}"));
            }
            if let Some(mode) = m.pointer("/TmpfsOptions/Mode").and_then(Value::as_u64) {
                opts.push(format!("mode={mode:o}"));
            }
            Ok(Request {
                mount: MountPoint {
                    destination: check_destination(target)?,
                    source: Source::Tmpfs(opts),
                    rw,
                    nocopy: true,
                    propagation: String::new(),
                },
                name: None,
            })
        }
        other => Err(format!("invalid mount config: mount type {other:?} is not supported (bind, volume, tmpfs)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binds_volumes_and_anonymous() {
        let b = bind_spec("/srv/data:/data:ro").unwrap();
        assert_eq!(b.mount.source, Source::Bind("/srv/data".into()));
        assert!(!b.mount.rw);
        let v = bind_spec("cache:/var/cache/:nocopy").unwrap();
        assert_eq!((v.name.as_deref(), v.mount.destination.as_str(), v.mount.nocopy), (Some("cache"), "/var/cache", true));
        let a = bind_spec("/scratch").unwrap();
        assert_eq!((a.name, a.mount.source), (None, Source::Volume(String::new())));
        for bad in ["a/b:/x", "vol:relative", "x:/y:bogus", "a:b:c:d", "v:/", "v:/a/../b", ":/x:", "/src:"] {
            assert!(bind_spec(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mounts_tmpfs_and_duplicates() {
        let extra: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}},
                       {"Type": "volume", "Source": "v1", "Target": "/v", "VolumeOptions": {"NoCopy": true}}],
            "Tmpfs": {"/run": "rw,size=1m"},
        }))
        .unwrap();
        let volumes: BTreeMap<String, Value> = [("/anon".to_string(), json!({})), ("/v".to_string(), json!({}))].into();
        let r = requests(&extra, &volumes).unwrap();
        assert_eq!(r.len(), 4, "an image VOLUME at a mounted path is not doubled: {r:?}");
        assert_eq!(r[0].mount.source, Source::Tmpfs(vec!["size=1048576".into(), "mode=700".into()]));
        assert!(r[1].mount.nocopy);
        let dup: serde_json::Map<String, Value> = serde_json::from_value(json!({"Binds": ["/a:/x", "vv:/x"]})).unwrap();
        assert!(requests(&dup, &BTreeMap::new()).unwrap_err().contains("Duplicate mount point"));
        let bad: serde_json::Map<String, Value> =
            serde_json::from_value(json!({"Mounts": [{"Type": "bind", "Source": "rel", "Target": "/x"}]})).unwrap();
        assert!(requests(&bad, &BTreeMap::new()).is_err());
        let bad: serde_json::Map<String, Value> = serde_json::from_value(json!({"Mounts": [{"Type": "npipe", "Target": "/x"}]})).unwrap();
        assert!(requests(&bad, &BTreeMap::new()).is_err());
    }
}
