"""``securenfs probe``: check a server from a client machine, as an administrator would.

It connects as the current Kerberos user (a credential cache) or with AUTH_SYS, mounts a
path the way the Linux client does, shows the flavor in use and the export's flavor list
(SECINFO_NO_NAME, RFC 8881 §18.45), lists the directory with the owner strings exactly as
the server sends them (RFC 8881 §5.9), and with ``--write`` creates, writes, reads back and
removes a test file.

Every failure is reported with the step it happened at, the protocol's own words and the
likely cause and fix.  The words come from the tables the server uses for its logs:
:mod:`securenfs.rpcsec_gss.gsserrors` for GSS-API status codes,
:func:`securenfs.proto.constants.stat_text` for NFS4ERR codes and
:data:`securenfs.rpc.constants.AUTH_STAT_TEXT` for RPC authentication errors; what this
module adds is what the failing step means for the person probing.  ``--sec auto`` (the default)
negotiates the flavor as a mount without ``sec=`` does (SECINFO, RFC 8881 §2.6.3.1.1.5).
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import errno
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from securenfs.client.gss import GssClientAuth
from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.client.rpc import AuthSys, ClientAuth, RpcClient, RpcError
from securenfs.proto.constants import Attr, FType, Op, Stat, stat_text
from securenfs.proto.xdr41 import SECINFO4res, secinfo4
from securenfs.rpc.auth import FLAVORS, flavor_name
from securenfs.rpc.constants import AUTH_STAT_TEXT, NFS_PROGRAM, NFS_V4, AuthFlavor, AuthStat
from securenfs.rpcsec_gss.flavors import triple_for_name, triple_for_oid_service
from securenfs.rpcsec_gss.gsserrors import Cause, GssFailure

SEC_CHOICES = FLAVORS
#: Flavors ``--sec`` takes: one of SEC_CHOICES, or ``auto`` to negotiate as a mount without ``sec=``.
SEC_OPTIONS = ("auto", *SEC_CHOICES)
DEFAULT_PORT = 2049
LIST_ATTRS = [Attr.TYPE, Attr.FILEID, Attr.SIZE, Attr.MODE, Attr.OWNER, Attr.OWNER_GROUP]
TEST_DATA = b"securenfs probe: written, read back and removed\n"


class Outcome(enum.IntEnum):
    """Exit status of ``securenfs probe``, one per kind of failure."""

    OK = 0
    FAILED = 1  # anything not listed below
    USAGE = 2
    UNREACHABLE = 3  # no server listens, or it does not answer
    AUTH = 4  # Kerberos on this side, or the server refused the credential
    WRONGSEC = 5  # the export does not allow the flavor used
    NOT_EXPORTED = 6  # the path does not exist in the server's namespace
    WRITE = 7  # the listing worked, the write test did not


@dataclass(slots=True)
class Failure:
    step: str
    error: str
    cause: str
    fix: str
    outcome: Outcome


class ProbeFailed(Exception):
    def __init__(self, failure: Failure):
        super().__init__(failure.error)
        self.failure = failure


@dataclass(slots=True)
class Entry:
    name: str
    type: str
    mode: str
    size: int
    owner: str
    owner_group: str


@dataclass(slots=True)
class Report:
    server: str
    path: str
    sec_requested: str
    sec: str = ""
    #: ``sec`` was chosen from the export's SECINFO list (``--sec auto``).
    negotiated: bool = False
    identity: str = ""
    export_flavors: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    write: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None

    @property
    def outcome(self) -> Outcome:
        return self.failure.outcome if self.failure is not None else Outcome.OK


def parse_server(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``."""
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected HOST[:PORT] or [ADDRESS]:PORT")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected HOST[:PORT] or [ADDRESS]:PORT")
    return host, int(port)


