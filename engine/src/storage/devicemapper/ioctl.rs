//! The device-mapper control interface: ioctls on `/dev/mapper/control`, with the structures
//! of the kernel's `include/uapi/linux/dm-ioctl.h` (interface version 4).
//!
//! Why not the `devicemapper` crate (Stratis): its -sys crate links libdevmapper (C, and in
//! Debian only for glibc) and runs bindgen (libclang) at build time, so it does not build for
//! the static aarch64-unknown-linux-musl binary. The ABI needed here is small and stable: one
//! fixed header, then target specs or a message, in one buffer.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;

const DM_IOCTL: u8 = 0xfd;
const HEADER: usize = 312;
const NAME_LEN: usize = 128;
const UUID_LEN: usize = 129;
const SPEC_LEN: usize = 40;
/// Room for what the kernel answers (a pool's status, the device list).
const BUFFER: usize = 16 * 1024;

const CMD_VERSION: u8 = 0;
const CMD_LIST_DEVICES: u8 = 2;
const CMD_DEV_CREATE: u8 = 3;
const CMD_DEV_REMOVE: u8 = 4;
const CMD_DEV_SUSPEND: u8 = 6;
const CMD_DEV_STATUS: u8 = 7;
const CMD_TABLE_LOAD: u8 = 9;
const CMD_TABLE_STATUS: u8 = 12;
const CMD_TARGET_MSG: u8 = 14;

const FLAG_SUSPEND: u32 = 1 << 1;
const FLAG_STATUS_TABLE: u32 = 1 << 4;
const FLAG_BUFFER_FULL: u32 = 1 << 8;
const FLAG_DEFERRED_REMOVE: u32 = 1 << 17;

/// A dm device: what DM_DEV_STATUS answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub major: u32,
    pub minor: u32,
    pub open_count: i32,
    pub deferred_remove: bool,
}

/// One line of a table: `start length target params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub start: u64,
    pub length: u64,
    pub kind: String,
    pub params: String,
}

pub struct Control {
    file: File,
}

