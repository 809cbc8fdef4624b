//! The CLI role: Docker's verbs and flags, talking to the daemon over its API.
//!
//! - [`client`]: HTTP over the unix socket, attach streams.
//! - [`run`]: `create` and `run` (their flags are one definition).
//! - [`commands`]: every other verb.
//! - [`format`]: tables, sizes, ages, `--format` templates.

mod bundle;
pub mod client;
mod commands;
mod credentials;
pub mod format;
mod network;
mod run;
mod stats;
mod volume;

use crate::config::Flags;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "berth", version, about = "A container engine for edge devices", disable_help_subcommand = true)]
pub struct Cli {
    /// Daemon socket(s): the one the CLI connects to (also BERTH_HOST, DOCKER_HOST), or the
    /// ones `berth daemon` listens on
    #[arg(short = 'H', long = "host", global = true)]
    pub host: Vec<String>,
    /// Connect with TLS and verify the daemon (also DOCKER_TLS_VERIFY)
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    /// CA the daemon's certificate must be signed by (default $DOCKER_CERT_PATH/ca.pem)
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<std::path::PathBuf>,
    /// This client's certificate (default $DOCKER_CERT_PATH/cert.pem)
    #[arg(long = "tlscert")]
    pub tlscert: Option<std::path::PathBuf>,
    /// This client's key (default $DOCKER_CERT_PATH/key.pem)
    #[arg(long = "tlskey")]
    pub tlskey: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon
    Daemon(Flags),
    /// Run the daemon under a watchdog that restarts it when it hangs or dies, for good
    Supervise(crate::watchdog::supervise::SuperviseArgs),
    /// Monitor one container (started by the daemon)
    #[command(hide = true)]
    Monitor { bundle: std::path::PathBuf },
    /// Create and start a container
    #[command(disable_help_flag = true)]
    Run(run::RunArgs),
    /// Create a container
    #[command(disable_help_flag = true)]
    Create(run::CreateArgs),
    /// Start one or more stopped containers
    Start {
        /// Attach stdout/stderr and wait for the exit
        #[arg(short = 'a', long)]
        attach: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill {
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart(StopArgs),
    /// Pause all processes within one or more containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display the running processes of a container
    Top {
        container: String,
        /// ps options (the host's ps); none: PID USER TIME COMMAND
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Display a live stream of container resource usage
    Stats {
        /// Print one sample and exit
        #[arg(long = "no-stream")]
        no_stream: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Update configuration of one or more containers
    Update {
        /// Memory limit (bytes, or with a unit: 64m, 1g)
        #[arg(short = 'm', long)]
        memory: Option<String>,
        /// Memory plus swap (-1: unlimited swap)
        #[arg(long = "memory-swap", allow_negative_numbers = true)]
        memory_swap: Option<String>,
        /// Number of CPUs
        #[arg(long)]
        cpus: Option<f64>,
        #[arg(long = "cpu-shares")]
        cpu_shares: Option<i64>,
        #[arg(long = "pids-limit", allow_negative_numbers = true)]
        pids_limit: Option<i64>,
        /// Restart policy (no, always, unless-stopped, on-failure[:N])
        #[arg(long)]
        restart: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove the anonymous volumes of the container
        #[arg(short = 'v', long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(short = 'n', long = "last")]
        last: Option<i64>,
        #[arg(short = 'l', long)]
        latest: bool,
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
    },
    /// Fetch the logs of a container
    Logs {
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        #[arg(short = 't', long)]
        timestamps: bool,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        container: String,
    },
    /// Low-level information on containers or images
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(long = "type")]
        typ: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Inspect changes to files on a container's filesystem
    Diff { container: String },
    /// Export a container's filesystem as a tar archive
    Export {
        #[arg(short = 'o', long)]
        output: Option<String>,
        container: String,
    },
    /// Create a new image from a container's changes
    Commit {
        #[arg(short = 'a', long)]
        author: Option<String>,
        #[arg(short = 'm', long)]
        message: Option<String>,
        #[arg(short = 'c', long = "change")]
        change: Vec<String>,
        /// Pause the container during commit
        #[arg(short = 'p', long, default_value = "true", action = clap::ArgAction::Set)]
        pause: bool,
        container: String,
        repository: Option<String>,
    },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// List images
    Images {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Show digests
        #[arg(long)]
        digests: bool,
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        repository: Option<String>,
    },
    /// Show the history of an image
    History {
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        #[arg(short = 'q', long)]
        quiet: bool,
        image: String,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Log in to a registry (credentials kept in ~/.berth/config.json, mode 0600)
    Login {
        #[arg(short = 'u', long)]
        username: Option<String>,
        #[arg(short = 'p', long)]
        password: Option<String>,
        /// Read the password from stdin
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        /// Registry (host[:port]); Docker Hub when left out
        server: Option<String>,
    },
    /// Log out from a registry
    Logout { server: Option<String> },
    /// Search a registry for images: `host[:port]/text` looks in that registry's catalog,
    /// plain text on Docker Hub
    Search {
        /// At most this many results (1 to 100)
        #[arg(long, default_value_t = 25)]
        limit: u32,
        /// stars=N, is-official=true|false, is-automated=true|false
        #[arg(short = 'f', long = "filter")]
        filters: Vec<String>,
        /// Do not cut descriptions
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        term: String,
    },
    /// Download an image from a registry
    Pull {
        /// Platform to pull from a multi-arch image (os/arch[/variant])
        #[arg(long)]
        platform: Option<String>,
        /// Less output
        #[arg(short = 'q', long)]
        quiet: bool,
        image: String,
    },
    /// Upload an image to a registry
    Push {
        /// Less output
        #[arg(short = 'q', long)]
        quiet: bool,
        image: String,
    },
    /// Build an image from a Dockerfile (the classic builder; see README for what runs yet)
    Build {
        /// Name and optionally a tag (name:tag); may be given several times
        #[arg(short = 't', long = "tag")]
        tags: Vec<String>,
        /// The Dockerfile, inside the context (default PATH/Dockerfile)
        #[arg(short = 'f', long = "file")]
        file: Option<std::path::PathBuf>,
        /// A build-time variable (KEY=VALUE, or KEY to take it from this environment)
        #[arg(long = "build-arg")]
        build_args: Vec<String>,
        /// The build stage to stop at
        #[arg(long)]
        target: Option<String>,
        /// Do not use the cache
        #[arg(long = "no-cache")]
        no_cache: bool,
        /// Print only the image ID
        #[arg(short = 'q', long)]
        quiet: bool,
        /// The context directory
        path: std::path::PathBuf,
    },
    /// Load images from a tar archive (docker save or OCI layout)
    Load {
        #[arg(short = 'i', long = "input", default_value = "-")]
        input: String,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Save images to a tar archive (streamed to stdout unless -o)
    Save {
        /// Write to a file instead of stdout
        #[arg(short = 'o', long)]
        output: Option<String>,
        /// `oci` for a plain OCI image layout (default: Docker's, which is also an OCI layout)
        #[arg(long)]
        format: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Import a root filesystem tar as an image
    Import {
        file: String,
        reference: Option<String>,
        #[arg(short = 'c', long = "change")]
        change: Vec<String>,
        #[arg(short = 'm', long)]
        message: Option<String>,
    },
    /// Tag an image
    Tag { source: String, target: String },
    /// Remove one or more images
    Rmi {
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(long = "no-prune")]
        no_prune: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: network::NetworkCommand,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: volume::VolumeCommand,
    },
    /// List port mappings or a specific mapping for the container
    Port { container: String, private_port: Option<String> },
    /// Manage berth's own state
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
    /// Is this kernel fit for berth? Required and optional options, storage drivers, the
    /// live system (exit 1 when something required is missing)
    CheckConfig {
        /// A kernel config to check instead of the running kernel's (plain or .gz)
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Print the kernel config fragment berth needs (the Yocto layer's berth.cfg)
        #[arg(long)]
        fragment: bool,
        /// Also require what this board profile chooses (default /etc/berth/board.toml when
        /// it exists): its storage driver's options, its watchdog driver and device
        #[arg(long)]
        board_profile: Option<std::path::PathBuf>,
    },
    /// Board profiles: list the built-in ones, show one, check a profile file
    Board {
        #[command(subcommand)]
        command: crate::board::BoardCommand,
    },
    /// Signed application bundles: keygen, create, sign, verify, install, status
    Bundle {
        #[command(subcommand)]
        command: bundle::BundleCommand,
    },
    /// Make the certificates of remote management (no daemon needed)
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Show client and daemon versions
    Version,
    /// Show daemon-wide information
    Info,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Low-level information on images
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unused images (dangling ones; all unused with -a)
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not ask (berth never asks; accepted for docker compatibility)
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make a device CA and the daemon's certificate (ca.pem, cert.pem, key.pem, ca-key.pem)
    Init {
        #[arg(long, default_value = crate::tls::DEFAULT_DIR)]
        dir: std::path::PathBuf,
        /// DNS names the daemon is reached by (default: this host's name and localhost)
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// Addresses the daemon is reached by (default: 127.0.0.1)
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
    },
    /// Revoke a client certificate: adds it to the CA's crl.pem (the daemon's tlscrl)
    Revoke {
        #[arg(long = "ca-dir", default_value = crate::tls::DEFAULT_DIR)]
        ca_dir: std::path::PathBuf,
        /// The client certificate (PEM) to revoke
        cert: std::path::PathBuf,
    },
    /// Make a client certificate with a role (admin, operator, viewer), signed by the CA
    Client {
        /// Where the CA is (ca.pem, ca-key.pem)
        #[arg(long = "ca-dir", default_value = crate::tls::DEFAULT_DIR)]
        ca_dir: std::path::PathBuf,
        /// Where to write ca.pem, cert.pem, key.pem (a DOCKER_CERT_PATH)
        #[arg(long)]
        out: std::path::PathBuf,
        /// The client's name (the certificate's CN)
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Days the certificate is valid
        #[arg(long)]
        days: Option<i64>,
    },
}

// Made once per process by the argument parser: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage
    Df,
    /// Show the supervisor's restart history
    Watchdog {
        #[arg(long, default_value = "/var/lib/berth/supervisor")]
        state_dir: std::path::PathBuf,
    },
    /// Show what remote clients changed (the audit trail)
    Audit {
        /// Only entries after this sequence number
        #[arg(long, default_value = "0")]
        since: u64,
    },
    /// Check the state store offline (stop the daemon first)
    Check {
        /// Run the start-up recovery, clearing a salvage mark, then check again
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        flags: Flags,
    },
}

/// `stop` and `restart` take the same flags.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing (negative: wait forever)
    #[arg(short = 't', long = "time", visible_alias = "timeout", allow_negative_numbers = true)]
    pub time: Option<i64>,
    /// Signal to send
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs the parsed command; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    quiet_on_closed_stdout();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        let tls =
            client::TlsOptions { verify: cli.tlsverify, ca: cli.tlscacert.clone(), cert: cli.tlscert.clone(), key: cli.tlskey.clone() };
        let client = client::Client::new(cli.host.first().map(String::as_str), tls)?;
        match cli.command {
            Command::Run(a) => run::run(&client, a).await,
            Command::Create(a) => run::create_cmd(&client, a).await,
            Command::Network { command } => network::run(&client, command).await,
            Command::Bundle { command } => bundle::run(&client, command).await,
            Command::Volume { command } => volume::run(&client, command).await,
            Command::Port { container, private_port } => network::port(&client, &container, private_port.as_deref()).await,
            other => commands::dispatch(&client, other).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            if e.downcast_ref::<client::ApiFailure>().is_some() {
                1
            } else {
                125
            }
        }
    }
}

/// `berth ps | head -1`: when the reader of stdout goes away, exit as a shell tool does (status
/// 141, nothing on stderr) instead of with a panic message. SIGPIPE stays ignored, as Go's docker
/// CLI keeps it for every fd but stdout and stderr: a daemon closing the socket mid-upload must
/// come back as an error the CLI prints, not as a silent death. Rust reports a closed stdout only
/// through `println!`'s panic, so the hook recognises that one panic.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
