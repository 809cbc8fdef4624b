//! The daemon role: open the state, re-adopt running containers, serve the API until
//! SIGTERM or SIGINT. Stopping the daemon never stops containers.

use crate::config::{DaemonConfig, Flags};
use crate::containers::Containers;
use crate::images::ImageStore;
use crate::state::Store;
use crate::storage::Driver;
use anyhow::{Context, Result};
use std::sync::Arc;

/// Everything the API handlers reach.
pub struct Daemon {
    pub cfg: Arc<DaemonConfig>,
    pub id: String,
    pub store: Store,
    pub driver: Arc<dyn Driver>,
    pub images: Arc<ImageStore>,
    pub networks: Arc<crate::network::Networks>,
    pub volumes: Arc<crate::volumes::Volumes>,
    pub containers: Arc<Containers>,
    pub execs: crate::exec::Execs,
    pub recovery: std::sync::Mutex<Recovery>,
    /// What remote clients changed (see `audit`).
    pub audit: crate::audit::Audit,
    pub events: Arc<crate::events::Events>,
    pub bundles: Arc<crate::bundles::Bundles>,
    pub builder: Arc<crate::build::Builder>,
}

/// What the last start-up recovery did, for `info` and the log.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Recovery {
    pub at: String,
    pub millis: u64,
    /// One line per interrupted operation: what was rolled forward or back.
    pub intents: Vec<String>,
    /// Leftovers removed and records marked by reconciliation.
    pub reconciled: Vec<String>,
    /// Set while the store is one salvaged from a damaged file: what happened.
    pub salvaged: Option<String>,
}

impl Daemon {
    /// Opens (or creates) the state under the configured roots. Blocking.
    pub fn open(cfg: DaemonConfig) -> Result<Self> {
        let cfg = Arc::new(cfg);
        for dir in [&cfg.data_root, &cfg.exec_root] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = Store::open_or_salvage(&cfg.data_root)?;
        let id_file = cfg.data_root.join("engine-id");
        let id = match std::fs::read_to_string(&id_file) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let id = crate::util::id::ContainerId::random()?.to_string();
                berth_images::durable::write_file_mode(&id_file, id.as_bytes(), 0o644)?;
                id
            }
        };
        let driver: Arc<dyn Driver> =
            Arc::from(crate::storage::open(&cfg.data_root, cfg.storage_driver.as_deref(), &cfg.storage_opts, &store)?);
        let images = Arc::new(ImageStore::open(&cfg.data_root, &store, driver.clone())?);
        let networks = crate::network::Networks::open(cfg.clone(), &store)?;
        let volumes = crate::volumes::Volumes::open(&cfg.data_root, &store)?;
        let events = Arc::new(crate::events::Events::default());
        let containers =
            Containers::open(cfg.clone(), &store, images.clone(), driver.clone(), networks.clone(), volumes.clone(), events.clone())?;
        let audit = crate::audit::Audit::open(&store)?;
        let bundles = crate::bundles::Bundles::open(&cfg, &store, containers.clone(), images.clone(), events.clone())?;
        let builder = Arc::new(crate::build::Builder::new(&store, images.clone(), containers.clone(), cfg.clone())?);
        Ok(Daemon {
            builder,
            bundles,
            events,
            audit,
            cfg,
            id,
            store,
            driver,
            images,
            networks,
            volumes,
            containers,
            execs: Default::default(),
            recovery: Default::default(),
        })
    }

    /// Start-up, before serving: finish or undo interrupted operations (the journal),
    /// re-adopt running containers, then remove what no record owns.
    pub async fn recover(&self) -> Result<()> {
        let t0 = std::time::Instant::now();
        let mut summary = Recovery { at: crate::util::time::now(), ..Default::default() };
        for (pending, intent) in self.store.open_intents()? {
            let what = match &intent.op {
                crate::state::Op::CreateLayers { .. } | crate::state::Op::RemoveLayers { .. } => self.images.recover(&intent.op),
                _ => self.containers.recover(&intent.op).await,
            }
            .with_context(|| format!("recovering {:?} (begun {})", intent.op, intent.started))?;
            self.store.finish(&pending)?;
            tracing::warn!("recovery: {what}");
            summary.intents.push(what);
        }
        self.containers.restore().await.context("re-adopting containers")?;
        let running = self.containers.running_names();
        let running_ids: Vec<_> = running.iter().map(|(id, _)| id.clone()).collect();
        let (networks, volumes) = (self.networks.clone(), self.volumes.clone());
        let net_actions = tokio::task::spawn_blocking(move || networks.restore(&running)).await?.context("restoring the networks")?;
        let volume_actions = tokio::task::spawn_blocking(move || volumes.restore(&running_ids)).await?.context("restoring the volumes")?;
        summary.salvaged = self.store.salvaged()?;
        if let Some(s) = &summary.salvaged {
            // Records may be missing: what they owned must not be taken for leftovers.
            tracing::error!("reconciliation skipped: the state store was {s}. Look, then run `berth system check --repair`.");
        } else {
            let layers = self.images.layer_ids()?;
            summary.reconciled.extend(self.images.reconcile()?);
            summary.reconciled.extend(self.containers.reconcile(&layers).await?);
            summary.reconciled.extend(net_actions);
            summary.reconciled.extend(volume_actions);
        }
        summary.reconciled.extend(self.builder.remove_leftover_steps().await);
        // Before the restart policies: which application runs is the bundle record's call.
        summary.intents.extend(self.bundles.recover().await.context("recovering the bundle install")?);
        summary.reconciled.extend(self.containers.start_by_policy().await);
        if self.cfg.image_layer_check {
            let images = self.images.clone();
            let t = std::time::Instant::now();
            let damaged = tokio::task::spawn_blocking(move || images.check_layers()).await??;
            tracing::info!(damaged = damaged.len(), ms = t.elapsed().as_millis() as u64, "image-layer-check done");
            summary.reconciled.extend(damaged);
        }
        summary.millis = t0.elapsed().as_millis() as u64;
        tracing::info!(intents = summary.intents.len(), reconciled = summary.reconciled.len(), ms = summary.millis, "state recovered");
        *self.recovery.lock().unwrap() = summary;
        Ok(())
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// Connections, logs and monitors' pipes are descriptors: the soft limit (often 1024) is
/// raised to the hard one, as dockerd does, so a flood of connections cannot starve accept.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("raising the open files limit from {soft} to {hard}: {e}");
            }
        }
    }
}

