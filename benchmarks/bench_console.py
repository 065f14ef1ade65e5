"""The price read with the operator console open: throughput with and without it, one run.

Starts ``dropprice serve`` as ``bench_service.py`` does (the shipped configs, default
settings: key check, limiter, metrics, JSON access log; a real ``redis-server`` with a
published surface for every SKU and market), then measures ``GET /v1/prices/{sku}`` in interleaved rounds:
alone, and while a console is open on the drop board. The open console is what the page
does (``service/static/console/console.js``): ``GET /v1/console/board`` with an operator
key every second, plus the SKU page's ``GET /v1/console/skus/{sku}`` every two seconds.

Target (issue 18): the read's throughput with the console open within 5 % of the figure
without it (median of the rounds).

Run::

    python benchmarks/bench_console.py                 # ~1 minute
    python benchmarks/bench_console.py --rounds 5 --duration 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

# A sibling script, not a package: python puts this script's folder on the path.
from bench_service import (
    API_KEY,
    MARKET,
    READ_SKU,
    publish_bench_surfaces,
    python_run,
    serve_server,
    wrk_run,
)

OPERATOR_KEY = "bench-operator-key"


def console_poller(url: str, stop: threading.Event) -> dict[str, int]:
    """Poll as an open console page does until ``stop``; count the answers."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"X-API-Key": OPERATOR_KEY}
    counts = {"board": 0, "sku": 0, "errors": 0}
    tick = 0
    while not stop.wait(0.0 if tick == 0 else 1.0):
        paths = [("board", "/v1/console/board")]
        if tick % 2 == 0:
            paths.append(("sku", f"/v1/console/skus/{READ_SKU}?market={MARKET}"))
        for name, path in paths:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            counts[name if resp.status == 200 else "errors"] += 1
        tick += 1
    conn.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--python-load", action="store_true", help="do not use wrk")
    args = parser.parse_args()

    from service.auth import hash_api_key
    from service.embedded import RedisServer

    use_wrk = shutil.which("wrk") is not None and not args.python_load
    headers = {"X-API-Key": API_KEY}

    def load(url: str) -> dict[str, float]:
        if use_wrk:
            return wrk_run(url, args.duration, args.connections, headers)
        return python_run(url, args.duration, args.connections, headers)

    tmp = Path(tempfile.mkdtemp(prefix="dropprice-bench-console-"))
    server = RedisServer(data_dir=tmp / "redis", appendonly=True).start()
    runs: dict[str, list[float]] = {"alone": [], "console open": []}
    polls: list[dict[str, int]] = []
    try:
        publish_bench_surfaces(server.url)
        env = {
            "DROPPRICE_API_KEYS": json.dumps(
                {hash_api_key(API_KEY): "pos", hash_api_key(OPERATOR_KEY): "operator"}
            ),
            "DROPPRICE_RATE_LIMIT_POS_PER_SECOND": "1000000",
        }
        path = f"/v1/prices/{READ_SKU}?market={MARKET}"
        with serve_server(server.url, env) as url:
            for _ in range(args.rounds):
                runs["alone"].append(load(url + path)["rps"])
                stop = threading.Event()
                out: dict[str, dict[str, int]] = {}

                def poll(done: threading.Event = stop, into: dict = out) -> None:
                    into["c"] = console_poller(url, done)

                poller = threading.Thread(target=poll, daemon=True)
                poller.start()
                runs["console open"].append(load(url + path)["rps"])
                stop.set()
                poller.join(15)
                polls.append(out.get("c", {"board": 0, "sku": 0, "errors": -1}))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    alone = statistics.median(runs["alone"])
    open_ = statistics.median(runs["console open"])
    ratio = open_ / alone
    print(
        f"load generator: {'wrk' if use_wrk else 'python-asyncio'}, {args.connections} "
        f"connections, {args.duration:.0f} s each, median of {args.rounds} interleaved rounds"
    )
    print(f"GET /v1/prices/{{sku}} alone:        {alone:10.0f} req/s  {runs['alone']}")
    print(f"GET /v1/prices/{{sku}} console open: {open_:10.0f} req/s  {runs['console open']}")
    print(f"console polls answered per round: {polls}")
    verdict = "PASS" if ratio >= 0.95 else "MISS"
    print(f"with the console open / alone: {ratio:.3f}  ({verdict}: within 5 %)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
