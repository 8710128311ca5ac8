# Server restarts under a running application: the guest holds an open file and a POSIX lock
# and keeps appending with fsync while the host kills the server (SIGKILL) or stops it cleanly
# (SIGTERM) and starts it again.  The application must finish without an error, every line
# must be in the file once and in order, and the lock must still be the application's
# afterwards (reclaimed, not lost).  RESTARTS lists "SEC:HOOK" pairs.
: "${RESTARTS:=sys:server-kill9 sys:server-restart krb5p:server-kill9}" "${LINES:=30}"
export LINES
LH="python3 /usr/local/bin/lockholder.py"; export LH
au() { as_user alice "$@"; }

restart_under_io() {   # SEC HOOK
    need "OPEN and LOCK state; after the restart: new EXCHANGE_ID/CREATE_SESSION, reclaim of OPEN (CLAIM_PREVIOUS) and LOCK (reclaim=true) during grace, RECLAIM_COMPLETE (RFC 8881 §8.4.2)"
    local sec=$1 hook=$2 mnt=/mnt/r-$1-$2 i
    nfs_mount "$sec" "$SERVER:/all" "$mnt" > /dev/null || { nfs_mount "$sec" "$SERVER:/all" "$mnt"; return 1; }
    local d=$mnt/restart-$sec-$hook f rel=/tmp/release-$sec-$hook out=/tmp/writer-$sec-$hook.out
    au sh -c "mkdir -p $d" || return 1
    f=$d/journal
    au $LH writer "$f" "$LINES" 0.5 "$rel" > "$out" 2>&1 &
    local wpid=$!
    for i in $(seq 1 200); do grep -q "wrote 4 " "$out" 2>/dev/null && break; sleep 0.2; done
    grep -q "wrote 4 " "$out" || { echo "the writer did not get going:"; cat "$out"; kill $wpid; return 1; }
    echo "writer running ($(grep -c wrote "$out") lines); asking the host for $hook"
    host_request "$hook" 120 || { kill $wpid; return 1; }
    local t0=$SECONDS
    for i in $(seq 1 900); do grep -q "WRITES DONE" "$out" && break; kill -0 $wpid 2>/dev/null || break; sleep 0.2; done
    echo "writes finished $((SECONDS - t0))s after the restart"
    if grep -q "WRITES DONE" "$out"; then
        local other; other=$(au timeout 120 $LH try-fcntl "$f" 2>&1)
        echo "another process trying the lock after the restart: $other"
        [ "$other" = DENIED ] || { echo "the application's lock was lost in the restart"; touch "$rel"; wait $wpid; return 1; }
    fi
    touch "$rel"
    wait $wpid; local rc=$?
    tail -4 "$out"
    [ $rc -eq 0 ] && grep -q "WRITER DONE" "$out" || { echo "the application failed (rc=$rc)"; cat "$out" | tail -15; return 1; }
    seq 0 $((LINES - 1)) | sed 's/^/line /' > /tmp/want
    au cat "$f" > /tmp/got || return 1
    cmp -s /tmp/want /tmp/got || { echo "journal differs:"; diff /tmp/want /tmp/got | head; return 1; }
    echo "all $LINES lines present once, in order"
    au rm -r "$d"; nfs_umount "$mnt" > /dev/null
}

start_gssd
echo "$PW_ALICE" | runuser -u alice -- kinit alice > /dev/null || echo "kinit alice failed"
for pair in $RESTARTS; do
    check "restart-${pair#*:}-${pair%%:*}" restart_under_io "${pair%%:*}" "${pair#*:}"
done
