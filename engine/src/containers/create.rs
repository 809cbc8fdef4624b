//! `POST /containers/create`: validate everything first (nothing is created for a bad
//! request), merge the image's defaults, then make the root filesystem and the record.

use super::model::{Container, ContainerConfig, HostConfig, State};
use super::{health, names, ContainerError, Containers, Entry};
use crate::config::{umask_option, LogLimits};
use crate::network::{ports, EndpointRequest, Mode};
use crate::state::Op;
use crate::util::failpoint;
use crate::util::id::{valid_name, ContainerId};
use anyhow::{Context, Result};
use berth_images::Reference;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// The create request body.
#[derive(Debug, Deserialize)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(rename = "HostConfig", default)]
    pub host_config: Option<HostConfig>,
    #[serde(rename = "NetworkingConfig", default)]
    pub networking_config: Option<Value>,
    /// The builder's COPY and ADD steps: the image's VOLUMEs are not mounted, so what is
    /// copied under them lands in the layer (as in Docker; a RUN step's writes there do not).
    #[serde(skip)]
    pub no_image_volumes: bool,
}

/// HostConfig fields whose features come in later work: a request that sets one gets a
/// clear 501 instead of a container that silently lacks it.
const NOT_YET: &[(&str, &str)] = &[("Links", "links (--link)"), ("Devices", "--device")];

fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != "private" && s != "shareable",
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A list of strings in `HostConfig.extra` (`Dns`, `ExtraHosts`, ...).
fn strings(hc: &HostConfig, key: &str) -> Result<Vec<String>, ContainerError> {
    match hc.extra.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|_| ContainerError::Invalid(format!("HostConfig.{key} must be a list of strings")))
        }
    }
}

/// The endpoint settings of a create request for `network` (`--ip`, `--network-alias`,
/// `--mac-address`), from `NetworkingConfig.EndpointsConfig`.
fn endpoint_request(req: &Option<Value>, network: &str, config: &ContainerConfig) -> Result<EndpointRequest, ContainerError> {
    let mut out = EndpointRequest::default();
    let eps = req.as_ref().and_then(|n| n.get("EndpointsConfig")).and_then(Value::as_object);
    if let Some(eps) = eps {
        if eps.len() > 1 {
            return Err(ContainerError::Invalid(
                "a container can be created on one network; connect it to others after (docker network connect)".into(),
            ));
        }
        if let Some(ep) = eps.values().next() {
            out = EndpointRequest::from_settings(ep).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        }
    }
    if out.mac.is_none() {
        out.mac = config.extra.get("MacAddress").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    }
    let _ = network;
    Ok(out)
}

fn merge_env(image: &[String], request: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let mut out: Vec<String> = image.to_vec();
    for e in request {
        let k = key(e);
        out.retain(|x| key(x) != k);
        out.push(e.clone());
    }
    out
}

/// `--log-driver none`: nothing is kept on the data disk. The output still passes through a
/// small file in exec-root (memory on devices) because `attach` reads it from there.
const NO_LOG_LIMITS: LogLimits = LogLimits { max_size: Some(1024 * 1024), max_file: 1 };