def flavor_of(entry: secinfo4) -> str:
    """The configuration name (krb5p, sys, ...) of one SECINFO entry."""
    gss = entry.flavor_info
    if entry.flavor == AuthFlavor.RPCSEC_GSS and gss is not None:
        t = triple_for_oid_service(bytes(gss.oid), gss.service, gss.qop)
        return t.name if t is not None else f"RPCSEC_GSS service {gss.service}"
    return flavor_name(entry.flavor)


_TYPE_LETTER: dict[int, str] = {FType.DIR: "d", FType.LNK: "l", FType.REG: "-"}


def _mode_text(ftype: int, mode: int) -> str:
    kind = _TYPE_LETTER.get(ftype, "?")
    bits = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    return kind + bits


def _text(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


# -- failures in words -----------------------------------------------------------------------------

def connect_failure(host: str, port: int, exc: BaseException, timeout: float) -> Failure:
    where = f"{host}:{port}"
    if isinstance(exc, TimeoutError):
        return Failure("connect", f"no answer from {where} within {timeout:g} s",
                       "the host is down, or a firewall drops the packets",
                       f"check that the host is up and that TCP port {port} is open between here and it",
                       Outcome.UNREACHABLE)
    if isinstance(exc, socket.gaierror):
        return Failure("connect", f"cannot resolve {host!r}: {exc.strerror}",
                       "the name is not in DNS (or /etc/hosts) as seen from this machine",
                       "use the server's fully qualified name as DNS knows it, or its address",
                       Outcome.UNREACHABLE)
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return Failure("connect", f"connection to {where} refused",
                       "no server is listening on that address and port",
                       "start it (securenfs serve) and compare the address with its server.listen "
                       "setting (`securenfs ping` from the server itself tells the two apart)",
                       Outcome.UNREACHABLE)
    return Failure("connect", f"cannot connect to {where}: {exc}",
                   "the network between here and the server", "check routing and firewalls",
                   Outcome.UNREACHABLE)


def gss_failure(step: str, f: GssFailure, principal: str) -> Failure:
    """A GSS-API failure on this side, in the words the server uses for its own."""
    fix = f.hint
    if f.cause is Cause.MISSING_PRINCIPAL:
        fix = (f"the KDC has no service principal {principal}: create it (kadmin addprinc -randkey) "
               "and put it in the server's keytab, or name the one the server uses with --principal")
    return Failure(step, f"GSS {f.major_text}: {f.minor_text or '(no detail)'}", f.cause.value, fix,
                   Outcome.AUTH)


def rpc_failure(step: str, exc: RpcError, sec: str) -> Failure:
    reply = exc.reply
    if reply.accepted or reply.auth_stat is None:
        return Failure(step, str(exc), "the server rejected the call", "see the server's log", Outcome.FAILED)
    stat = AuthStat(reply.auth_stat) if reply.auth_stat in AuthStat._value2member_map_ else None
    words = AUTH_STAT_TEXT.get(stat, "") if stat is not None else ""
    name = stat.name if stat is not None else f"auth_stat {reply.auth_stat}"
    if sec != "sys" and stat in (AuthStat.AUTH_BADCRED, AuthStat.AUTH_REJECTEDCRED, AuthStat.AUTH_TOOWEAK):
        cause = "the server does not serve Kerberos right now"
        fix = ("on the server, `securenfs status` shows whether its Kerberos flavors are on and which "
               "start-up check holds them back; `securenfs preflight` explains the failing check")
    elif sec == "sys":
        cause = "the server does not accept AUTH_SYS here"
        fix = "use a Kerberos flavor (--sec krb5p) with a ticket (kinit)"
    else:
        cause = "the server refused this credential"
        fix = "see the server's log for the reason, then get a new ticket (kinit) and retry"
    return Failure(step, f"RPC authentication error {name} ({words})", cause, fix, Outcome.AUTH)


def nfs_failure(step: str, exc: Nfs4Error, *, path: str, sec: str, allowed: Sequence[str] = (),
                identity: str = "") -> Failure:
    status = exc.status
    error = f"{Op(exc.op).name if exc.op in Op._value2member_map_ else exc.op}: {stat_text(status)}"
    if status == Stat.WRONGSEC:
        allows = ", ".join(allowed) or "no flavor this client may use"
        usable = [f for f in allowed if f in SEC_CHOICES]
        fix = f"add {sec} to the export's sec list on the server"
        if usable:
            fix = f"rerun with --sec {usable[0]}, or {fix}"
        return Failure(step, error, f"{path} does not allow {sec}; the export allows {allows}", fix, Outcome.WRONGSEC)
    if status == Stat.NOENT and step == "mount":
        return Failure(step, error, f"{path} is not exported: no such path in the server's pseudo file system",
                       "probe / to see the exported paths, or check the server's [[exports]] pseudo paths",
                       Outcome.NOT_EXPORTED)
    if status in (Stat.ACCESS, Stat.PERM) and step.startswith("write"):
        who = f" as {identity}" if identity else ""
        return Failure(step, error, f"the server maps this user{who} to an id that may not write in {path} "
                       "(directory mode bits or ACL, root squash, or an unmapped principal becoming nobody)",
                       "check the directory's owner and mode on the server and `securenfs idmap principal` "
                       "for this user; an unmapped name is logged by the server", Outcome.WRITE)
    if status == Stat.ROFS and step.startswith("write"):
        return Failure(step, error, "the export, or this client's rule, is read-only",
                       "use access = \"rw\" in the export's client rule", Outcome.WRITE)
    if status == Stat.ACCESS:
        who = f" ({identity} as the server maps it)" if identity else ""
        return Failure(step, error, f"this user{who} may not read {path}",
                       "check the directory's owner and mode on the server", Outcome.FAILED)
    if status in (Stat.DELAY, Stat.GRACE):
        return Failure(step, error, "the server is starting up (grace period) or busy",
                       "retry in a few seconds", Outcome.FAILED)
    return Failure(step, error, "the server refused the operation", "see the server's log", Outcome.FAILED)


# -- the probe itself -------------------------------------------------------------------------------

@dataclass(slots=True)
class Options:
    host: str
    port: int
    path: str
    sec: str
    ccache: str | None
    principal: str | None
    uid: int
    gid: int
    write: bool
    timeout: float


def _sys_auth(opts: Options) -> AuthSys:
    return AuthSys(uid=opts.uid, gid=opts.gid, machinename=socket.gethostname()[:255])


def _sys_identity(opts: Options) -> str:
    return f"uid {opts.uid} gid {opts.gid} (AUTH_SYS)"


async def _kerberos(opts: Options, rpc: RpcClient, report: Report, sec: str) -> GssClientAuth:
    """An RPCSEC_GSS context as the ticket holder of the credential cache, calls protected as
    ``sec``; ProbeFailed with the reason otherwise."""
    import gssapi
    from gssapi.raw.misc import GSSError

    from securenfs.client.gss import GssClientError
    from securenfs.rpcsec_gss.constants import GSS_S_CREDENTIALS_EXPIRED
    from securenfs.rpcsec_gss.gsserrors import translate, translate_exception

    target = opts.principal or f"nfs@{opts.host}"
    try:
        store: dict[bytes | str, bytes | str] = {"ccache": opts.ccache} if opts.ccache else {}
        creds = gssapi.Credentials(usage="initiate", store=store) if store else gssapi.Credentials(usage="initiate")
        report.identity = str(creds.name)
        failure = translate(GSS_S_CREDENTIALS_EXPIRED, 0) if creds.lifetime == 0 else None
    except GSSError as exc:
        failure = translate_exception(exc)
    if failure is not None:
        probe_failure = gss_failure("credentials", failure, target)
        if opts.ccache and opts.ccache not in probe_failure.error:
            probe_failure.error += f" (credential cache {opts.ccache})"
        raise ProbeFailed(probe_failure)
    try:
        auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, target, creds=creds,
                                             service=triple_for_name(sec).service, timeout=opts.timeout)
    except GSSError as exc:
        raise ProbeFailed(gss_failure("gss-context", translate_exception(exc), target)) from None
    except GssClientError as exc:
        if exc.failure is None:
            raise ProbeFailed(Failure("gss-context", str(exc), "a defective reply to the context set-up",
                                      "see the server's log", Outcome.AUTH)) from None
        f = exc.failure
        raise ProbeFailed(Failure("gss-context", f"the server refused the GSS context: GSS {f.major_text}: "
                                  f"{f.minor_text or '(no detail)'}", f.cause.value,
                                  f"on the server: {f.hint}", Outcome.AUTH)) from None
    except RpcError as exc:
        raise ProbeFailed(rpc_failure("gss-context", exc, sec)) from None
    return auth


