"""``securenfs idmap``: look names, ids and principals up the way the server does.

    securenfs idmap lookup alice@example.com      # user and group with that name
    securenfs idmap lookup uid:1000               # owner string the server sends for uid 1000
    securenfs idmap lookup gid:100
    securenfs idmap principal alice@EXAMPLE.COM   # uid, gids, which backend answered, cache
    options, before or after the command word: --config PATH (default
    /etc/securenfs/securenfs.toml), --json, --no-cache, -v

Exit status: 0 mapped, 1 not mapped (unknown; anonymous, whether by policy, a foreign realm
or domain, or a machine principal run as the anonymous id; an id without a name; directory
unavailable), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from typing import Any

from idmap import build_mapper
from idmap.config import IdmapConfig, IdmapConfigError
from idmap.errors import IdmapNotFound, IdmapUnavailable
from idmap.mapper import SyncIdMapper
from idmap.records import Identity, Mapping

DEFAULT_CONFIG = "/etc/securenfs/securenfs.toml"


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit; we return 2 ourselves
        raise _Usage(f"{self.prog}: {message}")


def _add_options(p: argparse.ArgumentParser, default: Any) -> None:
    """The options, accepted before and after the command word (``default`` is SUPPRESS
    after it, so an option given before is not reset)."""
    p.add_argument("--config", default=DEFAULT_CONFIG if default is None else default,
                   help=f"server TOML file (its [idmap] table is used; default {DEFAULT_CONFIG})")
    p.add_argument("--json", action="store_true",
                   default=False if default is None else default, help="print JSON")
    p.add_argument("--no-cache", action="store_true", default=False if default is None else default,
                   help="ask the backends even if an answer is cached")
    p.add_argument("-v", "--verbose", action="store_true", default=False if default is None else default,
                   help="show the mapper's log lines")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="securenfs idmap", description="Map NFSv4 names, ids and Kerberos "
                "principals as the server does (for chasing nobody:nobody).")
    _add_options(p, None)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    lookup = sub.add_parser("lookup", help="owner/group string, or uid:N / gid:N")
    lookup.add_argument("name")
    principal = sub.add_parser("principal", help="Kerberos principal (user@REALM)")
    principal.add_argument("principal")
    for command in (lookup, principal):
        _add_options(command, argparse.SUPPRESS)
    return p


def load_config(path: str) -> IdmapConfig:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise _Usage(f"{path}: no such file (give the server configuration with --config)") \
            from None
    except OSError as exc:
        raise _Usage(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _Usage(f"{path}: not valid TOML: {exc}") from None
    if "idmap" not in data:
        raise _Usage(f"{path}: has no [idmap] table (see docs/idmap.md)")
    try:
        return IdmapConfig.from_mapping(data["idmap"])
    except IdmapConfigError as exc:
        raise _Usage(f"{path}: {exc.key}: {exc.message}\n  fix: {exc.fix}") from None


def _mapping_dict(kind: str, query: str, m: Mapping | None, error: str | None) -> dict[str, Any]:
    if m is None:
        return {"kind": kind, "query": query, "mapped": False, "error": error}
    # An id sent as digits has no name: for uid:N / gid:N that is "not mapped".
    unnamed = "anon" if kind in ("user", "group") else ("anon", "numeric")
    return {"kind": kind, "query": query, "mapped": m.source not in unnamed, "id": m.id,
            "name": m.name, "source": m.source, "cache": m.cache.value, "reason": m.reason}


def _identity_dict(query: str, ident: Identity | None, error: str | None,
                   anon: tuple[int, int]) -> dict[str, Any]:
    if ident is None:
        return {"kind": "principal", "query": query, "mapped": False, "error": error}
    # A machine principal run as the anonymous id by policy is as unmapped as any other.
    anonymous = ident.source == "anon" or (ident.source == "machine" and (ident.uid, ident.gid) == anon)
    return {"kind": "principal", "query": query,
            "mapped": not anonymous, "uid": ident.uid, "gid": ident.gid,
            "groups": list(ident.groups), "name": ident.name, "source": ident.source,
            "cache": ident.cache.value, "reason": ident.reason}


def _lookup(m: SyncIdMapper, name: str, use_cache: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    kind, sep, rest = name.partition(":")
    if sep and kind in ("uid", "gid"):
        if not rest.isdigit() or int(rest) > 2**32 - 1:
            raise _Usage(f"{name}: expected {kind}:NUMBER")
        fn = m.uid_to_owner if kind == "uid" else m.gid_to_group
        mapping = fn(int(rest), use_cache=use_cache)
        results.append(_mapping_dict(kind, name, mapping, None))
        return results
    for what, fn2 in (("user", m.owner_to_uid), ("group", m.group_to_gid)):
        try:
            # An administrator may ask about numeric strings; the server decides per flavor.
            results.append(_mapping_dict(what, name, fn2(name, allow_numeric=True,
                                                          use_cache=use_cache), None))
        except IdmapNotFound as exc:
            results.append(_mapping_dict(what, name, None, f"not found: {exc.reason}"))
        except IdmapUnavailable as exc:
            results.append(_mapping_dict(what, name, None, f"unavailable: {exc.reason}"))
    return results


def _print_human(results: list[dict[str, Any]]) -> None:
    for r in results:
        label = {"user": "user ", "group": "group", "uid": "uid  ", "gid": "gid  ",
                 "principal": "principal"}[r["kind"]]
        if r.get("error"):
            print(f"{label} {r['query']}: {r['error']}")
            continue
        if r["kind"] == "principal":
            groups = ", ".join(str(g) for g in r["groups"]) or "-"
            print(f"principal {r['query']}")
            print(f"  uid     {r['uid']}" + (f" ({r['name']})" if r["name"] else ""))
            print(f"  gid     {r['gid']}")
            print(f"  groups  {groups}")
            print(f"  source  {r['source']}")
            print(f"  cache   {r['cache']}")
        elif r["kind"] in ("uid", "gid"):
            print(f"{label} {r['query'][4:]} -> {r['name']}  (source {r['source']}, "
                  f"cache {r['cache']})")
        else:
            print(f"{label} {r['query']} -> {r['id']}  (as {r['name']}, source {r['source']}, "
                  f"cache {r['cache']})")
        if r.get("reason"):
            print(f"  reason  {r['reason']}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except _Usage as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config)
        mapper = SyncIdMapper(build_mapper(config))
    except _Usage as exc:
        print(f"securenfs idmap: {exc}", file=sys.stderr)
        return 2
    except IdmapConfigError as exc:
        print(f"securenfs idmap: {args.config}: {exc.key}: {exc.message}\n  fix: {exc.fix}",
              file=sys.stderr)
        return 2
    use_cache = not args.no_cache
    try:
        if args.command == "principal":
            anon = (config.anon_uid, config.anon_gid)
            try:
                ident: Identity | None = mapper.principal_to_identity(args.principal,
                                                                      use_cache=use_cache)
                results = [_identity_dict(args.principal, ident, None, anon)]
            except IdmapNotFound as exc:
                results = [_identity_dict(args.principal, None, f"refused: {exc.reason}", anon)]
            except IdmapUnavailable as exc:
                results = [_identity_dict(args.principal, None, f"unavailable: {exc.reason}", anon)]
        else:
            results = _lookup(mapper, args.name, use_cache)
    except _Usage as exc:
        print(f"securenfs idmap: {exc}", file=sys.stderr)
        return 2
    finally:
        mapper.close()
    if args.json:
        print(json.dumps({"results": results, "domain": config.domain,
                          "local_realms": list(config.local_realms),
                          "backends": [b.value for b in config.backends]}, indent=2))
    else:
        _print_human(results)
    return 0 if any(r.get("mapped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
