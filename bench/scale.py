"""The scale benchmark of issue 14: the full read, the incremental no-change run and a 1 % run, up to 100,000 users.

Run it as ``bench/scale`` (it RESETS the proxy). For each size N (default 1,000, 10,000 and 100,000 users in
50 teams) it:

1. resets the proxy and seeds N users through ``/management/v1/users/bulk`` (500 a request, two in flight),
   then waits out the watermark's overlap (``WATERMARK_OVERLAP_S``): a nightly run does not start seconds after
   a bulk import, and a run that did would only read the last seconds of it again;
2. measures the floor (``bench/floor.py``: every user and team page, bare httpx), before and after the runs;
3. runs ``sync`` as a subprocess of the real CLI (``bench/_cli.py``), each with its wall time from outside,
   peak RSS (``wait4``), requests by endpoint and how it read (full or incremental, and why), in one state
   directory of its own:
   - **full read**: no cache yet (the CSV equals the proxy: nothing to change); it writes the cache;
   - **incremental no-change**: the same CSV again;
   - **1 % run**: a CSV with 1 % changes (a quarter each: adds, deletes, role changes, team moves), applied
     with the usual safety net (backup and audit log);
   - **after the 1 % run**: the same CSV again: nothing to change (it converged), read incrementally.

Then it prints the table and PASS/MISS for the issue's targets (:func:`targets`). Not a test.
Usage: ``bench/scale [--users N ...] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import run as bench  # bench/run.py: this script's folder is sys.path[0]

from litellm_usersync.apply.executor import create_body
from litellm_usersync.models import CreateUser
from litellm_usersync.models.readcache import WATERMARK_OVERLAP_S
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import BULK_CHUNK, DEFAULT_CONCURRENCY, ClientSettings

SIZES = (1_000, 10_000, 100_000)
TEAMS = 50
CHANGE_RATIO = 0.01


@dataclass
class Run:
    label: str
    wall_s: float
    rss_mb: float
    requests: int
    counts: dict[str, int]
    read: dict[str, object]
    summary: str


@dataclass
class Size:
    n: int
    seed_s: float
    seed_requests: int
    changes: dict[str, int]
    floor_before: bench.FloorRun
    floor_after: bench.FloorRun
    runs: dict[str, Run] = field(default_factory=dict)


def run_sync(proxy: bench.Proxy, workdir: Path, state: Path, csv_path: Path, label: str, conc: int) -> Run:
    counts_file = workdir / "counts.json"
    report = workdir / "report.csv"
    argv = [bench.PY, str(bench.BENCH / "_cli.py"), "sync", "--csv-file", str(csv_path), "--report", str(report)]
    argv += ["--concurrency", str(conc), "--backup-dir", str(workdir / "backups")]
    env = {**proxy.env(), "BENCH_COUNTS_FILE": str(counts_file), "USERSYNC_STATE_DIR": str(state)}
    p = bench.run_measured(argv, env, workdir)
    if p.exit_code != 0:
        print(p.stdout[-3000:], p.stderr[-3000:], sep="\n", file=sys.stderr)
        sys.exit(f"sync ({label}) exited with {p.exit_code}")
    data = json.loads(counts_file.read_text())
    summary = next((ln.strip() for ln in p.stdout.splitlines() if ln.startswith("Synchronization result")), "")
    reads = data.get("reads") or [{}]
    counts = data["counts"]
    return Run(label, p.wall_s, p.rss_mb, sum(counts.values()), counts, reads[0], summary)


async def _seed(proxy: bench.Proxy, n: int) -> bench.Seeded:
    """As ``bench/run``'s seeding (users shaped as the tool creates them), two batches of 500 in flight."""
    settings = ClientSettings(base_url=proxy.base_url, master_key=proxy.master_key, timeout_s=600)
    users = {bench.user_email(i): (bench.ROLES[1] if i % 10 == 0 else bench.ROLES[0], i % TEAMS) for i in range(n)}
    t0 = time.perf_counter()
    async with ProxyClient(settings) as c:
        for t in range(TEAMS):
            await c.create_team(bench.team_alias(t), team_id=bench.team_alias(t))
        bodies = [
            create_body(CreateUser(e, e, role, (bench.team_alias(t),), create_key=False), with_teams=True,
                        create_key=False)
            for e, (role, t) in users.items()
        ]  # fmt: skip
        sem = asyncio.Semaphore(2)

        async def chunk(part: list[dict[str, object]]) -> int:
            async with sem:
                rows = await c.bulk_create_users(part)
            assert rows is not None, "bench/scale needs /management/v1/users/bulk (LiteLLM >= 1.100)"
            return sum(1 for r in rows if not r.success or r.error)

        step = 5 * BULK_CHUNK
        failed = sum(await asyncio.gather(*(chunk(bodies[i : i + step]) for i in range(0, n, step))))
        requests = dict(c.request_counts)
    if failed:
        sys.exit(f"seeding failed for {failed} of {n} users")
    return bench.Seeded(users, time.perf_counter() - t0, requests, failed)


