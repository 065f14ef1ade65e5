"""Simulator scenarios: ground-truth demand, stock, windows and an event schedule, from YAML.

A scenario file (``configs/scenarios/*.yaml``) describes one simulated drop::

    name: hot-creator-drop
    horizon_hours: 72                 # clock hours simulated (hour 0 = the drop opens)
    windows: [{start_hour: 0, end_hour: 72}]
    markets: [{name: brooklyn}]
    event_types:
      announcement: {half_life_hours: 12, weight: 1.0}
    skus:
      - sku: HOOD-01
        category: apparel
        list_price: 60
        inventory: {brooklyn: 80}
        demand: {base_rate: 0.6, elasticity: -2.0, intensity_lift: 0.5, intensity_elasticity: 0.2}
    events:
      - {hour: 0, type: announcement, size: 2.0, skus: [HOOD-01]}

Ground truth for SKU ``i`` in market ``m`` at clock hour ``h`` and price ``p`` (the default
``loglinear`` shape; :mod:`pricing.truth` gives the others: ``linear``, ``logit``, a choice
model among a market's SKUs, overdispersion, reference-price effects, strategic waiting,
delayed returns)::

    log λ = log(base_rate_i · scale_m) + s_i(h mod 24) + γ_i I + (β_i + shift_m + δ_i I) log(p / list_price_i)
    I(h)  = Σ_events weight_type · size · 2^(−(h − h_e) / half_life_type) · 1[0 ≤ h − h_e ≤ W]

``s_i`` is the log of the SKU's daily profile (the scenario's unless the SKU has its own),
normalised to mean one over the day. A ``catalogue`` block draws many SKUs from ranges
instead of listing them.

A scenario describes a drop and the data a shop has (``engine.history_hours``), never how
the engine learns: the engine runs at its defaults (:mod:`pricing.engine`) and sees the
event log, not ``I`` or the truth's half-lives. Everything is frozen and validated;
:func:`load_scenario` raises :class:`~pricing.exceptions.ScenarioError` naming the file and the
field path (``skus.0.demand.elasticity``) with what was received and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pricing.events import STIMULUS_KINDS
from pricing.exceptions import ScenarioError
from pricing.fields import Identifier
from pricing.guardrails import GuardrailRules, GuardrailSpec

__all__ = [
    "Catalogue",
    "DemandTruth",
    "EngineSettings",
    "EventSpec",
    "EventType",
    "GuardrailsSpec",
    "Market",
    "Prior",
    "Scenario",
    "ScenarioSku",
    "TruthSettings",
    "Window",
    "load_scenario",
    "parse_scenario",
    "profile_values",
]

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Range = tuple[float, float]

Profile = tuple[Positive, ...] | Literal["flat", "retail", "evening", "morning"]

EVENING_PROFILE: tuple[float, ...] = (
    0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
    0.8, 0.8, 0.9, 1.0, 1.3, 1.7, 2.3, 2.8, 3.0, 2.6, 1.6, 0.7,
)  # fmt: skip
"""An after-work crowd: demand builds through the afternoon and peaks at 20:00."""

MORNING_PROFILE: tuple[float, ...] = (
    0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.4, 2.4, 2.8, 2.6, 2.0, 1.6,
    1.5, 1.2, 1.0, 0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.2, 0.1,
)  # fmt: skip
"""Commuters: a sharp peak at 08:00, a slow afternoon."""

RETAIL_PROFILE: tuple[float, ...] = (
    0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.4, 0.7, 1.0, 1.2, 1.4, 1.6,
    1.8, 1.7, 1.6, 1.6, 1.7, 1.9, 2.0, 1.8, 1.4, 1.0, 0.6, 0.3,
)  # fmt: skip
"""A shop's day: quiet nights, busy lunch and early evening (relative demand by hour)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def profile_values(profile: Profile) -> np.ndarray:
    """Relative demand by hour of day ``[24]`` of a named or explicit profile, mean one."""
    named = {
        "flat": (1.0,) * 24,
        "retail": RETAIL_PROFILE,
        "evening": EVENING_PROFILE,
        "morning": MORNING_PROFILE,
    }
    raw = np.asarray(named[profile] if isinstance(profile, str) else profile, dtype=np.float64)
    if raw.size != 24:
        raise ValueError(f"daily_profile: give 24 hourly values, got {raw.size}")
    return np.asarray(raw / raw.mean())


