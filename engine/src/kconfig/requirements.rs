//! What berth needs from a kernel, one list: `berth check-config` checks it, and the Yocto
//! layer's kernel fragment (`yocto-layer/recipes-kernel/linux/files/berth.cfg`) is printed from
//! it (`berth check-config --fragment`; a test keeps the two equal).

/// How much berth depends on an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Without it no container runs.
    Required,
    /// One storage driver needs it; at least one driver must be complete.
    Storage(&'static str),
    /// A feature is off without it.
    Optional,
}

pub struct KernelOption {
    pub name: &'static str,
    pub need: Need,
    /// What goes missing without it.
    pub breaks: &'static str,
}

const fn req(name: &'static str, breaks: &'static str) -> KernelOption {
    KernelOption { name, need: Need::Required, breaks }
}
const fn opt(name: &'static str, breaks: &'static str) -> KernelOption {
    KernelOption { name, need: Need::Optional, breaks }
}
const fn storage(driver: &'static str, name: &'static str, breaks: &'static str) -> KernelOption {
    KernelOption { name, need: Need::Storage(driver), breaks }
}

pub const OPTIONS: &[KernelOption] = &[
    req("NAMESPACES", "no container isolation at all"),
    req("UTS_NS", "containers cannot have their own host name"),
    req("IPC_NS", "containers share the host's IPC"),
    req("PID_NS", "containers see the host's processes"),
    req("NET_NS", "no container networking"),
    req("CGROUPS", "no resource accounting or limits; runc refuses"),
    req("CGROUP_FREEZER", "pause/unpause, and runc's own freezing"),
    req("CGROUP_PIDS", "--pids-limit; runc expects the pids controller"),
    req("CGROUP_DEVICE", "device access control of containers (cgroup v1)"),
    req("CGROUP_BPF", "device access control of containers (cgroup v2)"),
    req("MEMCG", "memory limits and memory stats"),
    req("CGROUP_SCHED", "CPU shares and quotas"),
    req("CPUSETS", "--cpuset-cpus"),
    req("POSIX_MQUEUE", "POSIX message queues in containers"),
    req("KEYS", "runc's session keyrings"),
    req("UNIX98_PTYS", "terminals in containers (-t)"),
    req("VETH", "bridge networking (containers get no network but --network none)"),
    req("BRIDGE", "the default bridge network"),
    req("NETFILTER", "NAT, published ports, isolation between networks"),
    req("NF_TABLES", "NAT and published ports through nftables"),
    req("NF_NAT", "outgoing NAT and published ports"),
    req("NF_CONNTRACK", "NAT and published ports"),
    req("NFT_NAT", "published ports (DNAT)"),
    req("NFT_MASQ", "containers reaching outside (masquerade)"),
    req("NFT_CT", "berth's NAT rules (ct status)"),
    req("NFT_FIB_IPV4", "published ports reached on the host's own addresses"),
    req("BRIDGE_NETFILTER", "published ports between containers of one bridge"),
    storage("overlay2", "OVERLAY_FS", "the overlay2 storage driver"),
    storage("devicemapper", "BLK_DEV_DM", "the devicemapper storage driver (thin pools)"),
    storage("devicemapper", "DM_THIN_PROVISIONING", "the devicemapper storage driver (thin pools)"),
    storage("devicemapper", "EXT4_FS", "ext4 on thin devices (dm.fs=ext4, the default)"),
    opt("SECCOMP", "seccomp profiles (containers run without a syscall filter)"),
    opt("SECCOMP_FILTER", "seccomp profiles (containers run without a syscall filter)"),
    opt("USER_NS", "user namespaces (userns-remap)"),
    opt("BLK_CGROUP", "--blkio-weight and block I/O stats"),
    opt("CFS_BANDWIDTH", "--cpus and --cpu-quota"),
    opt("XFS_FS", "xfs on thin devices (dm.fs=xfs)"),
    opt("DM_LOG_WRITES", "the VM rig's write recording (tests only)"),
    opt("WATCHDOG", "the supervisor's hardware watchdog"),
    opt("SOFT_WATCHDOG", "a software watchdog where the board has none"),
    opt("IP_NF_IPTABLES", "the iptables fallback where nftables is missing"),
    opt("IP_NF_NAT", "the iptables fallback where nftables is missing"),
];

/// The Yocto kernel fragment: every option, built in or as a module.
pub fn fragment() -> String {
    let mut out = String::from("# berth's kernel options: printed by `berth check-config --fragment` from\n# engine/src/kconfig/requirements.rs (the list check-config checks)\n");
    for o in OPTIONS {
        out.push_str(&format!("CONFIG_{}=y\n", o.name));
    }
    out
}
