"""Draw contrib/grafana/securenfs.json from a real run, without Grafana.

Runs a real securenfs server process (AUTH_SYS export on loopback, ``[server]
metrics_listen``), drives a short mixed workload against it with the project's NFSv4.1 client
(GETATTR, LOOKUP, OPEN/WRITE/READ/CLOSE, LOCK/LOCKU and a few operations that fail: LOOKUP of
a missing name, a conflicting LOCK), scrapes ``/metrics`` once a second, and draws the
dashboard's panels with their titles, grid positions and units.  Each panel's expressions are
evaluated over the scrapes by the small PromQL subset the dashboard uses:

* a selector ``name{...}`` (the ``instance=~"$instance"`` matcher selects the one server);
* ``rate(selector[RANGE])``: the increase between the first and last scrape inside the range
  divided by their distance in time (counter resets handled; no extrapolation to the range's
  edges as Prometheus does);
* ``sum``/``max``/``min``, optionally ``by (labels)``;
* ``histogram_quantile(q, ...)`` with Prometheus' linear interpolation inside the bucket.

A panel with an expression outside that subset is drawn with its title and "not rendered".
A series with no sample at all is left out, as in Grafana ("No data" when none is left).

Not part of the server or of the test suite; it needs matplotlib, installed by hand into the
virtualenv only for running it::

    .venv/bin/pip install matplotlib
    .venv/bin/python contrib/grafana/render.py [--seconds 45] [--out docs/operations-dashboard.png]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from securenfs.client.nfs4 import LINUX_GETATTR, Nfs4Client, Nfs4Error  # noqa: E402
from securenfs.nfs4.xdr4 import BitmapArgs, FhArgs, NameArgs  # noqa: E402
from securenfs.proto.constants import Op  # noqa: E402

Labels = frozenset[tuple[str, str]]
Scrape = tuple[float, dict[tuple[str, Labels], float]]  # time since start, (name, labels) -> value


# -- the run ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(tmp: Path, metrics_port: int) -> tuple[subprocess.Popen[bytes], int]:
    data = tmp / "data"
    data.mkdir()
    (data / "file").write_text("x" * 4096)
    ready = tmp / "ready"
    conf = tmp / "securenfs.toml"
    conf.write_text(f'[server]\nmetrics_listen = "127.0.0.1:{metrics_port}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "securenfs", "serve", "--config", str(conf),
                             "--listen", "127.0.0.1:0", "--state-dir", str(tmp / "state"),
                             "--export", f"{data}:/data:sec=sys:no_root_squash",
                             "--ready-file", str(ready), "--log-level", "WARNING"], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return proc, int(ready.read_text().split()[1])


def scrape(url: str) -> dict[tuple[str, Labels], float]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out: dict[tuple[str, Labels], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


async def workload(port: int, seconds: float, before_close: asyncio.Event) -> None:
    """Three clients; the load rises and falls in phases so the rates move.  Each client keeps
    one file open and locked for the whole run; ``before_close`` is set once the load has
    stopped and the clients are still connected (the last scrapes show them)."""
    cs = []
    for _ in range(3):
        c = await Nfs4Client.connect("127.0.0.1", port, slots=8)
        await c.establish()
        await c.reclaim_complete()  # RFC 8881 §18.51.3: before the first non-reclaim OPEN
        cs.append(c)
    root = await cs[0].lookup_path("/data")
    held = []
    for i, c in enumerate(cs):
        f = await c.open(root, f"held{i}", create=True, owner=b"held")
        held.append((c, f, await c.lock(f, 0, 1, lock_owner=b"held-lock")))
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()

    async def meta(c: Nfs4Client) -> None:
        n = 0
        while time.monotonic() < deadline and n < 1_000_000:
            n += 1
            await c.seq([(Op.PUTFH, FhArgs(root)), (Op.GETATTR, BitmapArgs(LINUX_GETATTR))])
            await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"file")),
                         (Op.GETATTR, BitmapArgs(LINUX_GETATTR))])
            if n % 50 == 0:
                try:
                    await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"missing"))])
                except Nfs4Error:
                    pass
            phase = int((time.monotonic() - t0) / (seconds / 3))
            if phase == 1:
                await asyncio.sleep(0.002)

    async def io(c: Nfs4Client, i: int) -> None:
        n = 0
        block = os.urandom(32 * 1024)
        while time.monotonic() < deadline and n < 100_000:
            n += 1
            f = await c.open(root, f"f{i}", create=True, owner=f"o{i}".encode())
            await c.write(f.fh, 0, block, f.stateid)
            await c.read(f.fh, 0, len(block) // 2, f.stateid)
            lsid = await c.lock(f, 0, 100, lock_owner=f"l{i}".encode())
            if i == 0 and n % 5 == 0:
                other = cs[1]
                g = await other.open(root, "f0", owner=b"other")
                try:
                    await other.lock(g, 0, 10, lock_owner=b"other-lock")  # NFS4ERR_DENIED
                except Nfs4Error:
                    pass
                await other.close_file(g)
            await c.locku(f.fh, lsid, 0, 100)
            await c.close_file(f)
            if time.monotonic() - t0 > 2 * seconds / 3:
                await asyncio.sleep(0.05)

    async def churn() -> None:
        """A short-lived client every two seconds: its record is written to the recovery store
        and removed again (RFC 8881 §18.50: DESTROY_CLIENTID)."""
        n = 0
        while time.monotonic() < deadline and n < 1000:
            n += 1
            c = await Nfs4Client.connect("127.0.0.1", port, slots=1)
            await c.establish()
            await c.reclaim_complete()
            await c.close_file(await c.open(root, "churn", create=True))
            await c.destroy_session()
            await c.destroy_clientid()
            await c.close()
            await asyncio.sleep(2)

    await asyncio.gather(*(meta(c) for c in cs for _ in range(4)), *(io(c, i) for i, c in enumerate(cs)),
                         churn())
    await before_close.wait()
    for c, f, lsid in held:
        await c.locku(f.fh, lsid, 0, 1)
        await c.close_file(f)
    for c in cs:
        await c.close()


async def run(seconds: float) -> list[Scrape]:
    with tempfile.TemporaryDirectory() as tmp:
        mport = free_port()
        proc, port = start_server(Path(tmp), mport)
        url = f"http://127.0.0.1:{mport}/metrics"
        scrapes: list[Scrape] = []
        t0 = time.monotonic()
        stop = asyncio.Event()

        async def scraper() -> None:
            while not stop.is_set() and len(scrapes) < 3600:
                scrapes.append((time.monotonic() - t0, await asyncio.to_thread(scrape, url)))
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except TimeoutError:
                    pass

        try:
            task = asyncio.create_task(scraper())
            await asyncio.sleep(3)  # a few idle scrapes first
            async def finish() -> None:
                await asyncio.sleep(seconds + 3)  # the load stops; a few idle scrapes
                stop.set()
                await task

            await asyncio.gather(workload(port, seconds, stop), finish())
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        return scrapes


# -- the PromQL subset ----------------------------------------------------------------------------

class NotRendered(Exception):
    pass


@dataclass
class Node:
    kind: str  # "sel", "rate", "agg", "hq"
    name: str = ""
    matchers: tuple[tuple[str, str, str], ...] = ()
    range_s: float = 0.0
    fn: str = ""
    by: tuple[str, ...] | None = None
    q: float = 0.0
    arg: Node | None = None


TOKEN = re.compile(r'\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<str>"(?:[^"\\]|\\.)*")'
                   r'|(?P<range>\[\d+[smh]\])|(?P<op>=~|!=|!~|[(){},=]))')


def tokenize(expr: str) -> list[str]:
    out, i = [], 0
    expr = expr.strip()
    while i < len(expr):
        m = TOKEN.match(expr, i)
        if not m or m.end() == i:
            raise NotRendered(f"cannot read {expr[i:]!r}")
        out.append(m.group().strip())
        i = m.end()
        while i < len(expr) and expr[i].isspace():
            i += 1
    return out


def parse(expr: str) -> Node:
    toks = tokenize(expr)
    pos = 0

    def peek() -> str:
        return toks[pos] if pos < len(toks) else ""

    def take(want: str | None = None) -> str:
        nonlocal pos
        t = peek()
        if want is not None and t != want:
            raise NotRendered(f"expected {want!r}, got {t!r}")
        pos += 1
        return t

    def labels() -> tuple[str, ...]:
        take("(")
        names = [take()]
        while peek() == ",":
            take(",")
            names.append(take())
        take(")")
        return tuple(names)

    def node() -> Node:
        t = take()
        if t in ("sum", "max", "min"):
            by = labels() if peek() == "by" and take("by") else None
            take("(")
            a = node()
            take(")")
            return Node("agg", fn=t, by=by, arg=a)
        if t == "rate":
            take("(")
            a = node()
            take(")")
            if a.kind != "sel" or not a.range_s:
                raise NotRendered("rate() of something else than a range selector")
            return Node("rate", arg=a)
        if t == "histogram_quantile":
            take("(")
            q = float(take())
            take(",")
            a = node()
            take(")")
            return Node("hq", q=q, arg=a)
        if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", t) or peek() == "(":
            raise NotRendered(f"function or token {t!r} not in the subset")
        ms = []
        if peek() == "{":
            take("{")
            while peek() != "}":
                lab, op, val = take(), take(), take()
                ms.append((lab, op, json.loads(val)))
                if peek() == ",":
                    take(",")
            take("}")
        rng = 0.0
        if peek().startswith("["):
            r = take()[1:-1]
            rng = float(r[:-1]) * {"s": 1, "m": 60, "h": 3600}[r[-1]]
        return Node("sel", name=t, matchers=tuple(ms), range_s=rng)

    n = node()
    if pos != len(toks):
        raise NotRendered(f"trailing {toks[pos:]!r}")
    return n


def matches(labels: Labels, matchers: tuple[tuple[str, str, str], ...]) -> bool:
    d = dict(labels)
    for lab, op, val in matchers:
        if "$" in val:  # a dashboard variable ($instance): the one server drawn here
            continue
        v = d.get(lab, "")
        ok = (v == val if op in ("=", "!=") else re.fullmatch(val, v) is not None)
        if ok != (op in ("=", "=~")):
            return False
    return True


Vector = dict[Labels, float]


AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum, "max": lambda vs: max(vs), "min": lambda vs: min(vs)}


def evaluate(n: Node, scrapes: list[Scrape], i: int) -> Vector:
    """The instant vector of ``n`` at scrape ``i``."""
    if n.kind == "sel":
        return {lab: v for (name, lab), v in scrapes[i][1].items() if name == n.name and matches(lab, n.matchers)}
    if n.kind == "rate":
        sel = n.arg
        assert sel is not None
        t = scrapes[i][0]
        window = [s for s in scrapes[: i + 1] if s[0] > t - sel.range_s]
        out: Vector = {}
        if len(window) < 2:
            return out
        series: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for ts, samples in window:
            for (name, lab), v in samples.items():
                if name == sel.name and matches(lab, sel.matchers):
                    series[lab].append((ts, v))
        for lab, pts in series.items():
            if len(pts) < 2:
                continue
            inc = sum(b - a if b >= a else b for (_, a), (_, b) in zip(pts, pts[1:]))  # resets
            out[lab] = inc / (pts[-1][0] - pts[0][0])
        return out
    if n.kind == "agg":
        assert n.arg is not None
        groups: dict[Labels, list[float]] = defaultdict(list)
        for lab, v in evaluate(n.arg, scrapes, i).items():
            key = frozenset((k, x) for k, x in lab if n.by is not None and k in n.by)
            groups[key].append(v)
        return {k: AGGREGATE[n.fn](vs) for k, vs in groups.items()}
    if n.kind == "hq":
        assert n.arg is not None
        buckets: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for lab, v in evaluate(n.arg, scrapes, i).items():
            d = dict(lab)
            le = d.pop("le", None)
            if le is None:
                continue
            buckets[frozenset(d.items())].append((float(le), v))
        out = {}
        for lab, bs in buckets.items():
            q = quantile(n.q, sorted(bs))
            if not math.isnan(q):
                out[lab] = q
        return out
    raise NotRendered(n.kind)


def quantile(q: float, bs: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative buckets (upper bound, count)."""
    if len(bs) < 2 or not math.isinf(bs[-1][0]) or bs[-1][1] <= 0:
        return math.nan
    rank = q * bs[-1][1]
    for j, (ub, c) in enumerate(bs):
        if c >= rank:
            if math.isinf(ub):
                return bs[-2][0]
            lo, lo_c = (0.0, 0.0) if j == 0 else bs[j - 1]
            if j == 0 and ub <= 0:
                return ub
            return lo + (ub - lo) * (rank - lo_c) / (c - lo_c) if c > lo_c else ub
    return math.nan


