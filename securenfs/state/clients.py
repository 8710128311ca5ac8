"""Client records and the EXCHANGE_ID case matrix (RFC 8881 §18.35.5).

A client is known by its co_ownerid.  Each owner may have one confirmed and one unconfirmed
record; CREATE_SESSION confirms.  A client id is the server's boot epoch (high 32 bits) and 32
random bits: an id from before a restart carries another epoch and can never be confused
with a current one (NFS4ERR_STALE_CLIENTID, RFC 8881 §8.4.2.1, §18.35.4); the random half
keeps ids unguessable within one boot.  Every use checks that the record exists
(NFS4ERR_STALE_CLIENTID after a restart or expiry).

The "principal" compared in the matrix is the RPC identity of the EXCHANGE_ID caller: the
Kerberos principal under RPCSEC_GSS, the uid under AUTH_SYS (RFC 8881 §2.4.1 leaves AUTH_SYS
to the server; the machine name is not trusted, it is just text).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from securenfs.proto.constants import ExchgIdFlag, Op, Stat, StateProtect
from securenfs.proto.errors import Nfs4Error
from securenfs.rpc.auth import Credential

if TYPE_CHECKING:
    from securenfs.state.sessions import Session

log = logging.getLogger("securenfs.state")

#: Ops the server enforces the machine credential for under SP4_MACH_CRED (§18.35.3):
#: the lease and session management operations.
MACH_ENFORCEABLE = frozenset({
    Op.BIND_CONN_TO_SESSION, Op.EXCHANGE_ID, Op.CREATE_SESSION, Op.DESTROY_SESSION,
    Op.DESTROY_CLIENTID, Op.RECLAIM_COMPLETE,
})
#: Ops a client may ask to be allowed under the machine credential whatever the owner.
MACH_ALLOWABLE = frozenset({
    Op.CLOSE, Op.OPEN_DOWNGRADE, Op.LOCKU, Op.DELEGRETURN, Op.LAYOUTRETURN, Op.TEST_STATEID,
    Op.FREE_STATEID, Op.SECINFO, Op.SECINFO_NO_NAME,
})


def principal_of(cred: Credential) -> str:
    """The identity EXCHANGE_ID compares (RFC 8881 §18.35.5 "principal")."""
    if cred.principal is not None:
        return f"krb5:{cred.principal}"
    if cred.pseudo_flavor == 1:
        return f"sys:{cred.uid}"
    return "none"


@dataclass(slots=True, frozen=True)
class ExchangeRequest:
    """EXCHANGE_ID's arguments as the case matrix reads them (RFC 8881 §18.35.1): the
    state_protect4_a op bitmaps already turned into operation numbers."""

    ownerid: bytes
    verifier: bytes
    flags: int
    how: int
    must_enforce: frozenset[int] = frozenset()
    must_allow: frozenset[int] = frozenset()
    impl: object | None = None


@dataclass(slots=True, frozen=True)
class ExchangeOutcome:
    """The record EXCHANGE_ID answers with and its eir_flags (RFC 8881 §18.35.2); the
    operation builds the wire reply from these."""

    client: Client
    flags: int


@dataclass(slots=True, eq=False)
class Client:
    clientid: int
    ownerid: bytes
    verifier: bytes
    principal: str
    confirmed: bool = False
    #: CREATE_SESSION's own one-slot replay cache (RFC 8881 §18.36.4).
    cs_seq: int = 0
    cs_reply: bytes | None = None
    flags: int = 0
    sp_how: int = StateProtect.NONE
    enforce: frozenset[int] = frozenset()
    allow: frozenset[int] = frozenset()
    #: The client's nfs_impl_id4 as decoded (recorded for the admin view only).
    impl: object | None = None
    sessions: dict[bytes, Session] = field(default_factory=dict)
    reclaim_complete: bool = False
    created: float = field(default_factory=time.monotonic)
    last_renew: float = field(default_factory=time.monotonic)
    peer: str = ""
    state_probe: Callable[[int], bool] | None = None
    #: Whether this client's stable record was written in this boot (before its first open;
    #: cleared when the record is removed because its state was revoked).
    recorded: bool = False

    def renew(self) -> None:
        self.last_renew = time.monotonic()

    def lease_expired(self, lease_time: float) -> bool:
        return time.monotonic() - self.last_renew > lease_time

    def has_state(self) -> bool:
        """Whether the client holds anything a newcomer must not take over: sessions, or
        opens and locks (``state_probe``, set by the protocol state).  DESTROY_CLIENTID
        answers NFS4ERR_CLIENTID_BUSY while this holds (RFC 8881 §18.50.3)."""
        return bool(self.sessions) or self.has_locking_state()

    def has_locking_state(self) -> bool:
        """Whether the client holds opens, locks or revoked stateids it has not freed: the
        state the courteous rules keep after the lease (RFC 8881 §8.3).  Sessions are not
        such state; they go with the client record when its lease runs out."""
        return self.state_probe is not None and self.state_probe(self.clientid)

    def describe(self) -> str:
        return f"client {self.clientid:#018x} owner={self.ownerid[:48]!r} principal={self.principal} peer={self.peer}"


@dataclass(slots=True)
class _Owner:
    confirmed: Client | None = None
    unconfirmed: Client | None = None


class ClientTable:
    def __init__(self, server_owner: bytes, server_scope: bytes, lease_time: int, *, boot_epoch: int = 1):
        self.boot_epoch = boot_epoch & 0xFFFFFFFF
        self.server_owner = server_owner
        self.server_scope = server_scope
        self.lease_time = lease_time
        self._owners: dict[bytes, _Owner] = {}
        self._by_id: dict[int, Client] = {}
        #: Whether a client id holds opens or locks (set by the protocol state).
        self.state_probe: Callable[[int], bool] | None = None
        #: Called when a record goes away (the session table forgets its sessions).
        self.on_drop: Callable[[Client], None] | None = None
        #: Called when a confirmed client is removed because its lease ran out (its stable
        #: record goes too: it lost its right to reclaim, RFC 8881 §8.4.3).
        self.on_expire: Callable[[Client], None] | None = None

    # -- queries -------------------------------------------------------------------------------
    def get(self, clientid: int) -> Client | None:
        return self._by_id.get(clientid)

    def require(self, clientid: int) -> Client:
        c = self._by_id.get(clientid)
        if c is None:
            if self.epoch_of(clientid) != self.boot_epoch:
                raise Nfs4Error(Stat.STALE_CLIENTID, f"client id {clientid:#018x} is from before a restart "
                                f"(epoch {self.epoch_of(clientid)}, now {self.boot_epoch})")
            raise Nfs4Error(Stat.STALE_CLIENTID, f"client id {clientid:#018x} unknown")
        return c

    def __len__(self) -> int:
        return len(self._by_id)

    def clients(self) -> list[Client]:
        return list(self._by_id.values())

    def owner_count(self) -> int:
        """Client owners known (each has at most one confirmed and one unconfirmed record)."""
        return len(self._owners)

    def knows_owner(self, ownerid: bytes) -> bool:
        return ownerid in self._owners

    def discard_empty_owner(self, ownerid: bytes) -> None:
        """Forget an owner entry that holds no record (left by a refused EXCHANGE_ID)."""
        rec = self._owners.get(ownerid)
        if rec is not None and rec.confirmed is None and rec.unconfirmed is None:
            del self._owners[ownerid]

    # -- changes -------------------------------------------------------------------------------
    def _new_id(self) -> int:
        while True:
            cid = (self.boot_epoch << 32) | secrets.randbits(32)
            if cid and cid not in self._by_id:
                return cid

    def epoch_of(self, clientid: int) -> int:
        """The boot epoch a client id was issued under."""
        return clientid >> 32

    def _new_record(self, args: ExchangeRequest, principal: str, peer: str) -> Client:
        c = Client(self._new_id(), args.ownerid, args.verifier, principal, peer=peer, state_probe=self.state_probe)
        # CREATE_SESSION must use the sequence id after the slot's last one; a new client
        # starts at eir_sequenceid 1, as the Linux server does (clients and test suites count
        # the next CREATE_SESSION from there).
        c.cs_seq = 0
        self._by_id[c.clientid] = c
        return c

    def _drop(self, c: Client, why: str) -> None:
        self._by_id.pop(c.clientid, None)
        rec = self._owners.get(c.ownerid)
        if rec is not None:
            if rec.confirmed is c:
                rec.confirmed = None
            if rec.unconfirmed is c:
                rec.unconfirmed = None
            if rec.confirmed is None and rec.unconfirmed is None:
                del self._owners[c.ownerid]
        if self.on_drop is not None:
            self.on_drop(c)
        for s in list(c.sessions.values()):
            s.destroy()
        c.sessions.clear()
        log.info("%s removed: %s", c.describe(), why)

    def exchange_id(self, args: ExchangeRequest, cred: Credential, peer: str) -> ExchangeOutcome:
        """RFC 8881 §18.35.5, every case; returns the record and eir_flags or raises Nfs4Error."""
        if args.flags & ~int(
            ExchgIdFlag.SUPP_MOVED_REFER | ExchgIdFlag.SUPP_MOVED_MIGR | ExchgIdFlag.BIND_PRINC_STATEID
            | ExchgIdFlag.MASK_PNFS | ExchgIdFlag.UPD_CONFIRMED_REC_A
        ):
            raise Nfs4Error(Stat.INVAL, f"unknown eia_flags {args.flags:#x}")
        enforce: frozenset[int] = frozenset()
        allow: frozenset[int] = frozenset()
        if args.how == StateProtect.MACH_CRED:
            # State protection by the machine credential needs a GSS identity with integrity
            # (RFC 8881 §2.10.8.3); under AUTH_SYS anyone could claim it.
            if cred.principal is None or cred.gss_service not in (2, 3):
                raise Nfs4Error(Stat.INVAL, "SP4_MACH_CRED requires RPCSEC_GSS with integrity or privacy")
            enforce = args.must_enforce & MACH_ENFORCEABLE
            allow = args.must_allow & MACH_ALLOWABLE
        elif args.how == StateProtect.SSV:
            raise Nfs4Error(Stat.ENCR_ALG_UNSUPP, "SP4_SSV is not supported")

        principal = principal_of(cred)
        update = bool(args.flags & ExchgIdFlag.UPD_CONFIRMED_REC_A)
        rec = self._owners.setdefault(args.ownerid, _Owner())
        conf = rec.confirmed
        result: Client
        confirmed_r = False
        if update:
            if conf is None:
                raise Nfs4Error(Stat.NOENT, "update of an unknown or unconfirmed client")  # case 7
            if conf.principal != principal:
                raise Nfs4Error(Stat.PERM, "update by a different principal")  # case 9
            if conf.verifier != args.verifier:
                raise Nfs4Error(Stat.NOT_SAME, "update with a different verifier")  # case 8
            result, confirmed_r = conf, True  # case 6: update properties
        elif conf is not None and conf.verifier == args.verifier and conf.principal == principal:
            result, confirmed_r = conf, True  # case 2: existing confirmed client, same everything
        elif conf is not None and conf.principal != principal and conf.has_state():
            # case 3: someone else owns this co_ownerid and it is still in use (sessions,
            # opens or locks; a courteous server keeps them past the lease).  Without state
            # the record is replaced as for a new owner, as the Linux server does.
            log.warning("EXCHANGE_ID from %s as %s refused (NFS4ERR_CLID_INUSE): owner %r belongs to %s",
                        peer, principal, args.ownerid[:48], conf.describe())
            raise Nfs4Error(Stat.CLID_INUSE, "client owner registered by another principal")
        else:
            # case 1 (new), case 3 with a stateless holder, case 5 (client restart:
            # new verifier; the old record lives until the new one is confirmed) and case 4
            # (an unconfirmed record is replaced).
            if rec.unconfirmed is not None:
                self._drop(rec.unconfirmed, "replaced by a newer EXCHANGE_ID")
                rec = self._owners.setdefault(args.ownerid, _Owner(conf))
            if conf is not None and conf.principal != principal:
                self._drop(conf, "owner re-registered by another principal while it held no state")
                rec = self._owners.setdefault(args.ownerid, _Owner())
            result = self._new_record(args, principal, peer)
            rec.unconfirmed = result
            if conf is not None and conf.verifier != args.verifier and conf.principal == principal:
                log.info("client owner %r re-registered from %s with a new verifier (client restart); "
                         "previous state of %s is discarded when the new record is confirmed",
                         args.ownerid[:48], peer, conf.describe())
        if result.confirmed or not confirmed_r:
            result.flags = args.flags & int(ExchgIdFlag.SUPP_MOVED_REFER | ExchgIdFlag.BIND_PRINC_STATEID)
            result.sp_how, result.enforce, result.allow = args.how, enforce, allow
            result.impl = args.impl
        flags = result.flags | int(ExchgIdFlag.USE_NON_PNFS)
        if confirmed_r:
            flags |= int(ExchgIdFlag.CONFIRMED_R)
        return ExchangeOutcome(result, flags)

    def confirm(self, c: Client) -> None:
        """CREATE_SESSION succeeded on an unconfirmed record: it becomes the owner's confirmed
        client and any earlier confirmed record (client restart, case 5) goes away."""
        rec = self._owners.setdefault(c.ownerid, _Owner())
        old = rec.confirmed
        if old is not None and old is not c:
            self._drop(old, "client restarted (new verifier confirmed)")
            rec = self._owners.setdefault(c.ownerid, _Owner())
            c.recorded = c.recorded or old.recorded  # one stable record per owner
        rec.confirmed = c
        if rec.unconfirmed is c:
            rec.unconfirmed = None
        c.confirmed = True
        log.info("%s confirmed", c.describe())

    def expire(self, c: Client, why: str) -> None:
        confirmed = c.confirmed
        self._drop(c, why)
        if confirmed and self.on_expire is not None:
            self.on_expire(c)

    def destroy(self, c: Client) -> None:
        self._drop(c, "DESTROY_CLIENTID")

    def expire_idle(self) -> int:
        """Drop every record whose lease passed and that holds no opens, locks or revoked
        stateids: unconfirmed records, and confirmed clients with nothing but sessions (a
        client that vanished without DESTROY_SESSION/DESTROY_CLIENTID).  Their sessions,
        slots and reply caches go with them.  Expired clients with locking state stay as
        courtesy clients (the service's laundromat decides).  Returns how many."""
        n = 0
        for c in list(self._by_id.values()):
            if c.lease_expired(self.lease_time) and (not c.confirmed or not c.has_locking_state()):
                self.expire(c, "lease expired")
                n += 1
        return n