/// SIGHUP: the TLS certificates, key and CA are read again (renewed or revoked clients);
/// connections already open keep theirs.
fn reload_tls_on_sighup(tls: Vec<Arc<crate::api::listen::CurrentTls>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            for t in &tls {
                match t.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded"),
                    Err(e) => tracing::error!("SIGHUP: TLS certificates not reloaded, the previous ones stay: {e:#}"),
                }
            }
        }
    });
}

/// `berth daemon`.
pub fn run(flags: &Flags) -> Result<()> {
    // Still one thread: the environment can be changed safely.
    let notifier = crate::watchdog::notify::Notifier::take_from_env();
    let cfg = DaemonConfig::load(flags)?;
    tracing_subscriber::fmt().with_max_level(cfg.log_level).with_writer(std::io::stderr).with_target(false).init();
    raise_open_files_limit();
    if let Some(f) = &cfg.config_file {
        tracing::info!(file = %f.display(), "configuration read");
    }
    // One thread serves the API; blocking work (mounts, unpacking, fsync) goes to a small
    // pool. Memory, not throughput, is what a device is short of.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(8).build()?;
    rt.block_on(async {
        let listeners = crate::api::listen::open(&cfg.hosts, cfg.tls.as_ref(), cfg.insecure_plain_tcp).await?;
        let d = Arc::new(tokio::task::spawn_blocking(move || Daemon::open(cfg)).await??);
        d.recover().await.context("recovering the state at start")?;
        tracing::info!(driver = d.driver.name(), root = %d.cfg.data_root.display(), "berth daemon ready");
        crate::watchdog::health::start(d.clone(), notifier);
        reload_tls_on_sighup(crate::api::listen::tls_of(&listeners));
        crate::api::serve(d, listeners, shutdown_signal()).await;
        Ok(())
    })
}
