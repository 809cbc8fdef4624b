SUMMARY = "Public keys berth trusts for signed application bundles"
DESCRIPTION = "Installs the bundle signing keys' public part (bundle.pub files written by \
               berth bundle keygen) into /etc/berth/trust/. Put the files in a bbappend's \
               files/ folder and name them in BERTH_TRUST_KEYS."
HOMEPAGE = "https://github.com/berth/berth"
SECTION = "console/utils"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COREBASE}/meta/COPYING.MIT;md5=3da9cfbcb788c80a0384361b4de20420"

BERTH_TRUST_KEYS ?= ""

SRC_URI = "file://README.trust \
           ${@' '.join('file://' + k for k in d.getVar('BERTH_TRUST_KEYS').split())} \
           "

inherit allarch

do_install() {
    install -d ${D}${sysconfdir}/berth/trust
    install -m 0644 ${UNPACKDIR}/README.trust ${D}${sysconfdir}/berth/trust/README
    for k in ${BERTH_TRUST_KEYS}; do
        install -m 0644 ${UNPACKDIR}/$k ${D}${sysconfdir}/berth/trust/$k
    done
}

FILES:${PN} += "${sysconfdir}/berth/trust"
