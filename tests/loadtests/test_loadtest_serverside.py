"""Server-side latency from the service's Prometheus histogram (histogram_quantile)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtests.serverside import histogram_quantile, route_latencies, subtract

INF = math.inf


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = {0.001: 50.0, 0.002: 90.0, 0.005: 100.0, INF: 100.0}
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.001)
    assert histogram_quantile(buckets, 0.7) == pytest.approx(0.0015)
    assert histogram_quantile(buckets, 0.99) == pytest.approx(0.002 + 0.003 * 9 / 10)
    assert histogram_quantile({0.01: 0.0, INF: 0.0}, 0.5) is None


def test_rank_in_the_inf_bucket_gives_the_highest_finite_bound() -> None:
    assert histogram_quantile({0.001: 1.0, 0.01: 2.0, INF: 10.0}, 0.99) == 0.01


@given(
    counts=st.lists(st.integers(0, 1000), min_size=2, max_size=8),
    q1=st.floats(0, 1),
    q2=st.floats(0, 1),
)
def test_quantile_is_monotone_and_within_the_buckets(
    counts: list[int], q1: float, q2: float
) -> None:
    bounds = [0.0002 * 2**i for i in range(len(counts))]
    cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
    buckets = dict(zip(bounds, cumulative, strict=True)) | {INF: cumulative[-1]}
    lo, hi = sorted((q1, q2))
    a, b = histogram_quantile(buckets, lo), histogram_quantile(buckets, hi)
    if cumulative[-1] == 0:
        assert a is None and b is None
        return
    assert a is not None and b is not None
    assert 0 <= a <= b <= bounds[-1]


def test_subtract_keeps_the_run_and_drops_idle_routes() -> None:
    before = {
        ("GET", "/v1/prices/{sku}"): {0.01: 10.0, INF: 12.0},
        ("GET", "/healthz"): {0.01: 3.0, INF: 3.0},
    }
    after = {
        ("GET", "/v1/prices/{sku}"): {0.01: 108.0, INF: 112.0},
        ("GET", "/healthz"): {0.01: 3.0, INF: 3.0},
        ("POST", "/v1/events"): {0.01: 4.0, INF: 5.0},
    }
    rows = {r.route: r for r in route_latencies(subtract(after, before))}
    assert set(rows) == {"GET /v1/prices/{sku}", "POST /v1/events"}
    assert rows["GET /v1/prices/{sku}"].requests == 100
    assert rows["GET /v1/prices/{sku}"].within_10ms == pytest.approx(0.98)
    assert rows["POST /v1/events"].within_10ms == pytest.approx(0.8)
