"""End-to-end re-fit time: events in Redis -> new price-surface version live.

For each catalogue size a real redis-server is filled with a day of drop events
(one sale event per SKU and hour with Poisson units at prices around the list
price, plus a creator announcement per SKU), then one re-fit runs
(:class:`service.refit.Refitter`: read the stream, panel, intensity, fit, solve,
validate, publish). Two figures per size:

- ``cold``: the first re-fit of a fresh worker process, JIT compilation included;
- ``warm``: the next re-fit after one more hour of events (what a running worker
  pays each cadence tick; warm-started from the live fit).

It prints the per-stage seconds, events per second, the ratio to the 30 s
target for 10,000 SKUs (``< 1`` meets it), and the benchmark process's peak resident
memory after each size (the re-fit runs in this process; redis-server is a separate one).

With ``--compile-cache DIR`` the process uses JAX's persistent compilation cache in
``DIR`` (what ``dropprice refit`` / ``worker`` do by default): run it twice with the
same folder and the second run's ``cold`` is a restarted worker whose programs are
already compiled (the first run fills the folder).

Run::

    python benchmarks/bench_refit.py                       # 1,000 and 10,000 SKUs
    python benchmarks/bench_refit.py --compile-cache /tmp/jc   # twice: restarted worker
    python benchmarks/bench_refit.py --skus 100000 --device gpu
    python benchmarks/bench_refit.py --skus 1000 --redis-url redis://127.0.0.1:6379/0

With ``--redis-url`` the given server is FLUSHED first: never point it at a live one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _memory import peak_rss_mib, rss_line

from service.compile_cache import cache_stats
from service.config.loader import load_config_dir
from service.embedded import RedisServer
from service.refit import Refitter
from service.store import EventRecord, PriceStore, SkuMeta, connect

TARGET_S = 30.0
MARKET = "m1"
HOURS = 24
WINDOW_HOURS = 6
INVENTORY = 50
RATE = 3.0


def write_configs(root: Path, skus: list[str], prices: np.ndarray, start: datetime) -> None:
    (root / "drops").mkdir(parents=True, exist_ok=True)
    (root / "defaults.yaml").write_text(yaml.safe_dump({"keep_versions": 3}))
    (root / "categories.yaml").write_text(yaml.safe_dump(
        {"categories": {"bench": {"mean": -1.5, "sd": 1.0, "allowed_range": [-8.0, -0.05]}}}
    ))  # fmt: skip
    drop = {
        "id": "bench",
        "markets": [MARKET],
        "windows": [{"start": start.isoformat(),
                     "end": (start + timedelta(hours=WINDOW_HOURS)).isoformat()}],
        "period_minutes": 60,
        "skus": [
            {"sku": s, "category": "bench", "list_price": float(p),
             "inventory": {MARKET: INVENTORY},
             "guardrails": {"floor": round(float(p) * 0.5, 2), "ceiling": round(float(p) * 2, 2)}}
            for s, p in zip(skus, prices, strict=True)
        ],
    }  # fmt: skip
    (root / "drops" / "bench.yaml").write_text(yaml.safe_dump(drop, sort_keys=False))


def events(
    skus: list[str],
    prices: np.ndarray,
    beta: np.ndarray,
    end: datetime,
    hours: int,
    tag: str,
    rng: np.random.Generator,
    announcements: bool,
) -> list[EventRecord]:
    """One sale event per SKU and hour (Poisson units), plus an announcement per SKU."""
    n = len(skus)
    mult = rng.choice(np.array([0.7, 0.85, 1.0, 1.15, 1.3]), size=(n, hours))
    qty = rng.poisson(RATE * mult ** beta[:, None])
    minute = rng.integers(0, 60, size=(n, hours))
    out: list[EventRecord] = []
    t0 = end - timedelta(hours=hours)
    stamps = [(t0 + timedelta(hours=h)) for h in range(hours)]
    for i, sku in enumerate(skus):
        for h in np.flatnonzero(qty[i]):
            q = int(qty[i, h])
            ts = (stamps[h] + timedelta(minutes=int(minute[i, h]))).isoformat()
            eid = f"{tag}-{i}-{h}"
            price = f"{prices[i] * mult[i, h]:.2f}"
            out.append(
                EventRecord(
                    eid,
                    "sale",
                    sku,
                    MARKET,
                    q,
                    {
                        "type": "sale",
                        "event_id": eid,
                        "sku": sku,
                        "market": MARKET,
                        "ts": ts,
                        "quantity": str(q),
                        "unit_price": price,
                    },
                    list_price=float(prices[i]),
                )
            )
        if announcements:
            eid = f"{tag}-ann-{i}"
            out.append(
                EventRecord(
                    eid,
                    "signal",
                    sku,
                    MARKET,
                    0,
                    {
                        "type": "announcement",
                        "event_id": eid,
                        "sku": sku,
                        "market": MARKET,
                        "ts": (end - timedelta(hours=hours // 2)).isoformat(),
                        "reach": "5000",
                    },
                )
            )
    return out  # fmt: skip


def post(store: PriceStore, records: list[EventRecord], batch: int = 5000) -> float:
    t = time.perf_counter()
    for i in range(0, len(records), batch):
        store.record_events(records[i : i + batch])
    return time.perf_counter() - t


class Quiet:
    def stage_started(self, name: str) -> None:
        pass

    def stage_finished(self, name: str, seconds: float, detail: Any) -> None:
        pass

    def note(self, message: str, **fields: Any) -> None:
        pass


def bench(n: int, url: str, device: str, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    client = connect(url, timeout=60.0)
    client.flushall()
    store = PriceStore(client, keep_versions=3, stream_maxlen=10_000)
    skus = [f"B{i:06d}" for i in range(n)]
    prices = np.round(rng.uniform(8.0, 60.0, n), 2)
    beta = np.where(rng.random(n) < 0.5, -3.0, -0.7)
    now = datetime.now(UTC).replace(minute=5, second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        write_configs(Path(tmp), skus, prices, now + timedelta(days=1))
        bundle = load_config_dir(Path(tmp))
        pipe = client.pipeline(transaction=False)
        for s, p in zip(skus, prices, strict=True):
            store.register_sku(SkuMeta(s, float(p), "USD", (MARKET,), "bench"))
        pipe.execute()
        for s in skus:
            store.seed_inventory(s, MARKET, 100_000)
        day = events(skus, prices, beta, now, HOURS, "d", rng, True)
        post_s = post(store, day)
        for s in skus:
            store.set_inventory(s, MARKET, INVENTORY)
        refitter = Refitter(store, bundle, device=device, reporter=Quiet(), lock_ttl_s=60)
        t = time.perf_counter()
        cold = refitter.run()
        cold_s = time.perf_counter() - t
        extra = events(skus, prices, beta, now + timedelta(hours=1), 1, "e", rng, False)
        post(store, extra)
        t = time.perf_counter()
        warm = refitter.run()
        warm_s = time.perf_counter() - t
    store.close()
    for rec in (cold, warm):
        if rec.state != "published":
            raise SystemExit(f"re-fit of {n} SKUs ended {rec.state}: {rec.reasons[:5]}")
    return {
        "skus": n, "events": len(day), "post_s": round(post_s, 2),
        "device": cold.device, "cold_s": round(cold_s, 2), "warm_s": round(warm_s, 2),
        "warm_events": len(extra), "cold_stages": cold.timings, "warm_stages": warm.timings,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument("--redis-url", default=None, help="use (and FLUSH) this Redis")
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument(
        "--compile-cache", default="off", help="JAX persistent compilation cache folder, or off"
    )
    args = parser.parse_args()
    from service.compile_cache import enable_compile_cache

    cache = enable_compile_cache(args.compile_cache)
    print(f"compile cache: {cache or 'off'}")
    server = None
    url = args.redis_url
    if url is None:
        server = RedisServer(appendonly=False).start()
        url = server.url
    try:
        for n in args.skus:
            r = bench(n, url, args.device)
            r["compile_cache"] = cache_stats()._asdict()
            r["peak_rss_mib"] = peak_rss_mib()  # this process so far (the server is another)
            if args.json:
                print(json.dumps(r))
                continue
            print(
                f"\n{n:,} SKUs x {HOURS} h: {r['events']:,} events (posted in {r['post_s']} s), "
                f"device {r['device']}"
            )
            for label in ("cold", "warm"):
                st = r[f"{label}_stages"]
                stages = "  ".join(f"{k} {v:.2f}" for k, v in st.items())
                total = r[f"{label}_s"]
                print(f"  {label:<4} {total:7.2f} s  ({stages})  "
                      f"x{total / TARGET_S:.2f} of the {TARGET_S:.0f} s target")  # fmt: skip
            print(f"  compile cache: {r['compile_cache']}")
            print(f"  {rss_line(f'{n:,} SKUs (this process; redis-server apart)')}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
