//! HTTP to a registry: one connection per request (a pull makes a handful), TLS through
//! rustls with the system's roots, plain HTTP only for loopback and configured insecure
//! registries, redirects followed (blob storage often lives elsewhere), and Docker's token
//! flow: a 401 with a `Bearer` challenge is answered by fetching a token from its realm.

use anyhow::{bail, Context, Result};
use berth_images::registry::auth::{self, Challenge};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_REDIRECTS: usize = 5;

/// `scheme://host[:port]/path?query`, as much of a URL as a registry conversation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Self> {
        let (https, rest) = match s.split_once("://") {
            Some(("https", r)) => (true, r),
            Some(("http", r)) => (false, r),
            _ => bail!("unsupported URL {s:?}"),
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        anyhow::ensure!(!host.is_empty(), "URL {s:?} has no host");
        Ok(Url { https, host: host.to_string(), path: path.to_string() })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') && !self.host.ends_with(']') {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, if self.https { 443 } else { 80 })
        }
    }

    fn server_name(&self) -> String {
        match self.host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.trim_matches(['[', ']']).to_string(),
            _ => self.host.clone(),
        }
    }

    /// Resolves a `Location` header against this URL.
    fn join(&self, location: &str) -> Result<Url> {
        if location.contains("://") {
            Url::parse(location)
        } else if location.starts_with('/') {
            Ok(Url { https: self.https, host: self.host.clone(), path: location.to_string() })
        } else {
            bail!("unsupported relative redirect {location:?}")
        }
    }
}

/// The system's CA certificates, loaded once.
fn system_roots() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// TLS for one registry: the system's roots plus the `*.crt` files of
/// `<certs dir>/<host>/` (Docker's certs.d layout), and a client certificate from the same
/// directory when there is one (`*.cert` + `*.key`).
pub fn tls_config(certs_dir: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in system_roots() {
        let _ = roots.add(cert.clone());
    }
    if let Some(dir) = certs_dir.filter(|d| d.is_dir()) {
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            if path.extension().is_some_and(|x| x == "crt") {
                for cert in
                    rustls::pki_types::CertificateDer::pem_file_iter(&path).with_context(|| format!("reading {}", path.display()))?
                {
                    roots
                        .add(cert.with_context(|| format!("parsing {}", path.display()))?)
                        .with_context(|| format!("adding the CA {}", path.display()))?;
                }
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .with_root_certificates(roots);
    let config = match certs_dir.filter(|d| d.is_dir()).map(client_identity).transpose()?.flatten() {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).context("the client certificate and key do not match")?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

type Identity = (Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>);

/// Docker's client certificate convention: `<name>.cert` with its key in `<name>.key`, in
/// the registry's certs.d directory. A certificate without its key is an error, not ignored.
fn client_identity(dir: &std::path::Path) -> Result<Option<Identity>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut certs: Vec<_> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "cert")).collect();
    certs.sort();
    let Some(cert) = certs.first() else { return Ok(None) };
    let key = cert.with_extension("key");
    anyhow::ensure!(key.exists(), "missing key {} for client certificate {}", key.display(), cert.display());
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key).with_context(|| format!("reading the private key {}", key.display()))?;
    Ok(Some((chain, key)))
}

/// What a request carries. Replayable: a request may be sent again after a 401 challenge or
/// over plain HTTP after HTTPS failed, so a file is reopened for each attempt.
#[derive(Clone, Debug)]
pub enum Payload {
    Empty,
    Bytes(Bytes),
    /// A file on disk, streamed.
    File(std::path::PathBuf),
}

impl Payload {
    /// The body and its length.
    async fn body(&self) -> Result<(crate::api::body::ResBody, u64)> {
        Ok(match self {
            Payload::Empty => (crate::api::body::empty(), 0),
            Payload::Bytes(b) => (Full::new(b.clone()).map_err(|never| match never {}).boxed(), b.len() as u64),
            Payload::File(path) => {
                use tokio::io::AsyncReadExt;
                let mut f = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
                let len = f.metadata().await?.len();
                let (tx, body) = crate::api::body::fallible_channel();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match f.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(n) => {
                                if tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                break;
                            }
                        }
                    }
                });
                (body, len)
            }
        })
    }
}

/// One request on a new connection.
async fn send(url: &Url, tls: &Arc<rustls::ClientConfig>, method: &str, headers: &[(&str, String)]) -> Result<Response<Incoming>> {
    send_with(url, tls, method, headers, &Payload::Empty).await
}

