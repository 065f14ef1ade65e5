"""Operator configuration: the single source of truth for drops, priors and guardrails.

Files under ``configs/`` load into these frozen pydantic models:

- ``defaults.yaml``   -> :class:`Defaults` (global guardrails, quote lock, cadence)
- ``categories.yaml`` -> :class:`Categories` (elasticity prior per category)
- ``drops/*.yaml``    -> :class:`DropConfig` (one drop: windows, markets, SKUs)

The JSON Schema editors use is generated from these classes
(``dropprice config schema``). Unknown fields are rejected everywhere so a typo
never passes silently.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Arm",
    "Categories",
    "CategoryPrior",
    "ConfigBundle",
    "Defaults",
    "DropConfig",
    "DropWindow",
    "Guardrails",
    "SkuConfig",
]

Identifier = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"),
]
Money = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Guardrails(_Frozen):
    """Bounds that always win over the optimiser, applied after the optimum."""

    floor: Money | None = None
    """Lowest price ever served; ``None`` means no floor (cost still applies)."""
    ceiling: Money | None = None
    """Highest price ever served; ``None`` means no ceiling."""
    ladder: tuple[Money, ...] | None = None
    """Explicit allowed prices (ascending). When set, served prices are ladder steps."""
    price_ending: float | None = Field(default=None, ge=0, lt=1)
    """Cents every price ends with, e.g. ``0.99`` (prices round down to ``x.99``)."""
    max_change_pct: float | None = Field(default=None, gt=0, le=100)
    """Largest move between consecutive periods, in percent of the previous price."""
    max_changes_per_window: int | None = Field(default=None, ge=0, le=10_000)
    """Cap on the number of price changes inside one drop window."""
    no_touch_minutes: int = Field(default=0, ge=0, le=24 * 60)
    """Minutes after a window opens during which the opening price is held."""
    allow_below_cost: bool = False
    """Allow prices under the unit cost (e.g. for clearance)."""
    approval_band_pct: float | None = Field(default=None, gt=0, le=1000)
    """A re-fit moving a live price by more than this percent waits for an operator."""

    @model_validator(mode="after")
    def _check_bounds(self) -> Guardrails:
        if self.floor is not None and self.ceiling is not None and self.floor > self.ceiling:
            raise ValueError(
                f"floor {self.floor} is above ceiling {self.ceiling}: ceiling must be >= floor"
            )
        if self.ladder is not None:
            if len(self.ladder) == 0:
                raise ValueError("ladder must list at least one price, got an empty list")
            if any(b <= a for a, b in zip(self.ladder, self.ladder[1:], strict=False)):
                raise ValueError(f"ladder must be strictly ascending, got {list(self.ladder)}")
        return self

    def merged(self, override: Guardrails | None) -> Guardrails:
        """Return these guardrails with every field set in ``override`` replacing ours."""
        if override is None:
            return self
        data = self.model_dump()
        data.update(override.model_dump(exclude_unset=True))
        return Guardrails.model_validate(data)


class CategoryPrior(_Frozen):
    """Elasticity prior of one category: beta_i ~ N(mean, sd^2), clipped to a range."""

    mean: float = Field(le=0, ge=-20)
    """Prior mean own-price elasticity (negative: demand falls as price rises)."""
    sd: float = Field(gt=0, le=20)
    """Prior standard deviation of a SKU's elasticity around the category mean."""
    allowed_range: tuple[float, float] = (-10.0, -0.05)
    """Fitted elasticities outside ``[lo, hi]`` are rejected at re-fit validation."""

    @model_validator(mode="after")
    def _check_range(self) -> CategoryPrior:
        lo, hi = self.allowed_range
        if lo >= hi:
            raise ValueError(f"allowed_range must be [lo, hi] with lo < hi, got [{lo}, {hi}]")
        if not lo <= self.mean <= hi:
            raise ValueError(f"mean {self.mean} is outside allowed_range [{lo}, {hi}]")
        return self


class Categories(_Frozen):
    """``categories.yaml``: elasticity priors by category name."""

    categories: dict[Identifier, CategoryPrior]
    """Category name -> prior."""


