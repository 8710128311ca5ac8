#!/bin/bash
# Build the interop guest: a minimal Debian 12 root file system with the Linux NFSv4.1 client,
# a small initrd and an ext4 image of it.  Called by tests/interop/guest.py (which holds the lock
# and decides whether a rebuild is needed); runs as root (debootstrap and chroot need it).
#
#   build-image.sh OUTDIR MIRROR PACKAGES INIT
#
# OUTDIR/rootfs        the debootstrapped tree (kept, so a change to INIT only re-makes the image)
# OUTDIR/vmlinuz, OUTDIR/initrd.img, OUTDIR/rootfs.img, OUTDIR/kernel-version
set -euo pipefail
OUT=$1 MIRROR=$2 PKGS=$3 INIT=$4
ROOT=$OUT/rootfs
say() { echo "[interop-build] $*" >&2; }

if [ ! -f "$ROOT/.debootstrap-complete" ]; then
    rm -rf "$ROOT"
    say "debootstrap bookworm from $MIRROR (several minutes, once)"
    DEBIAN_FRONTEND=noninteractive debootstrap --variant=minbase --include="$PKGS" \
        bookworm "$ROOT" "$MIRROR"
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
    touch "$ROOT/.debootstrap-complete"
fi

# No DNS and no network services in the guest: names come from /etc/hosts, written at each boot.
echo interop-client > "$ROOT/etc/hostname"
: > "$ROOT/etc/fstab"
: > "$ROOT/etc/resolv.conf"
sed -i 's/^hosts:.*/hosts:          files/' "$ROOT/etc/nsswitch.conf"
install -m 0755 "$INIT" "$ROOT/sbin/securenfs-interop-init"

KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
if [ ! -f "$ROOT/lib/modules/$KVER/.pruned" ]; then
    # A headless NFS client needs none of these; dropping them halves the image.
    for d in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband \
             drivers/staging drivers/iio drivers/bluetooth drivers/usb drivers/hid drivers/input \
             drivers/isdn drivers/scsi drivers/md sound net/wireless net/bluetooth net/mac80211; do
        rm -rf "$ROOT/lib/modules/$KVER/kernel/$d"
    done
    chroot "$ROOT" depmod "$KVER"
    touch "$ROOT/lib/modules/$KVER/.pruned"
fi
rm -rf "$ROOT/usr/share/doc" "$ROOT/usr/share/man" "$ROOT/usr/share/locale" "$ROOT/usr/share/info"

# initrd with only what mounting an ext4 root on virtio-blk takes: faster to unpack under TCG.
printf 'MODULES=list\nCOMPRESS=gzip\n' > "$ROOT/etc/initramfs-tools/conf.d/securenfs-interop"
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' > "$ROOT/etc/initramfs-tools/modules"
if [ ! -f "$ROOT/boot/.initrd-small-$KVER" ]; then
    say "initrd for $KVER"
    chroot "$ROOT" update-initramfs -u -k "$KVER" > /dev/null
    touch "$ROOT/boot/.initrd-small-$KVER"
fi
cp -f "$ROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp -f "$ROOT/boot/initrd.img-$KVER" "$OUT/initrd.img"
echo "$KVER" > "$OUT/kernel-version"

used=$(du -sm "$ROOT" | cut -f1)
say "mkfs.ext4 -d rootfs ($((used + 384)) MiB)"
rm -f "$OUT/rootfs.img.tmp"
mkfs.ext4 -q -F -L interop -d "$ROOT" "$OUT/rootfs.img.tmp" "$((used + 384))M"
mv -f "$OUT/rootfs.img.tmp" "$OUT/rootfs.img"
say "done: kernel $KVER"
