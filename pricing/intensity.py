"""The 24-72 h micro-event intensity index I(sku, market, hour).

Local events (POS sales, creator announcements, claims/reservations, listing or
packaging-promo changes) are turned into one hourly demand signal per SKU and
market. Every event type contributes with its own weight and decay half-life,
and a POS velocity-spike term adds how far the current sales rate sits above its
trailing baseline:

.. math::

    I(t) = \\sum_{\\text{type}} w_{\\text{type}}
              \\sum_{e:\\; 0 \\le b(t) - b(e) < W} g(e)\\, 2^{-(t - t_e)/h_{\\text{type}}}
           + w_{\\text{spike}} \\min\\Big(c,\\; \\max\\Big(0,
              \\frac{r(t) - \\bar r(t)}{\\sqrt{s^2(t) + \\bar r(t) + 1}}\\Big)\\Big)

- ``t`` is the *end* of the hour bucket being scored, ``t_e`` the event time and
  ``b(.)`` the bucket index, so an event counts in its own hour and the next
  ``W - 1`` hours (``W`` = ``window_hours``) and then drops to exactly zero.
- ``g(e)`` is an event's size: ``quantity`` for a sale, ``log1p(reach)`` for an
  announcement, ``count`` for a claim (1 when the column is absent), ``weight``
  for a listing change (1 when absent). Each event-type component is monotone
  in every event's size, and the total is monotone in it in the event's own hour
  (a larger sale also raises the spike baseline of the hours after it).
- ``r(t)`` is units sold in hour ``t``; ``r̄`` and ``s²`` are the mean and
  variance of the previous ``spike_baseline_hours`` hours. The denominator's
  ``r̄ + 1`` is the Poisson variance of the baseline plus one, so a first sale on
  a quiet SKU scores a bounded ``r`` rather than dividing by zero; ``c`` caps it.

The sum over events is computed per (key, type) as a truncated exponential
filter over hour buckets (``scipy.signal.lfilter`` along the time axis), after a
``bincount`` of the events; nothing loops over events in Python.

References:
    Hawkes, A. G. (1971). Spectra of some self-exciting and mutually exciting
    point processes. *Biometrika* 58(1), 83-90 (exponentially decaying event
    kernels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from pricing.events import EVENT_KINDS, INDEX_KINDS
from pricing.exceptions import InputError

__all__ = [
    "EVENT_TYPES",
    "IntensityParams",
    "build_intensity_index",
    "forecast_intensity",
    "market_rollup",
    "validate_events",
]

EVENT_TYPES: tuple[str, ...] = INDEX_KINDS
"""Event types the index understands, in the order of the component columns: the
kinds of :data:`pricing.events.EVENT_KINDS` with a weight and a half-life."""

_REQUIRED_COLUMNS: tuple[str, ...] = ("ts", "type", "sku", "market")
_MAX_ROWS_SHOWN = 10


def _default_weight(kind: str) -> float:
    weight = EVENT_KINDS[kind].weight
    if weight is None:
        raise InputError(f"event kind {kind!r} is not indexed; indexed kinds: {list(EVENT_TYPES)}")
    return weight


def _default_half_life(kind: str) -> float:
    half_life = EVENT_KINDS[kind].half_life_hours
    if half_life is None:
        raise InputError(f"event kind {kind!r} is not indexed; indexed kinds: {list(EVENT_TYPES)}")
    return half_life


@dataclass(frozen=True)
class IntensityParams:
    """Weights and half-lives of the intensity index (hours); immutable.

    Example:
        >>> IntensityParams(half_life_announcement=24.0).half_life("announcement")
        24.0
    """

    weight_sale: float = _default_weight("sale")
    """Weight of one unit sold (per unit, before decay)."""
    weight_announcement: float = _default_weight("announcement")
    """Weight of ``log1p(reach)`` of a creator announcement."""
    weight_claim: float = _default_weight("claim")
    """Weight of one claim / reservation."""
    weight_listing: float = _default_weight("listing")
    """Weight of a listing or packaging-promo change (times its ``weight``)."""
    half_life_sale: float = _default_half_life("sale")
    """Hours for a sale's contribution to halve."""
    half_life_announcement: float = _default_half_life("announcement")
    """Hours for an announcement's contribution to halve."""
    half_life_claim: float = _default_half_life("claim")
    """Hours for a claim's contribution to halve."""
    half_life_listing: float = _default_half_life("listing")
    """Hours for a listing change's contribution to halve."""
    weight_spike: float = 0.5
    """Weight of the POS velocity-spike z-score."""
    spike_baseline_hours: int = 24
    """Trailing hours that form the sales-rate baseline of the spike term."""
    spike_cap: float = 10.0
    """Largest spike z-score counted (one freak hour cannot dominate)."""

    def __post_init__(self) -> None:
        for name in (*_named("weight_"), "weight_spike"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in (*_named("half_life_"), "spike_cap"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a finite number > 0 (hours), got {value!r}")
        if not (
            isinstance(self.spike_baseline_hours, int) and 2 <= self.spike_baseline_hours <= 24 * 14
        ):
            raise InputError(
                "spike_baseline_hours must be an integer in [2, 336], "
                f"got {self.spike_baseline_hours!r}"
            )

    def weight(self, event_type: str) -> float:
        """Weight of ``event_type`` (one of :data:`EVENT_TYPES`): this object's
        ``weight_<type>`` field, else the event table's default."""
        return float(getattr(self, f"weight_{event_type}", _default_weight(event_type)))

    def half_life(self, event_type: str) -> float:
        """Half-life in hours of ``event_type`` (one of :data:`EVENT_TYPES`): this
        object's ``half_life_<type>`` field, else the event table's default."""
        return float(getattr(self, f"half_life_{event_type}", _default_half_life(event_type)))


_PARAM_FIELDS = frozenset(f.name for f in fields(IntensityParams))


def _named(prefix: str) -> tuple[str, ...]:
    """The per-kind fields of :class:`IntensityParams` that start with ``prefix``."""
    return tuple(f"{prefix}{kind}" for kind in EVENT_TYPES if f"{prefix}{kind}" in _PARAM_FIELDS)


def _rows(mask: np.ndarray, index: pd.Index) -> str:
    labels = list(index[np.asarray(mask)])
    shown = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in labels[:_MAX_ROWS_SHOWN])
    more = f" (first {_MAX_ROWS_SHOWN} of {len(labels)})" if len(labels) > _MAX_ROWS_SHOWN else ""
    return f"[{shown}]{more}"


def validate_events(events: pd.DataFrame) -> pd.DataFrame:
    """Check an events table and return it unchanged; raise on the first problem.

    Required columns: ``ts`` (zoned timestamps), ``type`` (one of
    :data:`EVENT_TYPES`), ``sku``, ``market`` (non-empty); per type the size
    column: ``quantity`` for ``sale`` (required, >= 0; ``unit_price`` if present
    must be > 0), ``reach`` for ``announcement`` (required, >= 0), ``count`` for
    ``claim`` and ``weight`` for ``listing`` (optional, >= 0). Size values must be
    finite for the rows of their type; other types' rows may leave them empty.

    Args:
        events: one row per event.

    Returns:
        ``events`` itself (nothing is dropped or coerced).

    Raises:
        InputError: naming the column, the offending row labels and what is allowed.

    Example:
        >>> ev = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01 10:00"], utc=True),
        ...     "type": ["claim"], "sku": ["A"], "market": ["nyc"]})
        >>> validate_events(ev) is ev
        True
    """
    if not isinstance(events, pd.DataFrame):
        raise InputError(f"events must be a pandas DataFrame, got {type(events).__name__}")
    missing = [c for c in _REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        raise InputError(
            f"events is missing required column(s) {missing}; got columns {list(events.columns)}, "
            f"required {list(_REQUIRED_COLUMNS)}"
        )
    idx = events.index
    ts = events["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise InputError(
            f"column 'ts' must hold zoned timestamps (tz-aware datetime64), got dtype {ts.dtype}; "
            "localise it first, e.g. df['ts'] = pd.to_datetime(df['ts'], utc=True)"
        )
    bad = ts.isna().to_numpy()
    if bad.any():
        raise InputError(f"column 'ts' has missing timestamps in rows {_rows(bad, idx)}")
    types = events["type"]
    bad = ~types.isin(EVENT_TYPES).to_numpy()
    if bad.any():
        got = sorted({str(x) for x in types[bad].unique()[:_MAX_ROWS_SHOWN]})
        raise InputError(
            f"column 'type' has unknown value(s) {got} in rows {_rows(bad, idx)}; "
            f"allowed {list(EVENT_TYPES)}"
        )
    for col in ("sku", "market"):
        values = events[col]
        bad = (values.isna() | (values.astype(str).str.len() == 0)).to_numpy()
        if bad.any():
            raise InputError(f"column {col!r} is empty or missing in rows {_rows(bad, idx)}")
    type_arr = types.to_numpy()
    for etype in EVENT_TYPES:
        col, required = EVENT_KINDS[etype].size_field, EVENT_KINDS[etype].size_required
        of_type = type_arr == etype
        if not of_type.any():
            continue
        if col not in events.columns:
            if required:
                raise InputError(
                    f"events of type {etype!r} need column {col!r}, which is missing "
                    f"(rows {_rows(of_type, idx)}); got columns {list(events.columns)}"
                )
            continue
        _check_nonnegative_finite(events[col], of_type, col, etype, idx)
    if "unit_price" in events.columns:
        sale = type_arr == "sale"
        price = pd.to_numeric(events["unit_price"], errors="coerce").to_numpy(dtype=float)
        present = sale & ~events["unit_price"].isna().to_numpy()
        bad = present & ~(np.isfinite(price) & (price > 0))
        if bad.any():
            raise InputError(
                f"column 'unit_price' must be a finite price > 0 on sale rows, got "
                f"{price[bad][:_MAX_ROWS_SHOWN].tolist()} in rows {_rows(bad, idx)}"
            )
    return events


def _check_nonnegative_finite(
    column: pd.Series, of_type: np.ndarray, col: str, etype: str, idx: pd.Index
) -> None:
    numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    not_number = of_type & np.isnan(numeric) & ~column.isna().to_numpy()
    if not_number.any():
        raise InputError(
            f"column {col!r} must be numeric on {etype!r} rows, got non-numbers in rows "
            f"{_rows(not_number, idx)}"
        )
    bad = of_type & ~np.isfinite(numeric)
    if bad.any():
        raise InputError(
            f"column {col!r} has NaN/inf/missing values on {etype!r} rows {_rows(bad, idx)}; "
            "allowed: finite numbers >= 0"
        )
    bad = of_type & (numeric < 0)
    if bad.any():
        raise InputError(
            f"column {col!r} has negative values {numeric[bad][:_MAX_ROWS_SHOWN].tolist()} on "
            f"{etype!r} rows {_rows(bad, idx)}; allowed: finite numbers >= 0"
        )


def _event_sizes(events: pd.DataFrame, types: np.ndarray) -> np.ndarray:
    """g(e) per event from its kind's size field (:data:`pricing.events.EVENT_KINDS`):
    quantity, log1p(reach), count, weight (the kind's default when the column is absent)."""
    size = np.zeros(len(events))
    for etype in EVENT_TYPES:
        kind = EVENT_KINDS[etype]
        mask = types == etype
        if not mask.any():
            continue
        if kind.size_field not in events.columns:
            size[mask] = kind.size_default
            continue
        values = pd.to_numeric(events[kind.size_field], errors="coerce").to_numpy(dtype=float)
        size[mask] = np.log1p(values[mask]) if kind.log_size else values[mask]
    return size


def _truncated_decay(x: np.ndarray, ratio: float, window: int) -> np.ndarray:
    """y[t] = sum_{j=0}^{window-1} ratio**j x[t-j] along the last axis (exact IIR form)."""
    b = np.zeros(window + 1)
    b[0] = 1.0
    b[window] = -(ratio**window)
    return lfilter(b, [1.0, -ratio], x, axis=-1)


def _trailing_moments(rate: np.ndarray, hours: int, origin: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the previous ``hours`` buckets (current one excluded).

    Buckets before ``origin`` (before the first event in the table) are unobserved,
    not zero sales, so they never enter the baseline.
    """
    kpad = np.zeros((rate.shape[0], 1))
    c1 = np.concatenate([kpad, np.cumsum(rate, axis=1)], axis=1)
    c2 = np.concatenate([kpad, np.cumsum(rate * rate, axis=1)], axis=1)
    t = np.arange(rate.shape[1])
    lo = np.minimum(np.maximum(t - hours, origin), t)
    n = (t - lo).astype(float)
    s1 = c1[:, t] - c1[:, lo]
    s2 = c2[:, t] - c2[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s1 / np.maximum(n, 1), 0.0)
        var = np.where(n > 1, np.maximum(s2 / np.maximum(n, 1) - mean * mean, 0.0), 0.0)
    return mean, var


def _to_utc_hour(value: Any, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise InputError(f"{name} must be a zoned timestamp, got naive {value!r}")
    return stamp.tz_convert("UTC")


def build_intensity_index(
    events: pd.DataFrame,
    *,
    window_hours: int = 72,
    params: IntensityParams | None = None,
    start: Any = None,
    end: Any = None,
    freq: str = "h",
) -> pd.DataFrame:
    """Hourly micro-event intensity I(sku, market, hour) from an events table.

    See the module docstring for the formula. Events before ``start`` still count
    in the first hours (up to ``window_hours`` back); events after ``end`` do not.

    Args:
        events: table accepted by :func:`validate_events`.
        window_hours: rolling window W in hours, 24 to 72 (an event stops counting
            W hours after its bucket).
        params: weights and half-lives; ``IntensityParams()`` when ``None``.
        start: first bucket (zoned timestamp); the earliest event's bucket when ``None``.
        end: last bucket (zoned timestamp, inclusive); the latest event's when ``None``.
        freq: bucket length as a pandas frequency (``"h"``, ``"30min"``); half-lives
            and windows stay in hours.

    Returns:
        Long table with columns ``sku``, ``market``, ``hour`` (bucket start, UTC),
        ``intensity`` and the components ``sale``, ``announcement``, ``claim``,
        ``listing``, ``spike`` (each already weighted; they add up to
        ``intensity``), one row per (sku, market) seen in range times bucket,
        sorted by sku, market, hour.

    Raises:
        InputError: bad events (see :func:`validate_events`) or arguments.

    Example:
        >>> ev = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01 10:20"], utc=True),
        ...     "type": ["claim"], "sku": ["A"], "market": ["nyc"], "count": [4]})
        >>> idx = build_intensity_index(ev, end=pd.Timestamp("2026-01-01 11:00", tz="UTC"))
        >>> idx["intensity"].round(3).tolist()
        [0.962, 0.908]
    """
    params = IntensityParams() if params is None else params
    if not isinstance(params, IntensityParams):
        raise InputError(f"params must be an IntensityParams, got {type(params).__name__}")
    if not (isinstance(window_hours, int | np.integer) and 24 <= int(window_hours) <= 72):
        raise InputError(f"window_hours must be an integer in [24, 72], got {window_hours!r}")
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"freq must be a fixed pandas frequency like 'h' or '30min', got {freq!r}"
        ) from exc
    step_hours = step / pd.Timedelta(hours=1)
    if not (step_hours > 0 and (window_hours / step_hours).is_integer()):
        raise InputError(
            f"freq must divide window_hours={window_hours} into whole buckets, got {freq!r}"
        )
    validate_events(events)
    columns = ["sku", "market", "hour", "intensity", *EVENT_TYPES, "spike"]
    ts_utc = events["ts"].dt.tz_convert("UTC")
    if len(events) == 0 and (start is None or end is None):
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    first = _to_utc_hour(start, "start") if start is not None else ts_utc.min()
    last = _to_utc_hour(end, "end") if end is not None else ts_utc.max()
    first, last = first.floor(step), last.floor(step)
    if last < first:
        raise InputError(f"end must not be before start, got start={first} end={last}")
    window = int(round(window_hours / step_hours))
    n_steps = int((last - first) / step) + 1

    # Bucket position of each event, with the lead-in window before `start`.
    pos = ((ts_utc - first) / step).to_numpy(dtype=float)
    keep = (pos >= -window) & (pos < n_steps)
    lead = window
    length = n_steps + lead
    bucket = np.floor(pos[keep]).astype(np.int64) + lead
    # Hours from each event to the end of its own bucket: decay inside the bucket.
    to_end = (bucket - lead + 1 - pos[keep]) * step_hours

    sku_codes, sku_uniques = pd.factorize(events["sku"].to_numpy()[keep], sort=True)
    mkt_codes, mkt_uniques = pd.factorize(events["market"].to_numpy()[keep], sort=True)
    pair = sku_codes.astype(np.int64) * max(len(mkt_uniques), 1) + mkt_codes
    # Keys are the (sku, market) pairs that have an event inside [start, end].
    in_range = bucket >= lead
    key_pairs = np.unique(pair[in_range])
    n_keys = len(key_pairs)
    key_of_event = np.minimum(np.searchsorted(key_pairs, pair), max(n_keys - 1, 0))
    known = key_pairs[key_of_event] == pair if n_keys else np.zeros(len(pair), dtype=bool)
    types = events["type"].to_numpy()[keep]
    size = _event_sizes(events.loc[keep] if not keep.all() else events, types)

    components: dict[str, np.ndarray] = {}
    total = np.zeros((n_keys, n_steps))
    sale_units = np.zeros((n_keys, length))
    for etype in EVENT_TYPES:
        mask = (types == etype) & known
        ratio = 2.0 ** (-step_hours / params.half_life(etype))
        flat = key_of_event[mask] * length + bucket[mask]
        weighted = size[mask] * np.exp2(-to_end[mask] / params.half_life(etype))
        grid = np.bincount(flat, weights=weighted, minlength=n_keys * length)
        grid = grid.reshape(n_keys, length)
        comp = params.weight(etype) * _truncated_decay(grid, ratio, window)[:, lead:]
        components[etype] = comp
        total += comp
        if etype == "sale":
            sale_units = np.bincount(flat, weights=size[mask], minlength=n_keys * length)
            sale_units = sale_units.reshape(n_keys, length)
    baseline = max(1, int(round(params.spike_baseline_hours / step_hours)))
    origin = int(bucket.min()) if len(bucket) else lead
    mean, var = _trailing_moments(sale_units, baseline, origin)
    z = (sale_units - mean) / np.sqrt(var + mean + 1.0)
    spike = params.weight_spike * np.clip(z, 0.0, params.spike_cap)[:, lead:]
    components["spike"] = spike
    total += spike

    hours = pd.date_range(first, periods=n_steps, freq=step)
    sku_of_key = sku_uniques[key_pairs // max(len(mkt_uniques), 1)] if n_keys else np.array([])
    mkt_of_key = mkt_uniques[key_pairs % max(len(mkt_uniques), 1)] if n_keys else np.array([])
    out = pd.DataFrame(
        {
            "sku": np.repeat(sku_of_key, n_steps),
            "market": np.repeat(mkt_of_key, n_steps),
            "hour": hours.take(np.tile(np.arange(n_steps), n_keys)),
            "intensity": total.ravel(),
            **{name: comp.ravel() for name, comp in components.items()},
        },
        columns=columns,
    )
    return out


def market_rollup(index: pd.DataFrame) -> pd.DataFrame:
    """Per-market roll-up of an intensity index: totals and means over SKUs.

    Args:
        index: output of :func:`build_intensity_index`.

    Returns:
        One row per (market, hour): ``intensity`` (sum over SKUs),
        ``intensity_mean``, ``intensity_max``, ``n_skus`` and the summed
        components, sorted by market and hour.

    Raises:
        InputError: if a required column is missing.
    """
    needed = ["market", "hour", "intensity"]
    missing = [c for c in needed if c not in index.columns]
    if missing:
        raise InputError(
            f"index is missing column(s) {missing}; got {list(index.columns)}, "
            "expected the output of build_intensity_index"
        )
    parts = [c for c in (*EVENT_TYPES, "spike") if c in index.columns]
    grouped = index.groupby(["market", "hour"], sort=True, observed=True)
    out = grouped[["intensity", *parts]].sum()
    out["intensity_mean"] = grouped["intensity"].mean()
    out["intensity_max"] = grouped["intensity"].max()
    out["n_skus"] = grouped["intensity"].size()
    out = out.reset_index()
    return out[["market", "hour", "intensity", "intensity_mean", "intensity_max", "n_skus", *parts]]


def forecast_intensity(
    current: float | Sequence[float] | np.ndarray,
    hours_ahead: int | Sequence[float] | np.ndarray,
    half_life: float | Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Project today's intensity forward, decaying with its half-life.

    .. math:: \\hat I(t + h) = I(t)\\, 2^{-h / h_{1/2}}

    The no-new-events forecast the policy prices against; re-fits between
    windows replace it with the observed index.

    Args:
        current: intensity now, scalar or ``[S]``.
        hours_ahead: number of periods ``T`` (offsets ``0..T-1``) or explicit
            offsets in hours ``[T]``.
        half_life: hours, scalar or ``[S]`` (> 0).

    Returns:
        ``[S, T]`` array (``S = 1`` for a scalar ``current``).

    Raises:
        InputError: on negative/NaN intensity, non-positive half-life or bad offsets.

    Example:
        >>> forecast_intensity([2.0], 3, 1.0).tolist()
        [[2.0, 1.0, 0.5]]
    """
    cur = np.atleast_1d(np.asarray(current, dtype=float))
    if cur.ndim != 1 or not np.all(np.isfinite(cur)) or np.any(cur < 0):
        raise InputError(f"current must be finite intensities >= 0 of shape [S], got {cur!r}")
    if isinstance(hours_ahead, int | np.integer):
        if hours_ahead < 1:
            raise InputError(f"hours_ahead must be >= 1 periods, got {hours_ahead}")
        offsets = np.arange(int(hours_ahead), dtype=float)
    else:
        offsets = np.asarray(hours_ahead, dtype=float)
        if offsets.ndim != 1 or not np.all(np.isfinite(offsets)) or np.any(offsets < 0):
            raise InputError(
                f"hours_ahead offsets must be finite hours >= 0 of shape [T], got {offsets!r}"
            )
    half = np.atleast_1d(np.asarray(half_life, dtype=float))
    if not np.all(np.isfinite(half)) or np.any(half <= 0):
        raise InputError(f"half_life must be finite hours > 0, got {half!r}")
    if half.size not in (1, cur.size):
        raise InputError(
            f"half_life must be a scalar or shape [{cur.size}], got shape {half.shape}"
        )
    return cur[:, None] * np.exp2(-offsets[None, :] / half.reshape(-1, 1))
