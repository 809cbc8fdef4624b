//! `docker push`: an image's layers, config and manifest to a registry.
//!
//! Each layer is rebuilt from its directory (exactly its `diff_id`, checked as it streams),
//! gzip-compressed into a spool file whose digest names the blob, and uploaded only if the
//! registry lacks it (HEAD first). Layers pulled or pushed before are known by their
//! compressed digest ([`BlobSource`]): when the registry already has that blob nothing is
//! rebuilt at all. Uploads are monolithic (`POST` for a location, `PUT` with the digest), a
//! flow every distribution registry accepts. The manifest goes last, so a registry never
//! names an image whose blobs it does not hold.

use super::save::LayerTar;
use super::transport::{success, Credentials, Payload, Registry};
use super::{ImageStore, Progress};
use crate::state::Record;
use anyhow::{Context, Result};
use berth_images::registry::{endpoint, is_loopback_host};
use berth_images::{Digest, Reference};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A compressed blob known to hold a layer (keyed by the layer's `diff_id`): pulled from or
/// pushed to a registry before.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobSource {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// Where it was seen last: registry host and repository.
    pub host: String,
    pub repository: String,
}

impl Record for BlobSource {
    const TABLE: &'static str = "blob_sources";
    const VERSION: u8 = 1;
}

pub struct PushOptions {
    pub insecure: Vec<String>,
    pub certs_dir: Option<PathBuf>,
    pub credentials: Option<Credentials>,
}

/// Hashes and counts what passes through to the spool file (the compressed blob).
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ImageStore {
    /// Remembers which compressed blob holds each layer (`diff_id` → blob), in one commit.
    /// A hint for later pushes: a failure is logged, not passed on. Blocking.
    pub(crate) fn remember_blobs(&self, learned: &[(Digest, BlobSource)]) {
        if learned.is_empty() {
            return;
        }
        let written = self.store.write(|tx| learned.iter().try_for_each(|(diff_id, source)| tx.put(diff_id.hex(), source)));
        if let Err(e) = written {
            tracing::warn!(layers = learned.len(), "could not record the layers' blobs: {e:#}");
        }
    }

    /// Rebuilds layer `l` and gzips it into a spool file: (path, digest, size).
    fn compress_layer(&self, l: &LayerTar) -> Result<(PathBuf, Digest, u64)> {
        let path = self.tmp.join(format!("push-{}-{}.gz", l.diff_id.hex(), std::process::id()));
        let result = (|| -> Result<(Digest, u64)> {
            let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            let hashing = HashingWriter { inner: std::io::BufWriter::new(file), hasher: Sha256::new(), count: 0 };
            let mut gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::default());
            self.write_layer_tar(l, &mut gz)?;
            let mut hashing = gz.finish()?;
            hashing.flush()?;
            Ok((Digest::from_sha256(hashing.hasher), hashing.count))
        })();
        match result {
            Ok((d, n)) => Ok((path, d, n)),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Pushes `reference` (a tag) and returns the manifest's digest.
    pub async fn push(self: &Arc<Self>, reference: &Reference, opts: &PushOptions, progress: &Progress) -> Result<Digest> {
        let tag = reference.tag().context("push needs a tag")?.to_string();
        let img = self.resolve(&reference.to_string())?;
        let (host, repo) = endpoint(reference);
        let insecure = is_loopback_host(&host) || opts.insecure.contains(&host);
        let reg = Registry::new(&host, insecure, opts.certs_dir.as_deref(), opts.credentials.clone())?;
        progress.send(json!({"status": format!("The push refers to repository [{}]", reference.familiar_repository())})).await;

        let this = self.clone();
        let img2 = img.clone();
        let (config, layers) = tokio::task::spawn_blocking(move || -> Result<_> {
            let config = this.config_bytes(&img2.id)?;
            Ok((config, this.layer_tars(&img2)?))
        })
        .await??;

        let mut descriptors = Vec::new();
        let mut learned = Vec::new();
        for l in &layers {
            let short = l.diff_id.short().to_string();
            let known =
                self.blob_sources.get(l.diff_id.hex())?.filter(|s| s.media_type == DOCKER_LAYER_GZIP || s.media_type == OCI_LAYER_GZIP);
            if let Some(s) = &known {
                let status = if blob_exists(&reg, &repo, &s.digest).await? {
                    Some("Layer already exists".to_string())
                } else if s.host == host && s.repository != repo && mount(&reg, &repo, &s.digest, &s.repository).await? {
                    Some(format!("Mounted from {}", s.repository))
                } else {
                    None
                };
                if let Some(status) = status {
                    progress.send(json!({"status": status, "id": short})).await;
                    descriptors.push(json!({"mediaType": DOCKER_LAYER_GZIP, "digest": s.digest, "size": s.size}));
                    continue;
                }
            }
            progress.send(json!({"status": "Preparing", "id": short})).await;
            let this = self.clone();
            let l2 = l.clone();
            let (file, digest, size) = tokio::task::spawn_blocking(move || this.compress_layer(&l2)).await??;
            let uploaded = async {
                if blob_exists(&reg, &repo, &digest).await? {
                    progress.send(json!({"status": "Layer already exists", "id": short})).await;
                } else {
                    progress.send(json!({"status": "Pushing", "progressDetail": {"current": 0, "total": size}, "id": short})).await;
                    upload(&reg, &repo, &digest, Payload::File(file.clone())).await?;
                    progress.send(json!({"status": "Pushed", "id": short})).await;
                }
                anyhow::Ok(())
            }
            .await;
            let _ = std::fs::remove_file(&file);
            uploaded.with_context(|| format!("pushing layer {short}"))?;
            let source = BlobSource {
                digest: digest.clone(),
                size,
                media_type: DOCKER_LAYER_GZIP.into(),
                host: host.clone(),
                repository: repo.clone(),
            };
            learned.push((l.diff_id.clone(), source));
            descriptors.push(json!({"mediaType": DOCKER_LAYER_GZIP, "digest": digest, "size": size}));
        }
        if !blob_exists(&reg, &repo, &img.id).await? {
            upload(&reg, &repo, &img.id, Payload::Bytes(Bytes::from(config.clone()))).await.context("pushing the image config")?;
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": img.id, "size": config.len()},
            "layers": descriptors,
        }))?;
        let digest = Digest::of(&manifest);
        let resp = reg
            .request(
                "PUT",
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("Content-Type", DOCKER_MANIFEST.to_string())],
                &Payload::Bytes(Bytes::from(manifest.clone())),
            )
            .await?;
        success(resp, "the manifest").await.with_context(|| format!("pushing the manifest of {}", reference.familiar()))?;
        // Docker lists what was pushed among the image's RepoDigests.
        let by_digest: Reference = format!("{}@{digest}", reference.repository()).parse()?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.remember_blobs(&learned);
            this.tag(img.id.as_str(), by_digest)
        })
        .await??;
        progress.send(json!({"status": format!("{tag}: digest: {digest} size: {}", manifest.len())})).await;
        progress.send(json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": manifest.len()}})).await;
        Ok(digest)
    }
}

