//! `top`: the processes of a container. Without ps arguments berth lists them itself, in the
//! columns of busybox `ps` (what a device without procps shows); with arguments it runs the
//! host's `ps` and keeps the container's rows, as Docker does.

use super::{ContainerError, Containers};
use crate::cgroups::Cgroup;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};

pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

impl Containers {
    pub async fn top(&self, name: &str, ps_args: &str) -> Result<Top> {
        let c = self.lookup(name)?.get();
        let Some(p) = c.state.process() else {
            return Err(ContainerError::Conflict(format!("Container {} is not running", c.id)).into());
        };
        let pids = tokio::task::spawn_blocking(move || Cgroup::of_pid(p.pid)?.procs()).await??;
        if ps_args.trim().is_empty() {
            return Ok(tokio::task::spawn_blocking(move || builtin(&pids)).await?);
        }
        let args: Vec<&str> = ps_args.split_whitespace().collect();
        let out = crate::util::command::run("ps", &args, std::time::Duration::from_secs(30))
            .await
            .map_err(|e| ContainerError::Invalid(format!("ps {ps_args}: {e:#}")))?;
        let pids: BTreeSet<i32> = pids.into_iter().collect();
        parse_ps(&String::from_utf8_lossy(&out), &pids).map_err(|e| ContainerError::Invalid(e.to_string()).into())
    }
}

/// `PID USER TIME COMMAND` rows read from `/proc`.
fn builtin(pids: &[i32]) -> Top {
    let users = passwd_names();
    let processes = pids
        .iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let uid: u32 = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command (which may hold spaces and parentheses).
            let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: u64 = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
            let secs = ticks / 100;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut command =
                cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(String::from_utf8_lossy).collect::<Vec<_>>().join(" ");
            if command.is_empty() {
                command = format!("[{}]", std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim());
            }
            let user = users.get(&uid).cloned().unwrap_or_else(|| uid.to_string());
            Some(vec![pid.to_string(), user, format!("{}:{:02}", secs / 60, secs % 60), command])
        })
        .collect();
    Top { titles: ["PID", "USER", "TIME", "COMMAND"].map(String::from).to_vec(), processes }
}

/// The host's user names (as the host's `ps` shows them).
fn passwd_names() -> BTreeMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// Docker's reading of `ps` output: titles from the first line, the last column takes the
/// rest of each row, rows kept when their PID is the container's.
fn parse_ps(out: &str, pids: &BTreeSet<i32>) -> Result<Top> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let titles: Vec<String> = lines.next().context("ps printed nothing")?.split_whitespace().map(String::from).collect();
    let pid_col = titles.iter().position(|t| t == "PID").context("Couldn't find PID field in ps output")?;
    let mut processes = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else { continue };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1].iter().map(|s| s.to_string()).collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_containers_rows_of_ps_output() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 /sbin/init splash\nroot          42       1  0 10:01 ?        00:00:00 sleep 60\n";
        let top = parse_ps(out, &[42].into_iter().collect()).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes, vec![vec!["root", "42", "1", "0", "10:01", "?", "00:00:00", "sleep 60"]]);
        assert!(parse_ps("USER COMMAND\nroot sh\n", &BTreeSet::new()).is_err());
    }

    #[test]
    fn lists_this_process_itself() {
        let top = builtin(&[std::process::id() as i32]);
        assert_eq!(top.titles, ["PID", "USER", "TIME", "COMMAND"]);
        assert_eq!(top.processes[0][0], std::process::id().to_string());
    }
}
