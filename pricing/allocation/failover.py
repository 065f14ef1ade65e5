"""Failover SKUs: which variant absorbs a sold-out variant's shoppers, and what share of them.

Variants of one drop in one market (colourways, sizes) share their shoppers: when one
sells out, some of the shoppers who wanted it buy another variant, the rest buy nothing.
The *diversion share* ``d_{ij}`` is the share of ``i``'s demand that moves to ``j`` while
``i`` is out of stock; the failover SKU of ``i`` is the ``j`` with the largest share.

Two sources, in order of preference:

- **the sales themselves** (:func:`estimate_diversion`): over the periods ``A`` where ``i``
  was out of stock and ``j`` in stock, ``j``'s sales beyond what it would have sold are
  the units that moved, and ``i``'s demand in those periods (had it been in stock) is
  what could have moved. What each would have sold is the demand model's expectation
  ``e`` (its shape over hours, prices and events) scaled to the variant's own sales in
  the periods ``B`` where both were on sale, so a level the model fitted on the very
  same sales (spill included) cancels out:

  .. math:: \\hat d_{ij} = \\frac{\\sum_{A} q_{jt} - c_j \\sum_{A} e_{jt}}
                              {c_i \\sum_{A} e_{it}},
            \\qquad c_k = \\frac{\\sum_{B} q_{kt}}{\\sum_{B} e_{kt}}

  (a diversion ratio measured on a stock-out as the natural experiment, Conlon &
  Mortimer 2021). Shares are clipped to ``[0, 1]`` and scaled so a SKU's shares sum to at
  most one; a pair with fewer than ``min_periods`` such periods has no estimate.
- **the operator's declaration** in the drop config (``failover: [{sku, to, share}]``),
  for variants that have not sold out yet, or drops without a demand model.

References:
    Conlon, C. and Mortimer, J. H. (2021). Empirical properties of diversion ratios.
    RAND Journal of Economics 52(4), 693-726.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from pricing.exceptions import InputError

__all__ = ["Failover", "estimate_diversion", "failover_table", "panel_diversion"]

MIN_PERIODS = 3
"""Fewest out-of-stock periods (``i`` out, ``j`` in) a pair's estimate rests on."""


class Failover(NamedTuple):
    """Where a variant's shoppers go when it sells out.

    Attributes:
        sku: the variant that sells out.
        market: where.
        absorbed_by: the SKU that takes the largest share of its demand.
        share: the expected share of ``sku``'s demand that moves to ``absorbed_by``.
        source: ``"sales"`` (estimated from stock-outs) or ``"config"`` (declared).
    """

    sku: str
    market: str
    absorbed_by: str
    share: float
    source: str


def estimate_diversion(
    quantity: np.ndarray,
    expected: np.ndarray,
    in_stock: np.ndarray,
    *,
    out_of_stock: np.ndarray | None = None,
    min_periods: int = MIN_PERIODS,
) -> np.ndarray:
    """``[S, S]`` diversion shares ``d[i, j]`` of the variants of one market.

    Args:
        quantity: ``[S, T]`` units sold per variant and period.
        expected: ``[S, T]`` the demand model's expected units of each variant at the price
            it was offered, as if every variant were in stock (for an out-of-stock period,
            its expected demand at the price it would have had).
        in_stock: ``[S, T]`` True where the variant could be bought the whole period.
        out_of_stock: ``[S, T]`` True where it could not be bought at all (default: every
            period not ``in_stock``; pass it when some periods are neither, e.g. before a
            variant's first sale or the period it sold out in).
        min_periods: fewest periods with ``i`` out and ``j`` in for an estimate.

    Returns:
        ``[S, S]`` shares in ``[0, 1]``, each row summing to at most 1; ``nan`` where a
        pair has too few periods, 0 on the diagonal.

    Raises:
        InputError: shapes disagree or values are negative or not finite.

    Example:
        Both variants sell as expected for three periods; then variant 0 is out for four
        in which variant 1 sells one unit a period more, half of variant 0's expected two:

        >>> q = np.array([[2, 2, 2, 0, 0, 0, 0], [2, 2, 2, 3, 3, 3, 3]])
        >>> e = np.full((2, 7), 2.0)
        >>> in_stock = np.array([[True] * 3 + [False] * 4, [True] * 7])
        >>> float(estimate_diversion(q, e, in_stock)[0, 1])
        0.5
    """
    q = np.asarray(quantity, dtype=float)
    e = np.asarray(expected, dtype=float)
    ok = np.asarray(in_stock, dtype=bool)
    out = ~ok if out_of_stock is None else np.asarray(out_of_stock, dtype=bool)
    if q.ndim != 2 or q.shape != e.shape or q.shape != ok.shape or out.shape != ok.shape:
        raise InputError(
            "quantity, expected, in_stock and out_of_stock must share one shape [S, T], "
            f"got {q.shape}, {e.shape}, {ok.shape} and {out.shape}"
        )
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(e))) or (q < 0).any() or (e < 0).any():
        raise InputError("quantity and expected must be finite and >= 0")
    both = out[:, None, :] & ok[None, :, :]  # [i, j, t]: i out, j in (A)
    # B: both on sale as the period opened (a variant's sell-out period included: whether
    # a period ends in stock depends on its own sales, so dropping that period would leave
    # the calmer ones and bias the level down).
    calm = ~out[:, None, :] & ~out[None, :, :]
    periods = both.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale_i = np.einsum("ijt,it->ij", calm, q) / np.einsum("ijt,it->ij", calm, e)
        scale_j = np.einsum("ijt,jt->ij", calm, q) / np.einsum("ijt,jt->ij", calm, e)
        moved = np.einsum("ijt,jt->ij", both, q) - scale_j * np.einsum("ijt,jt->ij", both, e)
        could = scale_i * np.einsum("ijt,it->ij", both, e)
        share = np.clip(moved / could, 0.0, 1.0)
    enough = (periods >= min_periods) & (calm.sum(axis=2) >= min_periods) & (could > 0)
    share = np.where(enough, share, np.nan)
    np.fill_diagonal(share, 0.0)
    total = np.nansum(share, axis=1, keepdims=True)
    return np.asarray(np.where(total > 1.0, share / np.maximum(total, 1e-12), share))


