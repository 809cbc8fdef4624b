//! A layer tar kept as its layout ("tar-split"): every byte of the tar except the content of
//! the regular files, which is already on disk in the unpacked layer. With it a layer is
//! rebuilt byte for byte from its directory, so `save` and `push` reproduce the exact
//! `diff_id` the image's config names, without keeping a second copy of every layer.
//!
//! The [`Recorder`] sits between the decompressed layer stream and the unpacker and watches the
//! tar go by, one 512-byte block at a time; [`Rebuild`] reads a record back. Rebuilt content is
//! always hashed against the `diff_id` by the caller: a file changed on disk (or a tar that
//! wrote one path twice) is caught there, never passed on silently.
//!
//! Record format (gzip-compressed): the magic, then `R <u32 len> <bytes>` for raw tar bytes and
//! `F <u64 size> <u32 len> <path>` for file content read back from `<layer>/<path>`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const MAGIC: &[u8] = b"berth-tar-split\x01";
const BLOCK: usize = 512;
/// Extension headers (PAX, GNU long names) are small; a larger one is an attack on memory.
const MAX_META: usize = 1 << 20;
/// Raw bytes are written out in records of at most this size.
const RAW_CHUNK: usize = 64 * 1024;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

#[derive(Debug, Clone, Copy)]
enum Content {
    /// Kept in the record: metadata, content of non-regular entries, whiteouts.
    Raw,
    /// A regular file's content: on disk, not in the record.
    File,
    /// A PAX header (`x`) or GNU long name (`L`): kept, and read for the next entry's name/size.
    Meta(u8),
}

#[derive(Debug)]
enum State {
    Header {
        have: usize,
    },
    Content {
        left: u64,
        kind: Content,
        pad: u64,
    },
    Padding {
        left: u64,
    },
    /// After the first zero block: everything to the end is kept as it is.
    Trailer,
}

/// What an extension header says about the next entry.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

/// Watches a tar stream pass through (as a `Read` adapter) and writes its record to `out`.
pub struct Recorder<R, W: Write> {
    inner: R,
    out: W,
    state: State,
    block: [u8; BLOCK],
    raw: Vec<u8>,
    meta: Vec<u8>,
    pending: Pending,
    total: u64,
    files: u64,
}

/// What a recorded tar held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Bytes of the whole tar.
    pub tar_size: u64,
    /// Regular files whose content stays on disk.
    pub files: u64,
}