def _check_range(name: str, r: Range, lo: float = -math.inf, hi: float = math.inf) -> None:
    if not (lo <= r[0] <= r[1] <= hi):
        raise ValueError(
            f"{name} must be [low, high] with {lo} <= low <= high <= {hi}, got {list(r)}"
        )


class DemandTruth(_Frozen):
    """Ground-truth demand of one SKU (what the oracle knows and the engine must learn)."""

    base_rate: Positive
    """Expected units per hour at the list price, intensity 0, an average hour of the day."""
    elasticity: float = Field(le=-0.05, ge=-10)
    """Own-price elasticity β at the list price and intensity 0 (negative)."""
    intensity_lift: float = Field(default=0.0, ge=0, le=5)
    """γ: log-demand lift per unit of intensity."""
    intensity_elasticity: float = Field(default=0.0, ge=-2, le=2)
    """δ: change of the elasticity per unit of intensity (> 0: less price sensitive when hot)."""
    shape: Literal["loglinear", "linear", "logit"] = "loglinear"
    """How demand falls with price (:mod:`pricing.truth`); the engine always fits log-linear."""
    daily_profile: Profile | None = None
    """This SKU's own hour-of-day profile (default: the scenario's)."""


class GuardrailsSpec(GuardrailRules):
    """Guardrails of a SKU: the shared declaration (:class:`pricing.guardrails.GuardrailRules`,
    the same fields and checks as an operator config) with the no-touch time in periods."""

    no_touch_periods: int = Field(default=0, ge=0, strict=True)
    """Periods after a window opens that hold the opening price."""

    def merged(self, override: GuardrailsSpec | None) -> GuardrailsSpec:
        """These guardrails with the fields set in ``override`` replacing ours."""
        if override is None:
            return self
        data = self.model_dump()
        data.update(override.model_dump(exclude_unset=True))
        return GuardrailsSpec.model_validate(data)

    def to_spec(self, unit_cost: float) -> GuardrailSpec:
        """The pricing-core spec for a SKU with this unit cost."""
        return GuardrailSpec.from_rules(
            self, unit_cost=unit_cost, no_touch_periods=self.no_touch_periods
        )


class ScenarioSku(_Frozen):
    """One SKU with its stock per market and its true demand."""

    sku: Identifier
    """SKU code."""
    category: Identifier = "default"
    """Category (selects the engine's elasticity prior)."""
    list_price: Positive
    """Price the fixed policy serves and the engine starts from."""
    unit_cost: float = Field(default=0.0, ge=0)
    """Cost of one unit (profit objective, never-below-cost guardrail)."""
    salvage_value: float = Field(default=0.0, ge=0)
    """Value of each unit left at the end."""
    inventory: dict[Identifier, Annotated[int, Field(ge=0, le=100_000)]]
    """Units per market (markets not named get none)."""
    demand: DemandTruth
    """Ground-truth demand."""
    guardrails: GuardrailsSpec | None = None
    """Overrides of the scenario's guardrails."""