async def _secinfo(client: Nfs4Client, path: str) -> list[str]:
    """The flavors of ``path`` (SECINFO_NO_NAME after the LOOKUPs, RFC 8881 §2.6.3.1.1.8)."""
    from securenfs.nfs4.xdr4 import SecinfoNoNameArgs
    from securenfs.proto.constants import SecinfoStyle

    rep = await client.seq([*client.path_ops(path), (Op.SECINFO_NO_NAME, SecinfoNoNameArgs(SecinfoStyle.CURRENT_FH))])
    res = rep.results[-1][1]
    assert isinstance(res, SECINFO4res)
    return [flavor_of(e) for e in res.resok4 or []]


async def _component_flavors(client: Nfs4Client, comps: Sequence[str], i: int) -> list[str]:
    """The flavors of ``comps[i]``: SECINFO of its name in its parent, which never answers
    WRONGSEC (RFC 8881 §2.6.3.1.1.5), as the Linux client asks; the root's from
    SECINFO_NO_NAME when ``comps`` is empty."""
    from securenfs.nfs4.xdr4 import NameArgs

    if not comps:
        return await _secinfo(client, "/")
    rep = await client.seq([*client.path_ops("/".join(comps[:i])), (Op.SECINFO, NameArgs(comps[i].encode()))])
    res = rep.results[-1][1]
    assert isinstance(res, SECINFO4res)
    return [flavor_of(e) for e in res.resok4 or []]


