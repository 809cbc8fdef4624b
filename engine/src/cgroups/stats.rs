//! One resource-usage sample of a container: its cgroups, the host's CPU time, and the
//! counters of its network namespace. `stats` takes one per second and reports the
//! difference between two for the CPU share.

use super::{read_keyed, read_u64, Cgroup};
use std::collections::BTreeMap;
use std::path::Path;

/// `USER_HZ`: the unit of `/proc/stat` and `cpuacct.stat` (100 on every Linux port).
const TICKS_PER_SEC: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / TICKS_PER_SEC;

#[derive(Debug, Default, Clone)]
pub struct Cpu {
    pub total_ns: u64,
    /// Per CPU (v1 only: v2 does not keep them).
    pub percpu_ns: Vec<u64>,
    pub user_ns: u64,
    pub system_ns: u64,
    /// CPU time of the whole host, all CPUs.
    pub host_ns: u64,
    pub online_cpus: u32,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Memory {
    pub usage: u64,
    pub max_usage: Option<u64>,
    /// The limit, or the host's memory when there is none.
    pub limit: u64,
    pub failcnt: Option<u64>,
    pub stats: BTreeMap<String, u64>,
}

/// One block-I/O counter: device, operation ("read", "write", ...), bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// One interface's counters from `/proc/<pid>/net/dev`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NetDev {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Sample {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
    pub blkio: Vec<BlkioEntry>,
    pub networks: BTreeMap<String, NetDev>,
}

/// Samples one run of a container: its cgroups are found once (the mount table and the
/// process's membership are read at creation), then each sample reads only the counters.
#[derive(Clone, Debug)]
pub struct Sampler {
    pub pid: i32,
    cg: Cgroup,
    /// The container has its own network namespace (with the host's, Docker reports no
    /// networks).
    own_network: bool,
}

impl Sampler {
    /// For the container whose init process is `pid`.
    pub fn new(pid: i32, own_network: bool) -> anyhow::Result<Self> {
        Ok(Sampler { pid, cg: Cgroup::of_pid(pid)?, own_network })
    }

    pub fn sample(&self) -> anyhow::Result<Sample> {
        let cg = &self.cg;
        // The process is gone: its counters are no longer this run's.
        anyhow::ensure!(std::path::Path::new(&format!("/proc/{}", self.pid)).exists(), "process {} is gone", self.pid);
        let mut s = Sample { cpu: cpu(cg), memory: memory(cg), ..Default::default() };
        if let Some(d) = cg.dir("pids") {
            s.pids_current = read_u64(d, "pids.current").unwrap_or(0);
            s.pids_limit = read_u64(d, "pids.max");
        }
        s.blkio = blkio(cg);
        if self.own_network {
            s.networks = std::fs::read_to_string(format!("/proc/{}/net/dev", self.pid)).map(|t| net_dev(&t)).unwrap_or_default();
        }
        Ok(s)
    }
}

fn host_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().find(|l| l.starts_with("cpu ")).unwrap_or("");
    // user, nice, system, idle, iowait, irq, softirq: the fields Docker sums.
    line.split_whitespace().skip(1).take(7).filter_map(|f| f.parse::<u64>().ok()).sum::<u64>() * NS_PER_TICK
}

