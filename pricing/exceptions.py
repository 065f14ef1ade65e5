"""Errors raised by the pure pricing core.

Hierarchy::

    PricingError               base
    ├── InputError             a table or array given to pricing is malformed
    ├── ScenarioError          a simulator scenario file is invalid
    └── GuardrailError         guardrails that no price can satisfy (e.g. cost above ceiling)

Each docstring says how to fix the error.
"""

from __future__ import annotations

__all__ = ["GuardrailError", "InputError", "PricingError", "ScenarioError"]


class PricingError(Exception):
    """Base class of the pricing core's errors."""


class InputError(PricingError, ValueError):
    """A table or array is malformed: the message names the column and offending rows.

    Fix the named rows (or drop them on purpose before calling); nothing is dropped
    silently.
    """


class ScenarioError(PricingError, ValueError):
    """A scenario file is invalid: the message names the file and the field path.

    Fix the named field; the allowed values are in the message.
    """


class GuardrailError(PricingError, ValueError):
    """Guardrails contradict each other, so no price can satisfy them all.

    The message names the bounds (e.g. unit cost above the ceiling, a ladder with no step
    between floor and ceiling, a price ending that never falls between them). Widen the
    bounds, add a ladder step inside them, or set ``allow_below_cost`` for clearance.
    """
