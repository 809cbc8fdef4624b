//! Containers on networks. Create allocates the address (an endpoint record, committed with
//! the container); start makes the namespace, the veth and the port holds and then the
//! rules; exit takes them away again; removal drops the endpoint. The host veth's name comes
//! from the container id, so the start intent names everything start makes.

use super::ipam::{mac_for, parse_mac};
use super::model::{host_veth, veth_owner, Endpoint, Network, BRIDGE_PREFIX, MAX_IFACES};
use super::ports::{self, PortMap, PortRequest, Proto};
use super::{netlink, netns, Active, NetworkError, Networks};
use crate::state::Txn;
use crate::util::id::ContainerId;
use anyhow::{Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// A container's network mode.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// On a bridge network (the default one or a user network): its id.
    Bridge(String),
    Host,
    None,
    /// Sharing another container's namespace: its name or id as given.
    Container(String),
}

/// What the create request asks of the container's endpoint.
#[derive(Debug, Default, Clone)]
pub struct EndpointRequest {
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    pub driver_opts: std::collections::BTreeMap<String, String>,
}

impl EndpointRequest {
    /// From an API `EndpointSettings` document (of a create's `NetworkingConfig` or of a
    /// `network connect`).
    pub fn from_settings(ep: &serde_json::Value) -> Result<Self, NetworkError> {
        use serde_json::Value;
        let mut out = EndpointRequest::default();
        if let Some(ip) = ep.pointer("/IPAMConfig/IPv4Address").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            out.ip = Some(ip.parse().map_err(|_| NetworkError::Invalid(format!("invalid IPv4 address: {ip}")))?);
        }
        if let Some(a) = ep.get("Aliases").and_then(Value::as_array) {
            out.aliases = a.iter().filter_map(Value::as_str).map(String::from).collect();
        }
        out.mac = ep.get("MacAddress").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        if let Some(o) = ep.get("DriverOpts").and_then(Value::as_object) {
            for (k, v) in o {
                let v = v.as_str().ok_or_else(|| NetworkError::Invalid(format!("DriverOpts {k:?}: the value must be a string")))?;
                out.driver_opts.insert(k.clone(), v.to_string());
            }
        }
        Ok(out)
    }
}

/// An address handed out and not committed yet: commit it with the container.
#[derive(Debug)]
pub struct Allocation {
    pub endpoint: Endpoint,
    network: Network,
}

impl Networks {
    /// `HostConfig.NetworkMode` to a mode; "" and "default" mean the default bridge.
    pub fn mode(&self, network_mode: &str) -> Result<Mode, NetworkError> {
        match network_mode {
            "host" => Ok(Mode::Host),
            "none" => Ok(Mode::None),
            m if m.starts_with("container:") => {
                let target = &m["container:".len()..];
                if target.is_empty() {
                    return Err(NetworkError::Invalid("--network container: needs a container name or id".into()));
                }
                Ok(Mode::Container(target.to_string()))
            }
            "" | "default" => match self.inner.lock().unwrap().networks.values().find(|n| n.default) {
                Some(n) => Ok(Mode::Bridge(n.id.clone())),
                None => Ok(Mode::None),
            },
            name => Ok(Mode::Bridge(self.find(name)?.id)),
        }
    }

