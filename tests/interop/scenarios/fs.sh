# File-system behaviour through the kernel client, per flavor (FLAVORS, default all four), in
# the spirit of the Connectathon basic tests; POSIX and flock locks from two processes; two
# users whose permissions the server's kernel enforces and whose names ls -l shows; fio with
# crc32c verification under krb5p.  Everything runs as the scenario users, not as root.
: "${FLAVORS:=sys krb5 krb5i krb5p}" "${NFILES:=100}" "${BIGDIR:=400}" "${BIG_MB:=16}"
export NFILES BIGDIR BIG_MB
LH="python3 /usr/local/bin/lockholder.py"; export LH

dropc() { sync; echo 3 > /proc/sys/vm/drop_caches; }
au() { as_user alice "$@"; }
bu() { as_user bob "$@"; }

fs_create_remove() {   # DIR
    need "OPEN(create), CLOSE, WRITE, REMOVE, READDIR"
    local d=$1/cr i n
    au mkdir "$d" || return 1
    # One shell for all creates: a process start per file would cost more than the NFS calls.
    au sh -c "for i in \$(seq 1 $NFILES); do echo \$i > $d/f\$i || exit 1; done" || return 1
    n=$(au ls "$d" | wc -l); echo "$n files"; [ "$n" -eq $NFILES ] || return 1
    [ "$(au cat $d/f17)" = 17 ] || { echo "f17 content wrong"; return 1; }
    au sh -c "rm $d/f*" || return 1
    n=$(au ls -A "$d" | wc -l); [ "$n" -eq 0 ] || { echo "$n files left"; return 1; }
    au rmdir "$d"
}

fs_tree() {
    need "CREATE(directory), OPEN, LOOKUP, READDIR, REMOVE"
    local d=$1/tree a b c n
    for a in 1 2 3; do for b in 1 2 3; do for c in 1 2; do
        au mkdir -p "$d/d$a/d$b" && au sh -c "echo $a$b$c > $d/d$a/d$b/f$c" || return 1
    done; done; done
    dropc
    n=$(au find "$d" -type f | wc -l); echo "$n files, $(au find $d -type d | wc -l) dirs"
    [ "$n" -eq 18 ] || return 1
    [ "$(au cat $d/d2/d3/f1)" = 231 ] || return 1
    au rm -r "$d" && [ ! -e "$d" ]
}

fs_readdir_large() {
    need "READDIR with cookies over several replies"
    local d=$1/big i
    au mkdir "$d" || return 1
    au sh -c "cd $d && for i in \$(seq 1 $BIGDIR); do : > entry-\$i || exit 1; done" || return 1
    dropc
    au ls "$d" | sort > /tmp/got
    seq 1 $BIGDIR | sed 's/^/entry-/' | sort > /tmp/want
    if ! cmp -s /tmp/got /tmp/want; then
        echo "readdir of $BIGDIR entries differs: $(wc -l < /tmp/got) listed"; diff /tmp/want /tmp/got | head; return 1
    fi
    echo "listed all $BIGDIR entries"
    au rm -r "$d"
}

fs_rename() {
    need "RENAME (same and other directory, over an existing file)"
    local d=$1/ren
    au mkdir -p "$d/a" "$d/b" || return 1
    au sh -c "echo one > $d/a/x && echo two > $d/a/y" || return 1
    au mv "$d/a/x" "$d/a/x2" && au mv "$d/a/x2" "$d/b/x3" || return 1
    au mv -f "$d/a/y" "$d/b/x3" || return 1   # replaces x3
    dropc
    [ ! -e "$d/a/x" ] && [ ! -e "$d/a/y" ] && [ "$(au cat $d/b/x3)" = two ] || { ls -lR $d; return 1; }
    au mv "$d/b" "$d/c" && [ -d "$d/c" ] || return 1
    au rm -r "$d"
}

