//! The same rules as [`super::nft`] for machines without nftables: berth's own chains
//! (`BERTH-*`) in the `nat` and `filter` tables, jumped to from the built-in chains, and
//! replaced in one `iptables-restore --noflush` (declaring a chain there empties it first).
//! Isolation between containers on one bridge (`icc=false`) needs br_netfilter here, as
//! with Docker: bridged frames reach iptables only through it.

use super::nft::Rules;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// (table, built-in chain, berth's chain).
const JUMPS: &[(&str, &str, &str)] = &[
    ("nat", "PREROUTING", "BERTH-PREROUTING"),
    ("nat", "OUTPUT", "BERTH-OUTPUT"),
    ("nat", "POSTROUTING", "BERTH-POSTROUTING"),
    ("filter", "FORWARD", "BERTH-FORWARD"),
];

impl Rules {
    /// The input for `iptables-restore --noflush`.
    pub fn render_iptables(&self) -> String {
        let mut s =
            String::from("*nat\n:BERTH-PREROUTING - [0:0]\n:BERTH-OUTPUT - [0:0]\n:BERTH-POSTROUTING - [0:0]\n:BERTH-PUBLISH - [0:0]\n");
        s.push_str("-A BERTH-PREROUTING -m addrtype --dst-type LOCAL -j BERTH-PUBLISH\n");
        s.push_str("-A BERTH-OUTPUT -m addrtype --dst-type LOCAL -j BERTH-PUBLISH\n");
        for p in &self.publish {
            let m = &p.map;
            let daddr = m.host_ip.map(|ip| format!("-d {ip}/32 ")).unwrap_or_default();
            let proto = m.proto.as_str();
            let _ = writeln!(
                s,
                "-A BERTH-PUBLISH {daddr}-p {proto} -m {proto} --dport {} -j DNAT --to-destination {}:{}",
                m.host_port, p.container_ip, m.container_port
            );
        }
        for b in &self.bridges {
            let (br, net) = (&b.bridge, b.subnet);
            if b.masquerade && !b.internal {
                let _ = writeln!(s, "-A BERTH-POSTROUTING -s {net} ! -o {br} -j MASQUERADE");
            }
            let _ = writeln!(s, "-A BERTH-POSTROUTING -s 127.0.0.0/8 -o {br} -j MASQUERADE");
            let _ = writeln!(s, "-A BERTH-POSTROUTING -s {net} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE");
        }
        s.push_str("COMMIT\n*filter\n:BERTH-FORWARD - [0:0]\n");
        for b in &self.bridges {
            let br = &b.bridge;
            if b.internal {
                let _ = writeln!(s, "-A BERTH-FORWARD -i {br} ! -o {br} -j DROP\n-A BERTH-FORWARD -o {br} ! -i {br} -j DROP");
            }
            if !b.icc {
                let _ = writeln!(s, "-A BERTH-FORWARD -i {br} -o {br} -j DROP");
            }
        }
        s.push_str("COMMIT\n");
        s
    }
}

fn iptables(args: &[&str]) -> Result<bool> {
    let out = Command::new("iptables").args(args).stdout(Stdio::null()).stderr(Stdio::piped()).output().context("running iptables")?;
    Ok(out.status.success())
}

/// Replaces berth's chains with `rules` and makes sure the built-in chains jump to them.
pub fn apply(rules: &Rules) -> Result<()> {
    let mut child = Command::new("iptables-restore")
        .args(["--noflush", "-w"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running iptables-restore (neither nft nor iptables works here; set \"iptables\": false to run without rules)")?;
    child.stdin.take().context("iptables-restore stdin")?.write_all(rules.render_iptables().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("iptables-restore refused berth's rules: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    for (table, chain, ours) in JUMPS {
        if !iptables(&["-w", "-t", table, "-C", chain, "-j", ours])? && !iptables(&["-w", "-t", table, "-I", chain, "-j", ours])? {
            bail!("iptables: cannot add the jump from {table}/{chain} to {ours}");
        }
    }
    Ok(())
}

/// Whether nftables works here (the `nft` command and the kernel's nf_tables).
pub fn nft_works() -> bool {
    Command::new("nft").args(["list", "tables"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::nft::{BridgeRules, Publish};
    use crate::network::ports::{PortMap, Proto};

    #[test]
    fn renders_the_same_rules_for_iptables() {
        let rules = Rules {
            bridges: vec![BridgeRules {
                bridge: "berth0".into(),
                subnet: "172.17.0.0/16".parse().unwrap(),
                masquerade: true,
                icc: false,
                internal: false,
                ports: vec![],
            }],
            publish: vec![Publish {
                map: PortMap { proto: Proto::Udp, container_port: 53, host_ip: None, host_port: 5353 },
                container_ip: "172.17.0.2".parse().unwrap(),
            }],
        };
        let s = rules.render_iptables();
        assert!(s.contains("-A BERTH-PUBLISH -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.2:53"), "{s}");
        assert!(s.contains("-A BERTH-POSTROUTING -s 172.17.0.0/16 ! -o berth0 -j MASQUERADE"), "{s}");
        assert!(s.contains("-A BERTH-FORWARD -i berth0 -o berth0 -j DROP"), "{s}");
        assert_eq!(s.matches("COMMIT").count(), 2);
    }
}
