"""What the signal detectors take and give: parameters, evidence, detections, the panel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from pricing.events import EVENT_KINDS, STIMULUS_KINDS

__all__ = [
    "ARCHETYPES",
    "Detection",
    "Evidence",
    "NotJudged",
    "SignalPanel",
    "SignalParams",
    "SignalReport",
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
