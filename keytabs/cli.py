"""``securenfs keytab list|check [FILE]``: inspect and judge a keytab."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import TextIO

from keytabs.analysis import (
    Finding,
    Level,
    describe_entry,
    enctype_finding,
    file_status,
    host_principals,
    kvno_finding,
    permission_finding,
)
from keytabs.keytab import Keytab, KeytabError, Principal, read_keytab

DEFAULT_KEYTAB = "/etc/krb5.keytab"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="securenfs keytab", description="Inspect a Kerberos keytab.")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list the entries (principal, kvno, enctype, timestamp)")
    ls.add_argument("file", nargs="?", default=DEFAULT_KEYTAB)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ck = sub.add_parser("check", help="judge permissions, principals, enctypes and kvnos")
    ck.add_argument(
        "file", nargs="?", default=None, help=f"the keytab (default: the config's, else {DEFAULT_KEYTAB})"
    )
    ck.add_argument(
        "--config",
        help="server configuration: its keytab, hostname, kerberos.principals and krb5_conf "
        "are used unless given here",
    )
    ck.add_argument("--hostname", help="FQDN of this host (default: the system's FQDN)")
    ck.add_argument("--realm", help="realm of the acceptor principals (default: from the keytab)")
    ck.add_argument(
        "--principal",
        action="append",
        default=[],
        help="acceptor principal that must be present (repeatable; default nfs/FQDN@REALM)",
    )
    ck.add_argument("--krb5-conf", help="krb5.conf to use when asking the KDC")
    ck.add_argument("--no-kdc", action="store_true", help="do not ask the KDC for current kvnos")
    ck.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the KDC")
    ck.add_argument("--json", action="store_true", help="print JSON")
    return p


def _fmt_time(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


def cmd_list(kt: Keytab, as_json: bool, out: TextIO) -> int:
    if as_json:
        json.dump(
            {
                "path": kt.path,
                "version": f"0x{kt.version:04x}",
                "entries": [describe_entry(e) for e in kt.entries],
            },
            out,
            indent=2,
        )
        out.write("\n")
        return 0
    out.write(f"Keytab: {kt.path} (format 0x{kt.version:04x}, {len(kt.entries)} entries)\n")
    out.write(f"{'KVNO':>5}  {'TIMESTAMP (UTC)':19}  {'ENCTYPE':28}  PRINCIPAL\n")
    out.writelines(
        f"{e.kvno:>5}  {_fmt_time(e.timestamp):19}  {e.enctype_name:28}  {e.principal}\n"
        for e in kt.entries
    )
    return 0


def check_keytab(
    path: str,
    hostname: str | None = None,
    realm: str | None = None,
    principals: list[str] | None = None,
    krb5_conf: str | None = None,
    ask_kdc: bool = True,
    timeout: float = 10.0,
) -> list[Finding]:
    """All findings for one keytab; never raises for a bad file."""
    findings: list[Finding] = []
    fs = file_status(path)
    perm = permission_finding(fs)
    findings.append(perm)
    if not fs.exists:
        return findings
    try:
        kt = read_keytab(path)
    except KeytabError as exc:
        findings.append(
            Finding(
                Level.CRITICAL,
                "keytab cannot be used",
                detail=str(exc),
                remedy="Re-create the keytab from the KDC (ktadd / ipa-getkeytab / adcli).",
            )
        )
        return findings
    fqdn = (hostname or socket.getfqdn()).lower().rstrip(".")
    mine = host_principals(kt, fqdn)
    findings.append(
        Finding(
            Level.OK,
            f"acceptor principals for {fqdn}: {', '.join(map(str, mine)) or 'none'}",
        )
    )
    if realm is None:
        realms = sorted({p.realm for p in kt.principals()})
        realm = realms[0] if len(realms) == 1 else ""
    wanted = (
        [Principal.parse(p, realm) for p in principals]
        if principals
        else [Principal(("nfs", fqdn), realm)]
    )
    present: list[Principal] = []
    for want in wanted:
        if kt.entries_for(want):
            present.append(want)
            findings.append(Finding(Level.OK, f"keytab holds {want}", key=str(want)))
        else:
            have = ", ".join(str(p) for p in kt.principals()) or "nothing"
            findings.append(
                Finding(
                    Level.CRITICAL,
                    f"keytab has no entry for {want}",
                    detail=f"It holds: {have}",
                    key=str(want),
                    remedy=f"Add the key: MIT `kadmin -q 'ktadd -k {path} {want}'`; IPA "
                    f"`ipa-getkeytab -p {want} -k {path}`; AD `adcli update --service-name=nfs`.",
                )
            )
    for want in present:
        findings.append(enctype_finding(want, kt.entries_for(want)))
    if ask_kdc and present:
        from keytabs.kdcprobe import key_findings, run_probe

        clients = [str(p) for p in present] + [
            str(p) for p in kt.principals() if str(p) not in {str(x) for x in present}
        ]
        res = run_probe(path, clients, [str(p) for p in present], krb5_conf, timeout)
        kdcs = _kdcs(krb5_conf, realm or (present[0].realm if present else ""))
        diagnosis = key_findings(res, kt.entries_for, present, kdcs, path, min(timeout, 3.0))
        for want in present:
            f = diagnosis.get(str(want))
            if f is None:
                err = res.error or "; ".join(f"{k}: {v}" for k, v in res.tgt_errors.items())
                f = kvno_finding(want, kt.entries_for(want), None, None, err)
            findings.append(f)
    return findings


def _kdcs(krb5_conf: str | None, realm: str) -> list[tuple[str, int]]:
    """The realm's KDCs from krb5.conf (``kdc =`` lines), to ask which kvno it issues."""
    from preflight.krb5conf import load_krb5_conf
    from preflight.settings import PreflightSettings, split_host_port

    conf = load_krb5_conf(PreflightSettings(krb5_conf=Path(krb5_conf) if krb5_conf else None).krb5_conf_path())
    out = []
    for spec in conf.realm(realm or conf.default_realm).get("kdc", []):
        try:
            out.append(split_host_port(spec, 88))
        except ValueError:
            continue
    return out


