"""Micro-event signals for analysts: three archetypes detected from events and sales.

Micro-events are compressed experiments. Besides pricing, the event stream says which
markets, SKUs and creators are heating up. This module finds three archetypes that
precede short-term revaluations of consumer microcaps:

``regional_spike``
    One market (a city corridor, a DMA) spikes again and again, at the same local
    hours of the same kind of day, while what every market shares (weekends,
    holidays, TV spots, claims bursts) is taken out (:func:`detect_regional_spikes`).
``creator_led``
    A SKU's demand follows one creator's announcements post after post: the lift,
    measured against the other SKUs sold in the same hours, recurs
    (:func:`detect_creator_led`).
``edge_acceleration``
    A market reprices and restocks within hours of a demand shock (scheduled restocks
    do not count) and converts price look-ups into sales clearly better than the
    typical market (:func:`detect_edge_acceleration`).

Every detection is a frozen :class:`Detection` with a score, its evidence (the events
and hourly windows behind it, as :class:`Evidence`), a time (the end of the last
window that supports it, i.e. the earliest moment an analyst could have seen it) and,
in ``stats``, its p-value corrected for every subject and pattern tested
(``p_adjusted``) and a Benjamini-Hochberg false-discovery estimate (``q_value``), so
an analyst can choose a threshold. :func:`scan_signals` also says what could not be
judged (no look-ups, too few weeks, too few posts) as :class:`NotJudged` notes,
instead of a silent nothing.

The nuisances real shops show are modelled, not assumed away:

- *Baskets*: a sale row may carry several units. Counts are tested with the
  quasi-Poisson dispersion of the rows, ``φ = Σ q² / Σ q`` per market (a unit
  basket gives 1).
- *Day-to-day over-dispersion*: a market's busy or slow day is read from its own
  hours outside the block tested; the noise left (``σ² E²``) is estimated per market,
  and an empirical null across markets covers differences in weekly rhythm.
- *Recorder gaps*: a market-hour without any event or look-up where several were
  expected is left out, not read as a quiet hour.
- *Lifts every market shares*: a market's expectation is its own baseline times
  the lift the other markets show in the same hour (the leave-one-out common factor).
- *Local time*: days and hours are each market's own (``timezones``), so a
  Friday-evening spike on the west coast is a Friday, across daylight-saving switches.
- *Multiple testing*: every market, pattern, creator and SKU tested is counted.

All statistics are computed on one hourly array per SKU-market (:class:`SignalPanel`,
built by :func:`build_signal_panel`) with vectorised numpy; only the few flagged
subjects are walked in Python to write their evidence.

Inputs
    ``events``: the service's event table, one row per event, with ``ts`` (zoned),
    ``type`` (a kind of :data:`pricing.events.EVENT_KINDS`), ``sku``, ``market`` (may
    be empty for announcements, which then apply to every market selling the SKU),
    each kind's size field (``quantity`` for sales, returns and restocks),
    ``unit_price`` (sale), ``event_id`` (optional; ``wave-...`` marks the service's
    scheduled wave restocks) and, for announcements, ``creator`` (who posted; without
    it the announcing SKU stands in for the creator).
    ``lookups`` (optional, needed by the edge detector): price look-ups per
    SKU-market-hour, columns ``hour, sku, market, lookups`` and optionally ``price``
    (the price served). The service records them with each served price.
    ``timezones`` (optional): market -> IANA zone (the configs' ``markets.*.timezone``);
    markets not named are taken in UTC.

:func:`pricing.synthetic.simulate_event_stream` draws streams with planted archetypes;
``tests/utils/shop_streams.py`` draws harder, shop-like ones for the benchmark
(``benchmarks/bench_signal_recall.py``).

Example::

    >>> from pricing.synthetic import RegionalSpike, simulate_event_stream
    >>> from pricing.signals import detect_signals
    >>> s = simulate_event_stream(key=1, plant=(RegionalSpike("queens"),))
    >>> [(d.archetype, d.market) for d in detect_signals(s.events, s.lookups)]
    [('regional_spike', 'queens')]

References:
    MacKinlay, A. C. (1997). Event studies in economics and finance. *Journal of
    Economic Literature* 35(1), 13–39 (abnormal returns, placebo windows, the
    creator lift).
    Kulldorff, M. (1997). A spatial scan statistic. *Communications in Statistics —
    Theory and Methods* 26(6), 1481–1496 (excess counts in one region against the
    expectation from the others, the regional spike).
    McCullagh, P. & Nelder, J. A. (1989). *Generalized Linear Models*, 2nd ed., §4.5
    (quasi-Poisson dispersion).
    Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate. *JRSS B*
    57(1), 289–300 (the q-values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from scipy import special, stats

from pricing.events import EVENT_KINDS, STIMULUS_KINDS, STOCK_KINDS
from pricing.exceptions import InputError

__all__ = [
    "ARCHETYPES",
    "Detection",
    "Evidence",
    "NotJudged",
    "SignalPanel",
    "SignalParams",
    "SignalReport",
    "build_signal_panel",
    "detect_creator_led",
    "detect_edge_acceleration",
    "detect_regional_spikes",
    "detect_signals",
    "detections_frame",
    "scan_signals",
]

Archetype = Literal["regional_spike", "creator_led", "edge_acceleration"]
ARCHETYPES: tuple[Archetype, ...] = ("regional_spike", "creator_led", "edge_acceleration")
# Every kind the detectors accept, and the stimuli they count (pricing.events).
EVENT_TYPES = tuple(EVENT_KINDS)
_STIMULUS_TYPES = STIMULUS_KINDS
_NUMERIC_COLUMNS = ("unit_price", *dict.fromkeys(k.size_field for k in EVENT_KINDS.values()))
"""Numeric event columns: a sale's price and every kind's size field."""
_HOUR = pd.Timedelta(hours=1)
_NULL_DRAWS = 20_000
"""Placebo means drawn for a creator's p-value (its resolution is 1 / this)."""
_WAVE_PREFIX = "wave-"
"""Event ids of the restocks the service's ``release: waves`` arms write (service.waves)."""
_DAY_SETS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Sat-Sun", (5, 6)),
    ("Mon-Fri", (0, 1, 2, 3, 4)),
    ("Mon", (0,)),
    ("Tue", (1,)),
    ("Wed", (2,)),
    ("Thu", (3,)),
    ("Fri", (4,)),
    ("Sat", (5,)),
    ("Sun", (6,)),
)
"""The kinds of day a regional spike may recur on (local weekdays, Monday = 0)."""


