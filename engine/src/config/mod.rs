//! Daemon configuration: `/etc/berth/daemon.json` with Docker's key names, overridden by
//! command-line flags, validated once at start. Unknown keys are an error: a typo in a
//! device's config must not silently fall back to a default.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";

/// The file as written: every key optional, nothing derived.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub hosts: Option<Vec<String>>,
    pub storage_driver: Option<String>,
    pub storage_opts: Option<Vec<String>>,
    pub log_level: Option<String>,
    pub log_driver: Option<String>,
    pub log_opts: Option<BTreeMap<String, String>>,
    pub default_runtime: Option<String>,
    pub runtimes: Option<BTreeMap<String, RuntimeEntry>>,
    pub exec_opts: Option<Vec<String>>,
    /// Run every container under the built-in init (`--init`) unless it says otherwise.
    pub init: Option<bool>,
    /// The init binary bind-mounted into containers (statically linked); default: the
    /// daemon's own executable when it is static.
    pub init_path: Option<PathBuf>,
    /// As in the openEuler engine: OCI hooks every container runs, before its own.
    pub hook_spec: Option<PathBuf>,
    pub insecure_registries: Option<Vec<String>>,
    /// berth's own key: where per-registry CA certificates live (default /etc/berth/certs.d).
    pub registry_certs_dir: Option<PathBuf>,
    pub registry_mirrors: Option<Vec<String>>,
    /// As in the openEuler engine: verify every layer against its diff_id at start.
    pub image_layer_check: Option<bool>,
    pub bridge: Option<String>,
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub mtu: Option<u32>,
    pub ip_forward: Option<bool>,
    pub ip_masq: Option<bool>,
    pub iptables: Option<bool>,
    pub icc: Option<bool>,
    pub ipv6: Option<bool>,
    /// Docker's TLS keys: serve TCP with TLS; with `tlsverify`, clients need a certificate
    /// signed by `tlscacert`.
    pub tls: Option<bool>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    /// berth's own: revoked client certificates (PEM CRL, `berth tls revoke`).
    pub tlscrl: Option<PathBuf>,
    /// berth's own: the subject field holding a client's role (OU, O or CN; default OU).
    pub tls_role_field: Option<String>,
    /// berth's own: operators may exec (default false).
    pub tls_operator_exec: Option<bool>,
    /// berth's own: allow a `tcp://` host without TLS (loopback only).
    pub insecure_plain_tcp: Option<bool>,
    /// berth's own: the public keys bundles must be signed with (default /etc/berth/trust).
    pub bundle_trust_dir: Option<PathBuf>,
    /// berth's own: this device's board name, matched against bundles and signing keys.
    pub board: Option<String>,
    /// berth's own: the board profile whose settings fill in what this file leaves out
    /// (default /etc/berth/board.toml when it exists).
    pub board_profile: Option<PathBuf>,
    /// Docker's key: the cgroup every container's cgroup goes under (default /berth).
    pub cgroup_parent: Option<String>,
    /// berth's own: the largest build context `POST /build` accepts (default 1g).
    pub build_context_limit: Option<String>,
}

impl FileConfig {
    /// Fills in what the file leaves out from the board profile: the file (and after it the
    /// flags) wins key by key. Storage options come with the profile's driver only.
    pub fn apply_profile(&mut self, p: &crate::board::Profile) {
        self.board.get_or_insert_with(|| p.board.name.clone());
        self.data_root.get_or_insert_with(|| p.storage.data_root.clone());
        if self.storage_driver.is_none() {
            self.storage_driver = Some(p.storage.driver.as_str().to_string());
            if self.storage_opts.is_none() {
                self.storage_opts = Some(p.storage.options.clone());
            }
        }
        if self.cgroup_parent.is_none() {
            self.cgroup_parent = p.cgroups.parent.clone();
        }
        if self.log_opts.is_none() {
            self.log_opts = p.logs.as_ref().map(|l| l.opts());
        }
    }
}

