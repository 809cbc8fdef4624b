SUMMARY = "berth and what it needs on a device"
DESCRIPTION = "The engine, its trusted bundle keys, and the storage tools of the chosen \
               driver: BERTH_STORAGE = overlay2 (default) or devicemapper (LVM and \
               thin-provisioning-tools for the direct-lvm thin pool)."
HOMEPAGE = "https://github.com/berth/berth"
SECTION = "console/utils"
LICENSE = "MIT"

inherit packagegroup

BERTH_STORAGE ?= "overlay2"

RDEPENDS:${PN} = "berth berth-trust runc-opencontainers \
                  ${@'e2fsprogs-mke2fs lvm2 thin-provisioning-tools' if d.getVar('BERTH_STORAGE') == 'devicemapper' else ''} \
                  "
