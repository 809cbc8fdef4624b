//! One instruction of a stage: configuration steps make an image with no new layer; RUN runs
//! in a berth container (same runtime, limits and networks as any container) whose changes
//! are committed as one layer; COPY and ADD write into a container that never starts, then
//! commit. Each step looks in the cache first.

use super::builder::{BuildError, Job};
use super::cache::Key;
use super::copy::{self, Dest, Placing, Source};
use super::stage::StageState;
use crate::containers::{CommitConfig, CommitOptions, WaitCondition};
use crate::logs::reader::Follower;
use crate::util::id::ContainerId;
use anyhow::{anyhow, Context, Result};
use berth_images::dockerfile::{CopySpec, Instruction, Kind};
use berth_images::Digest;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::time::Duration;

/// How often a RUN's log is read for new output while it runs.
const OUTPUT_POLL: Duration = Duration::from_millis(50);

impl Job<'_> {
    pub async fn step(&mut self, state: &mut StageState, inst: &Instruction) -> Result<(), BuildError> {
        match &inst.kind {
            Kind::Arg(list) => {
                for (name, default) in list {
                    let default = default.as_deref().map(|d| state.expand(d)).transpose()?;
                    self.args.declare(&mut state.vars, name, default);
                }
                Ok(())
            }
            Kind::Run(cmd) => self.run(state, super::config::argv(cmd, &state.shell())).await,
            Kind::Copy(spec) => self.copy(state, spec, false).await.map_err(BuildError::from),
            Kind::Add(spec) => self.copy(state, spec, true).await.map_err(BuildError::from),
            Kind::From { .. } => Err(anyhow!("FROM cannot run as a step").into()),
            kind => match super::config::apply(state, kind)? {
                Some(created_by) => self.commit_config(state, created_by).await.map_err(BuildError::from),
                None => Ok(()),
            },
        }
    }

    /// The cached result of a step, unless `--no-cache`.
    async fn cached(&self, key: &Key) -> Result<Option<Digest>> {
        if self.opts.no_cache {
            return Ok(None);
        }
        let usable = |id: &Digest| {
            self.builder.images.resolve(id.as_str()).is_ok() && self.cache_from.as_ref().is_none_or(|allowed| allowed.contains(id))
        };
        let hit = self.builder.cache.get(key, usable)?;
        if hit.is_some() {
            self.out.text(" ---> Using cache\n").await;
        }
        Ok(hit)
    }

    /// Moves the stage to `image`, the step's result; a cache hit brings its configuration.
    fn advance(&self, state: &mut StageState, image: Digest, from_cache: bool) -> Result<()> {
        if from_cache {
            let c = self.builder.images.config(&image)?;
            state.config = c.config;
            state.author = c.author;
        }
        state.image = image;
        Ok(())
    }

    /// A step that only changed the configuration: a new image with no new layer.
    pub async fn commit_config(&self, state: &mut StageState, created_by: String) -> Result<()> {
        let key = Key::new(&state.image, &format!("{created_by}\n{:?}", state.author), None);
        if let Some(hit) = self.cached(&key).await? {
            return self.advance(state, hit, true);
        }
        let images = self.builder.images.clone();
        let (base, config, author) = (state.image.clone(), state.config.clone(), state.author.clone());
        let id = tokio::task::spawn_blocking(move || images.derive_config(&base, config, author, created_by)).await??;
        self.builder.cache.put(&key, &id)?;
        self.advance(state, id, false)
    }

    /// A container of the step's image that runs `cmd` (RUN) or never runs (COPY/ADD: the
    /// image's VOLUMEs not mounted, so what is copied there stays in the layer).
    async fn container(&self, state: &StageState, cmd: Vec<String>, env: Vec<String>, for_copy: bool) -> Result<ContainerId> {
        let o = self.opts;
        // Docker's umask (0022), whatever the daemon's default for containers: the image
        // must hold what a build against dockerd puts in it.
        let mut host = json!({ "NetworkMode": o.network_mode, "ExtraHosts": o.extra_hosts, "Annotations": { "native.umask": "normal" } });
        for (k, v) in &o.limits {
            host[k] = v.clone();
        }
        let body = json!({
            "Image": state.image.as_str(),
            "Cmd": cmd,
            "Entrypoint": [""],
            "Env": env,
            "User": state.config.user.clone().unwrap_or_default(),
            "WorkingDir": state.workdir(),
            "Healthcheck": { "Test": ["NONE"] },
            "Labels": { super::STEP_LABEL: "" },
            "HostConfig": host,
        });
        let mut req: crate::containers::CreateRequest = serde_json::from_value(body)?;
        req.no_image_volumes = for_copy;
        self.builder.containers.create(None, req).await.context("creating the step's container")
    }

    /// Commits the step's container as the stage's next image, and removes it (`rm`).
    async fn commit_container(&self, state: &mut StageState, id: &ContainerId, key: &Key, created_by: String) -> Result<()> {
        let opts = CommitOptions {
            tag: None,
            author: state.author.clone().unwrap_or_default(),
            comment: String::new(),
            pause: false,
            config: CommitConfig::Given(state.config.clone()),
            created_by: Some(created_by),
        };
        let committed = self.builder.containers.commit(id.as_str(), opts).await;
        if self.opts.rm || committed.is_err() {
            self.remove(id).await;
        }
        let image = committed.context("committing the step's changes")?;
        self.builder.cache.put(key, &image)?;
        self.advance(state, image, false)
    }

    pub async fn remove(&self, id: &ContainerId) {
        if let Err(e) = self.builder.containers.remove(id.as_str(), true, true).await {
            tracing::warn!(container = %id.short(), "removing a build step's container: {e:#}");
        }
    }

    /// RUN: the command in a container of the stage's image, its output sent as it comes.
    async fn run(&self, state: &mut StageState, argv: Vec<String>) -> Result<(), BuildError> {
        let (env, from_args) = state.vars.run_env(&self.args);
        let command = argv.join(" ");
        // Docker's history line: the build arguments the command saw, then the command.
        let created_by =
            if from_args.is_empty() { command.clone() } else { format!("|{} {} {command}", from_args.len(), from_args.join(" ")) };
        let key = Key::new(&state.image, &format!("RUN {created_by}"), None);
        if let Some(hit) = self.cached(&key).await? {
            return Ok(self.advance(state, hit, true)?);
        }
        let id = self.container(state, argv, env, false).await?;
        self.out.text(format!(" ---> Running in {}\n", id.short())).await;
        let code = match self.run_container(&id).await {
            Ok(code) => code,
            Err(e) => {
                self.remove(&id).await;
                return Err(e.into());
            }
        };
        if code != 0 {
            if self.opts.force_rm {
                self.remove(&id).await;
            }
            return Err(BuildError { message: format!("The command '{command}' returned a non-zero code: {code}"), code: Some(code) });
        }
        if self.opts.rm {
            self.out.text(format!("Removing intermediate container {}\n", id.short())).await;
        }
        Ok(self.commit_container(state, &id, &key, created_by).await?)
    }

    /// Starts the container and sends its output until it exits; its exit code. A client
    /// that goes away stops the build: the container is killed.
    async fn run_container(&self, id: &ContainerId) -> Result<i32> {
        let containers = &self.builder.containers;
        let entry = containers.lookup(id.as_str())?;
        let waiter = entry.waiter(WaitCondition::NextExit);
        let mut log = Follower::at_end(&entry.get().log_path);
        containers.start(id.as_str()).await.context("starting the step's container")?;
        let exited = waiter.wait();
        tokio::pin!(exited);
        let code = loop {
            tokio::select! {
                code = &mut exited => break code,
                _ = tokio::time::sleep(OUTPUT_POLL) => self.send_output(&mut log).await,
                _ = self.out.closed() => {
                    anyhow::bail!("the build was cancelled: the client went away");
                }
            }
        };
        self.send_output(&mut log).await;
        Ok(code)
    }

    /// The output read since the last call: standard output as it is, each piece of
    /// standard error in red, as dockerd marks it.
    async fn send_output(&self, log: &mut Follower) {
        let mut chunks: Vec<String> = Vec::new();
        let mut plain = String::new();
        if let Err(e) = log.read_new(&mut |e| {
            if e.stream == "stderr" {
                if !plain.is_empty() {
                    chunks.push(std::mem::take(&mut plain));
                }
                chunks.push(format!("\x1b[91m{}\x1b[0m", e.log));
            } else {
                plain.push_str(&e.log);
            }
        }) {
            tracing::warn!("reading a build step's output: {e}");
        }
        if !plain.is_empty() {
            chunks.push(plain);
        }
        for c in chunks {
            self.out.text(c).await;
        }
    }

    /// COPY and ADD.
    async fn copy(&mut self, state: &mut StageState, spec: &CopySpec, add: bool) -> Result<()> {
        let keyword = if add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for s in &spec.sources {
            sources.push(state.expand(s)?);
        }
        let dest = Dest::new(&state.expand(&spec.dest)?, &state.workdir());
        let chown = spec.chown.as_deref().map(|c| state.expand(c)).transpose()?;
        let chmod = match &spec.chmod {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| anyhow!("invalid --chmod {m:?}: an octal mode"))?,
            ),
        };
        let step_dir = self.work.join(format!("step-{}", ContainerId::random()?.short()));
        let found = match &spec.from {
            Some(from) => self.stage_from(&state.expand(from)?, &sources, &step_dir).await,
            None => self.context_sources(&sources, add, &step_dir).await,
        };
        let from_context = spec.from.is_none();
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&step_dir);
                return Err(e.context(format!("{keyword} failed")));
            }
        };
        let sum = {
            let found2 = found.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
                let mut h = Sha256::new();
                copy::checksum(&found2, &mut h)?;
                Ok(h.finalize().to_vec())
            })
            .await??
        };
        let created_by = format!(
            "/bin/sh -c #(nop) {keyword} {}:{} in {} ",
            if found.len() == 1 && !found[0].dir { "file" } else { "dir" },
            hex::encode(&sum),
            dest.path
        );
        let flags = format!("from={:?} chown={chown:?} chmod={chmod:?} unpack={add}", spec.from);
        let key = Key::new(&state.image, &format!("{created_by}\n{flags}"), Some(&sum));
        let result = async {
            if let Some(hit) = self.cached(&key).await? {
                return self.advance(state, hit, true);
            }
            let id = self.container(state, vec!["/bin/true".into()], vec![], true).await?;
            let how = Placing { owner: from_context.then_some((0, 0)), mode: chmod, unpack_archives: add };
            let placed = self
                .builder
                .containers
                .with_root_fs(id.as_str(), move |_, root| {
                    let owner = match &chown {
                        Some(c) => {
                            let u = crate::containers::user::resolve(root, c).with_context(|| format!("--chown={c}"))?;
                            Some((u.uid, u.gid))
                        }
                        None => how.owner,
                    };
                    copy::place(root, &found, &dest, Placing { owner, ..how })
                })
                .await;
            if let Err(e) = placed {
                self.remove(&id).await;
                return Err(e.context(format!("{keyword} failed")));
            }
            self.commit_container(state, &id, &key, created_by).await
        }
        .await;
        let _ = std::fs::remove_dir_all(&step_dir);
        result
    }

    /// Sources from the build context (and for ADD, URLs fetched into `dir`).
    async fn context_sources(&self, patterns: &[String], add: bool, dir: &Path) -> Result<Vec<Source>> {
        let mut local = Vec::new();
        let mut fetched = Vec::new();
        for p in patterns {
            if p.starts_with("http://") || p.starts_with("https://") {
                anyhow::ensure!(add, "{p}: COPY takes no URL, ADD does");
                fetched.push(self.fetch(p, dir).await?);
            } else {
                local.push(p.clone());
            }
        }
        let context = self.context.clone();
        let mut found =
            if local.is_empty() { Vec::new() } else { tokio::task::spawn_blocking(move || copy::find(&context, &local)).await?? };
        found.extend(fetched);
        Ok(found)
    }

    /// ADD of a URL: the file downloaded, named by the URL's last path element.
    async fn fetch(&self, url: &str, dir: &Path) -> Result<Source> {
        use http_body_util::BodyExt;
        let name =
            url.split(['?', '#']).next().unwrap_or(url).rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("download").to_string();
        let resp = crate::images::transport::get_url(url).await.with_context(|| format!("{url} could not be fetched"))?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(&name);
        let mut file = tokio::fs::File::create(&path).await?;
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.with_context(|| format!("reading {url}"))?.into_data() {
                tokio::io::AsyncWriteExt::write_all(&mut file, &data).await?;
            }
        }
        tokio::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).await?;
        Ok(Source { host: path, name, dir: false })
    }

    /// COPY --from: the sources copied out of the stage's (or image's) files to `dir` on the
    /// host, owners and modes kept.
    async fn stage_from(&self, from: &str, patterns: &[String], dir: &Path) -> Result<Vec<Source>> {
        let lower = from.to_ascii_lowercase();
        let image = match self.stages.iter().enumerate().find(|(i, (n, _))| n.as_deref() == Some(lower.as_str()) || i.to_string() == lower)
        {
            Some((_, (_, id))) => id.clone(),
            None if lower.parse::<usize>().is_ok() => anyhow::bail!("COPY --from={from}: no earlier stage has that index"),
            None => self.image(from, self.opts.platform.clone(), false).await?,
        };
        let holder = StageState::new(image.clone(), Default::default(), None, &self.args, self.escape);
        let id = self.container(&holder, vec!["/bin/true".into()], vec![], true).await?;
        let (patterns, dir2) = (patterns.to_vec(), dir.to_path_buf());
        let staged = self.builder.containers.with_root_fs(id.as_str(), move |_, root| copy::stage(root, &patterns, &dir2)).await;
        self.remove(&id).await;
        staged.with_context(|| format!("copying from {from}"))
    }
}
