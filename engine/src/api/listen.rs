//! Listeners: `unix:///path` (mode 0660, group `berth` when it exists), `fd://` (systemd
//! socket activation) and `tcp://host:port` with TLS (or, when asked for by name, plain on
//! loopback). A connection becomes a [`Conn`] and a [`Peer`]: who is asking decides what is
//! allowed (see `tls::roles`).

use crate::tls::roles::{Policy, Role};
use crate::tls::TlsConfig;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client must start and finish its TLS handshake within this: a silent or slow client
/// cannot hold a connection (and the memory of a TLS session) for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub enum Peer {
    /// The unix socket: its mode and group are the access control.
    Local,
    Remote {
        addr: SocketAddr,
        role: Role,
        /// The client certificate's subject; "anonymous" without one.
        subject: String,
        policy: Policy,
    },
}

impl Peer {
    pub fn allows(&self, method: &hyper::Method, segs: &[&str]) -> bool {
        match self {
            Peer::Local => true,
            Peer::Remote { role, policy, .. } => role.allows(method, segs, policy),
        }
    }
}

pub enum Listener {
    Unix(UnixListener),
    Tcp { inner: TcpListener, tls: Option<Arc<CurrentTls>> },
}

/// An accepted connection whose TLS handshake (if any) has not run yet: it runs in the
/// connection's own task, so a slow client never holds up the accept loop.
pub struct Accepted {
    stream: Conn,
    addr: Option<SocketAddr>,
    tls: Option<(TlsAcceptor, Policy)>,
}

/// A connection's byte stream.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Listener {
    pub async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted { stream: Conn::Unix(s), addr: None, tls: None }),
            Listener::Tcp { inner, tls } => {
                let (s, addr) = inner.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Accepted { stream: Conn::Tcp(s), addr: Some(addr), tls: tls.as_ref().map(|t| (t.acceptor(), t.config.policy)) })
            }
        }
    }
}

impl Accepted {
    /// Over TCP (limited), not the unix socket.
    pub fn is_remote(&self) -> bool {
        self.addr.is_some()
    }

    /// Finishes the connection: the TLS handshake, then who the client is.
    pub async fn establish(self) -> Result<(Conn, Peer)> {
        let Some(addr) = self.addr else { return Ok((self.stream, Peer::Local)) };
        let Conn::Tcp(tcp) = self.stream else { unreachable!("a TCP address comes with a TCP stream") };
        let Some((acceptor, policy)) = self.tls else {
            let subject = "plain tcp (insecure)".to_string();
            return Ok((Conn::Tcp(tcp), Peer::Remote { addr, role: Role::Admin, subject, policy: Policy::default() }));
        };
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            // No TLS state is allocated for a client that never speaks.
            tcp.readable().await?;
            acceptor.accept(tcp).await
        })
        .await
        .map_err(|_| anyhow::anyhow!("TLS handshake from {addr} did not finish within {HANDSHAKE_TIMEOUT:?}"))?
        .with_context(|| format!("TLS handshake from {addr}"))?;
        let (role, subject) = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => crate::tls::roles::of_certificate(cert, policy.field),
            None => (Role::Viewer, "anonymous".to_string()),
        };
        Ok((Conn::Tls(Box::new(tls)), Peer::Remote { addr, role, subject, policy }))
    }
}

macro_rules! each_conn {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Conn::Unix($s) => $e,
            Conn::Tcp($s) => $e,
            Conn::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        each_conn!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        each_conn!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        each_conn!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        each_conn!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A TCP listener's TLS set-up, replaced as a whole on reload. A connection takes the one
/// current when it arrives and keeps it: reloading drops nothing that runs.
pub struct CurrentTls {
    config: TlsConfig,
    acceptor: RwLock<TlsAcceptor>,
}

impl CurrentTls {
    fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap().clone()
    }

    /// Reads the certificates, key and CA again (SIGHUP). On error the current set stays.
    pub fn reload(&self) -> Result<()> {
        let fresh = self.config.server_config()?;
        *self.acceptor.write().unwrap() = TlsAcceptor::from(fresh);
        Ok(())
    }
}

