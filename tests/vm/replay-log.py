#!/usr/bin/env python3
"""Replays a dm-log-writes log (the kernel's Documentation/admin-guide/device-mapper/
log-writes.rst) onto an image, stopping at every flush and FUA write: the states a power cut
could leave the device in. At each one it copies the image and runs CHECK with the copy's path
appended; a failing check stops the replay.

    replay-log.py LOG_DEVICE IMAGE SIZE_BYTES --after-mark NAME --check 'sh check.sh'

Marks before --after-mark (written with `dmsetup message <dev> 0 mark NAME`) are replayed but
not checked: before it the device holds no filesystem yet.
"""
import argparse
import os
import shlex
import struct
import subprocess
import sys

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8
SUPER = struct.Struct("<QQQI")
ENTRY = struct.Struct("<QQQQ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("image")
    ap.add_argument("size", type=int)
    ap.add_argument("--after-mark", required=True)
    ap.add_argument("--check", required=True)
    a = ap.parse_args()

    log = open(a.log, "rb")
    magic, version, nr_entries, sectorsize = SUPER.unpack(log.read(SUPER.size))
    if magic != MAGIC or version != 1:
        sys.exit(f"replay-log: {a.log} is not a dm-log-writes log (magic {magic:#x}, version {version})")
    with open(a.image, "wb") as img:
        img.truncate(a.size)
    img = open(a.image, "r+b")
    checking = False
    checked = 0
    pos = sectorsize  # entries start at the log's second sector
    for i in range(nr_entries):
        log.seek(pos)
        header = log.read(sectorsize)
        sector, nr_sectors, flags, data_len = ENTRY.unpack_from(header)
        pos += sectorsize
        if flags & MARK:
            name = header[ENTRY.size:ENTRY.size + data_len].decode(errors="replace")
            if name == a.after_mark:
                checking = True
            continue
        if flags & DISCARD:
            img.seek(sector * 512)
            img.write(b"\0" * (nr_sectors * 512))
        elif nr_sectors:
            log.seek(pos)
            data = log.read(nr_sectors * 512)
            if len(data) != nr_sectors * 512:
                sys.exit(f"replay-log: entry {i}: the log is truncated")
            img.seek(sector * 512)
            img.write(data)
            pos += -(-nr_sectors * 512 // sectorsize) * sectorsize
        if checking and flags & (FLUSH | FUA):
            img.flush()
            os.fsync(img.fileno())
            checked += 1
            r = subprocess.run(shlex.split(a.check) + [a.image, str(checked)])
            if r.returncode != 0:
                sys.exit(f"replay-log: the check failed at flush mark {checked} (log entry {i} of {nr_entries})")
    print(f"replay-log: {nr_entries} log entries, {checked} flush/FUA marks checked")


if __name__ == "__main__":
    main()
