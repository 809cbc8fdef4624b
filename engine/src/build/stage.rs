//! One stage's state as its steps run: the image so far, the configuration the next image
//! gets, and the variables its instructions see.

use anyhow::{anyhow, Result};
use berth_images::config::RunConfig;
use berth_images::dockerfile::vars::{BuildArgs, Scope};
use berth_images::dockerfile::words;
use berth_images::Digest;

pub struct StageState {
    pub image: Digest,
    pub config: RunConfig,
    /// The image's author (MAINTAINER).
    pub author: Option<String>,
    pub vars: Scope,
    /// A CMD was set in this stage: a later ENTRYPOINT keeps it.
    pub cmd_set: bool,
    escape: char,
}

impl StageState {
    pub fn new(image: Digest, config: RunConfig, author: Option<String>, args: &BuildArgs, escape: char) -> StageState {
        let vars = args.stage(config.env.as_deref().unwrap_or(&[]));
        StageState { image, config, author, vars, cmd_set: false, escape }
    }

    /// A word of an instruction, its variables expanded.
    pub fn expand(&self, word: &str) -> Result<String> {
        words::expand(word, self.escape, &|n| self.vars.lookup(n)).map_err(|e| anyhow!(e))
    }

    /// SHELL, or Docker's default.
    pub fn shell(&self) -> Vec<String> {
        self.config
            .extra
            .get("Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub fn workdir(&self) -> String {
        self.config.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into())
    }
}