    /// Picks the container's address on `network` (the asked-for one, checked, or the next
    /// free one) and holds it in memory until [`Networks::commit_allocation`].
    pub fn allocate(&self, container: &ContainerId, network: &str, req: &EndpointRequest) -> Result<Allocation, NetworkError> {
        let mut inner = self.inner.lock().unwrap();
        let mut net = inner.find(network)?.clone();
        let pool = net.pool();
        let ip = match req.ip {
            Some(ip) => {
                if net.default {
                    return Err(NetworkError::Invalid("user specified IP address is supported on user defined networks only".into()));
                }
                pool.check_static(ip, &|a| inner.taken(&net.id, a)).map_err(|e| NetworkError::Invalid(e.to_string()))?;
                ip
            }
            None => {
                let ip = pool
                    .next_free(net.cursor, &|a| inner.taken(&net.id, a))
                    .map_err(|e| NetworkError::Conflict(format!("no address left on network {}: {e}", net.name)))?;
                net.cursor = Some(ip);
                ip
            }
        };
        let mac = match &req.mac {
            Some(m) => {
                parse_mac(m).map_err(|e| NetworkError::Invalid(e.to_string()))?;
                m.to_ascii_lowercase()
            }
            None => mac_for(ip),
        };
        if net.default && !req.aliases.is_empty() {
            return Err(NetworkError::Invalid("network-scoped aliases are supported for user-defined networks only".into()));
        }
        inner.pending.insert((net.id.clone(), ip));
        inner.networks.insert(net.id.clone(), net.clone());
        let endpoint = Endpoint {
            container: container.clone(),
            network: net.id.clone(),
            ip,
            mac,
            iface: 0,
            static_ip: req.ip.is_some(),
            aliases: req.aliases.clone(),
            ports: vec![],
            driver_opts: req.driver_opts.clone(),
        };
        Ok(Allocation { endpoint, network: net })
    }

    /// Writes the allocation (and the network's allocation cursor) in the caller's
    /// transaction: the container's commit.
    pub fn commit_allocation(&self, tx: &Txn<'_>, a: &Allocation) -> Result<()> {
        tx.put(&a.endpoint.key(), &a.endpoint)?;
        let latest = self.inner.lock().unwrap().networks.get(&a.network.id).cloned().unwrap_or_else(|| a.network.clone());
        tx.put(&latest.id, &latest)
    }

    /// After the commit (`committed`) or instead of it: the allocation leaves `pending`.
    pub fn settle_allocation(&self, a: Allocation, committed: bool) {
        let mut inner = self.inner.lock().unwrap();
        inner.pending.remove(&(a.endpoint.network.clone(), a.endpoint.ip));
        if committed {
            inner.endpoints.insert(a.endpoint.key(), a.endpoint);
        }
    }

    /// Deletes the container's endpoints in the caller's transaction (its removal).
    pub fn delete_endpoints(&self, tx: &Txn<'_>, c: &ContainerId) -> Result<()> {
        for e in self.endpoints_of(c) {
            tx.delete::<Endpoint>(&e.key())?;
        }
        Ok(())
    }

    /// After the removal committed: the addresses are free.
    pub fn forget(&self, c: &ContainerId) {
        let prefix = format!("{c}/");
        self.inner.lock().unwrap().endpoints.retain(|k, _| !k.starts_with(&prefix));
    }

    fn netns_path(&self, c: &ContainerId) -> PathBuf {
        netns::dir(&self.cfg.exec_root).join(c.as_str())
    }

    /// Start, before the runtime: the container's namespace with its interfaces, its host
    /// ports held, the rules in place. Returns the namespace to run the container in.
    /// On error everything made is taken down again.
    pub fn attach(&self, c: &ContainerId, names: Vec<String>, requests: &[PortRequest]) -> Result<PathBuf> {
        let r = self.attach_inner(c, names, requests);
        if r.is_err() {
            self.detach(c);
        }
        r
    }