impl Control {
    pub fn open() -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/mapper/control")
            .or_else(|_| {
                // Boards without udev may lack the node: devtmpfs names it the same; make it
                // from the misc device's numbers otherwise.
                make_control_node()?;
                std::fs::OpenOptions::new().read(true).write(true).open("/dev/mapper/control")
            })
            .context("opening /dev/mapper/control (is the dm-mod module loaded?)")?;
        let c = Control { file };
        let (v, _) = c.simple(CMD_VERSION, "", 0, &[])?;
        if v.version[0] != 4 {
            bail!("device-mapper interface version {}.{} is not 4.x", v.version[0], v.version[1]);
        }
        Ok(c)
    }

    /// One ioctl: `name` selects the device, `payload` follows the header. Answers the
    /// header and the data area the kernel filled.
    fn call(&self, cmd: u8, name: &str, h: Header, payload: &[u8]) -> Result<(Header, Vec<u8>)> {
        if name.len() >= NAME_LEN {
            bail!("device-mapper name {name:?} is too long");
        }
        let mut size = BUFFER.max((HEADER + payload.len() + 8).next_multiple_of(8));
        loop {
            // u64 words: the kernel reads 8-byte fields from the buffer.
            let mut words = vec![0u64; size / 8];
            // SAFETY: a u64 buffer viewed as bytes, same length, no other reference to it.
            let buf = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size) };
            Header { version: [4, 0, 0], data_size: size as u32, data_start: HEADER as u32, ..h.clone() }.write(buf, name);
            buf[HEADER..HEADER + payload.len()].copy_from_slice(payload);
            let request = nix::request_code_readwrite!(DM_IOCTL, cmd, HEADER);
            // SAFETY: the buffer is `size` bytes, as data_size tells the kernel, and lives
            // across the call; the kernel writes at most data_size bytes back.
            let rc = unsafe { nix::libc::ioctl(self.file.as_raw_fd(), request as _, buf.as_mut_ptr()) };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                return Err(anyhow::Error::new(err).context(format!("device-mapper {} {name:?}", cmd_name(cmd))));
            }
            let out = Header::read(buf);
            if out.flags & FLAG_BUFFER_FULL != 0 && size < 4 << 20 {
                size *= 4;
                continue;
            }
            let start = (out.data_start as usize).min(size);
            let end = (out.data_size as usize).clamp(start, size);
            return Ok((out, buf[start..end].to_vec()));
        }
    }

    fn simple(&self, cmd: u8, name: &str, flags: u32, payload: &[u8]) -> Result<(Header, Vec<u8>)> {
        self.call(cmd, name, Header { flags, ..Header::default() }, payload)
    }

    pub fn create(&self, name: &str, uuid: &str) -> Result<()> {
        if uuid.len() >= UUID_LEN {
            bail!("device-mapper uuid {uuid:?} is too long");
        }
        self.call(CMD_DEV_CREATE, name, Header { uuid: uuid.to_string(), ..Header::default() }, &[]).map(drop)
    }

    /// Loads `targets` as the device's inactive table; `resume` makes it live.
    pub fn load(&self, name: &str, targets: &[Target]) -> Result<()> {
        let mut payload = Vec::new();
        for t in targets {
            if t.kind.len() >= 16 {
                bail!("device-mapper target type {:?} is too long", t.kind);
            }
            let mut spec = vec![0u8; SPEC_LEN];
            spec[0..8].copy_from_slice(&t.start.to_ne_bytes());
            spec[8..16].copy_from_slice(&t.length.to_ne_bytes());
            spec[24..24 + t.kind.len()].copy_from_slice(t.kind.as_bytes());
            spec.extend_from_slice(t.params.as_bytes());
            spec.push(0);
            spec.resize(spec.len().next_multiple_of(8), 0);
            // In requests, `next` counts from the start of this spec.
            let next = spec.len() as u32;
            spec[20..24].copy_from_slice(&next.to_ne_bytes());
            payload.extend_from_slice(&spec);
        }
        self.call(CMD_TABLE_LOAD, name, Header { target_count: targets.len() as u32, ..Header::default() }, &payload).map(drop)
    }

    /// Suspends the device: in-flight I/O completes and a filesystem on it is frozen (synced),
    /// so what the device holds is what its users wrote. `resume` undoes it.
    pub fn suspend(&self, name: &str) -> Result<()> {
        self.simple(CMD_DEV_SUSPEND, name, FLAG_SUSPEND, &[]).map(drop)
    }

    /// Makes the loaded table live (resumes a suspended device).
    pub fn resume(&self, name: &str) -> Result<()> {
        self.simple(CMD_DEV_SUSPEND, name, 0, &[]).map(drop)
    }

    /// Removes the device; `deferred`: if it is open, the kernel removes it at its last close.
    pub fn remove(&self, name: &str, deferred: bool) -> Result<()> {
        self.simple(CMD_DEV_REMOVE, name, if deferred { FLAG_DEFERRED_REMOVE } else { 0 }, &[]).map(drop)
    }

    /// The device's numbers and open count, or None when there is no such device.
    pub fn info(&self, name: &str) -> Result<Option<DeviceInfo>> {
        match self.simple(CMD_DEV_STATUS, name, 0, &[]) {
            Ok((h, _)) => Ok(Some(DeviceInfo {
                major: ((h.dev >> 8) & 0xfff) as u32,
                minor: ((h.dev & 0xff) | ((h.dev >> 12) & 0xfff00)) as u32,
                open_count: h.open_count,
                deferred_remove: h.flags & FLAG_DEFERRED_REMOVE != 0,
            })),
            Err(e) if is_errno(&e, nix::libc::ENXIO) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The live table's status lines (`dmsetup status`).
    pub fn status(&self, name: &str) -> Result<Vec<Target>> {
        let (h, data) = self.simple(CMD_TABLE_STATUS, name, 0, &[])?;
        parse_specs(&data, h.target_count)
    }

    /// The live table (`dmsetup table`).
    pub fn table(&self, name: &str) -> Result<Vec<Target>> {
        let (h, data) = self.simple(CMD_TABLE_STATUS, name, FLAG_STATUS_TABLE, &[])?;
        parse_specs(&data, h.target_count)
    }

    /// Sends a message to the device's target at sector 0 (thin-pool: create_thin ...).
    pub fn message(&self, name: &str, message: &str) -> Result<()> {
        let mut payload = vec![0u8; 8];
        payload.extend_from_slice(message.as_bytes());
        payload.push(0);
        self.simple(CMD_TARGET_MSG, name, 0, &payload).with_context(|| format!("message {message:?} to {name}")).map(drop)
    }

    /// Names of every dm device.
    pub fn list(&self) -> Result<Vec<String>> {
        let (_, data) = self.simple(CMD_LIST_DEVICES, "", 0, &[])?;
        let mut names = Vec::new();
        let mut off = 0usize;
        // struct dm_name_list { u64 dev; u32 next; char name[]; }
        while off + 12 < data.len() {
            let dev = u64::from_ne_bytes(data[off..off + 8].try_into().unwrap_or_default());
            let next = u32::from_ne_bytes(data[off + 8..off + 12].try_into().unwrap_or_default()) as usize;
            if dev == 0 && next == 0 && names.is_empty() {
                break;
            }
            names.push(cstr(&data[off + 12..]));
            if next == 0 {
                break;
            }
            off += next;
        }
        Ok(names)
    }
}

fn parse_specs(data: &[u8], count: u32) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    for _ in 0..count {
        if off + SPEC_LEN > data.len() {
            bail!("device-mapper status truncated");
        }
        let s = &data[off..];
        let start = u64::from_ne_bytes(s[0..8].try_into()?);
        let length = u64::from_ne_bytes(s[8..16].try_into()?);
        let next = u32::from_ne_bytes(s[20..24].try_into()?) as usize;
        out.push(Target { start, length, kind: cstr(&s[24..40]), params: cstr(&s[SPEC_LEN..]) });
        if next == 0 {
            break;
        }
        // In answers, `next` counts from the start of the data area.
        off = next;
    }
    Ok(out)
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub fn is_errno(e: &anyhow::Error, errno: i32) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().and_then(|io| io.raw_os_error()) == Some(errno))
}

