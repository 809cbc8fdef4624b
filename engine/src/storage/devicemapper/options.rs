//! Docker's `dm.*` storage options, parsed and checked once (at configuration time, so a bad
//! option stops the daemon before it touches a disk).

use anyhow::{bail, Context, Result};

/// Bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    /// `10G`, `512M`, `64k`, `1073741824` (binary units, as Docker's).
    pub fn parse(s: &str) -> Result<Size> {
        crate::config::parse_size(s).map(Size)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fs {
    Ext4,
    Xfs,
}

/// The pool berth uses: an existing one, or one it makes on a whole block device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolSource {
    /// `dm.thinpooldev`: an LVM thin pool (or any dm thin-pool device) made beforehand.
    Existing(String),
    /// `dm.directlvm_device`: berth makes PV, VG `berth` and thin pool `berth/thinpool`.
    DirectLvm { device: String, data_percent: u8, meta_percent: u8, autoextend_threshold: u8, autoextend_percent: u8 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub pool: PoolSource,
    pub base_size: Size,
    pub fs: Fs,
    pub mkfs_args: Vec<String>,
    pub mount_opts: String,
    /// `dm.blocksize` for a pool berth makes.
    pub block_size: Size,
    /// Percent of data (and metadata) space that must stay free for a new device.
    pub min_free_percent: u8,
    pub deferred_removal: bool,
    pub deferred_deletion: bool,
}

fn percent(key: &str, v: &str) -> Result<u8> {
    let p: u8 = v.trim_end_matches('%').parse().with_context(|| format!("{key}={v}: not a percentage"))?;
    if p > 100 {
        bail!("{key}={v}: more than 100%");
    }
    Ok(p)
}

fn boolean(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("{key}={v}: expected true or false"),
    }
}

impl Options {
    pub fn parse(opts: &[String]) -> Result<Options> {
        let (mut thinpooldev, mut directlvm) = (None, None);
        let (mut data_percent, mut meta_percent, mut threshold, mut extend) = (95, 1, 80, 20);
        let mut o = Options {
            pool: PoolSource::Existing(String::new()),
            base_size: Size(10 << 30),
            fs: Fs::Ext4,
            mkfs_args: vec![],
            mount_opts: String::new(),
            block_size: Size(64 << 10),
            min_free_percent: 10,
            deferred_removal: false,
            deferred_deletion: false,
        };
        for opt in opts {
            let (key, v) = opt.split_once('=').with_context(|| format!("storage-opt {opt:?}: expected key=value"))?;
            let key = key.trim().to_ascii_lowercase();
            let v = v.trim();
            match key.as_str() {
                "dm.thinpooldev" => thinpooldev = Some(v.to_string()),
                "dm.directlvm_device" => directlvm = Some(v.to_string()),
                "dm.thinp_percent" => data_percent = percent(&key, v)?,
                "dm.thinp_metapercent" => meta_percent = percent(&key, v)?,
                "dm.thinp_autoextend_threshold" => threshold = percent(&key, v)?,
                "dm.thinp_autoextend_percent" => extend = percent(&key, v)?,
                "dm.basesize" => o.base_size = Size::parse(v)?,
                "dm.fs" => {
                    o.fs = match v {
                        "ext4" => Fs::Ext4,
                        "xfs" => Fs::Xfs,
                        _ => bail!("dm.fs={v}: ext4 or xfs"),
                    }
                }
                "dm.mkfsarg" => o.mkfs_args.push(v.to_string()),
                "dm.mountopt" => o.mount_opts = v.to_string(),
                "dm.blocksize" => o.block_size = Size::parse(v)?,
                "dm.min_free_space" => o.min_free_percent = percent(&key, v)?,
                "dm.use_deferred_removal" => o.deferred_removal = boolean(&key, v)?,
                "dm.use_deferred_deletion" => o.deferred_deletion = boolean(&key, v)?,
                "dm.loopdatasize" | "dm.loopmetadatasize" | "dm.datadev" | "dm.metadatadev" => {
                    bail!("storage-opt {key}: loopback and raw data/metadata pools are not supported; use dm.thinpooldev (an LVM thin pool) or dm.directlvm_device")
                }
                _ => bail!("storage-opt {key} is not known to the devicemapper driver"),
            }
        }
        // A device's filesystem must at least hold a minimal root: below 1 GiB ext4's journal
        // and a busybox image leave too little.
        if o.base_size.0 < 1 << 30 {
            bail!("dm.basesize {} is below 1G", o.base_size.0);
        }
        let bs = o.block_size.0;
        if !bs.is_multiple_of(64 << 10) || !(64 << 10..=1 << 30).contains(&bs) {
            bail!("dm.blocksize {bs}: a multiple of 64K between 64K and 1G, as dm-thin requires");
        }
        o.pool = match (thinpooldev, directlvm) {
            (Some(_), Some(_)) => bail!("dm.thinpooldev and dm.directlvm_device exclude each other"),
            (Some(p), None) if p.is_empty() => bail!("dm.thinpooldev is empty"),
            (Some(p), None) => PoolSource::Existing(p),
            (None, Some(d)) => {
                if threshold == 100 && extend == 100 {
                    bail!("dm.thinp_autoextend_threshold and dm.thinp_autoextend_percent are both 100: the pool would never extend");
                }
                if data_percent as u16 + meta_percent as u16 > 100 {
                    bail!("dm.thinp_percent + dm.thinp_metapercent exceed 100%");
                }
                PoolSource::DirectLvm { device: d, data_percent, meta_percent, autoextend_threshold: threshold, autoextend_percent: extend }
            }
            (None, None) => bail!("the devicemapper driver needs dm.thinpooldev or dm.directlvm_device (loopback pools are not supported)"),
        };
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> Result<Options> {
        Options::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn docker_options_parse_with_docker_defaults() {
        let o = parse(&["dm.thinpooldev=/dev/mapper/vg-pool"]).unwrap();
        assert_eq!(o.pool, PoolSource::Existing("/dev/mapper/vg-pool".into()));
        assert_eq!((o.base_size, o.fs, o.min_free_percent), (Size(10 << 30), Fs::Ext4, 10));
        let d = parse(&[
            "dm.directlvm_device=/dev/vdb",
            "dm.thinp_percent=90",
            "dm.basesize=20G",
            "dm.fs=xfs",
            "dm.use_deferred_deletion=true",
        ])
        .unwrap();
        assert_eq!(
            d.pool,
            PoolSource::DirectLvm {
                device: "/dev/vdb".into(),
                data_percent: 90,
                meta_percent: 1,
                autoextend_threshold: 80,
                autoextend_percent: 20
            }
        );
        assert_eq!((d.base_size, d.fs, d.deferred_deletion), (Size(20 << 30), Fs::Xfs, true));
    }

    #[test]
    fn bad_or_unsafe_options_are_refused() {
        for bad in [
            &["dm.directlvm_device=/dev/vdb", "dm.thinp_autoextend_threshold=100", "dm.thinp_autoextend_percent=100"][..],
            &["dm.loopdatasize=10G"],
            &[],
            &["dm.thinpooldev=/dev/x", "dm.directlvm_device=/dev/y"],
            &["dm.thinpooldev=/dev/x", "dm.basesize=10Q"],
            &["dm.thinpooldev=/dev/x", "dm.blocksize=100K"],
            &["dm.thinpooldev=/dev/x", "dm.min_free_space=120%"],
            &["dm.thinpooldev=/dev/x", "dm.nonsense=1"],
            &["dm.thinpooldev=/dev/x", "dm.basesize=100M"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