class SignalParams(NamedTuple):
    """Thresholds of the three detectors (defaults suit hourly drop data).

    Regional spikes:
        spike_block_hours: lengths of the local-hour blocks scanned (a block starts
            at any local hour and stays within the day).
        spike_alpha: family-wise error over every market, kind of day and block tested.
        spike_min_excess: orders above expectation a day's block needs to support
            (units over the basket dispersion φ).
        spike_min_lift: ratio to expectation a day's block needs to support.
        spike_min_concentration: share of the market's lift over its own baseline that
            the lift every market shares must leave unexplained.
        spike_min_days: distinct supporting days for a detection.
        spike_min_weeks: weeks of data needed to judge a recurring spike at all.
        common_pseudo_units: units added to both sides of the common-factor ratio, so
            a few units at night do not make a lift.
    Creator-led sells:
        lift_post_hours: the window after a post over which its lift is summed.
        placebo_step_hours: spacing of the placebo windows (hours without a post).
        lift_z: a post's lift, in placebo standard deviations, that counts as a lift.
        creator_alpha: family-wise error over every (creator, SKU) pair tested.
        creator_min_announcements: posts needed to judge a pair.
        creator_min_stickiness: share of the posts that must lift (``z ≥ lift_z``).
        creator_min_lift: smallest shrunk mean lift (ratio, 1.3 = +30 %).
        creator_min_clean: posts with an unconfounded window needed (at least 2).
        creator_prior_sd: prior spread of creators' log-lifts, for the shrinkage.
    Edge acceleration:
        shock_quiet_hours: a stimulus is a new shock after this many quiet hours.
        reprice_pct: smallest hourly price move counted as a reaction (percent).
        max_reaction_hours: reactions are censored at this delay.
        edge_fast_hours: largest median reaction of an edge market (hours).
        edge_min_shocks: shocks a market must have seen.
        edge_alpha: family-wise error over the markets tested.
        edge_min_conversion_ratio: smallest conversion ratio against the median market.
        schedule_min_days: a restock at one local hour on this many days (and on 30 %
            of the days) is scheduled, not a reaction.
    """

    spike_block_hours: tuple[int, ...] = (2, 3, 4, 6, 8)
    spike_alpha: float = 0.005
    spike_min_excess: float = 3.0
    spike_min_lift: float = 1.5
    spike_min_concentration: float = 0.5
    spike_min_days: int = 3
    spike_min_weeks: float = 2.0
    common_pseudo_units: float = 5.0
    lift_post_hours: int = 8
    placebo_step_hours: int = 6
    lift_z: float = 1.0
    creator_alpha: float = 0.03
    creator_min_announcements: int = 3
    creator_min_stickiness: float = 0.5
    creator_min_lift: float = 1.25
    creator_min_clean: int = 2
    creator_prior_sd: float = 0.5
    shock_quiet_hours: int = 12
    reprice_pct: float = 5.0
    max_reaction_hours: int = 48
    edge_fast_hours: float = 6.0
    edge_min_shocks: int = 3
    edge_alpha: float = 0.01
    edge_min_conversion_ratio: float = 1.2
    schedule_min_days: int = 3


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence behind a detection: an hourly window and what it showed.

    Attributes:
        kind: ``spike_episode``, ``announcement`` or ``shock_reaction``.
        start, end: the window (UTC, end exclusive).
        value: the window's headline statistic (z against expectation, log-lift,
            reaction hours).
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
        stats: the summary statistics the thresholds were applied to, with
            ``p_value``, ``p_adjusted`` (for every subject and pattern tested) and
            ``q_value`` (Benjamini-Hochberg over the subjects tested).
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


@dataclass(frozen=True)
class NotJudged:
    """Something a detector could not judge, and what it would need.

    Attributes:
        archetype: the detector.
        reason: what was missing, in words (``"no price look-ups: ..."``).
        needs: what would make it judgeable (``"2 weeks of data"``, ``"3 posts"``).
        market, sku, creator: the subject, where the note is about one.
    """

    archetype: Archetype
    reason: str
    needs: str
    market: str | None = None
    sku: str | None = None
    creator: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "archetype": self.archetype,
            "reason": self.reason,
            "needs": self.needs,
            "market": self.market,
            "sku": self.sku,
            "creator": self.creator,
        }

    def __str__(self) -> str:
        return f"{self.archetype} not judged: {self.reason} (needs {self.needs})"


class SignalReport(NamedTuple):
    """What :func:`scan_signals` found, and what it could not judge."""

    detections: tuple[Detection, ...]
    not_judged: tuple[NotJudged, ...]


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
        units_sq: ``[N, T]`` sum of each sale row's squared quantity (the basket
            dispersion ``Σ q² / Σ q``).
        wave_restocks: ``[N, T]`` units of the service's scheduled wave restocks
            (included in ``restocks``).
        markets: ``[M]`` the markets, sorted (the order of the local arrays).
        local_hour, local_weekday, local_day: ``[M, T]`` each market's local hour
            of day, weekday (Monday = 0) and day (days since 1970-01-01, local).
        timezones: market -> the zone used.
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
    units_sq: np.ndarray
    wave_restocks: np.ndarray
    markets: tuple[str, ...]
    local_hour: np.ndarray
    local_weekday: np.ndarray
    local_day: np.ndarray
    timezones: Mapping[str, str]


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
    if "event_id" not in ev:
        ev["event_id"] = None
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


def _validate_timezones(timezones: Mapping[str, str] | None) -> dict[str, str]:
    if timezones is None:
        return {}
    if not isinstance(timezones, Mapping):
        raise InputError(f"timezones must map market -> IANA zone, got {type(timezones).__name__}")
    for market, zone in timezones.items():
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(
                f"timezones[{market!r}] must be an IANA zone like 'America/New_York', got {zone!r}"
            ) from None
    return {str(m): str(z) for m, z in timezones.items()}


