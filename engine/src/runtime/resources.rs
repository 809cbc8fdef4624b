//! Resource limits and the security options of `HostConfig`: checked at create (a bad value
//! is a 400 before anything exists), written into the runtime spec at start. The rules and
//! messages are Docker's.

use serde_json::{json, Map, Value};

const MIN_MEMORY: i64 = 4 * 1024 * 1024;

fn int(hc: &Map<String, Value>, key: &str) -> Option<i64> {
    hc.get(key).and_then(Value::as_i64)
}

fn text<'a>(hc: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    hc.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// CPUs of this host (what cpusets and `--cpus` are checked against).
fn host_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Parses a cpuset list ("0-2,4") into its members.
fn cpuset(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let bad = || format!("invalid cpuset value {s:?}");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Refuses what Docker refuses, with its messages.
pub fn validate(hc: &Map<String, Value>) -> Result<(), String> {
    if int(hc, "KernelMemory").unwrap_or(0) != 0 {
        return Err("Kernel memory limit is not supported: --kernel-memory is deprecated (the kernel dropped kmem accounting)".into());
    }
    let memory = int(hc, "Memory").unwrap_or(0);
    if memory < 0 || (memory > 0 && memory < MIN_MEMORY) {
        return Err("Minimum memory limit allowed is 4MB".into());
    }
    let reservation = int(hc, "MemoryReservation").unwrap_or(0);
    if reservation < 0 || (reservation > 0 && reservation < MIN_MEMORY) {
        return Err("Minimum memory reservation allowed is 4MB".into());
    }
    if memory > 0 && reservation > memory {
        return Err("Minimum memory limit can not be less than memory reservation limit, see usage".into());
    }
    let swap = int(hc, "MemorySwap").unwrap_or(0);
    if swap > 0 && memory == 0 {
        return Err("You should always set the Memory limit when using Memoryswap limit, see usage".into());
    }
    if swap > 0 && swap < memory {
        return Err("Minimum memoryswap limit should be larger than memory limit, see usage".into());
    }
    if let Some(s) = int(hc, "MemorySwappiness") {
        if s != -1 && !(0..=100).contains(&s) {
            return Err(format!("Invalid value: {s}, valid memory swappiness range is 0-100"));
        }
    }
    let nano = int(hc, "NanoCpus").unwrap_or(0);
    let cpus = host_cpus() as i64;
    if nano < 0 || nano > cpus * 1_000_000_000 {
        return Err(format!("Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"));
    }
    let (period, quota) = (int(hc, "CpuPeriod").unwrap_or(0), int(hc, "CpuQuota").unwrap_or(0));
    if nano > 0 && period > 0 {
        return Err("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
    }
    if nano > 0 && quota > 0 {
        return Err("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)".into());
    }
    if quota > 0 && quota < 1000 {
        return Err("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
    }
    if int(hc, "CpuShares").unwrap_or(0) < 0 {
        return Err("Invalid CPU shares: the value must not be negative".into());
    }
    if let Some(s) = text(hc, "CpusetCpus") {
        let want = cpuset(s)?;
        if want.iter().any(|c| *c >= cpus as usize) {
            return Err(format!("Requested CPUs are not available - requested {s}, available: 0-{}", cpus - 1));
        }
    }
    if let Some(s) = text(hc, "CpusetMems") {
        cpuset(s)?;
    }
    let weight = int(hc, "BlkioWeight").unwrap_or(0);
    if weight != 0 && !(10..=1000).contains(&weight) {
        return Err("Range of blkio weight is from 10 to 1000".into());
    }
    if let Some(o) = int(hc, "OomScoreAdj") {
        if !(-1000..=1000).contains(&o) {
            return Err(format!("Invalid value {o}, range for oom score adj is [-1000, 1000]"));
        }
    }
    if let Some(s) = int(hc, "ShmSize") {
        if s < 0 {
            return Err("SHM size can not be less than 0".into());
        }
    }
    for u in hc.get("Ulimits").and_then(Value::as_array).into_iter().flatten() {
        let name = u["Name"].as_str().unwrap_or("");
        if rlimit(name).is_none() {
            return Err(format!("invalid ulimit type: {name}"));
        }
        if u["Soft"].as_i64().unwrap_or(0) > u["Hard"].as_i64().unwrap_or(0) {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: {name}"));
        }
    }
    for (k, _) in hc.get("Sysctls").and_then(Value::as_object).into_iter().flatten() {
        let namespaced = k.starts_with("net.")
            || k.starts_with("fs.mqueue.")
            || [
                "kernel.msgmax",
                "kernel.msgmnb",
                "kernel.msgmni",
                "kernel.sem",
                "kernel.shmall",
                "kernel.shmmax",
                "kernel.shmmni",
                "kernel.shm_rmid_forced",
            ]
            .contains(&k.as_str());
        if !namespaced {
            return Err(format!("sysctl '{k}' is not allowed: it is not namespaced"));
        }
    }
    for opt in hc.get("SecurityOpt").and_then(Value::as_array).into_iter().flatten() {
        match opt.as_str().unwrap_or("") {
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {}
            "no-new-privileges:false" | "no-new-privileges=false" => {}
            "seccomp=unconfined" | "seccomp:unconfined" => {}
            o if o.starts_with("seccomp") => return Err(format!("security option {o:?}: seccomp profiles are not supported by berth yet")),
            o if o.starts_with("label") || o.starts_with("apparmor") => {}
            o => return Err(format!("Invalid --security-opt: {o:?}")),
        }
    }
    Ok(())
}

/// `RLIMIT_*` for a ulimit name.
fn rlimit(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        "as" => "RLIMIT_AS",
        _ => return None,
    })
}

/// Writes the limits into a spec (as JSON, before it is typed).
pub fn apply(spec: &mut Value, hc: &Map<String, Value>) {
    let r = &mut spec["linux"]["resources"];
    let mut memory = Map::new();
    if let Some(m) = int(hc, "Memory").filter(|m| *m > 0) {
        memory.insert("limit".into(), json!(m));
    }
    if let Some(m) = int(hc, "MemoryReservation").filter(|m| *m > 0) {
        memory.insert("reservation".into(), json!(m));
    }
    if let Some(m) = int(hc, "MemorySwap").filter(|m| *m != 0) {
        memory.insert("swap".into(), json!(m));
    }
    if let Some(s) = int(hc, "MemorySwappiness").filter(|s| *s >= 0) {
        memory.insert("swappiness".into(), json!(s));
    }
    if hc.get("OomKillDisable").and_then(Value::as_bool) == Some(true) {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        r["memory"] = Value::Object(memory);
    }
    let mut cpu = Map::new();
    if let Some(n) = int(hc, "NanoCpus").filter(|n| *n > 0) {
        // Docker's translation: a 100 ms period with the matching quota.
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(n / 10_000));
    }
    if let Some(p) = int(hc, "CpuPeriod").filter(|p| *p > 0) {
        cpu.insert("period".into(), json!(p));
    }
    if let Some(q) = int(hc, "CpuQuota").filter(|q| *q > 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(s) = int(hc, "CpuShares").filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s.max(2)));
    }
    if let Some(s) = text(hc, "CpusetCpus") {
        cpu.insert("cpus".into(), json!(s));
    }
    if let Some(s) = text(hc, "CpusetMems") {
        cpu.insert("mems".into(), json!(s));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = int(hc, "PidsLimit").filter(|p| *p > 0) {
        r["pids"] = json!({"limit": p});
    }
    if let Some(w) = int(hc, "BlkioWeight").filter(|w| *w > 0) {
        r["blockIO"] = json!({"weight": w});
    }
    if let Some(o) = int(hc, "OomScoreAdj") {
        spec["process"]["oomScoreAdj"] = json!(o);
    }
    let rlimits: Vec<Value> = hc
        .get("Ulimits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|u| Some(json!({"type": rlimit(u["Name"].as_str()?)?, "soft": u["Soft"].as_u64()?, "hard": u["Hard"].as_u64()?})))
        .collect();
    if !rlimits.is_empty() {
        spec["process"]["rlimits"] = json!(rlimits);
    }
    if let Some(s) = hc.get("Sysctls").and_then(Value::as_object).filter(|s| !s.is_empty()) {
        spec["linux"]["sysctl"] = Value::Object(s.clone());
    }
    for opt in hc.get("SecurityOpt").and_then(Value::as_array).into_iter().flatten() {
        if matches!(opt.as_str(), Some("no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true")) {
            spec["process"]["noNewPrivileges"] = json!(true);
        }
    }
    if let Some(size) = int(hc, "ShmSize").filter(|s| *s > 0) {
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
                m["options"] = json!(["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn refuses_out_of_range_values() {
        assert!(validate(&hc(json!({"Memory": 1024 * 1024}))).unwrap_err().contains("4MB"));
        assert!(validate(&hc(json!({"BlkioWeight": 5}))).unwrap_err().contains("10 to 1000"));
        assert!(validate(&hc(json!({"NanoCpus": 1_000_000_000i64 * 512}))).unwrap_err().contains("Range of CPUs"));
        assert!(validate(&hc(json!({"CpusetCpus": "0-511"}))).unwrap_err().contains("not available"));
        assert!(validate(&hc(json!({"KernelMemory": 8 * 1024 * 1024}))).is_err());
        assert!(validate(&hc(json!({"MemorySwap": 8 * 1024 * 1024}))).is_err());
        assert!(validate(&hc(json!({"Sysctls": {"kernel.panic": "1"}}))).is_err());
        assert!(validate(&hc(
            json!({"Memory": 8 * 1024 * 1024, "BlkioWeight": 500, "CpusetCpus": "0", "Sysctls": {"net.ipv4.ip_forward": "1"}})
        ))
        .is_ok());
    }

    #[test]
    fn writes_docker_shaped_limits() {
        let mut spec = json!({"process": {}, "linux": {"resources": {}}, "mounts": [{"destination": "/dev/shm", "options": []}]});
        apply(
            &mut spec,
            &hc(
                json!({"Memory": 8388608, "NanoCpus": 500_000_000, "PidsLimit": 10, "ShmSize": 1048576, "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}]}),
            ),
        );
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 8388608);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(spec["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert!(spec["mounts"][0]["options"].as_array().unwrap().contains(&json!("size=1048576")));
    }
}