def _from_config(args: argparse.Namespace) -> None:
    """Fill what the command line left out from the server's configuration."""
    from securenfs.config import ConfigError, load

    try:
        cfg = load(args.config)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    args.file = args.file or str(cfg.kerberos.keytab)
    args.hostname = args.hostname or cfg.server.hostname
    args.principal = args.principal or list(cfg.kerberos.principals)
    if args.krb5_conf is None and cfg.kerberos.krb5_conf is not None:
        args.krb5_conf = str(cfg.kerberos.krb5_conf)


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    if args.config:
        _from_config(args)
    args.file = args.file or DEFAULT_KEYTAB
    findings = check_keytab(
        args.file,
        args.hostname,
        args.realm,
        args.principal or None,
        args.krb5_conf,
        not args.no_kdc,
        args.timeout,
    )
    worst = max((f.level for f in findings), default=Level.OK)
    if args.json:
        json.dump(
            {
                "path": args.file,
                "worst": worst.name.lower(),
                "findings": [
                    {
                        "severity": f.level.name.lower(),
                        "summary": f.summary,
                        "detail": f.detail,
                        "remedy": f.remedy,
                        "key": f.key,
                    }
                    for f in findings
                ],
            },
            out,
            indent=2,
        )
        out.write("\n")
    else:
        for f in findings:
            out.write(f"{f.level.name:8}  {f.summary}\n")
            if f.detail and f.level:
                out.write(f"          {f.detail}\n")
            if f.remedy and f.level:
                out.write(f"          -> {f.remedy}\n")
    return {Level.OK: 0, Level.WARNING: 1}.get(worst, 2)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 3
    try:
        if args.command == "list":
            return cmd_list(read_keytab(args.file), args.json, sys.stdout)
        return cmd_check(args, sys.stdout)
    except KeytabError as exc:
        sys.stderr.write(f"securenfs keytab: {exc}\n")
        return 2
    except BrokenPipeError:  # output piped into head(1) and closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ValueError as exc:
        sys.stderr.write(f"securenfs keytab: {exc}\n")
        return 3


if __name__ == "__main__":
    sys.exit(main())
