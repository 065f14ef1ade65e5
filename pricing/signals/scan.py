"""All three detectors at once, with what could not be judged, and detections as a table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from pricing.exceptions import InputError
from pricing.signals.common import (
    ARCHETYPES,
    Archetype,
    Detection,
    NotJudged,
    SignalParams,
    SignalReport,
)
from pricing.signals.creator import _creator_led
from pricing.signals.edge import _edge_acceleration
from pricing.signals.panel import build_signal_panel
from pricing.signals.regional import _regional_spikes

__all__ = ["detect_signals", "detections_frame", "scan_signals"]


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
