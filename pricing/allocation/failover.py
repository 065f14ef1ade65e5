"""Failover SKUs: which variant absorbs a sold-out variant's shoppers, and what share of them.

Variants of one drop in one market (colourways, sizes) share their shoppers: when one
sells out, some of the shoppers who wanted it buy another variant, the rest buy nothing.
The *diversion share* ``d_{ij}`` is the share of ``i``'s demand that moves to ``j`` while
``i`` is out of stock; the failover SKU of ``i`` is the ``j`` with the largest share.

Two sources, in order of preference:

- **the sales themselves** (:func:`estimate_diversion`): over the periods where ``i`` was out
  of stock and ``j`` in stock, ``j``'s sales beyond what the demand model expects of ``j``
  are the units that moved, and ``i``'s expected demand in those periods (had it been in
  stock) is what could have moved:

  .. math:: \\hat d_{ij} = \\frac{\\sum_{t \\in A_{ij}} (q_{jt} - e_{jt})}
                              {\\sum_{t \\in A_{ij}} e_{it}},
            \\qquad A_{ij} = \\{t : i \\text{ out}, j \\text{ in}\\}

  (the diversion-ratio estimator of Conlon & Mortimer 2021 on a stock-out as the natural
  experiment). Shares are clipped to ``[0, 1]`` and scaled so a SKU's shares sum to at
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

from pricing.exceptions import InputError

__all__ = ["Failover", "estimate_diversion", "failover_table"]

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
    min_periods: int = MIN_PERIODS,
) -> np.ndarray:
    """``[S, S]`` diversion shares ``d[i, j]`` of the variants of one market.

    Args:
        quantity: ``[S, T]`` units sold per variant and period.
        expected: ``[S, T]`` the demand model's expected units of each variant at the price
            it was offered, as if every variant were in stock (for an out-of-stock period,
            its expected demand at the price it would have had).
        in_stock: ``[S, T]`` True where the variant could be bought the whole period.
        min_periods: fewest periods with ``i`` out and ``j`` in for an estimate.

    Returns:
        ``[S, S]`` shares in ``[0, 1]``, each row summing to at most 1; ``nan`` where a
        pair has too few periods, 0 on the diagonal.

    Raises:
        InputError: shapes disagree or values are negative or not finite.

    Example:
        Variant 0 is out for four periods in which variant 1 sells one unit a period more
        than expected, half of variant 0's expected two:

        >>> q = np.array([[0, 0, 0, 0], [3, 3, 3, 3]])
        >>> e = np.full((2, 4), 2.0)
        >>> in_stock = np.array([[False] * 4, [True] * 4])
        >>> float(estimate_diversion(q, e, in_stock)[0, 1])
        0.5
    """
    q = np.asarray(quantity, dtype=float)
    e = np.asarray(expected, dtype=float)
    ok = np.asarray(in_stock, dtype=bool)
    if q.ndim != 2 or q.shape != e.shape or q.shape != ok.shape:
        raise InputError(
            "quantity, expected and in_stock must share one shape [S, T], got "
            f"{q.shape}, {e.shape} and {ok.shape}"
        )
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(e))) or (q < 0).any() or (e < 0).any():
        raise InputError("quantity and expected must be finite and >= 0")
    out = ~ok
    both = out[:, None, :] & ok[None, :, :]  # [i, j, t]: i out, j in
    periods = both.sum(axis=2)
    moved = np.einsum("ijt,jt->ij", both, q - e)
    could = np.einsum("ijt,it->ij", both, e)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(moved / could, 0.0, 1.0)
    share = np.where((periods >= min_periods) & (could > 0), share, np.nan)
    np.fill_diagonal(share, 0.0)
    total = np.nansum(share, axis=1, keepdims=True)
    return np.asarray(np.where(total > 1.0, share / np.maximum(total, 1e-12), share))


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
