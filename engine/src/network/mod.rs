//! Networks: the default bridge and user-defined bridge networks, their durable address
//! allocations (endpoint records), container interfaces through netlink, NAT and published
//! ports through nftables, and the embedded DNS of user networks.
//!
//! Files: [`model`] (records), [`ipam`] (subnets, allocation), [`ports`] (published ports),
//! [`netlink`] (links, addresses, routes), [`netns`] (pinned namespaces), [`nft`] (rules),
//! [`dns`] (embedded DNS); `manage` (create/remove networks), `attach` (containers joining
//! and leaving: allocation at create, interfaces at start, teardown at exit, restore).

mod attach;
pub mod dns;
mod error;
pub mod files;
pub mod ipam;
mod iptables;
mod manage;
pub mod model;
mod netlink;
pub mod netns;
pub mod nft;
pub mod ports;

pub use attach::{Allocation, EndpointRequest, Mode};
pub use error::NetworkError;
pub use manage::CreateOptions;

use crate::config::DaemonConfig;
use crate::state::{Collection, Store};
use crate::util::id::ContainerId;
use anyhow::{Context, Result};
use model::{Endpoint, Network};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};

/// The default network's name, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";

pub struct Networks {
    cfg: Arc<DaemonConfig>,
    store: Store,
    nets: Collection<Network>,
    eps: Collection<Endpoint>,
    inner: Mutex<Inner>,
    upstreams: Arc<Vec<SocketAddr>>,
    firewall: Firewall,
    /// The rules last applied (none yet: the first apply at start always happens).
    applied: Mutex<Option<nft::Rules>>,
    /// Where the DNS servers run (absent offline, in `berth system check`).
    rt: Option<tokio::runtime::Handle>,
    me: Weak<Networks>,
}

/// Where the rules go.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Firewall {
    Nft,
    /// nftables is missing: the same rules through iptables.
    Iptables,
    /// `"iptables": false`: no rules at all.
    Off,
}

/// A running container's share of the network: what rules and DNS are made from.
struct Active {
    /// Container name and short id: the names the embedded DNS answers (with aliases).
    names: Vec<String>,
    /// Published ports as bound, on the container's first network.
    ports: Vec<ports::PortMap>,
    /// The sockets holding those host ports.
    _holds: Vec<OwnedFd>,
}

#[derive(Default)]
struct Inner {
    networks: BTreeMap<String, Network>,
    endpoints: BTreeMap<String, Endpoint>,
    /// Addresses handed to creates that have not committed yet.
    pending: BTreeSet<(String, Ipv4Addr)>,
    /// Names of networks being created.
    creating: BTreeSet<String>,
    active: BTreeMap<ContainerId, Active>,
    dns: BTreeMap<String, tokio::task::JoinHandle<()>>,
}

impl Inner {
    /// The container's endpoints, eth0 first.
    fn endpoints_of(&self, c: &ContainerId) -> Vec<Endpoint> {
        let prefix = format!("{c}/");
        let mut v: Vec<Endpoint> =
            self.endpoints.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(_, e)| e.clone()).collect();
        v.sort_by_key(|e| e.iface);
        v
    }

    fn taken(&self, net: &str, ip: Ipv4Addr) -> bool {
        self.pending.contains(&(net.to_string(), ip)) || self.endpoints.values().any(|e| e.network == net && e.ip == ip)
    }

    fn find(&self, name: &str) -> Result<&Network, NetworkError> {
        if let Some(n) = self.networks.get(name) {
            return Ok(n);
        }
        if let Some(n) = self.networks.values().find(|n| n.name == name) {
            return Ok(n);
        }
        let mut hits = self.networks.values().filter(|n| !name.is_empty() && n.id.starts_with(name));
        match (hits.next(), hits.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => Err(NetworkError::Ambiguous(name.to_string())),
            _ => Err(NetworkError::NotFound(name.to_string())),
        }
    }
}

impl Networks {
    /// Loads the records and brings the default network's record in line with the
    /// configuration (a changed `bip` is applied, not ignored). Blocking; call inside the
    /// runtime (the DNS servers run on it).
    pub fn open(cfg: Arc<DaemonConfig>, store: &Store) -> Result<Arc<Self>> {
        let nets: Collection<Network> = store.collection()?;
        let eps: Collection<Endpoint> = store.collection()?;
        let firewall = match (cfg.net.firewall, iptables::nft_works()) {
            (false, _) => Firewall::Off,
            (true, true) => Firewall::Nft,
            (true, false) => {
                tracing::warn!("nftables is not available: NAT and published ports go through iptables");
                Firewall::Iptables
            }
        };
        let mut inner = Inner::default();
        for (_, n) in nets.list()? {
            inner.networks.insert(n.id.clone(), n);
        }
        for (k, e) in eps.list()? {
            inner.endpoints.insert(k, e);
        }
        let this = Arc::new_cyclic(|me| Networks {
            cfg,
            store: store.clone(),
            nets,
            eps,
            inner: Mutex::new(inner),
            upstreams: Arc::new(dns::upstreams()),
            firewall,
            applied: Mutex::new(None),
            rt: tokio::runtime::Handle::try_current().ok(),
            me: me.clone(),
        });
        this.configure_default()?;
        Ok(this)
    }

