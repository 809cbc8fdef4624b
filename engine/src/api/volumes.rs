//! Volume endpoints (`/volumes/...`) and the `Mounts` of a container's inspect.

use super::error::{ApiError, ApiResult};
use super::router::{json, json_status, no_content, Ctx};
use crate::containers::model::Container;
use crate::volumes::model::{Source, Volume};
use crate::volumes::VolumeError;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn shape(ctx: &Ctx, v: &Volume) -> Value {
    let mut labels = v.labels.clone();
    if v.anonymous {
        labels.insert("com.docker.volume.anonymous".into(), String::new());
    }
    json!({
        "Name": v.name, "Driver": "local", "Mountpoint": ctx.d.volumes.data_dir(&v.name), "CreatedAt": v.created,
        "Labels": labels, "Scope": "local", "Options": v.options,
    })
}

fn strings_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object().map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()).unwrap_or_default()
}

pub fn list(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    for k in filters.keys() {
        if !["name", "dangling", "label", "driver"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let out: Vec<Value> = ctx
        .d
        .volumes
        .list()
        .iter()
        .filter(|v| {
            filters.iter().all(|(k, vals)| {
                vals.iter().any(|f| match k.as_str() {
                    "name" => v.name.contains(f.as_str()),
                    "driver" => f == "local",
                    "dangling" => (f == "true" || f == "1") == ctx.d.volumes.users(&v.name).is_empty(),
                    "label" => super::query::label_matches(&v.labels, f),
                    _ => false,
                })
            })
        })
        .map(|v| shape(ctx, v))
        .collect();
    json(&json!({"Volumes": out, "Warnings": []}))
}

pub fn inspect(ctx: &Ctx, name: &str) -> ApiResult {
    let v = ctx.d.volumes.get(name)?;
    json(&shape(ctx, &v))
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let body: Option<Value> = super::query::read_json(req.into_body()).await?;
    let body = body.unwrap_or_else(|| json!({}));
    let driver = body["Driver"].as_str().unwrap_or("");
    if !driver.is_empty() && driver != "local" {
        return Err(ApiError::not_implemented(format!("the {driver:?} volume driver (only local)")));
    }
    let name = body["Name"].as_str().filter(|n| !n.is_empty()).map(String::from);
    let (labels, options) = (strings_map(&body["Labels"]), strings_map(&body["DriverOpts"]));
    let volumes = ctx.d.volumes.clone();
    let v = tokio::task::spawn_blocking(move || volumes.create(name.as_deref(), labels, options)).await.map_err(anyhow::Error::from)??;
    ctx.d.events.emit(crate::events::Event::new("volume", "create", v.name.clone()).attr("driver", "local"));
    json_status(StatusCode::CREATED, &shape(ctx, &v))
}

pub async fn remove(ctx: &Ctx, name: &str) -> ApiResult {
    let volumes = ctx.d.volumes.clone();
    let name = name.to_string();
    let force = ctx.q.bool("force");
    let n2 = name.clone();
    match tokio::task::spawn_blocking(move || volumes.remove(&n2)).await.map_err(anyhow::Error::from)? {
        Err(e) if force && matches!(e.downcast_ref::<VolumeError>(), Some(VolumeError::NotFound(_))) => no_content(),
        r => {
            r?;
            ctx.d.events.emit(crate::events::Event::new("volume", "destroy", name).attr("driver", "local"));
            no_content()
        }
    }
}

/// `volume prune`: anonymous volumes no container uses (all unused ones with the
/// `all=true` filter, as Docker since API 1.42).
pub async fn prune(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    let labels = super::query::prune_labels(&filters, &["all"])?;
    let all = filters.get("all").is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    let volumes = ctx.d.volumes.clone();
    let (removed, bytes) =
        tokio::task::spawn_blocking(move || volumes.prune(all, &|l| labels.iter().all(|f| super::query::label_matches(l, f))))
            .await
            .map_err(anyhow::Error::from)??;
    json(&json!({"VolumesDeleted": removed, "SpaceReclaimed": bytes}))
}

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        anyhow::Error::from(e).into()
    }
}

/// A container's `Mounts` as inspect shows them.
pub fn mounts(ctx: &Ctx, c: &Container) -> Vec<Value> {
    ctx.d
        .volumes
        .mounts_of(&c.id)
        .iter()
        .map(|m| {
            let mode = if m.rw { "" } else { "ro" };
            match &m.source {
                Source::Bind(p) => json!({"Type": "bind", "Source": p, "Destination": m.destination, "Mode": mode, "RW": m.rw, "Propagation": m.propagation}),
                Source::Volume(n) => json!({"Type": "volume", "Name": n, "Source": ctx.d.volumes.data_dir(n), "Destination": m.destination,
                                            "Driver": "local", "Mode": mode, "RW": m.rw, "Propagation": ""}),
                Source::Tmpfs(_) => json!({"Type": "tmpfs", "Source": "", "Destination": m.destination, "Mode": mode, "RW": m.rw, "Propagation": ""}),
            }
        })
        .collect()
}
