//! NAT, published ports and isolation as nftables rules in two tables berth owns (`ip berth`
//! and `bridge berth`). The whole rule set is rendered from the records (networks and the
//! endpoints of running containers) and replaced in one `nft -f` transaction: applying it is
//! idempotent, start-up re-creates exactly what the records say, and a rule whose container
//! is gone cannot survive the next apply.

use super::ipam::Subnet;
use super::ports::PortMap;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

#[derive(Debug, PartialEq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Subnet,
    pub masquerade: bool,
    pub icc: bool,
    pub internal: bool,
    /// Host-side veths of running containers on this bridge.
    pub ports: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub struct Publish {
    pub map: PortMap,
    pub container_ip: Ipv4Addr,
}

#[derive(Debug, Default, PartialEq)]
pub struct Rules {
    pub bridges: Vec<BridgeRules>,
    pub publish: Vec<Publish>,
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

impl Rules {
    /// The script for `nft -f -`: drop berth's tables (created first so the delete cannot
    /// fail), then declare them anew.
    pub fn render(&self) -> String {
        let mut s = String::from("add table ip berth\ndelete table ip berth\nadd table bridge berth\ndelete table bridge berth\n");
        s.push_str("table ip berth {\n  chain publish {\n");
        for p in &self.publish {
            let m = &p.map;
            let daddr = m.host_ip.map(|ip| format!("ip daddr {ip} ")).unwrap_or_default();
            let proto = m.proto.as_str();
            let _ = writeln!(s, "    {daddr}{proto} dport {} dnat to {}:{}", m.host_port, p.container_ip, m.container_port);
        }
        s.push_str("  }\n");
        // Docker's "--dst-type LOCAL": addressed to this host, from outside or from itself.
        s.push_str("  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    fib daddr type local jump publish\n  }\n");
        s.push_str(
            "  chain output {\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump publish\n  }\n",
        );
        s.push_str("  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n");
        for b in &self.bridges {
            let (br, net) = (&b.bridge, b.subnet);
            if b.masquerade && !b.internal {
                let _ = writeln!(s, "    ip saddr {net} oifname != \"{br}\" masquerade");
            }
            // 127.0.0.1:port from the host, and a container's own or a neighbour's
            // published port (hairpin): the reply must come back through the host.
            let _ = writeln!(s, "    ip saddr 127.0.0.0/8 oifname \"{br}\" masquerade");
            let _ = writeln!(s, "    ct status dnat ip saddr {net} oifname \"{br}\" masquerade");
        }
        s.push_str("  }\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
        for b in self.bridges.iter().filter(|b| b.internal) {
            let br = &b.bridge;
            let _ = writeln!(s, "    iifname \"{br}\" oifname != \"{br}\" drop\n    oifname \"{br}\" iifname != \"{br}\" drop");
        }
        s.push_str("  }\n}\n");
        // Bridged frames between two ports never reach the ip family's hooks without
        // br_netfilter: isolation is enforced where they pass, in the bridge family.
        s.push_str("table bridge berth {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
        for b in self.bridges.iter().filter(|b| !b.icc && !b.ports.is_empty()) {
            let ports = quoted(&b.ports);
            let _ = writeln!(s, "    iifname {{ {ports} }} oifname {{ {ports} }} ether type {{ ip, ip6 }} drop");
        }
        s.push_str("  }\n}\n");
        s
    }
}

/// Replaces berth's tables with `rules` (or just removes them when `rules` is `None`).
pub fn apply(rules: Option<&Rules>) -> Result<()> {
    let script = match rules {
        Some(r) => r.render(),
        None => "add table ip berth\ndelete table ip berth\nadd table bridge berth\ndelete table bridge berth\n".into(),
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (nftables is needed for NAT and published ports; set \"iptables\": false to run without)")?;
    child.stdin.take().context("nft stdin")?.write_all(script.as_bytes()).context("writing the rule set to nft")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!("nft refused berth's rule set: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::Proto;

    #[test]
    fn renders_nat_publish_and_isolation() {
        let rules = Rules {
            bridges: vec![
                BridgeRules {
                    bridge: "berth0".into(),
                    subnet: "172.17.0.0/16".parse().unwrap(),
                    masquerade: true,
                    icc: false,
                    internal: false,
                    ports: vec!["vbaaa".into(), "vbbbb".into()],
                },
                BridgeRules {
                    bridge: "bn-1".into(),
                    subnet: "10.5.0.0/24".parse().unwrap(),
                    masquerade: true,
                    icc: true,
                    internal: true,
                    ports: vec![],
                },
            ],
            publish: vec![Publish {
                map: PortMap { proto: Proto::Tcp, container_port: 80, host_ip: Some(Ipv4Addr::LOCALHOST), host_port: 18080 },
                container_ip: "172.17.0.2".parse().unwrap(),
            }],
        };
        let s = rules.render();
        assert!(s.contains("ip daddr 127.0.0.1 tcp dport 18080 dnat to 172.17.0.2:80"), "{s}");
        assert!(s.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"), "{s}");
        assert!(!s.contains("ip saddr 10.5.0.0/24 oifname != \"bn-1\" masquerade"), "an internal network is masqueraded:\n{s}");
        assert!(s.contains("iifname \"bn-1\" oifname != \"bn-1\" drop"), "{s}");
        assert!(s.contains("iifname { \"vbaaa\", \"vbbbb\" } oifname { \"vbaaa\", \"vbbbb\" } ether type { ip, ip6 } drop"), "{s}");
        assert!(s.starts_with("add table ip berth\ndelete table ip berth\n"), "the old rules must go in the same transaction");
    }
}
