"""Prometheus metrics of the price service (one registry per app).

- ``dropprice_request_duration_seconds{route,method,status}``: request latency
  histogram (every answer, the outer layers' 413/415/429/431 included).
- ``dropprice_rate_limited_total``: requests refused with 429 (per-key rate limit).
- ``dropprice_price_source_total{source}``: prices served from a ``surface``, the
  ``base`` list price or ``stale`` in-process surfaces while Redis is away.
- ``dropprice_quotes_total{status}``: sales that carried a ``quote_id``, by outcome:
  ``honoured`` (charged the quoted price) or ``expired`` (charged the current price).
- ``dropprice_sales_total{status}``: sales ``accepted``, ``sold_out``,
  ``duplicate``, ``rejected``.
- ``dropprice_events_total{type,status}``: every event by type and outcome.
- ``dropprice_price_mismatch_total``: accepted sales whose reported ``unit_price`` was
  off the charged price by more than ``DROPPRICE_PRICE_TOLERANCE_PCT``.
- ``dropprice_surface_age_seconds{which}``: seconds since the surface versions this
  process serves were published, ``newest`` and ``oldest`` (a SKU left on an old
  version by a failed re-fit shows in ``oldest``); read at scrape time.
- ``dropprice_dead_letters``: stream entries in the dead-letter stream now, and
  ``dropprice_dead_lettered``: entries ever dead-lettered (by the re-fit, which runs in
  the worker: both are read from Redis at scrape time).
- ``dropprice_poisoned_skipped_total{route}``: stream entries the signals and intensity
  routes could not decode and skipped.
- ``dropprice_redis_up``: 1 while the process is in sync with Redis, else 0.
- ``dropprice_sync_seconds``: duration of the last resynchronisation step.

The price read counts into plain integers (:class:`ReadCounts`, no lock, no label
look-up) that :meth:`Metrics.fold` adds to the collectors every quarter second and
before every scrape.

With several workers (``dropprice serve --workers N``) ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before any worker starts: every worker's values then
live in memory-mapped files there (prometheus-client's multiprocess mode) and
``/metrics`` on any worker reports the sum over all of them (gauges: the live
workers' minimum or maximum, see each one's ``multiprocess_mode``).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess

__all__ = [
    "Metrics",
    "ReadCounts",
    "mark_process_dead",
    "multiprocess_dir",
    "prepare_multiprocess_dir",
]

BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SOURCES = ("surface", "base", "stale")
PRICE_ROUTE = "/v1/prices/{sku}"


def multiprocess_dir() -> str | None:
    """The folder of prometheus-client's multiprocess mode, if this process uses it."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ReadCounts:
    """Price reads counted so far: a latency histogram and the sources.

    Only the event loop's thread counts, and only by adding; a fold reads a snapshot
    and adds the difference to the last one, so no read is lost or counted twice.
    """

    __slots__ = ("buckets", "total", "sources")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.sources = dict.fromkeys(SOURCES, 0)

    def observe(self, seconds: float, source: str) -> None:
        """Count one served read (well under a microsecond)."""
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.sources[source] += 1


class Metrics:
    """The service's collectors, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        self.request_duration = Histogram(
            "dropprice_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route", "method", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "dropprice_rate_limited_total",
            "Requests refused with 429 by the per-key rate limit.",
            registry=self.registry,
        )
        self.price_source = Counter(
            "dropprice_price_source_total",
            "Prices served, by source.",
            ["source"],
            registry=self.registry,
        )
        self.quotes = Counter(
            "dropprice_quotes_total",
            "Sales carrying a quote_id, by outcome (honoured or expired).",
            ["status"],
            registry=self.registry,
        )
        self.sales = Counter(
            "dropprice_sales_total", "Sales by outcome.", ["status"], registry=self.registry
        )
        self.events = Counter(
            "dropprice_events_total",
            "Events by type and outcome.",
            ["type", "status"],
            registry=self.registry,
        )
        self.price_mismatch = Counter(
            "dropprice_price_mismatch_total",
            "Accepted sales whose reported unit_price is off the charged price.",
            registry=self.registry,
        )
        self.surface_age = Gauge(
            "dropprice_surface_age_seconds",
            "Seconds since the newest and the oldest surface version served was published.",
            ["which"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.dead_letters = Gauge(
            "dropprice_dead_letters",
            "Stream entries kept in the dead-letter stream now.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.dead_lettered = Gauge(
            "dropprice_dead_lettered",
            "Stream entries ever dead-lettered (read from Redis).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.poisoned_skipped = Counter(
            "dropprice_poisoned_skipped_total",
            "Stream entries a route could not decode and skipped.",
            ["route"],
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "dropprice_redis_up",
            "1 while in sync with Redis (every live worker, with several).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.sync_seconds = Gauge(
            "dropprice_sync_seconds",
            "Duration of the last resynchronisation step.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.source_children = {s: self.price_source.labels(s) for s in SOURCES}
        self.reads = ReadCounts()
        self._folded = ReadCounts()
        self._price_read_ok = self.request_duration.labels(PRICE_ROUTE, "GET", "200")
        self._fold_lock = threading.Lock()

    def fold(self) -> None:
        """Add the price reads counted since the last fold to the collectors."""
        with self._fold_lock:
            reads, done = self.reads, self._folded
            # Snapshots: list() and dict() of a list or dict are atomic under the GIL.
            buckets, total, sources = list(reads.buckets), reads.total, dict(reads.sources)
            if buckets == done.buckets:
                return
            # prometheus-client has no "observe n values" call: add the per-bucket counts
            # and the sum to the child's own values (non-cumulative buckets, as observe()
            # keeps them).
            child: Any = self._price_read_ok
            for i, (now, before) in enumerate(zip(buckets, done.buckets, strict=True)):
                if now > before:
                    child._buckets[i].inc(now - before)
            child._sum.inc(total - done.total)
            for source, n in sources.items():
                if n > done.sources[source]:
                    self.source_children[source].inc(n - done.sources[source])
            done.buckets, done.total, done.sources = buckets, total, sources

    def set_surface_ages(
        self,
        published: Mapping[str, datetime],
        served: Mapping[str, Mapping[str, str]],
        now: datetime | None = None,
    ) -> None:
        """Set ``dropprice_surface_age_seconds`` from the registry's publish times and
        the versions served (``{sku: {market: version}}``); versions no longer in the
        registry are left out. Nothing served: both ages are 0."""
        now = now or datetime.now(UTC)
        times = [
            published[v] for markets in served.values() for v in markets.values() if v in published
        ]
        newest = (now - max(times)).total_seconds() if times else 0.0
        oldest = (now - min(times)).total_seconds() if times else 0.0
        self.surface_age.labels("newest").set(max(0.0, newest))
        self.surface_age.labels("oldest").set(max(0.0, oldest))

    def render(self) -> bytes:
        """The exposition text: this process's collectors, or with several workers
        the aggregate of every worker's (prometheus-client multiprocess mode)."""
        self.fold()
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def prepare_multiprocess_dir(path: Path) -> Path:
    """Create (or empty) the folder of the workers' metric files before they start: the
    files of a previous run would otherwise be added to this one's totals."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    return path


def mark_process_dead(pid: int | None = None) -> None:
    """Retire a stopping worker's live gauges (multiprocess mode only; its counters stay
    in the totals)."""
    if multiprocess_dir() is not None:
        prom_multiprocess.mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]