async def _allowed_after_wrongsec(client: Nfs4Client, path: str, sec: str) -> tuple[str, list[str]]:
    """The first directory on the way to ``path`` that refuses ``sec``, and its flavors (the
    walk to its parent uses only directories that allowed ``sec``)."""
    comps = [c for c in path.split("/") if c]
    for i in range(len(comps)):
        try:
            flavors = await _component_flavors(client, comps, i)
        except (Nfs4Error, RpcError, ConnectionError, TimeoutError):
            break
        if sec not in flavors:
            return "/" + "/".join(comps[: i + 1]), flavors
    return path, []


class _Negotiator:
    """``--sec auto``: the flavor a client that was given no ``sec=`` would end up with.

    Walking down the path, each component's flavors come from SECINFO of its name in its
    parent (never WRONGSEC, RFC 8881 §2.6.3.1.1.5); the client switches to the first one it
    can use before it goes on.  A flavor an export allows is allowed on every pseudo
    directory above it (they allow the union of the exports below), so the walk so far stays
    valid.  Kerberos flavors are usable when a context could be set up."""

    def __init__(self, opts: Options, report: Report, gss: GssClientAuth | None, krb_failure: Failure | None):
        self.opts = opts
        self.report = report
        self.gss = gss
        self.krb_failure = krb_failure

    def usable(self, flavors: Sequence[str]) -> list[str]:
        return [f for f in flavors if f == "sys" or (self.gss is not None and f in SEC_CHOICES)]

    def use_initial(self) -> None:
        """Before the negotiation: krb5i with a context, else AUTH_SYS (the client is made
        with the matching auth)."""
        self._note("krb5i" if self.gss is not None else "sys")

    def use(self, client: Nfs4Client, flavor: str) -> None:
        if flavor == "sys" or self.gss is None:
            client.auth = _sys_auth(self.opts)
        else:
            self.gss.service = triple_for_name(flavor).service
            client.auth = self.gss
        self._note(flavor)

    def _note(self, flavor: str) -> None:
        self.report.sec = flavor
        if flavor == "sys" or self.gss is None:
            self.report.identity = _sys_identity(self.opts)
        else:
            self.report.identity = str(self.gss.ctx.initiator_name)

    async def run(self, client: Nfs4Client) -> None:
        comps = [c for c in self.opts.path.split("/") if c]
        for i in range(max(len(comps), 1)):
            where = "/" + "/".join(comps[: i + 1])
            try:
                flavors = await _component_flavors(client, comps, i)
            except Nfs4Error as exc:
                raise ProbeFailed(nfs_failure("mount", exc, path=where, sec=self.report.sec)) from None
            usable = self.usable(flavors)
            if not usable:
                allows = ", ".join(flavors) or "nothing"
                if self.krb_failure is not None:
                    f = self.krb_failure
                    raise ProbeFailed(Failure(f.step, f.error, f"{where} allows {allows}, and Kerberos failed here: "
                                              f"{f.cause}", f.fix, f.outcome))
                raise ProbeFailed(Failure("negotiate", f"{where} allows {allows}",
                                          "this client can use none of these flavors",
                                          "add a flavor this client has to the export's sec list", Outcome.WRONGSEC))
            self.use(client, usable[0])


