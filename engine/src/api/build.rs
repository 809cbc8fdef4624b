//! `POST /build`: the context is received and checked, the Dockerfile parsed (400 with
//! Docker's messages for bad input, 413 over `build-context-limit`); running the steps is
//! not implemented yet, which the answer says (501).

use super::error::{ApiError, ApiResult};
use super::query::spool_limited;
use super::router::Ctx;
use crate::build::{prepare, Refused, WorkDir};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

/// A JSON-object query parameter (`buildargs`, `labels`): 400 when it is not one.
fn json_object(ctx: &Ctx, key: &str) -> ApiResult<()> {
    match ctx.q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(()),
        Some(v) => match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(v) {
            Ok(_) => Ok(()),
            Err(e) => Err(ApiError::bad_request(format!("invalid {key}: {e}"))),
        },
    }
}

pub async fn build(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    json_object(ctx, "buildargs")?;
    json_object(ctx, "labels")?;
    let limit = ctx.d.cfg.build_context_limit;
    let tmp = ctx.d.images.tmp_dir().to_path_buf();
    let tar = spool_limited(req.into_body(), &tmp, "build-context", Some((limit, "the build context"))).await?;
    let work = WorkDir(tmp.join(format!("build-{}", crate::util::id::ContainerId::random().map_err(anyhow::Error::from)?.short())));
    let dockerfile = ctx.q.get("dockerfile").unwrap_or("Dockerfile").to_string();
    let work_path = work.0.clone();
    let parsed = tokio::task::spawn_blocking(move || prepare(&tar.0, &work_path, &dockerfile)).await.map_err(anyhow::Error::from)?;
    drop(work);
    match parsed {
        Ok(d) => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "the Dockerfile is valid ({} stage(s), {} instruction(s)), but berth cannot run build steps yet",
                d.stages.len(),
                d.stages.iter().map(|s| s.instructions.len() + 1).sum::<usize>()
            ),
        )),
        Err(Refused::BadRequest(m)) => Err(ApiError::bad_request(m)),
        Err(Refused::Internal(e)) => Err(e.into()),
    }
}