impl<R: Read, W: Write> Recorder<R, W> {
    pub fn new(inner: R, mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Recorder {
            inner,
            out,
            state: State::Header { have: 0 },
            block: [0; BLOCK],
            raw: Vec::new(),
            meta: Vec::new(),
            pending: Pending::default(),
            total: 0,
            files: 0,
        })
    }

    /// Reads what is left of the stream (a tar reader stops at the end-of-archive blocks),
    /// writes the last raw bytes and hands back the record's writer.
    pub fn finish(mut self) -> io::Result<(Summary, R, W)> {
        io::copy(&mut self, &mut io::sink())?;
        match self.state {
            State::Trailer | State::Header { have: 0 } => {}
            _ => return Err(invalid("the layer tar ends in the middle of an entry")),
        }
        self.flush_raw()?;
        Ok((Summary { tar_size: self.total, files: self.files }, self.inner, self.out))
    }

    fn flush_raw(&mut self) -> io::Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        self.out.write_all(b"R")?;
        self.out.write_all(&(self.raw.len() as u32).to_le_bytes())?;
        self.out.write_all(&self.raw)?;
        self.raw.clear();
        Ok(())
    }

    fn keep(&mut self, data: &[u8]) -> io::Result<()> {
        self.raw.extend_from_slice(data);
        if self.raw.len() >= RAW_CHUNK {
            self.flush_raw()?;
        }
        Ok(())
    }

    fn feed(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match &mut self.state {
                State::Trailer => {
                    let d = data;
                    data = &[];
                    self.keep(d)?;
                }
                State::Header { have } => {
                    let take = (BLOCK - *have).min(data.len());
                    self.block[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    let full = *have == BLOCK;
                    data = &data[take..];
                    if full {
                        self.header()?;
                    }
                }
                State::Content { left, kind, pad } => {
                    let take = (*left).min(data.len() as u64) as usize;
                    *left -= take as u64;
                    let (done, pad, kind) = (*left == 0, *pad, *kind);
                    let chunk = &data[..take];
                    data = &data[take..];
                    match kind {
                        Content::File => {}
                        Content::Raw => self.keep(chunk)?,
                        Content::Meta(_) => {
                            if self.meta.len() + chunk.len() > MAX_META {
                                return Err(invalid("a tar extension header is over 1 MiB"));
                            }
                            self.meta.extend_from_slice(chunk);
                            self.keep(chunk)?;
                        }
                    }
                    if done {
                        if let Content::Meta(t) = kind {
                            self.apply_meta(t);
                        }
                        self.state = if pad > 0 { State::Padding { left: pad } } else { State::Header { have: 0 } };
                    }
                }
                State::Padding { left } => {
                    let take = (*left).min(data.len() as u64) as usize;
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::Header { have: 0 };
                    }
                    let chunk = &data[..take];
                    data = &data[take..];
                    self.keep(chunk)?;
                }
            }
        }
        Ok(())
    }

    fn header(&mut self) -> io::Result<()> {
        let block = self.block;
        if block.iter().all(|b| *b == 0) {
            self.state = State::Trailer;
            return self.keep(&block);
        }
        let typ = block[156];
        let mut size = parse_numeric(&block[124..136])?;
        let kind = match typ {
            b'x' | b'L' => Content::Meta(typ),
            b'g' | b'K' => Content::Raw,
            _ => {
                let pending = std::mem::take(&mut self.pending);
                if let Some(s) = pending.size {
                    size = s;
                }
                let path = pending.path.unwrap_or_else(|| header_name(&block));
                let regular = matches!(typ, b'0' | 0 | b'7');
                match clean(&path) {
                    Some(rel) if regular && size > 0 && !is_whiteout(&rel) => {
                        self.keep(&block)?;
                        self.flush_raw()?;
                        self.out.write_all(b"F")?;
                        self.out.write_all(&size.to_le_bytes())?;
                        self.out.write_all(&(path.len() as u32).to_le_bytes())?;
                        self.out.write_all(&path)?;
                        self.files += 1;
                        self.state = State::Content { left: size, kind: Content::File, pad: padding(size) };
                        return Ok(());
                    }
                    _ => Content::Raw,
                }
            }
        };
        self.keep(&block)?;
        self.meta.clear();
        self.state = if size > 0 {
            State::Content { left: size, kind, pad: padding(size) }
        } else {
            if let Content::Meta(t) = kind {
                self.apply_meta(t);
            }
            State::Header { have: 0 }
        };
        Ok(())
    }

    fn apply_meta(&mut self, typ: u8) {
        let meta = std::mem::take(&mut self.meta);
        match typ {
            b'L' => self.pending.path = Some(meta.split(|b| *b == 0).next().unwrap_or_default().to_vec()),
            _ => {
                for (k, v) in pax_records(&meta) {
                    match k {
                        b"path" => self.pending.path = Some(v.to_vec()),
                        b"size" => self.pending.size = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()),
                        _ => {}
                    }
                }
            }
        }
    }
}

impl<R: Read, W: Write> Read for Recorder<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// A tar numeric field: octal text, or base-256 when the high bit of the first byte is set.
fn parse_numeric(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for b in &field[1..] {
            v = v.checked_mul(256).ok_or_else(|| invalid("tar size field overflows"))? | *b as u64;
        }
        return Ok(v);
    }
    let text = std::str::from_utf8(field).map_err(|_| invalid("tar size field is not text"))?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| invalid(format!("tar size field {text:?} is not octal")))
}

/// The name in a ustar/GNU header (prefix + name for POSIX ustar).
fn header_name(block: &[u8; BLOCK]) -> Vec<u8> {
    let cstr = |b: &[u8]| b.split(|c| *c == 0).next().unwrap_or_default().to_vec();
    let name = cstr(&block[0..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            let mut p = prefix;
            p.push(b'/');
            p.extend_from_slice(&name);
            return p;
        }
    }
    name
}

/// `len key=value\n` records of a PAX header.
fn pax_records(mut data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while let Some(sp) = data.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&data[..sp]).ok().and_then(|s| s.parse::<usize>().ok()) else { break };
        if len <= sp + 1 || len > data.len() {
            break;
        }
        let rec = &data[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        if let Some(eq) = rec.iter().position(|b| *b == b'=') {
            out.push((&rec[..eq], &rec[eq + 1..]));
        }
        data = &data[len..];
    }
    out
}