fn cmd_name(cmd: u8) -> &'static str {
    match cmd {
        CMD_VERSION => "version",
        CMD_LIST_DEVICES => "list",
        CMD_DEV_CREATE => "create",
        CMD_DEV_REMOVE => "remove",
        CMD_DEV_SUSPEND => "suspend/resume",
        CMD_DEV_STATUS => "info",
        CMD_TABLE_LOAD => "load",
        CMD_TABLE_STATUS => "status",
        CMD_TARGET_MSG => "message",
        _ => "ioctl",
    }
}

fn make_control_node() -> std::io::Result<()> {
    let misc = std::fs::read_to_string("/proc/misc")?;
    let minor = misc
        .lines()
        .find_map(|l| l.trim().strip_suffix(" device-mapper").and_then(|n| n.trim().parse::<u64>().ok()))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no device-mapper in /proc/misc"))?;
    std::fs::create_dir_all("/dev/mapper")?;
    nix::sys::stat::mknod(
        "/dev/mapper/control",
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(10, minor),
    )
    .map_err(std::io::Error::from)
}

/// struct dm_ioctl, the fields berth reads and writes.
#[derive(Clone, Default, Debug)]
struct Header {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    dev: u64,
    uuid: String,
}

impl Header {
    fn write(&self, buf: &mut [u8], name: &str) {
        for (i, v) in self.version.iter().enumerate() {
            buf[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        buf[12..16].copy_from_slice(&self.data_size.to_ne_bytes());
        buf[16..20].copy_from_slice(&self.data_start.to_ne_bytes());
        buf[20..24].copy_from_slice(&self.target_count.to_ne_bytes());
        buf[28..32].copy_from_slice(&self.flags.to_ne_bytes());
        buf[48..48 + name.len()].copy_from_slice(name.as_bytes());
        let u = 48 + NAME_LEN;
        buf[u..u + self.uuid.len()].copy_from_slice(self.uuid.as_bytes());
    }

    fn read(buf: &[u8]) -> Header {
        let u32_at = |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
        Header {
            version: [u32_at(0), u32_at(4), u32_at(8)],
            data_size: u32_at(12),
            data_start: u32_at(16),
            target_count: u32_at(20),
            open_count: u32_at(24) as i32,
            flags: u32_at(28),
            dev: u64::from_ne_bytes(buf[40..48].try_into().unwrap_or_default()),
            uuid: cstr(&buf[48 + NAME_LEN..48 + NAME_LEN + UUID_LEN]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_specs_parse_as_the_kernel_lays_them_out() {
        let mut data = vec![0u8; SPEC_LEN];
        data[8..16].copy_from_slice(&2048u64.to_ne_bytes());
        data[24..33].copy_from_slice(b"thin-pool");
        data.extend_from_slice(b"1 10/256 20/1024 - rw discard_passdown\0");
        let t = parse_specs(&data, 1).unwrap();
        assert_eq!(
            t,
            vec![Target { start: 0, length: 2048, kind: "thin-pool".into(), params: "1 10/256 20/1024 - rw discard_passdown".into() }]
        );
        assert!(parse_specs(&data[..20], 1).is_err());
    }

    #[test]
    fn the_header_round_trips_its_fields_at_the_kernels_offsets() {
        let mut buf = vec![0u8; HEADER];
        let h = Header {
            version: [4, 1, 2],
            data_size: 4096,
            data_start: 312,
            target_count: 3,
            flags: FLAG_DEFERRED_REMOVE,
            ..Header::default()
        };
        h.write(&mut buf, "berth-pool");
        assert_eq!(&buf[48..58], b"berth-pool");
        let r = Header::read(&buf);
        assert_eq!((r.version, r.data_size, r.data_start, r.target_count, r.flags), ([4, 1, 2], 4096, 312, 3, FLAG_DEFERRED_REMOVE));
    }
}
