"""A loopback fault-injection HTTP proxy for the integration tests (test-only code, pure asyncio + httpx).

It sits between the tool and a real LiteLLM Proxy and, by seeded chance, answers a request with a fault
instead of (or after) forwarding it:

=============== =====================================================================================
kind            what the client sees                                  did the proxy apply it?
=============== =====================================================================================
``500`` ...     500 / 502 / 503 with a JSON error body                no (never forwarded)
``429``         429 with ``Retry-After: 0`` or ``1``                  no
``latency``     the real answer, 0.3 s or ``long_latency_s`` late    yes (forwarded before or after
                (long enough to exceed the client's timeout)          the delay, even if the client
                                                                      gave up meanwhile)
``reset``       the connection is reset (RST) before forwarding       no
``reset_after`` the connection is reset after forwarding              **yes**: the answer is lost
``lost_502``    a 502 instead of the real answer                      **yes**: the answer is lost
``answer``      a scripted status and JSON body (``Decision.answer``) no (never forwarded)
``claim_success`` 200 "done" (a per-member success list for a bulk call)  **no**: the proxy claims success
                without acting (``claims_success_on_leaves``: every  without acting, as a stale read
                ``/team/member_delete`` and bulk members delete)      replica or a buggy gateway would
=============== =====================================================================================

Determinism: whether a request gets a fault, and which, is a function of the seed, the request (method,
target, body) and how many identical requests came before it — not of arrival order. So concurrent
clients get the same faults on the same requests in every run, and a retry of a request gets a fresh draw.

Usage (in a thread of the test process)::

    with FaultProxy("http://127.0.0.1:4000", seed=1, rate=0.2) as fp:
        run_the_cli(env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()            # let delayed forwards land before asserting on the real proxy
        print(fp.counts)          # Counter({'503': 4, 'lost_502': 3, ...})

or as a process: ``python tests/faultproxy.py --upstream URL --seed 1 --rate 0.2`` (prints its URL).

It speaks HTTP/1.1 with keep-alive, reads bodies by Content-Length or chunked encoding (any size that fits
in memory) and forwards to the upstream with one pooled httpx client.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

import httpx

ERROR_KINDS = ("500", "502", "503")
ALL_KINDS = (*ERROR_KINDS, "429", "latency", "reset", "reset_after", "lost_502")
#: faults after which the upstream has applied the request although the client got no answer
APPLIED_KINDS = ("reset_after", "lost_502")

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
    "accept-encoding",
    "content-encoding",
}


@dataclass(frozen=True)
class Decision:
    kind: str | None  #: None: forward untouched
    value: float = 0.0  #: latency or Retry-After seconds
    after: bool = False  #: latency: delay the answer (after forwarding) rather than the request
    #: kind "answer" (scripted only): the status and JSON body sent instead of forwarding, e.g. LiteLLM's own
    #: licence-limit 403, which the real proxy gives only with a signed licence
    answer: tuple[int, object] | None = None


@dataclass
class FaultConfig:
    seed: int = 0
    rate: float = 0.2
    kinds: tuple[str, ...] = ALL_KINDS
    short_latency_s: float = 0.3
    #: should exceed the client's timeout, so that latency faults also produce timeouts
    long_latency_s: float = 2.5
    retry_after_s: tuple[int, ...] = (0, 1)
    #: latency before forwarding (True: the request lands late, possibly after the client gave up and
    #: sent it again), after forwarding (False: applied, answer late), or None: seeded choice
    latency_before: bool | None = None
    #: only requests with these methods get faults (None: all)
    methods: frozenset[str] | None = None
    #: requests whose path starts with one of these are never faulted
    exempt_paths: tuple[str, ...] = ()
    #: fault only the first of identical requests (a resent request goes through): with ``rate=1.0`` this
    #: makes "every write's answer is lost once" a deterministic scenario
    first_only: bool = False
    #: a scripted decision ``(method, target, n) -> Decision | None`` (n: identical requests seen before);
    #: when it returns a Decision it wins over the seeded draw (for races that need exact timing)
    script: Callable[[str, str, int], Decision | None] | None = None
    #: answer every team-member removal (``/team/member_delete`` and the bulk members delete) with a success
    #: without forwarding it: the "claims success without acting" fault, independent of ``rate``
    claims_success_on_leaves: bool = False
    #: rewrite a forwarded answer ``(method, target, body) -> body`` (e.g. a read replica that lags behind)
    rewrite_answer: Callable[[str, str, bytes], bytes] | None = None


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class _Stats:
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)


class FaultProxy:
    """The proxy. ``start()`` runs it in a daemon thread on 127.0.0.1 (a free port); ``stop()`` ends it."""

    def __init__(self, upstream: str, config: FaultConfig | None = None, **kw: object) -> None:
        self.upstream = upstream.rstrip("/")
        self.config = config or FaultConfig(**kw)  # type: ignore[arg-type]
        #: switch faults off and on (e.g. arrange through the fault proxy without faults)
        self.enabled = True
        self._stats = _Stats()
        self._seen: collections.Counter[str] = collections.Counter()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._received = 0
        self._writes = 0
        #: the bodies of the write requests received, in order (for ``wait_writes(matching=...)``)
        self._write_bodies: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0

    # -------------------------------------------------------------------------------- public API

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def counts(self) -> collections.Counter[str]:
        """Injected faults by kind, plus ``forwarded`` and ``requests``."""
        with self._cond:
            return collections.Counter(self._stats.counts)

    @property
    def injected(self) -> int:
        c = self.counts
        return sum(v for k, v in c.items() if k in ALL_KINDS)

    @property
    def log(self) -> list[tuple[str, str, str | None]]:
        """``(method, path, fault kind or None)`` for every request, in arrival order."""
        with self._cond:
            return list(self._stats.log)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is being forwarded or delayed (delayed writes have landed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fault proxy still has {self._in_flight} request(s) in flight")
                self._cond.wait(left)

    def wait_writes(self, n: int, timeout: float = 60.0, *, matching: bytes | None = None) -> bool:
        """Wait until ``n`` write requests (not GET) have been received — only those whose body contains
        ``matching``, when given (the writes of one kind, whatever runs beside them); False on timeout."""
        deadline = time.monotonic() + timeout

        def seen() -> int:
            if matching is None:
                return self._writes
            return sum(1 for b in self._write_bodies if matching in b)

        with self._cond:
            while seen() < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def start(self) -> FaultProxy:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_server())
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------------------- the decision

    def decide(self, method: str, target: str, body: bytes) -> Decision:
        """Deterministic: seed + request + how many identical requests came before it."""
        cfg = self.config
        ident = f"{method} {target} {hashlib.sha256(body).hexdigest()}"
        with self._cond:
            n = self._seen[ident]
            self._seen[ident] += 1
        if not self.enabled:
            return Decision(None)
        if cfg.claims_success_on_leaves and method == "POST" and _is_leave(target):
            return Decision("claim_success")
        if cfg.script is not None:
            scripted = cfg.script(method, target, n)
            if scripted is not None:
                return scripted
        if not cfg.kinds or cfg.rate <= 0:
            return Decision(None)
        if cfg.methods is not None and method not in cfg.methods:
            return Decision(None)
        if cfg.first_only and n > 0:
            return Decision(None)
        path = target.split("?", 1)[0]
        if any(path.startswith(p) for p in cfg.exempt_paths):
            return Decision(None)
        h = hashlib.sha256(f"{cfg.seed}|{ident}|{n}".encode()).digest()
        draw = int.from_bytes(h[0:4], "big") / 2**32
        if draw >= cfg.rate:
            return Decision(None)
        kind = cfg.kinds[int.from_bytes(h[4:8], "big") % len(cfg.kinds)]
        pick = int.from_bytes(h[8:12], "big")
        if kind == "429":
            return Decision(kind, float(cfg.retry_after_s[pick % len(cfg.retry_after_s)]))
        if kind == "latency":
            value = cfg.long_latency_s if pick % 2 else cfg.short_latency_s
            before = not (pick >> 1) % 2 if cfg.latency_before is None else cfg.latency_before
            return Decision(kind, value, after=not before)
        return Decision(kind)

    # -------------------------------------------------------------------------------- the server

    async def _start_server(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.upstream,
            timeout=httpx.Timeout(300.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            trust_env=False,
        )
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server:
            self._server.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._client:
            await self._client.aclose()

    def _count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self._stats.counts[key] += n

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    break
                keep_open = await self._handle(req, writer)
                if not keep_open:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, req: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must be closed."""
        d = self.decide(req.method, req.target, req.body)
        with self._cond:
            self._received += 1
            if req.method != "GET":
                self._writes += 1
                self._write_bodies.append(req.body)
            self._stats.counts["requests"] += 1
            self._stats.log.append((req.method, req.path, d.kind))
            if d.kind:
                self._stats.counts[d.kind] += 1
            self._in_flight += 1
            self._cond.notify_all()
        try:
            return await self._apply(req, d, writer)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    async def _apply(self, req: _Request, d: Decision, writer: asyncio.StreamWriter) -> bool:
        closing = (req.header("connection") or "").lower() == "close"
        if d.kind == "claim_success":
            await _write_json(writer, 200, _claimed_success(req), close=closing)
            return not closing
        if d.kind in ERROR_KINDS:
            status = int(d.kind)
            await _write_json(writer, status, _error_body(status, f"fault injected: HTTP {status}"), close=closing)
            return not closing
        if d.kind == "401":  # scripts only (not in ALL_KINDS): credentials refused mid-run
            await _write_json(writer, 401, _error_body(401, "fault injected: Authentication Error"), close=closing)
            return not closing
        if d.kind == "429":
            await _write_json(
                writer,
                429,
                _error_body(429, "fault injected: rate limited"),
                extra=[("Retry-After", str(int(d.value)))],
                close=closing,
            )
            return not closing
        if d.kind == "answer" and d.answer is not None:
            await _write_json(writer, d.answer[0], d.answer[1], close=closing)
            return not closing
        if d.kind == "reset":
            _reset(writer)
            return False
        if d.kind == "latency" and not d.after:
            await asyncio.sleep(d.value)
        status, headers, body = await self._forward(req)
        if self.config.rewrite_answer is not None and status < 400:
            body = self.config.rewrite_answer(req.method, req.target, body)
        if d.kind == "reset_after":
            _reset(writer)
            return False
        if d.kind == "lost_502":
            await _write_json(writer, 502, _error_body(502, "fault injected: answer lost"), close=closing)
            return not closing
        if d.kind == "latency" and d.after:
            await asyncio.sleep(d.value)
        if writer.is_closing():
            return False
        await _write_response(writer, status, headers, body, close=closing)
        return not closing

    async def _forward(self, req: _Request) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self._client is not None
        headers = [(k, v) for k, v in req.headers if k.lower() not in _HOP_BY_HOP]
        headers.append(("Accept-Encoding", "identity"))
        try:
            resp = await self._client.request(req.method, req.target, headers=headers, content=req.body)
        except httpx.HTTPError as exc:
            self._count("upstream_error")
            return (
                502,
                [("Content-Type", "application/json")],
                json.dumps(_error_body(502, f"upstream: {exc}")).encode(),
            )
        self._count("forwarded")
        out = [(k, v) for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP]
        return resp.status_code, out, resp.content


