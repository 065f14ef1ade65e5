"""The prices the policy may choose from: the DP's ladder and the trust region around the data."""

from __future__ import annotations

import math

import numpy as np

from pricing.exceptions import InputError
from pricing.guardrails.spec import GuardrailSpec

__all__ = [
    "GRID_SIZE",
    "POLICY_EXTRAPOLATION",
    "TRUST",
    "candidate_ladder",
    "price_grid",
    "trust_region",
]


def candidate_ladder(
    spec: GuardrailSpec,
    reference_price: float,
    *,
    size: int = 16,
    spread: tuple[float, float] = (0.5, 2.0),
) -> np.ndarray:
    """Price ladder for the DP that already satisfies the spec's static bounds.

    The operator's ladder when one is set (steps inside the bounds); otherwise ``size``
    geometrically spaced prices from ``spread[0]·reference`` to ``spread[1]·reference``,
    clipped to the bounds and snapped to the price ending (duplicates removed). Solving the
    DP on this ladder means guardrails only bind through the time rules.

    Args:
        spec: the row's guardrails.
        reference_price: the list price (centre of the grid).
        size: number of grid prices when the spec has no ladder.
        spread: grid span as multiples of the reference price.

    Returns:
        Ascending allowed prices (at least one).
    """
    if spec.ladder is not None:
        return spec.allowed_ladder
    if not (math.isfinite(reference_price) and reference_price > 0):
        raise InputError(f"reference_price must be finite and > 0, got {reference_price!r}")
    grid = reference_price * np.geomspace(spread[0], spread[1], size)
    return np.unique(spec.snap(np.round(grid, 2)))


TRUST = 1.5
"""Offered prices stay within this factor of the prices a row has been seen at."""
GRID_SIZE = 24
"""Prices on each row's DP grid when the operator gives no ladder."""
POLICY_EXTRAPOLATION = None
"""How a policy's demand is read at prices beyond a row's seen ones: the fitted curve
carried on (``extrapolation=None`` in :meth:`~pricing.model.ElasticityFit.posterior_rates`).

The prediction default (``"prior"``: the category's elasticity beyond the seen prices, its
variance growing with the distance) scores held-out cells well, but a policy maximises over
prices and exploits it: the kink at the edge of the data and the widening posterior both
inflate the expected demand away from the data, so an inelastic row was priced at its floor.
What keeps a policy near the data is where it may offer prices (:func:`trust_region`), not a
second curve."""


def trust_region(spec: GuardrailSpec, seen_low: float, seen_high: float) -> tuple[float, float]:
    """The prices a row may be offered next: within ``TRUST`` of the prices it has been
    seen at (its list price before any), inside the guardrails' static bounds.

    The demand model is fitted where the data are; offering a price far outside them would
    trust an extrapolation (a log-linear curve carried to a 70 % markdown). Each re-solve can
    step a factor ``TRUST`` further, so a drop whose list price is far off still gets there
    in a few hours, led by its own sales.
    """
    lo_bound, hi_bound = spec.bounds
    lo = min(max(lo_bound, seen_low / TRUST), hi_bound)
    hi = max(min(hi_bound, seen_high * TRUST), lo)
    return lo, hi


def price_grid(
    spec: GuardrailSpec, low: float, high: float, *, size: int = GRID_SIZE
) -> np.ndarray:
    """``size`` prices from ``low`` to ``high`` (geometric), snapped to the guardrails.

    The operator's ladder when one is set. Snapping may merge neighbours; the result is
    padded back to ``size`` by repeating the top price (the solver allows repeats).
    """
    if spec.ladder is not None:
        prices = spec.allowed_ladder
    else:
        prices = np.unique(spec.snap(np.round(np.geomspace(low, high, size), 2)))
    prices = prices[:size]
    return np.pad(prices, (0, size - prices.size), mode="edge")
