# Mounts: vers=4.1 with each sec= flavor, without sec= (SECINFO_NO_NAME negotiation), a
# krb5p-only export refused to sec=sys (WRONGSEC), and the client-side Kerberos mistakes
# documented in docs/interop.md, each reproduced with its symptom.
export M=/mnt/m

mount_without_sec_no_gssd() {
    # Without rpc.gssd the client cannot use Kerberos, so on an export allowing sys it must
    # negotiate sys.
    need "EXCHANGE_ID, CREATE_SESSION, SEQUENCE, PUTROOTFH, LOOKUP, GETATTR, SECINFO_NO_NAME"
    nfs_modules
    nfs_mount - "$SERVER:/sys" $M || return 1
    local got; got=$(sec_of $M); echo "negotiated sec=$got"
    ls -la $M >/dev/null || return 1
    nfs_umount $M
    [ "$got" = sys ]
}

mount_flavor() {   # mount_flavor SEC EXPORT
    need "RPCSEC_GSS $1 context set-up and protected COMPOUNDs; PUTROOTFH, LOOKUP, GETATTR, ACCESS, READDIR"
    nfs_mount "$1" "$SERVER:$2" $M || return 1
    local got; got=$(sec_of $M)
    ls -la $M || { nfs_umount $M; return 1; }
    stat -f $M | head -3
    nfs_umount $M || return 1
    [ "$got" = "$1" ] || { echo "mounted with sec=$got, asked for $1"; return 1; }
}

mount_without_sec_negotiates() {   # EXPORT EXPECTED
    need "SECINFO_NO_NAME listing the export's flavors in order (RFC 8881 §2.6.3.1.1.5)"
    nfs_mount - "$SERVER:$1" $M || return 1
    local got; got=$(sec_of $M); echo "negotiated sec=$got (expected $2)"
    ls -la $M >/dev/null
    nfs_umount $M
    [ "$got" = "$2" ]
}

sys_on_krb5p_export_refused() {
    need "WRONGSEC on the krb5p-only export for AUTH_SYS, and a readable log line"
    local out rc
    mkdir -p $M
    out=$(timeout -k 5 90 mount -t nfs4 -o vers=4.1,retry=0,sec=sys "$SERVER:/secure" $M 2>&1); rc=$?
    echo "mount rc=$rc: $out"
    if [ $rc -eq 0 ]; then
        echo "sec=sys mount of the krb5p-only export SUCCEEDED: $(sec_of $M)"
        ls $M 2>&1 | head -3
        nfs_umount $M
        return 1
    fi
    case $out in
        *"ermission denied"*|*"ccess denied"*|*"not permitted"*) echo "permission error, as expected" ;;
        *) echo "failed, but not with a permission error"; return 1 ;;
    esac
}

# --- Kerberos obstacles: each must fail (quickly enough) with the documented symptom -------
reset_gss() {
    stop_gssd
    cp /root/krb5.conf.good /etc/krb5.conf
    cp /root/krb5.keytab.good /etc/krb5.keytab
    rm -f /tmp/krb5cc_* /tmp/krb5ccmachine_* /tmp/gssd.log
    hostname "$CLIENT"
    sleep 6   # the kernel caches a failed credential look-up for a few seconds
}
expect_mount_failure() {   # SPEC SEC
    local out rc t0=$SECONDS
    mkdir -p $M
    out=$(timeout -k 5 "${MOUNT_LIMIT:-60}" mount -t nfs4 -o vers=4.1,retry=0,sec=$2 "$1" $M 2>&1); rc=$?
    echo "mount $1 sec=$2 -> rc=$rc after $((SECONDS - t0))s: $out"
    mount_diagnostics
    if [ $rc -eq 0 ]; then nfs_umount $M; echo "UNEXPECTED: the mount succeeded"; return 1; fi
    return 0
}
obstacle_gssd_not_running() {
    reset_gss; nfs_modules
    expect_mount_failure "$SERVER:/all" krb5
}
obstacle_no_client_keytab() {
    reset_gss; rm -f /etc/krb5.keytab; start_gssd
    expect_mount_failure "$SERVER:/all" krb5
}
obstacle_enctype_mismatch() {
    reset_gss
    # The client will only use an enctype neither keytab has.
    sed -i 's/^\[libdefaults\]/[libdefaults]\n    permitted_enctypes = camellia256-cts-cmac/' /etc/krb5.conf
    start_gssd
    expect_mount_failure "$SERVER:/all" krb5
}
obstacle_kdc_unreachable() {
    reset_gss
    sed -i "s/^\(\s*kdc = \).*/\1 $INTEROP_HOST_IP:8888/" /etc/krb5.conf   # no forward there
    start_gssd
    MOUNT_LIMIT=45 expect_mount_failure "$SERVER:/all" krb5
}
obstacle_mount_by_ip() {
    # Mounting by address: gssd derives the server principal from a reverse look-up of the
    # address, which gives whatever name /etc/hosts lists first for it.  Here the address is
    # listed first under a name the KDC does not know, so the mount fails.
    reset_gss
    cp /etc/hosts /root/hosts.good
    sed -i "s/^$INTEROP_HOST_IP .*/$INTEROP_HOST_IP nfs-alias.interop.test $SERVER $SERVER_SHORT/" /etc/hosts
    start_gssd
    expect_mount_failure "$INTEROP_HOST_IP:/all" krb5
    local rc=$?
    grep -E "nfs-alias|principal|not found" /tmp/gssd.log | head -5 | cut -c1-200
    cp /root/hosts.good /etc/hosts
    return $rc
}

check mount-nosec-sys mount_without_sec_no_gssd
start_gssd
cp /etc/krb5.conf /root/krb5.conf.good; cp /etc/krb5.keytab /root/krb5.keytab.good
for sec in sys krb5 krb5i krb5p; do
    check "mount-$sec" mount_flavor $sec /all
done
check mount-nosec-krb5p mount_without_sec_negotiates /all krb5p
check mount-nosec-secure mount_without_sec_negotiates /secure krb5p
check wrongsec-sys-on-krb5p sys_on_krb5p_export_refused
check obstacle-gssd-not-running obstacle_gssd_not_running
check obstacle-no-client-keytab obstacle_no_client_keytab
check obstacle-enctype-mismatch obstacle_enctype_mismatch
check obstacle-kdc-unreachable obstacle_kdc_unreachable
check obstacle-mount-by-ip obstacle_mount_by_ip
reset_gss; start_gssd
check mount-after-obstacles mount_flavor krb5 /all
