//! Image archives: the `docker save` format (`manifest.json` + config + layer tars) and OCI
//! image layouts (`oci-layout`, `index.json`, `blobs/sha256/...`), both read from a tar file on
//! disk. The upload is spooled to a file first because `manifest.json` comes last in `docker
//! save` output: the layers cannot be placed before it is read, and holding them in memory is
//! not an option on a device.
//!
//! Every member is located once ([`ArchiveIndex`]) and then read by offset. Nothing is
//! trusted: the config's digest is the image ID, every layer is checked against its `diff_id`
//! as it is unpacked (`tarsplit::apply_recorded`), OCI blobs against their descriptors.

use crate::config::ImageConfig;
use crate::digest::{Digest, HashingReader};
use crate::reference::Reference;
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Configs and manifests are small; anything larger is refused before it is read into memory.
const MAX_METADATA: u64 = 4 << 20;

#[derive(Clone, Copy, Debug)]
struct Member {
    offset: u64,
    size: u64,
}

/// Where each member of the archive tar lies.
pub struct ArchiveIndex {
    file: File,
    members: HashMap<String, Member>,
}

/// One layer of an image in the archive.
#[derive(Clone, Debug)]
pub struct LayerSource {
    pub member: String,
    /// OCI layouts name each blob by digest: checked on the compressed bytes.
    blob_digest: Option<Digest>,
}

/// One image found in the archive, not yet verified beyond its config.
#[derive(Debug)]
pub struct ArchiveImage {
    pub id: Digest,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
    pub tags: Vec<Reference>,
    pub layers: Vec<LayerSource>,
}

fn normalise(name: &str) -> String {
    name.trim_start_matches("./").trim_end_matches('/').to_string()
}

impl ArchiveIndex {
    /// Indexes the tar at `path`. A truncated file or a member that runs past its end is an
    /// error here, before anything is unpacked.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening archive {}", path.display()))?;
        let len = file.metadata()?.len();
        let mut members = HashMap::new();
        {
            let mut archive = tar::Archive::new(BufReader::new(&file));
            for entry in archive.entries_with_seek().context("reading archive")? {
                let entry = entry.context("archive is not a valid tar (truncated?)")?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let name = normalise(&String::from_utf8_lossy(&entry.path_bytes()));
                let m = Member { offset: entry.raw_file_position(), size: entry.size() };
                ensure!(m.offset + m.size <= len, "archive is truncated: member {name} runs past the end of the file");
                members.insert(name, m);
            }
        }
        ensure!(!members.is_empty(), "archive is empty or not a tar file");
        Ok(ArchiveIndex { file, members })
    }

    fn member(&self, name: &str) -> Result<Member> {
        self.members.get(&normalise(name)).copied().with_context(|| format!("archive has no member {name:?}"))
    }

    fn reader(&self, m: Member) -> Result<Raw<'_>> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(m.offset))?;
        Ok(BufReader::new(f.take(m.size)))
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let m = self.member(name)?;
        ensure!(m.size <= MAX_METADATA, "archive member {name} is {} bytes, over the {MAX_METADATA}-byte limit", m.size);
        let mut buf = Vec::with_capacity(m.size as usize);
        self.reader(m)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The images in the archive, in the order its manifest lists them.
    pub fn images(&self) -> Result<Vec<ArchiveImage>> {
        if self.members.contains_key("manifest.json") {
            self.docker_images()
        } else if self.members.contains_key("index.json") && self.members.contains_key("oci-layout") {
            self.oci_images()
        } else {
            bail!("not an image archive: neither manifest.json (docker save) nor index.json + oci-layout (OCI) found")
        }
    }

    fn docker_images(&self) -> Result<Vec<ArchiveImage>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let manifest: Vec<Entry> = serde_json::from_slice(&self.read_small("manifest.json")?).context("manifest.json is not valid")?;
        manifest
            .into_iter()
            .map(|e| {
                let tags = e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| t.parse().with_context(|| format!("manifest.json tag {t:?}")))
                    .collect::<Result<_>>()?;
                let layers = e.layers.into_iter().map(|member| LayerSource { member, blob_digest: None }).collect();
                self.image(&e.config, None, tags, layers)
            })
            .collect()
    }

    fn oci_images(&self) -> Result<Vec<ArchiveImage>> {
        #[derive(Deserialize)]
        struct Descriptor {
            #[serde(rename = "mediaType", default)]
            media_type: String,
            digest: Digest,
            #[serde(default)]
            annotations: HashMap<String, String>,
        }
        #[derive(Deserialize)]
        struct Index {
            manifests: Vec<Descriptor>,
        }
        #[derive(Deserialize)]
        struct Manifest {
            config: Descriptor,
            layers: Vec<Descriptor>,
        }
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let verified = |d: &Digest| -> Result<Vec<u8>> {
            let data = self.read_small(&blob(d))?;
            ensure!(Digest::of(&data) == *d, "blob {d} does not match its digest");
            Ok(data)
        };
        let index: Index = serde_json::from_slice(&self.read_small("index.json")?).context("index.json is not valid")?;
        let mut out = Vec::new();
        for desc in index.manifests {
            if desc.media_type.contains("index") || desc.media_type.contains("manifest.list") {
                bail!("nested image indexes in an OCI layout are not supported yet ({})", desc.digest);
            }
            let m: Manifest =
                serde_json::from_slice(&verified(&desc.digest)?).with_context(|| format!("manifest {} is not valid", desc.digest))?;
            // containerd's annotation holds the full name; the OCI one often only a tag
            // ("latest"), which names nothing on its own: such an image loads untagged.
            let name = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name").filter(|n| n.contains(':') || n.contains('/')));
            let tags = match name {
                Some(n) => vec![n.parse().with_context(|| format!("OCI ref name {n:?}"))?],
                None => vec![],
            };
            let layers = m.layers.into_iter().map(|l| LayerSource { member: blob(&l.digest), blob_digest: Some(l.digest) }).collect();
            out.push(self.image(&blob(&m.config.digest), Some(&m.config.digest), tags, layers)?);
        }
        Ok(out)
    }

    fn image(&self, config_member: &str, expect: Option<&Digest>, tags: Vec<Reference>, layers: Vec<LayerSource>) -> Result<ArchiveImage> {
        let config_bytes = self.read_small(config_member)?;
        let id = Digest::of(&config_bytes);
        if let Some(e) = expect {
            ensure!(&id == e, "config {config_member} has digest {id}, expected {e}");
        }
        let config = ImageConfig::parse(&config_bytes).with_context(|| format!("config {config_member}"))?;
        ensure!(
            config.rootfs.diff_ids.len() == layers.len(),
            "image {} lists {} layers but its config has {} diff_ids",
            id.short(),
            layers.len(),
            config.rootfs.diff_ids.len()
        );
        Ok(ArchiveImage { id, config_bytes, config, tags, layers })
    }

    /// A member's size and its bytes as stored (bundles copy blobs as they are).
    pub fn raw_member(&self, name: &str) -> Result<(u64, impl Read + '_)> {
        let m = self.member(name)?;
        Ok((m.size, self.reader(m)?))
    }

    /// The uncompressed layer tar, gzip detected by its magic bytes. Callers read it to the
    /// end (unpacking it), then [`LayerReader::finish`] checks the `diff_id` and, for OCI
    /// layouts, the digest of the stored blob.
    pub fn open_layer(&self, layer: &LayerSource) -> Result<LayerReader<'_>> {
        let m = self.member(&layer.member)?;
        let mut magic = [0u8; 2];
        let n = self.reader(m)?.read(&mut magic)?;
        let blob = HashingReader::new(self.reader(m)?);
        let decoded =
            if n == 2 && magic == [0x1f, 0x8b] { Decoded::Gzip(flate2::read::GzDecoder::new(blob)) } else { Decoded::Plain(blob) };
        Ok(LayerReader { inner: decoded, expect_blob: layer.blob_digest.clone() })
    }
}

