//! What an exec needs from its container: that it runs, and how the runtime reaches it.

use super::model::State;
use super::{ContainerError, Containers};
use crate::exec::Launch;
use crate::util::id::ContainerId;

impl Containers {
    /// The running container `name` as the runtime's `exec` sees it.
    pub fn exec_launch(&self, name: &str) -> Result<(ContainerId, Launch), ContainerError> {
        let c = self.lookup(name)?.get();
        match c.state {
            State::Running(_) => {}
            State::Paused(_) => {
                return Err(ContainerError::Conflict(format!("Container {} is paused, unpause the container before exec", c.id)))
            }
            _ => return Err(ContainerError::Conflict(format!("Container {} is not running", c.id))),
        }
        let runtime = self
            .cfg
            .runtimes
            .get(&c.runtime)
            .cloned()
            .ok_or_else(|| ContainerError::Conflict(format!("the runtime {} of container {} is not configured", c.runtime, c.id)))?;
        let launch = Launch {
            container_id: c.id.to_string(),
            bundle: self.bundle_dir(&c.id),
            runtime_root: crate::runtime::runtime_root(&self.cfg.exec_root, &runtime.name),
            runtime,
        };
        Ok((c.id, launch))
    }
}
