"""Price service benchmark: the price read as served, against two references, in one run.

Starts each server as one process (uvloop + httptools) and measures them under the
same load generator in interleaved rounds:

1. ``bare``: a bare ASGI app returning a fixed JSON body (the ceiling);
2. ``fastapi+redis``: a plain FastAPI route doing one Redis ``HGETALL`` (redis-py
   asyncio) and returning a pydantic model (the naive design; ``--skip-naive``
   leaves it out);
3. ``dropprice``: ``GET /v1/prices/{sku}?market=`` through ``dropprice serve`` as an
   operator runs it: the shipped ``configs/`` (1,009 SKUs in 3,212 markets), the
   production defaults (API key check, rate limiter, metrics, JSON access log, the
   sync thread), a published surface for every SKU and market, a real
   ``redis-server``;
4. ``baseline`` (with ``--baseline SRC``): the same ``dropprice serve`` run from
   another source tree (``git archive <commit> | tar -x -C SRC``), for before/after
   ratios measured under the same load.

It prints requests/s and p50/p99 latency for each and the ratios, then for the
service: p99 at half its peak rate (wrk with a per-connection pause paced to half the
peak; the Python generator runs open loop and counts latency from each request's
scheduled time, so queueing is not hidden), how long a sale recorded by another
process takes to show in the next price read, and ``POST /v1/events`` ingestion in
batches of 100 sales.

The load generator is ``wrk`` when installed (``apt-get install -y wrk``), else a
Python asyncio generator with keep-alive connections (it tops out lower than wrk,
which then understates the fast handlers' rates; the ratios say so). Targets on the
2-core reference machine: read >= 0.7x bare and >= 3x fastapi+redis, p99 <= 5 ms at
half peak, sale visible within 50 ms, >= 20,000 events/s.

The load average is printed at the start and the end (``uptime``): on a busy machine
compare the ratios, not the absolute rates.

Run::

    python benchmarks/bench_service.py                 # ~1 minute
    python benchmarks/bench_service.py --baseline /tmp/dp-base --skip-naive
    python benchmarks/bench_service.py --duration 10 --connections 64
    python benchmarks/bench_service.py --python-load   # force the Python generator
    python benchmarks/bench_service.py --ingestion-only --rounds 2

Results are printed and written to ``benchmarks/out/bench_service.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]

API_KEY = "bench-pos-key-0123456789abcdef"
CONFIGS = ROOT / "configs"
READ_SKU = "HOL-APP-0001"
MARKET = "store-chicago"
SERVER_PIDS: dict[str, int] = {}
"""Process id of each started server by base URL (for its CPU time)."""
PEAK_RSS_MIB: dict[str, float] = {}
"""Peak resident memory of each server by base URL, read just before it is stopped."""
BENCH_UNITS = 5_000_000
"""Units left set on every counter, so the ingestion run never sells out."""
FIXED = {
    "sku": READ_SKU,
    "market": MARKET,
    "price": 19.99,
    "currency": "USD",
    "version": "v1",
    "inventory": 5_000_000,
    "source": "surface",
    "quote_id": "q1.U0tVLTAwMDF8YmVuY2gtbWFya2V0fDE5Ljk5fDE3OTU5OTA0NjIzOTR8djE.Bk5O8dY-gVhxXeGX_BbIpw",
    "expires_at": "2026-11-29T22:14:22.394Z",
}


# ----------------------------------------------------------- reference apps
_BARE_BODY = orjson.dumps(FIXED)


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reference 1: fixed JSON, nothing else."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_BARE_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BARE_BODY})


class Price(BaseModel):
    """Response model of the FastAPI+Redis reference."""

    sku: str
    market: str
    price: float
    currency: str
    version: str
    inventory: int


def fastapi_redis_app() -> Any:
    """Reference 2: FastAPI route + one redis-py HGETALL + a pydantic response model."""
    import redis.asyncio as aredis
    from fastapi import FastAPI

    client = aredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    app = FastAPI()

    @app.get("/v1/prices/{sku}", response_model=Price)
    async def price(sku: str, market: str = MARKET) -> Price:
        h = await client.hgetall(f"bench:{sku}:{market}")
        return Price(
            sku=sku,
            market=market,
            price=float(h[b"price"]),
            currency=h[b"currency"].decode(),
            version=h[b"version"].decode(),
            inventory=int(h[b"inventory"]),
        )

    return app


# ------------------------------------------------------------------ servers
def free_port() -> int:
    from service.embedded import free_port as _free

    return _free()


@contextlib.contextmanager
def uvicorn_server(
    target: str, env: dict[str, str], *, factory: bool = False, ready_path: str = "/"
) -> Iterator[str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--app-dir",
        str(Path(__file__).parent),
    ]
    if factory:
        cmd.append("--factory")
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, port, ready_path, target)
        SERVER_PIDS[url] = proc.pid
        yield url
    finally:
        _record_peak_rss(url, proc.pid)
        _stop(proc)


@contextlib.contextmanager
def serve_server(redis_url: str, env: dict[str, str], src: Path = ROOT) -> Iterator[str]:
    """``dropprice serve`` on the shipped configs, run from the source tree ``src``."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="dropprice-serve-"))
    cmd = [
        sys.executable,
        "-c",
        "from service.cli import app; app()",
        "serve",
        "--port",
        str(port),
        "--redis-url",
        redis_url,
        "--config-dir",
        str(CONFIGS),
    ]
    path = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env={**os.environ, **env, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, port, "/readyz", f"dropprice serve from {src}")
        SERVER_PIDS[url] = proc.pid  # serve with one worker runs uvicorn in-process
        yield url
    finally:
        _record_peak_rss(url, proc.pid)
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, ready_path: str, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", ready_path)
            status = conn.getresponse().status
            conn.close()
            if status in (200, 404):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _record_peak_rss(url: str, pid: int) -> None:
    """Keep the peak resident memory (``VmHWM``) of server ``pid`` in :data:`PEAK_RSS_MIB`."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                PEAK_RSS_MIB[url] = int(line.split()[1]) / 1024
                return


def peak_rss_line(servers: dict[str, str]) -> str:
    """Peak RSS of each named server (by base URL) and of this benchmark process."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    parts = [
        f"{name} {PEAK_RSS_MIB[url]:,.0f} MiB"
        for name, url in servers.items()
        if url in PEAK_RSS_MIB
    ]
    return "peak RSS: " + ", ".join([*parts, f"benchmark process {own:,.0f} MiB"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------- load generators
def wrk_run(
    url: str,
    duration: float,
    connections: int,
    headers: dict[str, str],
    rate: float | None = None,
) -> dict[str, float]:
    """wrk, as fast as possible, or paced near ``rate`` requests/s: each connection
    waits ``connections / rate`` seconds after each response (wrk's Lua ``delay``)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if rate is not None:
        script = Path(tempfile.mkdtemp(prefix="dropprice-wrk-")) / "pace.lua"
        script.write_text(f"function delay()\n  return {connections * 1000.0 / rate:.3f}\nend\n")
        cmd += ["-s", str(script)]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout

    def lat(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            raise RuntimeError(f"cannot parse wrk output:\n{out}")
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        return float(m.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "requests": requests,
        "p50_ms": lat("50"),
        "p99_ms": lat("99"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


async def _http_get_loop(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    latencies: list[float],
    errors: list[int],
    rate_slots: Iterator[float] | None = None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    try:
        while True:
            if rate_slots is not None:
                scheduled = next(rate_slots)
                if scheduled >= stop_at:
                    return
                delay = scheduled - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = scheduled
            else:
                t0 = loop.time()
                if t0 >= stop_at:
                    return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(loop.time() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(1)
    finally:
        writer.close()


def python_run(
    url: str,
    duration: float,
    connections: int,
    headers: dict[str, str],
    rate: float | None = None,
) -> dict[str, float]:
    """Closed loop (as fast as possible) or open loop at ``rate`` requests/s."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert m is not None
    host, port, path = m.group(1), int(m.group(2)), m.group(3)
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    request = (head + "\r\n").encode()
    latencies: list[float] = []
    errors: list[int] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        stop_at = start + duration
        slots = None
        if rate is not None:
            counter = itertools.count()
            slots = (start + i / rate for i in counter)
        await asyncio.gather(
            *[
                _http_get_loop(host, port, request, stop_at, latencies, errors, slots)
                for _ in range(connections)
            ]
        )
        return loop.time() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "requests": float(len(latencies)),
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": float(len(errors)),
    }


# ------------------------------------------------------------------- set-up
def configured_pairs() -> list[tuple[str, str, int]]:
    """``(sku, market, configured units)`` of every SKU and market in ``configs/``."""
    from service.config.loader import load_config_dir

    bundle = load_config_dir(CONFIGS)
    out: dict[tuple[str, str], int] = {}
    for drop in bundle.drops:
        for sku in drop.skus:
            for market in sku.inventory or dict.fromkeys(drop.markets, 100):
                out[(sku.sku, market)] = int((sku.inventory or {}).get(market, 100))
    return [(sku, market, units) for (sku, market), units in out.items()]


def publish_bench_surfaces(redis_url: str) -> int:
    """Publish a surface (units left x 24 hourly periods) for every configured SKU and
    market, and set every counter to :data:`BENCH_UNITS` (``serve`` keeps live counters).
    Also the fixed rows the FastAPI+Redis reference reads. Returns the surface count."""
    import numpy as np

    from service import keys
    from service.store import PriceStore, SurfaceRecord, connect

    store = PriceStore(connect(redis_url, timeout=30.0))
    start = datetime.now(UTC) - timedelta(hours=1)
    surfaces = {}
    for sku, market, units in configured_pairs():
        n = np.arange(units + 1, dtype=float)[:, None]
        surfaces[(sku, market)] = SurfaceRecord(
            price=np.repeat(30.0 - 10.0 * n / (units + 1), 24, axis=1),
            period_start=start,
            period_seconds=3600,
        )
    store.publish_surfaces("bench-v1", surfaces)
    pipe = store.client.pipeline(transaction=False)
    for sku, market in surfaces:
        pipe.set(keys.inventory(sku, market), BENCH_UNITS)
    pipe.hset(
        f"bench:{READ_SKU}:{MARKET}",
        mapping={"price": 19.99, "currency": "USD", "version": "v1", "inventory": BENCH_UNITS},
    )
    pipe.execute()
    store.close()
    return len(surfaces)


# ------------------------------------------------------- service-only checks
def get_json(conn: http.client.HTTPConnection, path: str) -> dict[str, Any]:
    conn.request("GET", path, headers={"X-API-Key": API_KEY})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
    data: dict[str, Any] = orjson.loads(body)
    return data


def sale_visibility(url: str, redis_url: str, trials: int = 40) -> dict[str, float]:
    """A sale recorded by another process (as another worker or host would): time
    from the sale's commit in Redis to the first price read that shows it."""
    from service.store import EventRecord, PriceStore, connect

    store = PriceStore(connect(redis_url, timeout=5.0))
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    (other_sku, other_market, _), (own_sku, own_market, _) = configured_pairs()[-2:]
    path = f"/v1/prices/{other_sku}?market={other_market}"
    delays = []
    for i in range(trials):
        before = get_json(conn, path)["inventory"]
        (outcome,) = store.record_events(
            [
                EventRecord(
                    f"vis-{time.time_ns()}-{i}",
                    "sale",
                    other_sku,
                    other_market,
                    1,
                    {"type": "sale"},
                )
            ]
        )
        t0 = time.perf_counter()
        assert outcome.status == "accepted"
        while True:
            body = get_json(conn, path)
            if body["inventory"] == outcome.units_left:
                break
            if time.perf_counter() - t0 > 2:
                raise RuntimeError(f"sale not visible after 2 s (before {before})")
        delays.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    # Same process: the read right after the service's own sale response.
    own = []
    for i in range(trials):
        body = json.dumps(
            {
                "events": [
                    {
                        "type": "sale",
                        "event_id": f"own-{time.time_ns()}-{i}",
                        "sku": own_sku,
                        "market": own_market,
                        "quantity": 1,
                        "unit_price": 20.0,
                        "ts": datetime.now(UTC).isoformat(),
                    }
                ]
            }
        )
        conn.request(
            "POST",
            "/v1/events",
            body=body,
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        )
        left = orjson.loads(conn.getresponse().read())["results"][0]["inventory"]
        t0 = time.perf_counter()
        shown = get_json(conn, f"/v1/prices/{own_sku}?market={own_market}")["inventory"]
        own.append(((time.perf_counter() - t0) * 1000, shown == left))
    conn.close()
    store.close()
    delays.sort()
    return {
        "other_process_p50_ms": statistics.median(delays),
        "other_process_max_ms": delays[-1],
        "next_read_after_own_sale_ms": statistics.median(d for d, _ in own),
        "next_read_shows_own_sale": float(all(ok for _, ok in own)),
    }


def ingestion(
    url: str, duration: float, clients: int = 4, batch: int = 100, redis_pid: int | None = None
) -> dict[str, float]:
    """Sale events/s in batches of ``batch`` from ``clients`` threads, with the share of a
    core the service process (and ``redis_pid``'s redis-server) used meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    pairs = [(sku, market) for sku, market, _ in configured_pairs()]
    totals = [0] * clients
    refused = [0] * clients
    stop_at = time.perf_counter() + duration

    def client(c: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        n = 0
        while time.perf_counter() < stop_at:
            events = [
                {
                    "type": "sale",
                    "event_id": f"ing-{c}-{n}-{j}-{time.time_ns()}",
                    "sku": pairs[(n * batch + j) % len(pairs)][0],
                    "market": pairs[(n * batch + j) % len(pairs)][1],
                    "quantity": 1,
                    "unit_price": 20.0,
                    "ts": "2026-11-29T22:00:00+00:00",
                }
                for j in range(batch)
            ]
            conn.request(
                "POST",
                "/v1/events",
                body=orjson.dumps({"events": events}),
                headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            data = orjson.loads(resp.read())
            if resp.status != 200:
                raise RuntimeError(f"POST /v1/events: {resp.status} {data}")
            totals[c] += data["accepted"]
            refused[c] += data["refused"]
            n += 1
        conn.close()

    pids = {"serve": SERVER_PIDS[url]} | ({"redis": redis_pid} if redis_pid else {})
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = {
        f"{name}_cpu_share": (cpu_seconds(pids[name]) - t0) / elapsed
        for name, t0 in cpu_before.items()
    }
    return {
        "events_per_s": sum(totals) / elapsed,
        "accepted": sum(totals),
        "refused": sum(refused),
        **cpu,
    }


def ingestion_only(args: argparse.Namespace) -> None:
    """``--ingestion-only``: ``dropprice serve`` as in :func:`main` and the ingestion
    run alone, ``--rounds`` times."""
    from service.auth import hash_api_key
    from service.embedded import RedisServer

    results: dict[str, Any] = {"uptime_start": uptime()}
    print(f"start: {results['uptime_start']}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="dropprice-bench-"))
    server = RedisServer(data_dir=tmp / "redis", appendonly=True).start()
    try:
        publish_bench_surfaces(server.url)
        env = {
            "DROPPRICE_API_KEYS": json.dumps({hash_api_key(API_KEY): "pos"}),
            "DROPPRICE_ACCESS_LOG": "true" if args.access_log == "on" else "false",
            "DROPPRICE_RATE_LIMIT_POS_PER_SECOND": "1000000",
        }
        with serve_server(server.url, env) as url:
            runs = [ingestion(url, args.duration, redis_pid=server.pid) for _ in range(args.rounds)]
        rss = peak_rss_line({"dropprice serve": url})
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for r in runs:
        print(
            f"ingestion, batches of 100 sales, 4 clients: {r['events_per_s']:.0f} events/s "
            f"({r['accepted']:.0f} accepted, {r['refused']:.0f} refused); CPU: serve "
            f"{r['serve_cpu_share']:.0%}, redis-server {r['redis_cpu_share']:.0%} of a core"
        )
    best = max(r["events_per_s"] for r in runs)
    print(f"  {'PASS' if best >= 20_000 else 'MISS'}  >= 20,000 events/s (best of {len(runs)})")
    print(rss)
    print(f"start: {results['uptime_start']}\nend:   {uptime()}")


# --------------------------------------------------------------------- main
def uptime() -> str:
    """``uptime``'s line (the load average), or the load average alone."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--python-load", action="store_true", help="do not use wrk")
    parser.add_argument(
        "--access-log",
        choices=["on", "off"],
        default="on",
        help="service JSON access log (default on, as in production)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="source tree of another version (git archive <commit> | tar -x -C DIR): "
        "served and measured in the same rounds, for before/after ratios",
    )
    parser.add_argument("--skip-naive", action="store_true", help="leave out FastAPI+Redis")
    parser.add_argument(
        "--ingestion-only",
        action="store_true",
        help="the ingestion run only, --rounds times (with serve's and redis-server's CPU)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="the read rounds only (no half peak, visibility or ingestion)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.ingestion_only:
        ingestion_only(args)
        return
    from service.auth import hash_api_key
    from service.embedded import RedisServer

    use_wrk = shutil.which("wrk") is not None and not args.python_load
    generator = "wrk" if use_wrk else "python-asyncio"
    headers = {"X-API-Key": API_KEY}

    def load(url: str, rate: float | None = None) -> dict[str, float]:
        """One run, with the server's CPU time per request (robust to a busy machine:
        the ratio of two servers' CPU per request is their throughput ratio when each
        has a core to itself)."""
        run = wrk_run if use_wrk else python_run
        pid = SERVER_PIDS[url.split("/v1/", 1)[0]]
        before = cpu_seconds(pid)
        out = run(url, args.duration, args.connections, headers, rate)
        out["cpu_us_per_req"] = (cpu_seconds(pid) - before) / max(out["requests"], 1.0) * 1e6
        return out

    results: dict[str, Any] = {
        "generator": generator,
        "connections": args.connections,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        "uptime_start": uptime(),
    }
    print(f"start: {results['uptime_start']}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="dropprice-bench-"))
    server = RedisServer(data_dir=tmp / "redis", appendonly=True).start()
    try:
        results["surfaces"] = publish_bench_surfaces(server.url)
        path = f"/v1/prices/{READ_SKU}?market={MARKET}"
        service_env = {
            "DROPPRICE_API_KEYS": json.dumps({hash_api_key(API_KEY): "pos"}),
            "DROPPRICE_ACCESS_LOG": "true" if args.access_log == "on" else "false",
            # The limiter runs (its cost is measured) but one key must not hit it.
            "DROPPRICE_RATE_LIMIT_POS_PER_SECOND": "1000000",
        }
        with contextlib.ExitStack() as stack:
            urls = {"bare": stack.enter_context(uvicorn_server("bench_service:bare_app", {}))}
            if not args.skip_naive:
                urls["fastapi+redis"] = stack.enter_context(
                    uvicorn_server(
                        "bench_service:fastapi_redis_app",
                        {"BENCH_REDIS_URL": server.url},
                        factory=True,
                    )
                )
            if args.baseline is not None:
                urls["baseline"] = stack.enter_context(
                    serve_server(server.url, service_env, args.baseline.resolve())
                )
            urls["dropprice"] = stack.enter_context(serve_server(server.url, service_env))
            # Interleaved rounds: load from other processes on the machine hits all
            # alike; each figure is the median over the rounds, each ratio the median
            # of the rounds' ratios.
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
            for _ in range(args.rounds):
                for name, url in urls.items():
                    rounds[name].append(load(url + path))
            for name, runs in rounds.items():
                results[name] = {
                    key: statistics.median(r[key] for r in runs) for key in runs[0]
                } | {"rounds_rps": [r["rps"] for r in runs]}
            results["ratios"] = {
                f"{name}_vs_bare": statistics.median(
                    r["rps"] / b["rps"] for r, b in zip(runs, rounds["bare"], strict=True)
                )
                for name, runs in rounds.items()
                if name != "bare"
            }
            # Bare's CPU per request over the service's: the rate ratio on a quiet machine.
            results["cpu_ratios"] = {
                f"{name}_vs_bare": statistics.median(
                    b["cpu_us_per_req"] / r["cpu_us_per_req"]
                    for r, b in zip(runs, rounds["bare"], strict=True)
                )
                for name, runs in rounds.items()
                if name != "bare"
            }
            if not args.read_only:
                peak = results["dropprice"]["rps"]
                for name in ("dropprice", "bare"):
                    half = load(urls[name] + path, peak / 2)
                    results[f"{name}_half_peak"] = half | {"target_rps": peak / 2}
                results["visibility"] = sale_visibility(urls["dropprice"], server.url)
                results["ingestion"] = ingestion(
                    urls["dropprice"], args.duration, redis_pid=server.pid
                )
        results["peak_rss"] = peak_rss_line(urls)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["uptime_end"] = uptime()
    report(results, args, generator)


def report(results: dict[str, Any], args: argparse.Namespace, generator: str) -> None:
    """Print the figures and the targets, and write ``benchmarks/out/bench_service.json``."""
    names = [n for n in ("bare", "fastapi+redis", "baseline", "dropprice") if n in results]
    for name in names:
        if results[name]["errors"]:
            raise SystemExit(f"{name} answered {results[name]['errors']:.0f} non-2xx responses")
    ratios = results["ratios"]
    checks = {
        ">= 0.7x bare ASGI": ratios["dropprice_vs_bare"] >= 0.7,
        "p99 <= 10 ms at full load": results["dropprice"]["p99_ms"] <= 10.0,
    }
    if "fastapi+redis" in results:
        ratios["dropprice_vs_fastapi_redis"] = (
            results["dropprice"]["rps"] / results["fastapi+redis"]["rps"]
        )
        checks[">= 3x FastAPI+Redis"] = ratios["dropprice_vs_fastapi_redis"] >= 3.0
    if "baseline" in results:
        ratios["dropprice_vs_baseline"] = statistics.median(
            a / b
            for a, b in zip(
                results["dropprice"]["rounds_rps"], results["baseline"]["rounds_rps"], strict=True
            )
        )
    print(
        f"\nload generator: {generator}, {args.connections} connections, "
        f"{args.duration:.0f} s each, median of {args.rounds} interleaved rounds; "
        f"dropprice serve on configs/ ({results['surfaces']} surfaces)"
    )
    print(
        f"{'handler':<38}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs bare':>10}"
        f"{'CPU us/req':>12}{'CPU vs bare':>12}"
    )
    labels = {
        "bare": "bare ASGI, fixed JSON",
        "fastapi+redis": "FastAPI + HGETALL + pydantic",
        "baseline": f"baseline serve ({args.baseline})",
        "dropprice": "dropprice serve GET /v1/prices/{sku}",
    }
    for name in names:
        r = results[name]
        ratio = 1.0 if name == "bare" else ratios[f"{name}_vs_bare"]
        cpu_ratio = 1.0 if name == "bare" else results["cpu_ratios"][f"{name}_vs_bare"]
        print(
            f"{labels[name][:37]:<38}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
            f"{ratio:>10.2f}{r['cpu_us_per_req']:>12.1f}{cpu_ratio:>12.2f}"
        )
    for name, value in ratios.items():
        print(f"  req/s {name}: {value:.3f}")
    for name, value in results["cpu_ratios"].items():
        print(f"  CPU per request, bare over {name.removesuffix('_vs_bare')}: {value:.3f}")
    if "dropprice_half_peak" in results:
        half = results["dropprice_half_peak"]
        vis = results["visibility"]
        ing = results["ingestion"]
        bare_half = results["bare_half_peak"]
        checks["p99 <= 5 ms at half peak"] = half["p99_ms"] <= 5.0
        checks["sale visible within 50 ms"] = (
            vis["other_process_max_ms"] <= 50.0 and vis["next_read_shows_own_sale"] == 1.0
        )
        checks[">= 20,000 events/s"] = ing["events_per_s"] >= 20_000
        pacing = "wrk, paced" if generator == "wrk" else "open loop"
        print(
            f"half peak ({half['target_rps']:.0f} req/s offered, {pacing}): dropprice "
            f"{half['rps']:.0f} req/s, p50 {half['p50_ms']:.2f} ms, p99 {half['p99_ms']:.2f} ms; "
            f"bare ASGI at the same rate: p50 {bare_half['p50_ms']:.2f} ms, "
            f"p99 {bare_half['p99_ms']:.2f} ms (the machine's floor)"
        )
        print(
            f"sale by another process visible: p50 {vis['other_process_p50_ms']:.2f} ms, "
            f"max {vis['other_process_max_ms']:.2f} ms; next read after own sale shows it: "
            f"{bool(vis['next_read_shows_own_sale'])}"
        )
        print(
            f"ingestion, batches of 100 sales, 4 clients: {ing['events_per_s']:.0f} events/s "
            f"({ing['accepted']:.0f} accepted, {ing['refused']:.0f} refused; CPU: serve "
            f"{ing['serve_cpu_share']:.0%}, redis-server {ing['redis_cpu_share']:.0%} of a core)"
        )
    results["targets"] = checks
    print(results["peak_rss"])
    print("\ntargets:")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    print(f"\nstart: {results['uptime_start']}\nend:   {results['uptime_end']}")
    results["loadavg"] = os.getloadavg()[0]
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_service.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
