//! Image manifests and indexes, Docker's and OCI's. Parsed once into types; what berth cannot
//! use (schema 1, foreign layers, unknown media types) is refused with a message naming it.

use super::platform::Platform;
use crate::digest::Digest;
use serde::Deserialize;

/// Larger manifests are refused before they are read into memory.
pub const MAX_MANIFEST: usize = 4 << 20;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header of a manifest request.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, over the {MAX_MANIFEST}-byte limit")]
    TooLarge(usize),
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("Docker image manifest schema 1 is not supported (the registry must serve schema 2 or OCI)")]
    Schema1,
    #[error("layer {0} has unsupported media type {1:?}")]
    LayerType(Digest, String),
    #[error("manifest is missing its {0}")]
    Missing(&'static str),
}

#[derive(Clone, Debug, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Debug)]
pub struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<(Descriptor, Compression)>,
}

#[derive(Clone, Debug)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

#[derive(Clone, Debug)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

fn layer_compression(d: &Descriptor) -> Result<Compression, ManifestError> {
    match d.media_type.as_str() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" | "application/vnd.oci.image.layer.v1.tar+gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Ok(Compression::Zstd),
        "application/vnd.oci.image.layer.v1.tar" | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        other => Err(ManifestError::LayerType(d.digest.clone(), other.to_string())),
    }
}

/// Parses a manifest body; `content_type` is the response's, which wins over the body's own
/// `mediaType` (older registries leave it out of the body).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, ManifestError> {
    if body.len() > MAX_MANIFEST {
        return Err(ManifestError::TooLarge(body.len()));
    }
    let raw: Raw = serde_json::from_slice(body)?;
    let ct =
        content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string()).filter(|c| !c.is_empty() && c != "application/json");
    let kind = ct.or(raw.media_type.clone()).unwrap_or_else(|| {
        if raw.manifests.is_some() {
            OCI_INDEX.to_string()
        } else {
            OCI_MANIFEST.to_string()
        }
    });
    // Docker's schema 1 ("...distribution.manifest.v1+json" / "+prettyjws"); OCI's own manifest
    // type also says "manifest.v1", so only Docker's names count.
    if raw.schema_version == 1 || kind.starts_with("application/vnd.docker.distribution.manifest.v1") {
        return Err(ManifestError::Schema1);
    }
    match kind.as_str() {
        OCI_INDEX | DOCKER_LIST => Ok(Manifest::Index(Index { manifests: raw.manifests.ok_or(ManifestError::Missing("manifests"))? })),
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = raw.config.ok_or(ManifestError::Missing("config"))?;
            let layers = raw
                .layers
                .ok_or(ManifestError::Missing("layers"))?
                .into_iter()
                .map(|l| layer_compression(&l).map(|c| (l, c)))
                .collect::<Result<_, _>>()?;
            Ok(Manifest::Image(ImageManifest { config, layers }))
        }
        other => Err(ManifestError::MediaType(other.to_string())),
    }
}

impl Index {
    /// The entry for `want`; entries without a real platform (attestations) never match.
    pub fn select(&self, want: &Platform) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown" && want.matches(p)))
    }

    /// The platforms offered, for an error message.
    pub fn platforms(&self) -> Vec<String> {
        self.manifests.iter().filter_map(|d| d.platform.as_ref()).map(|p| p.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::of(&[n]).to_string()
    }

    #[test]
    fn parses_images_and_indexes() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":1}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":2}}]}}"#,
            d(1),
            d(2)
        );
        let Manifest::Image(m) = parse(None, body.as_bytes()).unwrap() else { panic!() };
        assert_eq!(m.layers[0].1, Compression::Gzip);
        // An OCI manifest, named by its Content-Type ("...image.manifest.v1+json" is not schema 1).
        let oci = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}"}}]}}"#,
            d(1),
            d(2)
        );
        let Manifest::Image(m) = parse(Some(OCI_MANIFEST), oci.as_bytes()).unwrap() else { panic!() };
        assert_eq!(m.layers[0].1, Compression::None);
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}","platform":{{"os":"unknown","architecture":"unknown"}}}},{{"digest":"{}","platform":{{"os":"linux","architecture":"amd64"}}}},{{"digest":"{}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#,
            d(3),
            d(4),
            d(5)
        );
        let Manifest::Index(i) = parse(Some(OCI_INDEX), index.as_bytes()).unwrap() else { panic!() };
        assert_eq!(i.select(&"linux/arm64".parse().unwrap()).unwrap().digest.to_string(), d(5));
        assert_eq!(i.select(&"linux/amd64".parse().unwrap()).unwrap().digest.to_string(), d(4));
        assert!(i.select(&"linux/s390x".parse().unwrap()).is_none());
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(matches!(parse(None, br#"{"schemaVersion":1,"fsLayers":[]}"#), Err(ManifestError::Schema1)));
        assert!(matches!(parse(Some("application/vnd.docker.distribution.manifest.v1+prettyjws"), b"{}"), Err(ManifestError::Schema1)));
        assert!(matches!(parse(Some("application/x-weird"), b"{}"), Err(ManifestError::MediaType(_))));
        assert!(matches!(parse(None, &vec![b' '; MAX_MANIFEST + 1]), Err(ManifestError::TooLarge(_))));
        let foreign = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}"}}]}}"#,
            d(1),
            d(2)
        );
        assert!(matches!(parse(None, foreign.as_bytes()), Err(ManifestError::LayerType(..))));
        assert!(parse(None, b"not json").is_err());
    }
}
