"""The service's own view of a run: latency per route from its Prometheus histogram.

Locust measures what a terminal sees, including the load generator's own
scheduling; on a machine shared with the load generator (or with anything else)
that adds milliseconds the service did not spend. The service records every
request in ``dropprice_request_duration_seconds{route,method,status}`` (``GET /metrics``);
scraping it before and after the run and subtracting gives the run's server-side
distribution per route, from which quantiles are estimated as Prometheus'
``histogram_quantile`` does: find the bucket holding rank ``q * N`` and
interpolate linearly inside it,

    Q(q) = lo + (hi - lo) * (q * N - C(lo)) / (C(hi) - C(lo))

with ``C(x)`` the cumulative count at bucket bound ``x`` (``lo = 0`` for the first
bucket; a rank in the ``+Inf`` bucket returns the highest finite bound). The
estimate is only as fine as the buckets (0.2, 0.5, 1, 2, 5, 10, 25, ... ms), but
the share of requests within 10 ms is exact, because 10 ms is a bucket bound.

With several uvicorn workers ``/metrics`` answers for the worker that took the
scrape, so these figures cover one process.

Example:
    >>> buckets = {0.001: 50.0, 0.002: 90.0, 0.005: 100.0, float("inf"): 100.0}
    >>> round(histogram_quantile(buckets, 0.5) * 1000, 3)
    1.0
    >>> round(histogram_quantile(buckets, 0.95) * 1000, 3)
    3.5
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["RouteLatency", "histogram_quantile", "route_latencies", "scrape", "subtract"]

METRIC = "dropprice_request_duration_seconds"
Histograms = dict[tuple[str, str], dict[float, float]]
"""(method, route template) -> {bucket upper bound in seconds: cumulative count}."""


def scrape(base_url: str, *, timeout: float = 10.0) -> Histograms:
    """The request-latency histograms of the service at ``base_url`` (summed over status).

    Raises:
        RuntimeError: ``/metrics`` did not answer 200.
    """
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        resp = httpx.get(f"{base_url}/metrics", timeout=timeout)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"cannot scrape {base_url}/metrics: {exc!r}") from exc
    if resp.status_code != 200:
        raise RuntimeError(f"GET /metrics answered {resp.status_code}: {resp.text[:200]}")
    out: Histograms = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(resp.text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name != f"{METRIC}_bucket":
                continue
            key = (sample.labels.get("method", ""), sample.labels.get("route", ""))
            out[key][float(sample.labels["le"])] += sample.value
    return {k: dict(v) for k, v in out.items()}


def subtract(after: Histograms, before: Histograms) -> Histograms:
    """What happened between two scrapes (routes first seen after ``before`` kept whole)."""
    out: Histograms = {}
    for key, buckets in after.items():
        prev = before.get(key, {})
        diff = {le: count - prev.get(le, 0.0) for le, count in buckets.items()}
        if diff.get(math.inf, 0.0) > 0:
            out[key] = diff
    return out


def histogram_quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Prometheus-style quantile ``q`` (0..1) of cumulative ``buckets``; ``None`` if empty.

    Raises:
        ValueError: ``q`` outside [0, 1].
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    bounds = sorted(buckets)
    total = buckets.get(math.inf, buckets[bounds[-1]] if bounds else 0.0)
    if not bounds or total <= 0:
        return None
    rank = q * total
    lo, count_lo = 0.0, 0.0
    for hi in bounds:
        count_hi = buckets[hi]
        if count_hi >= rank:
            if math.isinf(hi):
                return lo
            if count_hi == count_lo:
                return hi
            # min(): rounding in the interpolation must not step past the bucket bound.
            return min(hi, lo + (hi - lo) * (rank - count_lo) / (count_hi - count_lo))
        lo, count_lo = hi, count_hi
    return lo


class RouteLatency(NamedTuple):
    """Server-side latency of one route over a run (seconds)."""

    route: str
    requests: int
    p50: float | None
    p99: float | None
    within_10ms: float | None
    """Share of requests answered within 10 ms (exact: a bucket bound)."""


def route_latencies(histograms: Histograms) -> list[RouteLatency]:
    """One row per route, busiest first."""
    rows = []
    for (method, route), buckets in histograms.items():
        total = buckets.get(math.inf, 0.0)
        within = buckets.get(0.01)
        rows.append(
            RouteLatency(
                route=f"{method} {route}",
                requests=int(total),
                p50=histogram_quantile(buckets, 0.5),
                p99=histogram_quantile(buckets, 0.99),
                within_10ms=(within / total) if within is not None and total else None,
            )
        )
    return sorted(rows, key=lambda r: -r.requests)
