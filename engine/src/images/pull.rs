//! `docker pull`: an image from a registry, the platform chosen from multi-arch indexes, every
//! byte checked against its digest as it streams, interrupted downloads resumed with HTTP
//! Range, and the image recorded only once all of it is verified and in place (through
//! `add_image`, so a crash or a cut connection leaves no image and no `<none>` entry).
//!
//! Downloads land in `<data-root>/tmp/pull/<hex>.partial` (kept for a resume) and become
//! `<hex>.blob` once verified; they are deleted after the image is committed.

use super::transport::{Payload, Registry};
use super::ImageStore;
use anyhow::{bail, ensure, Context, Result};
use berth_images::archive::decompressed;
use berth_images::registry::manifest::{self, Compression, Descriptor, Manifest};
use berth_images::registry::platform::Platform;
use berth_images::registry::{endpoint, is_loopback_host};
use berth_images::tarsplit::apply_recorded;
use berth_images::{Digest, ImageConfig, Reference};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Layers downloaded at once (Docker's `max-concurrent-downloads` default).
const CONCURRENT_DOWNLOADS: usize = 3;
const ATTEMPTS: u32 = 5;

/// Docker's JSON progress stream, one object a line.
#[derive(Clone)]
pub struct Progress(pub mpsc::Sender<Bytes>);

impl Progress {
    pub(crate) async fn send(&self, v: Value) {
        let _ = self.0.send(Bytes::from(v.to_string() + "\n")).await;
    }
    fn blocking_send(&self, v: Value) {
        let _ = self.0.blocking_send(Bytes::from(v.to_string() + "\n"));
    }
}

pub struct PullOptions {
    pub platform: Option<Platform>,
    pub insecure: Vec<String>,
    /// Docker's certs.d layout: `<dir>/<host>/*.crt` are CAs trusted for that registry.
    pub certs_dir: Option<PathBuf>,
    pub credentials: Option<super::transport::Credentials>,
    /// `registry-mirrors`: tried in order for Docker Hub images.
    pub mirrors: Vec<String>,
}

impl PullOptions {
    /// The daemon's registry settings, for one pull.
    pub fn new(cfg: &crate::config::DaemonConfig, platform: Option<Platform>, credentials: Option<super::transport::Credentials>) -> Self {
        PullOptions {
            platform,
            insecure: cfg.insecure_registries.clone(),
            certs_dir: Some(cfg.registry_certs_dir.clone()),
            credentials,
            mirrors: cfg.registry_mirrors.clone(),
        }
    }
}

async fn read_limited(resp: hyper::Response<hyper::body::Incoming>, limit: usize) -> Result<Bytes> {
    http_body_util::Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))
}

/// A manifest by tag or digest: its bytes, content type and digest.
async fn fetch_manifest(reg: &Registry, repo: &str, reference: &str) -> Result<(Bytes, Option<String>, Digest)> {
    let resp = reg.get(&format!("/v2/{repo}/manifests/{reference}"), &[("Accept", manifest::ACCEPT.to_string())]).await?;
    let ct = resp.headers().get("content-type").and_then(|c| c.to_str().ok()).map(String::from);
    if let Some(len) = resp.headers().get("content-length").and_then(|l| l.to_str().ok()).and_then(|l| l.parse::<usize>().ok()) {
        ensure!(
            len <= manifest::MAX_MANIFEST,
            "manifest of {repo}:{reference} is {len} bytes, over the {}-byte limit",
            manifest::MAX_MANIFEST
        );
    }
    let body = read_limited(resp, manifest::MAX_MANIFEST).await.with_context(|| format!("manifest of {repo}:{reference}"))?;
    let digest = Digest::of(&body);
    Ok((body, ct, digest))
}