fs_links() {
    need "LINK, CREATE(symlink), READLINK, GETATTR numlinks"
    local d=$1/lnk
    au mkdir "$d" && au sh -c "echo data > $d/orig" || return 1
    au ln "$d/orig" "$d/hard" || return 1
    au ln -s orig "$d/soft" || return 1
    dropc
    [ "$(stat -c %h $d/orig)" = 2 ] || { echo "link count $(stat -c %h $d/orig)"; return 1; }
    [ "$(stat -c %i $d/orig)" = "$(stat -c %i $d/hard)" ] || { echo "hard link has another inode"; return 1; }
    [ "$(readlink $d/soft)" = orig ] && [ "$(au cat $d/soft)" = data ] || return 1
    au rm "$d/orig" && [ "$(au cat $d/hard)" = data ] && [ ! -e "$d/soft" ] || return 1
    au rm -r "$d"
}

fs_chmod() {
    need "SETATTR mode, ACCESS"
    local f=$1/modes
    au sh -c "echo secret > $f" || return 1
    au chmod 640 "$f" && dropc
    [ "$(stat -c %a $f)" = 640 ] || { echo "mode $(stat -c %a $f)"; return 1; }
    au chmod 000 "$f"
    if au cat "$f" 2>/dev/null; then echo "owner read a mode-000 file"; return 1; fi
    au chmod 600 "$f" && [ "$(au cat $f)" = secret ] || return 1
    au rm "$f"
}

fs_large_file() {
    need "WRITE and READ of large ranges, COMMIT"
    local f=$1/large
    dd if=/dev/urandom of=/tmp/large bs=1M count=$BIG_MB status=none
    chmod 644 /tmp/large
    au cp /tmp/large "$f" || return 1
    dropc
    local a b; a=$(sha256sum < /tmp/large); b=$(au sha256sum < "$f")
    echo "local ${a%% *}"; echo "nfs   ${b%% *}"
    [ "$a" = "$b" ] || return 1
    [ "$(stat -c %s $f)" = $((BIG_MB * 1048576)) ]
}

fs_truncate() {
    need "SETATTR size"
    local f=$1/large
    [ -f "$f" ] || { dd if=/dev/urandom of=/tmp/large bs=1M count=2 status=none; chmod 644 /tmp/large; au cp /tmp/large "$f"; }
    au truncate -s 1000 "$f" || return 1
    dropc
    [ "$(stat -c %s $f)" = 1000 ] || { echo "size $(stat -c %s $f) after shrink"; return 1; }
    cmp -n 1000 /tmp/large "$f" || { echo "first 1000 bytes changed"; return 1; }
    au truncate -s 5000 "$f" && dropc
    [ "$(stat -c %s $f)" = 5000 ] || return 1
    [ "$(au tail -c 4000 $f | tr -d '\0' | wc -c)" = 0 ] || { echo "extension is not zeros"; return 1; }
    au rm "$f"
}

locks() {   # DIR: POSIX (fcntl) and flock locks from two processes, with a conflict
    need "LOCK, LOCKT, LOCKU (and OPEN/CLOSE for the lock owner's stateid)"
    local f=$1/lockfile out
    au sh -c ": > $f" || return 1
    au $LH hold-fcntl "$f" 5 > /tmp/holder.out 2>&1 &
    local i; for i in $(seq 1 100); do grep -q LOCKED /tmp/holder.out && break; sleep 0.2; done
    grep -q LOCKED /tmp/holder.out || { echo "holder never got the lock"; cat /tmp/holder.out; return 1; }
    out=$(au $LH try-fcntl "$f" 2>&1); echo "fcntl while held: $out"
    [ "$out" = DENIED ] || return 1
    wait
    out=$(au $LH try-fcntl "$f" 2>&1); echo "fcntl after release: $out"
    [ "$out" = GOT ] || return 1
    # flock(2) on NFS is carried as a whole-file lock: a second process must conflict too.
    au flock "$f" sleep 4 &
    sleep 1.5
    if au flock -n "$f" true; then echo "flock: second process got the lock while held"; wait; return 1; fi
    echo "flock while held: denied"
    wait
    au flock -n "$f" true && echo "flock after release: got" || return 1
    au rm "$f"
}

