//! Resolving `--user` (`name`, `uid`, `name:group`, `uid:gid`) against the container's own
//! `/etc/passwd` and `/etc/group`, as Docker does. Read from the mounted root filesystem, never
//! through a symlink that leaves it.

use anyhow::{bail, Result};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

fn read_db(rootfs: &Path, file: &str) -> String {
    let p = rootfs.join("etc").join(file);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => std::fs::read_to_string(&p).unwrap_or_default(),
        _ => String::new(),
    }
}

pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser> {
    let passwd = read_db(rootfs, "passwd");
    let group = read_db(rootfs, "group");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .find(|f| f[0] == user_part || (user_part.parse::<u32>().is_ok() && f[2] == user_part));
    let (uid, mut gid, home, name) = match (&entry, user_part.parse::<u32>()) {
        (Some(f), _) => (f[2].parse()?, f[3].parse()?, f[5].to_string(), Some(f[0].to_string())),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), None),
        (None, Err(_)) => bail!("unable to find user {user_part}: no matching entries in passwd file"),
    };
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .map(|f| f[2].parse())
                .transpose()?
                .ok_or_else(|| anyhow::anyhow!("unable to find group {g}: no matching entries in group file"))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4) {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser { uid, gid, additional_gids, home })
}

/// `--group-add`: group names or ids, names resolved in the container's `/etc/group`.
pub fn extra_groups(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>> {
    let db = read_db(rootfs, "group");
    groups
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => db
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| anyhow::anyhow!("Unable to find group {g}: no matching entries in group file")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_ids_and_groups() {
        let dir = std::env::temp_dir().join(format!("berth-user-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\npostgres:x:70:70::/var/lib/postgresql:/bin/sh\n").unwrap();
        std::fs::write(dir.join("etc/group"), "root:x:0:root\nwheel:x:10:root,postgres\npostgres:x:70:\n").unwrap();
        let r = resolve(&dir, "postgres").unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids.clone()), (70, 70, vec![10]));
        assert_eq!(resolve(&dir, "").unwrap().home, "/root");
        assert_eq!(resolve(&dir, "1234:wheel").unwrap(), ResolvedUser { uid: 1234, gid: 10, additional_gids: vec![], home: "/".into() });
        assert!(resolve(&dir, "nobody").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