    fn attach_inner(&self, c: &ContainerId, names: Vec<String>, requests: &[PortRequest]) -> Result<PathBuf> {
        let path = self.netns_path(c);
        netns::create(&path)?;
        let eps = self.endpoints_of(c);
        // Plugging an interface sets `lo` up in the same netlink session: alone only when
        // there is none (`--network none`).
        if eps.is_empty() {
            netlink::loopback_up(&path)?;
        }
        for (i, ep) in eps.iter().enumerate() {
            let ep = self.readdress(ep)?;
            self.plug(&ep, &path, i == 0)?;
        }
        crate::util::failpoint::hit("container.start.after-network");
        let mut inner = self.inner.lock().unwrap();
        let (maps, holds) = if eps.is_empty() { (vec![], vec![]) } else { self.bind_ports(&inner, c, requests)? };
        inner.active.insert(c.clone(), Active { names, ports: maps.clone(), _holds: holds });
        if let Err(e) = self.apply_rules(&inner) {
            inner.active.remove(c);
            return Err(e);
        }
        if let Some(first) = eps.first() {
            if first.ports != maps {
                let mut e = inner.endpoints.get(&first.key()).cloned().unwrap_or_else(|| first.clone());
                e.ports = maps;
                self.eps.put(&e.key(), &e).context("recording the published ports")?;
                inner.endpoints.insert(e.key(), e);
            }
        }
        Ok(path)
    }

    /// One interface: the endpoint's veth from its network's bridge into the namespace.
    /// The bridge is up already: made at `network create` and at daemon start.
    fn plug(&self, ep: &Endpoint, netns: &Path, primary: bool) -> Result<()> {
        let net = self.find(&ep.network)?;
        netlink::add_veth(&netlink::VethSpec {
            host: &ep.host_veth(),
            bridge: &net.bridge,
            netns,
            ifname: &format!("eth{}", ep.iface),
            mac: parse_mac(&ep.mac).unwrap_or([2, 0x42, 0, 0, 0, 0]),
            address: ep.ip,
            prefix: net.subnet.prefix(),
            gateway: (primary && !net.internal).then_some(net.gateway),
            mtu: net.mtu,
        })
    }

    /// `network connect`: a new endpoint (the next free `eth<n>`), plugged in at once when
    /// the container runs. The record commits first; a failed plug takes it back.
    pub fn connect(&self, c: &ContainerId, network: &str, req: &EndpointRequest, running: bool) -> Result<Endpoint> {
        let net = self.find(network)?;
        let eps = self.endpoints_of(c);
        if eps.iter().any(|e| e.network == net.id) {
            return Err(NetworkError::Conflict(format!("endpoint with name {} already exists in network {}", c.short(), net.name)).into());
        }
        let iface = (0..MAX_IFACES).find(|i| !eps.iter().any(|e| e.iface == *i)).ok_or_else(|| {
            NetworkError::Conflict(format!("container {} has the most networks berth gives one ({MAX_IFACES})", c.short()))
        })?;
        let mut a = self.allocate(c, &net.id, req)?;
        a.endpoint.iface = iface;
        let committed = self.store.write(|tx| self.commit_allocation(tx, &a));
        let ep = a.endpoint.clone();
        self.settle_allocation(a, committed.is_ok());
        committed.context("recording the endpoint")?;
        if running {
            let plugged = self.plug(&ep, &self.netns_path(c), eps.is_empty()).and_then(|_| self.apply_rules(&self.inner.lock().unwrap()));
            if let Err(e) = plugged {
                let _ = netlink::delete_link(None, &ep.host_veth());
                let _ = self.eps.delete(&ep.key());
                self.inner.lock().unwrap().endpoints.remove(&ep.key());
                return Err(e.context(format!("connecting {} to {}", c.short(), net.name)));
            }
        }
        tracing::info!(container = %c.short(), network = %net.name, ip = %ep.ip, "connected");
        Ok(ep)
    }

    /// `network disconnect`: the endpoint's record goes (its address is free), then its
    /// interface and rules.
    pub fn disconnect(&self, c: &ContainerId, network: &str) -> Result<()> {
        let net = self.find(network)?;
        let ep = self
            .endpoints_of(c)
            .into_iter()
            .find(|e| e.network == net.id)
            .ok_or_else(|| NetworkError::Conflict(format!("container {} is not connected to network {}", c.short(), net.name)))?;
        self.eps.delete(&ep.key()).context("removing the endpoint record")?;
        let mut inner = self.inner.lock().unwrap();
        inner.endpoints.remove(&ep.key());
        if inner.active.contains_key(c) {
            if let Err(e) = netlink::delete_link(None, &ep.host_veth()) {
                tracing::warn!(container = %c.short(), "deleting {}: {e:#}", ep.host_veth());
            }
            self.apply_rules(&inner)?;
        }
        tracing::info!(container = %c.short(), network = %net.name, "disconnected");
        Ok(())
    }