/// The entry's path as plain components; `None` for names the unpacker refuses or skips.
fn clean(raw: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn is_whiteout(rel: &Path) -> bool {
    rel.file_name().is_some_and(|n| n.as_bytes().starts_with(b".wh."))
}

/// Reads a recorded tar back, taking file content from the layer directory `root`.
pub struct Rebuild {
    record: BufReader<flate2::read::GzDecoder<File>>,
    root: PathBuf,
    raw_left: u64,
    file: Option<(File, u64, PathBuf)>,
}

impl Rebuild {
    pub fn open(p: &Path, root: &Path) -> io::Result<Self> {
        let f = File::open(p)?;
        let mut record = BufReader::new(flate2::read::GzDecoder::new(f));
        let mut magic = [0u8; MAGIC.len()];
        record.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(invalid(format!("{} is not a layer record", p.display())));
        }
        Ok(Rebuild { record, root: root.to_path_buf(), raw_left: 0, file: None })
    }

    /// The size of the tar the record rebuilds, read from the record alone.
    pub fn tar_size(record: &Path) -> io::Result<u64> {
        let mut r = Rebuild::open(record, Path::new("/nonexistent"))?;
        let mut total = 0;
        while let Some((tag, n)) = r.next_tag()? {
            total += n;
            if tag == b'R' {
                io::copy(&mut (&mut r.record).take(n), &mut io::sink())?;
            } else {
                let len = r.read_u32()? as u64;
                io::copy(&mut (&mut r.record).take(len), &mut io::sink())?;
            }
        }
        Ok(total)
    }

    fn read_u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.record.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The next record's tag and its byte count; `None` at the end.
    fn next_tag(&mut self) -> io::Result<Option<(u8, u64)>> {
        let mut tag = [0u8; 1];
        if self.record.read(&mut tag)? == 0 {
            return Ok(None);
        }
        match tag[0] {
            b'R' => Ok(Some((b'R', self.read_u32()? as u64))),
            b'F' => {
                let mut b = [0u8; 8];
                self.record.read_exact(&mut b)?;
                Ok(Some((b'F', u64::from_le_bytes(b))))
            }
            other => Err(invalid(format!("layer record is damaged (tag {other:#x})"))),
        }
    }

    fn open_file(&mut self, size: u64) -> io::Result<()> {
        let len = self.read_u32()? as usize;
        if len > 64 * 1024 {
            return Err(invalid("layer record is damaged (path too long)"));
        }
        let mut raw = vec![0u8; len];
        self.record.read_exact(&mut raw)?;
        let rel = clean(&raw).ok_or_else(|| invalid("layer record is damaged (bad path)"))?;
        let file = open_beneath(&self.root, &rel)?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() != size {
            return Err(invalid(format!("{} changed since the layer was unpacked ({} bytes, recorded {size})", rel.display(), meta.len())));
        }
        self.file = Some((file, size, rel));
        Ok(())
    }
}

impl Read for Rebuild {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((f, left, rel)) = &mut self.file {
                if *left == 0 {
                    self.file = None;
                    continue;
                }
                let want = (*left).min(buf.len() as u64) as usize;
                let n = f.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(invalid(format!("{} shrank while it was read", rel.display())));
                }
                *left -= n as u64;
                return Ok(n);
            }
            if self.raw_left > 0 {
                let want = self.raw_left.min(buf.len() as u64) as usize;
                let n = self.record.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(invalid("layer record is truncated"));
                }
                self.raw_left -= n as u64;
                return Ok(n);
            }
            match self.next_tag()? {
                None => return Ok(0),
                Some((b'R', n)) => self.raw_left = n,
                Some((_, size)) => self.open_file(size)?,
            }
        }
    }
}

/// Opens `root/rel` for reading without following any symlink on the way: a layer directory
/// is ours, but a symlink in it must never lead a rebuild out of it.
fn open_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let mut dir: OwnedFd = File::open(root)?.into();
    let parts: Vec<&OsStr> = rel.iter().collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | if last { OFlag::empty() } else { OFlag::O_DIRECTORY };
        let fd = openat(Some(dir.as_raw_fd()), *part, flags, Mode::empty())
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("opening {} in the layer: {e}", rel.display())))?;
        // SAFETY: openat just returned this descriptor and nothing else owns it.
        dir = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(File::from(dir))
}

