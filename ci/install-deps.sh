#!/usr/bin/env bash
# Installs what berth needs on a bare Debian machine (run as root): the OCI runtime, the static
# busybox the test fixture is built from, and the tools the tests drive. Idempotent.
#
#   ci/install-deps.sh           what the default test run needs
#   ci/install-deps.sh --arm64   also the aarch64 cross toolchain (C compiler for ring, the musl
#                                target) and qemu-aarch64-static to run what it builds
#   ci/install-deps.sh --bench   also dockerd (Debian's docker.io), the benchmarks' baseline
#   ci/install-deps.sh --vm      also what the VM rig (tests/vm) needs: qemu-system (x86 and arm), kmod for
#                                modules.dep, cpio, and the LVM and thin-provisioning tools the
#                                guest runs from the host's tree
set -euo pipefail

arm64=0 bench=0 vm=0
for arg in "$@"; do
  case "$arg" in
    --arm64) arm64=1 ;;
    --bench) bench=1 ;;
    --vm) vm=1 ;;
    *) echo "ci/install-deps: unknown option $arg" >&2; exit 2 ;;
  esac
done

need=()
command -v runc >/dev/null || need+=(runc)
# nft: NAT, published ports and isolation; ip: the tests set up and look into their namespaces.
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
# iptables: the fallback where nftables is missing (its test runs the daemon without nft).
command -v iptables-restore >/dev/null || need+=(iptables)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || need+=(busybox-static)
command -v python3 >/dev/null || need+=(python3)
command -v file >/dev/null || need+=(file)
command -v curl >/dev/null || need+=(curl)
command -v skopeo >/dev/null || need+=(skopeo)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v docker >/dev/null || need+=(docker.io)
# docker-py: the remote-management test drives the daemon over mutual TLS with it.
python3 -c 'import docker' 2>/dev/null || need+=(python3-docker)
if [ $arm64 = 1 ]; then
  # ring includes <stdint.h> and friends: the arm64 C headers come with libc6-dev-arm64-cross.
  command -v aarch64-linux-gnu-gcc >/dev/null && [ -d /usr/aarch64-linux-gnu/include ] || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
fi
[ $bench = 1 ] && { command -v dockerd >/dev/null || need+=(docker.io); }
if [ $vm = 1 ]; then
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  # The arm64 guest, and readelf to check its root has every library its programs link.
  command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
  command -v readelf >/dev/null || need+=(binutils)
  command -v depmod >/dev/null || need+=(kmod)
  command -v cpio >/dev/null || need+=(cpio)
  command -v lvm >/dev/null || need+=(lvm2)
  command -v thin_check >/dev/null || need+=(thin-provisioning-tools)
  command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "ci/install-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # docker.io and lvm2 bring services we never start: keep package scripts from starting them.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if ! command -v cargo >/dev/null; then
  for c in "$HOME/.cargo/bin/cargo" /root/.cargo/bin/cargo; do
    [ -x "$c" ] && export PATH="$(dirname "$c"):$PATH" && break
  done
fi
command -v cargo >/dev/null || { echo "ci/install-deps: cargo not found; install a Rust toolchain (rustup) first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
# The static (musl) build: the product's form, and the init `--init` mounts into containers.
MUSL="$(uname -m)-unknown-linux-musl"
rustup target list --installed 2>/dev/null | grep -qx "$MUSL" || rustup target add "$MUSL" >/dev/null
if [ $arm64 = 1 ]; then
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-musl || rustup target add aarch64-unknown-linux-musl >/dev/null
fi
echo "ci/install-deps: ok (runc $(runc --version | head -1 | awk '{print $3}'), $(cargo --version))" >&2