def build_signal_panel(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None = None,
    *,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    timezones: Mapping[str, str] | None = None,
) -> SignalPanel:
    """Aggregate events (and look-ups) into hourly arrays per SKU-market.

    Announcements without a market count as a stimulus in every market that sells the
    SKU. Prices are the served look-up price where given, else revenue / units of the
    hour, carried forward through hours without an observation.

    Args:
        events: the event table (see the module docstring).
        lookups: optional price look-ups per SKU-market-hour.
        start, end: the hourly grid (UTC, end exclusive); default the data's span.
        timezones: market -> IANA zone; markets not named are taken in UTC.

    Returns:
        A :class:`SignalPanel`.

    Raises:
        InputError: a missing column, unknown type, naive timestamp, negative or
            non-finite quantity, a sale without a price, an empty table, or an unknown
            time zone.
    """
    zones = _validate_timezones(timezones)
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
    units_sq = accumulate(is_sale, qty * qty)
    revenue = accumulate(is_sale, qty * ev["unit_price"].fillna(0.0).to_numpy())
    returns = accumulate(type_col.eq("return").to_numpy(), qty)
    is_restock = type_col.eq("restock").to_numpy()
    restocks = accumulate(is_restock, qty)
    wave = ev["event_id"].astype(str).str.startswith(_WAVE_PREFIX).to_numpy()
    wave_restocks = accumulate(is_restock & wave, qty)
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
    markets = tuple(sorted(str(m) for m in keys["market"].unique()))
    used = {m: zones.get(m, "UTC") for m in markets}
    local_hour = np.zeros((len(markets), T), dtype=np.int64)
    local_weekday = np.zeros_like(local_hour)
    local_day = np.zeros_like(local_hour)
    for zone in set(used.values()):
        rows = [i for i, m in enumerate(markets) if used[m] == zone]
        local = grid.tz_convert(zone)
        local_hour[rows] = local.hour.to_numpy()
        local_weekday[rows] = local.day_of_week.to_numpy()
        naive = local.tz_localize(None).normalize()
        local_day[rows] = ((naive - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy()
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
        units_sq=units_sq,
        wave_restocks=wave_restocks,
        markets=markets,
        local_hour=local_hour,
        local_weekday=local_weekday,
        local_day=local_day,
        timezones=used,
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


# --------------------------------------------------------------------------- shared


def _gamma_tail(count: np.ndarray, mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """Quasi-Poisson upper tail ``P(Y ≥ count)`` for ``Var Y = dispersion · mean``.

    The counts are scaled by the dispersion and the Poisson tail is read off the
    regularised incomplete gamma function, ``P(Poisson(μ) ≥ k) = P(k, μ)``, which
    interpolates between whole counts (McCullagh & Nelder 1989, §4.5).
    """
    a = np.asarray(count, float) / dispersion
    mu = np.asarray(mean, float) / dispersion
    out = np.where(a > mu, special.gammainc(np.maximum(a, 1e-12), np.maximum(mu, 1e-12)), 1.0)
    return np.asarray(out, float)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (1995), same order."""
    p = np.asarray(p, float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(q, 1.0)
    return out


def _local_profile(
    x: np.ndarray,
    panel: SignalPanel,
    floor: np.ndarray,
    weekdays: np.ndarray | None = None,
    *,
    seen: np.ndarray,
) -> np.ndarray:
    """``[M, 24]`` mean level by local hour of a 3-hour centred average of ``x``, over
    the days whose local weekday is in ``weekdays`` (all days by default) and the
    hours ``seen``, floored per market.

    A mean, not a median: with baskets and busy days the counts are right-skewed, and
    a median of them sits well below the mean, which makes ordinary hours look like
    spikes in small markets.
    """
    M, T = x.shape
    smooth = x.copy()
    smooth[:, 1:-1] = (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3.0
    use = seen.copy() if weekdays is None else seen & np.isin(panel.local_weekday, weekdays)
    cell = (np.arange(M)[:, None] * 24 + panel.local_hour)[use]
    sums = np.bincount(cell, weights=smooth[use], minlength=M * 24)
    counts = np.bincount(cell, minlength=M * 24)
    prof = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).reshape(M, 24)
    return np.maximum(prof, floor[:, None])


def _robust_profile(
    x: np.ndarray, panel: SignalPanel, floor: np.ndarray, *, seen: np.ndarray
) -> np.ndarray:
    """``[M, 24]`` level by local hour that a spike on up to three weekdays does not
    move: the median over the 7 local weekdays of each weekday's mean (of a 3-hour
    centred average), floored per market.

    It feeds the shared factor only: a large market's weekend spike must not raise
    its baseline on every day, which would make every weekday look like a national
    dip and every other market's weekdays like spikes.
    """
    M, T = x.shape
    smooth = x.copy()
    smooth[:, 1:-1] = (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3.0
    cell = ((np.arange(M)[:, None] * 7 + panel.local_weekday) * 24 + panel.local_hour)[seen]
    sums = np.bincount(cell, weights=smooth[seen], minlength=M * 168)
    counts = np.bincount(cell, minlength=M * 168)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).reshape(M, 7, 24)
    filled = np.where(np.isnan(means).all(1, keepdims=True), 0.0, means)
    with np.errstate(all="ignore"):
        prof = np.nan_to_num(np.nanmedian(filled, axis=1))
    return np.maximum(prof, floor[:, None])


def _extra_variance(r: np.ndarray, e: np.ndarray, v0: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per-market ``σ²`` of ``Var(r) = v0 + σ² e²`` (rows are markets).

    The moment estimate ``Σ ((r − e)² − v0) / Σ e²`` over the cells ``ok``, with the
    squared residuals capped at their 99th percentile (the few cells a spike lifts
    must not make the noise), averaged with the estimate pooled over markets and
    floored at 0.005. Moments, not medians: claims bursts, TV spots and baskets give
    heavy tails, which a median-based estimate would miss.
    """

    def solve(rr: np.ndarray, ee: np.ndarray, vv: np.ndarray) -> float:
        if rr.size < 4 or not (ee > 0).any():
            return 0.05
        r2 = (rr - ee) ** 2
        r2 = np.minimum(r2, np.quantile(r2, 0.99))
        return float(max(0.0, (r2 - vv).sum() / (ee * ee).sum()))

    pooled = solve(r[ok], e[ok], v0[ok])
    own = np.array([solve(r[m][ok[m]], e[m][ok[m]], v0[m][ok[m]]) for m in range(r.shape[0])])
    return np.maximum(0.5 * (own + pooled), 0.005)


# --------------------------------------------------------------------------- spikes


def detect_regional_spikes(
    panel: SignalPanel, params: SignalParams = SignalParams()
) -> list[Detection]:
    """Markets that spike again and again on their own, at the same local hours.

    See :func:`_regional_spikes` for the statistics; this returns its detections.
    """
    return _regional_spikes(panel, params)[0]


def _regional_spikes(
    panel: SignalPanel, params: SignalParams
) -> tuple[list[Detection], list[NotJudged]]:
    """Markets whose units exceed what the lift every market shares predicts, on the
    same local hours of the same kind of day, week after week (Kulldorff 1997).

    Per market m and hour t (units ``R_mt`` over all SKUs, local hour ``h``)::

        F_t   = (Σ_m R_mt + κ) / (Σ_m b_mh(t) + κ)        shared lift, median 1
        f_mt  = the same without m and without the other market furthest above
                its expectation at t                        (leave-out factor)
        E_mt  = p_mh(t) · f_mt                              expectation

    ``b`` is a spike-proof level by local hour (:func:`_robust_profile`), ``p`` the
    mean of ``R / f`` by local hour over the days *outside* the pattern tested
    (:func:`_local_profile`), κ = ``common_pseudo_units``. A weekend, a holiday, a
    TV spot or a claims burst lifts every market at once, so it enters f, not the
    excess; a spike in the largest market does not enter the others' f. Each day's
    block expectation is then scaled by that day's own level, read from its hours
    outside the block, so a busy day for the market is not a spike.

    A *pattern* is a kind of local day (:data:`_DAY_SETS`: weekends, weekdays, each
    weekday) and a block of local hours (``spike_block_hours`` long). Its count
    ``R_p`` sums the block over the pattern's days; its variance carries the
    baskets (``φ_m = Σ q² / Σ q`` over the market's sale rows, a quasi-Poisson
    dispersion), the block's shape noise (``σ²_m``, :func:`_extra_variance`), the
    error of the expectation (a mean over the other days) and an empirical null
    (Efron 2004): how far that kind of day and block strays from expectation across
    all markets. The p-value is the quasi-Poisson tail (:func:`_gamma_tail`);
    ``p_adjusted`` multiplies it by the markets × patterns tested. Gaps (a
    market-hour without any event or look-up where three were expected) are left out.

    A pattern is a regional spike when ``p_adjusted ≤ spike_alpha``, it still passes
    without its strongest day (at ``spike_alpha`` over markets × kinds of day), its
    concentration ``c = Σ (R − E) / Σ (R − p · f̄)`` (the share of the market's lift
    over its own baseline that the shared lift leaves unexplained) is at least
    ``spike_min_concentration``, and at least ``spike_min_days`` of its days each
    show ``spike_min_excess`` orders above expectation and ``R ≥ spike_min_lift · E``.
    The most significant such pattern is reported per market.

    Score: the concentration-weighted number of supporting days (a market spiking
    alone on 4 days scores ≈ 4). ``stats["pattern"]`` is ``weekend`` or ``weekday``
    by the kind of local day; ``stats["days"]`` and ``stats["local_hours"]`` name it.

    Returns:
        ``(detections, notes)``: one detection per market, strongest first, and what
        could not be judged (fewer than ``spike_min_weeks`` weeks of data).

    References:
        Efron, B. (2004). Large-scale simultaneous hypothesis testing: the choice of
        a null hypothesis. *JASA* 99(465), 96–104.
    """
    markets, R = _by_market(panel, panel.units)
    _, R2 = _by_market(panel, panel.units_sq)
    M, T = R.shape
    days_of_data = T / 24.0
    if days_of_data < 7 * params.spike_min_weeks:
        return [], [
            NotJudged(
                "regional_spike",
                f"{days_of_data:.1f} days of data: too few to tell a recurring spike from noise",
                f"{params.spike_min_weeks:g} weeks of data",
            )
        ]
    notes: list[NotJudged] = []
    total = R.sum(1)
    phi = np.where(total > 0, R2.sum(1) / np.maximum(total, 1e-12), 1.0)
    phi = np.maximum(phi, 1.0)
    kappa = params.common_pseudo_units
    floor = np.maximum(0.01 * total / T, 1e-3)
    mi = np.arange(M)[:, None]
    _, activity = _by_market(
        panel, panel.units + panel.returns + panel.restocks + panel.stimuli + panel.lookups
    )
    f = np.ones_like(R)
    seen = np.ones_like(R, dtype=bool)
    others_R = np.full_like(R, np.inf)
    # A market-hour without any event or look-up where 3 or more were expected is a
    # recorder gap, not a quiet hour, and so is an hour without any in every market:
    # gaps are left out of baselines, factors and tests.
    usual = _local_profile(activity, panel, np.zeros(M), seen=np.ones_like(R, dtype=bool))
    expected_activity = usual[mi, panel.local_hour]
    seen = (activity > 0) | (expected_activity < 3.0)
    seen &= (activity.sum(0) > 0) | (expected_activity.sum(0) < 3.0)
    # One shared factor F (normalised to a median of 1, so it and the profiles
    # cannot drift apart in scale), then each market's leave-out version of it.
    Rs = np.where(seen, R, 0.0)
    F = np.ones(T)
    for _ in range(3):
        Bt = _robust_profile(R / F[None, :], panel, floor, seen=seen)[mi, panel.local_hour]
        Bs = np.where(seen, Bt, 0.0)
        F = (Rs.sum(0) + kappa) / (Bs.sum(0) + kappa)
        busy = Bs.sum(0) > kappa
        F = F / (np.median(F[busy]) if busy.any() else 1.0)
    f = np.ones_like(R)
    if M > 2:
        # Leave out the market itself and, of the others, the one furthest above its
        # expectation: a spike in the largest market is not a lift every market
        # shares, while a national lift still shows in all the rest.
        dev = np.where(seen, (R - Bt * F) / np.sqrt(phi[:, None] * Bt * F + 1.0), -np.inf)
        order = np.argsort(-dev, axis=0)
        top1, top2 = order[0], order[1]
        cols = np.arange(T)
        out_row = np.where(np.arange(M)[:, None] == top1[None, :], top2[None, :], top1[None, :])
        others_R = Rs.sum(0) - Rs - Rs[out_row, cols]
        others_B = Bs.sum(0) - Bs - Bs[out_row, cols]
    elif M == 2:
        others_R, others_B = Rs[::-1], Bs[::-1]
    if M > 1:
        f = (others_R + kappa) / (others_B + kappa)
        for m in range(M):
            busy = others_B[m] > kappa
            if busy.any():
                f[m] /= np.median(f[m][busy])
    R = np.where(seen, R, 0.0)
    # Noise of the shared factor: relative variance φ̄ / (units behind it).
    phi_all = float(R2.sum() / max(R.sum(), 1e-12)) if R.sum() > 0 else 1.0

    # Local (day, hour) grids per market, then block sums over hours.
    d0 = int(panel.local_day.min())
    n_days = int(panel.local_day.max()) - d0 + 1
    cell = (mi * n_days + (panel.local_day - d0)) * 24 + panel.local_hour

    def grid(x: np.ndarray) -> np.ndarray:
        return np.bincount(cell.ravel(), weights=x.ravel(), minlength=M * n_days * 24).reshape(
            M, n_days, 24
        )

    weekday = (np.arange(d0, d0 + n_days) + 3) % 7  # 1970-01-01 was a Thursday
    blocks = [(h, L) for L in params.spike_block_hours for h in range(0, 25 - L)]
    n_tests = M * len(_DAY_SETS) * len(blocks)

    def block(x: np.ndarray) -> np.ndarray:  # [M, D, 24] -> [M, D, nb]
        c = np.concatenate([np.zeros(x.shape[:2] + (1,)), np.cumsum(x, axis=2)], axis=2)
        return np.stack([c[:, :, h + L] - c[:, :, h] for h, L in blocks], axis=2)

    masks = np.stack([np.isin(weekday, s) for _, s in _DAY_SETS])  # [K, D]
    Rb = block(grid(R))
    K = len(_DAY_SETS)
    Rday = Rb[:, :, -1] if blocks[-1] == (0, 24) else grid(R).sum(2)

    def expectation(own: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block expectation on each day given the rest of that day, the base
        variance of the block's count, and the expectation with no day level."""
        E = np.where(seen, own * f, 0.0)
        W = E * E * phi_all / (others_R + kappa)
        Eg = grid(E)
        e_raw = block(Eg)
        # The day's own level from its hours outside the block: a busy day for the
        # market (day-to-day over-dispersion) is not a spike in one block.
        e_out = Eg.sum(2)[:, :, None] - e_raw
        level = (Rday[:, :, None] - Rb + kappa) / (e_out + kappa)
        e = e_raw * level
        v0 = block(grid(phi[:, None] * E + W)) * level**2 + e * e * phi[:, None, None] / (
            e_out + kappa
        )
        return e, v0, e_raw

    # Hour-of-day shape noise left once each day's level is known (σ²_w).
    e_all, v_all, e_raw_all = expectation(
        _local_profile(R / f, panel, floor, seen=seen)[mi, panel.local_hour]
    )
    four = np.array([L == 4 for _, L in blocks])
    sigma2 = _extra_variance(
        Rb[:, :, four].reshape(M, -1),
        e_all[:, :, four].reshape(M, -1),
        np.maximum(v_all[:, :, four].reshape(M, -1), 1e-9),
        (e_raw_all[:, :, four] >= 3.0).reshape(M, -1),
    )
    Eb, Bb, Vb = (np.empty((K, *Rb.shape)) for _ in range(3))
    base_var = np.empty((K, M, len(blocks)))  # relative variance of the expectation
    for k, (_, wdays) in enumerate(_DAY_SETS):
        # The pattern's days are predicted from the other days only, so the spike
        # being tested does not raise its own expectation.
        outside = np.setdiff1d(np.arange(7), wdays)
        own = _local_profile(R / f, panel, floor, outside, seen=seen)[mi, panel.local_hour]
        e, v0, e_raw = expectation(own)
        # The market's own baseline at its usual level of the shared factor: what it
        # would sell in these hours with no lift at all.
        fbar = np.where(seen, own * f, 0.0).sum(1) / np.maximum(
            np.where(seen, own, 0.0).sum(1), 1e-12
        )
        Eb[k], Bb[k] = e, block(grid(np.where(seen, own * fbar[:, None], 0.0)))
        # Shape noise twice: in the block, and in the rest of the day that sets its level.
        Vb[k] = v0 + 2.0 * sigma2[:, None, None] * e * e
        # The expectation's shape is a mean over the other days: its error is shared
        # by every day of the pattern, so it enters the pattern's variance once.
        n_out = np.maximum(np.isin(weekday, outside).sum(), 1)
        base_var[k] = (sigma2[:, None] + phi[:, None] / np.maximum(e_raw.mean(1), 1e-3)) / n_out
    # Excess counted in orders (units / φ): one big basket cannot make a spike day.
    support = (Rb - Eb >= params.spike_min_excess * phi[None, :, None, None]) & (
        Rb >= params.spike_min_lift * Eb
    )
    support &= masks[:, None, :, None]
    in_k = masks[:, None, :, None].astype(float)
    Rp = np.einsum("kd,mdb->mkb", masks.astype(float), Rb)
    Ep, Bp, Vp = ((x * in_k).sum(2).transpose(1, 0, 2) for x in (Eb, Bb, Vb))
    Vp = Vp + base_var.transpose(1, 0, 2) * Ep**2
    # Empirical null (Efron 2004): how far a kind of day and block strays from its
    # expectation across all markets and blocks, beyond the modelled noise. Markets
    # differ in their weekly rhythm more than counting noise says; one market's
    # spike barely moves the median over markets x blocks.
    with np.errstate(all="ignore"):
        ell2 = np.log((Rp + 1.0) / (Ep + 1.0)) ** 2
        rel = Vp / np.maximum(Ep, 1.0) ** 2
    tau2 = np.zeros(K)
    for k in range(K):
        ok_cells = Ep[:, k, :] >= 5.0
        if ok_cells.sum() >= 8:
            tau2[k] = max(
                0.0,
                float(np.median(ell2[:, k, :][ok_cells])) / 0.455
                - float(np.median(rel[:, k, :][ok_cells])),
            )
    Vp = Vp + tau2[None, :, None] * Ep**2
    days_sup = support.sum(2).transpose(1, 0, 2)
    p = _gamma_tail(Rp, Ep, np.maximum(Vp / np.maximum(Ep, 1e-12), 1.0))
    # Recurrence: without its strongest day the pattern must still pass.
    top = np.argmax(np.where(masks[:, None, :, None], Rb[None] - Eb, -np.inf), axis=2)  # [K,M,nb]
    take = lambda x: np.take_along_axis(x, top[:, :, None, :], axis=2)[:, :, 0].transpose(1, 0, 2)  # noqa: E731
    R_top = np.take_along_axis(np.broadcast_to(Rb, Eb.shape), top[:, :, None, :], axis=2)[:, :, 0]
    Rd, Ed = Rp - R_top.transpose(1, 0, 2), Ep - take(Eb)
    Vd = Vp - take(Vb) - (base_var.transpose(1, 0, 2) + tau2[None, :, None]) * (Ep**2 - Ed**2)
    p_drop = _gamma_tail(Rd, Ed, np.maximum(Vd / np.maximum(Ed, 1e-12), 1.0))
    with np.errstate(all="ignore"):
        conc = np.clip(np.where(Rp > Bp, (Rp - Ep) / (Rp - Bp), 0.0), 0.0, 1.0)
    ok = (
        (p * n_tests <= params.spike_alpha)
        & (p_drop * M * len(_DAY_SETS) <= params.spike_alpha)
        & (conc >= params.spike_min_concentration)
        & (days_sup >= params.spike_min_days)
    )
    best_p = np.where(ok, p, np.inf).reshape(M, -1).min(1)
    market_p = np.minimum(p.reshape(M, -1).min(1) * n_tests, 1.0)
    q_all = _bh(market_p)
    sku_rows = pd.factorize(panel.keys["market"], sort=True)[0]

    out: list[Detection] = []
    for m in np.flatnonzero(np.isfinite(best_p)):
        k, b = np.unravel_index(np.argmin(np.where(ok[m], p[m], np.inf)), p[m].shape)
        h0, L = blocks[b]
        label, wdays = _DAY_SETS[k]
        rows = np.flatnonzero(sku_rows == m)
        episodes = []
        for d in np.flatnonzero(masks[k]):
            if not support[k, m, d, b]:
                continue
            t = np.flatnonzero(
                (panel.local_day[m] == d0 + d)
                & (panel.local_hour[m] >= h0)
                & (panel.local_hour[m] < h0 + L)
            )
            if t.size == 0:
                continue
            r, e, bb = Rb[m, d, b], Eb[k, m, d, b], Bb[k, m, d, b]
            contrib = panel.units[rows][:, t].sum(1)
            top = [
                str(panel.keys["sku"].iloc[rows[i]])
                for i in np.argsort(-contrib)[:3]
                if contrib[i] > 0
            ]
            start = panel.hours[t[0]]
            episodes.append(
                Evidence(
                    kind="spike_episode",
                    start=start,
                    end=panel.hours[t[-1]] + _HOUR,
                    value=float((r - e) / np.sqrt(max(Vb[k, m, d, b], 1e-12))),
                    detail={
                        "units": float(r),
                        "expected_units": float(e),
                        "baseline_units": float(bb),
                        "lift": float(r / max(e, 1e-12)),
                        "concentration": float(np.clip((r - e) / (r - bb), 0, 1))
                        if r > bb
                        else 0.0,
                        "top_skus": top,
                        "weekday": int(weekday[d]),
                        "local_start": start.tz_convert(panel.timezones[markets[m]]).isoformat(),
                    },
                )
            )
        if len(episodes) < params.spike_min_days:
            continue
        weekend = float(np.mean([e.detail["weekday"] >= 5 for e in episodes]))
        pattern = "weekend" if set(wdays) <= {5, 6} else "weekday" if max(wdays) <= 4 else "mixed"
        out.append(
            Detection(
                archetype="regional_spike",
                score=float(sum(e.detail["concentration"] for e in episodes)),
                detected_at=episodes[-1].end,
                market=markets[m],
                evidence=tuple(episodes),
                stats={
                    "spike_days": float(len(episodes)),
                    "pattern_days": float(masks[k].sum()),
                    "episodes": float(len(episodes)),
                    "days": label,
                    "local_hours": f"{h0:02d}:00-{h0 + L:02d}:00",
                    "timezone": panel.timezones[markets[m]],
                    "units": float(Rp[m, k, b]),
                    "expected_units": float(Ep[m, k, b]),
                    "lift": float(Rp[m, k, b] / max(Ep[m, k, b], 1e-12)),
                    "mean_concentration": float(conc[m, k, b]),
                    "max_z": float((Rp[m, k, b] - Ep[m, k, b]) / np.sqrt(Vp[m, k, b])),
                    "basket_dispersion": float(phi[m]),
                    "block_overdispersion": float(sigma2[m]),
                    "pattern_overdispersion": float(tau2[k]),
                    "weekend_share": weekend,
                    "pattern": pattern,
                    "p_value": float(p[m, k, b]),
                    "p_adjusted": float(min(1.0, p[m, k, b] * n_tests)),
                    "p_adjusted_without_top_day": float(min(1.0, p_drop[m, k, b] * M * K)),
                    "q_value": float(q_all[m]),
                    "tests": float(n_tests),
                },
            )
        )
    return sorted(out, key=lambda d: -d.score), notes


# --------------------------------------------------------------------------- creators


def detect_creator_led(
    events: pd.DataFrame,
    panel: SignalPanel,
    params: SignalParams = SignalParams(),
) -> list[Detection]:
    """(creator, SKU) pairs whose announcements lift demand post after post.

    See :func:`_creator_led` for the statistics; this returns its detections.
    """
    return _creator_led(events, panel, params)[0]


def _creator_led(
    events: pd.DataFrame, panel: SignalPanel, params: SignalParams
) -> tuple[list[Detection], list[NotJudged]]:
    """(creator, SKU) pairs whose posts lift the SKU's sales against the other SKUs.

    An event study per post a of SKU s at hour t_a (MacKinlay 1997) over the post's
    markets (all markets when it names none). The reference is what the *other* SKUs
    sell in the same markets and hours, so weekdays, local hours, holidays, missing
    hours and lifts shared by every SKU cancel::

        θ_j   = SKU j's share of all units, over the hours its stimuli leave alone
        L_w   = Σ_{j ∈ C} U_j(w) / Σ_{j ∈ C} θ_j      implied total in window w
        ℓ_a   = log((U_s(w_a) + ½) / (θ_s L_{w_a} + ½))                 log-lift

    with ``U_j(w)`` SKU j's units in the Q-hour window w (Q = ``lift_post_hours``) and
    C the other SKUs no post, claim or listing touched near w (with fewer than two,
    the median of what each other SKU implies; a SKU sold alone is compared with the
    same hours a day earlier). The same log-lift over *placebo* windows (starting
    every ``placebo_step_hours``, away from the SKU's posts) gives the null; windows
    a claims burst touched have the burst's median lift taken out, and so do posts it
    touches. A post lifts when ``z_a = (ℓ_a − μ₀)/σ₀ ≥ lift_z`` (μ₀ the placebo
    median, σ₀ its robust spread).

    Per (creator, SKU), the effect is estimated across its unconfounded posts (no
    other creator posted the SKU within Q hours): ``m̂ = mean(ℓ_a) − μ₀`` and the
    shrunk lift ``exp(m̂ τ²/(τ² + se²))`` (``se = σ₀/√n``, τ = ``creator_prior_sd``),
    so one flop lowers the estimate instead of erasing the record. Its p-value is
    empirical: the share of means of n placebo windows drawn at random that reach
    m̂ (claims make the placebo heavy-tailed). A pair is detected when it has
    ``creator_min_announcements`` posts, ``creator_min_clean`` of them clean,
    ``p_adjusted`` (times the pairs tested) ≤ ``creator_alpha``, the same test
    without its best post ≤ ``creator_alpha`` (one big lift then nothing is not a
    record), a shrunk lift ≥ ``creator_min_lift`` and a share of lifting posts
    (``stickiness``) ≥ ``creator_min_stickiness``. Posts by one creator about one
    SKU less than Q hours apart count once (the first).

    Score: stickiness × shrunk log-lift. ``stats["lift_trend"]`` is the
    least-squares slope of ℓ over the posts (negative: the creator's pull is fading).
    ``detected_at`` is the end of the last post window that lifted.

    Returns:
        ``(detections, notes)``: one detection per (creator, SKU), strongest first;
        notes for pairs whose posts lifted but are too few, or not yet beyond noise
        (with about how many more posts would tell).
    """
    ev = _validate_events(events)
    ann = ev[ev["type"].eq("announcement")].copy()
    if ann.empty:
        return [], []
    ann["creator"] = ann["creator"].where(ann["creator"].notna(), ann["sku"]).astype(str)
    lo = panel.hours[0]
    T = len(panel.hours)
    Q, step = int(params.lift_post_hours), int(params.placebo_step_hours)
    if Q < 1 or step < 1:
        raise InputError(
            f"lift_post_hours and placebo_step_hours must be >= 1, got "
            f"lift_post_hours={Q} placebo_step_hours={step}"
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
    all_t = ann["t"].to_numpy()
    all_sku = ann["sku"].astype(str).to_numpy()
    all_who = ann["creator"].to_numpy()
    other_stimuli = ev[ev["type"].isin(_STIMULUS_TYPES) & ~ev["type"].eq("announcement")]
    shock_t = {
        str(k): np.unique(v)
        for k, v in pd.Series(
            ((other_stimuli["ts"].dt.floor("h") - lo) // _HOUR).to_numpy(dtype=np.int64)
        )
        .groupby(other_stimuli["sku"].astype(str).to_numpy())
        .apply(np.asarray)
        .items()
    }
    # Posts by one creator about one SKU within Q hours are one campaign: keep the first.
    gap = ann.groupby(["creator", "sku"], sort=False)["t"].diff()
    ann = ann[gap.isna() | (gap >= Q)]
    ann = ann[(ann["t"] >= 0) & (ann["t"] + Q <= T)]
    if ann.empty:
        return [], []

    markets = list(panel.markets)
    m_index = {m: i for i, m in enumerate(markets)}
    sku_names = sorted(panel.keys["sku"].astype(str).unique())
    s_index = {k: i for i, k in enumerate(sku_names)}
    S = len(sku_names)
    units_sm = np.zeros((S, len(markets), T))
    units_sm[
        panel.keys["sku"].astype(str).map(s_index).to_numpy(),
        panel.keys["market"].astype(str).map(m_index).to_numpy(),
    ] = panel.units
    # Each SKU's stimuli (anyone's posts, claims, listings): a window starting at t is
    # touched by a stimulus at u when u is in (t − Q, t + Q); the hours [u, u + Q)
    # carry its lift.
    touched_post = np.zeros((S, T), dtype=bool)
    touched_claim = np.zeros((S, T), dtype=bool)
    lifted = np.zeros((S, T), dtype=bool)
    for k, i_s in s_index.items():
        for touched, times in (
            (touched_post, all_t[all_sku == k]),
            (touched_claim, shock_t.get(k, np.array([], dtype=np.int64))),
        ):
            for u in times:
                touched[i_s, max(int(u) - Q + 1, 0) : min(int(u) + Q, T)] = True
                lifted[i_s, max(int(u), 0) : min(int(u) + Q, T)] = True
    touched_any = touched_post | touched_claim
    starts = np.arange(0, T - Q + 1, step)
    t = ann["t"].to_numpy()
    post_ll = np.full(len(ann), np.nan)
    post_units = np.full(len(ann), np.nan)
    post_expected = np.full(len(ann), np.nan)
    null_mu = np.full(len(ann), np.nan)
    null_sd = np.full(len(ann), np.nan)
    notes: list[NotJudged] = []
    placebo: list[np.ndarray | None] = [None] * len(ann)
    cache: dict[tuple[str, tuple[str, ...] | None], Any] = {}
    by_reach: dict[tuple[str, ...] | None, tuple[np.ndarray, np.ndarray]] = {}

    def windows(i_s: int, at: np.ndarray, cum: np.ndarray, theta: np.ndarray):
        """The SKU's units in the Q-hour windows starting at ``at`` and what the other
        SKUs untouched by a stimulus predict for it (its usual share of them)."""
        W = cum[:, at + Q] - cum[:, at]
        if S == 1:  # sold alone: the same hours a day earlier
            ok = at >= 24
            prev = np.where(
                ok, cum[0, np.maximum(at - 24 + Q, 0)] - cum[0, np.maximum(at - 24, 0)], np.nan
            )
            return W[0], prev
        # Other SKUs untouched by a stimulus, pooled, when there are two or more; else
        # the median of what each other SKU implies (robust to one in a burst).
        others = np.arange(S) != i_s
        clean = ~touched_any[:, at] & others[:, None]
        num = (W * clean).sum(0)
        den = (theta[:, None] * clean).sum(0)
        level = np.full(at.size, np.nan)
        pooled = (clean.sum(0) >= 2) & (den > 0)
        level[pooled] = num[pooled] / den[pooled]
        few = np.flatnonzero(~pooled)
        if few.size:
            with np.errstate(all="ignore"):
                implied = np.where(
                    theta[others, None] > 0, W[others][:, few] / theta[others, None], np.nan
                )
                level[few] = np.nanmedian(implied, axis=0)
        return W[i_s], theta[i_s] * level

    def reference(sku: str, mkts: tuple[str, ...] | None):
        key = (sku, mkts)
        if key in cache:
            return cache[key]
        mset = (
            np.arange(len(markets))
            if mkts is None
            else np.array([m_index[m] for m in mkts if m in m_index], dtype=int)
        )
        i_s = s_index.get(sku)
        if i_s is None or mset.size == 0:
            cache[key] = None
            return None
        if mkts not in by_reach:
            U = units_sm[:, mset, :].sum(1)
            # Each SKU's usual share of the sales, from the hours its stimuli leave alone.
            quiet = ~lifted
            theta = (U * quiet).sum(1) / np.maximum((U.sum(0)[None, :] * quiet).sum(1), 1e-12)
            cum = np.concatenate([np.zeros((S, 1)), np.cumsum(U, axis=1)], axis=1)
            by_reach[mkts] = (cum, theta)
        cum, theta = by_reach[mkts]
        # Placebo windows: every window away from the SKU's posts. Those a claims burst
        # or listing touches carry its lift, measured on them and taken out (of them
        # and of posts it touches), so a post that meets a burst is not a record.
        at = starts[~touched_post[i_s, starts]]
        own, expected = windows(i_s, at, cum, theta)
        ok = np.isfinite(expected)
        ll = np.log((own[ok] + 0.5) / (expected[ok] + 0.5))
        by_claim = touched_claim[i_s, at[ok]]
        claim_ll = 0.0
        if by_claim.sum() >= 3 and (~by_claim).sum() >= 3:
            claim_ll = float(np.median(ll[by_claim]) - np.median(ll[~by_claim]))
        ll = ll - claim_ll * by_claim
        if ll.size < 8:
            cache[key] = None
            return None
        # A robust scale for one post's z (claims and busy days give heavy tails);
        # the creator's p-values use the whole placebo distribution.
        mu = float(np.median(ll))
        sd = float(max(1.4826 * np.median(np.abs(ll - mu)), 0.05))
        cache[key] = (i_s, cum, theta, mu, sd, ll - mu, claim_ll)
        return cache[key]

    for i, (sku, mkts, ta) in enumerate(
        zip(ann["sku"].astype(str), ann["markets"], t, strict=True)
    ):
        ref = reference(sku, mkts)
        if ref is None:
            continue
        i_s, cum, theta, mu, sd, null_ll, claim_ll = ref
        own, expected = windows(i_s, np.array([ta]), cum, theta)
        if not np.isfinite(expected[0]):
            continue
        placebo[i] = null_ll
        post_units[i] = float(own[0])
        post_expected[i] = float(expected[0]) * (
            np.exp(claim_ll) if touched_claim[i_s, ta] else 1.0
        )
        post_ll[i] = np.log((post_units[i] + 0.5) / (post_expected[i] + 0.5))
        null_mu[i], null_sd[i] = mu, sd
    ann["post"], ann["expected"], ann["loglift"] = post_units, post_expected, post_ll - null_mu
    ann["z"] = (post_ll - null_mu) / null_sd
    ann["null_sd"] = null_sd
    ann["placebo"] = placebo
    # Clean windows: no other creator announced the same SKU within Q hours either side,
    # else the two lifts overlap and cannot be attributed (MacKinlay 1997, clustering
    # of event dates).
    confounded = np.zeros(len(ann), dtype=bool)
    for i, (sku, who) in enumerate(zip(ann["sku"].astype(str), ann["creator"], strict=True)):
        near = (all_sku == sku) & (all_t > t[i] - Q) & (all_t < t[i] + Q) & (all_who != who)
        confounded[i] = bool(near.any())
    ann["confounded"] = confounded
    unjudged_skus = sorted(set(ann.loc[~np.isfinite(ann["z"]), "sku"].astype(str)))
    for sku in unjudged_skus:
        notes.append(
            NotJudged(
                "creator_led",
                f"SKU {sku}: too few quiet hours or reference sales to measure a post's lift",
                "more history without posts, or other SKUs sold in the same markets",
                sku=sku,
            )
        )
    ann = ann[np.isfinite(ann["z"])]

    pairs = []
    for (who, sku), g in ann.sort_values("ts").groupby(["creator", "sku"], sort=True):
        clean = g[~g["confounded"]]
        if len(g) < params.creator_min_announcements or len(clean) < max(
            2, params.creator_min_clean
        ):
            if len(g) and float(g["z"].mean()) >= 2.0 * params.lift_z:
                notes.append(
                    NotJudged(
                        "creator_led",
                        f"{who} on {sku}: {len(g)} post(s) ({len(clean)} clean) lifted sales, "
                        "too few to call a record",
                        f"{params.creator_min_announcements} posts, "
                        f"{max(2, params.creator_min_clean)} of them clean",
                        sku=str(sku),
                        creator=str(who),
                    )
                )
            continue
        sd = float(clean["null_sd"].mean())
        n = len(clean)
        m_hat = float(clean["loglift"].mean())
        se = sd / np.sqrt(n)
        # The null of a mean of n posts: means of n placebo windows drawn at random
        # (claims bursts make the placebo log-lifts heavy-tailed; a normal tail with
        # n = 3 would call a post that met a burst a record).
        null = np.concatenate(list({id(x): x for x in clean["placebo"]}.values()))
        rng = np.random.default_rng(n)
        draws = rng.choice(null, size=(_NULL_DRAWS, n)).mean(1)
        p_emp = (1.0 + float((draws >= m_hat).sum())) / (_NULL_DRAWS + 1.0)
        # Recurrence: the record must stand without its best post (one big lift
        # followed by posts that move nothing is not a creator-led SKU).
        rest = np.sort(clean["loglift"].to_numpy())[:-1]
        rest_draws = rng.choice(null, size=(_NULL_DRAWS, rest.size)).mean(1)
        p_rest = (1.0 + float((rest_draws >= rest.mean()).sum())) / (_NULL_DRAWS + 1.0)
        pairs.append((str(who), str(sku), g, clean, m_hat, se, m_hat / se, p_emp, p_rest))
    n_pairs = len(pairs)
    pvals = np.array([pr[7] for pr in pairs])
    qvals = _bh(np.minimum(pvals * max(n_pairs, 1), 1.0))
    tau2 = params.creator_prior_sd**2

    out: list[Detection] = []
    for (who, sku, g, clean, m_hat, se, z, _, p_rest), pv, qv in zip(
        pairs, pvals, qvals, strict=True
    ):
        shrunk = m_hat * tau2 / (tau2 + se * se)
        stickiness = float((g["z"].to_numpy() >= params.lift_z).mean())
        clean_stickiness = float((clean["z"].to_numpy() >= params.lift_z).mean())
        if (
            pv * n_pairs > params.creator_alpha
            or p_rest > params.creator_alpha
            or np.exp(shrunk) < params.creator_min_lift
            or stickiness < params.creator_min_stickiness
        ):
            if (
                np.exp(shrunk) >= params.creator_min_lift
                and stickiness >= params.creator_min_stickiness
                and pv * n_pairs <= 0.5
            ):
                # Lifting, but not yet told apart from noise: say how many posts would be.
                z_needed = float(stats.norm.isf(params.creator_alpha / max(n_pairs, 1)))
                more = int(np.ceil(len(clean) * (z_needed / max(z, 1e-6)) ** 2)) - len(clean)
                notes.append(
                    NotJudged(
                        "creator_led",
                        f"{who} on {sku}: {len(g)} posts lift sales x{np.exp(m_hat):.2f} on "
                        "average, not yet told apart from noise (nothing found)",
                        f"about {max(more, 1)} more clean post{'s' if more > 1 else ''}",
                        sku=sku,
                        creator=who,
                    )
                )
            continue
        n_clean = len(clean)
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
                    "post_units": float(row.post),
                    "expected_units": float(row.expected),
                    "lift": float(np.exp(row.loglift)),
                    "z": float(row.z),
                    "lifted": bool(row.z >= params.lift_z),
                    "confounded": bool(row.confounded),
                },
            )
            for row in g.itertuples(index=False)
        )
        lifted = [e for e in evidence if e.detail["lifted"]]
        out.append(
            Detection(
                archetype="creator_led",
                score=stickiness * shrunk,
                detected_at=(lifted or evidence)[-1].end,
                sku=sku,
                creator=who,
                evidence=evidence,
                stats={
                    "announcements": float(len(g)),
                    "clean_announcements": float(n_clean),
                    "stickiness": stickiness,
                    "clean_stickiness": clean_stickiness,
                    "mean_lift": float(np.exp(m_hat)),
                    "shrunk_lift": float(np.exp(shrunk)),
                    "mean_loglift": m_hat,
                    "loglift_se": float(se),
                    "placebo_sd": float(clean["null_sd"].mean()),
                    "z": float(z),
                    "lift_trend": trend,
                    "p_value": float(pv),
                    "p_adjusted": float(min(1.0, pv * n_pairs)),
                    "p_without_best_post": float(p_rest),
                    "q_value": float(qv),
                    "tests": float(n_pairs),
                },
            )
        )
    return sorted(out, key=lambda d: -d.score), notes


# --------------------------------------------------------------------------- edge


def _next_true(flag: np.ndarray) -> np.ndarray:
    """``[N, T]`` index of the first True at or after each hour (T when none)."""
    T = flag.shape[1]
    idx = np.where(flag, np.arange(T)[None, :], T)
    return np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]


def _scheduled_restocks(panel: SignalPanel, params: SignalParams) -> np.ndarray:
    """``[N, T]`` restock hours that are scheduled, not reactions.

    Scheduled: written by the service's wave releases (``event_id`` ``wave-...``), or
    at a local hour of day at which the SKU-market restocks on at least
    ``schedule_min_days`` days and 30 % of the days (a fixed daily schedule keeps its
    local hour across a daylight-saving switch).
    """
    N, T = panel.restocks.shape
    m_of_row = np.searchsorted(
        np.asarray(panel.markets), panel.keys["market"].astype(str).to_numpy()
    )
    lh = panel.local_hour[m_of_row]
    day = panel.local_day[m_of_row]
    other = (panel.restocks - panel.wave_restocks) > 0
    n_days = len(np.unique(panel.local_day))
    n, tt = np.nonzero(other)
    cell = n * 24 + lh[n, tt]
    pairs = np.unique(np.stack([cell, day[n, tt]]), axis=1)
    counts = np.bincount(pairs[0], minlength=N * 24).reshape(N, 24)
    recurring = counts >= max(params.schedule_min_days, 0.3 * n_days)
    return (panel.wave_restocks > 0) | (other & recurring[np.arange(N)[:, None], lh])


def detect_edge_acceleration(
    panel: SignalPanel, params: SignalParams = SignalParams()
) -> list[Detection]:
    """Markets that react within hours of a shock and convert better than the others.

    See :func:`_edge_acceleration` for the statistics; this returns its detections
    (none without look-ups: :func:`scan_signals` says so).
    """
    return _edge_acceleration(panel, params)[0]


def _edge_acceleration(
    panel: SignalPanel, params: SignalParams
) -> tuple[list[Detection], list[NotJudged]]:
    """Markets that react within hours of a shock and convert clearly better.

    Shocks: a SKU-market's stimulus hours (announcements, claims, listings) preceded
    by ``shock_quiet_hours`` without one. Reaction: hours from the shock to the first
    hour at or after it whose price moves by at least ``reprice_pct`` against the
    hour before, or that receives a *reactive* restock (scheduled ones,
    :func:`_scheduled_restocks`, do not count); censored at ``max_reaction_hours``.
    A market's reaction time is the median over its shocks; its peers' the median
    over every other market's shocks.

    Conversion is units per price look-up, ``c_m = Σ units / Σ look-ups``. It is
    compared with the *median* market's, not with pooled peers (which the largest
    market dominates), on the log scale with a standard error from the day-to-day
    spread of each market's daily conversion (baskets and busy days included)::

        z = log(c_m / median_{m'≠m} c_m') / √(se_m² + median_{m'≠m} se_m'²)

    A market is detected when it has ``edge_min_shocks`` shocks, a median reaction
    ≤ ``edge_fast_hours`` and below its peers', ``c_m / median ≥
    edge_min_conversion_ratio`` (the effect-size floor: with tens of thousands of
    look-ups any gap is "significant") and ``p_adjusted = P(Z ≥ z) · M ≤ edge_alpha``.

    Score: ``log(conversion ratio) + log(peer reaction / max(1, own reaction))``.

    Returns:
        ``(detections, notes)``; without look-ups no detection and a note.
    """
    if not panel.has_lookups:
        return [], [
            NotJudged(
                "edge_acceleration",
                "no price look-ups: conversion is unknown, so edge acceleration was not judged",
                "the served-price look-ups (hour, sku, market, lookups)",
            )
        ]
    N, T = panel.units.shape
    stim = panel.stimuli > 0
    cs = np.concatenate([np.zeros((N, 1)), np.cumsum(stim, axis=1)], axis=1)
    q = params.shock_quiet_hours
    t_idx = np.arange(T)
    prior = cs[:, t_idx] - cs[:, np.maximum(t_idx - q, 0)]
    onset = stim & (prior == 0)
    logp = np.log(panel.price)
    step = np.zeros_like(stim)
    with np.errstate(invalid="ignore"):
        step[:, 1:] = np.abs(np.diff(logp, axis=1)) >= np.log1p(params.reprice_pct / 100.0)
    scheduled = _scheduled_restocks(panel, params)
    react = step | ((panel.restocks > 0) & ~scheduled)
    nxt = _next_true(react)
    n_idx, t_on = np.nonzero(onset)
    reaction = np.minimum(nxt[n_idx, t_on] - t_on, params.max_reaction_hours).astype(float)
    codes, markets = pd.factorize(panel.keys["market"], sort=True)
    M = len(markets)
    shock_market = codes[n_idx]
    # Daily conversion per market (local days): its spread is the standard error.
    m_of_row = codes
    day = panel.local_day[m_of_row]
    d0 = int(day.min())
    nd = int(day.max()) - d0 + 1
    cell = (m_of_row[:, None] * nd + (day - d0)).ravel()
    du = np.bincount(cell, weights=panel.units.ravel(), minlength=M * nd).reshape(M, nd)
    dl = np.bincount(cell, weights=panel.lookups.ravel(), minlength=M * nd).reshape(M, nd)
    units, looks = du.sum(1), dl.sum(1)
    conv = np.where(looks > 0, units / np.maximum(looks, 1e-12), np.nan)
    se = np.full(M, np.nan)
    for m in range(M):
        ok = dl[m] >= 20
        if ok.sum() >= 3:
            lc = np.log((du[m, ok] + 0.5) / (dl[m, ok] + 0.5))
            se[m] = float(np.std(lc, ddof=1) / np.sqrt(ok.sum()))
    judged = np.isfinite(conv) & np.isfinite(se)
    n_tested = int(judged.sum())
    pv = np.ones(M)
    zc = np.full(M, np.nan)
    peer_c = np.full(M, np.nan)
    for m in np.flatnonzero(judged):
        others = judged & (np.arange(M) != m)
        if not others.any():
            continue
        peer_c[m] = float(np.median(conv[others]))
        zc[m] = float(
            np.log(conv[m] / peer_c[m]) / np.sqrt(se[m] ** 2 + np.median(se[others] ** 2))
        )
        pv[m] = float(stats.norm.sf(zc[m]))
    p_adj = np.minimum(pv * max(n_tested, 1), 1.0)
    qv = _bh(p_adj)

    out: list[Detection] = []
    for m in range(M):
        mine = shock_market == m
        if mine.sum() < params.edge_min_shocks or not np.isfinite(zc[m]):
            continue
        own = float(np.median(reaction[mine]))
        peers_r = reaction[~mine]
        peer = float(np.median(peers_r)) if peers_r.size else float("nan")
        ratio = float(conv[m] / peer_c[m]) if peer_c[m] > 0 else float("inf")
        if not (
            own <= params.edge_fast_hours
            and (not np.isfinite(peer) or own < peer)
            and ratio >= params.edge_min_conversion_ratio
            and p_adj[m] <= params.edge_alpha
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
                    "conversion": float(conv[m]),
                    "peer_conversion": float(peer_c[m]),
                    "conversion_ratio": ratio,
                    "conversion_z": float(zc[m]),
                    "conversion_rank": float(1 + np.sum(conv[judged] > conv[m])),
                    "scheduled_restocks_ignored": float(scheduled.sum()),
                    "p_value": float(pv[m]),
                    "p_adjusted": float(p_adj[m]),
                    "q_value": float(qv[m]),
                    "tests": float(n_tested),
                },
            )
        )
    return sorted(out, key=lambda d: -d.score), []


