//! The classic builder's main loop: the stages up to the target, in order; each FROM
//! (scratch, an earlier stage, an image here or pulled) and its ONBUILD triggers; each
//! instruction through `steps`; then the labels and tags of the request.

use super::cache::Cache;
use super::output::Output;
use super::stage::StageState;
use crate::containers::Containers;
use crate::images::{ImageStore, PullOptions};
use anyhow::{anyhow, Context, Result};
use berth_images::dockerfile::instruction::parse_trigger;
use berth_images::dockerfile::vars::BuildArgs;
use berth_images::dockerfile::{words, Dockerfile, Instruction};
use berth_images::registry::platform::Platform;
use berth_images::{Digest, Reference};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `POST /build`'s options.
#[derive(Debug, Default, Clone)]
pub struct BuildOptions {
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// Remove a step's container after a successful step (Docker's default).
    pub rm: bool,
    /// Remove it after a failed one too.
    pub force_rm: bool,
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    /// HostConfig fields of every RUN step's container: the build's limits.
    pub limits: serde_json::Map<String, serde_json::Value>,
    pub platform: Option<Platform>,
    /// `--cache-from`: when given, only these images and their parents are cache hits.
    pub cache_from: Vec<String>,
    /// The client's registry logins (`X-Registry-Config`) by registry host (`docker.io`).
    pub logins: BTreeMap<String, crate::images::transport::Credentials>,
}

/// Why a build stopped: the message the client shows, and a RUN step's exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    pub message: String,
    pub code: Option<i32>,
}

impl From<anyhow::Error> for BuildError {
    fn from(e: anyhow::Error) -> Self {
        BuildError { message: format!("{e:#}"), code: None }
    }
}

pub struct Builder {
    pub(super) images: Arc<ImageStore>,
    pub(super) containers: Arc<Containers>,
    pub(super) cache: Cache,
    pub(super) cfg: Arc<crate::config::DaemonConfig>,
}

/// One build: what every step needs.
pub(super) struct Job<'a> {
    pub builder: &'a Builder,
    pub opts: &'a BuildOptions,
    pub out: &'a Output,
    pub context: PathBuf,
    /// Scratch space for this build (staged `--from` files, downloads).
    pub work: PathBuf,
    pub args: BuildArgs,
    pub escape: char,
    /// The images of the stages built so far, and their names.
    pub stages: Vec<(Option<String>, Digest)>,
    /// The images `--cache-from` allows as hits (with their parents); `None`: any.
    pub cache_from: Option<std::collections::BTreeSet<Digest>>,
}

impl Builder {
    pub fn new(
        store: &crate::state::Store,
        images: Arc<ImageStore>,
        containers: Arc<Containers>,
        cfg: Arc<crate::config::DaemonConfig>,
    ) -> Result<Builder> {
        Ok(Builder { images, containers, cache: Cache::open(store)?, cfg })
    }

