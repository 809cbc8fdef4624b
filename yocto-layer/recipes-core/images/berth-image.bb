SUMMARY = "An example device image that runs berth at boot"
DESCRIPTION = "A minimal system with berth, its trusted keys and the storage tools of \
               BERTH_STORAGE, started by systemd (socket activation, watchdog)."
HOMEPAGE = "https://github.com/berth/berth"
SECTION = "images"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_INSTALL:append = " packagegroup-berth"
# Containers need room; the data root lives on /var/lib/berth.
IMAGE_ROOTFS_EXTRA_SPACE = "1048576"