def panel_diversion(panel: pd.DataFrame, *, min_periods: int = MIN_PERIODS) -> np.ndarray:
    """:func:`estimate_diversion` from a market's sales panel.

    Args:
        panel: one row per (variant, period): ``sku``, ``period``, ``quantity``,
            ``sold_out`` (it sold out during the period), ``out_of_stock`` (it could not be
            bought at all) and ``expected`` (the model's expected units at the price it
            had, or would have had). A period a variant has no row for counts as neither
            in nor out of stock.
        min_periods: as :func:`estimate_diversion`.

    Returns:
        ``[S, S]`` shares in the order of ``sorted(panel["sku"].unique())``.
    """
    need = {"sku", "period", "quantity", "sold_out", "out_of_stock", "expected"}
    missing = sorted(need - set(panel.columns))
    if missing:
        raise InputError(f"panel lacks column(s) {missing}; need {sorted(need)}")
    skus = sorted(panel["sku"].unique())
    periods = np.sort(panel["period"].unique())
    s_idx = pd.Index(skus).get_indexer(panel["sku"])
    t_idx = np.searchsorted(periods, panel["period"].to_numpy())
    shape = (len(skus), periods.size)
    q, e = np.zeros(shape), np.zeros(shape)
    in_stock, out = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    q[s_idx, t_idx] = panel["quantity"].to_numpy(dtype=float)
    e[s_idx, t_idx] = panel["expected"].to_numpy(dtype=float)
    gone = panel["out_of_stock"].to_numpy(dtype=bool)
    out[s_idx, t_idx] = gone
    in_stock[s_idx, t_idx] = ~gone & ~panel["sold_out"].to_numpy(dtype=bool)
    return estimate_diversion(q, e, in_stock, out_of_stock=out, min_periods=min_periods)


def failover_table(
    skus: Sequence[str],
    market: str,
    *,
    shares: np.ndarray | None = None,
    declared: Iterable[tuple[str, str, float]] = (),
) -> list[Failover]:
    """Each variant's failover SKU in ``market``: estimated where the sales allow, else declared.

    Args:
        skus: the variants, in the order of ``shares``' rows and columns.
        market: the market they are sold in.
        shares: ``[S, S]`` from :func:`estimate_diversion`, or ``None``.
        declared: ``(sku, to, share)`` pairs from the drop config.

    Returns:
        One :class:`Failover` per variant that has one (estimated share > 0 or declared).
    """
    names = list(skus)
    table: dict[str, Failover] = {}
    for sku, to, share in declared:
        if sku in names and to in names and sku != to:
            current = table.get(sku)
            if current is None or share > current.share:
                table[sku] = Failover(sku, market, to, float(share), "config")
    if shares is not None:
        s = np.asarray(shares, dtype=float)
        if s.shape != (len(names), len(names)):
            raise InputError(f"shares must be [S, S] = {len(names)}^2, got {s.shape}")
        for i, sku in enumerate(names):
            row = np.where(np.isfinite(s[i]), s[i], -1.0)
            row[i] = -1.0
            j = int(np.argmax(row))
            if row[j] > 0:
                table[sku] = Failover(sku, market, names[j], float(row[j]), "sales")
    return [table[s] for s in names if s in table]