    /// Runs the build of `dockerfile` with the context unpacked at `work/context`.
    pub async fn build(&self, dockerfile: &Dockerfile, work: PathBuf, opts: &BuildOptions, out: &Output) -> Result<Digest, BuildError> {
        let target = dockerfile.target(opts.target.as_deref()).map_err(|m| anyhow!(m))?;
        let stages = &dockerfile.stages[..=target];
        let total: usize = stages.iter().map(|s| s.instructions.len() + 1).sum();
        let mut job = Job {
            builder: self,
            opts,
            out,
            context: work.join("context"),
            work,
            args: BuildArgs::new(opts.build_args.clone()),
            escape: dockerfile.escape,
            stages: Vec::new(),
            cache_from: self.cache_sources(&opts.cache_from),
        };
        for (name, default) in &dockerfile.global_args {
            let default = match default {
                Some(d) => Some(job.expand_global(d)?),
                None => None,
            };
            job.args.declare_global(name, default);
        }
        let mut n = 0;
        let mut last = None;
        for stage in stages {
            n += 1;
            let as_name = stage.name.as_ref().map(|s| format!(" AS {s}")).unwrap_or_default();
            let platform = stage.platform.as_ref().map(|p| format!("--platform={p} ")).unwrap_or_default();
            out.text(format!("Step {n}/{total} : FROM {platform}{}{as_name}\n", stage.base)).await;
            let mut state = job.from(&stage.base, stage.platform.as_deref()).await?;
            out.text(format!(" ---> {}\n", short(&state.image))).await;
            job.triggers(&mut state, stage.line).await?;
            for inst in &stage.instructions {
                n += 1;
                job.check_client()?;
                out.text(format!("Step {n}/{total} : {}\n", inst.text)).await;
                job.step(&mut state, inst).await.map_err(|e| job.step_error(inst, e))?;
                out.text(format!(" ---> {}\n", short(&state.image))).await;
            }
            job.stages.push((stage.name.clone(), state.image.clone()));
            last = Some(state);
        }
        let mut state = last.expect("a Dockerfile has a stage");
        if !opts.labels.is_empty() {
            state.config.labels.get_or_insert_with(Default::default).extend(opts.labels.clone());
            let shown = opts.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            job.commit_config(&mut state, format!("/bin/sh -c #(nop)  LABEL {shown}")).await?;
        }
        let unused = job.args.unused();
        if !unused.is_empty() {
            out.text(format!("[Warning] One or more build-args [{}] were not consumed\n", unused.join(" "))).await;
        }
        let id = state.image;
        out.built(&id).await;
        out.text(format!("Successfully built {}\n", short(&id))).await;
        for t in &opts.tags {
            self.images.tag(id.as_str(), t.clone())?;
            out.text(format!("Successfully tagged {}\n", t.familiar())).await;
        }
        Ok(id)
    }
}

impl Builder {
    /// At start: the containers of build steps a stopped daemon left (a RUN goes on running
    /// through a restart) are removed; no build outlives its daemon.
    pub async fn remove_leftover_steps(&self) -> Vec<String> {
        let mut actions = Vec::new();
        for c in self.containers.list() {
            if c.config.labels.as_ref().is_some_and(|l| l.contains_key(super::STEP_LABEL)) {
                match self.containers.remove(c.id.as_str(), true, true).await {
                    Ok(()) => actions.push(format!("removed container {} of an interrupted build step", c.id.short())),
                    Err(e) => tracing::warn!(container = %c.id.short(), "removing a build step's leftover container: {e:#}"),
                }
            }
        }
        actions
    }

    /// The images `--cache-from` names (those here), each with its parents.
    fn cache_sources(&self, names: &[String]) -> Option<std::collections::BTreeSet<Digest>> {
        if names.is_empty() {
            return None;
        }
        let mut allowed = std::collections::BTreeSet::new();
        for n in names {
            let mut next = self.images.resolve(n).ok().map(|i| i.id);
            while let Some(id) = next {
                next = self.images.parent_of(&id);
                if !allowed.insert(id) {
                    break;
                }
            }
        }
        Some(allowed)
    }

    /// Removes the images only the cache holds and the entries that name them (or images
    /// gone); returns the images deleted and the bytes their layers took.
    pub fn prune(&self) -> Result<(Vec<String>, u64)> {
        let (users, layers) = self.containers.image_users();
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for (key, made) in self.cache.list()? {
            let mut kept = false;
            for image in made {
                let Ok(img) = self.images.resolve(image.as_str()) else { continue };
                if users.contains_key(&image) || !self.images.tags_of(&image).is_empty() || !self.images.digests_of(&image).is_empty() {
                    kept = true;
                    continue;
                }
                // What the step added: its size over its parent's.
                let parent_size = self.images.parent_of(&image).and_then(|p| self.images.resolve(p.as_str()).ok()).map_or(0, |p| p.size);
                let out = self.images.delete(image.as_str(), false, &|_| None, &layers, true)?;
                if out.iter().any(|d| matches!(d, crate::images::Deleted::Deleted(_))) {
                    deleted.push(image.to_string());
                    reclaimed += img.size.saturating_sub(parent_size);
                }
            }
            if !kept {
                self.cache.remove(&key)?;
            }
        }
        Ok((deleted, reclaimed))
    }
}