/// Downloads a blob to `dir`, resuming a partial download, verifying size and digest.
async fn download(reg: Arc<Registry>, repo: String, desc: Descriptor, dir: PathBuf, progress: Progress) -> Result<PathBuf> {
    let short = desc.digest.short().to_string();
    let done = dir.join(format!("{}.blob", desc.digest.hex()));
    // A blob downloaded by an earlier pull is a cache: it is checked again before use (a power
    // cut in the VM rig left one short).
    if done.exists() {
        if blob_matches(&done, &desc).await {
            return Ok(done);
        }
        tracing::warn!(blob = %desc.digest.short(), "a cached download does not match its digest: downloading it again");
        let _ = tokio::fs::remove_file(&done).await;
    }
    let partial = dir.join(format!("{}.partial", desc.digest.hex()));
    let (mut hasher, mut have) = resume_point(&partial, &desc).await;
    let resumed = have > 0;
    let mut attempt = 0;
    // A partial as long as the blob (a power cut between the last byte and the rename) needs
    // no request at all: a range starting at its end is one registries refuse (416).
    let mut complete = desc.size > 0 && have == desc.size;
    while !complete {
        attempt += 1;
        let range = (have > 0).then(|| ("Range", format!("bytes={have}-")));
        let result: Result<()> = async {
            let path = format!("/v2/{repo}/blobs/{}", desc.digest);
            let resp = reg.request("GET", &path, range.as_slice(), &Payload::Empty).await?;
            let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&partial).await?;
            if have > 0 && resp.status() == hyper::StatusCode::RANGE_NOT_SATISFIABLE {
                // What we kept is no prefix the registry can continue: start over.
                file.set_len(0).await?;
                (hasher, have) = (Sha256::new(), 0);
                bail!("the registry cannot continue the download where it stopped");
            }
            let resp = super::transport::success(resp, &format!("{path} at {}", reg.host())).await?;
            if have > 0 && resp.status() != hyper::StatusCode::PARTIAL_CONTENT {
                // The registry ignored the range: start over.
                file.set_len(0).await?;
                hasher = Sha256::new();
                have = 0;
            }
            let mut body = resp.into_body();
            let mut last_report = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame.context("connection lost")?;
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    file.write_all(data).await?;
                    have += data.len() as u64;
                    if desc.size > 0 && have > desc.size {
                        bail!("blob {} is larger than its descriptor says ({} bytes)", desc.digest, desc.size);
                    }
                    if have - last_report >= 256 * 1024 {
                        last_report = have;
                        progress
                            .send(json!({"status": "Downloading", "progressDetail": {"current": have, "total": desc.size}, "id": short}))
                            .await;
                    }
                }
            }
            file.flush().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => complete = true,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(blob = %desc.digest.short(), attempt, "download interrupted at {have} bytes, retrying: {e:#}");
                progress.send(json!({"status": format!("Retrying in {} seconds", 1 << (attempt - 1)), "id": short})).await;
                tokio::time::sleep(Duration::from_millis(250 << (attempt - 1))).await;
            }
            Err(e) => return Err(e.context(format!("downloading blob {}", desc.digest))),
        }
    }
    progress.send(json!({"status": "Verifying Checksum", "id": short})).await;
    let got = Digest::from_sha256(hasher);
    if got != desc.digest || (desc.size > 0 && have != desc.size) {
        let _ = tokio::fs::remove_file(&partial).await;
        if resumed {
            // What an interrupted pull left (a power cut may tear it) did not add up: once more
            // from the first byte.
            tracing::warn!(blob = %desc.digest.short(), "a resumed download failed verification: downloading it whole");
            return Box::pin(download(reg, repo, desc, dir, progress)).await;
        }
        bail!("blob {} failed verification: got digest {got} and {have} bytes (expected {} bytes)", desc.digest, desc.size);
    }
    // Not flushed: a download is a cache, read back at once while its pages are in memory and
    // deleted once its layer is made; one a power cut tore is found by the digest check above
    // before any use, and downloaded again. (The layer made from it is flushed before the
    // image is recorded.)
    tokio::fs::rename(&partial, &done).await?;
    progress.send(json!({"status": "Download complete", "id": short})).await;
    Ok(done)
}

/// The sha256 state and length of a file, read in 64 KiB pieces off the async threads (a
/// blob can be hundreds of MiB; the daemon's memory is a few). `None`: missing or unreadable.
async fn hash_file(path: &std::path::Path) -> Option<(Sha256, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<(Sha256, u64)> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let (mut hasher, mut len, mut buf) = (Sha256::new(), 0u64, vec![0u8; 64 * 1024]);
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok((hasher, len));
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
    })
    .await
    .ok()?
    .ok()
}

/// Whether the file at `path` has the descriptor's digest (and size, when known).
async fn blob_matches(path: &std::path::Path, desc: &Descriptor) -> bool {
    hash_file(path).await.is_some_and(|(h, n)| Digest::from_sha256(h) == desc.digest && (desc.size == 0 || n == desc.size))
}

