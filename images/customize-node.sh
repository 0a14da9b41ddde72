#!/bin/sh
# mmdebstrap --customize-hook for the node images (see build.sh); $1 is the
# root of the new file system. Makes systemd boot cleanly in a container:
# units that need real hardware, a console or a writable kernel are masked, so
# `systemctl is-system-running` reaches "running" instead of "degraded".
set -eu
root="$1"
for unit in \
    getty@tty1.service console-getty.service serial-getty@.service \
    systemd-firstboot.service systemd-remount-fs.service \
    systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-modules-load.service systemd-hwdb-update.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    dev-hugepages.mount dev-mqueue.mount proc-sys-fs-binfmt_misc.automount \
    systemd-binfmt.service systemd-pstore.service systemd-timesyncd.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer
do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Empty machine-id: systemd makes a fresh one at each boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# A node's /proc/sys is writable (the tests need its network settings, which
# belong to its own network namespace), but every key outside net.* is the
# machine's own, shared with the host. The sysctl.d files Debian ships set such
# keys (fs.protected_*, kernel.pid_max); they are masked, so that no boot of a
# test node changes a setting of the machine (tests/images.rs checks it).
for conf in "$root"/usr/lib/sysctl.d/*.conf; do
    [ -e "$conf" ] || continue
    ln -sf /dev/null "$root/etc/sysctl.d/$(basename "$conf")"
done
