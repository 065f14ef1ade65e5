"""The re-fit's intensity regressor: the exogenous part of the micro-event index.

Intensity enters the fit as the index's exogenous part ``E`` (announcements, claims,
listings: the event table's stimuli), centred per (SKU, market), ``E − Ē``. The sales
and velocity-spike parts count the very sales the model explains: used as a regressor
they absorb the price effect and pull elasticities toward zero, so they feed the
analysts' index, not the fit. Centred, ``β`` is the elasticity at the pair's usual
intensity (what the parameter checks judge). The surfaces use ``E`` decayed from its
value now with its half-life, centred by the same ``Ē``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pricing.events import EVENT_KINDS, INDEX_KINDS, STIMULUS_KINDS
from service.panel import attach_intensity

__all__ = ["Regressor", "current_intensity", "exogenous_index", "intensity_regressor"]


@dataclass
class Regressor:
    """The panel with its centred ``intensity`` column, and what the solve stage needs."""

    panel: pd.DataFrame
    current: dict[tuple[str, str], float]
    """Per pair: the exogenous index now, where each window's path starts."""
    mean: dict[tuple[str, str], float]
    """Per pair: the index's mean over the panel (the centre ``Ē``)."""
    half_life_h: float
    """Half-life of the forecast path (the announcement's, in hours)."""
    detail: dict[str, Any]
    """Facts for the stage record: ``index_rows``, ``mean_intensity``."""


def intensity_regressor(
    events: pd.DataFrame, panel: pd.DataFrame, *, window_hours: int, end: pd.Timestamp
) -> Regressor:
    """Build the index over the panel's hours and join its centred exogenous part.

    Args:
        events: the retained events table (:func:`service.codec.events_frame`).
        panel: the hourly panel (:func:`service.panel.build_panel`).
        window_hours: the index's look-back (``defaults.intensity_window_hours``).
        end: start of the hour under way; the index stops an hour before it.
    """
    from pricing.intensity import EVENT_TYPES, IntensityParams, build_intensity_index

    signal = events[events["type"].isin(EVENT_TYPES)]
    signal = signal[signal["sku"].isin(set(panel["sku"]))]
    params = IntensityParams()
    index = (
        build_intensity_index(
            _intensity_input(signal),
            window_hours=window_hours,
            params=params,
            start=panel["period"].min(),
            end=end - pd.Timedelta(hours=1),
        )
        if not signal.empty
        else None
    )
    exogenous = exogenous_index(index)
    panel = attach_intensity(panel, exogenous)
    detail = {
        "index_rows": 0 if index is None else len(index),
        "mean_intensity": round(float(panel["intensity"].mean()), 4),
    }
    pair_cols = [panel["sku"], panel["market"]]
    centre = panel.groupby(pair_cols)["intensity"].mean()
    panel["intensity"] = panel["intensity"] - panel.groupby(pair_cols)["intensity"].transform(
        "mean"
    )
    return Regressor(
        panel=panel,
        current=current_intensity(exogenous),
        mean={(k[0], k[1]): float(v) for k, v in centre.items()},
        half_life_h=params.half_life("announcement"),
        detail=detail,
    )


def _intensity_input(signal: pd.DataFrame) -> pd.DataFrame:
    """The decoded events as the index reads them (:data:`pricing.events.EVENT_KINDS`):
    each indexed kind's size field kept on its own rows only, and a stimulus whose size
    is missing given its kind's default size (a sale keeps no default: it has units)."""
    out = signal.copy()
    for column in dict.fromkeys(EVENT_KINDS[k].size_field for k in INDEX_KINDS):
        kinds = [k for k in INDEX_KINDS if EVENT_KINDS[k].size_field == column]
        out[column] = out[column].where(out["type"].isin(kinds))
        for kind in kinds:
            if EVENT_KINDS[kind].stimulus:
                missing = out["type"].eq(kind) & out[column].isna()
                out.loc[missing, column] = EVENT_KINDS[kind].size_default
    return out.reset_index(drop=True)


def exogenous_index(index: pd.DataFrame | None) -> pd.DataFrame | None:
    """The index with ``intensity`` replaced by the sum of its stimulus components
    (:data:`pricing.events.STIMULUS_KINDS`); the rest (sales, velocity spike) move with
    the demand being priced."""
    if index is None or index.empty:
        return index
    comps = [c for c in STIMULUS_KINDS if c in index.columns]
    exo = index[comps].sum(axis=1) if comps else pd.Series(0.0, index=index.index)
    return index.assign(intensity=exo)


def current_intensity(exogenous: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """Per pair: the exogenous index now (its last hour), where the window's path starts.

    Args:
        exogenous: output of :func:`exogenous_index` (the fit's regressor), or ``None``.
    """
    if exogenous is None or exogenous.empty:
        return {}
    last = exogenous.sort_values("hour").groupby(["sku", "market"], sort=False).tail(1)
    return {
        (s, m): float(v) if math.isfinite(v) and v >= 0 else 0.0
        for s, m, v in zip(last["sku"], last["market"], last["intensity"], strict=True)
    }
