#!/bin/bash
# Guest side of one run, exec'd by the image's init as PID 1.  Reads /interop/meta.env (host
# name, addresses, server names, clock), sets up a network with no route anywhere but the
# on-link host address, copies /interop/files over /, runs /interop/scenario.sh with the helpers
# of lib.sh, writes its output to /interop/out and its status to /interop/rc, powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/lock /var/lib/nfs
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
. /interop/meta.env
hostname "$INTEROP_HOSTNAME"
echo "$INTEROP_HOSTNAME" > /etc/hostname
{
    echo "127.0.0.1 localhost"
    echo "$INTEROP_GUEST_IP $INTEROP_HOSTNAME ${INTEROP_HOSTNAME%%.*}"
    [ -n "$INTEROP_SERVER_NAMES" ] && echo "$INTEROP_HOST_IP $INTEROP_SERVER_NAMES"
} > /etc/hosts
# The RTC qemu gives is the host's clock; correct it only when it is clearly wrong (Kerberos
# tolerates 5 minutes of skew; INTEROP_DATE is when the host prepared this run).
[ "$(date +%s)" -lt $((INTEROP_DATE - 60)) ] && date -s "@$INTEROP_DATE" > /dev/null
modprobe virtio_net
modprobe virtio_rng 2>/dev/null
ip link set lo up
ip addr add "$INTEROP_GUEST_IP/24" dev eth0 && ip link set eth0 up   # no gateway: on-link only
[ -d /interop/files ] && cp -a /interop/files/. /
cut -d' ' -f1 /proc/uptime > /interop/t_start
(
    cd /root
    exec bash -c '. /interop/scenario.env; . /interop/lib.sh; . /interop/scenario.sh' < /dev/null
) > /interop/out 2>&1
echo "$?" > /interop/rc.tmp && mv /interop/rc.tmp /interop/rc
sync
umount -l /interop
echo o > /proc/sysrq-trigger    # power off at once; qemu runs with -no-reboot and exits
sleep 60