async fn send_with(
    url: &Url,
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    headers: &[(&str, String)],
    payload: &Payload,
) -> Result<Response<Incoming>> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(url.authority()))
        .await
        .with_context(|| format!("connecting to {} timed out", url.host))?
        .with_context(|| format!("connecting to {}", url.host))?;
    let mut req = Request::builder()
        .method(method)
        .uri(&url.path)
        .header("Host", &url.host)
        .header("User-Agent", concat!("berth/", env!("CARGO_PKG_VERSION")));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let (body, len) = payload.body().await?;
    if !matches!(payload, Payload::Empty) || matches!(method, "POST" | "PUT" | "PATCH") {
        req = req.header("Content-Length", len.to_string());
    }
    let req = req.body(body)?;
    if url.https {
        let name = rustls::pki_types::ServerName::try_from(url.server_name()).context("invalid TLS server name")?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp))
            .await
            .with_context(|| format!("TLS handshake with {} timed out", url.host))?
            .with_context(|| format!("TLS handshake with {}", url.host))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(sender.send_request(req).await?)
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(sender.send_request(req).await?)
    }
}

/// A user name and password for a registry.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    fn basic(&self) -> String {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.username, self.password)))
    }
}

/// A registry, with the authorization it earned (a token, or Basic credentials).
pub struct Registry {
    base: Url,
    tls: Arc<rustls::ClientConfig>,
    credentials: Option<Credentials>,
    authorization: Mutex<Option<String>>,
    /// Insecure registries (loopback, `insecure-registries`) are tried over HTTPS first and
    /// over plain HTTP if that fails, as Docker does; what worked is remembered here (`None`:
    /// not known yet).
    https: Mutex<Option<bool>>,
}

impl Registry {
    /// `host` over HTTPS (trusting the CAs in `certs_dir/<host>`); an `insecure` one also over
    /// plain HTTP.
    pub fn new(host: &str, insecure: bool, certs_dir: Option<&std::path::Path>, credentials: Option<Credentials>) -> Result<Self> {
        let tls = tls_config(certs_dir.map(|d| d.join(host)).as_deref())?;
        Ok(Registry {
            base: Url { https: true, host: host.to_string(), path: "/".into() },
            tls,
            credentials,
            authorization: Mutex::new(None),
            https: Mutex::new(if insecure { None } else { Some(true) }),
        })
    }

    /// Sends to the registry itself, choosing the scheme as described on `https`.
    async fn send_to_registry(&self, method: &str, url: &Url, headers: &[(&str, String)], payload: &Payload) -> Result<Response<Incoming>> {
        let decided = *self.https.lock().unwrap();
        let with = |https: bool| Url { https, ..url.clone() };
        match decided {
            Some(https) => send_with(&with(https), &self.tls, method, headers, payload).await,
            None => match send_with(&with(true), &self.tls, method, headers, payload).await {
                Ok(r) => {
                    *self.https.lock().unwrap() = Some(true);
                    Ok(r)
                }
                Err(tls_err) => match send_with(&with(false), &self.tls, method, headers, payload).await {
                    Ok(r) if r.status() != StatusCode::BAD_REQUEST => {
                        *self.https.lock().unwrap() = Some(false);
                        Ok(r)
                    }
                    Ok(r) => bail!("{}: over HTTPS: {tls_err:#}; over plain HTTP it answered {}", self.base.host, r.status()),
                    Err(e) => bail!("{}: over HTTPS: {tls_err:#}; over plain HTTP: {e:#}", self.base.host),
                },
            },
        }
    }

    pub fn host(&self) -> &str {
        &self.base.host
    }

    /// GET `path` (under the registry), following redirects and the token challenge. A
    /// status other than 2xx is an error naming it.
    pub async fn get(&self, path: &str, extra: &[(&str, String)]) -> Result<Response<Incoming>> {
        let resp = self.request("GET", path, extra, &Payload::Empty).await?;
        success(resp, &format!("{path} at {}", self.base.host)).await
    }