# ------------------------------------------------------------------------------------------ HTTP


def _is_leave(target: str) -> bool:
    path = target.split("?", 1)[0]
    return path == "/team/member_delete" or (
        path.startswith("/management/v1/teams/") and path.endswith("/members/bulk_delete")
    )


def _claimed_success(req: _Request) -> object:
    """What the proxy answers when a removal worked, though nothing was forwarded."""
    try:
        body = json.loads(req.body or b"{}")
    except ValueError:
        body = {}
    if req.path.endswith("/members/bulk_delete"):
        members = body.get("members") or []
        rows = [
            {"user_id": m.get("user_id"), "user_email": m.get("user_email"), "success": True, "error": None}
            for m in members
        ]
        return {"data": rows}
    return {"team_id": body.get("team_id"), "members_with_roles": []}


def _error_body(status: int, message: str) -> dict[str, object]:
    return {"error": {"message": message, "type": "fault_injection", "param": None, "code": str(status)}}


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    req = _Request(method.upper(), target, version, headers, b"")
    te = (req.header("transfer-encoding") or "").lower()
    if "chunked" in te:
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        req.body = b"".join(chunks)
    else:
        length = int(req.header("content-length") or 0)
        req.body = await reader.readexactly(length) if length else b""
    return req


async def _write_response(
    writer: asyncio.StreamWriter, status: int, headers: Iterable[tuple[str, str]], body: bytes, *, close: bool
) -> None:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close" if close else "Connection: keep-alive")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _write_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: object,
    *,
    extra: Iterable[tuple[str, str]] = (),
    close: bool,
) -> None:
    body = json.dumps(payload).encode()
    await _write_response(writer, status, [("Content-Type", "application/json"), *extra], body, close=close)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), without answering."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# ------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--upstream", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--kinds", default=",".join(ALL_KINDS))
    p.add_argument("--long-latency", type=float, default=FaultConfig.long_latency_s)
    a = p.parse_args(argv)
    cfg = FaultConfig(seed=a.seed, rate=a.rate, kinds=tuple(a.kinds.split(",")), long_latency_s=a.long_latency)
    fp = FaultProxy(a.upstream, cfg).start()
    print(fp.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fp.stop()
        print(dict(fp.counts), file=sys.stderr)


if __name__ == "__main__":
    main()
