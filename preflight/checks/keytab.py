"""KT-*, KDC-002, GSS-001: the keytab, and proof that it works with the KDC."""

from __future__ import annotations

import re

from keytabs.analysis import (
    Finding,
    Level,
    enctype_finding,
    file_status,
    is_stale_key_error,
    kvno_finding,
    permission_finding,
)
from keytabs.enctypes import enctype_name
from keytabs.kdcprobe import ProbeResult, key_findings, run_probe
from keytabs.keytab import Keytab, KeytabError, Principal, read_keytab
from preflight.context import RunContext
from preflight.registry import check
from preflight.result import Result, Severity, critical, error, ok

# RFC-free but well-known MIT/AD error texts and what they usually mean (design A.5).
ERROR_HINTS = (
    ("clock skew", "The clocks differ too much: see TIME-001/TIME-004."),
    (
        "server .*not found in kerberos database",
        (
            "The KDC has no such service principal: create it, or "
            "fix the name (DNS-003/DNS-004, KRB-005)."
        ),
    ),
    (
        "client .*not found in kerberos database",
        (
            "The principal was deleted or renamed in the KDC (AD: the computer object): "
            "re-create it and export its key, or re-join the host."
        ),
    ),
    (
        "preauthentication failed",
        "The keytab's key is not the KDC's: the keytab is stale (KT-006).",
    ),
    (
        "decrypt integrity check failed",
        (
            "The keytab's key is not the KDC's: the keytab is stale (KT-006), "
            "or two accounts share the principal (AD: `setspn -Q`)."
        ),
    ),
    ("password incorrect", "The keytab's key is not the KDC's: the keytab is stale (KT-006)."),
    ("not found in keytab", "The keytab lacks the key the KDC used: re-export it (KT-006)."),
    ("no key table entry", "The keytab lacks this principal or enctype (KT-002, KT-003)."),
    ("kdc has no support for encryption type", "No common enctype: see KT-003 and KRB-004."),
    ("cannot contact any kdc", "No KDC answers: see KDC-001."),
    ("cannot find kdc", "No KDC is known for the realm: see KDC-001."),
)


def hint(message: str) -> str:
    low = message.lower()
    for needle, text in ERROR_HINTS:
        if re.search(needle, low):
            return text
    return "Run with KRB5_TRACE=/dev/stderr to see the Kerberos library's steps (see the trace in detail)."


def load_keytab(ctx: RunContext) -> Keytab | str:
    def compute() -> Keytab | str:
        try:
            return read_keytab(ctx.settings.keytab)
        except KeytabError as exc:
            return str(exc)

    return ctx.memo("keytab", compute)


def wanted(ctx: RunContext) -> list[Principal]:
    return [Principal.parse(p, ctx.realm) for p in ctx.principals()]


def probe(ctx: RunContext) -> ProbeResult:
    def compute() -> ProbeResult:
        kt = load_keytab(ctx)
        assert not isinstance(kt, str)
        want = [p for p in wanted(ctx) if kt.entries_for(p)]
        host = ctx.fqdn
        mine = [p for p in kt.principals() if p.host and p.host.lower() == host]
        # host/ first: it is the principal meant for getting this machine's own TGT.
        clients = sorted(
            {str(p): p for p in [*want, *mine]}.values(),
            key=lambda p: (p.service != "host", str(p)),
        )
        return run_probe(
            str(ctx.settings.keytab),
            [str(p) for p in clients],
            [str(p) for p in want],
            str(ctx.settings.krb5_conf_path()),
            timeout=max(1.0, ctx.settings.timeout * 0.8),
        )

    return ctx.memo("probe", compute)


def key_diagnosis(ctx: RunContext) -> dict[str, Finding | None]:
    """What the probe says about the key of every principal it used or was asked about."""

    def compute() -> dict[str, Finding | None]:
        from preflight.checks.kerberos import kdc_list

        kt = load_keytab(ctx)
        assert not isinstance(kt, str)
        res = probe(ctx)
        targets = {str(p): p for p in wanted(ctx)}
        for client in res.tgt_errors:
            targets.setdefault(client, Principal.parse(client, ctx.realm))
        # The KDCs are asked for a kvno only when a key was refused.
        refused = any(is_stale_key_error(e) for e in res.tgt_errors.values())
        return key_findings(
            res,
            kt.entries_for,
            list(targets.values()),
            kdc_list(ctx)[0] if refused else [],
            str(ctx.settings.keytab),
            ctx.settings.peer_timeout,
        )

    return ctx.memo("key-diagnosis", compute)


