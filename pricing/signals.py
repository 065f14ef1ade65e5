"""Micro-event signals for analysts: three archetypes detected from events and sales.

Micro-events are compressed experiments. Besides pricing, the event stream says which
markets, SKUs and creators are heating up. This module finds three archetypes that
precede short-term revaluations of consumer microcaps:

``regional_spike``
    One market (a city corridor, a DMA) spikes again and again while the others stay
    flat, on weekends only or otherwise (:func:`detect_regional_spikes`).
``creator_led``
    A SKU's demand follows one creator's announcements drop after drop: the lift is
    *sticky* across announcements (:func:`detect_creator_led`).
``edge_acceleration``
    A market reprices and restocks within hours of a demand shock and converts price
    look-ups into sales better than its peers (:func:`detect_edge_acceleration`).

Every detection is a frozen :class:`Detection` with a score, its evidence (the events
and hourly windows behind it, as :class:`Evidence`) and a time: the end of the last
window that supports it, i.e. the earliest moment an analyst could have seen it.

All statistics are computed on one hourly array per SKU-market (:class:`SignalPanel`,
built by :func:`build_signal_panel`) with vectorised numpy; only the few flagged
episodes are walked in Python to write their evidence.

Inputs
    ``events``: the service's event table, one row per event, with ``ts`` (zoned),
    ``type`` (``sale``, ``return``, ``restock``, ``announcement``, ``claim``,
    ``listing``), ``sku``, ``market`` (may be empty for announcements, which then
    apply to every market selling the SKU), ``quantity`` (sale, return, restock),
    ``unit_price`` (sale) and, for announcements, ``creator`` (who posted; without it
    the announcing SKU stands in for the creator).
    ``lookups`` (optional, needed by the edge detector): price look-ups per
    SKU-market-hour, columns ``hour, sku, market, lookups`` and optionally ``price``
    (the price served). The service records them with each served price.

:func:`pricing.synthetic.simulate_event_stream` draws streams with planted archetypes.

Example::

    >>> from pricing.synthetic import RegionalSpike, simulate_event_stream
    >>> from pricing.signals import detect_signals
    >>> s = simulate_event_stream(key=1, plant=(RegionalSpike("queens"),))
    >>> [(d.archetype, d.market) for d in detect_signals(s.events, s.lookups)]
    [('regional_spike', 'queens')]

References:
    MacKinlay, A. C. (1997). Event studies in economics and finance. *Journal of
    Economic Literature* 35(1), 13–39 (abnormal returns against a pre-event baseline,
    the creator lift).
    Kulldorff, M. (1997). A spatial scan statistic. *Communications in Statistics —
    Theory and Methods* 26(6), 1481–1496 (excess counts in one region against the
    expectation from the others, the regional spike).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from pricing.events import EVENT_KINDS, STIMULUS_KINDS, STOCK_KINDS
from pricing.exceptions import InputError

__all__ = [
    "ARCHETYPES",
    "Detection",
    "Evidence",
    "SignalPanel",
    "SignalParams",
    "build_signal_panel",
    "detect_creator_led",
    "detect_edge_acceleration",
    "detect_regional_spikes",
    "detect_signals",
    "detections_frame",
]

Archetype = Literal["regional_spike", "creator_led", "edge_acceleration"]
ARCHETYPES: tuple[Archetype, ...] = ("regional_spike", "creator_led", "edge_acceleration")
# Every kind the detectors accept, and the stimuli they count (pricing.events).
EVENT_TYPES = tuple(EVENT_KINDS)
_STIMULUS_TYPES = STIMULUS_KINDS
_NUMERIC_COLUMNS = ("unit_price", *dict.fromkeys(k.size_field for k in EVENT_KINDS.values()))
"""Numeric event columns: a sale's price and every kind's size field."""
_HOUR = pd.Timedelta(hours=1)


class SignalParams(NamedTuple):
    """Thresholds of the three detectors (defaults suit hourly drop data).

    Regional spikes:
        spike_window_hours: length of the trailing window the counts are summed over.
        spike_z: z-score an hour must reach to count as a spike.
        spike_min_excess: units above expectation an hour must also exceed.
        spike_merge_gap_hours: spike hours this close belong to one episode.
        spike_min_concentration: share of all markets' excess the market must hold.
        spike_min_days: distinct days with a concentrated episode for a detection.
        baseline_floor: smallest hourly baseline (units) used in a z-score.
    Creator-led sells:
        lift_pre_hours, lift_post_hours: event-study windows; the pre window is whole
            days (a multiple of 24 h), a post window of 24 h keeps the daily profile
            out of the lift.
        lift_z: z-score an announcement's lift must reach to count as significant.
        creator_min_announcements: announcements needed for a detection.
        creator_min_stickiness: share of announcements with a significant lift.
        creator_min_lift: smallest mean lift (ratio, e.g. 1.5 = +50 %).
        creator_min_clean: announcements with an unconfounded window needed (at least 2).
    Edge acceleration:
        shock_quiet_hours: a stimulus is a new shock after this many quiet hours.
        reprice_pct: smallest hourly price move counted as a reaction (percent).
        max_reaction_hours: reactions are censored at this delay.
        edge_fast_hours: largest median reaction of an edge market (hours).
        edge_min_shocks: shocks a market must have seen.
        edge_conversion_z: two-proportion z of conversion against the peers.
        edge_min_conversion_ratio: smallest conversion ratio against the peers.
    """

    spike_window_hours: int = 3
    spike_z: float = 4.0
    spike_min_excess: float = 3.0
    spike_merge_gap_hours: int = 2
    spike_min_concentration: float = 0.5
    spike_min_days: int = 3
    baseline_floor: float = 0.5
    lift_pre_hours: int = 72
    lift_post_hours: int = 24
    lift_z: float = 3.0
    creator_min_announcements: int = 3
    creator_min_stickiness: float = 0.75
    creator_min_lift: float = 1.5
    creator_min_clean: int = 2
    shock_quiet_hours: int = 12
    reprice_pct: float = 5.0
    max_reaction_hours: int = 48
    edge_fast_hours: float = 6.0
    edge_min_shocks: int = 3
    edge_conversion_z: float = 3.0
    edge_min_conversion_ratio: float = 1.1


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence behind a detection: an hourly window and what it showed.

    Attributes:
        kind: ``spike_episode``, ``announcement`` or ``shock_reaction``.
        start, end: the window (UTC, end exclusive).
        value: the window's headline statistic (peak z, log-lift, reaction hours).
        detail: the rest (units, expectation, concentration, event ids, ...).
    """

    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    value: float
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO timestamps)."""
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "value": _num(self.value),
            "detail": {k: _jsonable(v) for k, v in self.detail.items()},
        }


@dataclass(frozen=True)
class Detection:
    """An archetype found in the stream.

    Attributes:
        archetype: one of :data:`ARCHETYPES`.
        score: strength of the signal (documented per detector; larger is stronger).
        detected_at: end of the last window supporting the detection (UTC).
        market, sku, creator: the subject (``None`` where it does not apply).
        evidence: the windows and events behind the detection, oldest first.
        stats: the summary statistics the thresholds were applied to.
    """

    archetype: Archetype
    score: float
    detected_at: pd.Timestamp
    market: str | None = None
    sku: str | None = None
    creator: str | None = None
    evidence: tuple[Evidence, ...] = ()
    stats: Mapping[str, float | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO timestamps, evidence included)."""
        return {
            "archetype": self.archetype,
            "score": _num(self.score),
            "detected_at": self.detected_at.isoformat(),
            "market": self.market,
            "sku": self.sku,
            "creator": self.creator,
            "stats": {k: _jsonable(v) for k, v in self.stats.items()},
            "evidence": [e.to_dict() for e in self.evidence],
        }

    def __str__(self) -> str:
        subject = " ".join(
            f"{k}={v}"
            for k, v in (("market", self.market), ("sku", self.sku), ("creator", self.creator))
            if v
        )
        return (
            f"{self.archetype} {subject} score={self.score:.3g} at {self.detected_at.isoformat()} "
            f"({len(self.evidence)} evidence windows)"
        )


