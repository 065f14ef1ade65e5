"""Shop-like event streams for judging :mod:`pricing.signals`, drawn independently of it.

The detectors' own generator (:mod:`pricing.synthetic`) shares their assumptions: one
sale row per SKU-market-hour with Poisson units, markets of equal size in UTC, shocks
the only shared lift, restocks only as reactions. :func:`draw_shop_stream` draws what
real shops show instead, each part switchable through :class:`Nuisances`:

``baskets``
    one sale row per order, 1 + NegBin(mean 1.3, size 1.2) units each;
``overdispersion``
    day-to-day demand multipliers per market (Gamma, CV ≈ 0.35) and per SKU-market
    (CV ≈ 0.25);
``unequal_markets``
    the largest market holds 40-55 % of the orders, the smallest 1-3 %;
``national_lifts``
    a holiday (+70 % for 16 hours), TV spots (x3 for an hour or two) and frequent
    claims bursts, hitting every market at the same instant;
``irregular_creators``
    four creators whose posts do nothing, posting at irregular gaps, some under a day;
``scheduled_restocks``
    two or three restocks a day at fixed local hours, whatever happens, some of them
    written as the service's ``release: waves`` restocks (``event_id`` ``wave-...``);
``missing_hours``
    3 % of market-hours lost at random, an 8-hour outage everywhere and a 12-hour
    outage in one market (no events, no look-ups);
``local_time``
    markets in five US time zones (one without daylight saving), daily and weekly
    profiles in local time, the stream straddling the November daylight-saving switch.

With a nuisance off the world is the plain version: unit baskets, no day effect,
equal markets, a few mild claims bursts, one creator posting every five days, restocks
only as reactions, no gaps, every market on UTC.

Planted effects (:class:`Spike`, :class:`Creator`, :class:`Edge`) come in
``moderate`` and ``strong`` strengths (:func:`plant_of`).

Example::

    >>> s = draw_shop_stream(seed=0, plant=(Spike("tucson", 4.0),))
    >>> sorted(s.timezones)[:2]
    ['atlanta', 'boston']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "MARKETS",
    "NUISANCE_TYPES",
    "Creator",
    "Edge",
    "Nuisances",
    "ShopStream",
    "Spike",
    "draw_shop_stream",
    "only",
    "plant_of",
]

MARKETS: dict[str, str] = {
    "nyc": "America/New_York",
    "chicago": "America/Chicago",
    "la": "America/Los_Angeles",
    "denver": "America/Denver",
    "boston": "America/New_York",
    "austin": "America/Chicago",
    "tucson": "America/Phoenix",
    "atlanta": "America/New_York",
}
"""Markets and their time zones, largest first when markets are unequal."""
SKUS = ("tee", "hoodie", "cap", "tote", "sticker")

# Local hour-of-day shape: a lunchtime bump and an evening peak (not the detectors' own).
_LOCAL_PROFILE = np.array(
    [0.2, 0.12, 0.08, 0.06, 0.06, 0.1, 0.25, 0.5, 0.8, 1.0, 1.15, 1.35,
     1.5, 1.35, 1.2, 1.15, 1.2, 1.4, 1.7, 1.9, 1.8, 1.4, 0.9, 0.45]
)  # fmt: skip
_LOCAL_PROFILE = _LOCAL_PROFILE / _LOCAL_PROFILE.mean()
_WEEKDAY = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.35, 1.25])  # Monday first, local days


class Nuisances(NamedTuple):
    """Which real-shop nuisances a stream carries (all on by default)."""

    baskets: bool = True
    overdispersion: bool = True
    unequal_markets: bool = True
    national_lifts: bool = True
    irregular_creators: bool = True
    scheduled_restocks: bool = True
    missing_hours: bool = True
    local_time: bool = True


NUISANCE_TYPES: tuple[str, ...] = Nuisances._fields


def only(name: str) -> Nuisances:
    """Every nuisance off except ``name``."""
    if name not in NUISANCE_TYPES:
        raise ValueError(f"unknown nuisance {name!r}, allowed {list(NUISANCE_TYPES)}")
    return Nuisances(**{n: n == name for n in NUISANCE_TYPES})


class Spike(NamedTuple):
    """``market`` alone multiplies its demand on ``days`` between local ``hours``.

    ``days`` ``weekend`` (Saturday and Sunday afternoons by default) or ``friday``
    (Friday evenings: in the western markets that is Saturday in UTC).
    """

    market: str
    multiplier: float = 4.0
    days: str = "weekend"
    hours: tuple[int, int] = (12, 17)


class Creator(NamedTuple):
    """``creator`` posts about ``sku`` at irregular gaps; each post multiplies demand in
    every market by ``1 + (peak − 1) e^(−Δt/10h)``, except flops (probability
    ``flop``), which do nothing."""

    creator: str
    sku: str
    peak: float = 4.0
    flop: float = 0.2


class Edge(NamedTuple):
    """``market`` reprices and restocks within ``reaction_hours`` of a shock and converts
    look-ups ``conversion_ratio`` times better than the world's base conversion."""

    market: str
    conversion_ratio: float = 1.5
    reaction_hours: tuple[int, int] = (1, 3)