/// Unpacks the layer tar read from `reader` into `root`, recording its layout to `out`, and
/// checks the whole stream (read to its end, trailing padding included) against `diff_id`.
/// Every way a layer enters the store goes through here.
pub fn apply_recorded<R: Read, W: Write>(
    reader: R,
    root: &Path,
    whiteouts: crate::unpack::Whiteouts,
    out: W,
    diff_id: &crate::Digest,
) -> anyhow::Result<crate::unpack::LayerStats> {
    let mut rec = Recorder::new(crate::digest::HashingReader::new(reader), out)?;
    let stats = crate::unpack::apply_layer(&mut rec, root, whiteouts)?;
    let (_, hashed, _) = rec.finish()?;
    let (got, _) = hashed.finish()?;
    anyhow::ensure!(&got == diff_id, "layer content has digest {got}, expected diff_id {diff_id}");
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{apply_layer, Whiteouts};
    use sha2::{Digest as _, Sha256};

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-split-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("root")).unwrap();
        d
    }

    /// Records `tar` while unpacking it, rebuilds it from the directory, and returns both.
    fn round_trip(name: &str, tar: &[u8]) -> (Vec<u8>, Summary) {
        let d = scratch(name);
        let rec = d.join("layer.split");
        let out = flate2::write::GzEncoder::new(File::create(&rec).unwrap(), flate2::Compression::fast());
        let mut r = Recorder::new(tar, out).unwrap();
        apply_layer(&mut r, &d.join("root"), Whiteouts::Apply).unwrap();
        let (summary, _, out) = r.finish().unwrap();
        out.finish().unwrap();
        assert_eq!(Rebuild::tar_size(&rec).unwrap(), tar.len() as u64);
        let mut back = Vec::new();
        Rebuild::open(&rec, &d.join("root")).unwrap().read_to_end(&mut back).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        (back, summary)
    }

    fn sample(long: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let deep = format!("{}/file.txt", "d".repeat(if long { 150 } else { 10 }));
        let mut add = |path: &str, data: &[u8], typ: tar::EntryType, link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(typ);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_size(data.len() as u64);
            match link {
                Some(l) => b.append_link(&mut h, path, l).unwrap(),
                None => b.append_data(&mut h, path, data).unwrap(),
            }
        };
        add("etc/", b"", tar::EntryType::Directory, None);
        add("etc/hostname", b"box\n", tar::EntryType::Regular, None);
        add("empty", b"", tar::EntryType::Regular, None);
        add(&deep, &vec![b'x'; 1500], tar::EntryType::Regular, None);
        add("etc/alias", b"", tar::EntryType::Link, Some("etc/hostname"));
        add("bin/sh", b"", tar::EntryType::Symlink, Some("/bin/busybox"));
        add("etc/.wh.gone", b"", tar::EntryType::Regular, None);
        let mut v = b.into_inner().unwrap();
        v.extend_from_slice(&[0u8; 4096]); // writers pad to their record size
        v
    }

    #[test]
    fn rebuilds_the_exact_tar() {
        let tar = sample(false);
        let (back, s) = round_trip("plain", &tar);
        assert_eq!(Sha256::digest(&back), Sha256::digest(&tar));
        assert_eq!(s, Summary { tar_size: tar.len() as u64, files: 2 });
    }

    #[test]
    fn rebuilds_gnu_long_names() {
        let tar = sample(true);
        assert!(tar.windows(13).any(|w| w == b"././@LongLink"), "the sample must use a GNU long name");
        let (back, _) = round_trip("long", &tar);
        assert!(back == tar);
    }

    #[test]
    fn rebuilds_pax_paths() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/f", "p".repeat(200));
        b.append_pax_extensions([("path", long.as_bytes())]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("short-name").unwrap();
        h.set_size(3);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &b"pax"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let (back, s) = round_trip("pax", &tar);
        assert!(back == tar);
        assert_eq!(s.files, 1);
    }

    #[test]
    fn a_file_changed_on_disk_is_an_error() {
        let d = scratch("changed");
        let tar = sample(false);
        let rec = d.join("layer.split");
        let out = flate2::write::GzEncoder::new(File::create(&rec).unwrap(), flate2::Compression::fast());
        let mut r = Recorder::new(&tar[..], out).unwrap();
        apply_layer(&mut r, &d.join("root"), Whiteouts::Apply).unwrap();
        r.finish().unwrap().2.finish().unwrap();
        std::fs::write(d.join("root/etc/hostname"), b"longer content\n").unwrap();
        let e = Rebuild::open(&rec, &d.join("root")).unwrap().read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("etc/hostname changed"), "{e}");
        // A symlink put where a directory was is not followed out of the layer.
        std::fs::remove_file(d.join("root/etc/hostname")).unwrap();
        std::fs::remove_dir_all(d.join("root/etc")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("root/etc")).unwrap();
        let e = Rebuild::open(&rec, &d.join("root")).unwrap().read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("opening etc/hostname"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_truncated_tar_is_refused() {
        let tar = sample(false);
        let mut r = Recorder::new(&tar[..700], Vec::new()).unwrap();
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert!(r.finish().is_err());
    }
}