    /// Sends `method` to `path` (under the registry, or an absolute URL on the registry
    /// itself, as upload locations are), following redirects and the auth challenge. Any
    /// other status is the caller's to judge.
    pub async fn request(&self, method: &str, path: &str, extra: &[(&str, String)], payload: &Payload) -> Result<Response<Incoming>> {
        let mut url = if path.contains("://") {
            let u = Url::parse(path)?;
            anyhow::ensure!(u.host == self.base.host, "{} pointed to another host ({})", self.base.host, u.host);
            Url { https: self.base.https, ..u }
        } else {
            Url { path: path.to_string(), ..self.base.clone() }
        };
        let mut authed = false;
        for _ in 0..=MAX_REDIRECTS {
            let mut headers: Vec<(&str, String)> = extra.to_vec();
            // Authorization is for the registry, never for the storage a redirect points to.
            if url.host == self.base.host {
                if let Some(a) = self.authorization.lock().unwrap().clone() {
                    headers.push(("Authorization", a));
                }
            }
            let resp = if url.host == self.base.host {
                self.send_to_registry(method, &url, &headers, payload).await?
            } else {
                send_with(&url, &self.tls, method, &headers, payload).await?
            };
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp.headers().get("location").and_then(|l| l.to_str().ok()).context("redirect without Location")?.to_string();
                url = url.join(&loc)?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !authed {
                let challenge = resp.headers().get("www-authenticate").and_then(|h| h.to_str().ok()).and_then(auth::parse);
                match challenge {
                    Some(Challenge::Bearer { realm, service, scope }) => {
                        self.fetch_token(&realm, service.as_deref(), scope.as_deref()).await?;
                        authed = true;
                        continue;
                    }
                    Some(Challenge::Basic) => match &self.credentials {
                        Some(c) => {
                            *self.authorization.lock().unwrap() = Some(c.basic());
                            authed = true;
                            continue;
                        }
                        None => bail!("{} requires a login: unauthorized (berth login {})", self.base.host, self.base.host),
                    },
                    None => bail!("{} answered 401 without a usable challenge", self.base.host),
                }
            }
            if status == StatusCode::UNAUTHORIZED {
                bail!("{}: unauthorized: the credentials were refused", self.base.host);
            }
            return Ok(resp);
        }
        bail!("too many redirects for {path} at {}", self.base.host)
    }

    async fn fetch_token(&self, realm: &str, service: Option<&str>, scope: Option<&str>) -> Result<()> {
        let mut url = Url::parse(realm).with_context(|| format!("token realm {realm:?}"))?;
        let mut q = Vec::new();
        if let Some(s) = service {
            q.push(format!("service={}", crate::api::query::percent_encode(s)));
        }
        if let Some(s) = scope {
            q.push(format!("scope={}", crate::api::query::percent_encode(s)));
        }
        if !q.is_empty() {
            url.path = format!("{}{}{}", url.path, if url.path.contains('?') { "&" } else { "?" }, q.join("&"));
        }
        let auth: Vec<(&str, String)> = self.credentials.iter().map(|c| ("Authorization", c.basic())).collect();
        let resp = send(&url, &self.tls, "GET", &auth).await?;
        anyhow::ensure!(resp.status().is_success(), "token request to {} answered {}", url.host, resp.status());
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20).collect().await.map_err(|e| anyhow::anyhow!("{e}"))?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).context("token answer is not JSON")?;
        let token = v["token"].as_str().or(v["access_token"].as_str()).context("token answer has no token")?;
        *self.authorization.lock().unwrap() = Some(format!("Bearer {token}"));
        Ok(())
    }
}

/// The answer if it is a success; otherwise an error naming the status and the start of the
/// body (registries explain themselves there).
/// GET of any http(s) URL (a bundle on a file server), following redirects; the system's CAs
/// for HTTPS. A status other than 2xx is an error naming it.
pub async fn get_url(url: &str) -> Result<Response<Incoming>> {
    let tls = tls_config(None)?;
    let mut u = Url::parse(url)?;
    for _ in 0..=MAX_REDIRECTS {
        let resp = send_with(&u, &tls, "GET", &[], &Payload::Empty).await.with_context(|| format!("fetching {url}"))?;
        if resp.status().is_redirection() {
            let loc = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .with_context(|| format!("{url}: a redirect without a Location"))?;
            u = u.join(loc)?;
            continue;
        }
        let status = resp.status();
        anyhow::ensure!(status.is_success(), "{url} answered {status}");
        return Ok(resp);
    }
    bail!("{url}: more than {MAX_REDIRECTS} redirects")
}

pub async fn success(resp: Response<Incoming>, what: &str) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string();
    bail!("the registry answered {status} for {what}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://auth.example:8443/token?x=1").unwrap();
        assert_eq!((u.https, u.host.as_str(), u.path.as_str()), (true, "auth.example:8443", "/token?x=1"));
        assert_eq!(u.authority(), "auth.example:8443");
        assert_eq!(u.server_name(), "auth.example");
        assert_eq!(Url::parse("http://127.0.0.1").unwrap().authority(), "127.0.0.1:80");
        assert_eq!(u.join("/v2/x").unwrap().host, "auth.example:8443");
        assert_eq!(u.join("http://blobs/y").unwrap(), Url { https: false, host: "blobs".into(), path: "/y".into() });
        assert!(Url::parse("ftp://x").is_err());
    }
}