class Catalogue(_Frozen):
    """Draw ``count`` SKUs uniformly from ranges (one market's worth of stock each)."""

    count: int = Field(ge=1, le=100_000)
    """Number of SKUs."""
    seed: int = 0
    """Seed of the draw (the catalogue is the same for every simulation seed)."""
    prefix: Identifier = "SKU"
    """SKU codes are ``{prefix}-{i:05d}``."""
    category: Identifier = "default"
    """Category of every drawn SKU."""
    list_price: Range = (10.0, 80.0)
    """List price range."""
    base_rate: Range = (0.05, 0.5)
    """Units per hour at list price."""
    elasticity: Range = (-3.0, -1.2)
    """Elasticity range."""
    intensity_lift: Range = (0.0, 0.6)
    """γ range."""
    intensity_elasticity: Range = (0.0, 0.3)
    """δ range."""
    inventory: tuple[int, int] = (5, 40)
    """Units per market (inclusive range)."""
    unit_cost_share: float = Field(default=0.0, ge=0, lt=1)
    """Unit cost as a share of the list price."""

    @model_validator(mode="after")
    def _ranges(self) -> Catalogue:
        _check_range("list_price", self.list_price, 0.01)
        _check_range("base_rate", self.base_rate, 1e-6)
        _check_range("elasticity", self.elasticity, -10, -0.05)
        _check_range("intensity_lift", self.intensity_lift, 0, 5)
        _check_range("intensity_elasticity", self.intensity_elasticity, -2, 2)
        _check_range("inventory", (float(self.inventory[0]), float(self.inventory[1])), 0, 100_000)
        return self


class Market(_Frozen):
    """One market (town, store)."""

    name: Identifier
    """Market code."""
    demand_scale: Positive = 1.0
    """Multiplies every SKU's base rate in this market."""
    elasticity_shift: float = Field(default=0.0, ge=-3, le=3)
    """Added to every SKU's elasticity in this market."""


class Window(_Frozen):
    """A selling window in clock hours from the scenario start."""

    start_hour: int = Field(ge=0)
    """Opening hour."""
    end_hour: int = Field(gt=0)
    """Closing hour (exclusive)."""

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.end_hour <= self.start_hour:
            raise ValueError(
                f"end_hour must be after start_hour, got start_hour={self.start_hour} "
                f"end_hour={self.end_hour}"
            )
        return self


class EventType(_Frozen):
    """How one kind of event drives the intensity."""

    half_life_hours: Positive
    """Decay half-life of an event's contribution."""
    weight: Positive = 1.0
    """Contribution per unit of event size."""
    kind: str | None = None
    """The stimulus kind the shop's event log records it as (one of
    :data:`pricing.events.STIMULUS_KINDS`; default: the type's name when it is one, else
    ``announcement``). The engine builds its own index from the log with the production
    weights and half-lives, which need not match this truth's."""

    @model_validator(mode="after")
    def _kind(self) -> EventType:
        if self.kind is not None and self.kind not in STIMULUS_KINDS:
            raise ValueError(f"kind must be one of {list(STIMULUS_KINDS)}, got {self.kind!r}")
        return self

    def log_kind(self, name: str) -> str:
        """The production event kind this truth's events are logged as."""
        if self.kind is not None:
            return self.kind
        return name if name in STIMULUS_KINDS else "announcement"


class EventSpec(_Frozen):
    """One scheduled event: an announcement, a pop-up, a listing change."""

    hour: float = Field(ge=0)
    """Clock hour it happens (the policies see it from then on, never before)."""
    type: Identifier
    """A key of ``event_types``."""
    size: Positive = 1.0
    """Strength (reach on a log scale, crowd size, ...)."""
    skus: tuple[Identifier, ...] | None = None
    """SKUs it touches; all when omitted."""
    markets: tuple[Identifier, ...] | None = None
    """Markets it touches; all when omitted."""


class EngineSettings(_Frozen):
    """The data the engine has before the drop. Nothing here tunes how it learns: the engine
    runs at its defaults (:mod:`pricing.engine`) on every scenario."""

    history_hours: int = Field(default=0, ge=0, le=24 * 28)
    """Hours of the shop's ordinary sales before the drop (no events; mostly at the list
    price with an occasional markdown day; a daily restock, so busy days sell out and
    are censored): the engine's pre-drop panel."""
    compiled_fit_max_rows: int = Field(default=200, ge=0)
    """Run the compiled fit up to this many rows, the eager one above (see simulate)."""


