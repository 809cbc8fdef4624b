//! What the device knows of its application: the release running, the one before, and the
//! last attempt at an update with its phase. The phase is the install's journal: each step is
//! recorded durably before its side effects, so recovery after a crash or a power cut knows
//! whether to finish the switch or go back (see `recover`).

use crate::state::Record;
use serde::{Deserialize, Serialize};

pub const KEY: &str = "app";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub installed: Option<Release>,
    pub previous: Option<Release>,
    pub attempt: Option<Attempt>,
}

impl Record for AppRecord {
    const TABLE: &'static str = "bundle-app";
    const VERSION: u8 = 1;
}

/// An installed application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub version: u64,
    /// The trusted key that signed it (trust file name).
    pub key: String,
    pub installed_at: String,
    pub containers: Vec<Member>,
    pub images: Vec<String>,
}

/// One of an application's containers: its name in the app file and the container's id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub version: u64,
    pub key: String,
    pub started: String,
    pub phase: Phase,
    /// The new application's containers, as they are created.
    pub containers: Vec<Member>,
    pub images: Vec<String>,
    pub steps: Vec<Step>,
}

/// Where an install is. The first four are in flight; a daemon that finds one at start
/// finishes it (Committing) or goes back (the others).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// The new containers are being created; the old application runs.
    Staged,
    /// The old application is being stopped and the new one started.
    Switching,
    /// The new application runs and must become healthy.
    Gate,
    /// Healthy: the old containers go, the new take their names.
    Committing,
    /// Not healthy (the reason): the new stop, the old start again.
    RollingBack(String),
    Installed,
    RolledBack(String),
    /// Given up before the switch (nothing of the old application was touched).
    Abandoned(String),
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Staged => "staged",
            Phase::Switching => "switching",
            Phase::Gate => "health-gate",
            Phase::Committing => "committing",
            Phase::RollingBack(_) => "rolling-back",
            Phase::Installed => "installed",
            Phase::RolledBack(_) => "rolled-back",
            Phase::Abandoned(_) => "abandoned",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Phase::RollingBack(r) | Phase::RolledBack(r) | Phase::Abandoned(r) => Some(r),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub at: String,
    pub what: String,
}

/// A container's name while it is staged beside the running application.
pub fn staged_name(name: &str, version: u64) -> String {
    format!("{name}-v{version}")
}
