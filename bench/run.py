"""The performance benchmark of litellm-usersync against a real LiteLLM Proxy (issue 4). Run it as ``bench/run``.

For each size N (default 1,000 and 10,000 users in T = 50 teams) it:

1. resets the proxy and seeds it through its batch endpoints (``ProxyClient.create_team`` and
   ``ProxyClient.bulk_create_users`` with ``teams``), users shaped exactly as the tool creates them;
2. writes a CSV with about 10% changes, a quarter each: adds, deletes, role changes, team moves;
3. runs ``sync`` (the 10% run), then ``sync`` again with the same CSV (the no-change run, ``--repeat``
   times), each as a subprocess of the real CLI (``bench/_cli.py``), measuring its wall time from the
   outside (interpreter start included), its peak RSS (``os.wait4`` rusage of that one child) and its HTTP
   requests by endpoint (``ProxyClient.request_counts``, written at exit by ``bench/_cli.py``);
4. measures the floor — the same minimal reads (all user pages + all team pages) made bare with httpx by
   ``bench/floor.py``, also a subprocess — interleaved with the tool's runs, and prints the ratio;
5. cross-checks the request counts once against the ``→ METHOD path`` lines that ``--debug`` logs;
6. at the sizes given by ``--no-bulk-at`` (default 1,000) resets, seeds again and runs the 10% run with
   ``--no-bulk`` for comparison, then a no-change run to show both paths reach the same state.

Then it prints PASS/MISS per target (see ``evaluate``). Not a test: nothing here is asserted in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import floor as bare_floor  # bench/floor.py: this script's folder is sys.path[0]

from litellm_usersync.apply.executor import create_body
from litellm_usersync.models import CreateUser
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.proxy.snapshot import read_snapshot
from litellm_usersync.settings import BULK_CHUNK, DEFAULT_CONCURRENCY, DEFAULT_PAGE_SIZE, ClientSettings

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
#: the most requests a sync may make besides the page reads, whatever N: the version (one request on 1.110,
#: two on 1.74: /health/readiness/details answers 404 there), the caller's identity (/key/info) and one GET
#: per batch route asking whether it exists (5: ProxyClient.detect_features)
CONSTANT_REQUESTS = 8
#: the GETs that ask whether a batch route exists (counted in the constant)
PROBE = re.compile(r"GET (/management/v1/|/user/bulk_update$|/team/bulk_member_add$)")
WALL_RATIO_TARGET = 1.3
RSS_TARGET_MB = 200.0
RSS_TARGET_AT = 10_000
ROLES = ("internal_user", "internal_user_viewer")
DEBUG_LINE = re.compile(r"→ ([A-Z]+) (\S+)")
DEBUG_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) litellm_usersync\.http DEBUG ([→←])", re.M)
TEAM_PATH = re.compile(r"/teams/[^/]+/")


# --------------------------------------------------------------------------------------------------
# The proxy


@dataclass
class Proxy:
    base_url: str
    master_key: str
    started_by_us: bool
    tool: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env.update(LITELLM_BASE_URL=self.base_url, LITELLM_MASTER_KEY=self.master_key)
        return env

    def reset(self) -> None:
        subprocess.run([str(self.tool / "reset")], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        subprocess.run([str(self.tool / "stop")], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def compile_package() -> None:
    """Byte-compile the package once, as installing a wheel does: a clone run with ``PYTHONDONTWRITEBYTECODE``
    set (some shells, CI images) would otherwise compile every module again in every measured run (~0.2 s
    of each wall time that an installed tool never pays)."""
    import compileall

    import litellm_usersync

    compileall.compile_dir(str(Path(litellm_usersync.__file__).parent), quiet=1)


def get_proxy() -> Proxy:
    tool = Path(os.environ.get("LITELLM_PROXY_TOOL", REPO.parent / "shared" / "litellm-proxy"))
    url, key = os.environ.get("LITELLM_BASE_URL"), os.environ.get("LITELLM_MASTER_KEY")
    started = False
    if not (url and key):
        print(f"starting the proxy with {tool / 'start'} (first use installs it: a few minutes) ...", flush=True)
        done = subprocess.run([str(tool / "start")], check=True, capture_output=True, text=True)
        exports = dict(
            shlex.split(line)[1].split("=", 1) for line in done.stdout.splitlines() if line.startswith("export ")
        )
        url, key, started = exports["LITELLM_BASE_URL"], exports["LITELLM_MASTER_KEY"], True
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        sys.exit(f"bench/run resets the proxy, so it only runs against a loopback proxy, not {url}")
    return Proxy(url, key, started, tool)


# --------------------------------------------------------------------------------------------------
# Seeding and the CSV


def team_alias(t: int) -> str:
    return f"bench-team-{t:02d}"


def user_email(i: int) -> str:
    return f"user{i:05d}@bench.example.com"


@dataclass
class Seeded:
    users: dict[str, tuple[str, int]]  # email -> (role, team index)
    seconds: float
    requests: dict[str, int]
    failed: int


async def _seed(proxy: Proxy, n: int, teams: int) -> Seeded:
    settings = ClientSettings(base_url=proxy.base_url, master_key=proxy.master_key, timeout_s=600)
    users = {user_email(i): (ROLES[1] if i % 10 == 0 else ROLES[0], i % teams) for i in range(n)}
    t0 = time.perf_counter()
    async with ProxyClient(settings) as c:
        sem = asyncio.Semaphore(DEFAULT_CONCURRENCY)

        async def team(t: int) -> None:
            async with sem:
                await c.create_team(team_alias(t), team_id=team_alias(t))

        await asyncio.gather(*(team(t) for t in range(teams)))
        bodies = [
            create_body(
                CreateUser(email, email, role, (team_alias(t),), create_key=False), with_teams=True, create_key=False
            )
            for email, (role, t) in users.items()
        ]
        rows = await c.bulk_create_users(bodies)
        if rows is None:  # LiteLLM < 1.100 has no /management/v1/users/bulk: one /user/new per user,
            # without teams, then one member_add list per team (1.74 writes rosters without a lock: concurrent
            # creates joining one team would lose roster entries)

            async def one(body: dict[str, object]) -> None:
                async with sem:
                    await c.create_user({k: v for k, v in body.items() if k != "teams"})

            await asyncio.gather(*(one(b) for b in bodies))
            per_team: dict[str, list[tuple[str, str | None]]] = {}
            for email, (_role, t) in users.items():
                per_team.setdefault(team_alias(t), []).append((email, email))

            async def join(team_id: str, members: list[tuple[str, str | None]]) -> int:
                async with sem:
                    added = await c.add_team_members(team_id, members)
                return len(members) - len(added)

            failed = sum(await asyncio.gather(*(join(t, m) for t, m in per_team.items())))
        else:
            failed = sum(1 for r in rows if not r.success or r.error)
        requests = dict(c.request_counts)
    return Seeded(users, time.perf_counter() - t0, requests, failed)


def seed(proxy: Proxy, n: int, teams: int) -> Seeded:
    proxy.reset()
    s = asyncio.run(_seed(proxy, n, teams))
    if s.failed:
        sys.exit(f"seeding failed for {s.failed} of {n} users")
    return s


@dataclass
class Changes:
    adds: list[tuple[str, str, int]]
    deletes: list[str]
    role_changes: list[str]
    moves: list[tuple[str, int, int]]  # email, from team, to team

    @property
    def total(self) -> int:
        return len(self.adds) + len(self.deletes) + len(self.role_changes) + len(self.moves)


def make_changes(users: dict[str, tuple[str, int]], teams: int, ratio: float, rng: random.Random) -> Changes:
    k = round(len(users) * ratio) // 4
    picked = rng.sample(sorted(users), 3 * k)
    adds = [(f"new{i:05d}@bench.example.com", ROLES[0], rng.randrange(teams)) for i in range(k)]
    moves = []
    for email in picked[2 * k :]:
        t = users[email][1]
        moves.append((email, t, (t + 1 + rng.randrange(teams - 1)) % teams))
    return Changes(adds, picked[:k], picked[k : 2 * k], moves)


def write_csv(path: Path, users: dict[str, tuple[str, int]], ch: Changes | None) -> None:
    """The desired state: the seeded users with the changes applied (or unchanged when ``ch`` is None)."""
    rows = dict(users)
    if ch is not None:
        for email in ch.deletes:
            del rows[email]
        for email in ch.role_changes:
            role, t = rows[email]
            rows[email] = (ROLES[1] if role == ROLES[0] else ROLES[0], t)
        for email, _old, new in ch.moves:
            rows[email] = (rows[email][0], new)
        for email, role, t in ch.adds:
            rows[email] = (role, t)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "role", "team_name"])
        for email, (role, t) in rows.items():
            w.writerow([email, role, team_alias(t)])


# --------------------------------------------------------------------------------------------------
# Running the tool and the floor as subprocesses


@dataclass
class Proc:
    wall_s: float
    rss_mb: float
    exit_code: int
    stdout: str
    stderr: str
    started_at: float  # epoch seconds
    ended_at: float


def run_measured(argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 3600) -> Proc:
    """Run ``argv``; wall time from the outside, peak RSS of exactly this child (``wait4`` rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started_at = time.time()
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = t0 + timeout_s
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        ended_at = time.time()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(wall, usage.ru_maxrss / 1024, p.returncode, out.read(), err.read(), started_at, ended_at)


@dataclass
class ToolRun:
    label: str
    wall_s: float
    rss_mb: float
    exit_code: int
    counts: dict[str, int]
    summary: str
    report: dict[str, int] = field(default_factory=dict)
    debug_counts: dict[str, int] | None = None
    #: --debug runs only: the tool's own time before its first request (start-up, CSV) and after its last
    #: response (parsing the snapshot, planning, the report, exit), from the log's timestamps
    before_first_request_s: float | None = None
    after_last_response_s: float | None = None

    @property
    def requests(self) -> int:
        return sum(self.counts.values())


def run_tool(
    proxy: Proxy, workdir: Path, csv_path: Path, label: str, extra: list[str], concurrency: int, debug: bool = False
) -> ToolRun:
    counts_file = workdir / f"counts-{label}.json"
    report = workdir / f"report-{label}.csv"
    argv = [PY, str(BENCH / "_cli.py"), "sync", "--csv-file", str(csv_path), "--report", str(report)]
    # --full-read: this benchmark measures the full read against its floor (bench/scale measures the cache);
    # a state directory of its own keeps the run lock and the cache out of the user's
    argv += ["--concurrency", str(concurrency), "--full-read", *extra] + (["--debug"] if debug else [])
    env = {**proxy.env(), "BENCH_COUNTS_FILE": str(counts_file), "USERSYNC_STATE_DIR": str(workdir / "state")}
    p = run_measured(argv, env, workdir)
    if p.exit_code != 0:
        print(p.stdout[-3000:], p.stderr[-3000:], sep="\n", file=sys.stderr)
        sys.exit(f"sync ({label}) exited with {p.exit_code}")
    counts = json.loads(counts_file.read_text())["counts"]
    summary_lines = [ln.strip() for ln in p.stdout.splitlines() if ln.strip().startswith("Users ")]
    run = ToolRun(label, p.wall_s, p.rss_mb, p.exit_code, counts, "; ".join(summary_lines[:4]))
    if report.exists():
        with report.open(newline="", encoding="utf-8") as fh:
            run.report = dict(Counter(f"{r['action']} {r['status']}" for r in csv.DictReader(fh)))
        report.unlink()
    if debug:
        run.debug_counts = dict(Counter(" ".join(m.groups()) for m in DEBUG_LINE.finditer(p.stderr)))
        stamps = [(stamp_s(m.group(1)), m.group(2)) for m in DEBUG_STAMP.finditer(p.stderr)]
        sent = [t for t, d in stamps if d == "→"]
        answered = [t for t, d in stamps if d == "←"]
        if sent and answered:
            run.before_first_request_s = max(0.0, min(sent) - p.started_at)
            run.after_last_response_s = max(0.0, p.ended_at - max(answered))
    return run


def stamp_s(text: str) -> float:
    """A logging timestamp (local time, ms) as epoch seconds."""
    return time.mktime(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S")) + int(text[20:23]) / 1000


@dataclass
class FloorRun:
    wall_s: float
    read_s: float
    rss_mb: float
    users: int
    teams: int
    user_pages: int
    team_pages: int

    @property
    def pages(self) -> int:
        return self.user_pages + self.team_pages


def run_floor(proxy: Proxy, workdir: Path, concurrency: int) -> FloorRun:
    p = run_measured([PY, str(BENCH / "floor.py"), "--concurrency", str(concurrency)], proxy.env(), workdir)
    if p.exit_code != 0:
        sys.exit(f"floor.py failed: {p.stderr[-2000:]}")
    d = json.loads(p.stdout)
    return FloorRun(p.wall_s, d["read_s"], p.rss_mb, d["users"], d["teams"], d["user_pages"], d["team_pages"])


# --------------------------------------------------------------------------------------------------
# Targets


def per_team_chunks(team_indexes: list[int]) -> int:
    return sum(math.ceil(n / BULK_CHUNK) for n in Counter(team_indexes).values())


def expected_change_requests(ch: Changes, teams: int) -> dict[str, int]:
    """The fewest writes (and verification reads) the proxy's API allows for these changes.

    Users: one batch per 500 for each kind. Memberships: the proxy has no cross-team batch
    (``/team/member_add``, ``/team/bulk_member_add`` and ``.../members/bulk_delete`` take one team), so joins
    and leaves cost one request per team touched (per 500 members); a team whose leaves go one by one
    (old proxies, or a single leaving member) reads its roster back once. Verification: moved users read
    back by id, ``page_size`` (100) ids per ``/user/list`` request, plus the team pages (their rosters).
    ``/user/bulk_update`` also clears the "key pending" marker of the new users once their keys are on disk:
    one more request per chunk of adds.
    """
    return {
        "creates": math.ceil(len(ch.adds) / BULK_CHUNK),
        "deletes": math.ceil(len(ch.deletes) / BULK_CHUNK),
        "role changes": math.ceil(len(ch.role_changes) / BULK_CHUNK) + math.ceil(len(ch.adds) / BULK_CHUNK),
        "joins (per team)": per_team_chunks([new for _e, _o, new in ch.moves]),
        "leaves (per team)": per_team_chunks([old for _e, old, _n in ch.moves]),
        "leave read-backs (per team)": per_team_chunks([old for _e, old, _n in ch.moves]),
        "verification reads": math.ceil(len(ch.moves) / DEFAULT_PAGE_SIZE)
        + (math.ceil(teams / DEFAULT_PAGE_SIZE) if ch.moves else 0),
    }


@dataclass
class Target:
    name: str
    ok: bool
    detail: str


@dataclass
class SizeResult:
    n: int
    teams: int
    seed_s: float
    seed_requests: dict[str, int]
    changes: dict[str, int]
    floor_before: FloorRun
    change_run: ToolRun
    nochange_runs: list[ToolRun]
    floors: list[FloorRun]
    debug_run: ToolRun
    nobulk_seed_s: float | None = None
    nobulk_floor: FloorRun | None = None
    nobulk_run: ToolRun | None = None
    nobulk_after: ToolRun | None = None
    expected_writes: dict[str, int] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0
    #: --paired-reads: (floor reads alone, the tool's read_snapshot) in this process, alternating
    paired_reads: list[tuple[float, float]] = field(default_factory=list)
    #: --sweep: concurrency -> (no-change run wall, floor wall)
    sweep: dict[int, tuple[float, float]] = field(default_factory=dict)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def categorize(counts: dict[str, int], user_pages: int, team_pages: int) -> tuple[Counter[str], list[str]]:
    """Requests by what they are for; also the endpoints counted as the per-run constant."""
    out: Counter[str] = Counter()
    constant: list[str] = []
    for key, n in counts.items():
        path = key.split(" ", 1)[1]
        if PROBE.match(key):
            out["constant"] += n
            constant.append(key)
        elif key == "GET /user/list":
            out["user pages"] += min(n, user_pages)
            out["verification reads"] += n - min(n, user_pages)
        elif key == "GET /v2/team/list":
            out["team pages"] += min(n, team_pages)
            out["verification reads"] += n - min(n, team_pages)  # the rosters of the moved users' teams
        elif key == "GET /team/info":
            out["leave read-backs (per team)"] += n
        elif path in ("/management/v1/users/bulk", "/user/new"):
            out["creates"] += n
        elif path in ("/management/v1/users/bulk_delete", "/user/delete"):
            out["deletes"] += n
        elif path in ("/user/bulk_update", "/user/update"):  # role changes, and clearing new users' key markers
            out["role changes"] += n
        elif path in ("/team/member_add", "/team/bulk_member_add"):
            out["joins (per team)"] += n
        elif path == "/team/member_delete" or path.endswith("/members/bulk_delete"):
            out["leaves (per team)"] += n
        else:
            out["constant"] += n
            constant.append(key)
    return out, sorted(constant)


def compare(observed: Counter[str], minimum: dict[str, int]) -> tuple[bool, str]:
    keys = [*minimum, *(k for k in observed if k not in minimum)]
    ok = all(observed.get(k, 0) <= minimum.get(k, 0) for k in keys)
    parts = [f"{k} {observed.get(k, 0)}/{minimum.get(k, 0)}" for k in keys]
    return ok, ", ".join(parts)


def evaluate(r: SizeResult) -> list[Target]:
    out: list[Target] = []
    fb = r.floor_before
    fa = r.floors[0]  # all floors after the 10% run read the same state
    worst = max(r.nochange_runs, key=lambda x: x.requests)
    observed, constant = categorize(worst.counts, fa.user_pages, fa.team_pages)
    minimum = {"user pages": fa.user_pages, "team pages": fa.team_pages, "constant": CONSTANT_REQUESTS}
    ok, detail = compare(observed, minimum)
    out.append(
        Target(
            "no-change requests = user pages + team pages + constant",
            ok,
            f"{worst.requests} requests (observed/allowed: {detail}; constant = {', '.join(constant)})",
        )
    )
    observed, constant = categorize(r.change_run.counts, fb.user_pages, fb.team_pages)
    minimum = {"user pages": fb.user_pages, "team pages": fb.team_pages, "constant": CONSTANT_REQUESTS}
    minimum.update(r.expected_writes)
    ok, detail = compare(observed, minimum)
    out.append(
        Target(
            "10% run requests = pages + constant + ceil(n/500) per kind (per team for memberships) + verification",
            ok,
            f"{r.change_run.requests} requests, at most {sum(minimum.values())} (observed/allowed: {detail})",
        )
    )
    tool_wall = median([x.wall_s for x in r.nochange_runs])
    floor_wall = median([f.wall_s for f in r.floors])
    ratio = tool_wall / floor_wall
    out.append(
        Target(
            f"no-change wall within {WALL_RATIO_TARGET}x of the floor",
            ratio <= WALL_RATIO_TARGET,
            f"median {tool_wall:.2f} s vs floor median {floor_wall:.2f} s = {ratio:.2f}x",
        )
    )
    runs = [r.change_run, *r.nochange_runs]
    peak = max(x.rss_mb for x in runs)
    if r.n >= RSS_TARGET_AT:
        out.append(Target(f"peak RSS under {RSS_TARGET_MB:.0f} MB", peak < RSS_TARGET_MB, f"peak {peak:.0f} MB"))
    else:
        out.append(Target(f"peak RSS (target {RSS_TARGET_MB:.0f} MB applies at 10,000)", True, f"peak {peak:.0f} MB"))
    if r.debug_run.debug_counts is not None:
        same = r.debug_run.debug_counts == r.debug_run.counts
        out.append(
            Target(
                "request counts agree with the --debug log lines",
                same,
                "identical" if same else f"debug {r.debug_run.debug_counts} vs counts {r.debug_run.counts}",
            )
        )
    if r.nobulk_after is not None:
        clean = r.nobulk_after.report.keys() <= {"UNCHANGED SUCCESS"}
        out.append(
            Target(
                "--no-bulk 10% run reaches the same state (a following sync has nothing to do)",
                clean,
                f"after --no-bulk: {r.nobulk_after.report}",
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# Printing


def fmt_counts(counts: dict[str, int]) -> str:
    """Requests by endpoint; per-team paths are folded into one line per route."""
    grouped: Counter[str] = Counter()
    teams: Counter[str] = Counter()
    for key, n in counts.items():
        route = TEAM_PATH.sub("/teams/{team_id}/", key)
        grouped[route] += n
        teams[route] += route != key
    lines = []
    for k, n in sorted(grouped.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"      {n:6d}  {k}" + (f"  ({teams[k]} teams)" if teams[k] else ""))
    return "\n".join(lines)


def print_run(run: ToolRun, floor: FloorRun | None) -> None:
    ratio = f" = {run.wall_s / floor.wall_s:.2f}x the floor ({floor.wall_s:.2f} s)" if floor else ""
    print(f"  {run.label}: {run.wall_s:.2f} s{ratio}; peak RSS {run.rss_mb:.0f} MB; {run.requests} requests")
    if run.summary:
        print(f"    plan: {run.summary}")
    if run.report:
        print(f"    report rows: {dict(sorted(run.report.items()))}")
    if floor:
        by_purpose, _ = categorize(run.counts, floor.user_pages, floor.team_pages)
        print(f"    by purpose: {dict(by_purpose)}")
    print(fmt_counts(run.counts))


def print_size(r: SizeResult) -> None:
    print(f"\n=== N = {r.n} users, T = {r.teams} teams ===")
    print(f"seeded in {r.seed_s:.1f} s with {sum(r.seed_requests.values())} requests: {r.seed_requests}")
    print(f"changes: {r.changes}")
    fb = r.floor_before
    print(
        f"floor before the 10% run: {fb.wall_s:.2f} s (reads alone {fb.read_s:.2f} s), {fb.users} users in "
        f"{fb.user_pages} pages, {fb.teams} teams in {fb.team_pages} page(s), floor RSS {fb.rss_mb:.0f} MB"
    )
    print_run(r.change_run, fb)
    walls = ", ".join(f"{x.wall_s:.2f}" for x in r.nochange_runs)
    floors = ", ".join(f"{f.wall_s:.2f}" for f in r.floors)
    print(
        f"  no-change runs: {walls} s; floors (interleaved): {floors} s (reads alone: "
        f"{', '.join(f'{f.read_s:.2f}' for f in r.floors)} s)"
    )
    pairs = ", ".join(f"{x.wall_s / f.wall_s:.2f}" for x, f in zip(r.nochange_runs, r.floors, strict=True))
    print(f"  paired ratios (each run / the floor just before it): {pairs}")
    nochange = sorted(r.nochange_runs, key=lambda x: x.wall_s)[len(r.nochange_runs) // 2]
    print_run(nochange, sorted(r.floors, key=lambda f: f.wall_s)[len(r.floors) // 2])
    d = r.debug_run
    print(f"  no-change run with --debug (counts cross-check; debug costs time): {d.wall_s:.2f} s")
    if d.before_first_request_s is not None and d.after_last_response_s is not None:
        print(
            f"    the tool's own time outside the requests: {d.before_first_request_s:.2f} s before the first "
            f"(start-up, CSV), {d.after_last_response_s:.2f} s after the last response (snapshot, plan, report)"
        )
    print(f"  load average (1 min) before / after this size: {r.load_before:.2f} / {r.load_after:.2f}")
    if r.nobulk_run is not None and r.nobulk_floor is not None:
        print(f"  --- same 10% changes with --no-bulk (reseeded in {r.nobulk_seed_s:.1f} s)")
        print_run(r.nobulk_run, r.nobulk_floor)
        if r.nobulk_after is not None:
            print(f"    then a bulk no-change run: {r.nobulk_after.summary}")
    if r.paired_reads:
        print("  in-process read phase, floor vs the tool's read_snapshot (alternating):")
        for f_s, t_s in r.paired_reads:
            print(f"    floor {f_s:6.2f} s, tool {t_s:6.2f} s = {t_s / f_s:.2f}x")
    if r.sweep:
        print("  --concurrency sweep (no-change run wall / floor wall at the same concurrency):")
        for c, (tool_s, floor_s) in sorted(r.sweep.items()):
            print(f"    {c:3d}: {tool_s:6.2f} s / {floor_s:6.2f} s")
    print("  targets:")
    for t in r.targets:
        print(f"    {'PASS' if t.ok else 'MISS'}  {t.name}: {t.detail}")


def machine() -> dict[str, str]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "?"

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": cmd("nproc"),
        "free -h": cmd("free", "-h"),
        "python": platform.python_version(),
        "commit": cmd("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
        + (" + uncommitted changes in src/" if cmd("git", "-C", str(REPO), "status", "--porcelain", "src") else ""),
        "cpu": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "?",
        )
        if Path("/proc/cpuinfo").exists()
        else "?",
    }


# --------------------------------------------------------------------------------------------------


async def _tool_read_s(proxy: Proxy, concurrency: int) -> float:
    """The tool's own read phase, in this process: ``read_snapshot`` (version, identity, all pages, parsing)."""
    settings = ClientSettings(base_url=proxy.base_url, master_key=proxy.master_key, concurrency=concurrency)
    async with ProxyClient(settings) as c:
        t0 = time.perf_counter()
        await read_snapshot(c)
        return time.perf_counter() - t0


def bench_size(proxy: Proxy, args: argparse.Namespace, n: int, workdir: Path) -> SizeResult:
    conc = args.concurrency
    load_before = os.getloadavg()[0]
    print(f"\n[N={n}] resetting and seeding {n} users in {args.teams} teams ...", flush=True)
    s = seed(proxy, n, args.teams)
    ch = make_changes(s.users, args.teams, args.change_ratio, random.Random(4_000 + n))
    # the no-change runs use the same CSV: once the 10% run has applied it, there is nothing left to do
    changed_csv = same_csv = workdir / f"changed-{n}.csv"
    write_csv(changed_csv, s.users, ch)
    print(f"[N={n}] seeded in {s.seconds:.1f} s; 10% run ({ch.total} changes) ...", flush=True)
    floor_before = run_floor(proxy, workdir, conc)
    change_run = run_tool(proxy, workdir, changed_csv, f"10% run N={n}", [], conc)
    print(f"[N={n}] 10% run {change_run.wall_s:.1f} s; no-change runs x{args.repeat} with floors ...", flush=True)
    floors: list[FloorRun] = []
    nochange: list[ToolRun] = []
    for i in range(args.repeat):
        floors.append(run_floor(proxy, workdir, conc))
        nochange.append(run_tool(proxy, workdir, same_csv, f"no-change run N={n} #{i + 1}", [], conc))
    debug_run = run_tool(proxy, workdir, same_csv, f"no-change --debug N={n}", [], conc, debug=True)
    result = SizeResult(
        n=n,
        teams=args.teams,
        seed_s=s.seconds,
        seed_requests=s.requests,
        changes={
            "adds": len(ch.adds),
            "deletes": len(ch.deletes),
            "role changes": len(ch.role_changes),
            "team moves": len(ch.moves),
        },
        floor_before=floor_before,
        change_run=change_run,
        nochange_runs=nochange,
        floors=floors,
        debug_run=debug_run,
        expected_writes=expected_change_requests(ch, args.teams),
    )
    if n in args.no_bulk_at:
        print(f"[N={n}] reseeding for the --no-bulk comparison ...", flush=True)
        s2 = seed(proxy, n, args.teams)
        result.nobulk_seed_s = s2.seconds
        result.nobulk_floor = run_floor(proxy, workdir, conc)
        result.nobulk_run = run_tool(proxy, workdir, changed_csv, f"10% run --no-bulk N={n}", ["--no-bulk"], conc)
        result.nobulk_after = run_tool(proxy, workdir, same_csv, f"after --no-bulk N={n}", [], conc)
    for _ in range(args.paired_reads):
        floor_s = asyncio.run(bare_floor.run(proxy.base_url, proxy.master_key, conc))["read_s"]
        result.paired_reads.append((floor_s, asyncio.run(_tool_read_s(proxy, conc))))
    for c in args.sweep:
        run = run_tool(proxy, workdir, same_csv, f"no-change --concurrency {c} N={n}", [], c)
        result.sweep[c] = (run.wall_s, run_floor(proxy, workdir, c).wall_s)
    result.targets = evaluate(result)
    result.load_before, result.load_after = load_before, os.getloadavg()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="litellm-usersync performance benchmark (resets the proxy!)")
    parser.add_argument("--users", type=int, action="append", help="N (repeatable) [default: 1000 and 10000]")
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--change-ratio", type=float, default=0.10)
    parser.add_argument("--repeat", type=int, default=3, help="no-change runs (and floors) per size; medians")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument(
        "--no-bulk-at", type=int, action="append", help="sizes that also get a --no-bulk 10%% run [default: 1000]"
    )
    parser.add_argument(
        "--paired-reads",
        type=int,
        default=0,
        help="also time the read phase alone K times in-process: the floor vs the tool's read_snapshot",
    )
    parser.add_argument(
        "--sweep",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        help="also time a no-change run and the floor at these concurrencies, e.g. 1,2,4,8,16",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep-proxy", action="store_true", help="leave a proxy started by bench/run running")
    args = parser.parse_args()
    args.users = args.users or [1000, 10_000]
    args.no_bulk_at = set(args.no_bulk_at if args.no_bulk_at is not None else [1000])

    proxy = get_proxy()
    compile_package()
    info = machine()
    print(f"litellm-usersync benchmark, {info['date']}; nproc {info['nproc']}; python {info['python']}; {info['cpu']}")
    print(info["free -h"])
    print(f"litellm-usersync at {info['commit']}")
    print(f"proxy {proxy.base_url}; concurrency {args.concurrency}; page size {DEFAULT_PAGE_SIZE}; batch {BULK_CHUNK}")
    workdir = Path(tempfile.mkdtemp(prefix="usersync-bench-"))
    results = []
    try:
        for n in args.users:
            r = bench_size(proxy, args, n, workdir)
            print_size(r)
            results.append(r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if proxy.started_by_us and not args.keep_proxy:
            proxy.stop()
    print("\n=== summary ===")
    for r in results:
        for t in r.targets:
            print(f"  N={r.n:<6d} {'PASS' if t.ok else 'MISS'}  {t.name}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": [asdict(r) for r in results]}, indent=2))
    sys.exit(0 if all(t.ok for r in results for t in r.targets) else 1)


if __name__ == "__main__":
    main()