Plant = Spike | Creator | Edge


def plant_of(archetype: str, strength: str, *, seed: int) -> Plant:
    """A ``moderate`` or ``strong`` plant of ``archetype``; its subject varies with ``seed``
    (spikes visit every market, the smallest included)."""
    strong = strength == "strong"
    names = list(MARKETS)
    if archetype == "regional_spike":
        days = "friday" if seed % 4 == 3 else "weekend"
        hours = (18, 22) if days == "friday" else (12, 17)
        return Spike(names[seed % len(names)], 5.0 if strong else 3.0, days, hours)
    if archetype == "creator_led":
        return Creator("mika", SKUS[seed % len(SKUS)], 5.0 if strong else 3.0)
    if archetype == "edge_acceleration":
        return Edge(names[1 + seed % (len(names) - 1)], 1.7 if strong else 1.4)
    raise ValueError(f"unknown archetype {archetype!r}")


class ShopStream(NamedTuple):
    """A drawn stream: the service's event table, the look-ups, each market's time zone,
    and what was planted."""

    events: pd.DataFrame
    lookups: pd.DataFrame
    timezones: dict[str, str]
    plant: tuple[Plant, ...]
    nuisances: Nuisances


def draw_shop_stream(
    *,
    seed: int,
    nuisances: Nuisances = Nuisances(),
    plant: Sequence[Plant] = (),
    weeks: int = 3,
    orders_per_hour: float = 30.0,
) -> ShopStream:
    """Draw ``weeks`` of hourly shop activity with the given nuisances and plants.

    Args:
        seed: the same seed gives the same stream.
        nuisances: which real-shop nuisances to draw (see the module docstring).
        plant: effects a detector should find.
        weeks: length of the stream.
        orders_per_hour: mean orders per hour over all markets and SKUs.

    Returns:
        A :class:`ShopStream`.
    """
    rng = np.random.default_rng(seed)
    nz = nuisances
    names = list(MARKETS)
    tz = dict(MARKETS) if nz.local_time else {m: "UTC" for m in names}
    S, M, T = len(SKUS), len(names), weeks * 168
    # Monday 19 October 2026, New York midnight: US daylight saving ends on 1 November.
    start = (
        pd.Timestamp("2026-10-19T04:00Z") if nz.local_time else pd.Timestamp("2026-11-02T00:00Z")
    )
    grid = pd.date_range(start, periods=T, freq="h")
    local = [grid.tz_convert(tz[m]) for m in names]
    lhour = np.stack([x.hour.to_numpy() for x in local])  # [M, T]
    lday = np.stack([x.day_of_week.to_numpy() for x in local])
    lday_id = np.stack(
        [(x.normalize().tz_localize(None) - pd.Timestamp("2026-01-01")).days for x in local]
    )

    if nz.unequal_markets:
        top = rng.uniform(0.40, 0.55)
        rest = np.sort(rng.dirichlet(np.full(M - 1, 1.2)))[::-1]
        rest = 0.015 + rest * (1 - top - 0.015 * (M - 1))
        size = np.concatenate([[top], rest])
    else:
        size = np.full(M, 1.0 / M)
    sku_share = rng.dirichlet(np.full(S, 4.0))
    base = orders_per_hour * sku_share[:, None, None] * size[None, :, None]
    lam = base * (_LOCAL_PROFILE[lhour] * _WEEKDAY[lday])[None, :, :]  # orders [S, M, T]
    tt = np.arange(T, dtype=float)

    if nz.overdispersion:
        days = np.unique(lday_id)
        day_m = rng.gamma(8.0, 1 / 8.0, size=(M, days.size))
        day_sm = rng.gamma(16.0, 1 / 16.0, size=(S, M, days.size))
        di = np.searchsorted(days, lday_id)
        lam *= day_m[np.arange(M)[:, None], di][None] * day_sm[:, np.arange(M)[:, None], di]

    rows: list[dict[str, object]] = []
    # Claims bursts: a SKU's demand lifts in every market at once.
    claims_per_week = 2.5 if nz.national_lifts else 1.0
    claim_lift = 2.0 if nz.national_lifts else 1.0
    shocks: list[tuple[int, int]] = []
    for si in range(S):
        n = rng.poisson(claims_per_week * weeks)
        for ta in np.sort(rng.choice(np.arange(12, T - 12), size=n, replace=False)):
            shocks.append((si, int(ta)))
            lam[si] *= 1.0 + claim_lift * np.exp(-np.clip(tt - ta, 0, None) / 8.0) * (tt >= ta)
            for m in names:
                rows.append(
                    {"ts": grid[ta] + pd.Timedelta(minutes=int(rng.integers(0, 60))),
                     "type": "claim", "sku": SKUS[si], "market": m, "count": float(rng.integers(3, 30))}
                )  # fmt: skip
    if nz.national_lifts:
        holiday = int(rng.integers(1, weeks * 7 - 1)) * 24 + 14  # 10:00 New York onwards
        lam[:, :, holiday : holiday + 16] *= 1.7
        for ta in rng.choice(np.arange(24, T - 4), size=2 * weeks, replace=False):
            bump = 1 + 2.0 * np.exp(-np.clip(tt - ta, 0, None) / 1.5) * (tt >= ta)
            lam *= bump[None, None, :]

    # Creators: background ones whose posts do nothing, and the planted ones.
    def post_times(mean_gap_h: float, min_gap_h: float) -> list[int]:
        t, out = float(rng.uniform(0, mean_gap_h)), []
        while t < T - 24:
            out.append(int(t))
            t += max(min_gap_h, rng.gamma(1.5, mean_gap_h / 1.5))
        return out

    background = (
        [(f"noise-{i}", post_times(rng.uniform(30, 90), 6)) for i in range(4)]
        if nz.irregular_creators
        else [("noise-0", list(range(40, T - 24, 120)))]
    )
    for who, times in background:
        for ta in times:
            rows.append(_post(grid[ta], SKUS[int(rng.integers(S))], who, rng))
    for p in plant:
        if isinstance(p, Creator):
            si = SKUS.index(p.sku)
            for ta in post_times(80.0, 30.0):
                rows.append(_post(grid[ta], p.sku, p.creator, rng))
                if rng.random() >= p.flop:
                    lam[si] *= 1 + (p.peak - 1) * np.exp(-np.clip(tt - ta, 0, None) / 10.0) * (
                        tt >= ta
                    )
        elif isinstance(p, Spike):
            mi = names.index(p.market)
            on_days = (5, 6) if p.days == "weekend" else (4,)
            on = np.isin(lday[mi], on_days) & (lhour[mi] >= p.hours[0]) & (lhour[mi] <= p.hours[1])
            lam[:, mi, on] *= p.multiplier

    # Prices and reactions: every market raises the price 10 % for a day after a
    # shock, late (10-36 h); an edge market within hours, with a reactive restock.
    conv = 0.2 * rng.uniform(0.87, 1.15, size=M)
    edge = {names.index(p.market): p for p in plant if isinstance(p, Edge)}
    for mi, p in edge.items():
        conv[mi] = 0.2 * p.conversion_ratio
    price0 = rng.choice([18.0, 25.0, 32.0, 45.0, 60.0], size=S)
    price = np.broadcast_to(price0[:, None, None], (S, M, T)).copy()
    stimuli = sorted(set(shocks) | {(SKUS.index(str(r["sku"])), int((pd.Timestamp(r["ts"]) - grid[0]) // pd.Timedelta(hours=1))) for r in rows if r["type"] == "announcement"})  # fmt: skip
    for si, ta in stimuli:
        for mi, m in enumerate(names):
            p = edge.get(mi)
            delay = (
                int(rng.integers(p.reaction_hours[0], p.reaction_hours[1] + 1))
                if p
                else int(rng.integers(10, 37))
            )
            tr = ta + delay
            if tr >= T:
                continue
            price[si, mi, tr : tr + 24] = price0[si] * 1.1
            if p is not None or not nz.scheduled_restocks:
                rows.append(
                    {"ts": grid[tr] + pd.Timedelta(minutes=int(rng.integers(0, 50))), "type": "restock",
                     "sku": SKUS[si], "market": m, "quantity": float(rng.integers(10, 40))}
                )  # fmt: skip
    lam *= (price / price0[:, None, None]) ** -1.3

    if nz.scheduled_restocks:
        for mi, m in enumerate(names):
            sched = (6, 14, 21) if mi % 2 else (7, 16)
            waves = mi % 3 == 0
            for si in range(S):
                for j, t in enumerate(np.flatnonzero(np.isin(lhour[mi], sched))):
                    rows.append(
                        {"event_id": f"wave-drop-{m}-{SKUS[si]}-{j}" if waves else None,
                         "ts": grid[t] + pd.Timedelta(minutes=int(rng.integers(0, 10))), "type": "restock",
                         "sku": SKUS[si], "market": m, "quantity": float(rng.integers(20, 60))}
                    )  # fmt: skip

    # Look-ups and orders.
    cm = conv[None, :, None]
    looks = rng.poisson(lam / cm)
    orders = rng.binomial(looks, np.broadcast_to(cm, looks.shape))
    missing = np.zeros((M, T), dtype=bool)
    if nz.missing_hours:
        missing |= rng.random((M, T)) < 0.03
        o = int(rng.integers(24, T - 32))
        missing[:, o : o + 8] = True
        o = int(rng.integers(24, T - 32))
        missing[int(rng.integers(M)), o : o + 12] = True
    looks[:, missing] = 0
    orders[:, missing] = 0

    s_idx, m_idx, t_idx = np.nonzero(orders)
    reps = orders[s_idx, m_idx, t_idx]
    s_o, m_o, t_o = np.repeat(s_idx, reps), np.repeat(m_idx, reps), np.repeat(t_idx, reps)
    if nz.baskets:
        qty = 1.0 + rng.negative_binomial(1.2, 1.2 / (1.2 + 1.3), size=s_o.size)
    else:
        qty = np.ones(s_o.size)
    sales = pd.DataFrame(
        {
            "ts": grid[t_o] + pd.to_timedelta(rng.integers(0, 3600, size=s_o.size), unit="s"),
            "type": "sale",
            "sku": np.asarray(SKUS)[s_o],
            "market": np.asarray(names)[m_o],
            "quantity": qty,
            "unit_price": price[s_o, m_o, t_o],
        }
    )
    other = pd.DataFrame(rows)
    other["ts"] = pd.to_datetime(other["ts"], utc=True)
    t_other = ((other["ts"].dt.floor("h") - grid[0]) // pd.Timedelta(hours=1)).to_numpy()
    m_other = other["market"].map({m: i for i, m in enumerate(names)})
    lost = (
        m_other.notna().to_numpy()
        & missing[m_other.fillna(0).astype(int), np.clip(t_other, 0, T - 1)]
    )
    events = pd.concat([sales, other[~lost]], ignore_index=True)
    for col in ("event_id", "quantity", "unit_price", "reach", "count", "creator"):
        if col not in events:
            events[col] = None if col in ("event_id", "creator") else np.nan
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    ids = pd.Series([f"ev-{seed}-{i:07d}" for i in range(len(events))])
    events["event_id"] = events["event_id"].where(events["event_id"].notna(), ids)
    events = events[["event_id", "ts", "type", "sku", "market", "quantity", "unit_price", "reach", "count", "creator"]]  # fmt: skip

    ls, lm, lt = np.nonzero(looks)
    lookups = pd.DataFrame(
        {
            "hour": grid[lt],
            "sku": np.asarray(SKUS)[ls],
            "market": np.asarray(names)[lm],
            "lookups": looks[ls, lm, lt].astype(np.int64),
            "price": price[ls, lm, lt],
        }
    )
    return ShopStream(events, lookups, tz, tuple(plant), nz)


def _post(ts: pd.Timestamp, sku: str, creator: str, rng: np.random.Generator) -> dict[str, object]:
    return {
        "ts": ts + pd.Timedelta(minutes=int(rng.integers(0, 60))),
        "type": "announcement",
        "sku": sku,
        "market": None,
        "reach": float(rng.integers(1_000, 80_000)),
        "creator": creator,
    }
