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
    pub containers: Arc<Containers>,
}

impl Daemon {
    /// Opens (or creates) the state under the configured roots. Blocking.
    pub fn open(cfg: DaemonConfig) -> Result<Self> {
        let cfg = Arc::new(cfg);
        for dir in [&cfg.data_root, &cfg.exec_root] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = Store::open(&cfg.data_root)?;
        let id_file = cfg.data_root.join("engine-id");
        let id = match std::fs::read_to_string(&id_file) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let id = crate::util::id::ContainerId::random()?.to_string();
                berth_images::durable::write_file_mode(&id_file, id.as_bytes(), 0o644)?;
                id
            }
        };
        let driver: Arc<dyn Driver> = Arc::from(crate::storage::open(&cfg.data_root, cfg.storage_driver.as_deref())?);
        let images = Arc::new(ImageStore::open(&cfg.data_root, &store, driver.clone())?);
        let containers = Containers::open(cfg.clone(), &store, images.clone(), driver.clone())?;
        Ok(Daemon { cfg, id, store, driver, images, containers })
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

/// `berth daemon`.
pub fn run(flags: &Flags) -> Result<()> {
    let cfg = DaemonConfig::load(flags)?;
    tracing_subscriber::fmt().with_max_level(cfg.log_level).with_writer(std::io::stderr).with_target(false).init();
    if let Some(f) = &cfg.config_file {
        tracing::info!(file = %f.display(), "configuration read");
    }
    // One thread serves the API; blocking work (mounts, unpacking, fsync) goes to a small
    // pool. Memory, not throughput, is what a device is short of.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(8).build()?;
    rt.block_on(async {
        let listeners = crate::api::listen::open(&cfg.hosts)?;
        let d = Arc::new(tokio::task::spawn_blocking(move || Daemon::open(cfg)).await??);
        d.containers.restore().await.context("restoring containers")?;
        tracing::info!(driver = d.driver.name(), root = %d.cfg.data_root.display(), "berth daemon ready");
        crate::api::serve(d, listeners, shutdown_signal()).await;
        Ok(())
    })
}
