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
    /// `EndpointConfig.DriverOpts`: kept and shown; the bridge driver reads none of them.
    pub driver_opts: std::collections::BTreeMap<String, String>,
}

impl crate::state::Record for Endpoint {
    const TABLE: &'static str = "endpoints";
    /// 2: `driver_opts` appended.
    const VERSION: u8 = 2;

    fn upgrade(version: u8, bytes: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(version == 1, "no upgrade from layout version {version} of endpoints records");
        // postcard writes a map as its length then its entries: layout 1 plus an empty map.
        let mut b = bytes.to_vec();
        b.push(0);
        Ok(postcard::from_bytes(&b)?)
    }
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
    let id = container.as_str();
    if iface == 0 {
        format!("{VETH_PREFIX}{}", &id[..12])
    } else {
        // 15 characters at most; the `x` keeps it apart from every eth0 name (all hex).
        format!("{VETH_PREFIX}{}x{iface}", &id[..11])
    }
}

/// The container id prefix (11 hex digits) of a host veth berth named, if it is one.
pub fn veth_owner(link: &str) -> Option<&str> {
    let rest = link.strip_prefix(VETH_PREFIX)?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let ours = (rest.len() == 12 && hex(rest))
        || (rest.len() >= 13 && hex(&rest[..11]) && rest.as_bytes()[11] == b'x' && rest[12..].bytes().all(|b| b.is_ascii_digit()));
    ours.then(|| &rest[..11])
}

/// The most interfaces a container gets (eth0..eth7).
pub const MAX_IFACES: u8 = 8;

pub const VETH_PREFIX: &str = "vb";
/// Prefix of user networks' bridges ("bn-" + 12 hex digits of the id: 15 characters, the
/// kernel's limit).
pub const BRIDGE_PREFIX: &str = "bn-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_never_collide_and_are_recognised() {
        // An id whose 12th digit is the interface number: eth0's and eth1's names once collided.
        let c: ContainerId = format!("07c7a482a351{}", "0".repeat(52)).parse().unwrap();
        let names: Vec<String> = (0..MAX_IFACES).map(|i| host_veth(&c, i)).collect();
        for (i, a) in names.iter().enumerate() {
            assert!(a.len() <= 15, "{a}");
            assert_eq!(veth_owner(a), Some("07c7a482a35"), "{a}");
            assert!(names[i + 1..].iter().all(|b| b != a), "{a} is used twice");
        }
        assert_eq!(veth_owner("vbox0"), None);
        assert_eq!(veth_owner("vb07c7a482a35y1"), None);
    }

    #[test]
    fn layout_1_endpoints_upgrade() {
        use crate::state::codec::{decode, encode};
        let e = Endpoint {
            container: ContainerId::random().unwrap(),
            network: "n".into(),
            iface: 1,
            ip: Ipv4Addr::new(172, 18, 0, 2),
            mac: "02:42:ac:12:00:02".into(),
            static_ip: false,
            aliases: vec!["web".into()],
            ports: vec![],
            driver_opts: Default::default(),
        };
        let v2 = encode(&e).unwrap();
        // A layout-1 record is a layout-2 one without its (empty) map.
        let mut v1 = v2[..v2.len() - 1].to_vec();
        v1[0] = 1;
        assert_eq!(decode::<Endpoint>(&v1).unwrap(), e);
    }
}
