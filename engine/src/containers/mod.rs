//! Containers: the record, its state machine, and one file per operation adding to
//! [`Containers`]' `impl`.
//!
//! Concurrency: the table and each record sit behind std mutexes that are never held across
//! an `await`; lifecycle operations on one container are serialised by its `op` lock (a
//! tokio mutex, since they wait on the runtime). Exit handling never takes the `op` lock, so
//! `stop` can hold it while it waits for the exit.

mod archive;
mod commit;
mod connect;
mod create;
mod error;
mod exec;
mod exit;
pub mod health;
pub mod model;
mod names;
mod pause;
mod recover;
mod remove;
mod restart;
mod start;
mod stop;
mod top;
mod update;
pub mod user;
mod wait;

pub use archive::{PathStat, PutOptions};
pub use commit::{CommitConfig, CommitOptions};
pub use create::CreateRequest;
pub use error::ContainerError;
pub use top::Top;
pub use wait::WaitCondition;

use crate::config::DaemonConfig;
use crate::images::ImageStore;
use crate::state::intent::Pending;
use crate::state::{Collection, Store};
use crate::storage::Driver;
use crate::util::id::ContainerId;
use anyhow::Result;
use model::{Container, State};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What waiters watch: bumped on every start, exit and the removal.
#[derive(Clone, Debug, Default)]
pub struct RunState {
    pub running: bool,
    pub starts: u64,
    pub exits: u64,
    pub exit_code: i32,
    pub removed: bool,
}

/// One container in the table.
pub struct Entry {
    rec: Mutex<Container>,
    watch: watch::Sender<RunState>,
    op: tokio::sync::Mutex<()>,
    /// The last monitor (pid, start time): it may still be cleaning up after the exit.
    last_monitor: Mutex<Option<(i32, u64)>>,
    /// The unmount that follows an exit; the next start or removal waits for it.
    pending_unmount: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The wait before the next restart by policy.
    restart_delay: Mutex<std::time::Duration>,
    /// The current run's health, when it has a healthcheck.
    health: Mutex<Option<health::Health>>,
    /// A restart by policy is due (Docker's `Restarting`).
    restarting: std::sync::atomic::AtomicBool,
}

impl Entry {
    fn new(rec: Container) -> Arc<Self> {
        let st = RunState { running: rec.state.is_running(), exit_code: rec.state.exit_code(), ..Default::default() };
        Arc::new(Entry {
            rec: Mutex::new(rec),
            watch: watch::channel(st).0,
            op: tokio::sync::Mutex::new(()),
            last_monitor: Mutex::new(None),
            pending_unmount: Mutex::new(None),
            restart_delay: Mutex::new(std::time::Duration::ZERO),
            health: Mutex::new(None),
            restarting: Default::default(),
        })
    }

