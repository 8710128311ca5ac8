"""Ask the KDC about our keytab: get a TGT from it, read service ticket kvnos, loop back a context.

The probe runs in a child process so that it can use its own krb5.conf (KRB5_CONFIG is read from
the environment by the krb5 library, and changing os.environ of the caller is not acceptable),
so that it can be killed when a KDC does not answer, and so that a crash in the Kerberos libraries
cannot take the caller down.  Credentials live in a MEMORY ccache that dies with the child;
the caller's ccache is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keytabs.analysis import (
    Finding,
    Level,
    gone_finding,
    is_principal_gone_error,
    is_stale_key_error,
    kvno_finding,
    stale_finding,
)
from keytabs.asreq import key_version
from keytabs.keytab import KeytabEntry, Principal


@dataclass(slots=True)
class ServiceProbe:
    principal: str
    ticket_ok: bool = False
    kvno: int | None = None
    enctype: int | None = None
    ticket_error: str = ""
    accept_ok: bool = False
    accept_error: str = ""
    initiator: str = ""
    integ_ok: bool = False
    conf_ok: bool = False


@dataclass(slots=True)
class ProbeResult:
    ok: bool  # the child ran to completion
    error: str = ""
    tgt_principal: str = ""
    tgt_errors: dict[str, str] = field(default_factory=dict)
    kdc_time_offset: float | None = None  # KDC clock minus local clock, seconds (1 s resolution)
    services: list[ServiceProbe] = field(default_factory=list)
    trace: str = ""

    def service(self, principal: str) -> ServiceProbe | None:
        for s in self.services:
            if s.principal.lower() == principal.lower():
                return s
        return None


def key_findings(
    res: ProbeResult,
    entries_for: Callable[[Principal], list[KeytabEntry]],
    wanted: list[Principal],
    kdcs: list[tuple[str, int]],
    keytab: str,
    timeout: float = 2.0,
) -> dict[str, Finding | None]:
    """Per wanted principal, what the probe says about its key: current, stale (with the
    kvno the KDC issues when it can be learnt) or deleted.  None where the probe could not
    tell (no TGT for reasons that are not the principal's own key)."""
    out: dict[str, Finding | None] = {}
    for want in wanted:
        entries = entries_for(want)
        sp = res.service(str(want))
        own = next((e for p, e in res.tgt_errors.items() if p.lower() == str(want).lower()), "")
        finding: Finding | None = None
        if sp is not None and sp.ticket_ok:
            finding = kvno_finding(want, entries, sp.kvno, None, None, keytab)
        elif sp is not None and is_principal_gone_error(sp.ticket_error):
            finding = gone_finding(want, sp.ticket_error, keytab)
        elif sp is not None:
            finding = Finding(Level.CRITICAL, f"the KDC issues no ticket for {want}: {sp.ticket_error}",
                              key=str(want))
        elif own and is_stale_key_error(own):
            kv = key_version(kdcs, str(want), want.realm, timeout)
            if kv.principal_unknown:
                finding = gone_finding(want, own, keytab)
            else:
                finding = stale_finding(want, entries, kv.kvno, own, keytab, kv.reason)
        elif own and is_principal_gone_error(own):
            finding = gone_finding(want, own, keytab)
        out[str(want)] = finding
    return out


def _project_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def run_probe(
    keytab: str,
    clients: list[str],
    services: list[str],
    krb5_conf: str | None = None,
    timeout: float = 10.0,
) -> ProbeResult:
    """Run the probe in a child process, bounded by ``timeout`` seconds."""
    env = dict(os.environ)
    if krb5_conf:
        env["KRB5_CONFIG"] = str(krb5_conf)
    env.pop("KRB5CCNAME", None)
    env.pop("KRB5_CLIENT_KTNAME", None)
    env.pop("KRB5_KTNAME", None)
    env["KRB5RCACHETYPE"] = "none"  # a loopback probe must not leave replay-cache files behind
    env["PYTHONPATH"] = _project_root() + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.NamedTemporaryFile(prefix="securenfs-krb5trace-", delete=True) as tf:
        env["KRB5_TRACE"] = tf.name
        req = json.dumps({"keytab": str(keytab), "clients": clients, "services": services})
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "keytabs.kdcprobe"],
                input=req,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ProbeResult(
                False,
                error=f"Kerberos probe did not finish within {timeout:g} s (KDC not answering?)",
                trace=_tail(tf.name),
            )
        trace = _tail(tf.name)
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ProbeResult(
            False,
            error=f"Kerberos probe failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}",
            trace=trace,
        )
    services_out = [ServiceProbe(**s) for s in data.pop("services", [])]
    data.pop("trace", None)
    return ProbeResult(services=services_out, trace=trace, **data)