class SignalPanel(NamedTuple):
    """Hourly arrays per SKU-market, the common input of the detectors.

    Attributes:
        keys: ``[N]`` rows (columns ``sku``, ``market``), the first axis of every array.
        hours: ``[T]`` hourly grid (UTC).
        units, revenue, returns, restocks: ``[N, T]`` sums per hour.
        stimuli: ``[N, T]`` non-sale micro-events (announcements, claims, listings).
        lookups: ``[N, T]`` price look-ups (zeros when none were given).
        price: ``[N, T]`` price in force (look-up price, else sale price, carried
            forward; NaN before the first observation).
        has_lookups: whether look-ups were given.
    """

    keys: pd.DataFrame
    hours: pd.DatetimeIndex
    units: np.ndarray
    revenue: np.ndarray
    returns: np.ndarray
    restocks: np.ndarray
    stimuli: np.ndarray
    lookups: np.ndarray
    price: np.ndarray
    has_lookups: bool


# --------------------------------------------------------------------------- inputs


def _validate_events(events: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(events, pd.DataFrame):
        raise InputError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in ("ts", "type", "sku", "market") if c not in events.columns]
    if missing:
        raise InputError(
            f"events is missing column(s) {missing}; required ts, type, sku, market, got {list(events.columns)}"
        )
    ev = events.copy()
    ts = ev["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        try:
            parsed = pd.to_datetime(ts, utc=False, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"events.ts must be zoned timestamps, got unparseable values: {exc}"
            ) from exc
        if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
            raise InputError(
                "events.ts must carry a time zone (e.g. 2026-12-05T18:00:00-05:00), "
                f"got naive timestamps such as {ts.iloc[0]!r}"
            )
        ts = parsed
    ev["ts"] = ts.dt.tz_convert("UTC")
    bad_type = ~ev["type"].isin(EVENT_TYPES)
    if bad_type.any():
        rows = list(ev.index[bad_type][:5])
        raise InputError(
            f"events.type has unknown value(s) {sorted(set(ev.loc[bad_type, 'type'].astype(str)))} "
            f"at rows {rows}; allowed {list(EVENT_TYPES)}"
        )
    for col in _NUMERIC_COLUMNS:
        if col not in ev:
            ev[col] = np.nan
        ev[col] = pd.to_numeric(ev[col], errors="coerce").astype(float)
    if "creator" not in ev:
        ev["creator"] = None
    qty_types = ev["type"].isin(STOCK_KINDS)
    q = ev.loc[qty_types, "quantity"].to_numpy()
    bad = ~np.isfinite(q) | (q < 0)
    if bad.any():
        rows = list(ev.index[qty_types][bad][:5])
        raise InputError(
            f"events.quantity must be a finite number >= 0 for {'/'.join(STOCK_KINDS)}, "
            f"bad rows {rows}"
        )
    sale = ev["type"].eq("sale")
    p = ev.loc[sale, "unit_price"].to_numpy()
    bad = ~(np.isfinite(p) & (p > 0))
    if bad.any():
        rows = list(ev.index[sale][bad][:5])
        raise InputError(f"events.unit_price must be a finite price > 0 for sales, bad rows {rows}")
    need_market = ~ev["type"].eq("announcement") & ev["market"].isna()
    if need_market.any():
        raise InputError(
            f"events.market is empty at rows {list(ev.index[need_market][:5])}; only announcements "
            "may omit the market"
        )
    return ev


def _validate_lookups(lookups: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("hour", "sku", "market", "lookups") if c not in lookups.columns]
    if missing:
        raise InputError(
            f"lookups is missing column(s) {missing}; required hour, sku, market, lookups, "
            f"got {list(lookups.columns)}"
        )
    lk = lookups.copy()
    hour = pd.to_datetime(lk["hour"], utc=False)
    if not isinstance(hour.dtype, pd.DatetimeTZDtype):
        raise InputError("lookups.hour must carry a time zone, got naive timestamps")
    lk["hour"] = hour.dt.tz_convert("UTC").dt.floor("h")
    n = pd.to_numeric(lk["lookups"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(n) | (n < 0)
    if bad.any():
        raise InputError(f"lookups.lookups must be counts >= 0, bad rows {list(lk.index[bad][:5])}")
    return lk


def build_signal_panel(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None = None,
    *,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> SignalPanel:
    """Aggregate events (and look-ups) into hourly arrays per SKU-market.

    Announcements without a market count as a stimulus in every market that sells the
    SKU. Prices are the served look-up price where given, else revenue / units of the
    hour, carried forward through hours without an observation.

    Args:
        events: the event table (see the module docstring).
        lookups: optional price look-ups per SKU-market-hour.
        start, end: the hourly grid (UTC, end exclusive); default the data's span.

    Returns:
        A :class:`SignalPanel`.

    Raises:
        InputError: a missing column, unknown type, naive timestamp, negative or
            non-finite quantity, a sale without a price, or an empty table.
    """
    ev = _validate_events(events)
    lk = _validate_lookups(lookups) if lookups is not None else None
    if ev.empty and (lk is None or lk.empty):
        raise InputError("events is empty: nothing to detect, pass at least one event")
    # Integer codes for SKUs and markets over events and look-ups together: every
    # aggregation below is a bincount over flat (row, hour) indices, no frame filtering.
    n_ev = len(ev)
    sku_series = ev["sku"].astype(str)
    mkt_series = ev["market"].where(ev["market"].notna(), None)
    if lk is not None:
        sku_series = pd.concat([sku_series, lk["sku"].astype(str)], ignore_index=True)
        mkt_series = pd.concat([mkt_series, lk["market"]], ignore_index=True)
    sku_code, sku_names = pd.factorize(sku_series, sort=True)
    mkt_code, mkt_names = pd.factorize(mkt_series.astype("string"), sort=True)  # NaN -> -1
    n_mkt = max(len(mkt_names), 1)
    pair = np.where(mkt_code >= 0, sku_code.astype(np.int64) * n_mkt + mkt_code, -1)
    uniq, row_of = np.unique(pair, return_inverse=True)
    offset = 1 if uniq.size and uniq[0] == -1 else 0
    row_of = row_of.astype(np.int64) - offset  # -1 for rows without a market
    uniq = uniq[offset:]
    keys = pd.DataFrame(
        {
            "sku": np.asarray(sku_names, dtype=object)[uniq // n_mkt],
            "market": np.asarray(mkt_names, dtype=object)[uniq % n_mkt],
        }
    )
    hours_floor = ev["ts"].dt.floor("h")
    lo = pd.Timestamp(start).tz_convert("UTC") if start is not None else hours_floor.min()
    hi = pd.Timestamp(end).tz_convert("UTC") if end is not None else hours_floor.max() + _HOUR
    if lk is not None and not lk.empty:
        if start is None:
            lo = min(lo, lk["hour"].min())
        if end is None:
            hi = max(hi, lk["hour"].max() + _HOUR)
    grid = pd.date_range(lo, hi - _HOUR, freq="h")
    N, T = len(keys), len(grid)
    if N == 0 or T == 0:
        raise InputError(f"no SKU-market hours between {lo} and {hi}: widen start/end")
    ev_row = row_of[:n_ev]
    ev_t = ((hours_floor - lo) // _HOUR).to_numpy(dtype=np.int64)
    ev_ok = (ev_row >= 0) & (ev_t >= 0) & (ev_t < T)
    ev_flat = np.where(ev_ok, ev_row * T + ev_t, 0)
    type_col = ev["type"]

    def accumulate(mask: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        sel = mask & ev_ok
        w = None if values is None else values[sel]
        return np.bincount(ev_flat[sel], weights=w, minlength=N * T).reshape(N, T).astype(float)

    qty = ev["quantity"].fillna(0.0).to_numpy()
    is_sale = type_col.eq("sale").to_numpy()
    units = accumulate(is_sale, qty)
    revenue = accumulate(is_sale, qty * ev["unit_price"].fillna(0.0).to_numpy())
    returns = accumulate(type_col.eq("return").to_numpy(), qty)
    restocks = accumulate(type_col.eq("restock").to_numpy(), qty)
    stimuli = accumulate(type_col.isin(_STIMULUS_TYPES).to_numpy(), None)

    # Market-less announcements reach every market that sells the SKU.
    broadcast = ev[ev["type"].eq("announcement") & ev["market"].isna()]
    if not broadcast.empty:
        t = ((broadcast["ts"].dt.floor("h") - lo) // _HOUR).to_numpy(dtype=np.int64)
        sku_rows = keys.groupby("sku").indices
        for sku, ti in zip(broadcast["sku"].astype(str), t, strict=True):
            if 0 <= ti < T and sku in sku_rows:
                stimuli[sku_rows[sku], ti] += 1.0

    price = np.where(units > 0, revenue / np.maximum(units, 1e-12), np.nan)
    look: np.ndarray = np.zeros((N, T))
    if lk is not None and not lk.empty:
        lk_row = row_of[n_ev:]
        lk_t = ((lk["hour"] - lo) // _HOUR).to_numpy(dtype=np.int64)
        ok = (lk_row >= 0) & (lk_t >= 0) & (lk_t < T)
        flat = lk_row[ok] * T + lk_t[ok]
        look = np.bincount(
            flat, weights=lk["lookups"].to_numpy(float)[ok], minlength=N * T
        ).reshape(N, T)
        if "price" in lk:
            # Several prices in one hour (the surface moves sale by sale): their mean
            # weighted by look-ups.
            p_served = pd.to_numeric(lk["price"], errors="coerce").to_numpy(float)[ok]
            w = lk["lookups"].to_numpy(float)[ok]
            has = np.isfinite(p_served) & (w > 0)
            num = np.bincount(flat[has], weights=(p_served * w)[has], minlength=N * T)
            den = np.bincount(flat[has], weights=w[has], minlength=N * T)
            served = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan).reshape(N, T)
            price = np.where(np.isfinite(served), served, price)
    price = _carry_forward(price)
    return SignalPanel(
        keys=keys,
        hours=grid,
        units=units,
        revenue=revenue,
        returns=returns,
        restocks=restocks,
        stimuli=stimuli,
        lookups=look,
        price=price,
        has_lookups=lk is not None and not lk.empty,
    )


def _carry_forward(x: np.ndarray) -> np.ndarray:
    """Carry the last finite value forward along the time axis (NaN before the first)."""
    T = x.shape[1]
    idx = np.where(np.isfinite(x), np.arange(T)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = np.take_along_axis(x, idx, axis=1)
    seen = np.maximum.accumulate(np.isfinite(x), axis=1)
    return np.where(seen, out, np.nan)


def _by_market(panel: SignalPanel, x: np.ndarray) -> tuple[list[str], np.ndarray]:
    codes, markets = pd.factorize(panel.keys["market"], sort=True)
    # Every market has at least one row (markets come from the rows), so a sorted
    # reduceat sums each market's block of rows in one pass.
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(markets)))
    out = np.add.reduceat(x[order], starts, axis=0).astype(float)
    return [str(m) for m in markets], out


# --------------------------------------------------------------------------- spikes


def detect_regional_spikes(
    panel: SignalPanel, params: SignalParams = SignalParams()
) -> list[Detection]:
    """Markets that spike again and again on their own.

    Let ``R_mt`` be market m's units (all SKUs) in the trailing ``w`` hours ending at
    hour t (``w = spike_window_hours``: a spike that lasts hours stands out of hourly
    Poisson noise) and ``b_mh`` its baseline at hour of day h: the median over days of
    ``R`` at that hour, floored at ``w · baseline_floor`` (the median ignores the
    spikes as long as they occur on fewer than half the days). Surges every market
    shares are removed with a leave-one-out common factor that never lowers the
    expectation::

        f_mt = max(1, (Σ_{m'≠m} R_m't + 1) / (Σ_{m'≠m} b_m'h(t) + 1))
        E_mt = b_mh(t) · f_mt,        z_mt = Φ⁻¹(1 − P(Y ≥ R_mt | Y ~ Poisson(E_mt)))

    (the exact Poisson tail as a z-score: the normal approximation ``(R − E)/√E``
    is badly anti-conservative at night, when ``E`` is a handful of units).

    An hour spikes when ``z ≥ spike_z`` and ``R − E ≥ spike_min_excess``; spike hours at
    most ``spike_merge_gap_hours`` apart form an episode. The episode's concentration
    is the market's share of all markets' excess over their baselines in those hours,
    ``c = Σ_t (R_mt − b_mt)⁺ / Σ_t Σ_m' (R_m't − b_m't)⁺``; an episode is concentrated
    when ``c ≥ spike_min_concentration``. A market is detected when concentrated
    episodes fall on at least ``spike_min_days`` distinct days.

    Score: the concentration-weighted number of spike days, ``Σ_days max_e c_e`` (a
    market spiking alone on 4 days scores ≈ 4). ``stats["pattern"]`` is ``weekend``
    when at least 80 % of the episodes start on a Saturday or Sunday (UTC),
    ``weekday`` when at most 20 % do, else ``mixed``.

    Args:
        panel: from :func:`build_signal_panel`.
        params: thresholds.

    Returns:
        One detection per market, strongest first.
    """
    markets, R1 = _by_market(panel, panel.units)
    M, T = R1.shape
    w = params.spike_window_hours
    if T < 48 or w > T:
        return []
    # Trailing w-hour sums: a spike that lasts hours stands out of hourly Poisson noise.
    C = np.concatenate([np.zeros((M, 1)), np.cumsum(R1, axis=1)], axis=1)
    R = np.full((M, T), np.nan)
    R[:, w - 1 :] = C[:, w:] - C[:, : T - w + 1]
    hod = panel.hours.hour.to_numpy()
    floor = params.baseline_floor * w
    base = np.full((M, 24), floor)
    for h in range(24):
        cols = R[:, (hod == h) & np.isfinite(R[0])]
        if cols.shape[1]:
            base[:, h] = np.maximum(np.median(cols, axis=1), floor)
    B = base[:, hod]
    if M > 1:
        f = np.maximum(
            1.0, (np.nansum(R, 0, keepdims=True) - R + 1.0) / (B.sum(0, keepdims=True) - B + 1.0)
        )
    else:
        f = np.ones_like(R)
    E = B * f
    z = np.where(np.isfinite(R), _poisson_z(np.nan_to_num(R), E), -np.inf)
    spike = (z >= params.spike_z) & (params.spike_min_excess <= R - E)
    excess = np.nan_to_num(np.clip(R - B, 0.0, None))
    total_excess = excess.sum(0)
    sku_rows = pd.factorize(panel.keys["market"], sort=True)[0]

    out: list[Detection] = []
    for m in np.flatnonzero(spike.any(1)):
        hours = np.flatnonzero(spike[m])
        splits = np.flatnonzero(np.diff(hours) > params.spike_merge_gap_hours + 1) + 1
        episodes = []
        for ep in np.split(hours, splits):
            span = np.arange(ep[0], ep[-1] + 1)
            denom = total_excess[span].sum()
            conc = float(excess[m, span].sum() / denom) if denom > 0 else 0.0
            hours_in = np.arange(max(0, ep[0] - w + 1), ep[-1] + 1)
            if conc < params.spike_min_concentration:
                continue
            rows = np.flatnonzero(sku_rows == m)
            contrib = panel.units[rows][:, hours_in].sum(1)
            top = [
                str(panel.keys["sku"].iloc[rows[i]])
                for i in np.argsort(-contrib)[:3]
                if contrib[i] > 0
            ]
            start = panel.hours[hours_in[0]]
            episodes.append(
                Evidence(
                    kind="spike_episode",
                    start=start,
                    end=panel.hours[ep[-1]] + _HOUR,
                    value=float(z[m, span].max()),
                    detail={
                        "units": float(R1[m, hours_in].sum()),
                        "peak_window_units": float(R[m, span].max()),
                        "peak_window_expected": float(E[m, span][np.argmax(z[m, span])]),
                        "concentration": conc,
                        "top_skus": top,
                        "weekday": int(start.day_of_week),
                    },
                )
            )
        days: dict[object, float] = {}
        for e in episodes:
            d = e.start.date()
            days[d] = max(days.get(d, 0.0), float(e.detail["concentration"]))
        if len(days) < params.spike_min_days:
            continue
        weekend = float(np.mean([e.start.day_of_week >= 5 for e in episodes]))
        pattern = "weekend" if weekend >= 0.8 else "weekday" if weekend <= 0.2 else "mixed"
        out.append(
            Detection(
                archetype="regional_spike",
                score=float(sum(days.values())),
                detected_at=episodes[-1].end,
                market=markets[m],
                evidence=tuple(episodes),
                stats={
                    "spike_days": float(len(days)),
                    "episodes": float(len(episodes)),
                    "mean_concentration": float(
                        np.mean([e.detail["concentration"] for e in episodes])
                    ),
                    "max_z": float(max(e.value for e in episodes)),
                    "weekend_share": weekend,
                    "pattern": pattern,
                },
            )
        )
    return sorted(out, key=lambda d: -d.score)


# --------------------------------------------------------------------------- creators


def detect_creator_led(
    events: pd.DataFrame,
    panel: SignalPanel,
    params: SignalParams = SignalParams(),
) -> list[Detection]:
    """(creator, SKU) pairs whose announcements lift demand again and again.

    An event study per announcement a of SKU s at hour t_a (MacKinlay 1997), on the
    SKU's units summed over the announcement's market (all markets when it names none)::

        u_ad   = Σ of U over day d = 1..D before t_a   (D = P / 24 whole days)
        e_a    = median_d(u_ad) · Q / 24               (expected post-window units)
        post_a = Σ_{t_a ≤ t < t_a + Q} U_t
        ℓ_a    = log((post_a + ½) / (e_a + ½))          (log-lift)
        z_a    = (post_a − e_a) / √(e_a (1 + (π/2) Q / (24 D)) + 1)

    (the median of the day sums keeps one hot day, a shock just before the
    announcement, out of the baseline; π/2 is the median's variance inflation)
    with P = ``lift_pre_hours`` and Q = ``lift_post_hours``. Posts by one creator about
    one SKU less than Q hours apart count once (the first); announcements whose windows
    leave the data are skipped. An announcement is *confounded* when another creator
    announced the same SKU inside (t_a − Q, t_a + Q): the two lifts overlap and cannot
    be told apart (MacKinlay 1997, clustering of event dates).

    Per (creator, SKU), the stickiness is the share of announcements with
    ``z_a ≥ lift_z``. A pair is detected when it has at least
    ``creator_min_announcements`` announcements of which ``creator_min_clean`` are
    unconfounded, the stickiness over all of them *and* over the unconfounded ones is
    ≥ ``creator_min_stickiness``, and the mean lift of the unconfounded ones,
    ``exp(mean ℓ)``, is ≥ ``creator_min_lift``. A creator who only ever posts while
    another's lift is running is thereby never credited with it.

    Score: stickiness × mean log-lift (announcements that each triple demand score
    ≈ 1.1). ``stats["lift_trend"]`` is the least-squares slope of the unconfounded ℓ
    over the announcement order (negative: the creator's pull is fading).

    Args:
        events: the event table (announcements carry ``creator``).
        panel: from :func:`build_signal_panel` on the same events.
        params: thresholds.

    Returns:
        One detection per (creator, SKU), strongest first.
    """
    ev = _validate_events(events)
    ann = ev[ev["type"].eq("announcement")].copy()
    if ann.empty:
        return []
    creator = ann["creator"].where(ann["creator"].notna(), ann["sku"]).astype(str)
    ann["creator"] = creator
    lo = panel.hours[0]
    T = len(panel.hours)
    P, Q = params.lift_pre_hours, params.lift_post_hours
    if P < 24 or P % 24 or Q < 1:
        raise InputError(
            f"lift_pre_hours must be a whole number of days (24, 48, 72, ...) and lift_post_hours >= 1, "
            f"got lift_pre_hours={P} lift_post_hours={Q}"
        )
    ann["t"] = ((ann["ts"].dt.floor("h") - lo) // _HOUR).astype(np.int64)
    # One post recorded once per market (the service stores market-scoped events) is one
    # announcement over those markets; a row without a market covers them all.
    ann["markets"] = ann["market"].map(lambda m: None if not isinstance(m, str) else (m,))
    ann = ann.sort_values("ts", kind="stable")
    first = ann.groupby(["creator", "sku", "t"], sort=False, as_index=False).first()
    reach = ann.groupby(["creator", "sku", "t"], sort=False)["markets"].agg(
        lambda ms: None if any(m is None for m in ms) else tuple(sorted({x for m in ms for x in m}))
    )
    first["markets"] = reach.to_numpy()
    ann = first.sort_values("ts", kind="stable")
    # Posts by one creator about one SKU within Q hours are one campaign: keep the first.
    gap = ann.groupby(["creator", "sku"], sort=False)["t"].diff()
    ann = ann[gap.isna() | (gap >= Q)]
    ann = ann[(ann["t"] - P >= 0) & (ann["t"] + Q <= T)]
    if ann.empty:
        return []
    # Cumulative units per (sku[, market]) row; an announcement's series is the sum of
    # its rows, so windows come from differences of cumulative sums.
    C = np.concatenate(
        [np.zeros((panel.units.shape[0], 1)), np.cumsum(panel.units, axis=1)], axis=1
    )
    rows_by_sku = panel.keys.groupby("sku").indices
    row_index = pd.MultiIndex.from_frame(panel.keys)
    pre = np.zeros(len(ann))
    post = np.zeros(len(ann))
    t = ann["t"].to_numpy()
    for i, (sku, markets) in enumerate(zip(ann["sku"].astype(str), ann["markets"], strict=True)):
        if markets is None:
            rows = rows_by_sku.get(sku, np.array([], dtype=int))
        else:
            r = row_index.get_indexer([(sku, m) for m in markets])
            rows = r[r >= 0]
        if rows.size == 0:
            pre[i] = post[i] = np.nan
            continue
        c = C[rows].sum(0)
        days = c[t[i] - P + 24 : t[i] + 1 : 24] - c[t[i] - P : t[i] - 23 : 24]
        pre[i] = float(np.median(days)) if days.size else np.nan
        post[i] = c[t[i] + Q] - c[t[i]]
    D = P // 24
    expected = pre * Q / 24.0
    loglift = np.log((post + 0.5) / (expected + 0.5))
    # Var(median of D Poisson day sums) ≈ (π/2) · mean / D for moderate counts.
    zlift = (post - expected) / np.sqrt(expected * (1.0 + (np.pi / 2.0) * Q / (24.0 * D)) + 1.0)
    ann["pre"], ann["post"], ann["expected"], ann["loglift"], ann["z"] = (
        pre,
        post,
        expected,
        loglift,
        zlift,
    )
    # Clean windows: no other creator announced the same SKU within Q hours either side,
    # else the two lifts overlap and cannot be attributed (MacKinlay 1997, clustering
    # of event dates). Older ones only raise the baseline, which is conservative.
    all_ann = ev[ev["type"].eq("announcement")]
    all_t = ((all_ann["ts"].dt.floor("h") - lo) // _HOUR).to_numpy(dtype=np.int64)
    all_c = (
        all_ann["creator"].where(all_ann["creator"].notna(), all_ann["sku"]).astype(str).to_numpy()
    )
    by_sku = (
        pd.Series(np.arange(len(all_ann))).groupby(all_ann["sku"].astype(str).to_numpy()).indices
    )
    confounded = np.zeros(len(ann), dtype=bool)
    for i, (sku, who) in enumerate(zip(ann["sku"].astype(str), ann["creator"], strict=True)):
        j = by_sku.get(sku, np.array([], dtype=int))
        near = (all_t[j] > t[i] - Q) & (all_t[j] < t[i] + Q) & (all_c[j] != who)
        confounded[i] = bool(near.any())
    ann["confounded"] = confounded
    ann = ann[np.isfinite(ann["loglift"])]

    out: list[Detection] = []
    for (who, sku), g in ann.sort_values("ts").groupby(["creator", "sku"], sort=True):
        n = len(g)
        clean = g[~g["confounded"]]
        n_clean = len(clean)
        if n < params.creator_min_announcements or n_clean < max(2, params.creator_min_clean):
            continue
        stickiness = float((g["z"].to_numpy() >= params.lift_z).mean())
        clean_stickiness = float((clean["z"].to_numpy() >= params.lift_z).mean())
        mean_ll = float(clean["loglift"].mean())
        if (
            min(stickiness, clean_stickiness) < params.creator_min_stickiness
            or np.exp(mean_ll) < params.creator_min_lift
        ):
            continue
        trend = float(np.polyfit(np.arange(n_clean), clean["loglift"].to_numpy(), 1)[0])
        evidence = tuple(
            Evidence(
                kind="announcement",
                start=row.ts.floor("h"),
                end=row.ts.floor("h") + pd.Timedelta(hours=Q),
                value=float(row.loglift),
                detail={
                    "event_id": getattr(row, "event_id", None),
                    "reach": row.reach,
                    "markets": list(row.markets) if row.markets is not None else None,
                    "pre_units": float(row.pre),
                    "post_units": float(row.post),
                    "expected_units": float(row.expected),
                    "z": float(row.z),
                    "confounded": bool(row.confounded),
                },
            )
            for row in g.itertuples(index=False)
        )
        out.append(
            Detection(
                archetype="creator_led",
                score=stickiness * mean_ll,
                detected_at=evidence[-1].end,
                sku=str(sku),
                creator=str(who),
                evidence=evidence,
                stats={
                    "announcements": float(n),
                    "clean_announcements": float(n_clean),
                    "stickiness": stickiness,
                    "clean_stickiness": clean_stickiness,
                    "mean_lift": float(np.exp(mean_ll)),
                    "mean_loglift": mean_ll,
                    "loglift_se": float(clean["loglift"].std(ddof=1) / np.sqrt(n_clean)),
                    "lift_trend": trend,
                },
            )
        )
    return sorted(out, key=lambda d: -d.score)


# --------------------------------------------------------------------------- edge


def _poisson_z(count: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """z-score of the upper Poisson tail, ``Φ⁻¹(P(Y ≥ count))`` negated, capped at ±40."""
    from scipy import stats

    tail = stats.poisson.sf(np.ceil(count) - 1.0, mean)
    z: np.ndarray = np.clip(stats.norm.isf(np.clip(tail, 1e-300, 1.0)), -40.0, 40.0)
    return z


def _next_true(flag: np.ndarray) -> np.ndarray:
    """``[N, T]`` index of the first True at or after each hour (T when none)."""
    T = flag.shape[1]
    idx = np.where(flag, np.arange(T)[None, :], T)
    return np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]


def detect_edge_acceleration(
    panel: SignalPanel, params: SignalParams = SignalParams()
) -> list[Detection]:
    """Markets that react within hours of a shock and convert better than their peers.

    Shocks: a SKU-market's stimulus hours (announcements, claims, listings) preceded
    by ``shock_quiet_hours`` without one. Reaction: hours from the shock to the first
    hour at or after it whose price moves by at least ``reprice_pct`` against the
    hour before, or that receives a restock; censored at ``max_reaction_hours``. A
    market's reaction time is the median over its shocks; its peers' is the median
    over every other market's shocks.

    Conversion is sales per price look-up, ``c_m = Σ units / Σ look-ups`` over the
    market's SKUs, compared with the pooled peers by a two-proportion z-test::

        z = (c_m − c_o) / √(c̄ (1 − c̄) (1/L_m + 1/L_o)),   c̄ = (Y_m + Y_o)/(L_m + L_o)

    A market is detected when it has at least ``edge_min_shocks`` shocks, a median
    reaction ≤ ``edge_fast_hours`` and below its peers', ``z ≥ edge_conversion_z`` and
    ``c_m / c_o ≥ edge_min_conversion_ratio``. Look-ups are required: without them no
    market is detected (conversion is unknown).

    Score: ``log(c_m / c_o) + log(peer reaction / max(1, own reaction))``, the log of
    "converts x times better and reacts y times faster".

    Args:
        panel: from :func:`build_signal_panel` with look-ups.
        params: thresholds.

    Returns:
        One detection per market, strongest first.
    """
    if not panel.has_lookups:
        return []
    N, T = panel.units.shape
    stim = panel.stimuli > 0
    cs = np.concatenate([np.zeros((N, 1)), np.cumsum(stim, axis=1)], axis=1)
    q = params.shock_quiet_hours
    t_idx = np.arange(T)
    prior = cs[:, t_idx] - cs[:, np.maximum(t_idx - q, 0)]
    onset = stim & (prior == 0)
    logp = np.log(panel.price)
    step = np.zeros_like(stim)
    step[:, 1:] = np.abs(np.diff(logp, axis=1)) >= np.log1p(params.reprice_pct / 100.0)
    react = step | (panel.restocks > 0)
    nxt = _next_true(react)
    n_idx, t_on = np.nonzero(onset)
    reaction = np.minimum(nxt[n_idx, t_on] - t_on, params.max_reaction_hours).astype(float)
    codes, markets = pd.factorize(panel.keys["market"], sort=True)
    M = len(markets)
    shock_market = codes[n_idx]
    units = np.bincount(codes, weights=panel.units.sum(1), minlength=M)
    looks = np.bincount(codes, weights=panel.lookups.sum(1), minlength=M)

    out: list[Detection] = []
    for m in range(M):
        mine = shock_market == m
        if mine.sum() < params.edge_min_shocks or looks[m] <= 0:
            continue
        own = float(np.median(reaction[mine]))
        peers_r = reaction[~mine]
        peer = float(np.median(peers_r)) if peers_r.size else float("nan")
        y_o, l_o = units.sum() - units[m], looks.sum() - looks[m]
        if l_o <= 0:
            continue
        c_m, c_o = units[m] / looks[m], y_o / l_o
        cbar = (units[m] + y_o) / (looks[m] + l_o)
        se = np.sqrt(max(cbar * (1 - cbar), 1e-12) * (1 / looks[m] + 1 / l_o))
        zc = (c_m - c_o) / se
        ratio = c_m / c_o if c_o > 0 else float("inf")
        if not (
            own <= params.edge_fast_hours
            and (not np.isfinite(peer) or own < peer)
            and zc >= params.edge_conversion_z
            and ratio >= params.edge_min_conversion_ratio
        ):
            continue
        sel = np.flatnonzero(mine)
        evidence = tuple(
            Evidence(
                kind="shock_reaction",
                start=panel.hours[t_on[i]],
                end=panel.hours[t_on[i]] + pd.Timedelta(hours=float(reaction[i]) + 1),
                value=float(reaction[i]),
                detail={
                    "sku": str(panel.keys["sku"].iloc[n_idx[i]]),
                    "censored": bool(reaction[i] >= params.max_reaction_hours),
                },
            )
            for i in sel[np.argsort(t_on[sel], kind="stable")]
        )
        score = float(np.log(ratio) + np.log((peer if np.isfinite(peer) else own) / max(1.0, own)))
        out.append(
            Detection(
                archetype="edge_acceleration",
                score=score,
                detected_at=max(e.end for e in evidence),
                market=str(markets[m]),
                evidence=evidence,
                stats={
                    "shocks": float(mine.sum()),
                    "median_reaction_hours": own,
                    "peer_median_reaction_hours": peer,
                    "conversion": float(c_m),
                    "peer_conversion": float(c_o),
                    "conversion_ratio": float(ratio),
                    "conversion_z": float(zc),
                },
            )
        )
    return sorted(out, key=lambda d: -d.score)


# --------------------------------------------------------------------------- all


def detect_signals(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None = None,
    *,
    params: SignalParams = SignalParams(),
    archetypes: Iterable[Archetype] = ARCHETYPES,
    since: pd.Timestamp | str | None = None,
    market: str | None = None,
) -> list[Detection]:
    """Run the detectors and return their detections, strongest first per archetype.

    Args:
        events: the event table (see the module docstring).
        lookups: optional price look-ups (the edge detector needs them).
        params: thresholds.
        archetypes: which detectors to run.
        since: keep detections whose ``detected_at`` is at or after this time (the
            statistics still use the whole history, which the baselines need).
        market: keep detections about this market (creator detections are kept when
            one of their announcements names the market or none).

    Returns:
        The detections, ordered by archetype then score.

    Raises:
        InputError: malformed events or look-ups, or an unknown archetype.
    """
    wanted = tuple(archetypes)
    unknown = sorted(set(wanted) - set(ARCHETYPES))
    if unknown:
        raise InputError(f"unknown archetype(s) {unknown}, allowed {list(ARCHETYPES)}")
    panel = build_signal_panel(events, lookups)
    found: list[Detection] = []
    if "regional_spike" in wanted:
        found += detect_regional_spikes(panel, params)
    if "creator_led" in wanted:
        found += detect_creator_led(events, panel, params)
    if "edge_acceleration" in wanted:
        found += detect_edge_acceleration(panel, params)
    if since is not None:
        cut = pd.Timestamp(since)
        if cut.tzinfo is None:
            raise InputError(f"since must carry a time zone, got {since!r}")
        found = [d for d in found if d.detected_at >= cut]
    if market is not None:
        found = [d for d in found if _about_market(d, market)]
    return found


def _about_market(d: Detection, market: str) -> bool:
    if d.market is not None:
        return d.market == market
    return any(e.detail.get("markets") is None or market in e.detail["markets"] for e in d.evidence)


def detections_frame(detections: Sequence[Detection]) -> pd.DataFrame:
    """One row per detection (evidence counted, stats spread into columns)."""
    rows = []
    for d in detections:
        row: dict[str, Any] = {
            "archetype": d.archetype,
            "market": d.market,
            "sku": d.sku,
            "creator": d.creator,
            "score": d.score,
            "detected_at": d.detected_at,
            "evidence": len(d.evidence),
        }
        row.update(d.stats)
        rows.append(row)
    cols = ["archetype", "market", "sku", "creator", "score", "detected_at", "evidence"]
    return pd.DataFrame(rows, columns=cols if not rows else None)


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _jsonable(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v
