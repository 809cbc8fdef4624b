//! The health gate: the new application passes when every container runs, those with a
//! healthcheck report healthy and those without have run for the settle time, all within the
//! gate's timeout. A container that exits, restarts or turns unhealthy fails it at once.

use super::record::Member;
use crate::containers::health::Status;
use crate::containers::model::State;
use crate::containers::Containers;
use berth_images::bundle::app::Gate;
use std::time::{Duration, Instant};

pub async fn wait(containers: &Containers, members: &[Member], gate: &Gate) -> Result<(), String> {
    let (timeout, settle) = (gate.timeout(), gate.settle().min(gate.timeout()));
    let t0 = Instant::now();
    loop {
        let mut waiting = Vec::new();
        for m in members {
            let entry = containers.lookup(&m.id).map_err(|_| format!("container {} is gone", m.name))?;
            let c = entry.get();
            if entry.restarting() || !matches!(c.state, State::Running(_)) {
                let why = match &c.state {
                    State::Exited { error: Some(e), .. } => format!(" ({e})"),
                    _ => String::new(),
                };
                return Err(format!("container {} is not running: it exited with code {}{why}", m.name, c.state.exit_code()));
            }
            match entry.health() {
                Some(h) if h.status == Status::Unhealthy => {
                    let last =
                        h.log.back().map(|p| format!(": last probe exited {} with {:?}", p.exit_code, p.output.trim())).unwrap_or_default();
                    return Err(format!("container {} is unhealthy{last}", m.name));
                }
                Some(h) if h.status == Status::Healthy => {}
                Some(_) => waiting.push(format!("{} (health: starting)", m.name)),
                None if t0.elapsed() < settle => waiting.push(format!("{} (settling)", m.name)),
                None => {}
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if t0.elapsed() >= timeout {
            return Err(format!("not healthy within the gate's {} s: {}", timeout.as_secs(), waiting.join(", ")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
