//! Query strings and request bodies.

use super::error::{ApiError, ApiResult};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::HashMap;

/// JSON request bodies larger than this are refused: no create or rename needs more.
pub const MAX_JSON_BODY: usize = 1 << 20;

pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 3 <= b.len() => match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value.
pub fn percent_encode(s: &str) -> String {
    percent_encode_keeping(s, b"")
}

/// Percent-encodes `s`, leaving unreserved characters and those in `keep` as they are.
pub fn percent_encode_keeping(s: &str, keep: &[u8]) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parsed query parameters (a key may repeat: `names=a&names=b`).
#[derive(Default, Debug)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.entry(percent_decode(k, true)).or_default().push(percent_decode(v, true));
        }
        Query(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }

    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Docker's booleans: `1`/`true`/`True` are true, absent or anything else false.
    pub fn bool(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True" | "TRUE" | "yes"))
    }

    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {s:?}"))),
        }
    }

    /// The `filters` parameter: `{"key":["v1","v2"]}` or the older `{"key":{"v1":true}}`.
    pub fn filters(&self) -> ApiResult<HashMap<String, Vec<String>>> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else { return Ok(HashMap::new()) };
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?;
        let obj = v.as_object().ok_or_else(|| ApiError::bad_request("invalid filters: not a JSON object"))?;
        let mut out = HashMap::new();
        for (k, val) in obj {
            let list: Vec<String> = match val {
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
                serde_json::Value::Object(o) => o.iter().filter(|(_, b)| b.as_bool() == Some(true)).map(|(s, _)| s.clone()).collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter {k:?}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

/// Docker's `label` filter: `key` (present) or `key=value` (equal).
pub fn label_matches(labels: &std::collections::BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(filter),
    }
}

/// The filters of a prune: only `label` ones (`label=k[=v]`, all must match), anything else
/// is refused rather than ignored (ignoring it would remove more than asked).
pub fn prune_labels(filters: &HashMap<String, Vec<String>>, allowed: &[&str]) -> ApiResult<Vec<String>> {
    for k in filters.keys() {
        if k != "label" && !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}' (prune takes label filters)")));
        }
    }
    Ok(filters.get("label").cloned().unwrap_or_default())
}

/// How much of a refused body is read and thrown away so the client gets to read the answer
/// (closing on a client still writing makes it see a reset instead of the 413).
const DRAIN_LIMIT: usize = 64 << 20;

async fn drain(mut body: Incoming) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map(|d| d.len()).unwrap_or(0);
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// A body that sends nothing for this long is given up on: a client trickling a body (or
/// none) cannot hold a connection and its memory forever.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// The next frame of a body, or an error when none came within [`BODY_IDLE`].
async fn next_frame(body: &mut Incoming) -> ApiResult<Option<hyper::body::Frame<Bytes>>> {
    match tokio::time::timeout(BODY_IDLE, body.frame()).await {
        Err(_) => Err(ApiError::new(hyper::StatusCode::REQUEST_TIMEOUT, format!("the request body stalled for {BODY_IDLE:?}"))),
        Ok(None) => Ok(None),
        Ok(Some(f)) => f.map(Some).map_err(|e| ApiError::bad_request(format!("reading the request body: {e}"))),
    }
}

/// Reads a JSON body (at most [`MAX_JSON_BODY`]); an empty body parses as `null`.
pub async fn read_json<T: serde::de::DeserializeOwned>(mut body: Incoming) -> ApiResult<T> {
    let mut buf = Vec::new();
    while let Some(frame) = next_frame(&mut body).await? {
        if let Some(d) = frame.data_ref() {
            if buf.len() + d.len() > MAX_JSON_BODY {
                drain(body).await;
                return Err(ApiError::new(
                    hyper::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {MAX_JSON_BODY} bytes"),
                ));
            }
            buf.extend_from_slice(d);
        }
    }
    let bytes = Bytes::from(buf);
    let data: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) { b"null" } else { &bytes };
    serde_json::from_slice(data).map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))
}

/// Streams a body to a new file in `dir` (never into memory); the file is removed when the
/// returned guard drops.
pub async fn spool(body: Incoming, dir: &std::path::Path, prefix: &str) -> ApiResult<Spooled> {
    spool_limited(body, dir, prefix, None).await
}

/// [`spool`], refusing (413, the partial file removed) a body over `limit` bytes, whose name
/// `what` gives in the message.
pub async fn spool_limited(body: Incoming, dir: &std::path::Path, prefix: &str, limit: Option<(u64, &str)>) -> ApiResult<Spooled> {
    use tokio::io::AsyncWriteExt;
    let path = dir.join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        crate::util::id::ContainerId::random().map_err(anyhow::Error::from)?.short()
    ));
    let guard = Spooled(path.clone());
    let mut f = tokio::fs::File::create(&path).await.map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    let mut body = body;
    let mut written: u64 = 0;
    while let Some(frame) = next_frame(&mut body).await? {
        if let Some(data) = frame.data_ref() {
            written += data.len() as u64;
            if let Some((max, what)) = limit.filter(|(max, _)| written > *max) {
                drain(body).await;
                return Err(ApiError::new(hyper::StatusCode::PAYLOAD_TOO_LARGE, format!("{what} is larger than the limit of {max} bytes")));
            }
            f.write_all(data).await.map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
    }
    f.flush().await.map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(guard)
}

pub struct Spooled(pub std::path::PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_queries_and_filters() {
        let q = Query::parse(Some("all=1&filters=%7B%22status%22%3A%5B%22running%22%5D%7D&names=a&names=b+c"));
        assert!(q.bool("all"));
        assert_eq!(q.all("names"), &["a".to_string(), "b c".to_string()]);
        assert_eq!(q.filters().unwrap()["status"], vec!["running".to_string()]);
        assert!(Query::parse(Some("filters=nope")).filters().is_err());
        assert_eq!(percent_decode("a%2Fb%", false), "a/b%");
    }
}
