# Helpers for interop scenario scripts (sourced before the scenario runs in the guest).
#
# Result protocol (read by tests/interop/results.py): each check prints
#   "=== NAME" then its output, then "@@RESULT NAME PASS|FAIL|SKIP detail".
# A check's output may carry "@@NEED capability" lines naming what the server must support for
# the check to pass; the host test quotes them when the check fails.
#
# Variables a scenario sets for its checks must be exported (checks run in a child bash so a
# hung step can be killed with its whole process group).

: "${SERVER:=server.interop.test}" "${CHECK_TIMEOUT:=180}"
export SERVER CHECK_TIMEOUT

say() { echo "$*"; }
need() { echo "@@NEED $*"; }

# host_request NAME [TIMEOUT]: ask the host to run its hook NAME; print its answer; fail on ERROR.
host_request() {
    local name=$1 t=${2:-120} i=0 answer
    : > "/interop/req/$name.req"
    while [ ! -e "/interop/req/$name.done" ]; do
        sleep 0.2; i=$((i + 1))
        [ $i -ge $((t * 5)) ] && { echo "host request $name: no answer in ${t}s"; return 1; }
    done
    answer=$(cat "/interop/req/$name.done"); rm -f "/interop/req/$name.done"
    echo "host: $answer"
    case $answer in ERROR*) return 1 ;; esac
    return 0
}

# mark NAME: note the host time (to attribute server traffic to the checks between marks).
mark() {
    local i=0 f
    MARK_SEQ=$(( ${MARK_SEQ:-0} + 1 ))
    f=/interop/req/mark-$(printf %04d "$MARK_SEQ")-$1
    # Retried: a 9p create right after the host renamed a neighbour can fail with ENOENT.
    { : > "$f.req"; } 2>/dev/null || { sleep 0.2; { : > "$f.req"; } 2>/dev/null; } || return 0
    while [ ! -e "$f.done" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    rm -f "$f.done"
}

# check NAME FUNCTION [ARGS...]: run a check with a timeout and print its result line.
check() {
    local name=$1 rc t0 t1; shift
    echo "=== $name"
    mark "begin-$name"
    t0=$(date +%s.%N)
    export -f $(compgen -A function) 2>/dev/null
    timeout -k 10 "$CHECK_TIMEOUT" bash -c '"$@"' "$name" "$@" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    mark "end-$name"
    local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ $rc -eq 0 ]; then
        echo "@@RESULT $name PASS ${secs}s"
    elif [ $rc -eq 77 ]; then
        echo "@@RESULT $name SKIP ${secs}s"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "@@RESULT $name FAIL timed out after ${CHECK_TIMEOUT}s"
    else
        echo "@@RESULT $name FAIL rc=$rc ${secs}s"
    fi
    return 0
}

# nfs_modules: the NFSv4.1 client and the Kerberos RPCSEC_GSS mechanism.
nfs_modules() { modprobe -a nfs nfsv4 sunrpc auth_rpcgss rpcsec_gss_krb5; }

# start_gssd: rpc_pipefs + rpc.gssd (verbose, log in /tmp/gssd.log).  The kernel asks gssd for
# every Kerberos context; without it sec=krb5* mounts fail (see docs/interop.md).
start_gssd() {
    nfs_modules
    mkdir -p /run/rpc_pipefs /var/lib/nfs/rpc_pipefs
    mountpoint -q /run/rpc_pipefs || mount -t rpc_pipefs sunrpc /run/rpc_pipefs
    mountpoint -q /var/lib/nfs/rpc_pipefs || mount --bind /run/rpc_pipefs /var/lib/nfs/rpc_pipefs
    rpc.gssd -f -p /run/rpc_pipefs -vvv -rrr "$@" >> /tmp/gssd.log 2>&1 &
    echo $! > /run/gssd.pid
    local i
    for i in $(seq 1 50); do [ -e /run/rpc_pipefs/gssd/clntXX/gssd ] && break; sleep 0.1; done
    sleep 0.3
}
stop_gssd() {
    [ -f /run/gssd.pid ] && kill "$(cat /run/gssd.pid)" 2>/dev/null
    rm -f /run/gssd.pid; sleep 0.3
}

# nfs_mount SEC|- SPEC MNT [EXTRA-OPTIONS]: mount -t nfs4 vers=4.1 ("-" = no sec= option).
# retry=0: fail at once rather than retrying for two minutes.
nfs_mount() {
    local sec=$1 spec=$2 mnt=$3 extra=${4:-} opts="vers=4.1,retry=0"
    [ "$sec" != - ] && opts="$opts,sec=$sec"
    [ -n "$extra" ] && opts="$opts,$extra"
    mkdir -p "$mnt"
    dmesg -C 2>/dev/null
    if timeout -k 5 90 mount -t nfs4 -o "$opts" "$spec" "$mnt"; then
        echo "mounted $spec on $mnt: $(grep " $mnt " /proc/mounts | awk '{print $4}')"
        return 0
    fi
    local rc=$?
    echo "mount -o $opts $spec failed (rc=$rc)"
    mount_diagnostics
    return 1
}
mount_diagnostics() {
    echo "--- dmesg:"; dmesg 2>/dev/null | tail -8
    if [ -f /tmp/gssd.log ]; then
        echo "--- rpc.gssd:"
        grep -iE "error|fail|not found|keytab|no credentials|principal|enctype|expired|skew|unable|Success" \
            /tmp/gssd.log | tail -12 | cut -c1-240
    fi
}
nfs_umount() { timeout -k 5 60 umount "$1" 2>&1 || timeout 30 umount -f -l "$1"; }

# as_user USER CMD...: run CMD as USER (with USER's Kerberos ccache, if any).
as_user() { local u=$1; shift; runuser -u "$u" -- "$@"; }

# sec_of MNT: the sec= flavor the kernel actually negotiated for a mount.
sec_of() { grep " $1 " /proc/mounts | grep -o 'sec=[a-z0-9]*' | cut -d= -f2; }