# --------------------------------------------------------------------------- all


def scan_signals(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None = None,
    *,
    params: SignalParams = SignalParams(),
    archetypes: Iterable[Archetype] = ARCHETYPES,
    since: pd.Timestamp | str | None = None,
    market: str | None = None,
    timezones: Mapping[str, str] | None = None,
) -> SignalReport:
    """Run the detectors: their detections and what they could not judge.

    Args:
        events: the event table (see the module docstring).
        lookups: optional price look-ups (the edge detector needs them).
        params: thresholds.
        archetypes: which detectors to run.
        since: keep detections whose ``detected_at`` is at or after this time (the
            statistics still use the whole history, which the baselines need).
        market: keep detections about this market (creator detections are kept when
            one of their announcements names the market or none), and notes about it
            or about no market in particular.
        timezones: market -> IANA zone (days and hours are taken there).

    Returns:
        A :class:`SignalReport`: detections ordered by archetype then score, and notes
        (:class:`NotJudged`) on what could not be judged.

    Raises:
        InputError: malformed events, look-ups or time zones, or an unknown archetype.

    Example::

        >>> from pricing.synthetic import simulate_event_stream
        >>> s = simulate_event_stream(key=3)
        >>> [str(n) for n in scan_signals(s.events).not_judged][:1]  # no look-ups given
        ['edge_acceleration not judged: no price look-ups: ...']
    """
    wanted = tuple(archetypes)
    unknown = sorted(set(wanted) - set(ARCHETYPES))
    if unknown:
        raise InputError(f"unknown archetype(s) {unknown}, allowed {list(ARCHETYPES)}")
    panel = build_signal_panel(events, lookups, timezones=timezones)
    found: list[Detection] = []
    notes: list[NotJudged] = []
    if "regional_spike" in wanted:
        d, n = _regional_spikes(panel, params)
        found += d
        notes += n
    if "creator_led" in wanted:
        d, n = _creator_led(events, panel, params)
        found += d
        notes += n
    if "edge_acceleration" in wanted:
        d, n = _edge_acceleration(panel, params)
        found += d
        notes += n
    if since is not None:
        cut = pd.Timestamp(since)
        if cut.tzinfo is None:
            raise InputError(f"since must carry a time zone, got {since!r}")
        found = [d for d in found if d.detected_at >= cut]
    if market is not None:
        found = [d for d in found if _about_market(d, market)]
        notes = [n for n in notes if n.market in (None, market)]
    return SignalReport(detections=tuple(found), not_judged=tuple(notes))


def detect_signals(
    events: pd.DataFrame,
    lookups: pd.DataFrame | None = None,
    *,
    params: SignalParams = SignalParams(),
    archetypes: Iterable[Archetype] = ARCHETYPES,
    since: pd.Timestamp | str | None = None,
    market: str | None = None,
    timezones: Mapping[str, str] | None = None,
) -> list[Detection]:
    """The detections of :func:`scan_signals` (same arguments), strongest first per
    archetype; use :func:`scan_signals` to also hear what could not be judged."""
    report = scan_signals(
        events,
        lookups,
        params=params,
        archetypes=archetypes,
        since=since,
        market=market,
        timezones=timezones,
    )
    return list(report.detections)


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
