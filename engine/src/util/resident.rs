//! Keeping a long-lived helper process small in memory.
//!
//! A monitor runs for the container's whole life, one per container, from the same binary as
//! the daemon. Starting it faults in far more of the binary's code than its steady loop
//! uses (argument parsing, set-up, the kernel's fault-around of 64 KiB at a time). Those
//! pages are clean copies of the file, shared with every other berth process, but they count
//! in each monitor's RSS until memory pressure takes them. Once set up, the monitor gives
//! them back; the few its loop needs come back one page at a time.

/// The executable mappings of this process's own binary: (start, length).
fn own_code(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let path = f.nth(3)?;
            // Only read-execute, never-written mappings: dropping a page of a written
            // (relocated, copied-on-write) mapping would lose what was written.
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
            Some((a, b.checked_sub(a)?))
        })
        .collect()
}

/// Drops this process's resident copies of its own code and turns off fault-around for it.
/// Best effort: a failure only leaves memory as it was.
pub fn release_startup_code() {
    let (Ok(maps), Ok(exe)) = (std::fs::read_to_string("/proc/self/maps"), std::fs::read_link("/proc/self/exe")) else { return };
    let Some(exe) = exe.to_str() else { return };
    for (start, len) in own_code(&maps, exe) {
        // SAFETY: the range is a whole mapping of this process's executable, read and
        // execute only and private: it was never written, so MADV_DONTNEED only drops clean
        // pages that fault back in unchanged from the same file (the mapping holds its inode).
        // MADV_RANDOM changes only how those faults read ahead.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_the_binarys_code() {
        let maps = "\
55d0a000-55d0b000 r--p 00000000 08:01 42 /usr/bin/berth
55d0b000-55d2b000 r-xp 00001000 08:01 42 /usr/bin/berth
55d2b000-55d2c000 rw-p 00021000 08:01 42 /usr/bin/berth
7f000000-7f001000 r-xp 00000000 08:01 43 /usr/lib/libc.so
7ffc0000-7ffc1000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(own_code(maps, "/usr/bin/berth"), vec![(0x55d0b000, 0x20000)]);
    }

    /// KiB of this process's own code that are resident (smaps' Rss of its r-xp mappings).
    fn resident_code_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap().display().to_string();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut total = 0;
        let mut ours = false;
        for l in smaps.lines() {
            if l.contains('-') && l.split_whitespace().count() >= 5 && !l.ends_with(" kB") {
                ours = l.contains(" r-xp ") && l.ends_with(&exe);
            } else if let (true, Some(v)) = (ours, l.strip_prefix("Rss:")) {
                total += v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0);
            }
        }
        total
    }

    #[test]
    fn dropping_the_code_shrinks_the_resident_set_and_the_process_runs_on() {
        let before = resident_code_kib();
        if before == 0 {
            // qemu-user (the aarch64 unit tests in CI) emulates smaps without residency.
            eprintln!("no resident-set figures for this process's code here: nothing to measure");
            return;
        }
        release_startup_code();
        let after = resident_code_kib();
        // Some code faults back in at once (this test's own), far less than was resident.
        assert!(after < before, "resident code {before} KiB before, {after} KiB after");
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