fn cpu(cg: &Cgroup) -> Cpu {
    let mut c = Cpu {
        host_ns: host_cpu_ns(),
        online_cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        ..Default::default()
    };
    match cg {
        Cgroup::V1(_) => {
            if let Some(d) = cg.dir("cpuacct") {
                c.total_ns = read_u64(d, "cpuacct.usage").unwrap_or(0);
                c.percpu_ns = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                let st = read_keyed(d, "cpuacct.stat");
                c.user_ns = st.get("user").copied().unwrap_or(0) * NS_PER_TICK;
                c.system_ns = st.get("system").copied().unwrap_or(0) * NS_PER_TICK;
            }
            if let Some(d) = cg.dir("cpu") {
                let st = read_keyed(d, "cpu.stat");
                c.periods = st.get("nr_periods").copied().unwrap_or(0);
                c.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
                c.throttled_ns = st.get("throttled_time").copied().unwrap_or(0);
            }
        }
        Cgroup::V2(d) => {
            let st = read_keyed(d, "cpu.stat");
            let us = |k: &str| st.get(k).copied().unwrap_or(0) * 1000;
            c.total_ns = us("usage_usec");
            c.user_ns = us("user_usec");
            c.system_ns = us("system_usec");
            c.periods = st.get("nr_periods").copied().unwrap_or(0);
            c.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
            c.throttled_ns = us("throttled_usec");
        }
    }
    c
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn memory(cg: &Cgroup) -> Memory {
    let Some(d) = cg.dir("memory") else { return Memory::default() };
    let host = host_memory();
    let capped = |l: Option<u64>| l.filter(|l| *l < host).unwrap_or(host);
    match cg {
        Cgroup::V1(_) => Memory {
            usage: read_u64(d, "memory.usage_in_bytes").unwrap_or(0),
            max_usage: read_u64(d, "memory.max_usage_in_bytes"),
            limit: capped(read_u64(d, "memory.limit_in_bytes")),
            failcnt: read_u64(d, "memory.failcnt"),
            stats: read_keyed(d, "memory.stat"),
        },
        Cgroup::V2(_) => Memory {
            usage: read_u64(d, "memory.current").unwrap_or(0),
            max_usage: None,
            limit: capped(read_u64(d, "memory.max")),
            failcnt: None,
            stats: read_keyed(d, "memory.stat"),
        },
    }
}

fn blkio(cg: &Cgroup) -> Vec<BlkioEntry> {
    match cg {
        Cgroup::V1(_) => cg
            .dir("blkio")
            .and_then(|d| std::fs::read_to_string(d.join("blkio.throttle.io_service_bytes")).ok())
            .map(|t| blkio_v1(&t))
            .unwrap_or_default(),
        Cgroup::V2(d) => std::fs::read_to_string(Path::new(d).join("io.stat")).map(|t| io_v2(&t)).unwrap_or_default(),
    }
}

fn device(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `8:0 Read 4096` lines; the `Total` line is left out, as Docker does.
fn blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (major, minor) = device(f.next()?)?;
            let op = f.next()?.to_lowercase();
            Some(BlkioEntry { major, minor, op, value: f.next()?.parse().ok()? })
        })
        .collect()
}

/// `8:0 rbytes=4096 wbytes=0 rios=1 wios=0 ...` lines, as Docker reports them from v2.
fn io_v2(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(device) else { continue };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let op = match k {
                "rbytes" => "read",
                "wbytes" => "write",
                _ => continue,
            };
            if let Ok(value) = v.parse() {
                out.push(BlkioEntry { major, minor, op: op.into(), value });
            }
        }
    }
    out
}

/// Interfaces other than `lo` from `/proc/<pid>/net/dev`.
fn net_dev(text: &str) -> BTreeMap<String, NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            let v: Vec<u64> = rest.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            if name == "lo" || v.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                NetDev {
                    rx_bytes: v[0],
                    rx_packets: v[1],
                    rx_errors: v[2],
                    rx_dropped: v[3],
                    tx_bytes: v[8],
                    tx_packets: v[9],
                    tx_errors: v[10],
                    tx_dropped: v[11],
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_block_io_of_both_layouts() {
        let v1 = blkio_v1("8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\nTotal 4608\n");
        assert_eq!(v1[0], BlkioEntry { major: 8, minor: 0, op: "read".into(), value: 4096 });
        assert_eq!(v1.len(), 3);
        let v2 = io_v2("254:0 rbytes=8192 wbytes=1024 rios=2 wios=1 dbytes=0 dios=0\n");
        assert_eq!(
            v2,
            vec![
                BlkioEntry { major: 254, minor: 0, op: "read".into(), value: 8192 },
                BlkioEntry { major: 254, minor: 0, op: "write".into(), value: 1024 },
            ]
        );
    }

    #[test]
    fn reads_interfaces_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    2000      20    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n";
        let n = net_dev(text);
        assert_eq!(n.len(), 1);
        assert_eq!(
            n["eth0"],
            NetDev {
                rx_bytes: 2000,
                rx_packets: 20,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 3000,
                tx_packets: 30,
                tx_errors: 3,
                tx_dropped: 4
            }
        );
    }

    #[test]
    fn samples_this_process() {
        // Any process has cgroups; the sample must not fail on the host's layout.
        let s = Sampler::new(std::process::id() as i32, true).unwrap().sample().unwrap();
        assert!(s.cpu.host_ns > 0 && s.cpu.online_cpus > 0);
        assert!(s.memory.limit > 0);
    }
}
