"""``securenfs-preflight`` / ``securenfs preflight``: check that this host can serve Kerberos NFS.

Exit codes follow the monitoring-plugin convention: 0 all ok, 1 worst is a warning, 2 worst is
an error or critical, 3 the tool itself failed.  With ``--fail-on LEVEL`` the exit code is 2 when
anything reached LEVEL and 0 otherwise (for ExecStartPre= gates).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from preflight.result import Severity
from preflight.settings import ExportSpec, PreflightSettings

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser(prog: str = "securenfs-preflight") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog, description="Check that this host is ready to serve Kerberos-secured NFSv4.1."
    )
    p.add_argument(
        "--config", type=Path, help="server configuration file (TOML); flags below override it"
    )
    g = p.add_argument_group("what to check")
    g.add_argument(
        "--hostname", help="FQDN the service principals are built from (default: detected)"
    )
    g.add_argument("--realm", help="Kerberos realm (default: krb5.conf default_realm)")
    g.add_argument(
        "--krb5-conf",
        type=Path,
        help="krb5.conf to judge and use (default: $KRB5_CONFIG or /etc/krb5.conf)",
    )
    g.add_argument("--keytab", type=Path, help="service keytab (default /etc/krb5.keytab)")
    g.add_argument(
        "--principal",
        action="append",
        default=None,
        metavar="PRINC",
        help="acceptor principal that must work (repeatable; default nfs/FQDN@REALM)",
    )
    g.add_argument("--ntp-server", action="append", default=None, metavar="HOST[:PORT]")
    g.add_argument(
        "--dns-server",
        action="append",
        default=None,
        metavar="HOST[:PORT]",
        help="DNS server to ask (repeatable; default: the system resolver)",
    )
    g.add_argument("--hosts-file", type=Path, help="hosts file to judge (default /etc/hosts)")
    g.add_argument("--idmap-domain", help="NFSv4 ID-mapping domain")
    g.add_argument("--ldap-uri", action="append", default=None, metavar="URI")
    g.add_argument("--base-dn", help="LDAP search base")
    g.add_argument("--probe-user", help="a user that must resolve")
    g.add_argument(
        "--export",
        action="append",
        default=None,
        metavar="PATH:PSEUDO[:sec=FLAVOR,...]",
        help="export to judge, the same form as `securenfs serve --export`, "
        "e.g. /srv/data:/data:sec=krb5p,krb5i (repeatable)",
    )
    g.add_argument("--lease-time", type=int)
    g.add_argument("--grace-time", type=int)
    g.add_argument("--state-dir", type=Path)
    t = p.add_argument_group("thresholds and limits")
    t.add_argument("--timeout", type=float, help="seconds each check may take (default 10)")
    t.add_argument(
        "--peer-timeout", type=float, help="seconds to wait for one network peer (default 2)"
    )
    t.add_argument(
        "--clock-warn", type=float, help="clock offset warning threshold in seconds (default 2)"
    )
    t.add_argument(
        "--clock-error", type=float, help="clock offset error threshold in seconds (default 60)"
    )
    o = p.add_argument_group("selection and output")
    o.add_argument(
        "--only", action="append", default=[], metavar="ID[,ID]", help="run only these checks"
    )
    o.add_argument(
        "--skip", action="append", default=[], metavar="ID[,ID]", help="do not run these checks"
    )
    o.add_argument("--list", action="store_true", help="list the checks and exit")
    o.add_argument("--format", choices=("human", "json", "prometheus"), default="human")
    o.add_argument("--output-file", help="write the report here (atomically) instead of stdout")
    o.add_argument("--all", action="store_true", help="human format: also show checks that passed")
    o.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="human format: also print each result's detail (KDC answers, Kerberos errors, "
        "the KRB5_TRACE tail)",
    )
    o.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    o.add_argument(
        "--fail-on",
        choices=("warning", "error", "critical"),
        help="exit 2 when any result reaches this level, else 0",
    )
    return p


def settings_from_args(args: argparse.Namespace) -> PreflightSettings:
    if args.config is not None:
        try:
            from securenfs.config import load_config  # provided by the server package
        except ImportError as exc:
            raise UsageError(f"--config needs the securenfs server package: {exc}") from None
        try:
            cfg = load_config(args.config)
        except Exception as exc:  # noqa: BLE001 - the loader's message names the file and key
            raise UsageError(str(exc)) from None
        s = PreflightSettings.from_server_config(cfg)
    else:
        s = PreflightSettings()
    simple = {
        "hostname": "hostname",
        "realm": "realm",
        "krb5_conf": "krb5_conf",
        "keytab": "keytab",
        "hosts_file": "hosts_file",
        "idmap_domain": "idmap_domain",
        "base_dn": "ldap_base_dn",
        "probe_user": "probe_user",
        "lease_time": "lease_time",
        "grace_time": "grace_time",
        "state_dir": "state_dir",
        "timeout": "timeout",
        "peer_timeout": "peer_timeout",
        "clock_warn": "clock_warn",
        "clock_error": "clock_error",
    }
    for arg, attr in simple.items():
        v = getattr(args, arg)
        if v is not None:
            setattr(s, attr, v)
    for arg, attr in (
        ("principal", "principals"),
        ("ntp_server", "ntp_servers"),
        ("dns_server", "dns_servers"),
        ("ldap_uri", "ldap_uris"),
    ):
        v = getattr(args, arg)
        if v is not None:
            setattr(s, attr, list(v))
    if args.export is not None:
        try:
            s.exports = [ExportSpec.parse(x) for x in args.export]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if s.timeout <= 0 or s.peer_timeout <= 0:
        raise UsageError("--timeout and --peer-timeout must be positive")
    if s.principals and not s.realm:
        s.realm = next((p.rsplit("@", 1)[1] for p in s.principals if "@" in p), "")
    return s


def exit_code(worst: Severity, fail_on: str | None) -> int:
    if fail_on:
        return EXIT_CRITICAL if worst >= Severity.parse(fail_on) else EXIT_OK
    if worst >= Severity.ERROR:
        return EXIT_CRITICAL
    return EXIT_WARNING if worst == Severity.WARNING else EXIT_OK


def _split(values: list[str]) -> list[str]:
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def main(argv: list[str] | None = None, prog: str = "securenfs-preflight") -> int:
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n{parser.format_usage()}")
        return EXIT_UNKNOWN
    except SystemExit as exc:  # --help
        return EXIT_OK if exc.code in (0, None) else EXIT_UNKNOWN
    try:
        from preflight.output import (
            render_human,
            render_json,
            render_prometheus,
            use_colour,
            write_atomic,
        )
        from preflight.registry import load_all
        from preflight.runner import run_checks

        registry = load_all()
        if args.list:
            for c in registry.checks.values():
                sys.stdout.write(
                    f"{c.id:10} {c.name:32} {c.doc.splitlines()[0] if c.doc else ''}\n"
                )
            return EXIT_OK
        settings = settings_from_args(args)
        try:
            checks = registry.select(_split(args.only), _split(args.skip))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        report = run_checks(settings, checks)
        code = exit_code(report.worst, args.fail_on)
        if args.format == "json":
            text = render_json(report, code)
        elif args.format == "prometheus":
            text = render_prometheus(report)
        else:
            import io

            buf = io.StringIO()
            render_human(
                report,
                buf,
                colour=use_colour(sys.stdout, args.color) and not args.output_file,
                show_all=args.all,
                verbose=args.verbose,
            )
            text = buf.getvalue()
        if args.output_file:
            write_atomic(args.output_file, text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        return code
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return EXIT_UNKNOWN
    except BrokenPipeError:  # output piped into head(1) and closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception:  # noqa: BLE001 - the tool failed; say so in monitoring terms
        sys.stderr.write(f"{prog}: internal error\n{traceback.format_exc()}")
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
