"""Prometheus metrics of the price service (one registry per app).

- ``dropprice_request_seconds{route,method,status}``: request latency histogram.
- ``dropprice_price_source_total{source}``: prices served from a ``surface``, the
  ``base`` list price or ``stale`` in-process surfaces while Redis is away.
- ``dropprice_sales_total{status}``: sales ``accepted``, ``sold_out``,
  ``duplicate``, ``rejected``.
- ``dropprice_events_total{type,status}``: every event by type and outcome.
- ``dropprice_price_mismatch_total``: accepted sales whose reported ``unit_price`` was
  off the charged price by more than ``DROPPRICE_PRICE_TOLERANCE_PCT``.
- ``dropprice_dead_letters``: stream entries in the dead-letter stream now, and
  ``dropprice_dead_lettered``: entries ever dead-lettered (by the re-fit, which runs in
  the worker: both are read from Redis at scrape time).
- ``dropprice_poisoned_skipped_total{route}``: stream entries the signals and intensity
  routes could not decode and skipped.
- ``dropprice_redis_up``: 1 while the process is in sync with Redis, else 0.
- ``dropprice_sync_seconds``: duration of the last full resync.

The registry is per process; with several uvicorn workers each worker answers
``/metrics`` for itself (scrape them behind distinct ports or aggregate with the
Prometheus multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The service's collectors, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "dropprice_request_seconds",
            "HTTP request latency by route template.",
            ["route", "method", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.price_source = Counter(
            "dropprice_price_source_total",
            "Prices served, by source.",
            ["source"],
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
        self.dead_letters = Gauge(
            "dropprice_dead_letters",
            "Stream entries kept in the dead-letter stream now.",
            registry=self.registry,
        )
        self.dead_lettered = Gauge(
            "dropprice_dead_lettered",
            "Stream entries ever dead-lettered (read from Redis).",
            registry=self.registry,
        )
        self.poisoned_skipped = Counter(
            "dropprice_poisoned_skipped_total",
            "Stream entries a route could not decode and skipped.",
            ["route"],
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "dropprice_redis_up", "1 while in sync with Redis.", registry=self.registry
        )
        self.sync_seconds = Gauge(
            "dropprice_sync_seconds", "Duration of the last full resync.", registry=self.registry
        )
        # Pre-bound children for the price-read fast path (no label lookup per request).
        self.price_read_ok = self.request_seconds.labels("/v1/prices/{sku}", "GET", "200")
        self.source_children = {
            s: self.price_source.labels(s) for s in ("surface", "base", "stale")
        }

    def render(self) -> bytes:
        """The exposition text of every collector."""
        return generate_latest(self.registry)
