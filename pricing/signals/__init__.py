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

The package's modules: :mod:`~pricing.signals.common` (parameters, results and the
hourly panel's type), :mod:`~pricing.signals.panel` (inputs to the panel),
:mod:`~pricing.signals.stats` (tails, false discovery, profiles),
:mod:`~pricing.signals.regional`, :mod:`~pricing.signals.creator` and
:mod:`~pricing.signals.edge` (one detector each) and :mod:`~pricing.signals.scan` (all
three at once, as a table).
"""

from __future__ import annotations

from pricing.signals.common import (
    _STIMULUS_TYPES as _STIMULUS_TYPES,
)
from pricing.signals.common import (
    ARCHETYPES,
    EVENT_TYPES,
    Detection,
    Evidence,
    NotJudged,
    SignalPanel,
    SignalParams,
    SignalReport,
)
from pricing.signals.creator import detect_creator_led
from pricing.signals.edge import _scheduled_restocks as _scheduled_restocks
from pricing.signals.edge import detect_edge_acceleration
from pricing.signals.panel import build_signal_panel
from pricing.signals.regional import detect_regional_spikes
from pricing.signals.scan import detect_signals, detections_frame, scan_signals

__all__ = [
    "ARCHETYPES",
    "EVENT_TYPES",
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