async def _write_test(client: Nfs4Client, fh: bytes, path: str, report: Report) -> None:
    name = f".securenfs-probe-{socket.gethostname()[:40]}-{os.getpid()}"
    where = path.rstrip("/") + "/" + name
    report.write = {"file": where}
    try:
        f = await client.open(fh, name, create=True, attrs={Attr.MODE: 0o600})
    except Nfs4Error as exc:
        raise ProbeFailed(nfs_failure("write: create", exc, path=path, sec=report.sec,
                                      identity=report.identity)) from None
    created = True
    try:
        try:
            res = await client.write(f.fh, 0, TEST_DATA, f.stateid)
            back = await client.read(f.fh, 0, len(TEST_DATA) + 16, f.stateid)
            attrs = await client.getattr(f.fh, [Attr.OWNER, Attr.OWNER_GROUP])
            await client.close_file(f)
        except Nfs4Error as exc:
            raise ProbeFailed(nfs_failure("write: write and read back", exc, path=path, sec=report.sec,
                                          identity=report.identity)) from None
        report.write.update(written=res.count, read_back=len(back.data),
                            identical=bytes(back.data) == TEST_DATA,
                            owner=_text(attrs.get(Attr.OWNER)), owner_group=_text(attrs.get(Attr.OWNER_GROUP)))
        if bytes(back.data) != TEST_DATA:
            raise ProbeFailed(Failure("write: read back", "the data read back differs from what was written",
                                      "a server or storage fault", "see the server's log", Outcome.WRITE))
        await client.remove(fh, name)
        created = False
        report.write["removed"] = True
    finally:
        if created:
            try:
                await client.remove(fh, name)
            except (Nfs4Error, RpcError, ConnectionError, TimeoutError):
                report.write["removed"] = False


