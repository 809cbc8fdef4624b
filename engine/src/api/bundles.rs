//! berth's own endpoints for field updates (not in Docker's API): `POST /berth/bundles`
//! installs a signed bundle streamed in the body, `GET /berth/bundles` says what is installed
//! and how the last attempt went.

use super::body::Response;
use super::error::ApiResult;
use super::router::Ctx;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::json;

/// The upload is spooled to the data root (never held in memory), then verified and
/// installed by a task of its own: a client that goes away does not stop an install half-way.
/// The answer is a stream of JSON lines, `{"status": ...}` per step, ending in
/// `{"status": "installed version N"}` or an `error` / `errorDetail` line.
pub async fn install(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let opts = crate::bundles::InstallOptions { allow_downgrade: ctx.q.bool("allow_downgrade") };
    let bundles = ctx.d.bundles.clone();
    let file = super::query::spool(req.into_body(), &bundles.incoming, "upload").await?;
    let (tx, body) = super::body::channel();
    let line = |v: serde_json::Value| Bytes::from(v.to_string() + "\n");
    let progress_tx = tx.clone();
    let progress: crate::bundles::install::Progress = std::sync::Arc::new(move |s: String| {
        let _ = progress_tx.try_send(line(json!({"status": s})));
    });
    tokio::spawn(async move {
        let result = bundles.install(&file.0, opts, progress).await;
        drop(file);
        if let Err(e) = result {
            tracing::warn!("bundle install: {e:#}");
            let msg = format!("{e:#}");
            let _ = tx.send(line(json!({"error": msg, "errorDetail": {"message": msg}}))).await;
        }
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/json").body(body).unwrap())
}

pub fn status(ctx: &Ctx) -> ApiResult<Response> {
    super::router::json(&ctx.d.bundles.status()?)
}
