//! The CLI's API client: HTTP/1.1 over the daemon's unix socket, one connection per request
//! (the CLI makes a handful per command), hijacked streams for `attach`.

use crate::api::body::{channel, full, ResBody};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

/// An error answer from the daemon: the status and Docker's `message`.
#[derive(Debug, thiserror::Error)]
#[error("Error response from daemon: {message}")]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
}

/// The docker CLI's TLS options: flags, else `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`
/// (default `~/.docker`) with `ca.pem`, `cert.pem`, `key.pem`.
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

enum Transport {
    Unix(PathBuf),
    Tcp { addr: String, tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)> },
}

/// A byte stream to the daemon, whichever the transport.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

pub struct Client {
    transport: Transport,
}

fn tls_connector(host: &str, opts: &TlsOptions) -> Result<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"));
    let pick = |flag: &Option<PathBuf>, file: &str| flag.clone().unwrap_or_else(|| dir.join(file));
    let (ca, cert, key) = (pick(&opts.ca, "ca.pem"), pick(&opts.cert, "cert.pem"), pick(&opts.key, "key.pem"));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).with_context(|| format!("reading {}", ca.display()))? {
        roots.add(c.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key).with_context(|| format!("reading {}", key.display()))?;
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("the client certificate and key do not go together")?;
    let name_part = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    let name =
        rustls::pki_types::ServerName::try_from(name_part.to_string()).with_context(|| format!("invalid host name {name_part:?}"))?;
    Ok((tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)), name))
}

/// The docker CLI's configuration directory: `DOCKER_CONFIG`, else `~/.docker`.
fn docker_config_dir() -> PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"))
}

/// The docker CLI's current context (`DOCKER_CONTEXT`, else `currentContext` of
/// `config.json`): its host, and the directory of its TLS files when it has them.
fn docker_context() -> Result<Option<(String, Option<PathBuf>)>> {
    use sha2::Digest;
    let dir = docker_config_dir();
    let name = match std::env::var("DOCKER_CONTEXT").ok().filter(|c| !c.is_empty()) {
        Some(n) => n,
        None => match std::fs::read(dir.join("config.json")).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()) {
            Some(v) => match v["currentContext"].as_str() {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => return Ok(None),
            },
            None => return Ok(None),
        },
    };
    if name == "default" {
        return Ok(None);
    }
    let id = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    let meta_file = dir.join("contexts/meta").join(&id).join("meta.json");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_file).with_context(|| format!("context {name:?}: reading {}", meta_file.display()))?)
            .with_context(|| format!("context {name:?}: {}", meta_file.display()))?;
    let host =
        meta["Endpoints"]["docker"]["Host"].as_str().with_context(|| format!("context {name:?} has no docker endpoint"))?.to_string();
    let tls = dir.join("contexts/tls").join(&id).join("docker");
    Ok(Some((host, tls.join("cert.pem").exists().then_some(tls))))
}

