"""Synthetic micro-event streams with planted archetypes, for tests, notebooks and demos.

:func:`simulate_event_stream` draws an hourly world of SKUs sold in markets and returns
the events the service would have recorded (``sale``, ``return``, ``restock``,
``announcement``, ``claim``) plus the price look-ups POS terminals made, together with
the ground truth that generated them. Archetypes the signal layer
(:mod:`pricing.signals`) must find can be planted on purpose:

- :class:`RegionalSpike`: one market's demand multiplies on chosen days and hours
  (weekend afternoons by default) while the other markets stay flat;
- :class:`CreatorLed`: a creator announces a SKU again and again and every announcement
  lifts its demand in all markets (a sticky lift);
- :class:`EdgeMarket`: one market reprices and restocks within hours of a demand shock
  and converts look-ups into sales better than its peers;
- :class:`ArmEffect`: the markets of an experiment arm get a known demand multiplier
  (for recovering an experiment's difference).

A stream with nothing planted is the control: it still carries background creator
announcements with no effect, demand shocks shared by every market (claims bursts) and
slow repricing, so a detector that fires on it is wrong.

Model (per SKU ``s``, market ``m``, hour ``t``)::

    λ_smt = r · d(h_t) · A_smt · (p_smt / p_0)^β          expected units per hour
    L_smt ~ Poisson(λ_smt / c_m)                             price look-ups
    Y_smt ~ Binomial(L_smt, c_m)                             units sold  (E[Y] = λ)
    R_smt ~ Binomial(Y_smt, ρ)                               units returned (same hour)

``d`` a daily profile (quiet nights, busy afternoons), ``A`` the product of the planted
and background multipliers, ``c_m`` the market's conversion (sales per look-up), ``β``
the own-price elasticity. Every market reacts to each micro-event on a SKU (an
announcement or a claims burst): after its delay it raises the price by ``reprice_pct``
for 24 h and restocks.

Example::

    >>> from pricing.synthetic import RegionalSpike, simulate_event_stream
    >>> stream = simulate_event_stream(key=0, plant=(RegionalSpike("queens"),))
    >>> sorted(stream.events["type"].unique())[:2]
    ['announcement', 'claim']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from pricing.exceptions import InputError

__all__ = [
    "ArmEffect",
    "CreatorLed",
    "EdgeMarket",
    "RegionalSpike",
    "StreamTruth",
    "SyntheticStream",
    "simulate_event_stream",
]

_DAILY_PROFILE = np.array(
    [0.25, 0.2, 0.15, 0.15, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 1.1, 1.2,
     1.3, 1.4, 1.5, 1.5, 1.5, 1.4, 1.3, 1.2, 1.0, 0.8, 0.6, 0.4]
)  # fmt: skip
"""Relative demand by hour of day (UTC); mean ≈ 0.86."""


class RegionalSpike(NamedTuple):
    """A concentrated regional spike: ``market`` alone heats up on ``weekdays``.

    Args:
        market: the market (city corridor, DMA) that spikes.
        weekdays: days of the week (Monday = 0) the spike recurs on; weekends by default.
        hours: ``(first, last)`` hour of day (UTC, inclusive) of the spike.
        multiplier: demand multiplier of every SKU in the market during the spike.
    """

    market: str
    weekdays: tuple[int, ...] = (5, 6)
    hours: tuple[int, int] = (12, 17)
    multiplier: float = 5.0


class CreatorLed(NamedTuple):
    """A recurring creator-led sell: ``creator`` announces ``sku`` every ``every_hours``.

    Demand of the SKU in every market is multiplied by
    ``1 + (lift − 1) · exp(−(t − t_a) / decay_hours)`` after each announcement ``t_a``.
    """

    creator: str
    sku: str
    every_hours: int = 96
    first_hour: int = 80
    lift: float = 4.0
    decay_hours: float = 12.0
    reach: float = 50_000.0


class EdgeMarket(NamedTuple):
    """An edge-accelerating market: reacts to shocks in ``reaction_hours``, converts better."""

    market: str
    reaction_hours: int = 2
    conversion: float = 0.3


class ArmEffect(NamedTuple):
    """The markets of an experiment arm sell ``demand_multiplier`` times the units."""

    arm: str
    markets: tuple[str, ...]
    demand_multiplier: float = 1.0


Planted = RegionalSpike | CreatorLed | EdgeMarket | ArmEffect


class StreamTruth(NamedTuple):
    """What generated a synthetic stream.

    Attributes:
        keys: one row per SKU-market (columns ``sku``, ``market``), the order of the
            arrays below.
        hours: the hourly grid (UTC).
        expected_units: ``[N, T]`` expected units sold, λ.
        price: ``[N, T]`` price served each hour.
        conversion: market -> sales per look-up.
        reaction_hours: market -> hours a market takes to reprice after a shock
            (the mean for peers, whose delay is drawn per shock).
        shocks: ``(sku, hour)`` onsets of the shared demand shocks.
        planted: the archetypes planted.
        arms: market -> arm name (``control`` for markets in no :class:`ArmEffect`).
    """

    keys: pd.DataFrame
    hours: pd.DatetimeIndex
    expected_units: np.ndarray
    price: np.ndarray
    conversion: dict[str, float]
    reaction_hours: dict[str, float]
    shocks: tuple[tuple[str, pd.Timestamp], ...]
    planted: tuple[Planted, ...]
    arms: dict[str, str]


class SyntheticStream(NamedTuple):
    """A synthetic event stream.

    Attributes:
        events: the service's event table: ``event_id, ts, type, sku, market, quantity,
            unit_price, reach, count, creator`` (NaN where a field does not apply).
        lookups: price look-ups per SKU-market-hour: ``hour, sku, market, lookups,
            price, arm, propensity``.
        truth: the generating parameters, see :class:`StreamTruth`.
    """

    events: pd.DataFrame
    lookups: pd.DataFrame
    truth: StreamTruth


def simulate_event_stream(
    *,
    key: int | np.random.Generator,
    skus: Sequence[str] = ("SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-E"),
    markets: Sequence[str] = ("brooklyn", "queens", "harlem", "jersey-city", "hoboken", "newark"),
    hours: int = 21 * 24,
    start: str | pd.Timestamp = "2026-11-02T00:00:00Z",
    base_rate: float = 0.5,
    conversion: float = 0.2,
    base_price: float = 20.0,
    elasticity: float = -1.5,
    reprice_pct: float = 10.0,
    peer_reaction_hours: tuple[float, float] = (18.0, 36.0),
    shocks_per_week: float = 1.5,
    background_announcements_per_week: float = 1.0,
    returns_rate: float = 0.04,
    plant: Sequence[Planted] = (),
) -> SyntheticStream:
    """Draw an hourly event stream with optional planted archetypes.

    Args:
        key: seed or ``numpy.random.Generator``; the same key gives the same stream.
        skus, markets: the SKU codes and markets of the world.
        hours: length of the stream in hours (from ``start``, a Monday by default).
        base_rate: expected units per SKU-market-hour at an average hour of day.
        conversion: sales per price look-up in ordinary markets.
        base_price: list price of every SKU.
        elasticity: own-price elasticity β applied to repricing.
        reprice_pct: how much a market raises its price after reacting to a shock.
        peer_reaction_hours: range of the uniform delay (hours) before an ordinary
            market reprices and restocks after a shock.
        shocks_per_week: rate of demand shocks per SKU (a claims burst in every market,
            demand × (1 + 2 e^(−Δt/8h))).
        background_announcements_per_week: announcements by creators whose posts move
            nothing (noise the creator detector must ignore), per SKU.
        returns_rate: probability that a sold unit is returned.
        plant: archetypes to plant (see the module docstring).

    Returns:
        A :class:`SyntheticStream`.

    Raises:
        InputError: when a planted archetype names an unknown market or SKU, or a rate
            is out of range.
    """
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)
    skus, markets = list(skus), list(markets)
    _check_world(skus, markets, hours, base_rate, conversion, plant)
    S, M, T = len(skus), len(markets), int(hours)
    t0 = pd.Timestamp(start)
    if t0.tzinfo is None:
        raise InputError(f"start must carry a time zone, got {start!r}")
    grid = pd.date_range(t0.tz_convert("UTC"), periods=T, freq="h")
    hour_of_day = grid.hour.to_numpy()
    weekday = grid.day_of_week.to_numpy()
    tt = np.arange(T, dtype=float)

    lift = np.ones((S, M, T))
    conv = np.full(M, conversion)
    reaction_mean = {m: float(np.mean(peer_reaction_hours)) for m in markets}
    edge: dict[int, int] = {}
    arms = {m: "control" for m in markets}
    rows: list[dict[str, object]] = []

    for p in plant:
        if isinstance(p, RegionalSpike):
            mi = markets.index(p.market)
            on = (
                np.isin(weekday, p.weekdays)
                & (hour_of_day >= p.hours[0])
                & (hour_of_day <= p.hours[1])
            )
            lift[:, mi, on] *= p.multiplier
        elif isinstance(p, CreatorLed):
            si = skus.index(p.sku)
            for ta in range(p.first_hour, T, p.every_hours):
                dt = tt - ta
                bump = np.where(
                    dt >= 0, (p.lift - 1.0) * np.exp(-np.clip(dt, 0, None) / p.decay_hours), 0.0
                )
                lift[si] *= 1.0 + bump[None, :]
                rows.append(_announcement(grid[ta], p.sku, p.creator, p.reach))
        elif isinstance(p, EdgeMarket):
            mi = markets.index(p.market)
            conv[mi] = p.conversion
            edge[mi] = p.reaction_hours
            reaction_mean[p.market] = float(p.reaction_hours)
        else:  # ArmEffect
            for m in p.markets:
                lift[:, markets.index(m), :] *= p.demand_multiplier
                arms[m] = p.arm

    # Background creators: announcements with no effect on demand.
    for si, sku in enumerate(skus):
        n = rng.poisson(background_announcements_per_week * T / 168.0)
        for ta in np.sort(rng.integers(0, T, size=n)):
            rows.append(
                _announcement(
                    grid[ta], sku, f"creator-noise-{si % 3}", float(rng.integers(500, 5000))
                )
            )

    # Shared demand shocks: a claims burst in every market lifts the SKU's demand.
    shocks: list[tuple[str, pd.Timestamp]] = []
    for si, sku in enumerate(skus):
        n = rng.poisson(shocks_per_week * T / 168.0)
        onsets = np.sort(
            rng.choice(np.arange(24, max(25, T - 24)), size=min(n, max(1, T // 48)), replace=False)
        )
        for ta in onsets:
            shocks.append((sku, grid[ta]))
            dt = tt - ta
            lift[si] *= (
                1.0 + np.where(dt >= 0, 2.0 * np.exp(-np.clip(dt, 0, None) / 8.0), 0.0)[None, :]
            )
            for market in markets:
                rows.append(
                    {"ts": grid[ta], "type": "claim", "sku": sku, "market": market,
                     "count": float(rng.integers(5, 20))}
                )  # fmt: skip

    # Every market reacts to every micro-event on its SKUs (announcements and claims
    # bursts, as the engine reacts to the index): after its delay it raises the price
    # for 24 h and restocks.
    price = np.full((S, M, T), float(base_price))
    stimuli = sorted(
        {(skus.index(str(r["sku"])), int((pd.Timestamp(r["ts"]) - grid[0]) // pd.Timedelta(hours=1)))
         for r in rows if r["type"] in ("announcement", "claim")}
    )  # fmt: skip
    for si, ta in stimuli:
        for mi, market in enumerate(markets):
            delay = edge.get(mi)
            if delay is None:
                delay = int(round(rng.uniform(*peer_reaction_hours)))
            tr = ta + delay
            if tr < T:
                price[si, mi, tr : tr + 24] = base_price * (1.0 + reprice_pct / 100.0)
                rows.append(
                    {"ts": grid[tr] + pd.Timedelta(minutes=5), "type": "restock", "sku": skus[si],
                     "market": market, "quantity": float(rng.integers(10, 40))}
                )  # fmt: skip

    lam = base_rate * _DAILY_PROFILE[hour_of_day][None, None, :] * lift
    lam = lam * (price / base_price) ** elasticity
    cm = conv[None, :, None]
    lookups = rng.poisson(lam / cm)
    units = rng.binomial(lookups, np.broadcast_to(cm, lookups.shape))
    returned = rng.binomial(units, returns_rate)

    keys = pd.DataFrame({"sku": np.repeat(skus, M), "market": np.tile(markets, S)})
    flat_units, flat_ret = units.reshape(S * M, T), returned.reshape(S * M, T)
    flat_price, flat_look = price.reshape(S * M, T), lookups.reshape(S * M, T)
    n_idx, t_idx = np.nonzero(flat_units)
    minute = rng.integers(0, 50, size=n_idx.size)
    sales = pd.DataFrame(
        {
            "ts": grid[t_idx] + pd.to_timedelta(minute, unit="min"),
            "type": "sale",
            "sku": keys["sku"].to_numpy()[n_idx],
            "market": keys["market"].to_numpy()[n_idx],
            "quantity": flat_units[n_idx, t_idx].astype(float),
            "unit_price": flat_price[n_idx, t_idx],
        }
    )
    r_idx, rt_idx = np.nonzero(flat_ret)
    rets = pd.DataFrame(
        {
            "ts": grid[rt_idx] + pd.Timedelta(minutes=55),
            "type": "return",
            "sku": keys["sku"].to_numpy()[r_idx],
            "market": keys["market"].to_numpy()[r_idx],
            "quantity": flat_ret[r_idx, rt_idx].astype(float),
        }
    )
    events = pd.concat([sales, rets, pd.DataFrame(rows)], ignore_index=True)
    for col in ("quantity", "unit_price", "reach", "count"):
        if col not in events:
            events[col] = np.nan
    if "creator" not in events:
        events["creator"] = None
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events = events.sort_values(["ts", "type", "sku", "market"], kind="stable").reset_index(
        drop=True
    )
    events.insert(0, "event_id", [f"ev-{i:08d}" for i in range(len(events))])
    events = events[
        [
            "event_id",
            "ts",
            "type",
            "sku",
            "market",
            "quantity",
            "unit_price",
            "reach",
            "count",
            "creator",
        ]
    ]

    ln, lt = np.nonzero(flat_look)
    look = pd.DataFrame(
        {
            "hour": grid[lt],
            "sku": keys["sku"].to_numpy()[ln],
            "market": keys["market"].to_numpy()[ln],
            "lookups": flat_look[ln, lt].astype(np.int64),
            "price": flat_price[ln, lt],
            "arm": [arms[m] for m in keys["market"].to_numpy()[ln]],
            "propensity": 1.0,
        }
    )
    truth = StreamTruth(
        keys=keys,
        hours=grid,
        expected_units=lam.reshape(S * M, T),
        price=flat_price,
        conversion={m: float(conv[i]) for i, m in enumerate(markets)},
        reaction_hours=reaction_mean,
        shocks=tuple(shocks),
        planted=tuple(plant),
        arms=arms,
    )
    return SyntheticStream(events=events, lookups=look, truth=truth)


def _announcement(ts: pd.Timestamp, sku: str, creator: str, reach: float) -> dict[str, object]:
    # Announcements are not tied to one market: the creator posts to everyone.
    return {
        "ts": ts,
        "type": "announcement",
        "sku": sku,
        "market": None,
        "reach": reach,
        "creator": creator,
    }


def _check_world(
    skus: list[str],
    markets: list[str],
    hours: int,
    base_rate: float,
    conversion: float,
    plant: Sequence[Planted],
) -> None:
    if not skus or not markets:
        raise InputError(f"need at least one SKU and one market, got skus={skus} markets={markets}")
    if hours < 48:
        raise InputError(f"hours must be >= 48 (two days), got {hours}")
    if not base_rate > 0:
        raise InputError(f"base_rate must be > 0 units per hour, got {base_rate}")
    if not 0 < conversion <= 1:
        raise InputError(f"conversion must be in (0, 1], got {conversion}")
    for p in plant:
        named_markets = (
            p.markets
            if isinstance(p, ArmEffect)
            else ((p.market,) if isinstance(p, RegionalSpike | EdgeMarket) else ())
        )
        bad = sorted(set(named_markets) - set(markets))
        if bad:
            raise InputError(f"{type(p).__name__} names unknown market(s) {bad}, allowed {markets}")
        if isinstance(p, CreatorLed) and p.sku not in skus:
            raise InputError(f"CreatorLed names unknown sku {p.sku!r}, allowed {skus}")
        if isinstance(p, EdgeMarket) and not 0 < p.conversion <= 1:
            raise InputError(f"EdgeMarket.conversion must be in (0, 1], got {p.conversion}")
