"""Errors raised by the pure pricing core.

Hierarchy::

    PricingError               base
    ├── InputError             a table or array given to pricing is malformed
    └── ScenarioError          a simulator scenario file is invalid

Each docstring says how to fix the error.
"""

from __future__ import annotations

__all__ = ["InputError", "PricingError", "ScenarioError"]


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
