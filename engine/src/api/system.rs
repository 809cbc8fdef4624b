//! `/_ping`, `/version`, `/info`.

use super::body::{empty, full, Response};
use super::error::ApiResult;
use super::router::{json, Ctx};
use serde_json::json;

pub fn ping(head: bool) -> Response {
    hyper::Response::builder()
        .header("Api-Version", crate::API_VERSION)
        .header("OSType", "linux")
        .header("Docker-Experimental", "false")
        .header("Builder-Version", "1")
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header("Pragma", "no-cache")
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(if head { empty() } else { full("OK") })
        .unwrap()
}

fn kernel() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

fn arch() -> &'static str {
    std::env::consts::ARCH
}

pub fn version(_ctx: &Ctx) -> ApiResult {
    json(&json!({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": crate::VERSION, "Details": {
            "ApiVersion": crate::API_VERSION, "MinAPIVersion": crate::MIN_API_VERSION, "Os": "linux", "Arch": crate::images::host_arch(), "KernelVersion": kernel()
        }}],
        "Version": crate::VERSION,
        "ApiVersion": crate::API_VERSION,
        "MinAPIVersion": crate::MIN_API_VERSION,
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
        "GoVersion": "none (Rust)",
        "Os": "linux",
        "Arch": crate::images::host_arch(),
        "KernelVersion": kernel(),
        "BuildTime": "",
    }))
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap_or(0) * 1024)
            })
        })
        .unwrap_or(0)
}

/// `docker system df`: what images and containers take. Volumes and the build cache do not
/// exist yet: empty lists.
pub fn df(ctx: &Ctx) -> ApiResult {
    let d = &ctx.d;
    let (users, _) = d.containers.image_users();
    let images: Vec<serde_json::Value> = d
        .images
        .list()
        .iter()
        .map(|i| {
            json!({
                "Id": i.id, "ParentId": "", "RepoTags": d.images.tags_of(&i.id), "RepoDigests": d.images.digests_of(&i.id),
                "Created": crate::util::time::unix(&i.created), "Size": i.size, "SharedSize": -1, "VirtualSize": i.size,
                "Labels": {}, "Containers": users.keys().filter(|k| **k == i.id).count(),
            })
        })
        .collect();
    let containers: Vec<serde_json::Value> = d
        .containers
        .list()
        .iter()
        .map(|c| {
            json!({
                "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image_name, "ImageID": c.image_id,
                "Command": c.path, "Created": crate::util::time::unix(&c.created), "State": c.state.name(),
                "Status": c.state.describe(c.started_at.as_deref(), c.finished_at.as_deref()), "SizeRw": d.driver.container_rw_size(&c.id),
                "Labels": c.config.labels.clone().unwrap_or_default(), "Mounts": [],
            })
        })
        .collect();
    json(&json!({
        "LayersSize": d.images.layers_size()?,
        "Images": images,
        "Containers": containers,
        "Volumes": [],
        "BuildCache": [],
    }))
}

pub async fn info(ctx: &Ctx) -> ApiResult {
    let d = &ctx.d;
    let (all, running, paused, stopped) = d.containers.counts();
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let runtimes: serde_json::Map<String, serde_json::Value> =
        d.cfg.runtimes.values().map(|r| (r.name.clone(), json!({"path": r.path, "runtimeArgs": r.args}))).collect();
    let hostname = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    json(&json!({
        "ID": d.id,
        "Containers": all,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": d.images.list().len(),
        "Driver": d.driver.name(),
        "DriverStatus": d.driver.status(),
        "Plugins": {"Volume": [], "Network": ["host", "null"], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true, "SwapLimit": false, "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
        "PidsLimit": true, "OomKillDisable": !cgroup_v2, "IPv4Forwarding": false, "BridgeNfIptables": false, "BridgeNfIp6tables": false,
        "Debug": d.cfg.log_level == tracing::Level::DEBUG,
        "NFd": std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0),
        "NGoroutines": 0,
        "SystemTime": crate::util::time::now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
        "NEventsListener": 0,
        "KernelVersion": kernel(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": arch(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [], "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "GenericResources": null,
        "DockerRootDir": d.cfg.data_root,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": crate::VERSION,
        "Runtimes": runtimes,
        "DefaultRuntime": d.cfg.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        // berth's own: the supervisor's restarts of this daemon (`berth supervise`).
        "BerthSupervisor": crate::watchdog::history::History::for_info(),
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": [],
        "Warnings": [],
        "BerthState": {
            "Path": d.store.path(),
            "Size": d.store.size(),
            "Schema": d.store.schema(),
            "LastRecovery": d.recovery.lock().unwrap().clone(),
        },
    }))
}