two_users() {   # DIR SEC
    need "owner strings user@domain both ways (idmap), SETATTR mode, permission checks as the caller"
    local d=$1 f=$1/alice-only g=$1/shared
    au sh -c "echo private > $f && chmod 600 $f" || return 1
    au sh -c "echo shared > $g && chmod 664 $g" || return 1
    dropc
    ls -l "$f" "$g"
    [ "$(stat -c %U $f)" = alice ] || { echo "owner shown as $(stat -c %U $f), want alice"; return 1; }
    [ "$(stat -c %G $f)" = nfsusers ] || { echo "group shown as $(stat -c %G $f), want nfsusers"; return 1; }
    if bu cat "$f" 2>/dev/null; then echo "bob read alice's 0600 file"; return 1; fi
    echo "bob cannot read alice's 0600 file: ok"
    [ "$(bu cat $g)" = shared ] || { echo "bob cannot read the 0664 file"; return 1; }
    bu sh -c "echo bob >> $g" || { echo "bob (group nfsusers) cannot write the 0664 file"; return 1; }
    if bu rm -f "$f" 2>/dev/null && [ ! -e "$f" ]; then echo "bob removed alice's file in a sticky dir"; return 1; fi
    bu sh -c "echo mine > $d/bob-file" || return 1
    [ "$(stat -c %U $d/bob-file)" = bob ] || { echo "bob's file owned by $(stat -c %U $d/bob-file)"; return 1; }
    au rm -f "$f" "$g"; bu rm -f "$d/bob-file"
}

fio_verify() {   # DIR
    need "WRITE/READ/COMMIT under krb5p with data integrity"
    local d=$1/fio
    au mkdir -p "$d" || return 1
    au fio --name=verify --directory="$d" --rw=randwrite --bs=4k --size=4m --numjobs=2 \
        --ioengine=psync --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1 \
        --runtime=60 --group_reporting --output-format=terse --terse-version=3 > /tmp/fio.out 2>&1
    local rc=$?
    cut -d';' -f1-8 /tmp/fio.out | head -3; grep -i -E "verify|error" /tmp/fio.out | head -5
    au rm -rf "$d"
    return $rc
}

# ---------------------------------------------------------------------------------------------
start_gssd
for u in alice bob; do
    pw_var=PW_${u^^}
    echo "${!pw_var}" | runuser -u $u -- kinit $u > /dev/null || echo "kinit $u failed"
done
for sec in $FLAVORS; do
    mnt=/mnt/$sec; export mnt
    if ! check "fs-mount-$sec" nfs_mount $sec "$SERVER:/all" $mnt; then :; fi
    if ! grep -q " $mnt " /proc/mounts; then
        echo "skipping the $sec checks: not mounted"; continue
    fi
    D=$mnt/alice-$sec; export D
    check "fs-mkdir-$sec" au sh -c "mkdir -p $D && chmod 1777 $D"
    check "fs-create-remove-$sec" fs_create_remove "$D"
    check "fs-tree-$sec" fs_tree "$D"
    check "fs-readdir-large-$sec" fs_readdir_large "$D"
    check "fs-rename-$sec" fs_rename "$D"
    check "fs-links-$sec" fs_links "$D"
    check "fs-chmod-$sec" fs_chmod "$D"
    check "fs-large-file-$sec" fs_large_file "$D"
    check "fs-truncate-$sec" fs_truncate "$D"
    check "locks-$sec" locks "$D"
    check "two-users-$sec" two_users "$D" $sec
    nfs_umount $mnt > /dev/null
done
if nfs_mount krb5p "$SERVER:/secure" /mnt/secure > /dev/null; then
    check fio-krb5p fio_verify /mnt/secure
    nfs_umount /mnt/secure > /dev/null
else
    check fio-krb5p nfs_mount krb5p "$SERVER:/secure" /mnt/secure
fi
