//! The network and endpoint records. An endpoint is one container's place on one network:
//! its address is the IPAM allocation, so "which addresses are taken" is exactly the set of
//! endpoint records, written in the same transaction as the container they belong to.

use super::ipam::Subnet;
use super::ports::PortMap;
use crate::util::id::ContainerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A bridge network (the default `bridge` and user-defined ones).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The Linux bridge device.
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Subnet>,
    /// Traffic between containers on this bridge allowed.
    pub icc: bool,
    /// Outbound traffic masqueraded behind the host.
    pub masquerade: bool,
    /// No route out: containers reach only each other.
    pub internal: bool,
    pub mtu: u32,
    /// The default network (`bridge`): no embedded DNS, as in Docker.
    pub default: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Where the last automatic allocation ended: the next starts after it.
    pub cursor: Option<Ipv4Addr>,
}

impl crate::state::Record for Network {
    const TABLE: &'static str = "networks";
    const VERSION: u8 = 1;
}

impl Network {
    pub fn pool(&self) -> super::ipam::Pool {
        super::ipam::Pool { subnet: self.subnet, range: self.ip_range, gateway: self.gateway }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container: ContainerId,
    pub network: String,
    /// The interface number in the container: `eth<iface>`. 0 is the network it was created
    /// on (default route, published ports); `network connect` takes the next free one.
    pub iface: u8,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// Asked for with `--ip`: kept even across a subnet change check.
    pub static_ip: bool,
    pub aliases: Vec<String>,
    /// Published ports as bound at the last start (ephemeral host ports resolved).
    pub ports: Vec<PortMap>,
}

impl crate::state::Record for Endpoint {
    const TABLE: &'static str = "endpoints";
    const VERSION: u8 = 1;
}

impl Endpoint {
    pub fn key(&self) -> String {
        key(&self.container, &self.network)
    }

    pub fn host_veth(&self) -> String {
        host_veth(&self.container, self.iface)
    }
}

pub fn key(container: &ContainerId, network: &str) -> String {
    format!("{container}/{network}")
}

/// The host side of a container's veth: derived from its id, so the start intent (which
/// names the container) names the link too, and cleanup finds it without a record.
pub fn host_veth(container: &ContainerId, iface: u8) -> String {
    let base = format!("{VETH_PREFIX}{}", &container.as_str()[..12]);
    if iface == 0 {
        base
    } else {
        format!("{}{iface}", &base[..13])
    }
}

/// The most interfaces a container gets (eth0..eth7).
pub const MAX_IFACES: u8 = 8;

pub const VETH_PREFIX: &str = "vb";
/// Prefix of user networks' bridges ("bn-" + 12 hex digits of the id: 15 characters, the
/// kernel's limit).
pub const BRIDGE_PREFIX: &str = "bn-";
