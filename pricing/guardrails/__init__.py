"""Guardrails: the operator's bounds, applied after the optimum and always winning.

A price leaves the policy only after these steps, in this order:

1. **static bounds** — clip to ``[lo, hi]`` with ``lo = max(floor, unit_cost unless
   allow_below_cost, MIN_PRICE)`` and ``hi = ceiling``;
2. **allowed values** — snap to the nearest step of the ``ladder`` (only steps inside
   ``[lo, hi]`` that carry the ``price_ending`` when both are set), or, without a ladder, round
   down to the ``price_ending`` (``x.99``), up when rounding down would cross ``lo``;
3. **time rules** — hold the opening price during the ``no_touch_periods`` after a window opens;
   move at most ``max_change_pct`` % from the previous price (to the allowed value nearest the
   optimum inside that band, else hold); change at most ``max_changes_per_window`` times.

On a published surface ``p(n, t)`` the time rules run along ``t`` at each stock level ``n``
(:func:`apply_guardrails`); on the sequence of prices actually served (stock moving with
sales) they run on the path (:func:`guard_served`, :func:`guard_path`), which also enforces the
change cap. Every served price carries a :class:`GuardrailCode` saying which rule bound it.

The operator's amounts (floor, ceiling, cost, ladder steps, ending) compare by the money
rule of :mod:`pricing.money`: at the cent, as written. A floor of ``20.004`` and a ceiling
of ``20.0`` are the same price; ``20.01`` over ``20.0`` is a contradiction.

Contradictory bounds (cost above the ceiling, a ladder with no step inside the bounds, an
ending that never falls inside them) raise :class:`~pricing.exceptions.GuardrailError` when the
spec is built, so an impossible spec never reaches a terminal. A non-finite proposal on a
surface raises :class:`~pricing.exceptions.InputError`; on a served path it holds the previous
served price.

The package's modules: :mod:`~pricing.guardrails.rules` (the declaration shared with the
operator configs and the scenarios, and :class:`GuardrailCode`), :mod:`~pricing.guardrails.spec`
(one SKU's spec, the rows' table), :mod:`~pricing.guardrails.apply` (the time rules on
surfaces and served paths) and :mod:`~pricing.guardrails.grid` (the DP's price grid).
"""

from pricing.guardrails.apply import (
    ServedState,
    apply_guardrails,
    guard_path,
    guard_served,
    initial_served_state,
)
from pricing.guardrails.grid import (
    GRID_SIZE,
    POLICY_EXTRAPOLATION,
    TRUST,
    candidate_ladder,
    price_grid,
    trust_region,
)
from pricing.guardrails.rules import (
    GUARDRAIL_FIELDS,
    MIN_PRICE,
    FieldIssues,
    GuardrailCode,
    GuardrailRules,
    Problem,
    bound_by,
    guardrail_problems,
)
from pricing.guardrails.spec import GuardrailSpec, GuardrailTable, stack_guardrails

__all__ = [
    "GRID_SIZE",
    "GUARDRAIL_FIELDS",
    "MIN_PRICE",
    "POLICY_EXTRAPOLATION",
    "TRUST",
    "FieldIssues",
    "GuardrailCode",
    "GuardrailRules",
    "GuardrailSpec",
    "GuardrailTable",
    "Problem",
    "ServedState",
    "apply_guardrails",
    "bound_by",
    "candidate_ladder",
    "guard_path",
    "guard_served",
    "guardrail_problems",
    "initial_served_state",
    "price_grid",
    "stack_guardrails",
    "trust_region",
]