/// What an interrupted download left, to go on from. Longer than the blob: not a prefix of
/// it, so nothing is kept.
async fn resume_point(partial: &std::path::Path, desc: &Descriptor) -> (Sha256, u64) {
    match hash_file(partial).await {
        Some((h, n)) if desc.size == 0 || n <= desc.size => (h, n),
        Some(_) => {
            let _ = tokio::fs::remove_file(partial).await;
            (Sha256::new(), 0)
        }
        None => (Sha256::new(), 0),
    }
}

impl ImageStore {
    /// Pulls `reference`; progress goes to `progress` as Docker's JSON lines.
    pub async fn pull(self: &Arc<Self>, reference: &Reference, opts: &PullOptions, progress: &Progress) -> Result<Digest> {
        let (host, repo) = endpoint(reference);
        // Docker Hub images come from the mirrors first, in order, then from the Hub.
        let mut sources: Vec<(String, bool)> = Vec::new();
        if reference.repository().starts_with("docker.io/") {
            for m in &opts.mirrors {
                let (https, rest) = match m.split_once("://") {
                    Some(("http", r)) => (false, r),
                    Some((_, r)) => (true, r),
                    None => (true, m.as_str()),
                };
                let mhost = rest.trim_end_matches('/').to_string();
                let insecure = !https || is_loopback_host(&mhost) || opts.insecure.contains(&mhost);
                sources.push((mhost, insecure));
            }
        }
        let insecure = is_loopback_host(&host) || opts.insecure.contains(&host);
        sources.push((host, insecure));
        let last = sources.len() - 1;
        for (i, (source, insecure)) in sources.into_iter().enumerate() {
            let reg = Arc::new(Registry::new(&source, insecure, opts.certs_dir.as_deref(), opts.credentials.clone())?);
            match self.pull_from(reg, &repo, reference, opts, progress).await {
                Ok(id) => return Ok(id),
                Err(e) if i < last => {
                    tracing::warn!(mirror = %source, image = %reference.familiar(), "pull from the mirror failed, trying the next source: {e:#}");
                    progress.send(json!({"status": format!("Mirror {source} failed; trying the next source")})).await;
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the origin is always the last source")
    }

    async fn pull_from(
        self: &Arc<Self>,
        reg: Arc<Registry>,
        repo: &str,
        reference: &Reference,
        opts: &PullOptions,
        progress: &Progress,
    ) -> Result<Digest> {
        let repo = repo.to_string();
        let want = opts.platform.clone().unwrap_or_else(Platform::host);
        let wanted = reference
            .digest()
            .map(|d| d.to_string())
            .or_else(|| reference.tag().map(String::from))
            .context("reference without tag or digest")?;
        progress.send(json!({"status": format!("Pulling from {}", reference.familiar_repository()), "id": wanted})).await;

        let (body, ct, digest) = fetch_manifest(&reg, &repo, &wanted).await?;
        if let Some(d) = reference.digest() {
            ensure!(digest == *d, "manifest digest mismatch: asked for {d}, got {digest}");
        }
        let image = match manifest::parse(ct.as_deref(), &body)? {
            Manifest::Image(m) => m,
            Manifest::Index(index) => {
                let entry = index.select(&want).with_context(|| {
                    format!("no matching manifest for {want} in the manifest list entries (available: {})", index.platforms().join(", "))
                })?;
                let (b, c, d) = fetch_manifest(&reg, &repo, entry.digest.as_str()).await?;
                ensure!(d == entry.digest, "manifest {} does not match its digest (got {d})", entry.digest);
                match manifest::parse(c.as_deref(), &b)? {
                    Manifest::Image(m) => m,
                    Manifest::Index(_) => bail!("the manifest list entry for {want} is itself a list"),
                }
            }
        };
        let resp = reg.get(&format!("/v2/{repo}/blobs/{}", image.config.digest), &[]).await?;
        let config_bytes = read_limited(resp, manifest::MAX_MANIFEST).await.context("image config")?;
        ensure!(Digest::of(&config_bytes) == image.config.digest, "image config does not match its digest {}", image.config.digest);
        let config = ImageConfig::parse(&config_bytes)?;
        ensure!(
            config.rootfs.diff_ids.len() == image.layers.len(),
            "manifest lists {} layers, the config {}",
            image.layers.len(),
            config.rootfs.diff_ids.len()
        );
        if config.architecture != want.architecture {
            tracing::warn!(image = %reference.familiar(), arch = %config.architecture, want = %want, "the image's architecture differs from the platform asked for");
        }

        // Download what is missing, a few layers at a time.
        let dir = self.tmp_dir().join("pull");
        tokio::fs::create_dir_all(&dir).await?;
        let t0 = std::time::Instant::now();
        let chains = config.chain_ids();
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DOWNLOADS));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (desc, _)) in image.layers.iter().enumerate() {
            if self.layer_present(&chains[i])? {
                progress.send(json!({"status": "Already exists", "id": desc.digest.short()})).await;
                continue;
            }
            progress.send(json!({"status": "Pulling fs layer", "id": desc.digest.short()})).await;
            let (reg, repo, desc, dir, progress, sem) =
                (reg.clone(), repo.clone(), desc.clone(), dir.clone(), progress.clone(), sem.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await?;
                download(reg, repo, desc, dir, progress).await.map(|p| (i, p))
            });
        }
        let mut files: Vec<Option<PathBuf>> = vec![None; image.layers.len()];
        while let Some(r) = tasks.join_next().await {
            let (i, p) = r??;
            files[i] = Some(p);
        }