/// The TLS set-ups of `listeners`, for reloading.
pub fn tls_of(listeners: &[Listener]) -> Vec<Arc<CurrentTls>> {
    listeners
        .iter()
        .filter_map(|l| match l {
            Listener::Tcp { tls: Some(t), .. } => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: i32 = 3;

pub async fn open(hosts: &[String], tls: Option<&TlsConfig>, insecure_plain_tcp: bool) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for h in hosts {
        if let Some(path) = h.strip_prefix("unix://") {
            out.push(unix(Path::new(path))?);
        } else if let Some(rest) = h.strip_prefix("fd://") {
            out.extend(systemd(rest)?);
        } else if let Some(addr) = h.strip_prefix("tcp://") {
            out.push(tcp(h, addr, tls, insecure_plain_tcp).await?);
        } else {
            bail!("invalid listen address {h:?} (expected unix:///path, tcp://host:port or fd://)");
        }
    }
    Ok(out)
}

async fn tcp(host: &str, addr: &str, tls: Option<&TlsConfig>, insecure_plain_tcp: bool) -> Result<Listener> {
    let addr = addr.trim_end_matches('/');
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr).await.with_context(|| format!("resolving {host}"))?.collect();
    let first = *resolved.first().with_context(|| format!("{host} resolves to no address"))?;
    // Checked before anything is bound: a refused address never listens, even for a moment.
    let acceptor = match tls {
        Some(t) => Some(Arc::new(CurrentTls {
            config: t.clone(),
            acceptor: RwLock::new(TlsAcceptor::from(t.server_config().with_context(|| format!("TLS for {host}"))?)),
        })),
        None if insecure_plain_tcp && resolved.iter().all(|a| a.ip().is_loopback()) => {
            tracing::warn!(%first, "serving the API over plain TCP (insecure-plain-tcp): anyone who reaches it controls the device");
            None
        }
        None if insecure_plain_tcp => bail!("{host}: insecure-plain-tcp is allowed on loopback addresses only"),
        None => bail!(
            "{host}: refusing to serve the API over plain TCP; set tlsverify (with tlscacert, tlscert, tlskey) or tls, \
             or insecure-plain-tcp for a loopback address"
        ),
    };
    let inner = TcpListener::bind(first).await.with_context(|| format!("listening on {host}"))?;
    let local = inner.local_addr()?;
    tracing::info!(%local, tls = acceptor.is_some(), verify = tls.is_some_and(|t| t.verify), "API listening");
    Ok(Listener::Tcp { inner, tls: acceptor })
}

fn unix(path: &Path) -> Result<Listener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale socket {}", path.display())),
    }
    let inner = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
        nix::unistd::chown(path, None, Some(g.gid)).with_context(|| format!("chown of {}", path.display()))?;
    }
    tracing::info!(socket = %path.display(), "API listening");
    Ok(Listener::Unix(inner))
}

fn systemd(which: &str) -> Result<Vec<Listener>> {
    let pid: u32 = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    let n: i32 = std::env::var("LISTEN_FDS").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    if pid != std::process::id() || n < 1 {
        bail!("fd:// given but no sockets were passed by systemd (LISTEN_PID/LISTEN_FDS)");
    }
    let wanted: Option<i32> = if which.is_empty() { None } else { Some(which.parse().context("fd://N needs a number")?) };
    let mut out = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n {
        if wanted.is_some_and(|w| w != fd) {
            continue;
        }
        // SAFETY: systemd passed this descriptor to us for our exclusive use (LISTEN_PID
        // matches); it is wrapped exactly once.
        let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
        std_listener.set_nonblocking(true)?;
        out.push(Listener::Unix(UnixListener::from_std(std_listener)?));
    }
    if out.is_empty() {
        bail!("fd://{which}: no such descriptor was passed");
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    Ok(out)
}