class TruthSettings(_Frozen):
    """How the simulated shoppers depart from the engine's model (:mod:`pricing.truth`)."""

    choice: bool = False
    """The SKUs of a market share their shoppers (multinomial logit with an outside option):
    variants substitute, and a sold-out variant spills its shoppers onto the others."""
    dispersion: Positive | None = None
    """Negative-binomial size ``k`` (variance ``λ + λ²/k``); Poisson when omitted."""
    reference_effect: float = Field(default=0.0, ge=0, le=10)
    """How much a price above the shoppers' remembered price costs beyond the elasticity."""
    strategic_share: float = Field(default=0.0, ge=0, lt=1)
    """Share of shoppers who wait while the price is above its lowest so far in the window."""
    patience: float = Field(default=0.8, ge=0, lt=1)
    """Share of waiting shoppers still waiting an hour later."""
    return_rate: float = Field(default=0.0, ge=0, lt=1)
    """Share of units sold that come back (refunded, back on the shelf)."""
    return_delay_hours: int = Field(default=24, ge=1, le=24 * 30)
    """Open hours between a sale and its return."""


class Prior(_Frozen):
    """An operator's elasticity prior for a category: ``β ~ N(mean, sd²)``."""

    mean: float = Field(ge=-10, le=0)
    """Prior mean elasticity."""
    sd: Positive = 1.0
    """Prior standard deviation."""


