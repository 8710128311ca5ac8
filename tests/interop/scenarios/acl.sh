# NFSv4 ACLs through the kernel client on a krb5p mount: alice reads and sets the ACL of her
# file with nfs4_getfacl / nfs4_setfacl (nfs4-acl-tools), bob gets exactly what it says, and
# an ACL the server cannot store is refused without changing anything.
au() { as_user alice "$@"; }
bu() { as_user bob "$@"; }
DOM=interop.test; export DOM   # checks run in their own bash

acl_tools() {
    need "nfs4-acl-tools in the guest image"
    command -v nfs4_getfacl && command -v nfs4_setfacl
}

acl_read() {   # FILE
    need "GETATTR acl (RFC 8881 §6.2.1), aclsupport"
    local f=$1 out
    au sh -c "echo secret > $f && chmod 600 $f" || return 1
    out=$(au nfs4_getfacl "$f") || { echo "nfs4_getfacl failed"; return 1; }
    echo "$out"
    echo "$out" | grep -qx "A::OWNER@:rwatTcCy" || { echo "no OWNER@ rw ACE"; return 1; }
    if bu cat "$f" 2>/dev/null; then echo "bob read alice's 0600 file"; return 1; fi
}

acl_grant() {   # FILE
    need "SETATTR acl with a user@domain who-string, ACCESS/OPEN as the ACL says"
    local f=$1 out
    au nfs4_setfacl -a "A::bob@$DOM:rtcy" "$f" || { echo "nfs4_setfacl -a failed"; return 1; }
    out=$(au nfs4_getfacl "$f"); echo "$out"
    echo "$out" | grep -qx "A::bob@$DOM:rtcy" || { echo "bob's ACE not read back"; return 1; }
    [ "$(bu cat $f)" = secret ] || { echo "bob cannot read although the ACL allows it"; return 1; }
    if bu sh -c "echo bob >> $f" 2>/dev/null; then echo "bob wrote although the ACL gives read only"; return 1; fi
    echo "bob reads, cannot write: ok"
}

acl_deny() {   # FILE
    need "SETATTR acl with a DENY for a user; the client's cached access is revalidated"
    local f=$1 out
    au nfs4_setfacl -s "A::OWNER@:rwatTcCy,D::bob@$DOM:rwa,A::EVERYONE@:rtcy" "$f" || {
        echo "nfs4_setfacl -s failed"; return 1; }
    out=$(au nfs4_getfacl "$f"); echo "$out"
    # read back as the server stores it: a DENY of what others may do and bob may not (r)
    echo "$out" | grep -q "^D::bob@$DOM:r" || { echo "bob's DENY not read back"; return 1; }
    if bu cat "$f" 2>/dev/null; then echo "bob read although denied"; return 1; fi
    echo "bob refused: ok"
    [ "$(au cat $f)" = secret ] || { echo "alice cannot read her file"; return 1; }
}

acl_refused() {   # FILE
    need "an ACL POSIX cannot hold is refused (NFS4ERR_ATTRNOTSUPP) and nothing changes"
    local f=$1 before after
    before=$(au nfs4_getfacl "$f")
    if au nfs4_setfacl -a "D::EVERYONE@:c" "$f" 2>/tmp/refused.err; then
        echo "a DENY of READ_ACL was accepted"; return 1
    fi
    echo "refused: $(cat /tmp/refused.err | head -2)"
    after=$(au nfs4_getfacl "$f")
    [ "$before" = "$after" ] || { echo "the ACL changed:"; echo "$after"; return 1; }
}

acl_inherit() {   # DIR
    need "inheritable ACEs (directory default ACL) apply to new files"
    local d=$1/inherit out
    au mkdir -p "$d" || return 1
    au nfs4_setfacl -s "A::OWNER@:rwaDxtTcCy,A::GROUP@:rxtcy,A::EVERYONE@:rxtcy,A:fdi:OWNER@:rwaDxtTcCy,A:fdi:bob@$DOM:rwaDxtcy,A:fdi:GROUP@:rxtcy,A:fdi:EVERYONE@:rxtcy" "$d" || {
        echo "nfs4_setfacl on the directory failed"; return 1; }
    au nfs4_getfacl "$d"
    # the create mode's group bits cap the inherited mask (POSIX): a group-writable umask
    au sh -c "umask 002; echo team > $d/new" || return 1
    out=$(au nfs4_getfacl "$d/new"); echo "$out"
    echo "$out" | grep -q "^A::bob@$DOM:" || { echo "the new file did not inherit bob's ACE"; return 1; }
    bu sh -c "echo bob >> $d/new" || { echo "bob cannot write the file he inherited write on"; return 1; }
    au rm -rf "$d"
}

# ---------------------------------------------------------------------------------------------
start_gssd
for u in alice bob; do
    pw_var=PW_${u^^}
    echo "${!pw_var}" | runuser -u $u -- kinit $u > /dev/null || echo "kinit $u failed"
done
check acl-tools acl_tools
if check acl-mount nfs_mount krb5p "$SERVER:/all" /mnt/acl && grep -q " /mnt/acl " /proc/mounts; then
    D=/mnt/acl/alice-acl
    au mkdir -p "$D" && au chmod 755 "$D"
    check acl-read acl_read "$D/plan"
    check acl-grant acl_grant "$D/plan"
    check acl-deny acl_deny "$D/plan"
    check acl-refused acl_refused "$D/plan"
    check acl-inherit acl_inherit "$D"
    au rm -rf "$D"
    nfs_umount /mnt/acl > /dev/null
fi