async def probe(opts: Options) -> Report:
    report = Report(f"{opts.host}:{opts.port}", opts.path, opts.sec, sec="" if opts.sec == "auto" else opts.sec,
                    negotiated=opts.sec == "auto")
    try:
        rpc = await asyncio.wait_for(RpcClient.connect(opts.host, opts.port), opts.timeout)
    except (TimeoutError, OSError) as exc:
        report.failure = connect_failure(opts.host, opts.port, exc, opts.timeout)
        return report
    client: Nfs4Client | None = None
    step = "gss-context"
    try:
        negotiator: _Negotiator | None = None
        auth: ClientAuth
        if opts.sec == "sys":
            auth, report.identity = _sys_auth(opts), _sys_identity(opts)
        elif opts.sec != "auto":
            auth = await _kerberos(opts, rpc, report, opts.sec)
        else:
            gss: GssClientAuth | None = None
            krb_failure: Failure | None = None
            try:
                # The SECINFO answers decide the flavor: they are asked for under integrity
                # (RFC 2203 §5.3.2.2), so nobody on the path can talk the probe down to a weaker one.
                gss = await _kerberos(opts, rpc, report, "krb5i")
            except ProbeFailed as exc:
                krb_failure = exc.failure
            negotiator = _Negotiator(opts, report, gss, krb_failure)
            negotiator.use_initial()
            auth = gss if gss is not None else _sys_auth(opts)
        client = Nfs4Client(rpc, auth)
        step = "session"
        try:
            await client.establish()
        except RpcError as exc:
            if negotiator is None or negotiator.gss is None:
                raise
            # The server set the context up but serves no Kerberos flavor now: go on with AUTH_SYS.
            negotiator.gss, negotiator.krb_failure = None, rpc_failure("session", exc, "krb5i")
            negotiator.use(client, "sys")
            await client.establish()
        if negotiator is not None:
            step = "negotiate"
            await negotiator.run(client)
        try:
            await client.reclaim_complete()
        except Nfs4Error as exc:
            if exc.status != Stat.COMPLETE_ALREADY:
                raise
        step = "mount"
        try:
            fh = await client.lookup_path(opts.path)
        except Nfs4Error as exc:
            where, allowed = opts.path, list[str]()
            if exc.status == Stat.WRONGSEC:
                where, allowed = await _allowed_after_wrongsec(client, opts.path, report.sec)
            raise ProbeFailed(nfs_failure("mount", exc, path=where, sec=report.sec, allowed=allowed)) from None
        step = "secinfo"
        report.export_flavors = await _secinfo(client, opts.path)
        step = "list"
        for _cookie, name, attrs in sorted(await client.readdir_all(fh, attrs=LIST_ATTRS), key=lambda e: e[1]):
            report.entries.append(Entry(name.decode("utf-8", "replace"),
                                        FType(attrs[Attr.TYPE]).name.lower() if attrs.get(Attr.TYPE) in FType._value2member_map_
                                        else str(attrs.get(Attr.TYPE)),
                                        _mode_text(attrs.get(Attr.TYPE, 0), attrs.get(Attr.MODE, 0)),
                                        int(attrs.get(Attr.SIZE, 0)), _text(attrs.get(Attr.OWNER)),
                                        _text(attrs.get(Attr.OWNER_GROUP))))
        if opts.write:
            step = "write"
            await _write_test(client, fh, opts.path, report)
        try:
            await client.destroy_session()
            await client.destroy_clientid()
        except (Nfs4Error, RpcError):
            pass  # the server forgets the client at lease expiry anyway
    except ProbeFailed as exc:
        report.failure = exc.failure
    except Nfs4Error as exc:
        report.failure = nfs_failure(step, exc, path=opts.path, sec=report.sec, identity=report.identity)
    except RpcError as exc:
        report.failure = rpc_failure(step, exc, report.sec)
    except (ConnectionError, TimeoutError) as exc:
        report.failure = Failure(step, f"{type(exc).__name__}: {exc}", "the server closed the connection or stopped "
                                 "answering", "see the server's log", Outcome.UNREACHABLE)
    finally:
        await (client.close() if client is not None else rpc.close())
    return report


# -- output ------------------------------------------------------------------------------------------