class Scenario(_Frozen):
    """A simulated drop: SKUs, markets, windows, true demand and the event schedule."""

    name: Identifier
    """Scenario name (reports)."""
    description: str = ""
    """What the scenario represents."""
    horizon_hours: int = Field(ge=1, le=24 * 60)
    """Clock hours simulated."""
    windows: tuple[Window, ...] | None = None
    """Selling windows (default: one window over the whole horizon)."""
    markets: tuple[Market, ...] = Field(min_length=1)
    """Markets."""
    daily_profile: Profile = "retail"
    """Relative demand by hour of day (24 values), or ``flat``, ``retail``, ``evening``,
    ``morning``."""
    intensity_window_hours: int = Field(default=72, ge=24, le=72)
    """An event stops counting this many hours after it happened."""
    event_types: dict[Identifier, EventType] = Field(default_factory=dict)
    """Event kinds and their decay."""
    events: tuple[EventSpec, ...] = ()
    """Scheduled events."""
    skus: tuple[ScenarioSku, ...] = ()
    """Listed SKUs."""
    catalogue: Catalogue | None = None
    """Drawn SKUs (added after the listed ones)."""
    guardrails: GuardrailsSpec = GuardrailsSpec()
    """Guardrails of every SKU (SKUs override field by field)."""
    objective: Literal["revenue", "profit"] = "revenue"
    """What the DP policies maximise."""
    priors: dict[Identifier, Annotated[float, Field(ge=-10, le=0)] | Prior] = Field(
        default_factory=dict
    )
    """Engine's elasticity prior per category, a mean (sd 1) or ``{mean, sd}``: the
    operator's belief, not the truth."""
    engine: EngineSettings = EngineSettings()
    """The data the engine has before the drop."""
    truth: TruthSettings = TruthSettings()
    """How the shoppers depart from the engine's model."""

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        errors: list[str] = []
        if not self.skus and self.catalogue is None:
            errors.append("skus: list at least one SKU or give a catalogue block")
        markets = [m.name for m in self.markets]
        if len(set(markets)) != len(markets):
            errors.append(f"markets: duplicate market names in {markets}")
        if isinstance(self.daily_profile, tuple) and len(self.daily_profile) != 24:
            errors.append(f"daily_profile: give 24 hourly values, got {len(self.daily_profile)}")
        for i, sku in enumerate(self.skus):
            prof = sku.demand.daily_profile
            if isinstance(prof, tuple) and len(prof) != 24:
                errors.append(
                    f"skus.{i}.demand.daily_profile: give 24 hourly values, got {len(prof)}"
                )
        windows = self.windows or (Window(start_hour=0, end_hour=self.horizon_hours),)
        for i, w in enumerate(windows):
            if w.end_hour > self.horizon_hours:
                errors.append(
                    f"windows.{i}.end_hour: {w.end_hour} is past horizon_hours {self.horizon_hours}"
                )
            if i and w.start_hour < windows[i - 1].end_hour:
                errors.append(f"windows.{i}: overlaps or precedes window {i - 1}")
        seen: set[str] = set()
        for i, sku in enumerate(self.skus):
            if sku.sku in seen:
                errors.append(f"skus.{i}.sku: duplicate SKU {sku.sku!r}")
            seen.add(sku.sku)
            unknown = sorted(set(sku.inventory) - set(markets))
            if unknown:
                errors.append(f"skus.{i}.inventory: unknown market(s) {unknown}, allowed {markets}")
        for i, ev in enumerate(self.events):
            if ev.type not in self.event_types:
                errors.append(
                    f"events.{i}.type: unknown event type {ev.type!r}, allowed "
                    f"{sorted(self.event_types)}"
                )
            if ev.hour >= self.horizon_hours:
                errors.append(
                    f"events.{i}.hour: {ev.hour} is past horizon_hours {self.horizon_hours}"
                )
            if ev.skus is not None and self.catalogue is None:
                missing = sorted(set(ev.skus) - seen)
                if missing:
                    errors.append(f"events.{i}.skus: unknown SKU(s) {missing}")
            if ev.markets is not None:
                missing = sorted(set(ev.markets) - set(markets))
                if missing:
                    errors.append(
                        f"events.{i}.markets: unknown market(s) {missing}, allowed {markets}"
                    )
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def selling_windows(self) -> tuple[Window, ...]:
        """The windows, defaulting to the whole horizon."""
        return self.windows or (Window(start_hour=0, end_hour=self.horizon_hours),)

    @property
    def profile(self) -> np.ndarray:
        """Relative demand by hour of day ``[24]``, normalised to mean one."""
        return profile_values(self.daily_profile)

    def prior(self, category: str) -> tuple[float, float] | None:
        """The engine's ``(mean, sd)`` elasticity prior for ``category``, if configured."""
        entry = self.priors.get(category)
        if entry is None:
            return None
        if isinstance(entry, Prior):
            return entry.mean, entry.sd
        return float(entry), 1.0

    def all_skus(self) -> tuple[ScenarioSku, ...]:
        """Listed SKUs followed by the catalogue's drawn SKUs."""
        if self.catalogue is None:
            return self.skus
        c = self.catalogue
        rng = np.random.default_rng(c.seed)
        n = c.count

        def u(r: Range) -> np.ndarray:
            return rng.uniform(r[0], r[1], n)

        price = np.round(u(c.list_price), 2)
        rate, beta, lift, shift = (
            u(c.base_rate),
            u(c.elasticity),
            u(c.intensity_lift),
            u(c.intensity_elasticity),
        )
        stock = rng.integers(c.inventory[0], c.inventory[1] + 1, (n, len(self.markets)))
        drawn = tuple(
            ScenarioSku(
                sku=f"{c.prefix}-{i:05d}",
                category=c.category,
                list_price=float(price[i]),
                unit_cost=float(np.round(c.unit_cost_share * price[i], 2)),
                inventory={m.name: int(stock[i, j]) for j, m in enumerate(self.markets)},
                demand=DemandTruth(
                    base_rate=float(rate[i]),
                    elasticity=float(beta[i]),
                    intensity_lift=float(lift[i]),
                    intensity_elasticity=float(shift[i]),
                ),
            )
            for i in range(n)
        )
        return self.skus + drawn


def _format_errors(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        received = e.get("input")
        shown = repr(received)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {path}: {msg} (got {shown})")
    return "\n".join(lines)


def parse_scenario(data: Any, *, source: str = "<scenario>") -> Scenario:
    """Validate a scenario mapping (e.g. parsed YAML).

    Raises:
        ScenarioError: naming ``source`` and the field path of each problem.
    """
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}: a scenario must be a mapping of fields, got {type(data).__name__}"
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format_errors(source, err)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate ``path`` (YAML).

    Raises:
        ScenarioError: the file is missing, not YAML, or a field is invalid (the message
            names the file and the field path).

    Example:
        >>> scenario = load_scenario("configs/scenarios/hot-creator-drop.yaml")  # doctest: +SKIP
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{p}: cannot read scenario file ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(f"{p}: not valid YAML: {err}") from None
    return parse_scenario(data, source=str(p))
