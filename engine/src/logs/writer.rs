//! Writing json-file logs, with rotation. Used by the monitor: synchronous, no allocation
//! beyond one line's buffer. Lines are not fsynced one by one: on flash that would wear the
//! device out for little gain; the file is synced when the container exits.

use super::{rotated, Entry, MAX_LINE};
use crate::config::LogLimits;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct JsonFileWriter {
    path: PathBuf,
    file: File,
    size: u64,
    limits: LogLimits,
    /// Written since the last sync?
    dirty: bool,
}

impl JsonFileWriter {
    pub fn open(path: &Path, limits: LogLimits) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonFileWriter { path: path.to_path_buf(), file, size, limits, dirty: false })
    }

    /// Writes one record for `line` (which keeps its trailing newline, if any).
    pub fn write(&mut self, stream: &str, line: &[u8], time: &str) -> io::Result<()> {
        let entry = Entry { log: String::from_utf8_lossy(line).into_owned(), stream: stream.into(), time: time.into() };
        let mut buf = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        buf.push(b'\n');
        if let Some(max) = self.limits.max_size {
            if self.size > 0 && self.size + buf.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.limits.max_file;
        if keep <= 1 {
            self.file.set_len(0)?;
        } else {
            for n in (1..keep - 1).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
            self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }

    /// Makes what was written durable; nothing to do when nothing was written.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_all()?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Cuts a byte stream into lines for the log, a partial record every [`MAX_LINE`] bytes.
#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`, calling `emit` for each complete (or over-long) line.
    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            emit(&self.buf[start..start + nl + 1]);
            start += nl + 1;
        }
        while self.buf.len() - start >= MAX_LINE {
            emit(&self.buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.buf.drain(..start);
    }

    /// Emits what is left (a last line without newline).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_long_partials() {
        let mut s = LineSplitter::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        s.feed(b"a\nb", &mut |l| out.push(l.to_vec()));
        s.feed(b"c\n", &mut |l| out.push(l.to_vec()));
        assert_eq!(out, vec![b"a\n".to_vec(), b"bc\n".to_vec()]);
        out.clear();
        s.feed(&vec![b'x'; MAX_LINE + 3], &mut |l| out.push(l.to_vec()));
        s.flush(&mut |l| out.push(l.to_vec()));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].len(), 3);
    }

    #[test]
    fn rotates_and_keeps_max_file() {
        let dir = std::env::temp_dir().join(format!("berth-logw-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c-json.log");
        let mut w = JsonFileWriter::open(&p, LogLimits { max_size: Some(200), max_file: 3 }).unwrap();
        for i in 0..40 {
            w.write("stdout", format!("line {i}\n").as_bytes(), "2024-01-01T00:00:00Z").unwrap();
        }
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists() && !rotated(&p, 3).exists());
        for f in super::super::files(&p, 3) {
            assert!(fs::metadata(&f).unwrap().len() <= 200);
        }
        let last = fs::read_to_string(&p).unwrap();
        assert!(last.contains("line 39"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