class Defaults(_Frozen):
    """``defaults.yaml``: global defaults every drop inherits."""

    currency: str = "USD"
    """ISO 4217 code used when a SKU names none."""
    guardrails: Guardrails = Guardrails()
    """Guardrails applied to every SKU unless a drop or SKU overrides a field."""
    quote_ttl_seconds: int = Field(default=120, ge=1, le=3600)
    """How long a quoted price is honoured for a sale that carries its ``quote_id``."""
    refit_cadence_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    """Re-fit cadence between drop windows."""
    intensity_window_hours: int = Field(default=72, ge=24, le=72)
    """Length of the rolling micro-event window."""
    keep_versions: int = Field(default=5, ge=2, le=100)
    """Published surface versions kept for rollback."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not CURRENCY_RE.match(v):
            raise ValueError(f"currency must be a 3-letter ISO 4217 code like 'USD', got {v!r}")
        return v


class DropWindow(_Frozen):
    """One selling window of a drop, with zoned timestamps."""

    start: AwareDatetime
    """Window opening, with a time zone (e.g. ``2026-12-05T10:00:00-05:00``)."""
    end: AwareDatetime
    """Window close, after ``start``."""

    @model_validator(mode="after")
    def _order(self) -> DropWindow:
        if self.end <= self.start:
            raise ValueError(
                f"window end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )
        return self


class SkuConfig(_Frozen):
    """One SKU of a drop."""

    sku: Identifier
    """SKU code as the POS knows it."""
    name: str = Field(default="", max_length=200)
    """Human-readable product name."""
    category: Identifier
    """Category from ``categories.yaml`` (its elasticity prior applies)."""
    list_price: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    """Price served before any surface is published (``source: base``)."""
    currency: str | None = None
    """ISO 4217 code; the defaults' currency when omitted."""
    unit_cost: Money = 0.0
    """Cost of one unit (profit objective, never-below-cost guardrail)."""
    salvage_value: Money = 0.0
    """Value of each unit left when the last window closes."""
    inventory: dict[Identifier, Annotated[int, Field(ge=0, le=10_000_000)]]
    """Units available per market."""
    guardrails: Guardrails | None = None
    """Per-SKU guardrail overrides (fields set here replace the drop's)."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is not None and not CURRENCY_RE.match(v):
            raise ValueError(f"currency must be a 3-letter ISO 4217 code like 'USD', got {v!r}")
        return v


class Arm(_Frozen):
    """One experiment arm: a set of markets that run with different rules."""

    name: Identifier
    """Arm name reported with each served price."""
    markets: tuple[Identifier, ...]
    """Markets assigned to this arm."""
    pricing: Literal["engine", "fixed"] = "engine"
    """``engine`` serves surfaces; ``fixed`` serves the list price."""
    release: Literal["all_at_once", "waves"] = "all_at_once"
    """Inventory released all at once or in waves across the window."""
    waves: int = Field(default=1, ge=1, le=24)
    """Number of release waves when ``release`` is ``waves``."""
    guardrails: Guardrails | None = None
    """Guardrail overrides for this arm's markets."""


class DropConfig(_Frozen):
    """``drops/<id>.yaml``: one drop."""

    id: Identifier
    """Drop id, unique across files."""
    name: str = Field(default="", max_length=200)
    """Human-readable drop name."""
    markets: tuple[Identifier, ...] = Field(min_length=1)
    """Markets (towns, stores, DMAs) the drop runs in."""
    windows: tuple[DropWindow, ...] = Field(min_length=1)
    """Selling windows, in order, not overlapping."""
    period_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    """Length of one pricing period (the surface's time step)."""
    skus: tuple[SkuConfig, ...] = Field(min_length=1)
    """SKUs on sale in this drop."""
    guardrails: Guardrails = Guardrails()
    """Drop-wide guardrails (override the defaults field by field)."""
    exploration: bool = False
    """Thompson-sample prices from the fit's posterior, inside guardrails."""
    objective: Literal["revenue", "profit"] = "revenue"
    """Maximise revenue, or profit net of ``unit_cost``."""
    refit_during_window: bool = False
    """Allow re-fits while a window is open."""
    arms: tuple[Arm, ...] = ()
    """Optional experiment arms splitting the markets."""

    @model_validator(mode="after")
    def _cross_checks(self) -> DropConfig:
        errors: list[str] = []
        for a, b in zip(self.windows, self.windows[1:], strict=False):
            if b.start < a.end:
                errors.append(
                    f"windows overlap or are out of order: {a.start.isoformat()}–"
                    f"{a.end.isoformat()} and {b.start.isoformat()}–{b.end.isoformat()}"
                )
        seen: set[str] = set()
        markets = set(self.markets)
        for i, sku in enumerate(self.skus):
            if sku.sku in seen:
                errors.append(f"skus[{i}].sku: duplicate SKU {sku.sku!r} in this drop")
            seen.add(sku.sku)
            unknown = sorted(set(sku.inventory) - markets)
            if unknown:
                errors.append(
                    f"skus[{i}].inventory: unknown market(s) {unknown}, allowed {sorted(markets)}"
                )
        arm_markets: list[str] = [m for arm in self.arms for m in arm.markets]
        if arm_markets:
            bad = sorted(set(arm_markets) - markets)
            if bad:
                errors.append(f"arms: unknown market(s) {bad}, allowed {sorted(markets)}")
            if len(arm_markets) != len(set(arm_markets)):
                errors.append("arms: a market is assigned to more than one arm")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def sku_config(self, sku: str) -> SkuConfig | None:
        """Return the SKU's config, or ``None`` when the drop does not sell it."""
        return next((s for s in self.skus if s.sku == sku), None)


class ConfigBundle(_Frozen):
    """Everything under ``configs/``: defaults, category priors and drops."""

    defaults: Defaults = Defaults()
    """Global defaults."""
    categories: Categories = Categories(categories={})
    """Elasticity priors per category."""
    drops: tuple[DropConfig, ...] = ()
    """All drops."""

    def guardrails_for(self, drop: DropConfig, sku: SkuConfig) -> Guardrails:
        """Effective guardrails: defaults, then the drop's, then the SKU's overrides."""
        return self.defaults.guardrails.merged(drop.guardrails).merged(sku.guardrails)

    def currency_for(self, sku: SkuConfig) -> str:
        return sku.currency or self.defaults.currency

    def find_sku(self, sku: str) -> tuple[DropConfig, SkuConfig] | None:
        """The (drop, sku) pair selling ``sku``; the latest-opening drop wins."""
        hits = [(d, s) for d in self.drops if (s := d.sku_config(sku)) is not None]
        if not hits:
            return None
        return max(hits, key=lambda pair: pair[0].windows[0].start)
