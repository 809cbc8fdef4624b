//! State store benchmark (run by tests/bench/run.sh): durable commit latency of a container
//! record (median, p99, one fsync'd redb transaction each) and the time to open the store and
//! load N container records, as the daemon does at start.
//!
//!   bench-store [DIR] [N]     (DIR on the data-root's filesystem; default: a temp dir; N=1000)

use berth::config::LogLimits;
use berth::containers::model::{Container, ContainerConfig, HostConfig, State};
use berth::state::Store;
use berth::util::id::ContainerId;
use berth_images::Digest;
use std::time::Instant;

fn record(i: usize) -> Container {
    let id = ContainerId::random().unwrap();
    let config: ContainerConfig = serde_json::from_value(serde_json::json!({
        "Image": "busybox", "Cmd": ["sh", "-c", "while true; do date; sleep 1; done"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1"],
        "Labels": {"org.berth.fixture": "busybox", "tier": "edge"}, "Hostname": &id.as_str()[..12],
    }))
    .unwrap();
    Container {
        name: format!("bench_{i}"),
        created: berth::util::time::now(),
        image_name: "busybox".into(),
        image_id: Digest::of(b"config"),
        layers: vec![Digest::of(b"layer")],
        config,
        host_config: HostConfig::default(),
        path: "sh".into(),
        args: vec!["-c".into(), "true".into()],
        state: State::Created,
        started_at: None,
        finished_at: None,
        restart_count: 0,
        log_path: format!("/var/lib/berth/containers/{id}/{id}-json.log").into(),
        log_limits: LogLimits { max_size: Some(10 << 20), max_file: 3 },
        umask: 0o027,
        runtime: "runc".into(),
        manually_stopped: false,
        hooks: Default::default(),
        id,
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("berth-bench-store-{}", std::process::id())));
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir)?;
        let c = store.collection::<Container>()?;
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let rec = record(i);
            let t = Instant::now();
            c.put(rec.id.as_str(), &rec)?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "bench: store commit (container record, durable)   median {:.3} ms   p99 {:.3} ms   ({n} commits)",
            lat[n / 2],
            lat[(n * 99) / 100]
        );
        println!("bench: store size with {n} container records     {:.2} MiB", store.size() as f64 / 1048576.0);
    }
    let mut open = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let store = Store::open(&dir)?;
        let all = store.collection::<Container>()?.list()?;
        assert_eq!(all.len(), n);
        open.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    open.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("bench: store open + load {n} container records    median {:.1} ms of 5   (target <= 50 ms)", open[2]);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