/// The default bridge and the daemon's network settings (Docker's keys and defaults).
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The default bridge's device; `None` for `"bridge": "none"` (no default network).
    pub bridge: Option<String>,
    pub subnet: crate::network::ipam::Subnet,
    pub gateway: std::net::Ipv4Addr,
    pub fixed_cidr: Option<crate::network::ipam::Subnet>,
    pub mtu: u32,
    pub ip_forward: bool,
    pub ip_masq: bool,
    /// Whether berth writes nftables rules at all.
    pub firewall: bool,
    pub icc: bool,
}

impl NetConfig {
    fn from_file(file: &FileConfig) -> Result<Self> {
        use crate::network::ipam::Subnet;
        if file.ipv6 == Some(true) {
            bail!("ipv6: true is not supported yet (containers get IPv4 only); remove the key or set it to false");
        }
        let bridge = match file.bridge.as_deref() {
            None | Some("") => Some("berth0".to_string()),
            Some("none") => None,
            Some(b) if b.len() > 15 || !b.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) => {
                bail!("invalid bridge name {b:?}: at most 15 characters of [A-Za-z0-9-_.]")
            }
            Some(b) => Some(b.to_string()),
        };
        let (subnet, gateway) = Subnet::parse_with_host(file.bip.as_deref().unwrap_or("172.17.0.1/16")).context("invalid bip")?;
        if !subnet.is_host(gateway) {
            bail!("invalid bip {:?}: the bridge's address must be a host address of its subnet", file.bip.as_deref().unwrap_or(""));
        }
        let fixed_cidr = file.fixed_cidr.as_deref().map(str::parse::<Subnet>).transpose().context("invalid fixed-cidr")?;
        if let Some(f) = fixed_cidr {
            if !subnet.covers(&f) {
                bail!("fixed-cidr {f} is not inside the bridge's subnet {subnet}");
            }
        }
        let mtu = file.mtu.unwrap_or(1500);
        if !(68..=65535).contains(&mtu) {
            bail!("invalid mtu {mtu}: must be between 68 and 65535");
        }
        Ok(NetConfig {
            bridge,
            subnet,
            gateway,
            fixed_cidr,
            mtu,
            ip_forward: file.ip_forward.unwrap_or(true),
            ip_masq: file.ip_masq.unwrap_or(true),
            firewall: file.iptables.unwrap_or(true),
            icc: file.icc.unwrap_or(true),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeEntry {
    pub path: String,
    #[serde(default)]
    pub runtime_args: Vec<String>,
}

/// Values given on the command line; they override the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// Daemon configuration file
    #[arg(long = "config-file", default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Root of persistent state
    #[arg(long = "data-root")]
    pub data_root: Option<PathBuf>,
    /// Root of runtime state (sockets, bundles)
    #[arg(long = "exec-root")]
    pub exec_root: Option<PathBuf>,
    /// Listen address(es), from the global `-H`: unix:///path, fd://
    #[arg(skip)]
    pub hosts: Vec<String>,
    /// Storage driver (overlay2, vfs)
    #[arg(short = 's', long = "storage-driver")]
    pub storage_driver: Option<String>,
    /// Log level (debug, info, warn, error)
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Default OCI runtime
    #[arg(long = "default-runtime")]
    pub default_runtime: Option<String>,
    /// Runtime execution options (native.umask=normal|secure)
    #[arg(long = "exec-opt")]
    pub exec_opts: Vec<String>,
    /// Serve tcp:// hosts over TLS (implied by --tlsverify)
    #[arg(long)]
    pub tls: bool,
    /// Serve TLS and require client certificates signed by --tlscacert
    #[arg(long)]
    pub tlsverify: bool,
    /// CA that client certificates must be signed by (default /etc/berth/tls/ca.pem)
    #[arg(long)]
    pub tlscacert: Option<PathBuf>,
    /// The server's certificate (default /etc/berth/tls/cert.pem)
    #[arg(long)]
    pub tlscert: Option<PathBuf>,
    /// The server's key (default /etc/berth/tls/key.pem)
    #[arg(long)]
    pub tlskey: Option<PathBuf>,
    /// Revoked client certificates (a PEM CRL, as `berth tls revoke` writes)
    #[arg(long)]
    pub tlscrl: Option<PathBuf>,
    /// Serve a tcp:// host without TLS: anyone who reaches it controls the device. Loopback
    /// addresses only.
    #[arg(long = "insecure-plain-tcp")]
    pub insecure_plain_tcp: bool,
    /// Board profile to take defaults from (default /etc/berth/board.toml when it exists)
    #[arg(long = "board-profile")]
    pub board_profile: Option<PathBuf>,
}

/// Where the json-file driver caps a container's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLimits {
    /// Bytes per file before rotation; `None`: unlimited.
    pub max_size: Option<u64>,
    /// Files kept, the current one included (>= 1).
    pub max_file: u32,
}

impl LogLimits {
    /// Reads `max-size`/`max-file` from log options; other keys are an error.
    pub fn from_opts(opts: &BTreeMap<String, String>, base: LogLimits) -> Result<Self> {
        let mut out = base;
        for (k, v) in opts {
            match k.as_str() {
                "max-size" => out.max_size = if v == "-1" { None } else { Some(parse_size(v)?) },
                "max-file" => {
                    out.max_file =
                        v.parse().ok().filter(|n| *n >= 1).with_context(|| format!("invalid max-file {v:?}: must be a number >= 1"))?
                }
                _ => bail!("unknown log opt '{k}' for json-file log driver"),
            }
        }
        // As in Docker, max-file without max-size is accepted and has no effect (nothing rotates).
        Ok(out)
    }
}

/// `10m`, `1g`, `512k`, `100` (bytes), as Docker's units.RAMInBytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => bail!("invalid size {s:?}: unknown unit {unit:?}"),
    };
    Ok((n * mult as f64) as u64)
}