    fn configure_default(&self) -> Result<()> {
        let net = &self.cfg.net;
        let mut inner = self.inner.lock().unwrap();
        let existing = inner.networks.values().find(|n| n.default).cloned();
        let Some(bridge) = net.bridge.clone() else {
            if let Some(old) = existing {
                if inner.endpoints.values().any(|e| e.network == old.id) {
                    tracing::warn!("\"bridge\": \"none\" is configured, but containers are still on the default network: kept");
                } else {
                    self.nets.delete(&old.id)?;
                    inner.networks.remove(&old.id);
                }
            }
            return Ok(());
        };
        let mut n = existing.clone().unwrap_or_else(|| Network {
            id: ContainerId::random().map(String::from).unwrap_or_default(),
            name: DEFAULT_NETWORK.into(),
            created: crate::util::time::now(),
            bridge: bridge.clone(),
            subnet: net.subnet,
            gateway: net.gateway,
            ip_range: None,
            icc: true,
            masquerade: true,
            internal: false,
            mtu: net.mtu,
            default: true,
            labels: Default::default(),
            options: Default::default(),
            cursor: None,
        });
        if n.bridge != bridge {
            tracing::warn!(old = %n.bridge, new = %bridge, "the default bridge was renamed in the configuration");
            let _ = netlink::delete_link(None, &n.bridge);
        }
        n.bridge = bridge;
        if n.subnet != net.subnet || n.gateway != net.gateway {
            tracing::warn!(old = %n.subnet, new = %net.subnet, "bip changed: the default bridge takes the new address; containers get new addresses at their next start");
        }
        n.subnet = net.subnet;
        n.gateway = net.gateway;
        n.ip_range = net.fixed_cidr;
        n.icc = net.icc;
        n.masquerade = net.ip_masq;
        n.mtu = net.mtu;
        if existing.as_ref().map(|e| format!("{e:?}")) != Some(format!("{n:?}")) {
            self.nets.put(&n.id, &n).context("recording the default network")?;
        }
        inner.networks.insert(n.id.clone(), n);
        Ok(())
    }

    /// A network by id, name or unique id prefix.
    pub fn find(&self, name: &str) -> Result<Network, NetworkError> {
        self.inner.lock().unwrap().find(name).cloned()
    }

    pub fn list(&self) -> Vec<Network> {
        let mut v: Vec<Network> = self.inner.lock().unwrap().networks.values().cloned().collect();
        v.sort_by(|a, b| a.created.cmp(&b.created));
        v
    }

    /// The container's endpoints, first network first.
    pub fn endpoints_of(&self, c: &ContainerId) -> Vec<Endpoint> {
        self.inner.lock().unwrap().endpoints_of(c)
    }

    /// The endpoints on a network.
    pub fn endpoints_on(&self, network: &str) -> Vec<Endpoint> {
        self.inner.lock().unwrap().endpoints.values().filter(|e| e.network == network).cloned().collect()
    }

    /// Whether the container's network is set up (it runs with interfaces and rules).
    pub fn is_active(&self, c: &ContainerId) -> bool {
        self.inner.lock().unwrap().active.contains_key(c)
    }

    /// The published ports of a running container.
    pub fn ports_of(&self, c: &ContainerId) -> Vec<ports::PortMap> {
        self.inner.lock().unwrap().active.get(c).map(|a| a.ports.clone()).unwrap_or_default()
    }

    /// The rule set the records call for.
    fn rules(inner: &Inner) -> nft::Rules {
        let mut rules = nft::Rules::default();
        for n in inner.networks.values() {
            // The veths matter only to isolate them (icc off); leaving them out otherwise
            // keeps the rule set unchanged when a container comes or goes.
            let ports = if n.icc {
                vec![]
            } else {
                inner
                    .endpoints
                    .values()
                    .filter(|e| e.network == n.id && inner.active.contains_key(&e.container))
                    .map(Endpoint::host_veth)
                    .collect()
            };
            rules.bridges.push(nft::BridgeRules {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                masquerade: n.masquerade,
                icc: n.icc,
                internal: n.internal,
                ports,
            });
        }
        for (c, a) in &inner.active {
            if let Some(ep) = inner.endpoints_of(c).first() {
                rules.publish.extend(a.ports.iter().map(|m| nft::Publish { map: *m, container_ip: ep.ip }));
            }
        }
        rules
    }

    /// Replaces berth's nftables tables with what the records say.
    /// Skipped when the rules would not change (a container that publishes nothing on a
    /// bridge with icc on): no `nft` process on such a start or exit.
    fn apply_rules(&self, inner: &Inner) -> Result<()> {
        let rules = Self::rules(inner);
        let mut applied = self.applied.lock().unwrap();
        if applied.as_ref() == Some(&rules) {
            return Ok(());
        }
        match self.firewall {
            Firewall::Off => {}
            Firewall::Nft => nft::apply(Some(&rules))?,
            Firewall::Iptables => iptables::apply(&rules)?,
        }
        *applied = Some(rules);
        Ok(())
    }
}