    /// An endpoint whose address no longer fits its network (the default bridge's `bip`
    /// changed) gets a new one.
    fn readdress(&self, ep: &Endpoint) -> Result<Endpoint> {
        let net = self.find(&ep.network)?;
        if net.subnet.is_host(ep.ip) && ep.ip != net.gateway {
            return Ok(ep.clone());
        }
        let a = self.allocate(
            &ep.container,
            &ep.network,
            &EndpointRequest { aliases: ep.aliases.clone(), driver_opts: ep.driver_opts.clone(), ..Default::default() },
        )?;
        let mut e = ep.clone();
        e.ip = a.endpoint.ip;
        e.mac = a.endpoint.mac.clone();
        let committed = self.store.write(|tx| {
            tx.put(&e.key(), &e)?;
            self.commit_allocation(tx, &a)
        });
        self.settle_allocation(a, false);
        committed?;
        tracing::warn!(container = %e.container.short(), old = %ep.ip, new = %e.ip, "address moved to the network's new subnet");
        self.inner.lock().unwrap().endpoints.insert(e.key(), e.clone());
        Ok(e)
    }

    /// Picks and holds the host ports. The previous run's ephemeral ports are tried first,
    /// so a restarted container keeps its ports when it can.
    fn bind_ports(
        &self,
        inner: &super::Inner,
        c: &ContainerId,
        requests: &[PortRequest],
    ) -> Result<(Vec<PortMap>, Vec<std::os::fd::OwnedFd>)> {
        let previous: Vec<PortMap> = inner.endpoints_of(c).first().map(|e| e.ports.clone()).unwrap_or_default();
        let used = |proto: Proto, port: u16, taken: &[PortMap]| {
            inner
                .active
                .iter()
                .filter(|(id, _)| *id != c)
                .flat_map(|(_, a)| a.ports.iter())
                .chain(taken)
                .any(|m| m.proto == proto && m.host_port == port)
        };
        let (lo, hi) = ports::ephemeral_range();
        let mut maps = Vec::new();
        let mut holds = Vec::new();
        for r in requests {
            let want = |p: u16| PortMap { proto: r.target.proto, container_port: r.target.port, host_ip: r.host_ip, host_port: p };
            let candidates: Box<dyn Iterator<Item = u16>> = match r.host_ports {
                Some((a, z)) => Box::new(a..=z),
                None => {
                    let prev =
                        previous.iter().find(|m| m.proto == r.target.proto && m.container_port == r.target.port).map(|m| m.host_port);
                    Box::new(prev.into_iter().chain(lo..=hi))
                }
            };
            let mut last_err = None;
            let mut got = None;
            for p in candidates {
                if used(r.target.proto, p, &maps) {
                    last_err = Some("port is already allocated to another container".to_string());
                    continue;
                }
                match ports::reserve(r.target.proto, r.host_ip, p) {
                    Ok(fd) => {
                        got = Some((p, fd));
                        break;
                    }
                    Err(e) => last_err = Some(e.to_string()),
                }
            }
            let Some((p, fd)) = got else {
                let ip = r.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
                let port = r.host_ports.map(|(a, z)| if a == z { a.to_string() } else { format!("{a}-{z}") }).unwrap_or_default();
                return Err(NetworkError::Conflict(format!(
                    "driver failed programming external connectivity: Bind for {ip}:{port} failed: {}",
                    last_err.unwrap_or_else(|| "no free port".into())
                ))
                .into());
            };
            maps.push(want(p));
            holds.push(fd);
        }
        Ok((maps, holds))
    }