    /// A copy of the record.
    pub fn get(&self) -> Container {
        self.rec.lock().unwrap().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<RunState> {
        self.watch.subscribe()
    }

    pub fn health(&self) -> Option<health::Health> {
        self.health.lock().unwrap().clone()
    }

    /// Exited, with a restart by policy due.
    pub fn restarting(&self) -> bool {
        self.restarting.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set_restarting(&self, on: bool) {
        self.restarting.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn id(&self) -> ContainerId {
        self.rec.lock().unwrap().id.clone()
    }

    /// Waits for the unmount that followed the last exit. Called with the `op` lock held,
    /// before mounting or removing.
    async fn settle_unmount(&self) {
        let unmount = self.pending_unmount.lock().unwrap().take();
        if let Some(u) = unmount {
            let _ = u.await;
        }
    }

    /// Waits for everything the previous run left in flight, its monitor's `runc delete`
    /// included: a new run under the same runtime id must not meet the old one. Removal
    /// needs only [`Entry::settle_unmount`]: the id dies with the record.
    async fn settle(&self) {
        self.settle_unmount().await;
        let previous = self.last_monitor.lock().unwrap().take();
        if let Some((pid, start)) = previous {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), exit::process_gone(pid, start)).await;
        }
    }
}

#[derive(Default)]
struct Table {
    by_id: BTreeMap<ContainerId, Arc<Entry>>,
    /// Names taken by creates still in progress.
    reserved: BTreeSet<String>,
}

pub struct Containers {
    pub cfg: Arc<DaemonConfig>,
    pub images: Arc<ImageStore>,
    pub driver: Arc<dyn Driver>,
    pub networks: Arc<crate::network::Networks>,
    pub volumes: Arc<crate::volumes::Volumes>,
    pub events: Arc<crate::events::Events>,
    store: Store,
    records: Collection<Container>,
    table: Mutex<Table>,
    /// This binary, run as `berth monitor`.
    exe: PathBuf,
    /// Containers no restart policy starts at daemon start: the standby side of a bundle
    /// update (the application that is not the installed one), set by `bundles` first.
    held: Mutex<std::collections::BTreeSet<String>>,
    /// Set from re-adoption to the end of start-up: exits found then are left to
    /// `start_by_policy`, which runs after the networks and leftovers are reconciled (a restart
    /// right away raced the reconciliation, which took its network namespace away).
    starting_up: std::sync::atomic::AtomicBool,
}

impl Containers {
    pub fn open(
        cfg: Arc<DaemonConfig>,
        store: &Store,
        images: Arc<ImageStore>,
        driver: Arc<dyn Driver>,
        networks: Arc<crate::network::Networks>,
        volumes: Arc<crate::volumes::Volumes>,
        events: Arc<crate::events::Events>,
    ) -> Result<Arc<Self>> {
        let exe = std::env::current_exe()?;
        let records: Collection<Container> = store.collection()?;
        let mut table = Table::default();
        for (_, rec) in records.list()? {
            table.by_id.insert(rec.id.clone(), Entry::new(rec));
        }
        std::fs::create_dir_all(cfg.data_root.join("containers"))?;
        std::fs::create_dir_all(cfg.exec_root.join("containers"))?;
        std::fs::create_dir_all(cfg.exec_root.join("logs"))?;
        std::fs::create_dir_all(cfg.hooks_dir())?;
        Ok(Arc::new(Containers {
            cfg,
            images,
            driver,
            networks,
            volumes,
            events,
            store: store.clone(),
            records,
            table: Mutex::new(table),
            exe,
            held: Mutex::default(),
            starting_up: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Sets the containers restart policies leave alone at daemon start (full ids).
    pub fn hold(&self, ids: std::collections::BTreeSet<String>) {
        *self.held.lock().unwrap() = ids;
    }

    fn data_dir(&self, id: &ContainerId) -> PathBuf {
        self.cfg.data_root.join("containers").join(id.as_str())
    }

    /// The attach-only output file of a `--log-driver none` container.
    fn no_log_path(&self, id: &ContainerId) -> PathBuf {
        self.cfg.exec_root.join("logs").join(format!("{id}-attach.log"))
    }

    fn bundle_dir(&self, id: &ContainerId) -> PathBuf {
        self.cfg.exec_root.join("containers").join(id.as_str())
    }

    /// The monitor's control socket. Kept short (a socket path has at most 107 bytes): 96
    /// bits of the id are plenty to tell running containers apart.
    pub fn control_socket(&self, id: &ContainerId) -> PathBuf {
        self.cfg.exec_root.join("monitors").join(&id.as_str()[..24])
    }

    /// Finds a container as Docker does: exact id, then exact name, then a unique id prefix.
    pub fn lookup(&self, name: &str) -> Result<Arc<Entry>, ContainerError> {
        let t = self.table.lock().unwrap();
        let name = name.strip_prefix('/').unwrap_or(name);
        if let Ok(id) = name.parse::<ContainerId>() {
            if let Some(e) = t.by_id.get(&id) {
                return Ok(e.clone());
            }
        }
        if let Some(e) = t.by_id.values().find(|e| e.rec.lock().unwrap().name == name) {
            return Ok(e.clone());
        }
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits = t.by_id.iter().filter(|(id, _)| id.as_str().starts_with(name));
            if let Some((_, e)) = hits.next() {
                if hits.next().is_some() {
                    return Err(ContainerError::Ambiguous(name.to_string()));
                }
                return Ok(e.clone());
            }
        }
        Err(ContainerError::NotFound(name.to_string()))
    }

    /// Every container, newest first.
    pub fn list(&self) -> Vec<Container> {
        let mut v: Vec<Container> = self.table.lock().unwrap().by_id.values().map(|e| e.get()).collect();
        v.sort_by(|a, b| b.created.cmp(&a.created));
        v
    }

    /// Updates the record with `f`, persists it, then publishes it. The API answers only
    /// after this returns, so an acknowledged change is on disk.
    fn update(&self, entry: &Entry, f: impl FnOnce(&mut Container)) -> Result<Container> {
        let mut rec = entry.rec.lock().unwrap();
        let mut next = rec.clone();
        f(&mut next);
        self.records.put(next.id.as_str(), &next)?;
        *rec = next.clone();
        Ok(next)
    }

    /// As [`Containers::update`], committed together with the end of `intent`.
    fn commit_update(&self, entry: &Entry, intent: &Pending, f: impl FnOnce(&mut Container)) -> Result<Container> {
        let mut rec = entry.rec.lock().unwrap();
        let mut next = rec.clone();
        f(&mut next);
        self.store.commit(intent, |tx| tx.put(next.id.as_str(), &next))?;
        *rec = next.clone();
        Ok(next)
    }

    /// Image ids used by containers, and the chain ids their root filesystems stand on.
    pub fn image_users(&self) -> (BTreeMap<berth_images::Digest, (String, bool)>, BTreeSet<berth_images::Digest>) {
        let mut users = BTreeMap::new();
        let mut layers = BTreeSet::new();
        for c in self.list() {
            let running = c.state.is_running();
            let e = users.entry(c.image_id.clone()).or_insert((c.id.short().to_string(), running));
            if running {
                *e = (c.id.short().to_string(), true);
            }
            layers.extend(c.layers.iter().cloned());
        }
        (users, layers)
    }

    /// Running containers with their network names (for the network's restore).
    pub fn running_names(&self) -> Vec<(ContainerId, Vec<String>)> {
        self.list()
            .into_iter()
            .filter(|c| c.state.is_running())
            .map(|c| (c.id.clone(), vec![c.name.clone(), c.id.short().to_string(), c.config.hostname.clone()]))
            .collect()
    }

    /// Tells `events` followers that `action` happened to `c`.
    fn emit(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let image = if c.image_name.is_empty() { c.image_id.to_string() } else { c.image_name.clone() };
        let mut e = crate::events::Event::new("container", action, c.id.as_str());
        e.attributes = crate::events::container_attributes(&c.name, &image, c.config.labels.as_ref());
        for (k, v) in extra {
            e.attributes.insert(k.to_string(), v.clone());
        }
        self.events.emit(e);
    }

    /// Counts for `info`: (all, running, paused, stopped).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let all = self.list();
        let running = all.iter().filter(|c| matches!(c.state, State::Running(_))).count();
        let paused = all.iter().filter(|c| matches!(c.state, State::Paused(_))).count();
        (all.len(), running, paused, all.len() - running - paused)
    }
}

impl State {
    /// Docker's `Status` column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
    pub fn describe(&self, started_at: Option<&str>, finished_at: Option<&str>) -> String {
        let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
        let since = |t: Option<&str>| now - t.map(crate::util::time::unix).unwrap_or(now);
        match self {
            State::Created => "Created".into(),
            State::Running(_) => format!("Up {}", crate::util::time::human_duration(since(started_at))),
            State::Paused(_) => format!("Up {} (Paused)", crate::util::time::human_duration(since(started_at))),
            State::Exited { exit_code, .. } => {
                format!("Exited ({exit_code}) {} ago", crate::util::time::human_duration(since(finished_at)))
            }
            State::Dead { .. } => "Dead".into(),
        }
    }
}