def bench_size(proxy: bench.Proxy, n: int, workdir: Path, conc: int) -> Size:
    print(f"\n[N={n}] resetting and seeding {n:,} users in {TEAMS} teams ...", flush=True)
    proxy.reset()
    s = asyncio.run(_seed(proxy, n))
    print(f"[N={n}] seeded in {s.seconds:.1f} s ({sum(s.requests.values())} requests)", flush=True)
    time.sleep(WATERMARK_OVERLAP_S + 1)
    same = workdir / f"same-{n}.csv"
    bench.write_csv(same, s.users, None)
    ch = bench.make_changes(s.users, TEAMS, CHANGE_RATIO, random.Random(14_000 + n))
    changed = workdir / f"changed-{n}.csv"
    bench.write_csv(changed, s.users, ch)
    state = workdir / f"state-{n}"
    floor_before = bench.run_floor(proxy, workdir, conc)
    print(f"[N={n}] floor {floor_before.wall_s:.2f} s ({floor_before.pages} pages)", flush=True)
    runs: dict[str, Run] = {}
    for key, csv_path in (("full", same), ("no-change", same), ("1%", changed), ("after", changed)):
        runs[key] = run_sync(proxy, workdir, state, csv_path, f"{key} N={n}", conc)
        r = runs[key]
        print(f"[N={n}] {key}: {r.wall_s:.2f} s, {r.requests} requests, {r.rss_mb:.0f} MB, read {r.read}", flush=True)
    # at 100,000 one floor (a thousand pages) is enough: it is the bare read, not the tool's
    floor_after = bench.run_floor(proxy, workdir, conc) if n < 100_000 else floor_before
    changes = {"adds": len(ch.adds), "deletes": len(ch.deletes), "role changes": len(ch.role_changes),
               "team moves": len(ch.moves)}  # fmt: skip
    return Size(n, s.seconds, sum(s.requests.values()), changes, floor_before, floor_after, runs)


def targets(sizes: list[Size]) -> list[tuple[str, bool | None, str]]:
    """The issue's targets: (target, PASS/MISS or None when the size was not run, the figures)."""
    by_n = {s.n: s for s in sizes}
    out: list[tuple[str, bool | None, str]] = []
    s10 = by_n.get(10_000)
    if s10:
        r = s10.runs["no-change"]
        ok = r.wall_s <= 2.0 and r.requests <= 5 and r.read.get("mode") == "incremental"
        out.append(("incremental no-change at 10,000: ≤ 2 s and ≤ 5 requests", ok,
                    f"{r.wall_s:.2f} s, {r.requests} requests, {r.read.get('mode')}"))  # fmt: skip
        r = s10.runs["1%"]
        out.append(("1 % run at 10,000 ≤ 5 s", r.wall_s <= 5.0, f"{r.wall_s:.2f} s, {r.requests} requests"))
    else:
        out.append(("incremental no-change / 1 % run at 10,000", None, "not run"))
    for s in sizes:
        r = s.runs["full"]
        floor = min(s.floor_before.wall_s, s.floor_after.wall_s)
        ratio = r.wall_s / floor
        out.append((f"full read within 1.2x the floor at {s.n:,}", ratio <= 1.2,
                    f"{r.wall_s:.2f} s / floor {floor:.2f} s = {ratio:.2f}x"))  # fmt: skip
    s100 = by_n.get(100_000)
    if s100:
        peak = max(r.rss_mb for r in s100.runs.values())
        worst = max(s100.runs.values(), key=lambda r: r.rss_mb).label
        out.append(("peak RSS < 250 MB at 100,000", peak < 250, f"{peak:.0f} MB ({worst})"))
    else:
        out.append(("peak RSS < 250 MB at 100,000", None, "not run"))
    return out


def table(sizes: list[Size]) -> str:
    lines = [
        "| N | run | wall | requests | peak RSS | read | floor (bare full read) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sizes:
        f = s.floor_before
        for key, r in s.runs.items():
            how = str(r.read.get("mode", "?"))
            if r.read.get("reason"):
                how += f" ({r.read['reason']})"
            lines.append(f"| {s.n:,} | {key} | {r.wall_s:.2f} s | {r.requests} | {r.rss_mb:.0f} MB | {how} | "
                         f"{f.wall_s:.2f} s, {f.pages} requests, {f.rss_mb:.0f} MB |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="litellm-usersync scale benchmark (issue 14; resets the proxy!)")
    parser.add_argument("--users", type=int, action="append", help="N (repeatable) [default: 1000, 10000, 100000]")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    proxy = bench.get_proxy()
    bench.compile_package()
    info = bench.machine()
    print(f"litellm-usersync scale benchmark, {info['date']}; nproc {info['nproc']}; {info['cpu']}; {info['commit']}")
    workdir = Path(tempfile.mkdtemp(prefix="usersync-scale-"))
    sizes: list[Size] = []
    loads = [os.getloadavg()[0]]
    try:
        for n in args.users or SIZES:
            sizes.append(bench_size(proxy, n, workdir, args.concurrency))
            loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if proxy.started_by_us:
            proxy.stop()
    print("\n" + table(sizes))
    print(f"\n1-minute load average at the start and after each size: {', '.join(f'{x:.1f}' for x in loads)}")
    for name, ok, detail in targets(sizes):
        print(f"  {'PASS' if ok else 'MISS' if ok is False else '----'}  {name}: {detail}")
    for s in sizes:
        for key, r in s.runs.items():
            print(f"\n  N={s.n:,} {key} ({r.summary or 'no summary'}):\n{bench.fmt_counts(r.counts)}")
    for s in sizes:
        print(f"  N={s.n:,}: seeded in {s.seed_s:.0f} s ({s.seed_requests} requests); 1 % = {s.changes}; "
              f"floor after {s.floor_after.wall_s:.2f} s")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "loads": loads, "sizes": [asdict(s) for s in sizes]}, indent=2)
        )


if __name__ == "__main__":
    main()