def render(report: Report) -> str:
    lines = [f"server      {report.server}"]
    if report.identity:
        lines.append(f"as          {report.identity}")
    if report.sec and (report.failure is None or report.export_flavors):
        how = " (negotiated: the first flavor of the export's list this client can use)" if report.negotiated else ""
        lines.append(f"security    {report.sec}{how}")
    if report.export_flavors:
        lines.append(f"export      {report.path} allows {', '.join(report.export_flavors)} (SECINFO_NO_NAME)")
    if report.entries or (report.failure is None or report.failure.step.startswith("write")):
        lines.append(f"listing     {report.path} ({len(report.entries)} entries; owners as the server sends them)")
        for e in report.entries:
            lines.append(f"  {e.mode}  {e.owner:<24} {e.owner_group:<24} {e.size:>10}  {e.name}")
    if report.write:
        w = report.write
        if "identical" in w:
            lines.append(f"write test  {w['file']}: wrote {w['written']} bytes, read back "
                         f"{'identical' if w['identical'] else 'DIFFERENT'}, owner {w['owner']} "
                         f"group {w['owner_group']}, {'removed' if w.get('removed') else 'NOT removed'}")
    if report.failure is None:
        lines.append("result      OK")
    else:
        f = report.failure
        lines += [f"FAILED at {f.step}: {f.error}", f"  likely cause: {f.cause}", f"  fix: {f.fix}"]
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    doc = asdict(report)
    if report.failure is not None:
        doc["failure"]["outcome"] = report.failure.outcome.name.lower()
    doc["outcome"] = report.outcome.name.lower()
    doc["exit_status"] = int(report.outcome)
    return json.dumps(doc, indent=2)


EPILOG = """\
Exit status: 0 everything worked; 3 no server answers; 4 Kerberos or RPC authentication failed;
5 the export does not allow the flavor (NFS4ERR_WRONGSEC); 6 the path is not exported;
7 the write test failed; 1 any other failure; 2 bad arguments.

Examples:
  securenfs probe nfs1.example.com /home --write
  securenfs probe --sec krb5p --principal nfs/nfs1.example.com 10.0.0.5 /home
  securenfs probe --sec sys --uid 1000 --gid 1000 127.0.0.1:2049 /scratch
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="securenfs probe", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mount a path of an NFSv4.1 server as this user, show the flavor and the export's "
                    "flavors, list the directory with owner names, and optionally write a test file.")
    ap.add_argument("server", metavar="SERVER[:PORT]", help="host name or address (port 2049 by default)")
    ap.add_argument("path", nargs="?", default="/", help="path in the server's pseudo file system (default /)")
    ap.add_argument("--sec", choices=SEC_OPTIONS, default="auto",
                    help="security flavor; auto (the default) uses the first flavor of the export's "
                    "SECINFO list this client can use, Kerberos when a ticket is at hand")
    ap.add_argument("--ccache", metavar="FILE", help="Kerberos credential cache (default: KRB5CCNAME or the "
                    "system default)")
    ap.add_argument("--principal", metavar="NAME", help="the server's service principal, nfs/HOST@REALM or "
                    "nfs@HOST (default nfs@SERVER)")
    ap.add_argument("--uid", type=int, default=os.getuid(), help="AUTH_SYS uid (default: yours)")
    ap.add_argument("--gid", type=int, default=os.getgid(), help="AUTH_SYS gid (default: yours)")
    ap.add_argument("--write", action="store_true", help="create, write, read back and remove a test file")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to connect and to set up the Kerberos context (default 10)")
    ap.add_argument("--json", action="store_true", help="print a JSON document instead")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        host, port = parse_server(args.server)
    except ValueError as exc:
        ap.error(str(exc))
    path = "/" + "/".join(c for c in args.path.split("/") if c)
    opts = Options(host, port, path, args.sec, args.ccache, args.principal, args.uid, args.gid, args.write,
                   args.timeout)
    report = asyncio.run(probe(opts))
    sys.stdout.write(to_json(report) + "\n" if args.json else render(report))
    return int(report.outcome)


if __name__ == "__main__":
    sys.exit(main())
