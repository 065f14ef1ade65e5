"""Operator configuration: the single source of truth for drops, priors and guardrails.

Files under ``configs/`` load into these frozen pydantic models:

- ``defaults.yaml``   -> :class:`Defaults` (global guardrails, markets, quote lock, cadence)
- ``categories.yaml`` -> :class:`Categories` (elasticity prior per category)
- ``drops/*.yaml``    -> :class:`DropConfig` (one drop: windows, markets, SKUs, arms)

The JSON Schema editors use is generated from these classes
(``dropprice config schema``); each field's docstring becomes its description.
Unknown fields are rejected everywhere so a typo never passes silently.

Checks that need one file only live on the models; a problem found by a model
validator is raised as :class:`FieldIssues`, which names the offending field
*inside* the model (``floor``, not the whole ``guardrails`` block), so the loader
can print ``drops/x.yaml:14 skus[2].guardrails.floor: ...``. Checks that need
several files (unknown category or market, a SKU sold by two overlapping drops,
guardrails that conflict only once merged) live in :mod:`service.config.checks`.

Guardrails merge field by field, most specific last:
``defaults -> drop -> arm (for the arm's markets) -> SKU``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictFloat,
    field_validator,
    model_validator,
)

from pricing.fields import AS_WHOLE_NUMBER, Identifier, WholeNumber
from pricing.guardrails import FieldIssues, GuardrailRules, Problem, guardrail_problems
from pricing.guardrails.rules import Money

__all__ = [
    "Arm",
    "Categories",
    "CategoryPrior",
    "ConfigBundle",
    "Defaults",
    "DropConfig",
    "DropWindow",
    "FieldIssues",
    "Guardrails",
    "Market",
    "SkuConfig",
    "guardrail_problems",
]

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise FieldIssues(problems)


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )


class Guardrails(GuardrailRules):
    """Bounds that always win over the optimiser, applied after the optimum.

    The fields and their checks are the shared declaration
    (:class:`pricing.guardrails.GuardrailRules`, the same one scenarios and the pricing
    core use); an operator config adds the no-touch time in minutes and the approval
    band. Any field left out inherits from the less specific level
    (defaults -> drop -> arm -> SKU).
    """

    no_touch_minutes: WholeNumber = Field(default=0, ge=0, le=24 * 60, strict=True)
    """Minutes after a window opens during which the opening price is held."""
    approval_band_pct: float | None = Field(default=None, gt=0, le=1000, strict=True)
    """A re-fit moving a live price by more than this percent waits for an operator."""

    def merged(self, override: Guardrails | None) -> Guardrails:
        """Return these guardrails with every field set in ``override`` replacing ours.

        Raises:
            pydantic.ValidationError: the merged guardrails are inconsistent (e.g. a
                SKU floor above the drop's ceiling); :mod:`service.config.checks`
                reports this at validation time so it never happens on a loaded config.
        """
        if override is None:
            return self
        data = self.model_dump()
        data.update(override.model_dump(exclude_unset=True))
        return Guardrails.model_validate(data)

    def merged_unchecked(self, override: Guardrails | None) -> Guardrails:
        """Like :meth:`merged` but without validation, for reporting merge conflicts."""
        if override is None:
            return self
        data = self.model_dump()
        data.update(override.model_dump(exclude_unset=True))
        return Guardrails.model_construct(**data)


class CategoryPrior(_Frozen):
    """Elasticity prior of one category: beta_i ~ N(mean, sd^2), clipped to a range."""

    mean: float = Field(le=0, ge=-20, strict=True)
    """Prior mean own-price elasticity (negative: demand falls as price rises)."""
    sd: float = Field(gt=0, le=20, strict=True)
    """Prior standard deviation of a SKU's elasticity around the category mean."""
    allowed_range: tuple[StrictFloat, StrictFloat] = (-10.0, -0.05)
    """Fitted elasticities outside ``[lo, hi]`` are rejected at re-fit validation."""

    @model_validator(mode="after")
    def _check_range(self) -> CategoryPrior:
        lo, hi = self.allowed_range
        if lo >= hi:
            raise FieldIssues(
                [
                    (
                        ("allowed_range",),
                        f"allowed_range must be [lo, hi] with lo < hi, got [{lo}, {hi}]",
                    )
                ]
            )
        if not lo <= self.mean <= hi:
            raise FieldIssues(
                [(("mean",), f"mean {self.mean} is outside allowed_range [{lo}, {hi}]")]
            )
        return self


class Categories(_Frozen):
    """``categories.yaml``: elasticity priors by category name."""

    categories: dict[Identifier, CategoryPrior]
    """Category name -> prior."""


def _check_currency(v: str | None) -> str | None:
    if v is not None and not CURRENCY_RE.match(v):
        raise ValueError(f"currency must be a 3-letter ISO 4217 code like 'USD', got {v!r}")
    return v


class Market(_Frozen):
    """One market (town, store, DMA) the engine may sell in."""

    name: str = Field(default="", max_length=200)
    """Human-readable market name."""
    timezone: str | None = None
    """IANA time zone of the market's tills, e.g. ``America/New_York``."""
    currency: str | None = None
    """ISO 4217 code every SKU sold here must be priced in; any when omitted."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        return _check_currency(v)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone must be an IANA name like 'America/New_York', got {v!r}"
            ) from None
        return v


class Defaults(_Frozen):
    """``defaults.yaml``: global defaults every drop inherits."""

    currency: str = "USD"
    """ISO 4217 code used when a SKU names none."""
    guardrails: Guardrails = Guardrails()
    """Guardrails applied to every SKU unless a drop, arm or SKU overrides a field."""
    markets: dict[Identifier, Market] = {}
    """Known markets; when any are listed, drops may only sell in these."""
    quote_ttl_seconds: WholeNumber = Field(default=120, ge=1, le=3600, strict=True)
    """How long a quoted price is honoured for a sale that carries its ``quote_id``."""
    refit_cadence_minutes: WholeNumber = Field(default=60, ge=1, le=7 * 24 * 60, strict=True)
    """Re-fit cadence between drop windows."""
    intensity_window_hours: WholeNumber = Field(default=72, ge=24, le=72, strict=True)
    """Length of the rolling micro-event window."""
    keep_versions: WholeNumber = Field(default=5, ge=2, le=100, strict=True)
    """Published surface versions kept for rollback."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        _check_currency(v)
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
            raise FieldIssues(
                [
                    (
                        ("end",),
                        f"window end {self.end.isoformat()} is not after start "
                        f"{self.start.isoformat()}: the end must be later than the start",
                    )
                ]
            )
        return self

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` (time-zone aware) falls inside ``[start, end)``."""
        return self.start <= at < self.end

    def overlaps(self, other: DropWindow) -> bool:
        """Whether the two windows share any instant."""
        return self.start < other.end and other.start < self.end


class SkuConfig(_Frozen):
    """One SKU of a drop."""

    sku: Identifier
    """SKU code as the POS knows it."""
    name: str = Field(default="", max_length=200)
    """Human-readable product name."""
    category: Identifier
    """Category from ``categories.yaml`` (its elasticity prior applies)."""
    list_price: float = Field(gt=0, le=1_000_000, allow_inf_nan=False, strict=True)
    """Price served before any surface is published (``source: base``)."""
    currency: str | None = None
    """ISO 4217 code; the defaults' currency when omitted."""
    unit_cost: Money = 0.0
    """Cost of one unit (profit objective, never-below-cost guardrail)."""
    salvage_value: Money = 0.0
    """Value of each unit left when the last window closes."""
    inventory: dict[
        Identifier, Annotated[int, Field(ge=0, le=10_000_000, strict=True), AS_WHOLE_NUMBER]
    ] = Field(min_length=1)
    """Units available per market (at least one market)."""
    guardrails: Guardrails | None = None
    """Per-SKU guardrail overrides (fields set here replace the drop's and arm's)."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        return _check_currency(v)


class Arm(_Frozen):
    """One experiment arm: a set of markets that run with different rules.

    The weekend pop-up in two towns uses two arms: one releases its stock in waves,
    the other all at once, each with its own guardrails.
    """

    name: Identifier
    """Arm name reported with each served price."""
    markets: tuple[Identifier, ...] = Field(min_length=1)
    """Markets assigned to this arm (at least one)."""
    pricing: Literal["engine", "fixed"] = "engine"
    """``engine`` serves surfaces; ``fixed`` serves the list price."""
    release: Literal["all_at_once", "waves"] = "all_at_once"
    """Inventory released all at once or in waves across the window."""
    waves: WholeNumber = Field(default=1, ge=1, le=24, strict=True)
    """Number of release waves when ``release`` is ``waves``."""
    guardrails: Guardrails | None = None
    """Guardrail overrides for this arm's markets."""

    @model_validator(mode="after")
    def _waves(self) -> Arm:
        if self.release == "all_at_once" and self.waves != 1:
            raise FieldIssues(
                [
                    (
                        ("waves",),
                        f"waves {self.waves} needs release: waves, got release: all_at_once "
                        "(allowed: waves 1 with all_at_once)",
                    )
                ]
            )
        if self.release == "waves" and self.waves < 2:
            raise FieldIssues([(("waves",), f"release: waves needs waves >= 2, got {self.waves}")])
        return self


class FailoverPair(_Frozen):
    """A declared failover: when ``sku`` sells out, ``share`` of its shoppers buy ``to``.

    For variants with no stock-out in the sales yet (the planner estimates the share
    from stock-outs where it can, :mod:`pricing.allocation.failover`).
    """

    sku: Identifier
    """The variant that may sell out."""
    to: Identifier
    """The variant that absorbs its demand (another SKU of this drop)."""
    share: float = Field(gt=0.0, le=1.0)
    """Share of ``sku``'s demand expected to move to ``to`` while it is sold out."""


class DropConfig(_Frozen):
    """``drops/<id>.yaml``: one drop."""

    id: Identifier
    """Drop id, unique across files, equal to the file name without ``.yaml``."""
    name: str = Field(default="", max_length=200)
    """Human-readable drop name."""
    markets: tuple[Identifier, ...] = Field(min_length=1)
    """Markets (towns, stores, DMAs) the drop runs in."""
    windows: tuple[DropWindow, ...] = Field(min_length=1)
    """Selling windows, in order, not overlapping."""
    period_minutes: WholeNumber = Field(default=60, ge=1, le=7 * 24 * 60, strict=True)
    """Length of one pricing period (the surface's time step)."""
    skus: tuple[SkuConfig, ...] = Field(min_length=1)
    """SKUs on sale in this drop."""
    guardrails: Guardrails = Guardrails()
    """Drop-wide guardrails (override the defaults field by field)."""
    exploration: bool = Field(default=False, strict=True)
    """Thompson-sample prices from the fit's posterior, inside guardrails."""
    objective: Literal["revenue", "profit"] = "revenue"
    """Maximise revenue, or profit net of ``unit_cost``."""
    refit_during_window: bool = Field(default=False, strict=True)
    """Allow re-fits while a window is open."""
    arms: tuple[Arm, ...] = ()
    """Optional experiment arms splitting the markets."""
    failover: tuple[FailoverPair, ...] = ()
    """Declared failover SKUs between the drop's variants."""

    _sku_index: dict[str, SkuConfig] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._sku_index = {s.sku: s for s in self.skus}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied (the SKU index is rebuilt for the new fields)."""
        copy = super().model_copy(update=update, deep=deep)
        copy.model_post_init(None)
        return copy

    @model_validator(mode="after")
    def _cross_checks(self) -> DropConfig:
        problems: list[Problem] = []
        seen_markets: set[str] = set()
        for k, market in enumerate(self.markets):
            if market in seen_markets:
                problems.append((("markets", k), f"market {market!r} is listed twice"))
            seen_markets.add(market)
        for i, (a, b) in enumerate(zip(self.windows, self.windows[1:], strict=False)):
            if b.start < a.end:
                problems.append(
                    (
                        ("windows", i + 1, "start"),
                        f"window starts {b.start.isoformat()} before the previous window ends "
                        f"{a.end.isoformat()}: windows must be in order and not overlap",
                    )
                )
        seen: dict[str, int] = {}
        markets = set(self.markets)
        for i, sku in enumerate(self.skus):
            if sku.sku in seen:
                problems.append(
                    (
                        ("skus", i, "sku"),
                        f"duplicate SKU {sku.sku!r} in this drop (first at skus[{seen[sku.sku]}])",
                    )
                )
            else:
                seen[sku.sku] = i
            for market in sku.inventory:
                if market not in markets:
                    problems.append(
                        (
                            ("skus", i, "inventory", market),
                            f"unknown market {market!r}, allowed {sorted(markets)} "
                            "(the drop's markets)",
                        )
                    )
        owner: dict[str, str] = {}
        for ai, arm in enumerate(self.arms):
            if arm.name in {x.name for x in self.arms[:ai]}:
                problems.append((("arms", ai, "name"), f"duplicate arm name {arm.name!r}"))
            for k, market in enumerate(arm.markets):
                if market not in markets:
                    problems.append(
                        (
                            ("arms", ai, "markets", k),
                            f"unknown market {market!r}, allowed {sorted(markets)} "
                            "(the drop's markets)",
                        )
                    )
                elif market in owner:
                    problems.append(
                        (
                            ("arms", ai, "markets", k),
                            f"market {market!r} is already in arm {owner[market]!r}: "
                            "a market belongs to at most one arm",
                        )
                    )
                else:
                    owner[market] = arm.name
        for fi, pair in enumerate(self.failover):
            for field in ("sku", "to"):
                if getattr(pair, field) not in seen:
                    problems.append(
                        (
                            ("failover", fi, field),
                            f"unknown SKU {getattr(pair, field)!r}, allowed {sorted(seen)} "
                            "(the drop's SKUs)",
                        )
                    )
            if pair.sku == pair.to:
                problems.append(
                    (("failover", fi, "to"), f"{pair.sku!r} cannot fail over to itself")
                )
        _raise_if(problems)
        return self

    def sku_config(self, sku: str) -> SkuConfig | None:
        """Return the SKU's config, or ``None`` when the drop does not sell it."""
        return self._sku_index.get(sku)

    def arm_for(self, market: str) -> Arm | None:
        """The arm that runs ``market``, or ``None`` when it follows the drop's rules."""
        return next((arm for arm in self.arms if market in arm.markets), None)

    def window_at(self, at: datetime) -> DropWindow | None:
        """The window open at ``at``, or ``None`` between windows."""
        return next((w for w in self.windows if w.contains(at)), None)

    def next_window(self, at: datetime) -> DropWindow | None:
        """The window open at ``at``, else the next one to open, else ``None``."""
        return next((w for w in self.windows if at < w.end), None)

    def overlaps(self, other: DropConfig) -> bool:
        """Whether any window of this drop overlaps any window of ``other``."""
        return any(a.overlaps(b) for a in self.windows for b in other.windows)


class ConfigBundle(_Frozen):
    """Everything under ``configs/``: defaults, category priors and drops.

    Cross-file rules (unknown categories or markets, SKUs sold by two overlapping
    drops, guardrails that conflict once merged) are checked by
    :func:`service.config.checks.bundle_problems`, which every loader and the
    operator API run before a bundle goes live.
    """

    defaults: Defaults = Defaults()
    """Global defaults."""
    categories: Categories = Categories(categories={})
    """Elasticity priors per category."""
    drops: tuple[DropConfig, ...] = ()
    """All drops."""

    _by_sku: dict[str, list[tuple[DropConfig, SkuConfig]]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        index: dict[str, list[tuple[DropConfig, SkuConfig]]] = {}
        for drop in self.drops:
            for sku in drop.skus:
                index.setdefault(sku.sku, []).append((drop, sku))
        self._by_sku = index

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied (the SKU index is rebuilt for the new fields)."""
        copy = super().model_copy(update=update, deep=deep)
        copy.model_post_init(None)
        return copy

    def guardrails_for(
        self, drop: DropConfig, sku: SkuConfig, market: str | None = None
    ) -> Guardrails:
        """Effective guardrails: defaults, then the drop's, the market's arm's, the SKU's."""
        arm = drop.arm_for(market) if market is not None else None
        merged = self.defaults.guardrails.merged(drop.guardrails)
        if arm is not None:
            merged = merged.merged(arm.guardrails)
        return merged.merged(sku.guardrails)

    def currency_for(self, sku: SkuConfig) -> str:
        """The SKU's ISO 4217 currency (the defaults' when the SKU names none)."""
        return sku.currency or self.defaults.currency

    def find_sku(self, sku: str) -> tuple[DropConfig, SkuConfig] | None:
        """The (drop, sku) pair selling ``sku``; the latest-opening drop wins."""
        hits = self._by_sku.get(sku)
        if not hits:
            return None
        return max(hits, key=lambda pair: pair[0].windows[0].start)

    def drop(self, drop_id: str) -> DropConfig | None:
        """The drop with id ``drop_id``, or ``None``."""
        return next((d for d in self.drops if d.id == drop_id), None)

    def with_drops(
        self, drops: Iterable[DropConfig], *, remove: Iterable[str] = ()
    ) -> ConfigBundle:
        """A copy with ``drops`` added or replacing same-id drops, and ``remove`` ids dropped."""
        new = {d.id: d for d in drops}
        gone = set(remove)
        kept = [new.pop(d.id, d) for d in self.drops if d.id not in gone]
        return ConfigBundle(
            defaults=self.defaults,
            categories=self.categories,
            drops=tuple(kept) + tuple(new.values()),
        )

    @property
    def sku_count(self) -> int:
        """Number of (drop, SKU) rows across all drops."""
        return sum(len(d.skus) for d in self.drops)