def legend(fmt: str | None, lab: Labels) -> str:
    d = dict(lab)
    if fmt is None:
        return ", ".join(f"{k}={v}" for k, v in sorted(d.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: d.get(m.group(1), ""), fmt).strip()


# -- drawing ----------------------------------------------------------------------------------

def fmt_value(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"
    if unit == "Bps":
        for u, d in (("MB/s", 1e6), ("kB/s", 1e3)):
            if abs(v) >= d:
                return f"{v / d:.3g} {u}"
        return f"{v:.3g} B/s"
    if unit == "ops":
        return f"{v / 1e3:.3g}k ops/s" if abs(v) >= 1e3 else f"{v:.3g} ops/s"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}"


LEGEND_MAX = 7  # series drawn per panel, the largest first (what fits in 8 grid rows)


def draw(dash: dict[str, Any], scrapes: list[Scrape], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = dash["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    col_in, row_in, head_in = 0.6, 0.225, 0.3  # Grafana: 24 columns across, rows of 30 px
    fw, fh = 24 * col_in, rows * row_in + head_in
    fig = plt.figure(figsize=(fw, fh), dpi=80, facecolor="#111217")
    fig.text(0.005, 1 - 0.08 / fh, f"{dash['title']}: drawn from contrib/grafana/securenfs.json and "
             f"{len(scrapes)} scrapes of a real run by contrib/grafana/render.py (not a Grafana screenshot); "
             "time axes: seconds into the run",
             color="#ccccdc", va="top", fontsize=10)
    ts = [s[0] for s in scrapes]
    pad = 0.04  # inches between panels
    for p in panels:
        g = p["gridPos"]
        x0, y_top = g["x"] * col_in + pad, fh - head_in - g["y"] * row_in - pad
        w, h = g["w"] * col_in - 2 * pad, g["h"] * row_in - 2 * pad
        frame = fig.add_axes((x0 / fw, (y_top - h) / fh, w / fw, h / fh), facecolor="#181b1f")
        frame.set_xticks([])
        frame.set_yticks([])
        for sp in frame.spines.values():
            sp.set_color("#2c3235")
        frame.text(0.08 / w, 1 - 0.06 / h, p["title"], color="#ccccdc", fontsize=9, va="top",
                   transform=frame.transAxes)
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")

        def note(text: str, fr: Any = frame) -> None:
            fr.text(0.5, 0.45, text, color="#9fa7b3", ha="center", va="center", transform=fr.transAxes, fontsize=9)

        try:
            series: dict[str, list[float]] = {}
            for t in p.get("targets", []):
                node = parse(t["expr"])
                per: dict[Labels, list[float]] = defaultdict(lambda: [math.nan] * len(scrapes))
                for i in range(len(scrapes)):
                    for lab, v in evaluate(node, scrapes, i).items():
                        per[lab][i] = v
                for lab, vs in sorted(per.items(), key=lambda kv: sorted(kv[0])):
                    series[legend(t.get("legendFormat"), lab)] = vs
        except NotRendered as exc:
            note(f"not rendered\n({exc})")
            continue
        if not series:
            note("No data")
            continue
        if p["type"] == "stat":
            vs = next(iter(series.values()))
            last = next((v for v in reversed(vs) if not math.isnan(v)), math.nan)
            ax = fig.add_axes((x0 / fw, (y_top - h) / fh, w / fw, (h - 0.3) / fh))
            ax.set_axis_off()
            ax.fill_between(ts, vs, color="#73bf69", alpha=0.25, linewidth=0)
            ax.set_xlim(ts[0], ts[-1])
            ax.set_ylim(0, max([v for v in vs if not math.isnan(v)] + [1]) * 1.6)
            ax.text(0.5, 0.45, fmt_value(last, unit), color="#73bf69", ha="center", va="center",
                    transform=ax.transAxes, fontsize=22, fontweight="bold")
            continue
        ml, mr, mb, mt = 0.75, 1.75, 0.35, 0.35  # inches: tick labels, legend, time axis, title
        ax = fig.add_axes(((x0 + ml) / fw, (y_top - h + mb) / fh, (w - ml - mr) / fw, (h - mb - mt) / fh),
                          facecolor="#181b1f")
        for sp in ax.spines.values():
            sp.set_color("#2c3235")
        ax.tick_params(colors="#9fa7b3", labelsize=7)
        shown = sorted(series.items(), key=lambda kv: -max((v for v in kv[1] if not math.isnan(v)), default=0))
        for name, vs in shown[:LEGEND_MAX]:
            ax.plot(ts, vs, linewidth=1.2, label=name)
        ax.set_xlim(ts[0], ts[-1])
        if all(v >= 0 for _n, vs in shown for v in vs if not math.isnan(v)):
            ax.set_ylim(bottom=0)
        ax.grid(color="#2c3235", linewidth=0.5)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p, u=unit: fmt_value(v, u)))
        more = f"(+{len(shown) - LEGEND_MAX} more)" if len(shown) > LEGEND_MAX else None
        leg = ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                        title=more, title_fontsize=6.5)
        for tx in leg.get_texts():
            tx.set_color("#ccccdc")
        leg.get_title().set_color("#9fa7b3")
    fig.savefig(out, facecolor=fig.get_facecolor())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=45.0, help="length of the workload (at most 600)")
    ap.add_argument("--dashboard", type=Path, default=ROOT / "contrib/grafana/securenfs.json")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/operations-dashboard.png")
    a = ap.parse_args()
    dash = json.loads(a.dashboard.read_text())
    scrapes = asyncio.run(run(min(a.seconds, 600.0)))
    draw(dash, scrapes, a.out)
    print(f"{a.out}: {len(scrapes)} scrapes, {a.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
