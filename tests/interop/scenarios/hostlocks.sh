# Locks that cross between the kernel client and the server's host: a guest process's fcntl
# lock on an NFS file refuses a host process's fcntl lock on the exported file, and a host
# process's lock refuses the guest's (the server mirrors NFS locks as OFD locks, and a local
# lock makes LOCK answer NFS4ERR_DENIED).  The host acts on the guest's request
# (host_request hostlock-try / hostlock-hold / hostlock-release on the file FILE names).
: "${FILE:=hostlock-file}"
LH="python3 /usr/local/bin/lockholder.py"; export LH
au() { as_user alice "$@"; }

guest_blocks_host() {   # F
    need "every granted LOCK is also a lock in the server host's kernel (OFD lock)"
    local f=$1 ans i
    au $LH hold-fcntl "$f" 6 > /tmp/holder.out 2>&1 &
    for i in $(seq 1 100); do grep -q LOCKED /tmp/holder.out && break; sleep 0.2; done
    grep -q LOCKED /tmp/holder.out || { echo "the guest holder never got the lock"; cat /tmp/holder.out; return 1; }
    ans=$(host_request hostlock-try) || { echo "$ans"; return 1; }
    echo "host fcntl while the guest holds the lock: $ans"
    [ "$ans" = "host: DENIED" ] || return 1
    wait
    ans=$(host_request hostlock-try) || { echo "$ans"; return 1; }
    echo "host fcntl after the guest released it: $ans"
    [ "$ans" = "host: GOT" ]
}

host_blocks_guest() {   # F
    need "LOCK answers NFS4ERR_DENIED while a process on the server host holds the range"
    local f=$1 out
    host_request hostlock-hold || return 1
    out=$(au $LH try-fcntl "$f" 2>&1); echo "guest fcntl while the host holds the lock: $out"
    [ "$out" = DENIED ] || { host_request hostlock-release; return 1; }
    host_request hostlock-release || return 1
    out=$(au $LH try-fcntl "$f" 2>&1); echo "guest fcntl after the host released it: $out"
    [ "$out" = GOT ]
}

mnt=/mnt/hostlocks
if nfs_mount sys "$SERVER:/all" $mnt > /dev/null; then
    F=$mnt/$FILE; export F
    au sh -c ": > $F" || echo "cannot create $F"
    check "guest-lock-blocks-host" guest_blocks_host "$F"
    check "host-lock-blocks-guest" host_blocks_guest "$F"
    au rm -f "$F"
    nfs_umount $mnt > /dev/null
else
    nfs_mount sys "$SERVER:/all" $mnt
fi
