"""The fit from arrays: :func:`fit_elasticity_arrays` for callers that keep ``[S, T]`` grids.

A service that re-fits every hour holds its panel as grids (one row per SKU(-market), one
column per period) and appends a column at a time; building a long pandas frame with a
string key per cell only for :func:`~pricing.model.fit_elasticity` to factorize it again
costs more than the solve on small re-fits. This entry point takes the grids as they are,
without pandas: the rows are the caller's rows (no key hashing or sort per cell), the
cells are checked as whole arrays and handed to the same layout step as the DataFrame
path (:func:`~pricing.model.cells._prepare_cells`), so the fit is the same as from the
equivalent DataFrame (a test checks it).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pricing.exceptions import InputError
from pricing.model.cells import _Cells, _prepare_cells, _profile_wanted
from pricing.model.fit import _check_options, _solve
from pricing.model.result import ElasticityFit

__all__ = ["fit_elasticity_arrays"]

_TAKEN = ("sku", "market", "period", "price", "quantity", "intensity", "sold_out")
_SHOWN = 10


def fit_elasticity_arrays(
    quantity: np.ndarray,
    price: np.ndarray,
    *,
    skus: Sequence[Hashable],
    markets: Sequence[Hashable] | None = None,
    periods: Any = None,
    observed: np.ndarray | None = None,
    intensity: np.ndarray | None = None,
    covariates: Mapping[str, np.ndarray] | None = None,
    sold_out: np.ndarray | None = None,
    categories: Sequence[Hashable] | None = None,
    priors: Mapping[Any, Any] | None = None,
    init: ElasticityFit | None = None,
    pooling: bool = True,
    daily_profile: bool | None = None,
    max_iter: int = 50,
    jit: bool = True,
    level_priors: Mapping[Any, tuple[float, float, float]] | None = None,
    per_row_covariates: bool = True,
) -> ElasticityFit:
    """Fit the demand model on ``[S, T]`` grids (the same model as :func:`fit_elasticity`).

    Args:
        quantity: ``[S, T]`` units sold per row and period (>= 0).
        price: ``[S, T]`` price charged (> 0 where observed).
        skus: ``[S]`` SKU of each row; with ``markets``, each (sku, market) pair once.
        markets: ``[S]`` market of each row, or ``None`` (keys ``(sku, None)``).
        periods: ``[T]`` period labels shared by every row, strictly increasing: a
            ``datetime64`` array or a pandas ``DatetimeIndex`` (hourly drops: the daily
            profile is fitted by default; hours of day are the index's local hours) or
            numbers; ``None`` is ``0..T-1``.
        observed: ``[S, T]`` bool, ``False`` for cells with no observation (left out,
            whatever the grids hold there); ``None``: every cell.
        intensity: ``[S, T]`` micro-event index (adds the lift and shift terms).
        covariates: ``{name: [S, T]}`` covariate effects (promotion, display, ...).
        sold_out: ``[S, T]`` bool, the period ended sold out (censored).
        categories: ``[S]`` category of each row (priors and empirical-Bayes groups).
        priors, init, pooling, daily_profile, max_iter, jit, level_priors,
            per_row_covariates: as for :func:`fit_elasticity`.

    Returns:
        :class:`~pricing.model.ElasticityFit`, rows in the order of ``skus`` (and
        ``markets``).

    Raises:
        InputError: grids whose shapes disagree, bad values (naming the grid and cells),
            duplicate keys, a row with no observed cell, periods that are not strictly
            increasing, or inconsistent options.

    Example:
        >>> fit = fit_elasticity_arrays(units, prices, skus=names, intensity=index)  # doctest: +SKIP
    """
    _check_options(pooling=pooling, priors=priors, max_iter=max_iter)
    qty_grid = np.asarray(quantity)
    if qty_grid.ndim != 2 or qty_grid.size == 0:
        raise InputError(f"quantity must be a non-empty [S, T] grid, got shape {qty_grid.shape}")
    s, t = qty_grid.shape
    names = tuple(covariates or {})
    for name in names:
        if name in _TAKEN:
            raise InputError(f"covariate name {name!r} is taken by a panel column; rename it")
    keep = None if observed is None else _grid(observed, "observed", s, t).astype(bool)
    if keep is not None and keep.all():
        keep = None
    n_obs = np.full(s, t, np.int64) if keep is None else keep.sum(axis=1)
    sku_of_row, market_of_row = _key_rows(skus, markets, s)
    if (n_obs == 0).any():
        empty = [sku_of_row[i] for i in np.flatnonzero(n_obs == 0)[:_SHOWN]]
        raise InputError(f"every row needs at least one observed cell; none in rows {empty}")

    def cells_of(values: Any, name: str, **rule: bool) -> np.ndarray:
        grid = _grid(values, name, s, t)
        flat = grid.reshape(-1) if keep is None else grid[keep]
        return _checked(np.asarray(flat, dtype=np.float64), name, **rule)

    qty = cells_of(qty_grid, "quantity", nonneg=True)
    price_v = cells_of(price, "price", positive=True)
    inten = None if intensity is None else cells_of(intensity, "intensity")
    cov = tuple(cells_of((covariates or {})[n], f"covariates[{n!r}]") for n in names)
    if sold_out is None:
        cens = np.zeros(len(qty), bool)
    else:
        so = _grid(sold_out, "sold_out", s, t)
        so = so.reshape(-1) if keep is None else so[keep]
        if so.dtype != bool and not np.isin(so, (0, 1)).all():
            raise InputError("sold_out must be boolean (or 0/1), got other values")
        cens = so.astype(bool)

    is_time, per_num, hour = _period_clock(periods, t)
    period_hours = float(np.median(np.diff(per_num))) if is_time and t > 1 else None
    profile = _profile_wanted(daily_profile, is_time, period_hours, "periods")
    # Each row's observed cells, left-packed in period order (the DataFrame path's layout).
    balanced = bool(np.all(n_obs == n_obs[0]))
    row_of_obs = np.repeat(np.arange(s, dtype=np.int64), n_obs)
    pos = None
    if not balanced:
        starts = np.cumsum(n_obs) - n_obs
        pos = np.arange(len(qty)) - starts[row_of_obs]
    hour_shared = hour if profile and keep is None else None
    hour_of_obs = None
    if profile and keep is not None:
        hour_of_obs = np.broadcast_to(hour, (s, t))[keep]
    category_of_row = (
        np.full(s, None, dtype=object)
        if categories is None
        else _object_column(categories, "categories", s)
    )
    cells = _Cells(
        price=price_v,
        quantity=qty,
        intensity=inten,
        covariates=cov,
        censored=cens,
        row_of_obs=row_of_obs,
        n_rows=s,
        n_t=int(n_obs.max()),
        balanced=balanced,
        pos=pos,
        order=None,
        profile=profile,
        hour_shared=hour_shared,
        hour_of_obs=hour_of_obs,
        period_hours=period_hours,
        sku_of_row=sku_of_row,
        market_of_row=market_of_row,
        category_of_row=category_of_row,
        n_obs=n_obs,
    )
    prep = _prepare_cells(
        cells,
        n_row_cov=len(names) if per_row_covariates else 0,
        covariate_names=names,
        priors=priors,
        pooling=pooling,
        init=init,
        max_iter=max_iter,
        level_priors=level_priors,
    )
    return _solve(prep, names, intensity is not None, jit=jit)


def _grid(values: Any, name: str, s: int, t: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (s, t):
        raise InputError(f"{name} must have shape [S, T]=({s}, {t}), got {arr.shape}")
    return arr


def _checked(
    values: np.ndarray, name: str, *, positive: bool = False, nonneg: bool = False
) -> np.ndarray:
    """The observed cells of one grid, refused (naming the grid) unless finite and in range."""
    if not np.isfinite(values).all():
        raise InputError(f"{name} must be finite numbers where observed, got NaN or inf")
    if positive and (values <= 0).any():
        bad = values[values <= 0][:_SHOWN].tolist()
        raise InputError(f"{name} must be > 0 where observed, got {bad}")
    if nonneg and (values < 0).any():
        bad = values[values < 0][:_SHOWN].tolist()
        raise InputError(f"{name} must be >= 0 where observed, got {bad}")
    return values


def _object_column(values: Iterable[Hashable], name: str, s: int) -> np.ndarray:
    """``[S]`` labels as an object array (tuples stay one label each)."""
    column = np.fromiter(values, dtype=object)
    if len(column) != s:
        raise InputError(f"{name} must have S={s} entries, got {len(column)}")
    return column


def _key_rows(
    skus: Sequence[Hashable], markets: Sequence[Hashable] | None, s: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each row's SKU (and market), checked to name one row per key."""
    sku_of_row = _object_column(skus, "skus", s)
    if markets is None:
        if len(set(sku_of_row.tolist())) != s:
            raise InputError("skus must be unique (one row per SKU); pass markets for SKU-markets")
        return sku_of_row, None
    market_of_row = _object_column(markets, "markets", s)
    if len(set(zip(sku_of_row.tolist(), market_of_row.tolist(), strict=True))) != s:
        raise InputError("each (sku, market) pair must name one row only")
    return sku_of_row, market_of_row


def _period_clock(periods: Any, t: int) -> tuple[bool, np.ndarray, np.ndarray | None]:
    """(datetimes?, each period in hours (or its number), hour of day per period)."""
    if periods is None:
        return False, np.arange(t, dtype=np.float64), None
    if hasattr(periods, "hour") and hasattr(periods, "asi8"):  # a pandas DatetimeIndex
        ticks = np.asarray(periods.asi8, dtype=np.int64)
        per_hour = np.timedelta64(1, "h") / np.timedelta64(1, periods.unit)
        per_num, hour = (ticks - ticks[:1]) / per_hour, np.asarray(periods.hour)
        is_time = True
    else:
        arr = np.asarray(periods)
        is_time = np.issubdtype(arr.dtype, np.datetime64)
        if is_time:
            unit = np.datetime_data(arr.dtype)[0]
            ticks = arr.view(np.int64)
            per_num = (ticks - ticks[:1]) / (np.timedelta64(1, "h") / np.timedelta64(1, unit))
            hour = arr.astype("datetime64[h]").view(np.int64) % 24
        else:
            per_num = _checked(np.asarray(arr, dtype=np.float64), "periods")
            hour = None
    if len(per_num) != t:
        raise InputError(f"periods must have T={t} entries, got {len(per_num)}")
    if not np.all(np.diff(per_num) > 0):
        raise InputError("periods must be strictly increasing (one column per period)")
    return is_time, per_num, hour
