"""``securenfs`` command line: serve, check-config, ping, and the admin tools."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from pathlib import Path
from typing import Any

from securenfs import config as cfgmod
from securenfs.logsetup import setup_logging

SERVE_EPILOG = """\
Without --config, /etc/securenfs/securenfs.toml is read when it exists; the options below
override it.  With only options, the server runs on built-in defaults plus what you give.

  --export PATH:PSEUDO[:sec=FLAVOR,...][:rw|ro][:root_squash|no_root_squash|all_squash]
      PATH is a local directory, PSEUDO its path in the NFSv4 pseudo file system.
      FLAVOR is krb5p, krb5i, krb5 or sys, in order of preference (default krb5p,krb5i,krb5).
      Repeat --export for several exports; given on the command line they replace the
      file's [[exports]].

Example:
  securenfs serve --listen 127.0.0.1:2049 --state-dir /var/lib/securenfs \\
      --keytab /etc/krb5.keytab --export /srv/share:/share:sec=krb5p,krb5i,sys
"""


def _add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="config file (default /etc/securenfs/securenfs.toml)")
    p.add_argument("--listen", action="append", metavar="HOST:PORT", help="listen address (repeatable; default 0.0.0.0:2049)")
    p.add_argument("--state-dir", metavar="DIR", help="state directory (client records, handle key)")
    p.add_argument("--keytab", metavar="FILE", help="Kerberos keytab with the nfs/ acceptor principal")
    p.add_argument("--hostname", metavar="FQDN", help="host name of the service principals (default: this host's FQDN)")
    p.add_argument("--export", action="append", metavar="SPEC", help="an export, see below (repeatable)")


def _add_socket_options(p: argparse.ArgumentParser) -> None:
    """How the commands that talk to a running server find its admin socket."""
    p.add_argument("--config", metavar="PATH", help="config file, to find the admin socket")
    p.add_argument("--state-dir", metavar="DIR", help="state directory of the server")
    p.add_argument("--socket", metavar="PATH", help="admin socket path")


def _load(args: argparse.Namespace) -> cfgmod.Config:
    cfg = cfgmod.load(args.config, required=args.config is not None)
    return cfgmod.apply_overrides(
        cfg,
        listen=args.listen,
        state_dir=args.state_dir,
        keytab=args.keytab,
        exports=args.export,
        hostname=args.hostname,
    )


def _load_for_serve(args: argparse.Namespace) -> cfgmod.Config:
    cfg = _load(args)
    if args.strict:
        cfg.preflight.strict = True
    if args.no_preflight:
        cfg.preflight.enabled = False
    if not cfg.exports:
        raise cfgmod.ConfigError(cfg.source, "exports", "no exports configured",
                                 "add [[exports]] to the config or pass --export (see securenfs serve --help)")
    return cfg


def cmd_serve(args: argparse.Namespace) -> int:
    from securenfs.server import serve

    setup_logging(args.log_level)
    try:
        cfg = _load_for_serve(args)
    except cfgmod.ConfigError as exc:
        if exc.key != "exports":
            raise
        print(f"securenfs: {exc.message}; {exc.fix}", file=sys.stderr)
        return 2
    if cfg.server.log_format != "text":
        setup_logging(args.log_level, fmt=cfg.server.log_format)
    # SIGHUP / `securenfs reload` re-read the same file with the same options.
    return serve(cfg, Path(args.ready_file) if args.ready_file else None, lambda: _load_for_serve(args))


def _ask_server(args: argparse.Namespace, request: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Send ``request`` to the running server's admin socket (from --socket, --state-dir or
    the config); None, after saying why, when no server answers."""
    from securenfs.admin.socket import query
    from securenfs.server import admin_socket_path

    if args.socket:
        path = Path(args.socket)
    else:
        cfg = cfgmod.load(args.config, required=args.config is not None)
        if args.state_dir:
            cfg.server.state_dir = Path(args.state_dir)
        path = admin_socket_path(cfg)
    try:
        return query(path, timeout=timeout, request=request)
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"securenfs {args.command}: no server answers on {path} (is it running? pass --state-dir or --socket)",
              file=sys.stderr)
    except OSError as exc:
        print(f"securenfs {args.command}: {path}: {exc}", file=sys.stderr)
    return None


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from securenfs.admin.socket import render

    status = _ask_server(args, "status")
    if status is None:
        return 3
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        sys.stdout.write(render(status))
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    """clients, clients show ID, locks PATH, expire CLIENT, take-over NODE: one request to the
    admin socket, its answer as a table (or JSON)."""
    import json

    from securenfs.admin import tables

    words = list(args.words)
    render: Any
    if args.command == "clients":
        if not words:
            request, render = "clients", lambda a: tables.render_clients(a.get("clients", []))
        elif words[0] == "show" and len(words) == 2:
            request, render = f"client {words[1]}", tables.render_client
        else:
            print("securenfs clients: use `securenfs clients` or `securenfs clients show ID`", file=sys.stderr)
            return 2
    else:
        request = f"{args.command} {' '.join(words)}"
        render = {"locks": tables.render_locks,
                  "expire": lambda a: f"client {a.get('client')}: {a.get('revoked')} stateid(s) revoked "
                                      f"({a.get('as')})\n",
                  "take-over": lambda a: f"took over node {a.get('node')}: {a.get('clients')} client(s) may "
                                         "reclaim here during the grace period\n"}[args.command]
    answer = _ask_server(args, request, args.timeout)
    if answer is None:
        return 3
    if args.json:
        print(json.dumps(answer, indent=2, default=str))
    elif answer.get("ok"):
        sys.stdout.write(render(answer))
    if not answer.get("ok"):
        print(f"securenfs {args.command}: {answer.get('error')}", file=sys.stderr)
        return 1
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask the running server to re-read its configuration and re-run the preflight gate."""
    import json

    from securenfs.admin.socket import render

    answer = _ask_server(args, "reload", args.timeout)
    if answer is None:
        return 3
    if args.json:
        print(json.dumps(answer, indent=2, default=str))
    elif answer.get("ok"):
        sys.stdout.write(render({k: v for k, v in answer.items() if k in ("exports", "preflight")}))
    for w in answer.get("warnings", []):
        print(f"securenfs reload: warning: {w}", file=sys.stderr)
    if not answer.get("ok"):
        print(f"securenfs reload: refused, nothing changed: {answer.get('error')}", file=sys.stderr)
        return 1
    return 0


def export_problems(cfg: cfgmod.Config) -> list[str]:
    """What ``serve`` refuses to start on about the exports, judged without starting: the
    export table (paths, pseudo paths, nesting) and persistent file handles on each export's
    file system (RFC 8881 §4.2.3)."""
    import os

    from securenfs.exports.table import ExportError, ExportTable
    from securenfs.vfs import kernel

    try:
        table = ExportTable.from_config(cfg.exports)
    except ExportError as exc:
        return [f"exports: {exc}"]
    problems = []
    for e in table.exports:
        try:
            fd = os.open(e.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            problems.append(f"exports: {e.describe()}: cannot open {e.path}: {exc.strerror}")
            continue
        try:
            kernel.name_to_handle_at(fd, "", kernel.AT_EMPTY_PATH)
        except OSError as exc:
            problems.append(f"exports: {e.describe()}: the file system of {e.path} does not provide "
                            f"persistent file handles ({exc.strerror}); it cannot be exported")
        finally:
            os.close(fd)
    return problems


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    problems = export_problems(cfg)
    where = "" if cfg.source.startswith("<") else f"{cfg.source}: "
    for p in problems:
        print(f"securenfs: configuration error: {where}{p}", file=sys.stderr)
    if problems:
        return 2
    sys.stdout.write(cfgmod.dump(cfg))
    for w in cfg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    """NULL calls to program 100003 version 4: is the server answering?"""
    from securenfs.client.rpc import RpcClient
    from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4

    addr = cfgmod.parse_listen(args.address, "<command line>", "ADDRESS")
    host = "127.0.0.1" if addr.host in ("0.0.0.0", "::") else addr.host

    async def run() -> int:
        try:
            client = await asyncio.wait_for(RpcClient.connect(host, addr.port), args.timeout)
        except (TimeoutError, OSError) as exc:
            print(f"securenfs ping: cannot connect to {host}:{addr.port}: {exc}", file=sys.stderr)
            return 2
        try:
            for i in range(args.count):
                t0 = time.perf_counter()
                await client.call(NFS_PROGRAM, NFS_V4, 0, timeout=args.timeout)
                dt = (time.perf_counter() - t0) * 1e3
                print(f"NULL reply from {host}:{addr.port} (program {NFS_PROGRAM} version {NFS_V4}): {dt:.2f} ms")
        except Exception as exc:
            print(f"securenfs ping: {exc}", file=sys.stderr)
            return 2
        finally:
            await client.close()
        return 0

    return asyncio.run(run())


def _delegate(module: str, argv: list[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        print(f"securenfs: this command is not available ({exc})", file=sys.stderr)
        return 3
    rc = mod.main(argv)
    return int(rc or 0)


DELEGATED = {"idmap": "idmap.cli", "keytab": "keytabs.cli", "preflight": "preflight.cli",
             "probe": "securenfs.client.probe"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="securenfs", description="Kerberos-secured NFSv4.1 server")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the NFSv4.1 server", epilog=SERVE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_options(p)
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    p.add_argument("--ready-file", metavar="FILE", help="write the bound addresses here once listening")
    p.add_argument("--strict", action="store_true",
                   help="refuse to start when a Kerberos export's preflight checks fail")
    p.add_argument("--no-preflight", action="store_true", help="skip the start-up preflight gate")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("status", help="show a running server's state (grace, exports, contexts)")
    _add_socket_options(p)
    p.add_argument("--json", action="store_true", help="print the JSON document")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reload", help="make a running server re-read its config and re-run the preflight")
    _add_socket_options(p)
    p.add_argument("--json", action="store_true", help="print the JSON answer")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the answer (default 300)")
    p.set_defaults(func=cmd_reload)

    for name, words, help_text in (
            ("clients", "show ID", "list the clients (or `clients show ID`: one client's state per file)"),
            ("locks", "PATH", "who holds opens and locks on a file (a path on this server)"),
            ("expire", "CLIENT", "revoke a client's opens and locks as lease expiry would (logged)"),
            ("take-over", "NODE", "adopt a failed (fenced) node's clients (etcd recovery backend)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("words", nargs="*" if name == "clients" else 1, metavar=words)
        _add_socket_options(p)
        p.add_argument("--json", action="store_true", help="print the JSON answer")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (default 30)")
        p.set_defaults(func=cmd_admin)

    p = sub.add_parser("check-config", help="validate the configuration and print the effective one",
                       epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_options(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("ping", help="send NULL calls to a server and show the round trip")
    p.add_argument("address", nargs="?", default="127.0.0.1:2049", help="HOST:PORT (default 127.0.0.1:2049)")
    p.add_argument("-c", "--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(func=cmd_ping)

    for name, help_text in (("idmap", "ID mapping look-ups (owner strings, principals)"),
                            ("keytab", "list and check keytabs"),
                            ("preflight", "diagnose this host's Kerberos readiness"),
                            ("probe", "mount a server's path as this user and explain what fails")):
        sp = sub.add_parser(name, help=help_text, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["preflight"] and "--reload" in argv:
        argv = ["reload", *(a for a in argv[1:] if a != "--reload")]  # alias of `securenfs reload`
    if argv and argv[0] in DELEGATED:
        return _delegate(DELEGATED[argv[0]], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except cfgmod.ConfigError as exc:
        print(f"securenfs: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
