#!/bin/bash
# PID 1 of the interop guest (baked into the image as /sbin/securenfs-interop-init).  Kept tiny
# on purpose: it only mounts the host's 9p share and hands over to the share's boot.sh, so the
# guest-side logic can change without rebuilding the image.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
halt_now() { echo "securenfs-interop-init: $*" > /dev/ttyS0; sync; echo o > /proc/sysrq-trigger; sleep 60; }
modprobe 9pnet_virtio && modprobe 9p || halt_now "9p modules missing"
mkdir -p /interop
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 interop /interop || halt_now "no 9p share"
[ -r /interop/boot.sh ] || halt_now "share has no boot.sh"
exec /bin/bash /interop/boot.sh
