"""Units per slot by largest marginal value, and the exact knapsack DP where curves bend.

Greedy is exact on concave curves (Gross 1956; Ibaraki & Katoh 1988, ch. 4); where a
curve is not concave :func:`allocate` plans with :func:`allocate_exact` instead.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pricing.exceptions import InputError

__all__ = [
    "CONCAVITY_TOL",
    "Allocation",
    "allocate",
    "allocate_exact",
    "allocate_greedy",
    "is_concave",
]

CONCAVITY_TOL = 1e-6
"""Relative slack of the concavity check (the DP solves in float32 by default)."""


class Allocation(NamedTuple):
    """Units per slot for one SKU and what they are expected to earn.

    Attributes:
        units: ``[J]`` units placed in each slot.
        held_back: units of the total not placed anywhere.
        objective: ``Σ f_j(n_j) + holdback_value · held_back``.
        marginal: ``[J]`` marginal value of the last unit placed in each slot,
            ``f_j(n_j) − f_j(n_j − 1)`` (``nan`` where no unit is placed).
        next_marginal: ``[J]`` value of one more unit, ``f_j(n_j + 1) − f_j(n_j)``
            (``nan`` past the curve).
        method: ``"greedy"`` (every curve concave) or ``"exact"`` (knapsack DP).
    """

    units: np.ndarray
    held_back: int
    objective: float
    marginal: np.ndarray
    next_marginal: np.ndarray
    method: str


def is_concave(value: np.ndarray, *, tol: float = CONCAVITY_TOL) -> np.ndarray:
    """``[J]`` whether each curve's marginal values never rise (up to ``tol`` × its scale).

    Args:
        value: ``[J, N+1]`` curves.
        tol: relative slack, scaled by each curve's largest absolute value.

    Returns:
        Boolean ``[J]``.
    """
    v = np.atleast_2d(np.asarray(value, dtype=float))
    if v.shape[1] < 3:
        return np.ones(v.shape[0], dtype=bool)
    second = np.diff(v, n=2, axis=1)
    scale = np.maximum(np.abs(v).max(axis=1), 1.0)
    return np.asarray(np.all(second <= tol * scale[:, None], axis=1))


def _check(value: np.ndarray, total: int, caps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    v = np.atleast_2d(np.asarray(value, dtype=float))
    if v.ndim != 2 or v.shape[1] < 1 or not np.all(np.isfinite(v)):
        raise InputError(f"value must be finite curves [J, N+1], got shape {v.shape}")
    if not (isinstance(total, int | np.integer) and total >= 0):
        raise InputError(f"total must be a whole number of units >= 0, got {total!r}")
    n_top = v.shape[1] - 1
    cap = np.full(v.shape[0], n_top) if caps is None else np.asarray(caps, dtype=np.int64)
    if cap.shape != (v.shape[0],) or np.any(cap < 0) or np.any(cap > n_top):
        raise InputError(f"caps must be [J] in [0, {n_top}], got {cap!r}")
    return v, cap


def _result(v: np.ndarray, units: np.ndarray, total: int, b: float, method: str) -> Allocation:
    j = np.arange(v.shape[0])
    n_top = v.shape[1] - 1
    with np.errstate(invalid="ignore"):
        last = np.where(units > 0, v[j, units] - v[j, np.maximum(units - 1, 0)], np.nan)
        nxt = np.where(units < n_top, v[j, np.minimum(units + 1, n_top)] - v[j, units], np.nan)
    held = int(total - units.sum())
    objective = float(v[j, units].sum() + b * held)
    return Allocation(units.astype(np.int64), held, objective, last, nxt, method)


def allocate_greedy(
    value: np.ndarray,
    total: int,
    *,
    holdback_value: float = 0.0,
    caps: np.ndarray | None = None,
) -> Allocation:
    """Hand out units one at a time to the slot whose next unit is worth most.

    Places a unit only while its marginal value beats ``holdback_value``. Exact when every
    curve is concave (marginal values non-increasing); the marginals are made monotone
    (running minimum) so float noise below the concavity tolerance cannot split a slot's
    units. Equivalent to, and computed as, taking the ``total`` largest marginals.

    Args:
        value: ``[J, N+1]`` slot curves ``f_j(n)``.
        total: units available.
        holdback_value: value of a unit not placed.
        caps: ``[J]`` most units a slot may take (default ``N``).

    Returns:
        :class:`Allocation` with ``method="greedy"``.
    """
    v, cap = _check(value, total, caps)
    gain = np.minimum.accumulate(np.diff(v, axis=1), axis=1) - holdback_value  # [J, N]
    gain = np.where(np.arange(gain.shape[1])[None, :] < cap[:, None], gain, -np.inf)
    flat = gain.ravel()
    # Largest first; ties to the lower slot then the earlier unit (stable on the flat order).
    order = np.argsort(-flat, kind="stable")[: int(total)]
    chosen = order[flat[order] > 0]
    units = np.bincount(chosen // gain.shape[1], minlength=v.shape[0])
    return _result(v, units, int(total), holdback_value, "greedy")


def allocate_exact(
    value: np.ndarray,
    total: int,
    *,
    holdback_value: float = 0.0,
    caps: np.ndarray | None = None,
) -> Allocation:
    """The optimal allocation for any curves: a dynamic programme over slots.

    ``B_j(u) = max_{k ≤ min(u, cap_j)} B_{j−1}(u − k) + f_j(k) − b k``, ``u ≤ total``;
    the plan is the best ``B_J(u)`` over ``u``, traced back. ``O(J · total · N)``.

    Args, Returns: as :func:`allocate_greedy` (``method="exact"``).
    """
    v, cap = _check(value, total, caps)
    b = float(holdback_value)
    u_len = int(total) + 1
    u = np.arange(u_len)
    best = np.zeros(u_len)
    choices = []
    for j in range(v.shape[0]):
        k_top = int(min(cap[j], total))
        k = np.arange(k_top + 1)
        gain = v[j, : k_top + 1] - v[j, 0] - b * k  # relative to placing nothing
        prev = u[:, None] - k[None, :]
        cand = np.where(prev >= 0, best[np.maximum(prev, 0)] + gain[None, :], -np.inf)
        pick = np.argmax(cand, axis=1)  # ties to fewer units
        best = cand[u, pick]
        choices.append(pick)
    units = np.zeros(v.shape[0], dtype=np.int64)
    at = int(np.argmax(best))
    for j in range(v.shape[0] - 1, -1, -1):
        units[j] = choices[j][at]
        at -= int(units[j])
    return _result(v, units, int(total), b, "exact")


def allocate(
    value: np.ndarray,
    total: int,
    *,
    holdback_value: float = 0.0,
    caps: np.ndarray | None = None,
    tol: float = CONCAVITY_TOL,
) -> Allocation:
    """Optimal units per slot: greedy where every curve is concave, else the exact DP.

    Args:
        value: ``[J, N+1]`` slot curves ``f_j(n)`` (e.g. :attr:`ValueCurves.value`).
        total: units available for these slots (one SKU).
        holdback_value: value of a unit not placed.
        caps: ``[J]`` most units per slot (default ``N``).
        tol: concavity slack (:func:`is_concave`).

    Returns:
        :class:`Allocation`.

    Raises:
        InputError: non-finite curves, a negative total or bad caps.

    Example:
        >>> allocate(np.array([[0, 5, 9, 12], [0, 4, 7, 9]]), 3).units.tolist()
        [2, 1]
    """
    v, _ = _check(value, total, caps)
    if bool(np.all(is_concave(v, tol=tol))):
        return allocate_greedy(v, total, holdback_value=holdback_value, caps=caps)
    return allocate_exact(v, total, holdback_value=holdback_value, caps=caps)