/// The runtime a container runs under.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub name: String,
    pub path: String,
    pub args: Vec<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<String>,
    pub storage_driver: Option<String>,
    pub storage_opts: Vec<String>,
    pub log_level: tracing::Level,
    pub log_limits: LogLimits,
    pub runtimes: BTreeMap<String, Runtime>,
    pub default_runtime: String,
    /// Default umask of container processes: 0027 (secure) unless `native.umask=normal`.
    pub umask: u32,
    pub config_file: Option<PathBuf>,
    /// Registries reached over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// `<dir>/<host>/*.crt`: CAs trusted for that registry (Docker's certs.d layout).
    pub registry_certs_dir: PathBuf,
    /// Mirrors of Docker Hub, tried in order before it.
    pub registry_mirrors: Vec<String>,
    /// Verify every layer's content at start (slow; off by default).
    pub image_layer_check: bool,
    pub net: NetConfig,
    /// `--init` by default.
    pub init: bool,
    /// The init to mount; `None`: none usable (`--init` is refused).
    pub init_path: Option<PathBuf>,
    /// The daemon's hooks (`hook-spec`), checked at start.
    pub hooks: crate::runtime::hooks::HookSpec,
    /// TLS for tcp:// hosts (`tls`/`tlsverify`).
    pub tls: Option<crate::tls::TlsConfig>,
    pub insecure_plain_tcp: bool,
    pub bundle_trust_dir: PathBuf,
    pub board: Option<String>,
    /// The board profile applied, if any.
    pub board_profile: Option<PathBuf>,
    /// Containers' cgroups are `<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    /// Bytes of build context `POST /build` accepts.
    pub build_context_limit: u64,
}

impl DaemonConfig {
    /// Where hook programs must live: `<data-root>/hooks`.
    pub fn hooks_dir(&self) -> PathBuf {
        self.data_root.join("hooks")
    }
}

/// Parses `native.umask=normal|secure`.
pub fn umask_option(value: &str) -> Result<u32> {
    match value {
        "normal" => Ok(0o022),
        "secure" => Ok(0o027),
        _ => bail!("invalid native.umask {value:?}: expected normal or secure"),
    }
}