type Raw<'a> = BufReader<io::Take<&'a File>>;

/// A layer blob's uncompressed stream.
pub fn decompressed<R: Read + Send + 'static>(r: R, c: crate::registry::manifest::Compression) -> Result<Box<dyn Read + Send>> {
    use crate::registry::manifest::Compression;
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(r)),
        Compression::Zstd => Box::new(ruzstd::decoding::StreamingDecoder::new(r).map_err(|e| anyhow::anyhow!("zstd stream: {e}"))?),
    })
}

/// Opens a tar file that may be gzip-compressed (told by its magic bytes), for reading it
/// uncompressed: what `import` takes.
pub fn open_tar_file(path: &Path) -> Result<Box<dyn Read + Send>> {
    let mut magic = [0u8; 2];
    let n = File::open(path).and_then(|mut f| f.read(&mut magic)).with_context(|| format!("opening {}", path.display()))?;
    let f = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    Ok(if n == 2 && magic == [0x1f, 0x8b] { Box::new(flate2::read::GzDecoder::new(f)) } else { Box::new(f) })
}

enum Decoded<'a> {
    Plain(HashingReader<Raw<'a>>),
    Gzip(flate2::read::GzDecoder<HashingReader<Raw<'a>>>),
}

impl Read for Decoded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(r) => r.read(buf),
            Decoded::Gzip(r) => r.read(buf),
        }
    }
}

/// An uncompressed layer stream; its content is checked against the `diff_id` by whoever
/// unpacks it ([`crate::tarsplit::apply_recorded`]), the stored blob by [`LayerReader::finish`].
pub struct LayerReader<'a> {
    inner: Decoded<'a>,
    expect_blob: Option<Digest>,
}

impl Read for LayerReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl LayerReader<'_> {
    /// Drains the stream and checks the stored blob against its digest (OCI layouts name
    /// blobs by digest; docker-save archives do not).
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).context("reading layer")?;
        if let Some(expect) = &self.expect_blob {
            let blob = match self.inner {
                Decoded::Plain(b) => b,
                Decoded::Gzip(g) => g.into_inner(),
            };
            let (blob_digest, _, _) = blob.finish_into_inner().context("reading layer blob")?;
            ensure!(&blob_digest == expect, "layer blob has digest {blob_digest}, expected {expect}");
        }
        Ok(())
    }
}
