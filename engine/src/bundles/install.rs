//! One install, step by step. Refusals come before the first change; from the first
//! container staged on, every step is recorded before it is taken (see `record::Phase`).

use super::record::{staged_name, Attempt, Member, Phase, Release};
use super::{gate, spec, Bundles};
use anyhow::{bail, ensure, Context, Result};
use berth_images::bundle::{verify_file, Manifest, Trust, Verified};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default)]
pub struct InstallOptions {
    /// Install a version not above the installed one; the signing key must allow it too.
    pub allow_downgrade: bool,
}

pub type Progress = Arc<dyn Fn(String) + Send + Sync>;

/// Docker's name for the architecture this berth runs on.
pub fn device_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86_64" => "amd64",
        "arm" => "arm",
        other => other,
    }
}

impl Bundles {
    /// Installs the bundle at `file` (already on disk, never in memory). Ok(version) once the
    /// new application passed its gate; an error that says what was refused, or why the
    /// update was rolled back.
    pub async fn install(self: &Arc<Self>, file: &Path, opts: InstallOptions, progress: Progress) -> Result<u64> {
        let Ok(_one) = self.installing.try_lock() else { bail!("another bundle install is in progress") };
        let trust = Trust::load(&self.trust_dir)?;
        ensure!(!trust.keys.is_empty(), "no trusted bundle keys in {}: add the vendor's .pub file there", self.trust_dir.display());
        progress("verifying the signature and every blob".into());
        let (path, p) = (file.to_path_buf(), progress.clone());
        let verified = tokio::task::spawn_blocking(move || {
            let mut last = 0u64;
            verify_file(&path, &trust, &mut |_, bytes| {
                if bytes >= last + (16 << 20) {
                    last = bytes;
                    p(format!("verified {} MiB", bytes >> 20));
                }
            })
        })
        .await??;
        self.admit(&verified, opts)?;
        let m = &verified.manifest;
        progress(format!(
            "bundle version {} signed by {} ({}): verified, {} bytes",
            m.version, verified.key.id, verified.key.name, verified.bytes
        ));
        self.check_delta(file, m).await?;

        // From here on the device changes: an attempt is on record before the first change.
        let previous = self.record()?;
        self.clear_failed(&previous).await;
        self.update(|r| {
            r.attempt = Some(Attempt {
                version: m.version,
                key: verified.key.name.clone(),
                started: crate::util::time::now(),
                phase: Phase::Staged,
                containers: vec![],
                images: m.images.iter().map(|i| i.name.clone()).collect(),
                steps: vec![],
            })
        })?;
        let (images, path, p) = (self.images.clone(), file.to_path_buf(), progress.clone());
        tokio::task::spawn_blocking(move || {
            images.load_archive(&path, &|ev| {
                if let crate::images::LoadProgress::Loaded { tags, .. } = ev {
                    for t in tags {
                        p(format!("imported {}", t.familiar()));
                    }
                }
            })
        })
        .await?
        .context("importing the bundle's images")?;
        if let Err(e) = self.stage(m, &progress).await {
            let reason = format!("staging failed: {e:#}");
            self.abandon(&reason).await?;
            bail!("{reason}; the running application was not touched");
        }
        crate::util::failpoint::hit("bundle.install.after-stage");
        self.switch(m, &progress).await
    }

    /// The refusals that need the device's state: trust limits, versions.
    fn admit(&self, v: &Verified, opts: InstallOptions) -> Result<()> {
        let m = &v.manifest;
        m.check_compatible(device_arch(), self.board.as_deref(), env!("CARGO_PKG_VERSION"))?;
        ensure!(
            v.key.allows_board(self.board.as_deref()),
            "key {} ({}) may sign only for boards {}; this device is {}",
            v.key.id,
            v.key.name,
            v.key.boards.join(", "),
            self.board.as_deref().unwrap_or("unnamed")
        );
        if let Some(installed) = self.record()?.installed {
            if m.version == installed.version {
                bail!("version {} is already installed", m.version);
            }
            if m.version < installed.version {
                ensure!(
                    opts.allow_downgrade,
                    "version {} is not above the installed version {} (anti-rollback): a downgrade needs --allow-downgrade and a key allowed to downgrade",
                    m.version,
                    installed.version
                );
                ensure!(
                    v.key.allow_downgrade,
                    "key {} ({}) is not allowed to downgrade (allow_downgrade in its trust file)",
                    v.key.id,
                    v.key.name
                );
            }
        }
        Ok(())
    }

