//! `network create/rm/prune`. The record is committed before the bridge is made and removed
//! before the bridge is deleted: a crash in between leaves a bridge with no record (removed
//! at start-up) or a record with no bridge (made at start-up), never a half-network in use.

use super::ipam::Subnet;
use super::model::{Network, BRIDGE_PREFIX};
use super::{netlink, NetworkError, Networks};
use crate::util::id::ContainerId;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// What `POST /networks/create` asks for.
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

fn invalid(msg: impl Into<String>) -> NetworkError {
    NetworkError::Invalid(msg.into())
}

fn bool_option(options: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, NetworkError> {
    match options.get(key).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(invalid(format!("invalid value {v:?} for option {key}: true or false"))),
    }
}

/// Subnets Docker's default pools hand out, in its order.
fn candidate_subnets() -> impl Iterator<Item = Subnet> {
    let a = (18u8..=31).filter_map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let b = (0u8..16).filter_map(|i| Subnet::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    a.chain(b)
}

impl Networks {
    pub fn create(self: &Arc<Self>, opts: CreateOptions) -> Result<Network> {
        let name = opts.name.trim().to_string();
        // Docker takes any name (spaces included); interfaces and files are named by id.
        if name.is_empty() || name.len() > 255 || name.contains('/') || name.chars().any(char::is_control) {
            return Err(
                invalid(format!("invalid network name {:?}: 1 to 255 characters, no '/' and no control characters", opts.name)).into()
            );
        }
        if ["host", "none", super::DEFAULT_NETWORK].contains(&name.as_str()) {
            return Err(NetworkError::Conflict(format!("{name} is a pre-defined network and cannot be created")).into());
        }
        if !opts.driver.is_empty() && opts.driver != "bridge" {
            return Err(NetworkError::NotImplemented(format!("the {:?} network driver (only bridge)", opts.driver)).into());
        }
        let icc = bool_option(&opts.options, "com.docker.network.bridge.enable_icc", true)?;
        let masquerade = bool_option(&opts.options, "com.docker.network.bridge.enable_ip_masquerade", true)?;
        let mtu = match opts.options.get("com.docker.network.driver.mtu") {
            Some(m) => m.parse::<u32>().ok().filter(|m| (68..=65535).contains(m)).ok_or_else(|| invalid(format!("invalid mtu {m:?}")))?,
            None => self.cfg.net.mtu,
        };
        let id = ContainerId::random().context("generating a network id")?.to_string();
        let bridge = match opts.options.get("com.docker.network.bridge.name") {
            Some(b) if b.len() > 15 || b.is_empty() => return Err(invalid(format!("invalid bridge name {b:?}: 1 to 15 characters")).into()),
            Some(b) => b.clone(),
            None => format!("{BRIDGE_PREFIX}{}", &id[..12]),
        };
        let subnet = opts.subnet.as_deref().map(|s| s.parse::<Subnet>().map_err(|e| invalid(e.to_string()))).transpose()?;
        let gateway = opts
            .gateway
            .as_deref()
            .map(|g| g.parse::<Ipv4Addr>().map_err(|_| invalid(format!("invalid gateway address {g:?}"))))
            .transpose()?;
        let ip_range = opts.ip_range.as_deref().map(|s| s.parse::<Subnet>().map_err(|e| invalid(e.to_string()))).transpose()?;
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
            return Err(invalid("--gateway and --ip-range need --subnet").into());
        }

        // Check and record under the lock: two concurrent creates cannot share a name or a
        // subnet (Docker lets them).
        let mut inner = self.inner.lock().unwrap();
        if inner.creating.contains(&name) || inner.networks.values().any(|n| n.name == name) {
            return Err(NetworkError::Conflict(format!("network with name {name} already exists")).into());
        }
        if inner.networks.values().any(|n| n.bridge == bridge) {
            return Err(NetworkError::Conflict(format!("bridge {bridge} is already used by another network")).into());
        }
        let overlaps = |s: &Subnet| inner.networks.values().find(|n| n.subnet.overlaps(s)).map(|n| n.name.clone());
        let subnet = match subnet {
            Some(s) => {
                if let Some(other) = overlaps(&s) {
                    return Err(NetworkError::Conflict(format!(
                        "invalid pool request: Pool overlaps with other one on this address space (network {other})"
                    ))
                    .into());
                }
                s
            }
            None => candidate_subnets()
                .find(|s| overlaps(s).is_none())
                .ok_or_else(|| NetworkError::Conflict("could not find an available, non-overlapping IPv4 address pool".into()))?,
        };
        let gateway = match gateway {
            Some(g) if !subnet.is_host(g) => return Err(invalid(format!("gateway {g} is not a host address of subnet {subnet}")).into()),
            Some(g) => g,
            None => subnet.first_host().map_err(|e| invalid(e.to_string()))?,
        };
        if let Some(r) = ip_range {
            if !subnet.covers(&r) {
                return Err(invalid(format!("ip-range {r} is not inside subnet {subnet}")).into());
            }
        }
        let mut options = opts.options.clone();
        options.insert("com.docker.network.bridge.name".into(), bridge.clone());
        let net = Network {
            id: id.clone(),
            name: name.clone(),
            created: crate::util::time::now(),
            bridge,
            subnet,
            gateway,
            ip_range,
            icc,
            masquerade,
            internal: opts.internal,
            mtu,
            default: false,
            labels: opts.labels,
            options,
            cursor: None,
        };
        self.nets.put(&id, &net).with_context(|| format!("recording network {name}"))?;
        inner.networks.insert(id.clone(), net.clone());
        if let Err(e) = self.bring_up(&net).and_then(|_| self.apply_rules(&inner)) {
            inner.networks.remove(&id);
            let _ = self.nets.delete(&id);
            let _ = netlink::delete_link(None, &net.bridge);
            let _ = self.apply_rules(&inner);
            return Err(e.context(format!("creating network {name}")));
        }
        self.start_dns(&mut inner, &net);
        tracing::info!(network = %name, subnet = %net.subnet, bridge = %net.bridge, "network created");
        Ok(net)
    }

    /// The network's bridge, addressed and up, with 127.0.0.1 routable to it (published
    /// ports reached through localhost are forwarded onto the bridge).
    pub(super) fn bring_up(&self, n: &Network) -> Result<()> {
        netlink::ensure_bridge(&netlink::BridgeSpec { name: &n.bridge, address: n.gateway, prefix: n.subnet.prefix(), mtu: n.mtu })?;
        let knob = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge);
        std::fs::write(&knob, "1").with_context(|| format!("writing {knob}"))?;
        Ok(())
    }

    /// `network rm`: refused while containers are connected.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut inner = self.inner.lock().unwrap();
        let n = inner.find(name)?.clone();
        if n.default {
            return Err(NetworkError::Conflict(format!("{} is a pre-defined network and cannot be removed", n.name)).into());
        }
        let users: Vec<String> = inner.endpoints.values().filter(|e| e.network == n.id).map(|e| e.container.short().to_string()).collect();
        if !users.is_empty() {
            return Err(NetworkError::Conflict(format!(
                "error while removing network: network {} has active endpoints ({})",
                n.name,
                users.join(", ")
            ))
            .into());
        }
        self.nets.delete(&n.id).with_context(|| format!("removing the record of network {}", n.name))?;
        inner.networks.remove(&n.id);
        if let Some(task) = inner.dns.remove(&n.id) {
            task.abort();
        }
        if let Err(e) = netlink::delete_link(None, &n.bridge) {
            tracing::warn!(network = %n.name, "deleting bridge {}: {e:#} (start-up cleanup will retry)", n.bridge);
        }
        self.apply_rules(&inner)?;
        tracing::info!(network = %n.name, "network removed");
        Ok(())
    }

    /// `network prune`: every user network no container uses whose labels `wanted`
    /// accepts. Returns their names.
    pub fn prune(&self, wanted: &dyn Fn(&BTreeMap<String, String>) -> bool) -> Result<Vec<String>> {
        let unused: Vec<String> = {
            let inner = self.inner.lock().unwrap();
            inner
                .networks
                .values()
                .filter(|n| !n.default && wanted(&n.labels) && !inner.endpoints.values().any(|e| e.network == n.id))
                .map(|n| n.id.clone())
                .collect()
        };
        let mut removed = Vec::new();
        for id in unused {
            let name = self.find(&id).map(|n| n.name).unwrap_or_default();
            match self.remove(&id) {
                Ok(()) => removed.push(name),
                Err(e) => tracing::warn!(network = %name, "prune: {e:#}"),
            }
        }
        Ok(removed)
    }

    /// Starts the embedded DNS of a user network on its gateway address.
    pub(super) fn start_dns(&self, inner: &mut super::Inner, n: &Network) {
        let Some(rt) = &self.rt else { return };
        if n.default || inner.dns.contains_key(&n.id) {
            return;
        }
        let sock = match std::net::UdpSocket::bind((n.gateway, 53)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(network = %n.name, "embedded DNS cannot listen on {}:53: {e}; names will not resolve on this network", n.gateway);
                return;
            }
        };
        let _ = sock.set_nonblocking(true);
        let me = self.me.clone();
        let net = n.id.clone();
        let lookup: super::dns::Lookup = Arc::new(move |name: &str| me.upgrade().and_then(|m| m.resolve(&net, name)));
        let ups = self.upstreams.clone();
        let task = rt.spawn(async move {
            match tokio::net::UdpSocket::from_std(sock) {
                Ok(s) => super::dns::serve(s, lookup, ups).await,
                Err(e) => tracing::error!("embedded DNS: {e}"),
            }
        });
        inner.dns.insert(n.id.clone(), task);
    }

    /// The addresses of the running containers on `network` called `name` (container
    /// name, short id or alias).
    fn resolve(&self, network: &str, name: &str) -> Option<Vec<std::net::Ipv4Addr>> {
        let inner = self.inner.lock().unwrap();
        let ips: Vec<_> = inner
            .endpoints
            .values()
            .filter(|e| e.network == network)
            .filter(|e| {
                inner.active.get(&e.container).is_some_and(|a| a.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
                    || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
            })
            .filter(|e| inner.active.contains_key(&e.container))
            .map(|e| e.ip)
            .collect();
        (!ips.is_empty()).then_some(ips)
    }
}