impl Client {
    /// `-H`, then `BERTH_HOST`, then `DOCKER_HOST`, then the docker CLI's current context,
    /// then the default socket. A `tcp://` host is reached with TLS when `--tlsverify` or
    /// `DOCKER_TLS_VERIFY` says so, or when its context has TLS files.
    pub fn new(host: Option<&str>, mut tls: TlsOptions) -> Result<Self> {
        let explicit = host
            .map(String::from)
            .or_else(|| std::env::var("BERTH_HOST").ok().filter(|h| !h.is_empty()))
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()));
        let host = match explicit {
            Some(h) => h,
            None => match docker_context()? {
                Some((h, tls_dir)) => {
                    if let Some(d) = tls_dir {
                        tls.verify = true;
                        tls.ca = tls.ca.or(Some(d.join("ca.pem")));
                        tls.cert = tls.cert.or(Some(d.join("cert.pem")));
                        tls.key = tls.key.or(Some(d.join("key.pem")));
                    }
                    h
                }
                None => format!("unix://{}/berth.sock", crate::config::DEFAULT_EXEC_ROOT),
            },
        };
        let verify = tls.verify || std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
        if let Some(p) = host.strip_prefix("unix://") {
            return Ok(Client { transport: Transport::Unix(PathBuf::from(p)) });
        }
        let Some(addr) = host.strip_prefix("tcp://") else { bail!("host {host:?}: expected unix:///path or tcp://host:port") };
        let addr = addr.trim_end_matches('/').to_string();
        let tls = if verify { Some(tls_connector(&addr, &tls)?) } else { None };
        Ok(Client { transport: Transport::Tcp { addr, tls } })
    }

    async fn connect(&self) -> Result<Box<dyn Io>> {
        Ok(match &self.transport {
            Transport::Unix(socket) => {
                Box::new(tokio::net::UnixStream::connect(socket).await.with_context(|| {
                    format!("Cannot connect to the berth daemon at unix://{}. Is the daemon running?", socket.display())
                })?)
            }
            Transport::Tcp { addr, tls } => {
                let tcp = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .with_context(|| format!("Cannot connect to the berth daemon at tcp://{addr}"))?;
                match tls {
                    None => Box::new(tcp),
                    Some((connector, name)) => {
                        Box::new(connector.connect(name.clone(), tcp).await.with_context(|| format!("TLS with tcp://{addr}"))?)
                    }
                }
            }
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: ResBody,
        content_type: Option<&str>,
        upgrade: bool,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut req = Request::builder().method(method).uri(format!("/v{}{path}", crate::API_VERSION)).header("Host", "berth");
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if upgrade {
            req = req.header("Connection", "Upgrade").header("Upgrade", "tcp");
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        Ok(sender.send_request(req.body(body)?).await?)
    }

    /// Sends a request; an error status becomes an [`ApiFailure`].
    pub async fn call(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<Response<Incoming>> {
        self.call_with(method, path, body, &[]).await
    }

    /// [`Client::call`] with extra headers (`X-Registry-Auth`).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let (b, ct) = match body {
            Some(v) => (full(serde_json::to_vec(&v)?), Some("application/json")),
            None => (full(Bytes::new()), None),
        };
        check(self.send(method, path, b, ct, false, headers).await?).await
    }

    pub async fn json(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<serde_json::Value> {
        let resp = self.call(method, path, body).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Uploads a file (or stdin for `-`) as the body, streamed.
    pub async fn upload(&self, path: &str, file: &str, content_type: &str) -> Result<Response<Incoming>> {
        let (tx, body) = channel();
        let mut reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if file == "-" {
            Box::new(tokio::io::stdin())
        } else {
            Box::new(tokio::fs::File::open(file).await.with_context(|| format!("open {file}"))?)
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        check(self.send(Method::POST, path, body, Some(content_type), false, &[]).await?).await
    }

    /// Opens a hijacked attach stream.
    pub async fn attach(&self, path: &str) -> Result<hyper::upgrade::Upgraded> {
        let resp = self.send(Method::POST, path, full(Bytes::new()), None, true, &[]).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            check(resp).await?;
            bail!("the daemon did not upgrade the attach connection");
        }
        Ok(hyper::upgrade::on(resp).await?)
    }
}

async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        let bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        return Err(ApiFailure { status, message }.into());
    }
    Ok(resp)
}

/// Reads Docker's multiplexed frames from `r`, writing stdout and stderr payloads.
pub async fn demux(mut r: impl tokio::io::AsyncRead + Unpin) -> Result<()> {
    use std::io::Write;
    let mut header = [0u8; 8];
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        if header[0] == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(&payload)?;
            e.flush()?;
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(&payload)?;
            o.flush()?;
        }
    }
}

/// A body as an `AsyncRead`.
pub fn body_reader(resp: Response<Incoming>) -> impl tokio::io::AsyncRead + Unpin {
    use futures_like::BodyStream;
    tokio_util_like::StreamReader::new(BodyStream(resp.into_body()))
}

mod futures_like {
    //! A minimal adapter from a hyper body to a stream of byte chunks.
    use bytes::Bytes;
    use hyper::body::{Body, Incoming};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct BodyStream(pub Incoming);

    impl BodyStream {
        pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
            loop {
                return match Pin::new(&mut self.0).poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
                    Poll::Ready(Some(Ok(f))) => match f.into_data() {
                        Ok(d) => Poll::Ready(Some(Ok(d))),
                        Err(_) => continue,
                    },
                };
            }
        }
    }
}

mod tokio_util_like {
    //! `AsyncRead` over a chunk stream, so frames can be read with `read_exact`.
    use super::futures_like::BodyStream;
    use bytes::{Buf, Bytes};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    pub struct StreamReader {
        inner: BodyStream,
        chunk: Bytes,
    }

    impl StreamReader {
        pub fn new(inner: BodyStream) -> Self {
            StreamReader { inner, chunk: Bytes::new() }
        }
    }

    impl AsyncRead for StreamReader {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
            while self.chunk.is_empty() {
                match self.inner.poll_chunk(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                    Poll::Ready(Some(Ok(c))) => self.chunk = c,
                }
            }
            let n = buf.remaining().min(self.chunk.len());
            buf.put_slice(&self.chunk[..n]);
            self.chunk.advance(n);
            Poll::Ready(Ok(()))
        }
    }
}