    /// After the container exited, or to undo a start: rules, port holds, interfaces and
    /// the namespace go. Idempotent, and works from the id alone (recovery has no more).
    pub fn detach(&self, c: &ContainerId) {
        {
            let mut inner = self.inner.lock().unwrap();
            if inner.active.remove(c).is_some() {
                if let Err(e) = self.apply_rules(&inner) {
                    tracing::warn!(container = %c.short(), "updating the rules after the container left: {e:#}");
                }
            }
        }
        for i in 0..MAX_IFACES {
            let name = host_veth(c, i);
            if let Err(e) = netlink::delete_link(None, &name) {
                tracing::warn!(container = %c.short(), "deleting {name}: {e:#}");
            }
        }
        if let Err(e) = netns::remove(&self.netns_path(c)) {
            tracing::warn!(container = %c.short(), "{e:#}");
        }
    }

    /// At daemon start, after the containers were re-adopted: bridges up, ports of the
    /// running containers held again, rules re-created, DNS serving, and every veth,
    /// bridge and namespace that no record owns removed. Returns what it cleaned.
    pub fn restore(&self, running: &[(ContainerId, Vec<String>)]) -> Result<Vec<String>> {
        let mut actions = Vec::new();
        if self.cfg.net.ip_forward {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("enabling IPv4 forwarding (ip-forward)")?;
        }
        for n in self.list() {
            if let Err(e) = self.bring_up(&n) {
                tracing::error!(network = %n.name, "bringing up bridge {}: {e:#}", n.bridge);
            }
        }
        let mut inner = self.inner.lock().unwrap();
        for (c, names) in running {
            if !self.netns_path(c).exists() {
                continue; // host or container mode: nothing of its own
            }
            let ports = inner.endpoints_of(c).first().map(|e| e.ports.clone()).unwrap_or_default();
            let mut holds = Vec::new();
            for m in &ports {
                match ports::reserve(m.proto, m.host_ip, m.host_port) {
                    Ok(fd) => holds.push(fd),
                    Err(e) => tracing::warn!(container = %c.short(), port = m.host_port, "holding the published port again: {e}"),
                }
            }
            inner.active.insert(c.clone(), Active { names: names.clone(), ports, _holds: holds });
        }
        self.apply_rules(&inner)?;
        let networks: Vec<Network> = inner.networks.values().cloned().collect();
        for n in &networks {
            self.start_dns(&mut inner, n);
        }
        let owners: Vec<String> = inner.active.keys().map(|c| c.as_str()[..11].to_string()).collect();
        let bridges: Vec<String> = networks.iter().map(|n| n.bridge.clone()).collect();
        let active: Vec<String> = inner.active.keys().map(|c| c.to_string()).collect();
        drop(inner);
        let is_hex = |s: &str| s.len() >= 12 && s.bytes().all(|b| b.is_ascii_hexdigit());
        for link in netlink::link_names()? {
            let ours_veth = veth_owner(&link);
            let ours_bridge = link.strip_prefix(BRIDGE_PREFIX).is_some_and(is_hex);
            let owned = ours_veth.is_some_and(|o| owners.iter().any(|x| x == o)) || bridges.contains(&link);
            if (ours_veth.is_some() || ours_bridge) && !owned {
                netlink::delete_link(None, &link)?;
                actions.push(format!("deleted link {link} that no record owns"));
            }
        }
        if let Ok(dir) = std::fs::read_dir(netns::dir(&self.cfg.exec_root)) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !active.contains(&name) {
                    netns::remove(&e.path())?;
                    actions.push(format!("removed network namespace {name} of no running container"));
                }
            }
        }
        for a in &actions {
            tracing::warn!("reconcile: {a}");
        }
        Ok(actions)
    }
}