pub(super) fn short(id: &Digest) -> &str {
    &id.hex()[..12]
}

impl Job<'_> {
    fn expand_global(&self, word: &str) -> Result<String> {
        words::expand(word, self.escape, &|n| self.args.global(n)).map_err(|e| anyhow!(e))
    }

    pub fn check_client(&self) -> Result<()> {
        if self.out.gone() {
            anyhow::bail!("the build was cancelled: the client went away");
        }
        Ok(())
    }

    /// A failed step's error, naming the instruction unless the message does already.
    fn step_error(&self, inst: &Instruction, e: BuildError) -> BuildError {
        if e.code.is_some() || e.message.starts_with("COPY failed") || e.message.starts_with("ADD failed") {
            return e;
        }
        BuildError { message: format!("{} (line {}): {}", inst.keyword(), inst.line, e.message), code: None }
    }

    /// A stage's start: the image FROM names, and a fresh state on it.
    async fn from(&mut self, base: &str, platform: Option<&str>) -> Result<StageState> {
        let base = self.expand_global(base)?;
        let lower = base.to_ascii_lowercase();
        let image = if lower == "scratch" {
            let arch = self.opts.platform.as_ref().map(|p| p.architecture.clone()).unwrap_or_default();
            let images = self.builder.images.clone();
            let id = tokio::task::spawn_blocking(move || images.scratch(&arch)).await??;
            // On record as the cache's, so `builder prune` removes it with the rest.
            self.builder.cache.put(&super::cache::Key::new(&id, "FROM scratch", None), &id)?;
            id
        } else if let Some((_, id)) = self.stages.iter().find(|(n, _)| n.as_deref() == Some(lower.as_str())) {
            id.clone()
        } else {
            let platform = match platform {
                Some(p) => Some(self.expand_global(p)?.parse::<Platform>().map_err(|e| anyhow!("FROM --platform: {e}"))?),
                None => self.opts.platform.clone(),
            };
            self.image(&base, platform, self.opts.pull).await?
        };
        let config = self.builder.images.config(&image)?;
        Ok(StageState::new(image, config.config, config.author, &self.args, self.escape))
    }

    /// The image `name` names: here already, or pulled (always with `pull`).
    pub async fn image(&self, name: &str, platform: Option<Platform>, pull: bool) -> Result<Digest> {
        if !pull {
            if let Ok(img) = self.builder.images.resolve(name) {
                return Ok(img.id);
            }
        }
        let reference: Reference = name.parse().map_err(|e| anyhow!("invalid reference {name:?}: {e}"))?;
        let login = self.opts.logins.get(reference.repository().split('/').next().unwrap_or_default()).cloned();
        let opts = PullOptions::new(&self.builder.cfg, platform, login);
        self.builder.images.pull(&reference, &opts, &self.out.progress()).await.with_context(|| format!("pulling {}", reference.familiar()))
    }

    /// The base image's ONBUILD triggers run first; the new image keeps none of them.
    async fn triggers(&mut self, state: &mut StageState, line: usize) -> Result<(), BuildError> {
        let triggers: Vec<String> = state
            .config
            .extra
            .remove("OnBuild")
            .and_then(|v| serde_json::from_value::<Option<Vec<String>>>(v).ok().flatten())
            .unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        let s = if triggers.len() == 1 { "" } else { "s" };
        self.out.text(format!("# Executing {} build trigger{s}\n", triggers.len())).await;
        for t in &triggers {
            let inst = parse_trigger(t, line, self.escape).map_err(|e| anyhow!("the base image's ONBUILD {t:?}: {e}"))?;
            self.step(state, &inst).await.map_err(|e| self.step_error(&inst, e))?;
        }
        Ok(())
    }
}