async fn blob_exists(reg: &Registry, repo: &str, digest: &Digest) -> Result<bool> {
    let resp = reg.request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &Payload::Empty).await?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        _ => success(resp, &format!("the blob {digest}")).await.map(|_| false),
    }
}

/// A cross-repository mount: the registry links a blob it holds under `from` into `repo`
/// (201) or declines (202, an upload session that is left to expire).
async fn mount(reg: &Registry, repo: &str, digest: &Digest, from: &str) -> Result<bool> {
    let path = format!(
        "/v2/{repo}/blobs/uploads/?mount={}&from={}",
        crate::api::query::percent_encode(digest.as_str()),
        crate::api::query::percent_encode(from)
    );
    let resp = reg.request("POST", &path, &[], &Payload::Empty).await?;
    Ok(resp.status() == hyper::StatusCode::CREATED)
}

/// A monolithic upload: a location from `POST`, then the content with its digest in `PUT`.
async fn upload(reg: &Registry, repo: &str, digest: &Digest, payload: Payload) -> Result<()> {
    let resp = reg.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &Payload::Empty).await?;
    let resp = success(resp, "starting an upload").await?;
    let location =
        resp.headers().get("location").and_then(|l| l.to_str().ok()).context("the registry gave no upload location")?.to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = reg
        .request(
            "PUT",
            &format!("{location}{sep}digest={}", crate::api::query::percent_encode(digest.as_str())),
            &[("Content-Type", "application/octet-stream".to_string())],
            &payload,
        )
        .await?;
    success(resp, &format!("the upload of {digest}")).await?;
    Ok(())
}
