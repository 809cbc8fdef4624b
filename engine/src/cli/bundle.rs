//! `berth bundle ...`: make, sign and check signed application bundles on a workstation
//! (keygen, create, sign, verify need no daemon, but create asks one for the images), and
//! install them on a device or ask what it runs (install, status).

use super::client::Client;
use anyhow::{bail, Context, Result};
use berth_images::bundle::manifest::Compatible;
use berth_images::bundle::{write, App, KeyPair, Trust};
use clap::Subcommand;
use hyper::Method;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Make a signing key pair: DIR/bundle.key (private, 0600) and DIR/bundle.pub (for devices'
    /// trust folders)
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a signed bundle from an app file and the images it names (present on the engine)
    Create {
        /// The app file (TOML): [containers.NAME] with image, command, env, ports, volumes,
        /// restart, healthcheck; optional [gate] timeout and settle
        #[arg(long)]
        app: PathBuf,
        /// The bundle's version: devices install only versions above the one they run
        #[arg(long)]
        version: u64,
        /// The signing key (a folder holding bundle.key, or the file)
        #[arg(long)]
        key: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Only the layers the base bundle lacks go in (the device must have installed the base)
        #[arg(long)]
        delta: Option<PathBuf>,
        /// Architectures it is for (default: the images' own)
        #[arg(long = "arch")]
        arch: Vec<String>,
        /// Board names it is for (default: any)
        #[arg(long = "board")]
        board: Vec<String>,
        /// The oldest berth that may install it (default: this one)
        #[arg(long = "min-berth")]
        min_berth: Option<String>,
    },
    /// Sign a bundle (again) with a key: writes OUTPUT with a new signature
    Sign {
        #[arg(long)]
        key: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
        bundle: PathBuf,
    },
    /// Check a bundle's signature and every blob (exit 0 only when all check)
    Verify {
        /// Trusted public keys (*.pub)
        #[arg(long, default_value = "/etc/berth/trust")]
        trust: PathBuf,
        bundle: PathBuf,
    },
    /// Install a bundle on the device the CLI talks to (a file, an http(s) URL, or - for stdin)
    Install {
        /// Install a version below the installed one (the signing key must allow it too)
        #[arg(long)]
        allow_downgrade: bool,
        bundle: String,
    },
    /// What the device runs: installed and previous versions, the last attempt and its steps
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// Commands that need no daemon.
pub fn run_local(cmd: &BundleCommand) -> Option<Result<i32>> {
    Some(match cmd {
        BundleCommand::Keygen { out } => keygen(out),
        BundleCommand::Sign { key, output, bundle } => (|| {
            write::resign(bundle, &KeyPair::load(key)?, output)?;
            println!("signed {} into {}", bundle.display(), output.display());
            Ok(0)
        })(),
        BundleCommand::Verify { trust, bundle } => verify(trust, bundle),
        _ => return None,
    })
}

fn keygen(out: &std::path::Path) -> Result<i32> {
    let k = KeyPair::generate()?;
    k.save(out)?;
    println!("key {}: private {}, public {}", k.id(), out.join("bundle.key").display(), out.join("bundle.pub").display());
    Ok(0)
}

fn verify(trust: &std::path::Path, bundle: &std::path::Path) -> Result<i32> {
    let trust = Trust::load(trust)?;
    match berth_images::bundle::verify_file(bundle, &trust, &mut |_, _| {}) {
        Ok(v) => {
            let m = &v.manifest;
            let left = m.files.iter().filter(|f| f.in_base).count();
            println!(
                "{}: version {} for {} signed by {} ({}): signature and {} members verified{}",
                bundle.display(),
                m.version,
                m.compatible.architectures.join(","),
                v.key.id,
                v.key.name,
                v.present.len(),
                if left > 0 { format!("; {left} left to base version {}", m.delta_base.unwrap_or_default()) } else { String::new() }
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{}: NOT verified: {e:#}", bundle.display());
            Ok(1)
        }
    }
}

pub async fn run(client: &Client, cmd: BundleCommand) -> Result<i32> {
    match cmd {
        BundleCommand::Create { app, version, key, output, delta, arch, board, min_berth } => {
            let text = std::fs::read_to_string(&app).with_context(|| format!("reading {}", app.display()))?;
            let app = App::from_toml(&text).with_context(|| format!("in {}", app.display()))?;
            let key = KeyPair::load(&key)?;
            let images = app.images();
            eprintln!("fetching {} from the engine", images.join(", "));
            let spool = output.with_extension("images.tar");
            let path = format!(
                "/images/get?{}",
                images.iter().map(|i| format!("names={}", super::commands::enc(i))).collect::<Vec<_>>().join("&")
            );
            let code = super::commands::save_to(client, &path, Some(&spool.to_string_lossy())).await;
            let result = match code {
                Ok(0) => make(app, version, &key, &spool, &output, delta.as_deref(), arch, board, min_berth),
                Ok(c) => Ok(c),
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_file(&spool);
            result
        }
        BundleCommand::Install { allow_downgrade, bundle } => {
            let path = format!("/berth/bundles?allow_downgrade={}", allow_downgrade as u8);
            let local = if bundle.starts_with("http://") || bundle.starts_with("https://") { fetch(&bundle).await? } else { None };
            let file = local.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or(bundle);
            let resp = client.upload(&path, &file, "application/x-tar").await;
            if let Some(p) = local {
                let _ = std::fs::remove_file(p);
            }
            super::commands::print_messages(resp?, false, false).await
        }
        BundleCommand::Status { json } => {
            let v = client.json(Method::GET, "/berth/bundles", None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            let rel = |r: &serde_json::Value| {
                if r.is_null() {
                    "none".to_string()
                } else {
                    format!(
                        "version {} (key {}, {})",
                        r["Version"],
                        r["Key"].as_str().unwrap_or(""),
                        r["InstalledAt"].as_str().unwrap_or("")
                    )
                }
            };
            println!("Installed: {}", rel(&v["Installed"]));
            println!("Previous:  {}", rel(&v["Previous"]));
            let a = &v["LastAttempt"];
            if !a.is_null() {
                println!(
                    "Last attempt: version {} {} ({})",
                    a["Version"],
                    a["Phase"].as_str().unwrap_or(""),
                    a["Started"].as_str().unwrap_or("")
                );
                if let Some(r) = a["Reason"].as_str() {
                    println!("  Reason: {r}");
                }
                for s in a["Steps"].as_array().into_iter().flatten() {
                    println!("  {}  {}", s["At"].as_str().unwrap_or(""), s["What"].as_str().unwrap_or(""));
                }
            }
            Ok(0)
        }
        other => run_local(&other).unwrap_or_else(|| bail!("not a bundle command")),
    }
}

#[allow(clippy::too_many_arguments)]
fn make(
    app: App,
    version: u64,
    key: &KeyPair,
    images: &std::path::Path,
    output: &std::path::Path,
    delta: Option<&std::path::Path>,
    arch: Vec<String>,
    boards: Vec<String>,
    min_berth: Option<String>,
) -> Result<i32> {
    let architectures = if arch.is_empty() {
        let archive = berth_images::archive::ArchiveIndex::open(images)?;
        let mut a: Vec<String> = archive.images()?.iter().map(|i| i.config.architecture.clone()).collect();
        a.sort();
        a.dedup();
        if a.len() != 1 {
            bail!("the app's images are for {}: name the bundle's architecture with --arch", a.join(", "));
        }
        a
    } else {
        arch
    };
    let spec = write::Spec {
        app,
        version,
        compatible: Compatible { architectures, boards },
        min_berth: min_berth.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        created: crate::util::time::now(),
        images,
        base: delta,
    };
    let w = write::create(spec, key, output, &mut |s| eprintln!("{s}"))?;
    println!(
        "{}: version {} signed by {}, {} bytes{}",
        output.display(),
        w.manifest.version,
        key.id(),
        w.bytes,
        if w.left_to_base > 0 { format!(" ({} bytes of layers left to the base bundle)", w.left_to_base) } else { String::new() }
    );
    Ok(0)
}

/// A bundle named by URL is fetched to a temporary file first (streamed, never held in
/// memory), then uploaded: the device verifies it as any other.
async fn fetch(url: &str) -> Result<Option<PathBuf>> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let resp = crate::images::transport::get_url(url).await?;
    let path = std::env::temp_dir().join(format!("berth-bundle-{}.download", std::process::id()));
    let written = async {
        let mut f = tokio::fs::File::create(&path).await.with_context(|| format!("creating {}", path.display()))?;
        let mut body = resp.into_body();
        let mut n: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.with_context(|| format!("downloading {url}"))?;
            if let Some(data) = frame.data_ref() {
                f.write_all(data).await.with_context(|| format!("writing {}", path.display()))?;
                n += data.len() as u64;
            }
        }
        f.flush().await?;
        anyhow::Ok(n)
    }
    .await;
    match written {
        Ok(n) => {
            eprintln!("downloaded {url}: {n} bytes");
            Ok(Some(path))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}
