//! Links, addresses and routes through rtnetlink (no `ip` processes). Each call runs on a
//! short-lived thread with a one-thread runtime, inside the network namespace it is about:
//! a netlink socket belongs to the namespace it was opened in.

use super::netns;
use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs `f` with a netlink handle opened inside `ns` (the daemon's own when `None`).
fn with_handle<T, F, Fut>(ns: Option<&Path>, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    netns::run_in(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().context("starting a netlink runtime")?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
            let task = tokio::spawn(conn);
            let out = f(handle).await;
            task.abort();
            out
        })
    })
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.code.map(|c| -c.get()) == Some(errno))
}

async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    match h.link().get().match_name(name.to_string()).execute().try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("looking up link {name}")),
    }
}

fn name_of(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// What a bridge should look like.
pub struct BridgeSpec<'a> {
    pub name: &'a str,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
}

/// Creates the bridge if missing, and gives it exactly `address/prefix` (an old address from
/// an earlier `bip` goes), the MTU, and up.
pub fn ensure_bridge(b: &BridgeSpec<'_>) -> Result<()> {
    with_handle(None, |h| async move {
        let idx = match index_of(&h, b.name).await? {
            Some(i) => i,
            None => {
                h.link()
                    .add(LinkBridge::new(b.name).mtu(b.mtu).build())
                    .execute()
                    .await
                    .with_context(|| format!("creating bridge {}", b.name))?;
                index_of(&h, b.name).await?.with_context(|| format!("bridge {} vanished after creation", b.name))?
            }
        };
        let addrs: Vec<_> = h.address().get().set_link_index_filter(idx).execute().try_collect().await?;
        let mut have = false;
        for a in addrs {
            let ip = a.attributes.iter().find_map(|x| match x {
                rtnetlink::packet_route::address::AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if ip == Some(IpAddr::V4(b.address)) && a.header.prefix_len == b.prefix {
                have = true;
            } else if matches!(ip, Some(IpAddr::V4(_))) {
                h.address().del(a).execute().await.with_context(|| format!("removing an old address of {}", b.name))?;
            }
        }
        if !have {
            h.address()
                .add(idx, IpAddr::V4(b.address), b.prefix)
                .execute()
                .await
                .with_context(|| format!("adding {}/{} to {}", b.address, b.prefix, b.name))?;
        }
        h.link()
            .change(LinkUnspec::new_with_index(idx).mtu(b.mtu).up().build())
            .execute()
            .await
            .with_context(|| format!("setting {} up", b.name))?;
        Ok(())
    })
}

/// Deletes a link if it exists.
pub fn delete_link(ns: Option<&Path>, name: &str) -> Result<bool> {
    with_handle(ns, |h| async move {
        match index_of(&h, name).await? {
            Some(i) => match h.link().del(i).execute().await {
                Ok(()) => Ok(true),
                Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
                Err(e) => Err(e).with_context(|| format!("deleting link {name}")),
            },
            None => Ok(false),
        }
    })
}

/// Names of all links in the daemon's namespace.
pub fn link_names() -> Result<Vec<String>> {
    with_handle(None, |h| async move {
        let links: Vec<LinkMessage> = h.link().get().execute().try_collect().await.context("listing links")?;
        Ok(links.iter().filter_map(name_of).collect())
    })
}

/// One container interface: a veth pair, `host` on `bridge` in the daemon's namespace,
/// `ifname` inside the namespace at `netns`, addressed and routed.
pub struct VethSpec<'a> {
    pub host: &'a str,
    pub bridge: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub mac: [u8; 6],
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// The default route, unless the network is internal or this is not the first interface.
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u32,
}

pub fn add_veth(v: &VethSpec<'_>) -> Result<()> {
    let ns_file = std::fs::File::open(v.netns).with_context(|| format!("opening {}", v.netns.display()))?;
    let ns_fd = ns_file.as_raw_fd();
    with_handle(None, |h| async move {
        let bridge = index_of(&h, v.bridge).await?.with_context(|| format!("bridge {} does not exist", v.bridge))?;
        // The peer is made inside the container's namespace: it never appears in ours.
        let peer = LinkUnspec::new_with_name(v.ifname).address(v.mac.to_vec()).mtu(v.mtu).setns_by_fd(ns_fd).build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(rtnetlink::packet_route::link::InfoKind::Veth)
            .name(v.host.to_string())
            .mtu(v.mtu)
            .set_info_data(rtnetlink::packet_route::link::InfoData::Veth(rtnetlink::packet_route::link::InfoVeth::Peer(peer)))
            .build();
        h.link().add(veth).execute().await.with_context(|| format!("creating veth pair {} / {}", v.host, v.ifname))?;
        let idx = index_of(&h, v.host).await?.with_context(|| format!("veth {} vanished after creation", v.host))?;
        h.link()
            .change(LinkUnspec::new_with_index(idx).controller(bridge).up().build())
            .execute()
            .await
            .with_context(|| format!("attaching {} to {}", v.host, v.bridge))?;
        // Hairpin: a container can reach its own published port through the host.
        // RTM_NEWLINK without create flags (as `ip link set .. type bridge_slave`):
        // RTM_SETLINK ignores bridge port attributes.
        h.link()
            .change(LinkBridgePort::new(idx).hairpin(true).build())
            .execute()
            .await
            .with_context(|| format!("setting hairpin mode on {}", v.host))?;
        Ok(())
    })?;
    drop(ns_file);
    with_handle(Some(v.netns), |h| async move {
        if let Some(lo) = index_of(&h, "lo").await? {
            h.link().change(LinkUnspec::new_with_index(lo).up().build()).execute().await.context("setting lo up")?;
        }
        let idx = index_of(&h, v.ifname).await?.with_context(|| format!("{} is missing in the container", v.ifname))?;
        h.address()
            .add(idx, IpAddr::V4(v.address), v.prefix)
            .execute()
            .await
            .with_context(|| format!("adding {}/{} to {}", v.address, v.prefix, v.ifname))?;
        h.link()
            .change(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .with_context(|| format!("setting {} up", v.ifname))?;
        if let Some(gw) = v.gateway {
            h.route()
                .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(idx).build())
                .execute()
                .await
                .with_context(|| format!("adding the default route via {gw}"))?;
        }
        Ok(())
    })
}

/// Sets `lo` up in a namespace (`--network none` still has a loopback).
pub fn loopback_up(ns: &Path) -> Result<()> {
    with_handle(Some(ns), |h| async move {
        if let Some(lo) = index_of(&h, "lo").await? {
            h.link().change(LinkUnspec::new_with_index(lo).up().build()).execute().await.context("setting lo up")?;
        }
        Ok(())
    })
}
