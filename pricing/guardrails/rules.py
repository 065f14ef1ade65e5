"""The one declaration of a guardrail block, shared by configs, scenarios and the pricing core.

:class:`GuardrailRules` declares the fields an operator writes (floor, ceiling, ladder,
price ending, the change limits, clearance) with their ranges, and checks them together
with :func:`guardrail_problems`. Everything that holds guardrails derives from it and adds
only its own unit of time and what it alone knows:

- the operator config (``service.config.models.Guardrails``) adds ``no_touch_minutes`` and
  the approval band;
- a simulator scenario (``pricing.scenario.GuardrailsSpec``) adds ``no_touch_periods``;
- the pricing core (:class:`pricing.guardrails.GuardrailSpec`) adds ``no_touch_periods`` and
  the SKU's ``unit_cost``.

So a guardrail block a config accepts is one the pricing core accepts, and the reverse.
Amounts compare by the money rule of :mod:`pricing.money` (at the cent, as written).

:class:`GuardrailCode` says which rule bound a served price and names the field the
operator sets for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import IntEnum
from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pricing.fields import AS_WHOLE_NUMBER
from pricing.money import compare_money, to_minor

__all__ = [
    "GUARDRAIL_FIELDS",
    "MIN_PRICE",
    "FieldIssues",
    "GuardrailCode",
    "GuardrailRules",
    "Problem",
    "bound_by",
    "guardrail_problems",
]

MIN_PRICE = 0.01
"""No price below one cent ever leaves the policy."""

Money = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False, strict=True)]
"""An amount an operator writes: a finite number of at most a million, never negative."""
PriceStep = Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False, strict=True)]
"""A ladder step: a price above zero."""

Problem = tuple[tuple[str | int, ...], str]
"""A (relative field path, message) pair found by a validator."""


class FieldIssues(ValueError):
    """One or more problems a model validator found, each tied to a field path.

    The path is relative to the model that raised it; the config loader appends it
    to pydantic's location so the message lands on the offending field.

    Fix: the message says what was received and what is allowed.
    """

    def __init__(self, issues: Sequence[Problem]) -> None:
        self.issues: tuple[Problem, ...] = tuple(issues)
        super().__init__(
            "; ".join(f"{_rel(path)}: {msg}" if path else msg for path, msg in self.issues)
        )


def _rel(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class GuardrailCode(IntEnum):
    """Which guardrail bound a served price (0 = the optimum passed unchanged).

    Each code carries :attr:`field`, the name the operator knows the rule by (the config
    field, or ``cost`` for the never-below-cost bound), ``None`` when no rule bound.
    """

    field: str | None

    def __new__(cls, value: int, field: str | None) -> GuardrailCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.field = field
        return member

    NONE = 0, None
    FLOOR = 1, "floor"
    CEILING = 2, "ceiling"
    COST = 3, "cost"
    LADDER = 4, "ladder"
    ENDING = 5, "price_ending"
    MAX_CHANGE = 6, "max_change_pct"
    CHANGE_CAP = 7, "max_changes_per_window"
    NO_TOUCH = 8, "no_touch_minutes"
    HELD = 9, "held"
    """The proposal was not a finite number; the previous served price was held."""


GUARDRAIL_FIELDS: dict[int, str | None] = {int(code): code.field for code in GuardrailCode}
"""Stored guardrail code -> the field it names (for pages that decode codes themselves)."""


def bound_by(code: int) -> str | None:
    """The field named by a stored guardrail code; ``None`` for no rule or an unknown code."""
    return GUARDRAIL_FIELDS.get(int(code))


def _above(a: float, b: float) -> bool:
    """``a`` is above ``b`` at the cent. Rounding to the cent keeps order, so ``a <= b`` as
    floats settles it without the (slower) exact money comparison."""
    return a > b and compare_money(a, b) > 0


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e15 else repr(x)


def price_with_ending(lo: float, hi: float, ending: float) -> float | None:
    """Smallest price ``k + ending`` (k = 0, 1, 2, ...) inside ``[lo, hi]``, if any.

    Worked in cents (:mod:`pricing.money`), so ``lo = 19.99`` admits ``19.99`` itself.
    """
    lo_c, end_c = to_minor(lo), to_minor(ending)
    k = max(0, -((end_c - lo_c) // 100))  # ceil((lo - ending) / 1.00) in whole cents
    price = (k * 100 + end_c) / 100
    return price if compare_money(price, hi) <= 0 else None


def _bound_problem(g: GuardrailRules, unit_cost: float) -> Problem | None:
    """The first lower bound (floor, unit cost, one cent) above the ceiling, if any."""
    if g.ceiling is None:
        return None
    hi = g.ceiling
    if g.floor is not None and _above(g.floor, hi):
        msg = f"floor {_fmt(g.floor)} is above ceiling {_fmt(hi)}: the floor must be at most the ceiling"
        return ("floor",), msg
    if not g.allow_below_cost and _above(unit_cost, hi):
        msg = (
            f"unit_cost {_fmt(unit_cost)} is above ceiling {_fmt(hi)}: no price is allowed "
            "(raise the ceiling, lower the cost, or set allow_below_cost)"
        )
        return ("unit_cost",), msg
    if _above(MIN_PRICE, hi):
        return (
            "ceiling",
        ), f"ceiling must be at least the lowest price {MIN_PRICE}, got {_fmt(hi)}"
    return None


def _lowest(g: GuardrailRules, unit_cost: float) -> tuple[float, str]:
    """The lowest price the bounds allow and what sets it (``floor`` or ``unit cost``)."""
    lo = max(g.floor or 0.0, MIN_PRICE)
    if not g.allow_below_cost and unit_cost > lo:
        return unit_cost, "unit cost"
    return lo, "floor"


def guardrail_problems(g: GuardrailRules, *, unit_cost: float = 0.0) -> list[Problem]:
    """Every inconsistency inside one (possibly merged) guardrail block.

    Rules: the lowest allowed price (the floor, at least one cent, and the ``unit_cost``
    unless ``allow_below_cost``) is at most the ceiling; a ladder is non-empty, strictly
    ascending and has at least one step inside the bounds (carrying the ``price_ending``
    when one is set); without a ladder, some price ending in ``price_ending`` lies inside
    the bounds. Amounts compare at the cent (:func:`pricing.money.compare_money`): a
    guardrail block does not know its currency.

    Args:
        g: the guardrails.
        unit_cost: the SKU's cost of one unit, where known (the pricing core's spec).

    Returns:
        (field path, message) pairs, empty when the guardrails are consistent.
    """
    bound = _bound_problem(g, unit_cost)
    if bound is not None:
        return [bound]
    lo, what = _lowest(g, unit_cost)
    hi = g.ceiling if g.ceiling is not None else math.inf
    out: list[Problem] = []
    ending = g.price_ending
    if g.ladder is not None:
        if len(g.ladder) == 0:
            return [(("ladder",), "ladder must list at least one price, got an empty list")]
        for i, (a, b) in enumerate(zip(g.ladder, g.ladder[1:], strict=False)):
            if not _above(b, a):
                out.append(
                    (
                        ("ladder", i + 1),
                        f"ladder must be strictly ascending, got {_fmt(b)} after {_fmt(a)}",
                    )
                )
                break
        # A block that leaves its ceiling unset inherits one: the ladder is checked against
        # the merged bounds, where a floor above the inherited ceiling is reported as such.
        inherits_ceiling = g.inherits and g.ceiling is None and "ceiling" not in g.model_fields_set
        inside = [p for p in g.ladder if not _above(lo, p) and not _above(p, hi)]
        if inherits_ceiling:
            return out
        if not inside:
            out.append(
                (
                    ("ladder",),
                    f"no ladder price lies between {what} {_fmt(lo)} and ceiling "
                    f"{_fmt(hi)}, got ladder {[_fmt(p) for p in g.ladder]}",
                )
            )
        elif ending is not None and not any(to_minor(p) % 100 == to_minor(ending) for p in inside):
            out.append(
                (
                    ("ladder",),
                    f"no ladder price between {what} {_fmt(lo)} and ceiling "
                    f"{_fmt(hi)} ends in {ending:.2f}, got ladder {[_fmt(p) for p in inside]}: "
                    "add such a step or drop the ending",
                )
            )
    elif ending is not None and price_with_ending(lo, hi, ending) is None:
        out.append(
            (
                ("price_ending",),
                f"no price ending in {ending:.2f} lies between {what} {_fmt(lo)} "
                f"and ceiling {_fmt(hi)}: widen the bounds or drop the ending",
            )
        )
    return out


class GuardrailRules(BaseModel):
    """Bounds that always win over the optimiser, applied after the optimum.

    A price is clipped to ``[floor, ceiling]`` (and never under the unit cost unless
    ``allow_below_cost``), then snapped to the ``ladder`` (only its steps carrying the
    ``price_ending`` when both are set) or, without a ladder, rounded to the
    ``price_ending``; the change limits then act along time.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )

    floor: Money | None = None
    """Lowest price ever served; ``None`` means no floor (cost still applies)."""
    ceiling: Money | None = None
    """Highest price ever served; ``None`` means no ceiling."""
    ladder: tuple[PriceStep, ...] | None = None
    """Explicit allowed prices (strictly ascending). When set, served prices are ladder
    steps (those ending in ``price_ending`` when one is set)."""
    price_ending: float | None = Field(default=None, ge=0, lt=1, strict=True)
    """Cents every price ends with, e.g. ``0.99`` (prices round down to ``x.99``)."""
    max_change_pct: float | None = Field(default=None, gt=0, le=100, strict=True)
    """Largest move between consecutive periods, in percent of the previous price."""
    max_changes_per_window: (
        Annotated[int, Field(ge=0, le=10_000, strict=True), AS_WHOLE_NUMBER] | None
    ) = None
    """Cap on the number of price changes inside one drop window."""
    allow_below_cost: bool = Field(default=False, strict=True)
    """Allow prices under the unit cost (e.g. for clearance)."""

    inherits: ClassVar[bool] = True
    """Whether a field left out comes from a less specific level (a config or scenario
    block merges over the drop's and the defaults'); a ladder under an inherited ceiling is
    then checked once merged. The pricing core's spec is complete: ``False``."""

    def problems(self) -> list[Problem]:
        """What :func:`guardrail_problems` finds in this block (empty when consistent)."""
        return guardrail_problems(self)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = self.problems()
        if problems:
            raise FieldIssues(problems)
        return self

    def rule_values(self) -> dict[str, object]:
        """The shared fields' values, to build another holder of the same rules."""
        return {name: getattr(self, name) for name in GuardrailRules.model_fields}
