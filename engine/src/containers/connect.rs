//! `network connect/disconnect` of a container: under the container's operation lock, so a
//! start or stop never runs half-way through one.

use super::{ContainerError, Containers};
use crate::network::{EndpointRequest, Mode};
use anyhow::Result;
use std::sync::Arc;

impl Containers {
    fn bridged(&self, c: &super::model::Container) -> Result<()> {
        match self.networks.mode(&c.host_config.network_mode)? {
            Mode::Bridge(_) => Ok(()),
            _ => Err(ContainerError::Invalid(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            )
            .into()),
        }
    }

    pub async fn connect(self: &Arc<Self>, name: &str, network: &str, req: EndpointRequest) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        self.bridged(&c)?;
        let running = c.state.is_running() && self.networks.is_active(&c.id);
        let (networks, id, network) = (self.networks.clone(), c.id.clone(), network.to_string());
        tokio::task::spawn_blocking(move || networks.connect(&id, &network, &req, running)).await??;
        Ok(())
    }

    pub async fn disconnect(self: &Arc<Self>, name: &str, network: &str) -> Result<()> {
        let entry = self.lookup(name)?;
        let _op = entry.op.lock().await;
        let c = entry.get();
        self.bridged(&c)?;
        let (networks, id, network) = (self.networks.clone(), c.id.clone(), network.to_string());
        tokio::task::spawn_blocking(move || networks.disconnect(&id, &network)).await??;
        Ok(())
    }
}
