# The kernel options berth needs (the list `berth check-config` checks), for a distro that
# adds the `berth` override: DISTROOVERRIDES:append = ":berth" in its distro configuration.
FILESEXTRAPATHS:prepend:berth := "${THISDIR}/files:"
SRC_URI:append:berth = " file://berth.cfg"
