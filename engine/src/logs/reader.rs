//! Reading json-file logs: what exists (with `tail`, `since`, `until`), then following the
//! current file as it grows, across rotations.

use super::{files, Entry};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Which records a reader yields.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub stdout: bool,
    pub stderr: bool,
    /// Nanoseconds since the epoch.
    pub since: Option<i128>,
    pub until: Option<i128>,
}

impl Filter {
    pub fn accepts(&self, e: &Entry) -> bool {
        let stream_ok = match e.stream.as_str() {
            "stdout" => self.stdout,
            "stderr" => self.stderr,
            _ => false,
        };
        if !stream_ok {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let t = crate::util::time::parse(&e.time).map(|t| t.unix_timestamp_nanos()).unwrap_or(0);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// The current log file, held open, with the offset up to which records were returned.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    offset: u64,
    pending: Vec<u8>,
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    serde_json::from_slice(line).ok()
}

impl Follower {
    /// A follower that starts at the current end of the log (for `attach`).
    pub fn at_end(path: &Path) -> Self {
        let mut f = Follower { path: path.to_path_buf(), file: None, inode: 0, offset: 0, pending: Vec::new() };
        if let Ok(file) = File::open(path) {
            if let Ok(m) = file.metadata() {
                f.inode = m.ino();
                f.offset = m.len();
            }
            f.file = Some(file);
        }
        f
    }

    /// Reads the records appended since the last call.
    pub fn read_new(&mut self, out: &mut dyn FnMut(Entry)) -> io::Result<()> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => {
                    self.inode = f.metadata()?.ino();
                    self.offset = 0;
                    self.file = Some(f);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.drain(out)?;
        // Rotated (renamed away or truncated)? Finish the old file, then switch.
        let (cur_inode, cur_len) = match std::fs::metadata(&self.path) {
            Ok(m) => (m.ino(), m.len()),
            Err(_) => return Ok(()),
        };
        if cur_inode != self.inode {
            self.drain(out)?;
            self.file = None;
            self.pending.clear();
            return self.read_new(out);
        }
        if cur_len < self.offset {
            self.offset = 0;
            self.pending.clear();
        }
        Ok(())
    }

    /// Reads what was appended, a chunk at a time: a log can be far larger than the daemon's
    /// memory budget.
    fn drain(&mut self, out: &mut dyn FnMut(Entry)) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.offset += n as u64;
            self.pending.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
                if let Some(e) = parse_line(&self.pending[start..start + nl]) {
                    out(e);
                }
                start += nl + 1;
            }
            self.pending.drain(..start);
        }
    }
}

/// Reads the records that exist now, oldest first (the last `tail` of them, if given), and
/// returns a follower positioned right after them, so nothing is lost or repeated between
/// the two.
pub fn read_existing(path: &Path, max_file: u32, filter: &Filter, tail: Option<usize>, out: &mut dyn FnMut(Entry)) -> io::Result<Follower> {
    let mut ring: VecDeque<Entry> = VecDeque::new();
    let mut emit = |e: Entry, ring: &mut VecDeque<Entry>| {
        if !filter.accepts(&e) {
            return;
        }
        match tail {
            Some(0) => {}
            Some(n) => {
                if ring.len() == n {
                    ring.pop_front();
                }
                ring.push_back(e);
            }
            None => out(e),
        }
    };
    let all = files(path, max_file);
    let (older, current) = all.split_at(all.len() - 1);
    for p in older {
        if let Ok(f) = File::open(p) {
            for line in BufReader::new(f).split(b'\n') {
                if let Some(e) = parse_line(&line?) {
                    emit(e, &mut ring);
                }
            }
        }
    }
    let mut follower = Follower { path: current[0].clone(), file: None, inode: 0, offset: 0, pending: Vec::new() };
    follower.read_new(&mut |e| emit(e, &mut ring))?;
    for e in ring {
        out(e);
    }
    Ok(follower)
}