def _tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _gss_error(exc: BaseException) -> str:
    gen = getattr(exc, "gen_message", None)
    if callable(gen):
        try:
            return str(gen())
        except Exception:  # noqa: BLE001 - fall back to str() below
            pass
    return str(exc) or type(exc).__name__


def _child(req: dict[str, Any]) -> dict[str, Any]:
    import gssapi
    import krb5

    from keytabs.tickets import ticket_key_from_gss_token

    out = ProbeResult(True)
    ktname = "FILE:" + req["keytab"]
    ccname = "MEMORY:securenfs-preflight"
    ctx = krb5.init_context()
    kt = krb5.kt_resolve(ctx, ktname.encode())
    for client in req["clients"]:
        try:
            princ = krb5.parse_name_flags(ctx, client.encode())
            opt = krb5.get_init_creds_opt_alloc(ctx)
            before = time.time()
            creds = krb5.get_init_creds_keytab(ctx, princ, opt, kt)
            after = time.time()
            cc = krb5.cc_resolve(ctx, ccname.encode())
            krb5.cc_initialize(ctx, cc, princ)
            krb5.cc_store_cred(ctx, cc, creds)
            out.tgt_principal = client
            # authtime is stamped by the KDC's clock (RFC 4120 §5.3) with 1 s resolution, so the
            # true offset lies in [authtime - after, authtime + 1 - before]; report the value in
            # that interval nearest zero rather than inventing up to a second of skew.
            lo = float(creds.times.authtime) - after
            hi = float(creds.times.authtime) + 1.0 - before
            out.kdc_time_offset = 0.0 if lo <= 0.0 <= hi else (lo if lo > 0 else hi)
            break
        except Exception as exc:  # noqa: BLE001 - every failure is a finding to report
            out.tgt_errors[client] = _gss_error(exc)
    if out.tgt_principal:
        icreds = gssapi.Credentials(usage="initiate", store={"ccache": ccname})
        for svc in req["services"]:
            sp = ServiceProbe(svc)
            out.services.append(sp)
            target = gssapi.Name(svc, gssapi.NameType.kerberos_principal)
            flags = (
                gssapi.RequirementFlag.mutual_authentication
                | gssapi.RequirementFlag.integrity
                | gssapi.RequirementFlag.confidentiality
            )
            try:
                ictx = gssapi.SecurityContext(
                    name=target, creds=icreds, usage="initiate", flags=flags
                )
                token = ictx.step()
                tk = ticket_key_from_gss_token(token)
                sp.ticket_ok, sp.kvno, sp.enctype = True, tk.kvno, tk.enctype
            except Exception as exc:  # noqa: BLE001
                sp.ticket_error = _gss_error(exc)
                continue
            try:
                acreds = gssapi.Credentials(usage="accept", store={"keytab": ktname})
                actx = gssapi.SecurityContext(creds=acreds, usage="accept")
                reply = actx.step(token)
                if reply:
                    ictx.step(reply)
                if not (actx.complete and ictx.complete):
                    raise RuntimeError("context did not complete in one round trip")
                sp.initiator = str(actx.initiator_name)
                sp.accept_ok = True
                mic = ictx.get_signature(b"securenfs preflight")
                actx.verify_signature(b"securenfs preflight", mic)
                sp.integ_ok = True
                wrapped = ictx.wrap(b"securenfs preflight", True)
                sp.conf_ok = actx.unwrap(wrapped.message).message == b"securenfs preflight"
            except Exception as exc:  # noqa: BLE001
                sp.accept_error = _gss_error(exc)
    return asdict(out)


def main() -> int:
    req = json.loads(sys.stdin.read())
    try:
        result = _child(req)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a probe failure
        result = asdict(ProbeResult(False, error=f"{type(exc).__name__}: {_gss_error(exc)}"))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