impl DaemonConfig {
    /// Reads the file (a missing default file is fine, a missing named one is not) and applies
    /// the flags.
    pub fn load(flags: &Flags) -> Result<Self> {
        let path = &flags.config_file;
        let (mut file, used) = match std::fs::read(path) {
            Ok(data) if data.iter().all(u8::is_ascii_whitespace) => (FileConfig::default(), Some(path.clone())),
            Ok(data) => (
                serde_json::from_slice::<FileConfig>(&data).with_context(|| format!("invalid configuration file {}", path.display()))?,
                Some(path.clone()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(DEFAULT_CONFIG_FILE) => (FileConfig::default(), None),
            Err(e) => return Err(e).with_context(|| format!("reading configuration file {}", path.display())),
        };
        let named = flags.board_profile.as_deref().or(file.board_profile.as_deref());
        let profile = crate::board::Profile::find(named)?;
        if let Some((_, p)) = &profile {
            p.check_arch()?;
            file.apply_profile(p);
        }
        let mut config = Self::merge(file, flags, used)?;
        config.board_profile = profile.map(|(path, _)| path);
        Ok(config)
    }

    fn merge(file: FileConfig, flags: &Flags, config_file: Option<PathBuf>) -> Result<Self> {
        let net = NetConfig::from_file(&file)?;
        let hosts = if !flags.hosts.is_empty() { flags.hosts.clone() } else { file.hosts.unwrap_or_default() };
        let level = flags.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".into());
        let log_level = match level.as_str() {
            "debug" | "trace" => tracing::Level::DEBUG,
            "info" => tracing::Level::INFO,
            "warn" => tracing::Level::WARN,
            "error" | "fatal" => tracing::Level::ERROR,
            _ => bail!("invalid log-level {level:?}"),
        };
        if let Some(d) = &file.log_driver {
            if d != "json-file" {
                bail!("log-driver {d:?} is not supported (only json-file)");
            }
        }
        let log_limits = LogLimits::from_opts(&file.log_opts.unwrap_or_default(), LogLimits { max_size: None, max_file: 1 })
            .context("invalid log-opts")?;
        let mut runtimes = BTreeMap::new();
        runtimes.insert("runc".to_string(), Runtime { name: "runc".into(), path: "runc".into(), args: vec![] });
        for (name, r) in file.runtimes.unwrap_or_default() {
            runtimes.insert(name.clone(), Runtime { name, path: r.path, args: r.runtime_args });
        }
        let default_runtime = flags.default_runtime.clone().or(file.default_runtime).unwrap_or_else(|| "runc".into());
        if !runtimes.contains_key(&default_runtime) {
            bail!("default-runtime {default_runtime:?} is not a configured runtime");
        }
        let mut umask = 0o027;
        for opt in file.exec_opts.unwrap_or_default().iter().chain(&flags.exec_opts) {
            match opt.split_once('=') {
                Some(("native.umask", v)) => umask = umask_option(v)?,
                _ => bail!("unsupported exec-opt {opt:?} (supported: native.umask=normal|secure)"),
            }
        }
        let storage_driver = flags.storage_driver.clone().or(file.storage_driver);
        if let Some(d) = &storage_driver {
            if !["overlay2", "vfs", "devicemapper"].contains(&d.as_str()) {
                bail!("storage-driver {d:?} is not supported here (overlay2, vfs, devicemapper)");
            }
        }
        let storage_opts = file.storage_opts.unwrap_or_default();
        if storage_driver.as_deref() == Some("devicemapper") {
            crate::storage::devicemapper::options::Options::parse(&storage_opts)?;
        } else if let Some(o) = storage_opts.first() {
            bail!("storage-opt {o:?} is not supported by the overlay2/vfs drivers");
        }
        let registry_mirrors = file.registry_mirrors.clone().unwrap_or_default();
        for m in &registry_mirrors {
            if !(m.starts_with("http://") || m.starts_with("https://")) || m.len() <= "https://".len() {
                bail!("invalid registry-mirrors entry {m:?}: expected http(s)://host[:port]");
            }
        }
        let data_root = flags.data_root.clone().or(file.data_root).unwrap_or_else(|| DEFAULT_DATA_ROOT.into());
        let exec_root = flags.exec_root.clone().or(file.exec_root).unwrap_or_else(|| DEFAULT_EXEC_ROOT.into());
        if !data_root.is_absolute() || !exec_root.is_absolute() {
            bail!("data-root and exec-root must be absolute paths");
        }
        let hooks = match &file.hook_spec {
            None => Default::default(),
            Some(f) => crate::runtime::hooks::HookSpec::load(f, &data_root.join("hooks")).map_err(|e| anyhow::anyhow!("hook-spec: {e}"))?,
        };
        let verify = flags.tlsverify || file.tlsverify.unwrap_or(false);
        let field = match file.tls_role_field.as_deref() {
            None => Default::default(),
            Some(f) => crate::tls::roles::RoleField::parse(f).with_context(|| format!("tls-role-field {f:?}: expected OU, O or CN"))?,
        };
        let policy = crate::tls::roles::Policy { field, operator_exec: file.tls_operator_exec.unwrap_or(false) };
        let tls = (verify || flags.tls || file.tls.unwrap_or(false)).then(|| {
            let dir = Path::new(crate::tls::DEFAULT_DIR);
            crate::tls::TlsConfig {
                verify,
                ca: flags.tlscacert.clone().or(file.tlscacert.clone()).unwrap_or_else(|| dir.join("ca.pem")),
                cert: flags.tlscert.clone().or(file.tlscert.clone()).unwrap_or_else(|| dir.join("cert.pem")),
                key: flags.tlskey.clone().or(file.tlskey.clone()).unwrap_or_else(|| dir.join("key.pem")),
                crl: flags.tlscrl.clone().or(file.tlscrl.clone()),
                policy,
            }
        });
        Ok(DaemonConfig {
            tls,
            insecure_plain_tcp: flags.insecure_plain_tcp || file.insecure_plain_tcp.unwrap_or(false),
            hooks,
            hosts: if hosts.is_empty() { vec![format!("unix://{}", exec_root.join("berth.sock").display())] } else { hosts },
            data_root,
            exec_root,
            storage_driver,
            storage_opts,
            log_level,
            log_limits,
            runtimes,
            default_runtime,
            umask,
            config_file,
            insecure_registries: file.insecure_registries.unwrap_or_default(),
            image_layer_check: file.image_layer_check.unwrap_or(false),
            bundle_trust_dir: file.bundle_trust_dir.unwrap_or_else(|| "/etc/berth/trust".into()),
            board: file.board.filter(|b| !b.is_empty()),
            board_profile: None,
            build_context_limit: match file.build_context_limit.as_deref() {
                None => 1 << 30,
                Some(v) => parse_size(v).context("invalid build-context-limit")?,
            },
            cgroup_parent: match file.cgroup_parent.as_deref() {
                None | Some("") => "/berth".to_string(),
                Some(p) => crate::board::profile::cgroup_parent(p).context("invalid cgroup-parent")?,
            },
            registry_certs_dir: file.registry_certs_dir.unwrap_or_else(|| "/etc/berth/certs.d".into()),
            registry_mirrors,
            net,
            init: file.init.unwrap_or(false),
            init_path: match file.init_path {
                Some(p) if !p.is_absolute() => bail!("init-path must be an absolute path"),
                Some(p) => Some(p),
                None => std::env::current_exe().ok().filter(|e| crate::init::is_static(e)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str, flags: Flags) -> Result<DaemonConfig> {
        DaemonConfig::merge(serde_json::from_str(json)?, &flags, None)
    }

    #[test]
    fn unknown_keys_are_an_error() {
        assert!(serde_json::from_str::<FileConfig>(r#"{"data-rooot":"/x"}"#).is_err());
    }

    #[test]
    fn flags_override_file() {
        let f = Flags { data_root: Some("/flag".into()), ..Default::default() };
        let c = parse(r#"{"data-root":"/file","exec-opts":["native.umask=normal"]}"#, f).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/flag"));
        assert_eq!(c.umask, 0o022);
        assert_eq!(c.hosts, vec!["unix:///run/berth/berth.sock".to_string()]);
    }

    #[test]
    fn defaults_and_log_opts() {
        let c = parse(r#"{"log-opts":{"max-size":"10m","max-file":"3"}}"#, Flags::default()).unwrap();
        assert_eq!(c.umask, 0o027);
        assert_eq!(c.log_limits, LogLimits { max_size: Some(10 << 20), max_file: 3 });
        assert_eq!(parse(r#"{"log-opts":{"max-file":"3"}}"#, Flags::default()).unwrap().log_limits.max_size, None);
        assert!(parse(r#"{"log-opts":{"max-file":"0"}}"#, Flags::default()).is_err());
        assert!(parse(r#"{"exec-opts":["native.umask=weird"]}"#, Flags::default()).is_err());
        assert!(parse(r#"{"default-runtime":"crun"}"#, Flags::default()).is_err());
        assert!(parse(r#"{"registry-mirrors":["mirror.example"]}"#, Flags::default()).is_err());
        assert_eq!(parse(r#"{"registry-mirrors":["https://mirror.example"]}"#, Flags::default()).unwrap().registry_mirrors.len(), 1);
    }

    #[test]
    fn devicemapper_options_are_checked_at_start() {
        let ok = r#"{"storage-driver":"devicemapper","storage-opts":["dm.thinpooldev=/dev/mapper/vg-pool","dm.basesize=20G"]}"#;
        assert_eq!(parse(ok, Flags::default()).unwrap().storage_opts.len(), 2);
        let err = |j: &str| format!("{:#}", parse(j, Flags::default()).unwrap_err());
        assert!(err(r#"{"storage-driver":"devicemapper"}"#).contains("dm.thinpooldev or dm.directlvm_device"));
        assert!(err(r#"{"storage-driver":"devicemapper","storage-opts":["dm.loopdatasize=10G"]}"#).contains("loopback"));
        assert!(err(r#"{"storage-opts":["dm.basesize=20G"]}"#).contains("not supported by the overlay2/vfs"));
    }

    #[test]
    fn a_board_profile_fills_in_what_the_file_leaves_out() {
        let (_, text) = crate::board::BUILT_IN.iter().find(|(n, _)| *n == "raspberrypi5").unwrap();
        let profile = crate::board::Profile::parse(text, "rpi5").unwrap();
        let with = |json: &str, flags: Flags| {
            let mut file: FileConfig = serde_json::from_str(json).unwrap();
            file.apply_profile(&profile);
            DaemonConfig::merge(file, &flags, None).unwrap()
        };
        let c = with("{}", Flags::default());
        assert_eq!(c.board.as_deref(), Some("raspberrypi5"));
        assert_eq!(c.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(c.storage_driver.as_deref(), Some("devicemapper"));
        assert!(c.storage_opts.contains(&"dm.directlvm_device=/dev/nvme0n1p3".to_string()));
        assert_eq!(c.cgroup_parent, "/berth");
        assert_eq!(c.log_limits, LogLimits { max_size: Some(5 << 20), max_file: 2 });
        // The file wins key by key, the flags over both; another driver leaves the profile's
        // dm options behind.
        let c = with(
            r#"{"storage-driver":"overlay2","board":"lab-7","log-opts":{"max-size":"100k"},"cgroup-parent":"/system.slice/apps"}"#,
            Flags { data_root: Some("/flag".into()), ..Default::default() },
        );
        assert_eq!((c.storage_driver.as_deref(), c.storage_opts.len()), (Some("overlay2"), 0));
        assert_eq!(c.board.as_deref(), Some("lab-7"));
        assert_eq!(c.data_root, PathBuf::from("/flag"));
        assert_eq!(c.log_limits, LogLimits { max_size: Some(100 << 10), max_file: 1 });
        assert_eq!(c.cgroup_parent, "/system.slice/apps");
        assert!(parse(r#"{"cgroup-parent":"../escape"}"#, Flags::default()).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("10x").is_err());
    }
}