        let downloaded_ms = t0.elapsed().as_millis() as u64;
        // Unpack and commit, off the reactor.
        let this = self.clone();
        // The tag asked for, and the manifest digest it was pulled by (RepoDigests).
        let by_digest: Reference = format!("{}@{digest}", reference.repository()).parse()?;
        let mut tags = vec![by_digest];
        if reference.digest().is_none() {
            tags.push(reference.clone());
        }
        let layers: Vec<(Digest, Compression)> = image.layers.iter().map(|(d, c)| (d.digest.clone(), *c)).collect();
        let diff_ids = config.rootfs.diff_ids.clone();
        let p2 = progress.clone();
        let files2 = files.clone();
        // What was downloaded, remembered for later pushes (one commit for all layers).
        let learned: Vec<(Digest, super::push::BlobSource)> = image
            .layers
            .iter()
            .zip(&files)
            .zip(&config.rootfs.diff_ids)
            .filter(|((_, f), _)| f.is_some())
            .map(|(((desc, _), _), diff_id)| {
                let source = super::push::BlobSource {
                    digest: desc.digest.clone(),
                    size: desc.size,
                    media_type: desc.media_type.clone(),
                    host: reg.host().to_string(),
                    repository: repo.clone(),
                };
                (diff_id.clone(), source)
            })
            .collect();
        let id = tokio::task::spawn_blocking(move || {
            // Downloads are complete: the layers are unpacked side by side. (Unpacking while
            // downloading would overlap more, but would hold the store's writer lock while
            // waiting on the network.)
            let id = this.add_image(
                &config_bytes,
                &tags,
                true,
                &|i, dir, wh, split| {
                    let path = files2[i].as_ref().with_context(|| format!("layer {} was not downloaded", layers[i].0))?;
                    p2.blocking_send(json!({"status": "Extracting", "id": layers[i].0.short()}));
                    let file = std::fs::File::open(path)?;
                    let reader = decompressed(std::io::BufReader::new(file), layers[i].1)?;
                    let stats =
                        apply_recorded(reader, dir, wh, split, &diff_ids[i]).with_context(|| format!("layer blob {}", layers[i].0))?;
                    // The download is not needed any more; deleted before the layers are
                    // flushed, its pages are dropped instead of written to disk.
                    let _ = std::fs::remove_file(path);
                    Ok(stats.size)
                },
                &|i, _, existed| {
                    if !existed {
                        p2.blocking_send(json!({"status": "Pull complete", "id": layers[i].0.short()}));
                    }
                },
            )?;
            this.remember_blobs(&learned);
            anyhow::Ok(id)
        })
        .await??;
        // Downloads a fill did not consume (a layer that appeared meanwhile).
        for f in files.into_iter().flatten() {
            let _ = tokio::fs::remove_file(f).await;
        }
        tracing::info!(image = %reference.familiar(), downloaded_ms, total_ms = t0.elapsed().as_millis() as u64, "pulled");
        progress.send(json!({"status": format!("Digest: {digest}")})).await;
        progress.send(json!({"status": format!("Status: Downloaded newer image for {}", reference.familiar())})).await;
        Ok(id)
    }

    /// Is the layer `chain` recorded and in place?
    fn layer_present(&self, chain: &Digest) -> Result<bool> {
        Ok(self.layers.get(chain.hex())?.is_some() && self.driver.has_layer(chain))
    }
}

/// Removes downloads no pull has touched for a day (a pull that never resumed).
pub fn collect_stale_downloads(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let stale =
            e.metadata().and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(86400)).unwrap_or(false);
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
