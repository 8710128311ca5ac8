# Smoke: the guest boots, its kernel has the NFSv4.1 client, the forwards reach this host's
# loopback services and nothing else, and a mount attempt reaches the server.

kernel_has_nfs4() {
    uname -r
    nfs_modules || return 1
    grep -w nfs4 /proc/filesystems || { echo "no nfs4 file system after modprobe"; return 1; }
    modinfo -F description rpcsec_gss_krb5
}

tcp_open() {   # tcp_open HOST PORT: can the guest open a TCP connection?
    timeout 10 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

forward_reaches_server() {
    tcp_open "$INTEROP_HOST_IP" 2049 && echo "connected to $INTEROP_HOST_IP:2049"
}

forward_reaches_kdc() {
    [ -n "${KDC_FORWARDED:-}" ] || { echo "no KDC forwarded in this run"; exit 77; }
    tcp_open "$INTEROP_HOST_IP" 88 && echo "connected to $INTEROP_HOST_IP:88"
}

nothing_else_reachable() {
    local bad=0 target
    # The qemu gateway, the DNS address, an unforwarded port on the host address, a public one.
    for target in "10.0.2.2 22" "10.0.2.3 53" "$INTEROP_HOST_IP 2050" "$INTEROP_HOST_IP 22" "1.1.1.1 443"; do
        if tcp_open $target; then echo "REACHABLE: $target"; bad=1; else echo "blocked: $target"; fi
    done
    ip route
    return $bad
}

mount_reaches_server() {
    # Whatever the server supports today, the kernel's mount sequence starts with EXCHANGE_ID;
    # the host test checks the server saw it.  The mount result itself is reported only.
    nfs_mount sys "$SERVER:/sys" /mnt/smoke && ls -la /mnt/smoke && nfs_umount /mnt/smoke
    echo "mount attempt finished"
    return 0
}

check kernel-nfs4 kernel_has_nfs4
check forward-server forward_reaches_server
check forward-kdc forward_reaches_kdc
check restricted-network nothing_else_reachable
check mount-attempt mount_reaches_server