    /// A delta bundle leaves out layers its base had: each must be on the device already.
    async fn check_delta(&self, file: &Path, m: &Manifest) -> Result<()> {
        if !m.files.iter().any(|f| f.in_base) {
            return Ok(());
        }
        let (path, images, base) = (file.to_path_buf(), self.images.clone(), m.delta_base);
        tokio::task::spawn_blocking(move || -> Result<()> {
            let archive = berth_images::archive::ArchiveIndex::open(&path)?;
            for img in archive.images()? {
                let chains = berth_images::config::chain_ids(&img.config.rootfs.diff_ids);
                for (layer, chain) in img.layers.iter().zip(&chains) {
                    if archive.raw_member(&layer.member).is_err() && !images.driver().has_layer(chain) {
                        bail!(
                            "this delta bundle needs layer {} of {} from its base bundle (version {}), and this device does not have it: install the full bundle",
                            layer.member,
                            img.tags.first().map(|t| t.familiar()).unwrap_or_default(),
                            base.map_or("?".into(), |b| b.to_string())
                        );
                    }
                }
            }
            Ok(())
        })
        .await?
    }

    /// Containers left stopped by an earlier rolled-back or abandoned attempt go now.
    async fn clear_failed(&self, rec: &super::record::AppRecord) {
        let Some(a) = &rec.attempt else { return };
        if !matches!(a.phase, Phase::RolledBack(_) | Phase::Abandoned(_)) {
            return;
        }
        for m in &a.containers {
            if rec.installed.as_ref().is_some_and(|i| i.containers.iter().any(|x| x.id == m.id)) {
                continue;
            }
            let _ = self.containers.remove(&m.id, true, false).await;
        }
    }

    /// Creates the new containers beside the running application, each on record as made.
    async fn stage(&self, m: &Manifest, progress: &super::install::Progress) -> Result<()> {
        for (name, c) in &m.app.containers {
            let staged = staged_name(name, m.version);
            // A leftover of an interrupted attempt at this same version.
            if self.containers.lookup(&staged).is_ok() {
                self.containers.remove(&staged, true, false).await.with_context(|| format!("removing the leftover {staged}"))?;
            }
            let req = spec::create_request(name, c, m.version)?;
            let id = self.containers.create(Some(&staged), req).await.with_context(|| format!("creating container {staged}"))?;
            self.update(|r| {
                if let Some(a) = r.attempt.as_mut() {
                    a.containers.push(Member { name: name.clone(), id: id.to_string() })
                }
            })?;
            self.step(&**progress, format!("staged {staged} ({})", c.image))?;
        }
        Ok(())
    }

    /// Stops the old application, starts the new, holds it to the gate; then commits or
    /// rolls back.
    async fn switch(self: &Arc<Self>, m: &Manifest, progress: &Progress) -> Result<u64> {
        self.set_phase(Phase::Switching)?;
        let rec = self.record()?;
        let old = rec.installed.as_ref().map(|r| r.containers.clone()).unwrap_or_default();
        let new = rec.attempt.as_ref().map(|a| a.containers.clone()).unwrap_or_default();
        for o in &old {
            self.stop(o).await;
        }
        self.step(&**progress, format!("stopped the old application ({} containers)", old.len()))?;
        crate::util::failpoint::hit("bundle.install.after-stop-old");
        let mut started = Ok(());
        for n in &new {
            if let Err(e) = self.containers.start(&n.id).await {
                started = Err(format!("container {} did not start: {e:#}", n.name));
                break;
            }
        }
        crate::util::failpoint::hit("bundle.install.after-start-new");
        let verdict = match started {
            Ok(()) => {
                self.set_phase(Phase::Gate)?;
                self.step(&**progress, format!("started the new application; health gate of {}", m.app.gate.timeout))?;
                crate::util::failpoint::hit("bundle.install.in-gate");
                gate::wait(&self.containers, &new, &m.app.gate).await
            }
            Err(e) => Err(e),
        };
        match verdict {
            Ok(()) => {
                self.set_phase(Phase::Committing)?;
                self.step(&**progress, "healthy: committing".into())?;
                crate::util::failpoint::hit("bundle.install.after-healthy");
                self.commit().await?;
                progress(format!("installed version {}", m.version));
                Ok(m.version)
            }
            Err(reason) => {
                self.set_phase(Phase::RollingBack(reason.clone()))?;
                self.step(&**progress, format!("rolling back: {reason}"))?;
                crate::util::failpoint::hit("bundle.install.in-rollback");
                self.roll_back(reason.clone()).await?;
                let back =
                    rec.installed.as_ref().map_or("nothing (this was the first install)".into(), |r| format!("version {}", r.version));
                bail!("version {} was rolled back to {back}: {reason}", m.version)
            }
        }
    }

