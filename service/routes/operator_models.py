"""Response models of the explain and preview endpoints (:mod:`service.routes.operator`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ExplainOut", "PreviewOut"]


class ServedOut(BaseModel):
    """The price as ``GET /v1/prices`` serves it now."""

    sku: str
    market: str
    price: float
    currency: str
    version: str | None
    inventory: int | None
    source: str


class SurfaceCellOut(BaseModel):
    version: str
    cell: dict[str, int] = Field(description="{units_left, period}: the cell served now.")
    period_start: datetime
    period_seconds: int
    price: float
    guardrail_code: int = Field(description="pricing.guardrails.GuardrailCode of the cell.")


class ElasticityOut(BaseModel):
    beta: float | None = Field(
        description="Own-price elasticity at the pair's usual intensity (the fit centres it)."
    )
    se: float | None = Field(description="Laplace standard error of beta.")
    interval95: list[float] | None = None
    at_intensity_now: float | None = Field(
        default=None, description="beta + delta * intensity now."
    )
    delta: float | None = None
    gamma: float | None = None
    replaced: bool = Field(description="The fit was out of range; a fallback was published.")


class IntensityNowOut(BaseModel):
    at_publish: float = Field(description="The intensity the surface was solved at.")
    now: float = Field(description="The index now, from the events (else the forecast).")
    forecast_now: float = Field(description="The published intensity decayed with its half-life.")
    source: str = Field(description="'events' (observed now) or 'forecast'.")
    half_life_hours: float


class TimeLeftOut(BaseModel):
    periods_left: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    window_open: bool | None = None
    seconds_left: float | None = None


class FailoverOut(BaseModel):
    """Where a SKU's shoppers go when it sells out (:mod:`pricing.allocation.failover`)."""

    sku: str = Field(description="The SKU expected to absorb this one's demand.")
    share: float = Field(description="Share of this SKU's demand expected to move there.")
    source: str = Field(description="sales (estimated from stock-outs) or config (declared).")


class ExplainOut(BaseModel):
    """The served price of one SKU in one market, and why."""

    sku: str
    market: str
    served: ServedOut
    surface: SurfaceCellOut
    bound_by: str | None = Field(
        description="The guardrail field that bound the price (floor, ceiling, cost, ladder, "
        "price_ending, max_change_pct, max_changes_per_window, no_touch_minutes), or null."
    )
    elasticity: ElasticityOut
    intensity: IntensityNowOut
    units_left: int
    failover: FailoverOut | None = Field(
        default=None, description="The SKU that absorbs its demand if it sells out, or null."
    )
    time_left: TimeLeftOut
    optimum: dict[str, float] = Field(
        description="served, and unconstrained (the DP optimum on a wide grid, no guardrails)."
    )
    guardrails: dict[str, Any] = Field(description="The SKU's effective guardrails.")
    fit_id: str | None
    reasons: list[str]


class OutcomeOut(BaseModel):
    expected_revenue: float
    expected_units_sold: float
    sell_through: float = Field(description="Expected units sold / units now.")
    expected_units_left: float
    expected_value: float = Field(description="Revenue - cost x units + salvage x left.")
    units_now: int
    period_now: int


class LivePreviewOut(OutcomeOut):
    version: str
    price_now: float
    period_start: datetime
    period_seconds: int
    surface: list[list[float]] = Field(description="Published prices [units left][period].")


class CandidateOut(OutcomeOut):
    price_now: float
    bound_by: str | None
    optimum_now: float = Field(description="The DP optimum on the ladder, before time rules.")
    elasticity: float
    elasticity_source: str
    guardrails: dict[str, Any]
    ladder: list[float]
    period_start: datetime
    period_seconds: int
    surface: list[list[float]] = Field(description="Candidate prices [units left][period].")
    guardrail_codes: list[list[int]]


class DeltaOut(BaseModel):
    price_now: float
    expected_revenue: float
    sell_through: float


class PreviewOut(BaseModel):
    """Live and candidate surfaces with their expected outcome from now."""

    sku: str
    market: str
    computed_at: datetime
    fit_id: str | None
    live: LivePreviewOut
    candidate: CandidateOut
    delta: DeltaOut
    notes: list[str]
