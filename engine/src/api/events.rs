//! `GET /events`: kept events since `since`, then live ones until `until` (or forever), one
//! JSON document a line, filtered by Docker's rules.

use super::error::{ApiError, ApiResult};
use super::router::Ctx;
use bytes::Bytes;

pub fn events(ctx: &Ctx) -> ApiResult {
    let filters = ctx.q.filters()?;
    crate::events::check_filters(&filters).map_err(ApiError::bad_request)?;
    let now = ::time::OffsetDateTime::now_utc();
    let point = |k: &str| -> ApiResult<Option<i128>> {
        match ctx.q.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => crate::util::time::parse_point(s, now).map(Some).ok_or_else(|| ApiError::bad_request(format!("invalid {k} {s:?}"))),
        }
    };
    let (since, until) = (point("since")?, point("until")?);
    let (past, mut live) = ctx.d.events.subscribe(since.or(until.map(|_| i128::MIN)));
    let (tx, body) = super::body::channel();
    tokio::spawn(async move {
        let line = |e: &crate::events::Event| {
            let mut v = serde_json::to_vec(&e.to_json()).unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        let before_end = |t: i128| until.is_none_or(|u| t <= u);
        for e in past.iter().filter(|e| before_end(e.time_nano) && e.matches(&filters)) {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let wait = (u - ::time::OffsetDateTime::now_utc().unix_timestamp_nanos()).max(0);
            tokio::time::Instant::now() + std::time::Duration::from_nanos(wait as u64)
        });
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, live.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => live.recv().await,
            };
            match next {
                Ok(e) if e.matches(&filters) && before_end(e.time_nano) => {
                    if tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // A follower too slow for the stream misses events rather than holding memory.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!("events: a follower missed {n} events"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(hyper::Response::builder().header("Content-Type", "application/json").body(body).unwrap())
}