def _result(
    id: str, level: Level, summary: str, detail: str = "", remedy: str = "", key: str = ""
) -> Result:
    return Result(id, Severity(int(level)), summary, detail, remedy, key=key)


@check("KT-001", "KeytabReadable")
def keytab_readable(ctx: RunContext) -> Result:
    """The keytab exists, can be read and is a well-formed keytab."""
    path = ctx.settings.keytab
    fs = file_status(path)
    if not fs.exists:
        f = permission_finding(fs)
        return critical("KT-001", f.summary, remedy=f.remedy)
    kt = load_keytab(ctx)
    if isinstance(kt, str):
        return critical(
            "KT-001",
            f"keytab {path} cannot be used",
            kt,
            "Restore or re-create the keytab from the KDC (kadmin ktadd, ipa-getkeytab, adcli).",
        )
    return ok(
        "KT-001",
        f"keytab {path} holds {len(kt.entries)} keys for {len(kt.principals())} principals",
        entries=len(kt.entries),
    )


@check("KT-007", "KeytabPermissions")
def keytab_permissions(ctx: RunContext) -> Result:
    """The keytab is not readable by other users: whoever reads it can impersonate the server."""
    fs = file_status(ctx.settings.keytab)
    if not fs.exists or not fs.is_file:
        return ok("KT-007", "no keytab file to judge (see KT-001)")
    f = permission_finding(fs)
    return _result("KT-007", f.level, f.summary, f.detail, f.remedy)


@check("KT-002", "KeytabHasServicePrincipal", requires=("KT-001",))
def has_principal(ctx: RunContext) -> list[Result]:
    """The keytab holds every acceptor principal (nfs/<fqdn>@REALM, and host/ when configured)."""
    kt = load_keytab(ctx)
    assert not isinstance(kt, str)
    out = []
    for want in wanted(ctx):
        if kt.entries_for(want):
            out.append(Result("KT-002", Severity.OK, f"keytab holds {want}", key=str(want)))
        else:
            have = ", ".join(str(p) for p in kt.principals()) or "no principals"
            path = ctx.settings.keytab
            out.append(
                Result(
                    "KT-002",
                    Severity.CRITICAL,
                    f"keytab has no key for {want}",
                    f"{path} holds: {have}",
                    f"Add it. MIT: `kadmin -q 'ktadd -k {path} {want}'`; IPA: `ipa service-add {want}` and "
                    f"`ipa-getkeytab -p {want} -k {path}`; AD: `adcli update --service-name=nfs`.",
                    key=str(want),
                    kw={"expected": str(want), "got": have},
                )
            )
    return out


@check("KT-003", "KeytabEnctypesModern", requires=("KT-001",))
def enctypes(ctx: RunContext) -> list[Result]:
    """Each acceptor principal has AES keys; DES, RC4 and 3DES are flagged."""
    kt = load_keytab(ctx)
    assert not isinstance(kt, str)
    out = []
    for want in wanted(ctx):
        entries = kt.entries_for(want)
        if entries:
            f = enctype_finding(want, entries)
            out.append(_result("KT-003", f.level, f.summary, f.detail, f.remedy, f.key))
    if not out:
        out.append(ok("KT-003", "no acceptor principal in the keytab to judge (see KT-002)"))
    return out


