"""The demo's reference clients: a POS terminal and an operator, over HTTP.

A POS client retries what is safe to retry: transport errors and 5xx with backoff,
and ``429 Too Many Requests`` after the ``Retry-After`` the service sends (events
are idempotent by ``event_id``, so a retried batch never double-counts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np

from service.demo.state import DemoState, SkuState
from service.demo.truth import announcement_index, true_rate

__all__ = [
    "announce",
    "approve_held",
    "post_events",
    "read_intensity",
    "read_prices",
    "retrying",
    "retry_after_s",
    "send_history",
]

_MAX_UNITS = 100_000
"""Most units one event may carry (the events API's limit)."""
MAX_RETRY_AFTER_S = 30.0
"""Longest ``Retry-After`` the client honours; a longer one fails the call."""


def retry_after_s(response: Any, default: float) -> float:
    """Seconds a ``429``/``503`` asks to wait: ``Retry-After`` as seconds or an HTTP date."""
    from email.utils import parsedate_to_datetime

    value = response.headers.get("retry-after")
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retrying(
    call: Callable[[], Any],
    attempts: int = 5,
    *,
    on_retry_after: Callable[[float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Call ``call`` as a POS client should: retry transport errors and 5xx with
    exponential backoff, and 429 after the ``Retry-After`` it names."""
    import httpx

    for attempt in range(attempts):
        last = attempt == attempts - 1
        wait = 0.1 * 2**attempt
        try:
            r = call()
        except httpx.TransportError:
            if last:
                raise
        else:
            if r.status_code == 429 and not last:
                wait = retry_after_s(r, wait)
                if wait > MAX_RETRY_AFTER_S:
                    r.raise_for_status()
                if on_retry_after is not None:
                    on_retry_after(wait)
            elif r.status_code < 500 or last:
                r.raise_for_status()
                return r
        sleep(wait)
    raise RuntimeError("unreachable")


def post_events(
    http: Any, headers: Mapping[str, str], events: list[dict[str, Any]], state: DemoState
) -> list[Any]:
    """``POST /v1/events`` in batches of 1000; the per-event results in order."""
    results: list[Any] = []
    for i in range(0, len(events), 1000):
        chunk = {"events": events[i : i + 1000]}
        r = retrying(
            partial(http.post, "/v1/events", json=chunk, headers=headers),
            on_retry_after=lambda _s: _count_429(state),
        )
        results += r.json()["results"]
    return results


def _count_429(state: DemoState) -> None:
    state.retried_429 += 1


def read_prices(
    http: Any, headers: Mapping[str, str], state: DemoState, bound: Callable[[SkuState], str | None]
) -> dict[str, Any]:
    """Price every SKU with ``POST /v1/prices:batch``; ``bound`` names what bound each."""
    items = [{"sku": s.sku, "market": s.market} for s in state.skus.values()]
    r = retrying(
        partial(http.post, "/v1/prices:batch", json={"items": items}, headers=headers),
        on_retry_after=lambda _s: _count_429(state),
    )
    quotes: dict[str, Any] = {}
    for body in r.json()["prices"]:
        if "error" in body:
            raise RuntimeError(f"the service has no price for {body['sku']}: {body['detail']}")
        s = state.skus[body["sku"]]
        s.previous_price = s.price
        s.price, s.source, s.version = float(body["price"]), body["source"], body["version"]
        s.units_left = body["inventory"]
        s.bound_by = bound(s)
        quotes[s.sku] = body
    return quotes


def read_intensity(http: Any, headers: Mapping[str, str], state: DemoState) -> None:
    """The micro-event index now and its mean over the last day's hours."""
    for s in state.skus.values():
        r = http.get(f"/v1/skus/{s.sku}/intensity", params={"market": s.market}, headers=headers)
        if r.status_code != 200:
            continue
        body = r.json()
        s.intensity = float(body["current"])
        past = [float(h["intensity"]) for h in body["hours"][:-1][-24:]]
        usual = float(np.mean(past)) if past else 0.0
        s.intensity_usual = usual if usual > 0 else None


def approve_held(
    http: Any, headers: Mapping[str, str], approval_id: str, *, actor: str, note: str
) -> dict[str, Any]:
    """Approve a re-fit's held price changes as a named operator."""
    r = retrying(
        partial(
            http.post,
            f"/v1/admin/approvals/{approval_id}",
            json={"decision": "approve", "note": note},
            headers={**headers, "X-Actor": actor},
        )
    )
    return dict(r.json())


def send_history(
    http: Any,
    headers: Mapping[str, str],
    state: DemoState,
    rng: np.random.Generator,
    now: datetime,
    hours: int,
) -> None:
    """Back-dated hourly sales at the shop's past test prices, and last night's announcement.

    A restock of exactly the units these sales take comes first, so the drop still
    opens with the config's stock.
    """
    start = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    announced = now - timedelta(hours=hours // 2)
    past = state.truth_announcements
    past.append({"ts": announced, "size": 1.5})
    state.announcements.append({"ts": announced.isoformat(), "size": 1.5, "history": True})
    steps = np.array([0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4])
    events: list[dict[str, Any]] = []
    restock: dict[str, int] = {}
    for s in state.skus.values():
        sold_total = 0
        for h in range(hours):
            ts = start + timedelta(hours=h, minutes=30)
            price = round(s.list_price * float(rng.choice(steps)), 2)
            rate = true_rate(
                s.truth, s.rate_per_hour, s.list_price, price, announcement_index(ts, past)
            )
            units = int(rng.poisson(rate))
            sold_total += units
            for part in range(math.ceil(units / _MAX_UNITS)):
                events.append(
                    {
                        "event_id": f"hist-{s.sku}-{h}-{part}",
                        "type": "sale",
                        "ts": ts.isoformat(),
                        "sku": s.sku,
                        "market": s.market,
                        "quantity": min(_MAX_UNITS, units - part * _MAX_UNITS),
                        "unit_price": price,
                    }
                )
        restock[s.sku] = sold_total
    head: list[dict[str, Any]] = [
        {
            "event_id": f"hist-restock-{sku}-{part}",
            "type": "restock",
            "ts": (start - timedelta(minutes=1)).isoformat(),
            "sku": sku,
            "market": state.market,
            "quantity": min(_MAX_UNITS, units - part * _MAX_UNITS),
        }
        for sku, units in restock.items()
        for part in range(math.ceil(units / _MAX_UNITS))
    ]
    head.append(
        {
            "event_id": "hist-announcement",
            "type": "announcement",
            "ts": announced.isoformat(),
            "sku": list(state.skus),
            "market": state.market,
            "reach": 120_000,
            "creator": "the artist",
        }
    )
    results = post_events(http, headers, head + sorted(events, key=lambda e: e["ts"]), state)
    bad = [r for r in results if r["status"] not in ("accepted", "duplicate")]
    if bad:
        raise RuntimeError(f"the service refused history events: {bad[:3]}")


def announce(
    http: Any, headers: Mapping[str, str], state: DemoState, *, size: float, reach: int
) -> None:
    """The artist announces the signing (an ``announcement`` event for every SKU)."""
    ts = datetime.now(UTC)
    post_events(
        http,
        headers,
        [
            {
                "event_id": f"demo-announcement-{len(state.announcements)}",
                "type": "announcement",
                "ts": ts.isoformat(),
                "sku": list(state.skus),
                "market": state.market,
                "reach": reach,
                "creator": "the artist",
            }
        ],
        state,
    )
    state.truth_announcements.append({"ts": ts, "size": size})
    state.announcements.append({"ts": ts.isoformat(), "size": size, "reach": reach})
    state.log.append(f"{ts:%H:%M:%S} the artist announces the signing to {reach:,} followers")
