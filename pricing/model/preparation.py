"""The demand model's input from a pandas panel: checked, numbered by codes, laid out.

Strict at the edge: a missing column, a bad value (naming the column and rows) or a
duplicate (key, period) row is an :class:`~pricing.exceptions.InputError`. The checked
columns become :class:`~pricing.model.cells._Cells` (each cell's row from the key
columns' codes, its period position from a sort only when the panel is not already in
(row, period) order) and :func:`~pricing.model.cells._prepare_cells` lays them out, as it
does for :func:`~pricing.model.fit_elasticity_arrays`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model.cells import _Cells, _prepare_cells, _Prepared, _profile_wanted
from pricing.model.result import ElasticityFit

__all__ = ["_Prepared", "_prepare"]

_MAX_ROWS_SHOWN = 10


def _rows(mask: np.ndarray, index: pd.Index) -> str:
    labels = list(index[np.asarray(mask)])
    shown = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in labels[:_MAX_ROWS_SHOWN])
    more = f" (first {_MAX_ROWS_SHOWN} of {len(labels)})" if len(labels) > _MAX_ROWS_SHOWN else ""
    return f"[{shown}]{more}"


def _numeric(
    panel: pd.DataFrame, col: str, *, positive: bool = False, nonneg: bool = False
) -> np.ndarray:
    series = panel[col]
    if series.dtype == bool:
        return series.to_numpy(dtype=float)
    if series.dtype == np.float64:  # already numbers: the column's own memory, no copy
        values = series.to_numpy()
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(
            f"column {col!r} must be finite numbers, got NaN/inf/non-numeric values in rows "
            f"{_rows(bad, panel.index)}"
        )
    if positive and (values <= 0).any():
        bad = values <= 0
        raise InputError(
            f"column {col!r} must be > 0, got {values[bad][:_MAX_ROWS_SHOWN].tolist()} in rows "
            f"{_rows(bad, panel.index)}"
        )
    if nonneg and (values < 0).any():
        bad = values < 0
        raise InputError(
            f"column {col!r} must be >= 0, got {values[bad][:_MAX_ROWS_SHOWN].tolist()} in rows "
            f"{_rows(bad, panel.index)}"
        )
    return values


def _prepare(
    panel: pd.DataFrame,
    *,
    sku: str,
    market: str | None,
    period: str,
    price: str,
    quantity: str,
    intensity: str | None,
    covariates: Sequence[str],
    sold_out: str | None,
    priors: Mapping[Any, Any] | None,
    categories: str | Mapping[Any, Any] | None,
    pooling: bool,
    init: ElasticityFit | None,
    daily_profile: bool | None,
    max_iter: int,
    level_priors: Mapping[Any, tuple[float, float, float]] | None = None,
    per_row_covariates: bool = False,
) -> _Prepared:
    if not isinstance(panel, pd.DataFrame):
        raise InputError(f"panel must be a pandas DataFrame, got {type(panel).__name__}")
    covariates = tuple(covariates)
    wanted = [sku, period, price, quantity, *covariates]
    wanted += [c for c in (market, intensity, sold_out) if c is not None]
    if isinstance(categories, str):
        wanted.append(categories)
    missing = [c for c in wanted if c not in panel.columns]
    if missing:
        raise InputError(f"panel is missing column(s) {missing}; got columns {list(panel.columns)}")
    if len(panel) == 0:
        raise InputError("panel has no rows; need at least one (sku, period) observation")
    idx = panel.index
    for col in [sku, period] + ([market] if market else []):
        bad = panel[col].isna().to_numpy()
        if bad.any():
            raise InputError(f"column {col!r} has missing values in rows {_rows(bad, idx)}")
    price_v = _numeric(panel, price, positive=True)
    qty = _numeric(panel, quantity, nonneg=True)
    inten = _numeric(panel, intensity) if intensity else None
    cov = tuple(_numeric(panel, c) for c in covariates)
    if sold_out is not None:
        so = panel[sold_out]
        if so.dtype != bool:
            vals = pd.to_numeric(so, errors="coerce")
            bad = ~vals.isin([0, 1]).to_numpy()
            if bad.any():
                raise InputError(
                    f"column {sold_out!r} must be boolean (or 0/1), got non-boolean values in "
                    f"rows {_rows(bad, idx)}"
                )
        cens = so.to_numpy().astype(bool)
    else:
        cens = np.zeros(len(panel), bool)

    key_cols = [sku] + ([market] if market else [])
    sku_codes, n_skus, runs = _key_codes(panel[sku])
    if market:
        runs = None
        mkt_codes, mkt_uniques = pd.factorize(panel[market], sort=True)
        pair = sku_codes * len(mkt_uniques) + mkt_codes
        row_pairs, row_of_obs = np.unique(pair, return_inverse=True)
    else:  # the codes already number the SKUs 0..n-1 in sorted order
        row_of_obs = sku_codes
        row_pairs = np.arange(n_skus, dtype=np.int64)
    n_rows = len(row_pairs)
    per = panel[period]
    is_time = pd.api.types.is_datetime64_any_dtype(per.dtype)
    if is_time:  # hours since the first period, from the clock ticks (no Timedelta objects)
        unit = per.dt.unit
        ticks = per.to_numpy(dtype=f"datetime64[{unit}]").view(np.int64)
        per_num = (ticks - ticks.min()) / (np.timedelta64(1, "h") / np.timedelta64(1, unit))
        del ticks
    else:
        per_num = _numeric(panel, period)
    if runs is not None:  # rows numbered by their runs: in order when periods rise in each
        rising = np.diff(per_num) > 0
        rising[runs[1:] - 1] = True  # a new row starts: its first period may be any
        in_order = bool(rising.all())
        del rising
        n_obs = np.diff(np.append(runs, len(panel)))
    else:
        d_row = np.diff(row_of_obs)
        in_order = bool(np.all(d_row >= 0) and np.all((np.diff(per_num) > 0) | (d_row > 0)))
        del d_row
        n_obs = np.bincount(row_of_obs, minlength=n_rows)
    # Sorted by (row, period) with the same number of periods in every row (the usual
    # balanced panel): the grid is a reshape of the columns, no sort, scatter or copy.
    balanced = in_order and bool(np.all(n_obs == n_obs[0]))
    order = None if in_order else np.lexsort((per_num, row_of_obs))
    if order is not None:  # in order means strictly increasing periods: no duplicates
        sorted_rows = row_of_obs[order]
        same = (np.diff(sorted_rows) == 0) & (np.diff(per_num[order]) == 0)
        if same.any():
            dup = np.zeros(len(panel), dtype=bool)
            dup[order[1:][same]] = True
            dup[order[:-1][same]] = True
            raise InputError(
                f"panel has more than one row per ({', '.join(key_cols + [period])}) in rows "
                f"{_rows(dup, idx)}; aggregate them first (sum quantity, mean price)"
            )
    else:
        sorted_rows = row_of_obs
    if balanced:
        n_t = int(n_obs[0])
        pos = None
    else:
        starts = np.searchsorted(sorted_rows, np.arange(n_rows))
        pos = np.arange(len(panel)) - starts[sorted_rows]
        if order is not None:
            pos_sorted = pos
            pos = np.empty_like(pos_sorted)
            pos[order] = pos_sorted
        n_t = int(pos.max()) + 1

    # Every row observed at the first row's periods (a balanced panel in order, the usual
    # case): the distinct periods and their hours of day are the first row's.
    shared_periods = (
        is_time
        and balanced
        and bool(
            np.all(np.diff(per_num[:n_t]) > 0)
            and np.all(per_num.reshape(n_rows, n_t) == per_num[:n_t])
        )
    )
    period_hours = _period_hours(per_num, shared_periods, n_t) if is_time else None
    profile = _profile_wanted(
        daily_profile, is_time, period_hours, f"column {period!r}, got dtype {per.dtype}"
    )
    hour_obs = hour_shared = None
    if profile and is_time and not shared_periods:
        hour_obs = per.dt.hour.to_numpy()
    if profile and shared_periods:
        hour_shared = per.iloc[:n_t].dt.hour.to_numpy()
    first_obs = np.zeros(n_rows, dtype=np.int64)
    if order is None:  # sorted: each row's first observation is where its run starts
        first_obs = np.searchsorted(row_of_obs, np.arange(n_rows))
    else:
        first_obs[row_of_obs[order][::-1]] = order[::-1]
    sku_of_row = np.asarray(panel[sku].iloc[first_obs].to_numpy(), dtype=object)
    market_of_row = (
        np.asarray(panel[market].iloc[first_obs].to_numpy(), dtype=object) if market else None
    )
    if categories is None:
        category_of_row = np.full(n_rows, None, dtype=object)
    elif isinstance(categories, str):
        category_of_row = np.asarray(panel[categories].iloc[first_obs].to_numpy(), dtype=object)
    else:
        category_of_row = np.array([categories.get(s) for s in sku_of_row], dtype=object)
    cells = _Cells(
        price=price_v,
        quantity=qty,
        intensity=inten,
        covariates=cov,
        censored=cens,
        row_of_obs=row_of_obs,
        n_rows=n_rows,
        n_t=n_t,
        balanced=balanced,
        pos=pos,
        order=order,
        profile=profile,
        hour_shared=hour_shared,
        hour_of_obs=hour_obs,
        period_hours=period_hours,
        sku_of_row=sku_of_row,
        market_of_row=market_of_row,
        category_of_row=category_of_row,
        n_obs=n_obs,
    )
    return _prepare_cells(
        cells,
        n_row_cov=len(covariates) if per_row_covariates else 0,
        covariate_names=covariates,
        priors=priors,
        pooling=pooling,
        init=init,
        max_iter=max_iter,
        level_priors=level_priors,
    )


def _period_hours(per_num: np.ndarray, shared_periods: bool, n_t: int) -> float | None:
    """Median step between the panel's distinct periods, in hours (``None``: one period).

    When every row has the first row's periods (``shared_periods``) the distinct periods
    are that row's: no sort of every cell (``np.unique`` of 1.4 M cells was a third of
    preparing a 20,000-SKU panel).
    """
    uniq = per_num[:n_t] if shared_periods else np.unique(per_num)
    return float(np.median(np.diff(uniq))) if len(uniq) > 1 else None


def _key_codes(column: pd.Series) -> tuple[np.ndarray, int, np.ndarray | None]:
    """``pd.factorize(column, sort=True)``'s codes (int64), the number of distinct keys, and
    where each key's run starts when the column is sorted (``None`` otherwise).

    A panel sorted by key (the usual layout) is numbered from its runs: one comparison of
    neighbours instead of hashing every cell (hashing the SKU strings was an eighth of
    preparing a 100,000-SKU panel). Anything else (unsorted, or keys that do not order,
    such as mixed types) is factorized.
    """
    values = column.array
    if len(values) > 1:
        try:
            starts = np.flatnonzero(np.asarray(values[1:] != values[:-1], dtype=bool)) + 1
            starts = np.concatenate(([0], starts))
            labels = column.iloc[starts].to_numpy()
            increasing = bool(np.all(labels[1:] > labels[:-1]))
        except TypeError:
            increasing = False
        if increasing:
            runs = np.diff(np.append(starts, len(values)))
            return np.repeat(np.arange(len(starts), dtype=np.int64), runs), len(starts), starts
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.int64), len(uniques), None
