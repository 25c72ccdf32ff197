#!/usr/bin/env bash
# Installs the Debian packages the real-VM tests (npm run test:vm, npm run bench:vm) need, on top
# of scripts/install-test-deps.sh: libvirt's daemon (started by the test itself inside a network
# namespace, never as the machine's service), qemu, mmdebstrap and e2fsprogs to build the guest
# images, systemd-container for the real-systemd test, genisoimage for the benchmark's NoCloud seed,
# and an SSH client to read the guest's state. Needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
# policy-rc.d keeps the packages' maintainer scripts from starting libvirtd, virtlogd and the
# default network on the machine itself: the test starts its own daemon with private directories.
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    made_policy=yes
fi
trap '[ "$made_policy" = yes ] && rm -f "$policy"' EXIT
apt-get install -y --no-install-recommends \
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils \
    mmdebstrap e2fsprogs debian-archive-keyring systemd-container genisoimage \
    openssh-client dnsmasq-base iproute2 curl util-linux
# libvirt's qemu driver looks up its build-time default user (Debian's libvirt-qemu) before it
# reads qemu.conf, and refuses to start without it. libvirt-daemon-system would create it along
# with the machine's own daemon setup; only the account is needed here.
if ! getent passwd libvirt-qemu > /dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu
fi