@check("KDC-002", "TgtFromKeytab", requires=("KT-001", "KDC-001"))
def tgt_from_keytab(ctx: RunContext) -> Result:
    """A TGT can be obtained with a key from the keytab (proves the key and the KDC agree)."""
    res = probe(ctx)
    if not res.ok:
        return critical(
            "KDC-002",
            "the Kerberos probe failed",
            res.error + ("\n" + res.trace if res.trace else ""),
            hint(res.error),
        )
    if res.tgt_principal:
        return ok(
            "KDC-002",
            f"got a TGT as {res.tgt_principal} from the keytab",
            principal=res.tgt_principal,
        )
    if not res.tgt_errors:
        return critical(
            "KDC-002",
            f"the keytab has no principal for {ctx.fqdn} to get a TGT with",
            remedy="See KT-002.",
        )
    client, first = next(iter(res.tgt_errors.items()))
    detail = "\n".join(f"{p}: {e}" for p, e in res.tgt_errors.items()) + (
        "\n\nKRB5_TRACE:\n" + res.trace if res.trace else ""
    )
    diagnosis = key_diagnosis(ctx).get(client)
    if diagnosis is not None:
        # The key itself is the cause: say so, with the kvnos and the command.
        return critical(
            "KDC-002", f"no TGT from the keytab: {diagnosis.summary}", detail, diagnosis.remedy,
            errors=res.tgt_errors,
        )
    return critical(
        "KDC-002",
        f"no TGT from the keytab: {first}",
        detail,
        hint(first),
        errors=res.tgt_errors,
    )


@check("KT-006", "KeytabKvnoMatchesKdc", requires=("KDC-001", "KT-002"))
def kvno_matches(ctx: RunContext) -> list[Result]:
    """The KDC issues service tickets under a key version the keytab holds.

    It runs when no TGT could be had too (KDC-002 failed): a key the KDC refused is
    reported here per principal as a stale keytab, with the kvno the KDC issues.
    """
    kt = load_keytab(ctx)
    assert not isinstance(kt, str)
    res = probe(ctx)
    diagnosis = key_diagnosis(ctx)
    out = []
    for want in wanted(ctx):
        sp = res.service(str(want))
        entries = kt.entries_for(want)
        f = diagnosis.get(str(want))
        if f is None and not (res.ok and res.tgt_principal):
            # No TGT for a reason that is not this principal's key: KDC-002 says which.
            out.append(
                Result(
                    "KT-006",
                    Severity.CRITICAL,
                    "KeytabKvnoMatchesKdc skipped: KDC-002 did not pass",
                    detail="Fix KDC-002 first; this check depends on it.",
                    key=str(want),
                    skipped_because=["KDC-002"],
                )
            )
            continue
        if f is None:
            f = kvno_finding(want, entries, None, None, res.error)
        remedy = f.remedy or (hint(f.summary) if f.level > Level.OK else "")
        r = _result("KT-006", f.level, f.summary, f.detail, remedy, f.key)
        r.kw = {"key": str(want), "got": sorted({e.kvno for e in entries})}
        if f.kdc_kvno is not None:
            r.kw["expected"] = f.kdc_kvno
        if sp is not None and sp.kvno is not None:
            r.kw.update(expected=sp.kvno, enctype=enctype_name(sp.enctype or 0))
        out.append(r)
    return out


@check("GSS-001", "AcceptorLoopback", requires=("KT-006", "KT-003", "KRB-004"))
def loopback(ctx: RunContext) -> list[Result]:
    """Acquire acceptor credentials from the keytab and accept a context initiated to ourselves."""
    res = probe(ctx)
    out = []
    for want in wanted(ctx):
        sp = res.service(str(want))
        if sp is None:
            continue
        if sp.accept_ok and sp.integ_ok and sp.conf_ok:
            out.append(
                Result(
                    "GSS-001",
                    Severity.OK,
                    f"accepted a krb5 context for {want} (integrity and privacy work)",
                    key=str(want),
                    kw={"initiator": sp.initiator},
                )
            )
        else:
            err = sp.accept_error or sp.ticket_error or "context did not complete"
            out.append(
                Result(
                    "GSS-001",
                    Severity.CRITICAL,
                    f"cannot accept a context for {want}: {err}",
                    res.trace,
                    hint(err),
                    key=str(want),
                )
            )
    if not out:
        out.append(
            error(
                "GSS-001", "no acceptor principal could be tested", remedy="See KT-002 and KDC-002."
            )
        )
    return out