impl Containers {
    pub async fn create(self: &Arc<Self>, name: Option<&str>, req: CreateRequest) -> Result<ContainerId> {
        let mut config = req.config;
        let mut hc = req.host_config.unwrap_or_default();
        let req_no_image_volumes = req.no_image_volumes;

        // 1. Validate: 400/404/501 before anything exists.
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            if !valid_name(n.strip_prefix('/').unwrap_or(n)) {
                return Err(
                    ContainerError::Invalid(format!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")).into()
                );
            }
        }
        if hc.privileged {
            return Err(ContainerError::NotImplemented("--privileged".into()).into());
        }
        for (key, flag) in NOT_YET {
            if hc.extra.get(*key).is_some_and(is_set) {
                return Err(ContainerError::NotImplemented(format!("{flag} (HostConfig.{key})")).into());
            }
        }
        crate::runtime::resources::validate(&hc.extra).map_err(ContainerError::Invalid)?;
        let hooks = match hc.extra.get("HookSpec").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            None => Default::default(),
            Some(file) => {
                crate::runtime::hooks::HookSpec::load(std::path::Path::new(file), &self.cfg.hooks_dir()).map_err(ContainerError::Invalid)?
            }
        };
        for (key, allowed) in
            [("PidMode", &["", "host"][..]), ("IpcMode", &["", "host", "private", "shareable"]), ("UTSMode", &["", "host"])]
        {
            let mode = hc.extra.get(key).and_then(Value::as_str).unwrap_or("");
            if !allowed.contains(&mode) && mode.strip_prefix("container:").is_none_or(str::is_empty) {
                return Err(ContainerError::Invalid(format!("invalid {key}: {mode:?}")).into());
            }
        }
        let init = hc.extra.get("Init").and_then(Value::as_bool).unwrap_or(self.cfg.init);
        if init && self.cfg.init_path.is_none() {
            return Err(ContainerError::Invalid(
                "--init needs a statically linked init: this daemon's executable is dynamically linked; set init-path in daemon.json"
                    .into(),
            )
            .into());
        }
        let policy = super::restart::Policy::of(hc.restart_policy.as_ref())?;
        if hc.auto_remove && policy != super::restart::Policy::No {
            return Err(ContainerError::Invalid("conflicting options: cannot specify both --restart and --rm".into()).into());
        }
        let mode = self.networks.mode(&hc.network_mode)?;
        if let Mode::Bridge(net) = &mode {
            if matches!(hc.network_mode.as_str(), "" | "default") {
                hc.network_mode = self.networks.find(net).map(|n| n.name).unwrap_or_default();
            }
        }
        let dns_servers = strings(&hc, "Dns")?;
        for d in &dns_servers {
            d.parse::<std::net::IpAddr>().map_err(|_| ContainerError::Invalid(format!("{d} is not an ip address (--dns)")))?;
        }
        let extra_hosts = strings(&hc, "ExtraHosts")?
            .iter()
            .map(|h| crate::network::files::parse_extra_host(h).map_err(ContainerError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let (dns_search, dns_options) = (strings(&hc, "DnsSearch")?, strings(&hc, "DnsOptions")?);
        let mut log_limits = self.cfg.log_limits;
        let mut no_log = false;
        if let Some(lc) = &hc.log_config {
            match lc.typ.as_str() {
                "" | "json-file" => {
                    log_limits = LogLimits::from_opts(&lc.config, log_limits).map_err(|e| ContainerError::Invalid(format!("{e:#}")))?;
                }
                "none" if lc.config.is_empty() => {
                    no_log = true;
                    log_limits = NO_LOG_LIMITS;
                }
                "none" => return Err(ContainerError::Invalid("the none logging driver takes no log options".into()).into()),
                other => return Err(ContainerError::Invalid(format!("logger: no log driver named '{other}' is registered")).into()),
            }
        }
        let runtime = hc.runtime.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| self.cfg.default_runtime.clone());
        if !self.cfg.runtimes.contains_key(&runtime) {
            return Err(ContainerError::Invalid(format!("unknown or invalid runtime name: {runtime}")).into());
        }
        let mut umask = self.cfg.umask;
        if let Some(v) = hc.annotations.as_ref().and_then(|a| a.get("native.umask")) {
            umask = umask_option(v).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        }
        crate::runtime::spec::capabilities(hc.cap_add.as_deref().unwrap_or(&[]), hc.cap_drop.as_deref().unwrap_or(&[]))
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        for e in config.env.iter().flatten() {
            if e.is_empty() || e.starts_with('=') {
                return Err(ContainerError::Invalid(format!("invalid environment variable: {e:?}")).into());
            }
        }
        if config.image.is_empty() {
            return Err(ContainerError::Invalid("config.Image is required".into()).into());
        }
        let shown = config.image.parse::<Reference>().map(|r| r.familiar()).unwrap_or_else(|_| config.image.clone());
        let image = self.images.resolve(&config.image).map_err(|_| crate::images::ImageError::NotFound(shown))?;
        if let Some(why) = self.images.damage(&image) {
            return Err(ContainerError::Conflict(format!("image {} is damaged and cannot be used: {why}", config.image)).into());
        }
        let image_config = self.images.config(&image.id)?.config;

        // 2. Merge the image's defaults.
        let entrypoint = config.entrypoint.clone().or(image_config.entrypoint.clone()).filter(|e| !(e.len() == 1 && e[0].is_empty()));
        let cmd = match (&config.cmd, &config.entrypoint) {
            (Some(c), _) if !c.is_empty() => Some(c.clone()),
            (_, Some(_)) => None,
            _ => image_config.cmd.clone(),
        };
        let mut argv: Vec<String> = entrypoint.clone().unwrap_or_default();
        argv.extend(cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(ContainerError::Invalid("No command specified".into()).into());
        }
        config.entrypoint = entrypoint;
        config.cmd = cmd;
        config.env = Some(merge_env(image_config.env.as_deref().unwrap_or(&[]), config.env.as_deref().unwrap_or(&[])));
        if config.working_dir.is_empty() {
            config.working_dir = image_config.working_dir.clone().unwrap_or_default();
        }
        if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
            return Err(ContainerError::Invalid(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                config.working_dir
            ))
            .into());
        }
        if config.user.is_empty() {
            config.user = image_config.user.clone().unwrap_or_default();
        }
        let mut labels = image_config.labels.clone().unwrap_or_default();
        labels.extend(config.labels.take().unwrap_or_default());
        config.labels = Some(labels);
        if config.stop_signal.is_none() {
            config.stop_signal = image_config.stop_signal.clone();
        }
        if let Some(sig) = &config.stop_signal {
            crate::runtime::signal::parse(sig).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        }
        let healthcheck = health::merge(config.extra.get("Healthcheck"), image_config.extra.get("Healthcheck"));
        health::Healthcheck::parse(healthcheck.as_ref()).map_err(ContainerError::Invalid)?;
        match healthcheck {
            Some(h) => config.extra.insert("Healthcheck".into(), h),
            None => config.extra.remove("Healthcheck"),
        };
        if config.exposed_ports.is_none() {
            config.exposed_ports = image_config.exposed_ports.clone();
        }
        let publish_all = hc.extra.get("PublishAllPorts").and_then(Value::as_bool).unwrap_or(false);
        let port_requests =
            ports::requests(hc.extra.get("PortBindings"), publish_all, config.exposed_ports.as_ref().unwrap_or(&Default::default()))
                .map_err(ContainerError::Invalid)?;
        match &mode {
            Mode::Host if !port_requests.is_empty() => {
                tracing::warn!("published ports are discarded when using host network mode");
                hc.extra.remove("PortBindings");
                hc.extra.remove("PublishAllPorts");
            }
            Mode::None | Mode::Container(_) if !port_requests.is_empty() => {
                return Err(
                    ContainerError::Invalid("conflicting options: port publishing and the container type network mode".into()).into()
                );
            }
            _ => {}
        }
        if let Mode::Container(target) = &mode {
            self.lookup(target)?;
        }
        if let Some(image_volumes) = image_config.volumes.as_ref().filter(|_| !req_no_image_volumes) {
            let v = config.volumes.get_or_insert_with(Default::default);
            for k in image_volumes.keys() {
                v.entry(k.clone()).or_insert_with(|| serde_json::json!({}));
            }
        }
        let mount_requests = crate::volumes::parse::requests(&hc.extra, config.volumes.as_ref().unwrap_or(&Default::default()))
            .map_err(ContainerError::Invalid)?;
        let mut volumes_from = Vec::new();
        for spec in strings(&hc, "VolumesFrom")? {
            let (name, mode) = match spec.rsplit_once(':') {
                Some((n, "ro")) => (n, Some(false)),
                Some((n, "rw")) => (n, Some(true)),
                Some((_, m)) => return Err(ContainerError::Invalid(format!("invalid mode for --volumes-from {spec:?}: {m}")).into()),
                None => (spec.as_str(), None),
            };
            let other = self.lookup(name)?.id();
            volumes_from.push((self.volumes.mounts_of(&other), mode));
        }

        // 3. Take the name and the id.
        let id = ContainerId::random().context("generating a container id")?;
        if config.hostname.is_empty() {
            config.hostname =
                if mode == Mode::Host { nix::unistd::gethostname()?.to_string_lossy().into_owned() } else { id.short().to_string() };
        }
        let allocation = match &mode {
            Mode::Bridge(net) => Some(self.networks.allocate(&id, net, &endpoint_request(&req.networking_config, net, &config)?)?),
            _ => None,
        };
        let network = match &mode {
            Mode::Bridge(net) => self.networks.find(net).ok(),
            _ => None,
        };
        let own = allocation.as_ref().map(|a| (a.endpoint.ip, config.hostname.as_str()));
        let hosts = match &mode {
            Mode::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            _ => crate::network::files::hosts(own, &extra_hosts),
        };
        let dns = crate::network::files::DnsSettings {
            embedded: network.as_ref().filter(|n| !n.default).map(|n| n.gateway),
            servers: &dns_servers,
            search: &dns_search,
            options: &dns_options,
        };
        let resolv =
            crate::network::files::resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(), &dns, mode == Mode::Host);
        let prepared = match self.volumes.prepare(mount_requests, volumes_from) {
            Ok(p) => p,
            Err(e) => {
                if let Some(a) = allocation {
                    self.networks.settle_allocation(a, false);
                }
                return Err(e);
            }
        };
        let name = match self.reserve_name(name.map(|n| n.strip_prefix('/').unwrap_or(n)), &id) {
            Ok(n) => n,
            Err(e) => {
                if let Some(a) = allocation {
                    self.networks.settle_allocation(a, false);
                }
                self.volumes.settle_prepared(&id, prepared, false);
                return Err(e.into());
            }
        };
        let rec = Container {
            id: id.clone(),
            name: name.clone(),
            created: crate::util::time::now(),
            image_name: config.image.clone(),
            image_id: image.id.clone(),
            layers: image.layers.clone(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config: hc,
            state: State::Created,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            manually_stopped: false,
            hooks,
            log_path: if no_log { self.no_log_path(&id) } else { self.data_dir(&id).join(format!("{id}-json.log")) },
            log_limits,
            umask,
            runtime,
        };

        // 4. Journal, root filesystem, then the record with the journal's end: what is
        // acknowledged is on disk, and a crash before it is undone at start-up.
        let this = self.clone();
        let rec2 = rec.clone();
        let made = tokio::task::spawn_blocking(move || -> Result<()> {
            let intent = this.store.begin(Op::CreateContainer { id: rec2.id.to_string() })?;
            failpoint::hit("container.create.after-intent");
            let result = (|| {
                // Durable before the record: a container acknowledged without its data dir would
                // not start after a power cut (its monitor writes the log there).
                let data_dir = this.data_dir(&rec2.id);
                std::fs::create_dir_all(&data_dir)?;
                if let Some(parent) = data_dir.parent() {
                    berth_images::durable::sync_dir(parent)?;
                }
                let hostname = rec2.config.hostname.clone();
                this.driver.create_container(&rec2.id, &rec2.layers, &|dir| write_init_layer(dir, &hostname, &hosts, &resolv))?;
                failpoint::hit("container.create.after-rootfs");
                this.store.commit(&intent, |tx| {
                    tx.put(rec2.id.as_str(), &rec2)?;
                    if let Some(a) = &allocation {
                        this.networks.commit_allocation(tx, a)?;
                    }
                    this.volumes.commit_prepared(tx, &rec2.id, &prepared)
                })
            })();
            if result.is_err() {
                this.remove_files(&rec2.id);
                this.store.finish(&intent)?;
            }
            if let Some(a) = allocation {
                this.networks.settle_allocation(a, result.is_ok());
            }
            this.volumes.settle_prepared(&rec2.id, prepared, result.is_ok());
            result
        })
        .await?;
        if let Err(e) = made {
            self.table.lock().unwrap().reserved.remove(&name);
            return Err(e.context(format!("creating container {name}")));
        }
        {
            let mut t = self.table.lock().unwrap();
            t.reserved.remove(&name);
            t.by_id.insert(id.clone(), Entry::new(rec.clone()));
        }
        self.emit(&rec, "create", &[]);
        tracing::info!(container = %id.short(), %name, "created");
        Ok(id)
    }

    fn reserve_name(&self, wanted: Option<&str>, id: &ContainerId) -> Result<String, ContainerError> {
        let mut t = self.table.lock().unwrap();
        let taken = |t: &super::Table, n: &str| -> Option<String> {
            if t.reserved.contains(n) {
                return Some("(being created)".into());
            }
            t.by_id.values().find(|e| e.rec.lock().unwrap().name == n).map(|e| e.id().to_string())
        };
        let name = match wanted.filter(|n| !n.is_empty()) {
            Some(n) => {
                if let Some(other) = taken(&t, n) {
                    return Err(ContainerError::NameInUse { name: n.into(), id: other });
                }
                n.to_string()
            }
            None => (0..).map(|i| names::generate(id.as_str(), i)).find(|n| taken(&t, n).is_none()).unwrap_or_default(),
        };
        t.reserved.insert(name.clone());
        Ok(name)
    }

    /// `rename`: a new unique name.
    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !valid_name(new_name) {
            return Err(ContainerError::Invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            ))
            .into());
        }
        let entry = self.lookup(name)?;
        let t = self.table.lock().unwrap();
        if let Some(other) = t.by_id.values().find(|e| e.rec.lock().unwrap().name == new_name) {
            if !Arc::ptr_eq(other, &entry) {
                return Err(ContainerError::NameInUse { name: new_name.into(), id: other.id().to_string() }.into());
            }
        }
        if t.reserved.contains(new_name) {
            return Err(ContainerError::NameInUse { name: new_name.into(), id: "(being created)".into() }.into());
        }
        let old = entry.get().name;
        let c = self.update(&entry, |c| c.name = new_name.to_string())?;
        self.emit(&c, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }
}

/// The init layer: the files Docker bind-mounts (`/etc/hostname`, `/etc/hosts`,
/// `/etc/resolv.conf`) and the mount points a read-only root needs.
fn write_init_layer(dir: &Path, hostname: &str, hosts: &str, resolv: &str) -> Result<()> {
    for d in ["etc", "dev", "proc", "sys", "dev/pts", "dev/shm"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::write(dir.join("etc/hostname"), format!("{hostname}\n"))?;
    std::fs::write(dir.join("etc/hosts"), hosts)?;
    std::fs::write(dir.join("etc/resolv.conf"), resolv)?;
    Ok(())
}
