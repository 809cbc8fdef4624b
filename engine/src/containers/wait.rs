//! `wait`: block until a container reaches a condition. A waiter is registered (it takes a
//! snapshot of the run state) before the API answers with headers, so `docker run` can start
//! the container right after and never miss the exit.

use super::{Entry, RunState};
use anyhow::{bail, Result};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "not-running" => WaitCondition::NotRunning,
            "next-exit" => WaitCondition::NextExit,
            "removed" => WaitCondition::Removed,
            _ => bail!("invalid condition: {s:?}"),
        })
    }
}

pub struct Waiter {
    rx: watch::Receiver<RunState>,
    start: RunState,
    cond: WaitCondition,
}

impl Entry {
    pub fn waiter(&self, cond: WaitCondition) -> Waiter {
        let rx = self.subscribe();
        let start = rx.borrow().clone();
        Waiter { rx, start, cond }
    }
}

impl Waiter {
    /// The exit code once the condition holds.
    pub async fn wait(mut self) -> i32 {
        loop {
            let s = self.rx.borrow_and_update().clone();
            let done = match self.cond {
                WaitCondition::NotRunning => !s.running,
                WaitCondition::NextExit => s.exits > self.start.exits,
                WaitCondition::Removed => s.removed,
            };
            if done {
                return s.exit_code;
            }
            if self.rx.changed().await.is_err() {
                return self.rx.borrow().exit_code;
            }
        }
    }
}