    pub(super) fn set_phase(&self, phase: Phase) -> Result<()> {
        self.update(|r| {
            if let Some(a) = r.attempt.as_mut() {
                a.phase = phase;
            }
        })?;
        Ok(())
    }

    /// The new application is the installed one: the old containers go, the new take their
    /// names. Idempotent: recovery runs it again after a crash half-way.
    pub(super) async fn commit(&self) -> Result<()> {
        let rec = self.record()?;
        let Some(a) = rec.attempt.clone() else { return Ok(()) };
        if let Some(old) = &rec.installed {
            for o in &old.containers {
                if !a.containers.iter().any(|n| n.id == o.id) {
                    let _ = self.containers.remove(&o.id, true, false).await;
                }
            }
        }
        for n in &a.containers {
            let entry = self.containers.lookup(&n.id).with_context(|| format!("the new container {} is gone", n.name))?;
            if entry.get().name.trim_start_matches('/') != n.name {
                self.containers
                    .rename(&n.id, &n.name)
                    .with_context(|| format!("renaming {} to {}", staged_name(&n.name, a.version), n.name))?;
            }
        }
        let previous_images = rec.installed.as_ref().map(|r| r.images.clone()).unwrap_or_default();
        self.update(|r| {
            r.previous = r.installed.take();
            if let Some(p) = r.previous.as_mut() {
                // Their containers are gone; the record keeps what ran.
                p.containers.clear();
            }
            r.installed = Some(Release {
                version: a.version,
                key: a.key.clone(),
                installed_at: crate::util::time::now(),
                containers: a.containers.clone(),
                images: a.images.clone(),
            });
            if let Some(at) = r.attempt.as_mut() {
                at.phase = Phase::Installed;
            }
        })?;
        self.events.emit(crate::events::Event::new("bundle", "installed", a.version.to_string()));
        self.collect_images(&previous_images, &a.images);
        Ok(())
    }

    /// Images only the replaced application used, and no container uses now.
    fn collect_images(&self, old: &[String], new: &[String]) {
        for name in old.iter().filter(|o| !new.contains(o)) {
            let (users, layers) = self.containers.image_users();
            let users = |id: &berth_images::Digest| {
                users.get(id).map(|(c, running)| crate::images::DeleteUser { container: c.clone(), running: *running })
            };
            match self.images.delete(name, false, &users, &layers, false) {
                Ok(_) => tracing::info!(image = %name, "bundle: removed the replaced application's image"),
                Err(e) => tracing::info!(image = %name, "bundle: the replaced application's image stays: {e:#}"),
            }
        }
    }

    /// Back to the installed application: the new containers stop (and stay, for a look at
    /// their logs, until the next install), the old start again.
    pub(super) async fn roll_back(&self, reason: String) -> Result<()> {
        let rec = self.record()?;
        if let Some(a) = &rec.attempt {
            for n in &a.containers {
                self.stop(n).await;
            }
        }
        if let Some(i) = &rec.installed {
            for o in &i.containers {
                self.start(o).await;
            }
        }
        self.set_phase(Phase::RolledBack(reason.clone()))?;
        let version = rec.attempt.map(|a| a.version.to_string()).unwrap_or_default();
        self.events.emit(crate::events::Event::new("bundle", "rolled-back", version).attr("reason", reason));
        Ok(())
    }

    /// Before the switch: the staged containers go, the old application never stopped.
    pub(super) async fn abandon(&self, reason: &str) -> Result<()> {
        let rec = self.record()?;
        if let Some(a) = &rec.attempt {
            for n in &a.containers {
                let _ = self.containers.remove(&n.id, true, false).await;
            }
        }
        self.update(|r| {
            if let Some(a) = r.attempt.as_mut() {
                a.containers.clear();
                a.phase = Phase::Abandoned(reason.to_string());
            }
        })?;
        Ok(())
    }

    pub(super) async fn stop(&self, m: &Member) {
        let running = self.containers.lookup(&m.id).is_ok_and(|e| e.get().state.is_running() || e.restarting());
        if running {
            if let Err(e) = self.containers.stop(&m.id, None, None).await {
                tracing::warn!(container = %m.name, "bundle: stopping: {e:#}");
            }
        }
    }

    pub(super) async fn start(&self, m: &Member) {
        let stopped = self.containers.lookup(&m.id).is_ok_and(|e| !e.get().state.is_running());
        if stopped {
            if let Err(e) = self.containers.start(&m.id).await {
                tracing::warn!(container = %m.name, "bundle: starting: {e:#}");
            }
        }
    }
}
