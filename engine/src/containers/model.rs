//! The container record and its state machine.

use crate::config::LogLimits;
use crate::util::id::ContainerId;
use berth_images::Digest;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Docker's "strslice": a JSON string or a list of strings.
pub(crate) fn strslice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

pub(crate) fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Config` of a create request and of `inspect`. Fields berth does not act on are kept in
/// `extra` and handed back by `inspect`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub hostname: String,
    #[serde(default, deserialize_with = "null_default")]
    pub domainname: String,
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default, deserialize_with = "strslice")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_default")]
    pub image: String,
    #[serde(default, deserialize_with = "null_default")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "strslice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default)]
    pub maximum_retry_count: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogConfig {
    #[serde(rename = "Type", default, deserialize_with = "null_default")]
    pub typ: String,
    #[serde(rename = "Config", default, deserialize_with = "null_default")]
    pub config: BTreeMap<String, String>,
}

/// `HostConfig` of a create request and of `inspect`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub network_mode: String,
    #[serde(default)]
    pub auto_remove: bool,
    #[serde(default)]
    pub readonly_rootfs: bool,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub log_config: Option<LogConfig>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The processes of a running (or paused) container.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Process {
    /// The container's init process, as seen from the host.
    pub pid: i32,
    pub monitor_pid: i32,
    /// The monitor's start time (clock ticks after boot, /proc/<pid>/stat field 22): tells
    /// our monitor apart from an unrelated process that reused its pid.
    pub monitor_start: u64,
}

/// Where a container is in its life. Each variant holds exactly what is true in it: only a
/// running or paused container has pids.
///
/// Records are postcard-encoded by variant index: new variants go at the end. `Running(Process)`
/// encodes exactly as the struct variant of layout 1 and 2 did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum State {
    Created,
    Running(Process),
    Exited {
        exit_code: i32,
        error: Option<String>,
    },
    /// Something it needs is gone (its root filesystem after a crash): shown, never dropped
    /// silently; it can only be removed.
    Dead {
        error: String,
    },
    /// Frozen (`pause`): its processes exist but get no CPU until `unpause`.
    Paused(Process),
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running(_) => "running",
            State::Exited { .. } => "exited",
            State::Dead { .. } => "dead",
            State::Paused(_) => "paused",
        }
    }

    /// Running or paused: its processes exist (Docker's `Running`, which stays true while
    /// paused).
    pub fn is_running(&self) -> bool {
        self.process().is_some()
    }

    /// The processes of a running or paused container.
    pub fn process(&self) -> Option<Process> {
        match self {
            State::Running(p) | State::Paused(p) => Some(*p),
            _ => None,
        }
    }

    pub fn can_start(&self) -> bool {
        matches!(self, State::Created | State::Exited { .. })
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            State::Exited { exit_code, .. } => *exit_code,
            _ => 0,
        }
    }
}

/// The persisted container record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    pub id: ContainerId,
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image_name: String,
    pub image_id: Digest,
    /// Chain ids of the image's layers, bottom first: what the root filesystem stands on.
    pub layers: Vec<Digest>,
    /// The image defaults merged with the request: what runs. Docker-shaped documents that
    /// grow with the API, stored as JSON text.
    #[serde(with = "crate::state::codec::as_json")]
    pub config: ContainerConfig,
    #[serde(with = "crate::state::codec::as_json")]
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub restart_count: u32,
    pub log_path: PathBuf,
    pub log_limits: LogLimits,
    pub umask: u32,
    pub runtime: String,
    /// Stopped with `stop` (not by itself, not by `kill`): restart policies leave it be.
    pub manually_stopped: bool,
    /// Its own OCI hooks (`HostConfig.HookSpec`, read and checked at create).
    #[serde(with = "crate::state::codec::as_json")]
    pub hooks: crate::runtime::hooks::HookSpec,
}

impl Container {
    /// The logging driver: `json-file` or `none`.
    pub fn log_driver(&self) -> &str {
        match self.host_config.log_config.as_ref().map(|l| l.typ.as_str()) {
            Some("none") => "none",
            _ => "json-file",
        }
    }
}

impl crate::state::Record for Container {
    const TABLE: &'static str = "containers";
    /// 2: `manually_stopped` appended. 3: `hooks` appended.
    const VERSION: u8 = 3;

    fn upgrade(version: u8, bytes: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(version == 1 || version == 2, "no upgrade from layout version {version} of containers records");
        // postcard writes fields in order: an older layout plus the defaults of what was
        // appended since (a bool is one byte; `hooks` is JSON text).
        let mut b = bytes.to_vec();
        if version == 1 {
            b.push(0);
        }
        let no_hooks = serde_json::to_string(&crate::runtime::hooks::HookSpec::default())?;
        b.extend(postcard::to_allocvec(&no_hooks)?);
        Ok(postcard::from_bytes(&b)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_shapes() {
        let c: ContainerConfig =
            serde_json::from_str(r#"{"Cmd":"echo hi","Entrypoint":null,"Env":null,"Hostname":"","Healthcheck":{"Test":["NONE"]}}"#)
                .unwrap();
        assert_eq!(c.cmd, Some(vec!["echo hi".to_string()]));
        assert!(c.entrypoint.is_none());
        assert!(c.extra.contains_key("Healthcheck"));
    }

    #[test]
    fn layouts_1_and_2_upgrade() {
        use crate::state::codec::{decode, encode};
        let c = Container {
            id: crate::util::id::ContainerId::random().unwrap(),
            name: "n".into(),
            created: "t".into(),
            image_name: "busybox".into(),
            image_id: "sha256:0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap(),
            layers: vec![],
            config: Default::default(),
            host_config: Default::default(),
            path: "sh".into(),
            args: vec![],
            state: State::Exited { exit_code: 3, error: None },
            started_at: None,
            finished_at: None,
            restart_count: 2,
            log_path: "/l".into(),
            log_limits: crate::config::LogLimits { max_size: None, max_file: 1 },
            umask: 0o22,
            runtime: "runc".into(),
            manually_stopped: true,
            hooks: Default::default(),
        };
        let v3 = encode(&c).unwrap();
        // Layout 2 is layout 3 without the hooks ("{}": a length byte and two bytes), layout 1
        // is layout 2 without its last byte.
        let mut v2 = v3[..v3.len() - 3].to_vec();
        v2[0] = 2;
        let up: Container = decode(&v2).unwrap();
        assert_eq!((up.restart_count, up.manually_stopped, up.hooks.is_empty()), (2, true, true));
        let mut v1 = v2[..v2.len() - 1].to_vec();
        v1[0] = 1;
        let up: Container = decode(&v1).unwrap();
        assert_eq!((up.restart_count, up.manually_stopped, up.state), (2, false, State::Exited { exit_code: 3, error: None }));
    }

    #[test]
    fn state_round_trips() {
        let p = Process { pid: 5, monitor_pid: 4, monitor_start: 99 };
        for s in [State::Running(p), State::Paused(p)] {
            let b = postcard::to_allocvec(&s).unwrap();
            assert_eq!(postcard::from_bytes::<State>(&b).unwrap(), s);
            assert!(!s.can_start() && s.is_running());
        }
        assert!(State::Exited { exit_code: 3, error: None }.can_start());
    }

    #[test]
    fn running_reads_as_layouts_1_and_2_wrote_it() {
        // The state as records of layout 1 and 2 held it.
        #[derive(Serialize)]
        enum Old {
            #[allow(dead_code)]
            Created,
            Running {
                pid: i32,
                monitor_pid: i32,
                monitor_start: u64,
            },
        }
        let b = postcard::to_allocvec(&Old::Running { pid: 5, monitor_pid: 4, monitor_start: 99 }).unwrap();
        let s: State = postcard::from_bytes(&b).unwrap();
        assert_eq!(s, State::Running(Process { pid: 5, monitor_pid: 4, monitor_start: 99 }));
    }
}
