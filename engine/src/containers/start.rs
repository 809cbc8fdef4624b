//! `start`: mount the root filesystem, write the bundle, hand the container to a new monitor.

use super::model::{Container, Process, State};
use super::{ContainerError, Containers, Entry};
use crate::monitor::{MonitorConfig, Ready};
use crate::network::Mode;
use crate::runtime::spec::{self, SpecInputs};
use crate::state::intent::Pending;
use crate::state::Op;
use crate::util::failpoint;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

/// How long a monitor may take to get the container running.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Containers {
    pub async fn start(self: &Arc<Self>, name: &str) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        self.start_locked(&entry).await
    }

    pub(super) async fn start_locked(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<()> {
        let c = entry.get();
        if let State::Dead { error } = &c.state {
            return Err(ContainerError::Conflict(format!("container {} is dead ({error}): it can only be removed", c.id.short())).into());
        }
        if !c.state.can_start() {
            return Err(ContainerError::NotModified("started").into());
        }
        entry.settle().await;
        let this = self.clone();
        let c2 = c.clone();
        let (intent, prepared) = tokio::task::spawn_blocking(move || -> Result<_> {
            let intent = this.store.begin(Op::StartContainer { id: c2.id.to_string() })?;
            let prepared = this.prepare(&c2);
            failpoint::hit("container.start.after-mount");
            Ok((intent, prepared))
        })
        .await??;
        let bundle = match prepared {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("{e:#}");
                self.start_failed(entry, &c, &msg, &intent).await?;
                return Err(ContainerError::StartFailed(msg).into());
            }
        };
        // The monitor's stdin is the write end of a pipe: it closes it once the exit is
        // recorded, which tells us sooner than its own exit (that waits for `runc delete`).
        let (notify_r, notify_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating the exit pipe")?;
        let spawned = tokio::time::timeout(
            START_TIMEOUT,
            tokio::process::Command::new(&self.exe)
                .arg("monitor")
                .arg(&bundle)
                .stdin(Stdio::from(notify_w))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await;
        let out = match spawned {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                self.undo_start(&c.id).await;
                self.store.finish(&intent)?;
                return Err(anyhow::Error::from(e).context("running the container monitor"));
            }
            Err(_) => {
                self.undo_start(&c.id).await;
                self.store.finish(&intent)?;
                anyhow::bail!("container {} did not start within {START_TIMEOUT:?}", c.id.short());
            }
        };
        failpoint::hit("container.start.after-monitor");
        match Ready::parse(&String::from_utf8_lossy(&out.stdout)) {
            Ready::Started { monitor_pid, container_pid } => {
                let monitor_start = super::exit::process_start_time(monitor_pid).unwrap_or(0);
                self.commit_update(entry, &intent, |c| {
                    c.state = State::Running(Process { pid: container_pid, monitor_pid, monitor_start });
                    c.started_at = Some(crate::util::time::now());
                    c.manually_stopped = false;
                })?;
                // A start by hand ends a wait for a restart by policy.
                entry.set_restarting(false);
                entry.watch.send_modify(|s| {
                    s.running = true;
                    s.starts += 1;
                });
                tracing::info!(container = %c.id.short(), pid = container_pid, "started");
                self.emit(&c, "start", &[]);
                self.watch_exit(entry.clone(), monitor_pid, Some(notify_r));
                self.watch_health(entry.clone());
                Ok(())
            }
            Ready::Failed(msg) => {
                self.start_failed(entry, &c, &msg, &intent).await?;
                Err(ContainerError::StartFailed(msg).into())
            }
        }
    }

    /// Records a failed start the way Docker shows it: exit code 127 for a missing command,
    /// 126 for one that cannot be run, 128 otherwise, with the runtime's message.
    async fn start_failed(self: &Arc<Self>, entry: &Entry, c: &Container, msg: &str, intent: &Pending) -> Result<()> {
        let code = crate::runtime::start_failure_code(msg).unwrap_or(128);
        let this = self.clone();
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || this.release(&id)).await??;
        self.commit_update(entry, intent, |c| {
            c.state = State::Exited { exit_code: code, error: Some(msg.to_string()) };
            c.finished_at = Some(crate::util::time::now());
        })?;
        entry.watch.send_modify(|s| s.exit_code = code);
        tracing::warn!(container = %c.id.short(), "start failed: {msg}");
        Ok(())
    }

    /// Undoes a start whose outcome was never recorded: the runtime container (killed if it
    /// runs), the mount, the bundle. Idempotent; used by start's own error paths and by
    /// recovery.
    pub(super) async fn undo_start(self: &Arc<Self>, id: &crate::util::id::ContainerId) {
        // A monitor left by a crashed daemon would run its own `runc delete` later, possibly
        // against the next run of this id: it goes first. (It waits for processes to die:
        // off the reactor.)
        let bundle = self.bundle_dir(id);
        let _ = tokio::task::spawn_blocking(move || kill_monitors_of(&bundle)).await;
        self.runtime_delete(id.as_str()).await;
        let (this, id2) = (self.clone(), id.clone());
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = this.release(&id2) {
                tracing::warn!(container = %id2.short(), "unmount while undoing a start: {e:#}");
            }
            let _ = crate::storage::remove_tree(&this.bundle_dir(&id2));
        })
        .await;
    }

    /// `<runtime> delete --force`: kills and forgets the runtime's container for `id`, under
    /// whichever configured runtime has one (a leftover may have no record to say which).
    pub(super) async fn runtime_delete(&self, id: &str) {
        for rt in self.cfg.runtimes.values() {
            let root = crate::runtime::runtime_root(&self.cfg.exec_root, &rt.name);
            if !root.join(id).exists() {
                continue;
            }
            if let Err(e) = crate::runtime::command(&self.cfg.exec_root, rt, &["delete", "--force", id]).await {
                tracing::warn!(container = %id, "{e:#}");
            }
        }
    }

    /// What a stopped container holds only while it runs: its root filesystem mount, and
    /// its network namespace with interfaces, rules and port holds. Idempotent.
    pub(super) fn release(&self, id: &crate::util::id::ContainerId) -> Result<()> {
        self.leave_networks_and_volumes(id);
        self.driver.unmount(id)
    }

    /// The namespace, interfaces, rules, port holds and volume mounts of a run. Idempotent.
    pub(super) fn leave_networks_and_volumes(&self, id: &crate::util::id::ContainerId) {
        self.networks.detach(id);
        self.volumes.detach(id);
    }

    /// The network namespace the container runs in (`None`: the host's), set up.
    fn join_network(&self, c: &Container) -> Result<Option<PathBuf>> {
        match self.networks.mode(&c.host_config.network_mode)? {
            Mode::Host => Ok(None),
            Mode::Container(target) => match self.lookup(&target)?.get().state {
                s if s.is_running() => Ok(Some(PathBuf::from(format!("/proc/{}/ns/net", s.process().unwrap().pid)))),
                _ => Err(ContainerError::Conflict(format!("cannot join network of a non running container: {target}")).into()),
            },
            Mode::None | Mode::Bridge(_) => {
                let publish_all = c.host_config.extra.get("PublishAllPorts").and_then(serde_json::Value::as_bool).unwrap_or(false);
                let requests = crate::network::ports::requests(
                    c.host_config.extra.get("PortBindings"),
                    publish_all,
                    c.config.exposed_ports.as_ref().unwrap_or(&Default::default()),
                )
                .map_err(ContainerError::Invalid)?;
                let names = vec![c.name.clone(), c.id.short().to_string(), c.config.hostname.clone()];
                Ok(Some(self.networks.attach(&c.id, names, &requests)?))
            }
        }
    }

    /// `--pid`, `--ipc`, `--uts`: `host`, or `container:<name>` (which must run).
    fn shared_namespaces(&self, c: &Container) -> Result<Vec<(&'static str, Option<PathBuf>)>> {
        let mut out = Vec::new();
        for (key, kind) in [("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts")] {
            let mode = c.host_config.extra.get(key).and_then(serde_json::Value::as_str).unwrap_or("");
            if mode == "host" {
                out.push((kind, None));
            } else if let Some(target) = mode.strip_prefix("container:") {
                match self.lookup(target)?.get().state.process() {
                    Some(p) => out.push((kind, Some(PathBuf::from(format!("/proc/{}/ns/{kind}", p.pid))))),
                    None => {
                        return Err(ContainerError::Conflict(format!(
                            "cannot join the {kind} namespace of a non running container: {target}"
                        ))
                        .into())
                    }
                }
            }
        }
        Ok(out)
    }

    /// Blocking part of start: mount, resolve the user, write config.json and monitor.json.
    fn prepare(&self, c: &Container) -> Result<PathBuf> {
        // The network (a namespace and a veth: a few milliseconds of kernel work) is made
        // beside the root filesystem and the process's settings; the spec needs both. On an
        // error the caller's `release` undoes whichever half was done.
        let (netns, root) = std::thread::scope(|s| {
            let net = s.spawn(|| self.join_network(c));
            let root = self.prepare_root(c);
            (net.join(), root)
        });
        let netns = netns.map_err(|_| anyhow::anyhow!("the network set-up thread panicked"))??;
        let RootPrepared { rootfs, user, env, init, mounts } = root?;
        let spec = spec::build(
            c,
            &SpecInputs {
                rootfs: &rootfs,
                user: &user,
                env: &env,
                hostname: &c.config.hostname,
                netns: netns.as_deref(),
                mounts: &mounts,
                umask: c.umask,
                init,
                shared_ns: self.shared_namespaces(c)?,
                hooks: &self.cfg.hooks.then(&c.hooks),
                cgroup_parent: &self.cfg.cgroup_parent,
            },
        )?;
        self.write_bundle(c, &spec)
    }

    /// The root filesystem mounted, and what the process needs from it.
    fn prepare_root<'a>(&'a self, c: &Container) -> Result<RootPrepared<'a>> {
        let rootfs = self.driver.mount(&c.id, &c.layers)?;
        let mut user = super::user::resolve(&rootfs, &c.config.user)?;
        let groups: Vec<String> =
            c.host_config.extra.get("GroupAdd").and_then(|g| serde_json::from_value(g.clone()).ok()).unwrap_or_default();
        for g in super::user::extra_groups(&rootfs, &groups)? {
            if !user.additional_gids.contains(&g) {
                user.additional_gids.push(g);
            }
        }
        if !c.config.working_dir.is_empty() {
            let wd = crate::util::scope::secure_join(&rootfs, Path::new(&c.config.working_dir))?;
            if !wd.exists() {
                std::fs::create_dir_all(&wd).with_context(|| format!("creating the working directory {}", c.config.working_dir))?;
                nix::unistd::chown(&wd, Some(user.uid.into()), Some(user.gid.into()))?;
            }
        }
        let mut env = c.config.env.clone().unwrap_or_default();
        let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
        if !has(&env, "PATH") {
            env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        if !has(&env, "HOSTNAME") {
            env.insert(1.min(env.len()), format!("HOSTNAME={}", c.config.hostname));
        }
        if !has(&env, "HOME") {
            env.push(format!("HOME={}", user.home));
        }
        let init = match c.host_config.extra.get("Init").and_then(serde_json::Value::as_bool).unwrap_or(self.cfg.init) {
            false => None,
            true => Some(self.cfg.init_path.as_deref().context("--init needs a statically linked init; set init-path in daemon.json")?),
        };
        let mounts = self.volumes.attach(&c.id, &rootfs)?;
        Ok(RootPrepared { rootfs, user, env, init, mounts })
    }

    /// Writes config.json and monitor.json; returns the bundle directory.
    fn write_bundle(&self, c: &Container, spec: &oci_spec::runtime::Spec) -> Result<PathBuf> {
        // The bundle lives under exec-root (a tmpfs on devices) and is written anew at every
        // start: nothing in it must survive a power cut, so it is not fsynced.
        let bundle = self.bundle_dir(&c.id);
        std::fs::create_dir_all(&bundle)?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(spec)?).context("writing config.json")?;
        let runtime = &self.cfg.runtimes[&c.runtime];
        let mcfg = MonitorConfig {
            id: c.id.to_string(),
            runtime_path: runtime.path.clone(),
            runtime_args: runtime.args.clone(),
            runtime_root: crate::runtime::runtime_root(&self.cfg.exec_root, &runtime.name),
            bundle: bundle.clone(),
            log_path: c.log_path.clone(),
            log_limits: c.log_limits,
            exit_file: self.exit_file(&c.id),
            control_socket: self.control_socket(&c.id),
            tty: c.config.tty,
            open_stdin: c.config.open_stdin,
            stdin_once: c.config.stdin_once,
            console_size: console_size(&c.host_config),
        };
        // A stale exit file from the previous run must not be read as this run's.
        berth_images::durable::remove_file(&mcfg.exit_file)?;
        std::fs::write(bundle.join(MonitorConfig::FILE), serde_json::to_vec(&mcfg)?).context("writing monitor.json")?;
        Ok(bundle)
    }
}

/// The half of a start's preparation that works on the root filesystem.
struct RootPrepared<'a> {
    rootfs: PathBuf,
    user: super::user::ResolvedUser,
    env: Vec<String>,
    init: Option<&'a Path>,
    mounts: Vec<serde_json::Value>,
}

/// `HostConfig.ConsoleSize` (`[rows, cols]`), when both are set.
fn console_size(hc: &super::model::HostConfig) -> Option<(u16, u16)> {
    let v = hc.extra.get("ConsoleSize")?.as_array()?;
    let n = |i: usize| v.get(i).and_then(serde_json::Value::as_u64).and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0);
    Some((n(0)?, n(1)?))
}

/// Kills every `berth monitor <bundle>` process (found through /proc) and waits for it to go.
pub(crate) fn kill_monitors_of(bundle: &Path) {
    let want = bundle.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else { return };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.len() >= 3 && args[1] == b"monitor" && args[2] == want {
            tracing::warn!(pid, bundle = %bundle.display(), "killing a monitor left by a previous daemon");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            for _ in 0..100 {
                if !super::exit::process_alive(pid) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
