//! Healthchecks: the image's `HEALTHCHECK` or the request's `Config.Healthcheck`, probed by
//! the daemon through the runtime's `exec`, with Docker's rules:
//! - zero durations and retries mean the defaults (30 s interval and timeout, 3 retries);
//! - the status starts as `starting`; a passing probe makes it `healthy`; `retries`
//!   consecutive failures make it `unhealthy`; failures within the start period do not
//!   count, a pass there ends the period;
//! - a probe that outlives its timeout fails with exit code -1;
//! - the last 5 probes are kept, each with at most 4096 bytes of output;
//! - with the openEuler engine's `ExitOnUnhealthy`, an unhealthy container is killed (its
//!   restart policy then applies).
//!
//! Health lives in memory: after a daemon restart a re-adopted container starts again from
//! `starting`.

use super::{Containers, Entry};
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
const KEEP_PROBES: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// A validated healthcheck.
#[derive(Clone, Debug, PartialEq)]
pub struct Healthcheck {
    /// The command as the runtime runs it.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
    pub exit_on_unhealthy: bool,
}

fn nanos(v: &Value, key: &str) -> Result<Duration, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Duration::ZERO),
        Some(n) => {
            let n = n.as_i64().ok_or_else(|| format!("{key} in Healthcheck must be an integer (nanoseconds)"))?;
            if n != 0 && n < 1_000_000 {
                return Err(format!("{key} in Healthcheck cannot be less than 1ms"));
            }
            Ok(Duration::from_nanos(n as u64))
        }
    }
}

fn or(d: Duration, default: Duration) -> Duration {
    if d.is_zero() {
        default
    } else {
        d
    }
}

impl Healthcheck {
    /// `Config.Healthcheck` as Docker's API gives it. `None`: no healthcheck (absent, an
    /// empty test, or `["NONE"]`).
    pub fn parse(v: Option<&Value>) -> Result<Option<Self>, String> {
        let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(None) };
        let test: Vec<String> = match v.get("Test") {
            None | Some(Value::Null) => vec![],
            Some(t) => serde_json::from_value(t.clone()).map_err(|_| "Healthcheck.Test must be a list of strings".to_string())?,
        };
        let argv = match test.first().map(String::as_str) {
            None | Some("NONE") => return Ok(None),
            Some("CMD") if test.len() > 1 => test[1..].to_vec(),
            Some("CMD-SHELL") if test.len() == 2 => vec!["/bin/sh".into(), "-c".into(), test[1].clone()],
            Some(other) => return Err(format!("invalid Healthcheck.Test: {other:?} needs CMD args... or CMD-SHELL \"command\"")),
        };
        let retries = match v.get("Retries").and_then(Value::as_i64).unwrap_or(0) {
            r if r < 0 => return Err("Retries in Healthcheck cannot be negative".into()),
            r => u32::try_from(r).map_err(|_| "Retries in Healthcheck is too large".to_string())?,
        };
        let exit = v.get("ExitOnUnhealthy").and_then(Value::as_bool).unwrap_or(false);
        Ok(Some(Healthcheck {
            argv,
            interval: or(nanos(v, "Interval")?, DEFAULT_INTERVAL),
            timeout: or(nanos(v, "Timeout")?, DEFAULT_TIMEOUT),
            start_period: nanos(v, "StartPeriod")?,
            start_interval: or(nanos(v, "StartInterval")?, Duration::from_secs(5)),
            retries: if retries == 0 { DEFAULT_RETRIES } else { retries },
            exit_on_unhealthy: exit,
        }))
    }
}

