# Reload while mounted: the host narrows /all to sec=sys with `securenfs reload` while a process
# of alice sits inside the pseudo-root mount (negotiated without sec=).  Its next step into /all
# meets NFS4ERR_WRONGSEC at the junction; the kernel asks SECINFO and crosses with the flavor
# that remains, so the process finishes without an error.
export P=/mnt/pseudo
au() { as_user alice "$@"; }

narrow_under_process() {
    need "NFS4ERR_WRONGSEC at the junction of an export narrowed by reload, SECINFO naming the remaining flavor, the client's new submount (RFC 8881 §2.6.3.1)"
    nfs_mount - "$SERVER:/" $P || return 1
    echo "pseudo root mounted with sec=$(sec_of $P)"
    local out=/tmp/inside.out go=/tmp/go-inside i
    rm -f $go
    au sh -c "cd $P && ls > /dev/null && echo inside && while [ ! -e $go ]; do sleep 0.2; done && ls all > /dev/null && cat all/narrow-file" > $out 2>&1 &
    local pid=$!
    for i in $(seq 1 100); do grep -q inside $out 2>/dev/null && break; sleep 0.2; done
    grep -q inside $out || { echo "the process did not get inside:"; cat $out; kill $pid; return 1; }
    host_request narrow-all 120 || { touch $go; wait $pid; return 1; }
    touch $go
    wait $pid; local rc=$?
    echo "process rc=$rc, output:"; cat $out
    echo "mounts now: $(grep " $P" /proc/mounts | awk '{print $2, $4}' | tr '\n' ';')"
    local sub; sub=$(sec_of $P/all); echo "the /all submount uses sec=$sub"
    nfs_umount $P > /dev/null
    [ $rc -eq 0 ] && grep -q "narrowed by reload" $out && [ "$sub" = sys ]
}

start_gssd
echo "$PW_ALICE" | runuser -u alice -- kinit alice > /dev/null || echo "kinit alice failed"
check reload-narrow-while-inside narrow_under_process
