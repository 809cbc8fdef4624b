//! Exec endpoints: create, start (hijacked, streamed or detached), inspect, resize.

use super::error::{ApiError, ApiResult};
use super::hijack::{parse_detach_keys, relay, switching_protocols, terminal_size};
use super::query::read_json;
use super::router::{json, json_status, Ctx};
use crate::exec::{ExecConfig, ExecError};
use crate::util::pty::Size;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        let status = match e {
            ExecError::NotFound(_) => StatusCode::NOT_FOUND,
            ExecError::Invalid(_) => StatusCode::BAD_REQUEST,
            ExecError::Conflict(_) => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.to_string())
    }
}

/// `POST /containers/{id}/exec`.
pub async fn create(ctx: &Ctx, name: &str, req: Request<Incoming>) -> ApiResult {
    let cfg: Option<ExecConfig> = read_json(req.into_body()).await?;
    let cfg = cfg.ok_or_else(|| ApiError::bad_request("exec configuration is required"))?;
    parse_detach_keys(&cfg.detach_keys)?;
    let (id, _) = ctx.d.containers.exec_launch(name)?;
    let exec = ctx.d.execs.create(id, cfg)?;
    json_status(StatusCode::CREATED, &serde_json::json!({ "Id": exec.id }))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartRequest {
    #[serde(default)]
    detach: bool,
    /// Raw output instead of multiplexed frames.
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    console_size: Option<[u16; 2]>,
}

/// `POST /exec/{id}/start`.
pub async fn start(ctx: &Ctx, id: &str, req: Request<Incoming>) -> ApiResult {
    let exec = ctx.d.execs.get(id)?;
    let upgrade = req.headers().get(hyper::header::UPGRADE).is_some();
    let (parts, body) = req.into_parts();
    let start: Option<StartRequest> = read_json(body).await?;
    let start = start.unwrap_or_default();
    let (_, launch) = ctx.d.containers.exec_launch(exec.container.as_str())?;
    let keys = parse_detach_keys(&exec.config.detach_keys)?;
    let raw = start.tty;
    let attach_stdin = exec.config.attach_stdin && !start.detach && upgrade;
    let mut started = ctx.d.execs.start(&exec, launch, attach_stdin, raw).await?;
    if let (Some(t), Some([rows, cols])) = (&started.terminal, start.console_size) {
        if rows > 0 && cols > 0 {
            let _ = t.resize(Size { rows, cols });
        }
    }
    let content_type = super::streams::content_type(&ctx.version, raw);
    if start.detach {
        // Nobody reads the output: drain it so the process never blocks on a full pipe.
        tokio::spawn(async move { while started.output.recv().await.is_some() {} });
        return Ok(hyper::Response::builder().status(StatusCode::OK).body(super::body::empty()).unwrap());
    }
    if !upgrade {
        // A plain streamed answer: output only.
        let (tx, body) = super::body::channel();
        tokio::spawn(async move {
            while let Some(b) = started.output.recv().await {
                let _ = tx.send(b).await;
            }
        });
        return Ok(hyper::Response::builder().header("Content-Type", content_type).body(body).unwrap());
    }
    let req = Request::from_parts(parts, ());
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("exec upgrade failed: {e}");
                while started.output.recv().await.is_some() {}
                return;
            }
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let input = started.input.take();
        if relay(io, &mut started.output, async move { input }, keys).await == super::hijack::Ended::Detached {
            while started.output.recv().await.is_some() {}
        }
    });
    Ok(switching_protocols(content_type))
}

/// `GET /exec/{id}/json`.
pub fn inspect(ctx: &Ctx, id: &str) -> ApiResult {
    json(&ctx.d.execs.get(id)?.inspect())
}

/// `POST /exec/{id}/resize`.
pub fn resize(ctx: &Ctx, id: &str) -> ApiResult {
    let exec = ctx.d.execs.get(id)?;
    let size = terminal_size(ctx)?;
    exec.resize(size).map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("{e:#}")))?;
    json(&serde_json::json!({}))
}