/// Fills the request's unset healthcheck fields from the image's, as Docker merges them.
pub fn merge(request: Option<&Value>, image: Option<&Value>) -> Option<Value> {
    let (Some(req), Some(img)) = (request.filter(|v| !v.is_null()), image.filter(|v| !v.is_null())) else {
        return request.or(image).filter(|v| !v.is_null()).cloned();
    };
    let mut out = img.clone();
    if let (Some(o), Some(r)) = (out.as_object_mut(), req.as_object()) {
        for (k, v) in r {
            let unset = v.is_null() || v.as_i64() == Some(0) || v.as_array().is_some_and(|a| a.is_empty());
            if !unset {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    Some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// `State.Health` of inspect.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: Status,
    pub failing_streak: u32,
    pub log: VecDeque<Probe>,
}

impl Default for Health {
    fn default() -> Self {
        Health { status: Status::Starting, failing_streak: 0, log: VecDeque::new() }
    }
}

impl Health {
    /// Applies one probe's result. Returns true when this probe made the container unhealthy.
    pub fn record(&mut self, probe: Probe, in_start_period: bool, retries: u32) -> bool {
        let passed = probe.exit_code == 0;
        if self.log.len() == KEEP_PROBES {
            self.log.pop_front();
        }
        self.log.push_back(probe);
        if passed {
            self.status = Status::Healthy;
            self.failing_streak = 0;
            return false;
        }
        if in_start_period && self.status == Status::Starting {
            return false;
        }
        self.failing_streak += 1;
        if self.failing_streak >= retries && self.status != Status::Unhealthy {
            self.status = Status::Unhealthy;
            return true;
        }
        false
    }

    /// The suffix `ps` shows after "Up ...".
    pub fn describe(&self) -> &'static str {
        match self.status {
            Status::Starting => " (health: starting)",
            Status::Healthy => " (healthy)",
            Status::Unhealthy => " (unhealthy)",
        }
    }
}

impl Containers {
    /// Starts probing `entry`'s current run, if it has a healthcheck. The task ends with the run.
    pub(super) fn watch_health(self: &Arc<Self>, entry: Arc<Entry>) {
        let c = entry.get();
        let check = match Healthcheck::parse(c.config.extra.get("Healthcheck")) {
            Ok(Some(h)) => h,
            Ok(None) => {
                *entry.health.lock().unwrap() = None;
                return;
            }
            Err(e) => {
                tracing::warn!(container = %c.id.short(), "healthcheck ignored: {e}");
                return;
            }
        };
        *entry.health.lock().unwrap() = Some(Health::default());
        let this = self.clone();
        let mut rx = entry.subscribe();
        let run = rx.borrow().starts;
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                let in_start = started.elapsed() < check.start_period;
                let starting = entry.health.lock().unwrap().as_ref().is_some_and(|h| h.status == Status::Starting);
                let wait = if in_start && starting { check.start_interval.min(check.interval) } else { check.interval };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    r = rx.changed() => if r.is_err() { return },
                }
                {
                    let s = rx.borrow();
                    if !s.running || s.starts != run || s.removed {
                        return;
                    }
                }
                // A frozen container cannot answer: Docker skips its probes too.
                if matches!(entry.get().state, super::model::State::Paused(_)) {
                    continue;
                }
                let probe = this.probe(&c.id, &check).await;
                let in_start = started.elapsed() < check.start_period;
                let (turned, changed) = {
                    let mut h = entry.health.lock().unwrap();
                    let Some(h) = h.as_mut() else { return };
                    let before = h.status;
                    let turned = h.record(probe, in_start, check.retries);
                    (turned, (before != h.status).then_some(h.status))
                };
                if let Some(now) = changed {
                    this.emit(&c, &format!("health_status: {}", now.name()), &[]);
                }
                if turned {
                    tracing::warn!(container = %c.id.short(), "container is unhealthy");
                    if check.exit_on_unhealthy {
                        tracing::warn!(container = %c.id.short(), "killing it (exit on unhealthy)");
                        if let Err(e) = this.kill(c.id.as_str(), Some("SIGKILL")).await {
                            tracing::warn!(container = %c.id.short(), "killing an unhealthy container: {e:#}");
                        }
                    }
                }
            }
        });
    }

    async fn probe(&self, id: &crate::util::id::ContainerId, check: &Healthcheck) -> Probe {
        let start = crate::util::time::now();
        let result = self.run_probe(id, check).await;
        let (exit_code, output) = match result {
            Ok(r) => r,
            Err(e) => (-1, format!("{e:#}")),
        };
        Probe { start, end: crate::util::time::now(), exit_code, output }
    }

    async fn run_probe(&self, id: &crate::util::id::ContainerId, check: &Healthcheck) -> anyhow::Result<(i32, String)> {
        let (_, launch) = self.exec_launch(id.as_str())?;
        let cfg = crate::exec::ExecConfig { cmd: Some(check.argv.clone()), attach_stdout: true, attach_stderr: true, ..Default::default() };
        let probe_id = crate::util::id::ContainerId::random()?.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut started = crate::exec::start_process(&probe_id, &cfg, launch, false, true, move |code| {
            let _ = tx.send(code);
        })
        .await?;
        let pid_file = started.pid_file.clone();
        let collect = async {
            let mut out = Vec::new();
            while let Some(b) = started.output.recv().await {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&b[..b.len().min(room)]);
            }
            (rx.await.unwrap_or(-1), String::from_utf8_lossy(&out).into_owned())
        };
        match tokio::time::timeout(check.timeout, collect).await {
            Ok(r) => Ok(r),
            Err(_) => {
                if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
                Ok((-1, format!("Health check exceeded timeout ({:?})", check.timeout)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(code: i32) -> Probe {
        Probe { start: String::new(), end: String::new(), exit_code: code, output: String::new() }
    }

    #[test]
    fn zero_values_mean_defaults_and_bad_values_are_refused() {
        let h = Healthcheck::parse(Some(&json!({"Test": ["CMD-SHELL", "true"], "Interval": 0, "Retries": 0}))).unwrap().unwrap();
        assert_eq!((h.interval, h.timeout, h.retries), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_RETRIES));
        assert_eq!(h.argv, vec!["/bin/sh", "-c", "true"]);
        assert!(Healthcheck::parse(Some(&json!({"Test": ["NONE"]}))).unwrap().is_none());
        assert!(Healthcheck::parse(Some(&json!({"Test": ["CMD", "x"], "Interval": 5}))).is_err());
        assert!(Healthcheck::parse(Some(&json!({"Test": ["CMD", "x"], "Retries": -1}))).is_err());
        assert!(Healthcheck::parse(Some(&json!({"Test": ["BOGUS"]}))).is_err());
    }

    #[test]
    fn status_follows_dockers_rules() {
        let mut h = Health::default();
        // Failures within the start period do not count.
        assert!(!h.record(probe(1), true, 2));
        assert_eq!((h.status, h.failing_streak), (Status::Starting, 0));
        assert!(!h.record(probe(0), true, 2));
        assert_eq!(h.status, Status::Healthy);
        assert!(!h.record(probe(1), false, 2));
        assert_eq!((h.status, h.failing_streak), (Status::Healthy, 1));
        assert!(h.record(probe(1), false, 2), "the second failure in a row turns it unhealthy");
        assert!(!h.record(probe(1), false, 2), "it turns once");
        for _ in 0..4 {
            h.record(probe(0), false, 2);
        }
        assert_eq!(h.log.len(), KEEP_PROBES);
        assert_eq!((h.status, h.failing_streak), (Status::Healthy, 0));
    }

    #[test]
    fn request_fields_override_the_image() {
        let img = json!({"Test": ["CMD", "a"], "Interval": 1000000000u64, "Retries": 5});
        let req = json!({"Interval": 0, "Retries": 2, "Test": []});
        let m = merge(Some(&req), Some(&img)).unwrap();
        assert_eq!(m["Test"], json!(["CMD", "a"]));
        assert_eq!(m["Retries"], 2);
        assert_eq!(m["Interval"], 1000000000u64);
    }
}
