"""A scenario made concrete for the simulator: rows, the truth, the event log, the ladders.

The world keeps two sides apart:

- **the truth** (:class:`~pricing.truth.Truth`, the true intensity components and their
  half-lives): what the shoppers do; only the full-information policy and the bounds read it;
- **what production sees**: the shop's event log (:attr:`World.events`, announcements,
  claims and listing changes as the service records them), the guardrails, the stock, the
  operator's category priors and, where the scenario has it, a pre-drop sales history
  shaped like a shop's (:func:`shop_history`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pricing.events import EVENT_KINDS, STIMULUS_KINDS
from pricing.exceptions import GuardrailError, ScenarioError
from pricing.guardrails import GuardrailSpec, GuardrailTable, candidate_ladder, stack_guardrails
from pricing.intensity import forecast_intensity
from pricing.scenario import Scenario, profile_values
from pricing.truth import SHAPES, Truth

__all__ = ["START", "World", "build_world", "shop_history"]

START = pd.Timestamp("2026-01-05 00:00", tz="UTC")
"""Clock hour 0 of every simulated drop."""
FULL_RANGE = (0.1, 10.0)  # an unbounded side of the full-information grid, x list price
FULL_GRID = 96  # prices on the full-information grid
BASELINE_GRID = 16  # prices on the baselines' ladder (0.5x-2x list inside the guardrails)
_MARKDOWN_DAY = 0.15  # share of history days a shop marks down
_MARKDOWN = 0.85  # the markdown, x list price
_SIZE_FIELDS = tuple(dict.fromkeys(EVENT_KINDS[k].size_field for k in STIMULUS_KINDS))
_RESTOCK_COVER = 1.25  # a history day's stock, x expected daily demand at list


class World(NamedTuple):
    """One scenario made concrete: ``R`` SKU-market rows over ``P`` open hours.

    Attributes:
        sku, market, category: ``[R]`` row keys.
        list_price, unit_cost, salvage: ``[R]``.
        inventory: ``[R]`` units at the start.
        truth: the shoppers (:class:`pricing.truth.Truth`).
        hours: ``[P]`` clock hour of each open period.
        window_opens: ``[P]`` True where a selling window opens.
        window_hours: ``[P]`` length of the window each period belongs to.
        components: ``[C, R, P]`` true intensity per event type at each open period.
        half_lives: ``[C]`` true half-lives (hours).
        new_event: ``[P]`` True where an event became visible since the previous period.
        events: the shop's event log (``ts``, ``type``, ``sku``, ``market``, ``reach``,
            ``count``, ``weight``), each event stamped with the hour it became visible.
        specs: ``R`` guardrail specs; guardrails: the same stacked as arrays.
        ladder: ``[R, K]`` the baselines' ladder (floor to ceiling where set, else 0.5x-2x
            list; padded by repeating the top price).
        full_ladder: ``[R, K_full]`` the whole allowed range on a fine grid (0.1x-10x list
            where a side is unbounded): what the full-information policy and bounds use.
        prior_mean, prior_sd: ``[R]`` the operator's elasticity prior (``nan``: none).
        profit: True when the objective is profit net of unit cost.
    """

    sku: np.ndarray
    market: np.ndarray
    category: np.ndarray
    list_price: np.ndarray
    unit_cost: np.ndarray
    salvage: np.ndarray
    inventory: np.ndarray
    truth: Truth
    hours: np.ndarray
    window_opens: np.ndarray
    window_hours: np.ndarray
    components: np.ndarray
    half_lives: np.ndarray
    new_event: np.ndarray
    events: pd.DataFrame
    specs: tuple[GuardrailSpec, ...]
    guardrails: GuardrailTable
    ladder: np.ndarray
    full_ladder: np.ndarray
    prior_mean: np.ndarray
    prior_sd: np.ndarray
    profit: bool

    @property
    def intensity(self) -> np.ndarray:
        """``[R, P]`` true intensity at each open period."""
        return self.truth.intensity

    def true_rate(self, price: np.ndarray, period: int) -> np.ndarray:
        """Memoryless expected units ``[R]`` in open period ``period`` at ``price``."""
        rates = self.truth.expected_rates(
            price[:, None], period, self.intensity[:, period : period + 1]
        )
        return rates[:, 0, 0]

    def intensity_forecast(self, period: int) -> np.ndarray:
        """``[R, P - period]`` true intensity expected for the rest of the drop, from events seen.

        Each event type's current component decays with its true half-life
        (:func:`pricing.intensity.forecast_intensity`); future events are unknown.
        """
        offsets = (self.hours[period:] - self.hours[period]).astype(np.float64)
        out = np.zeros((self.components.shape[1], offsets.size))
        for c, half in enumerate(self.half_lives):
            out += forecast_intensity(self.components[c, :, period], offsets, float(half))
        return out


def _ladder(
    spec: GuardrailSpec, list_price: float, span: tuple[float, float], size: int
) -> np.ndarray:
    lo_bound, hi_bound = spec.bounds
    lo = lo_bound if spec.floor is not None else max(lo_bound, span[0] * list_price)
    hi = hi_bound if math.isfinite(hi_bound) else span[1] * list_price
    return candidate_ladder(
        spec, list_price, size=size, spread=(lo / list_price, max(hi, lo) / list_price)
    )


def _pad(ladders: list[np.ndarray]) -> np.ndarray:
    k = max(lad.size for lad in ladders)
    return np.stack([np.pad(lad, (0, k - lad.size), mode="edge") for lad in ladders])


def build_world(scenario: Scenario, *, source: str = "<scenario>") -> World:
    """Expand a scenario into arrays (rows are SKU-markets with stock).

    Raises:
        ScenarioError: a SKU's guardrails cannot be satisfied (names the SKU).
    """
    markets = {m.name: m for m in scenario.markets}
    rows: list[tuple[Any, Any]] = []
    for sku in scenario.all_skus():
        for mname in markets:
            if sku.inventory.get(mname, 0) > 0:
                rows.append((sku, markets[mname]))
    if not rows:
        raise ScenarioError(f"{source}: skus.*.inventory: no SKU has stock in any market")
    r = len(rows)
    windows = scenario.selling_windows
    hours = np.concatenate([np.arange(w.start_hour, w.end_hour) for w in windows])
    opens = np.isin(hours, [w.start_hour for w in windows])
    window_hours = np.concatenate(
        [np.full(w.end_hour - w.start_hour, w.end_hour - w.start_hour) for w in windows]
    )
    types = sorted(scenario.event_types)
    comp = np.zeros((len(types), r, hours.size))
    row_sku = np.array([s.sku for s, _ in rows])
    row_mkt = np.array([m.name for _, m in rows])
    window = scenario.intensity_window_hours
    new_event = np.zeros(hours.size, dtype=bool)
    log: list[dict[str, Any]] = []
    for ev in scenario.events:
        c = types.index(ev.type)
        et = scenario.event_types[ev.type]
        hit = np.ones(r, dtype=bool)
        if ev.skus is not None:
            hit &= np.isin(row_sku, ev.skus)
        if ev.markets is not None:
            hit &= np.isin(row_mkt, ev.markets)
        age = hours - ev.hour
        live = (age >= 0) & (age <= window)
        decay = np.where(
            live, et.weight * ev.size * np.exp2(-np.maximum(age, 0) / et.half_life_hours), 0.0
        )
        comp[c] += hit[:, None] * decay[None, :]
        if np.any(age >= 0) and hit.any():
            new_event[int(np.argmax(age >= 0))] = True
        kind = et.log_kind(ev.type)
        seen = START + pd.Timedelta(hours=math.ceil(ev.hour))
        for i in np.flatnonzero(hit):
            log.append(_log_entry(seen, kind, row_sku[i], row_mkt[i], ev.size))
    new_event[0] = True
    guard = scenario.guardrails
    specs: list[GuardrailSpec] = []
    for sku, _ in rows:
        try:
            specs.append(guard.merged(sku.guardrails).to_spec(sku.unit_cost))
        except GuardrailError as err:
            raise ScenarioError(f"{source}: skus[{sku.sku}].guardrails: {err}") from None
    list_price = np.array([s.list_price for s, _ in rows])
    ladder = _pad(
        [
            _ladder(sp, lp, (0.5, 2.0), BASELINE_GRID)
            for sp, lp in zip(specs, list_price, strict=True)
        ]
    )
    full = _pad(
        [_ladder(sp, lp, FULL_RANGE, FULL_GRID) for sp, lp in zip(specs, list_price, strict=True)]
    )
    base_profile = scenario.profile
    profiles = np.stack(
        [
            np.log(profile_values(s.demand.daily_profile))
            if s.demand.daily_profile is not None
            else np.log(base_profile)
            for s, _ in rows
        ]
    )
    ts = scenario.truth
    groups = {m: i for i, m in enumerate(markets)}
    truth = Truth(
        shape=np.array([SHAPES.index(s.demand.shape) for s, _ in rows]),
        log_base=np.log([s.demand.base_rate * m.demand_scale for s, m in rows]),
        elasticity=np.array([s.demand.elasticity + m.elasticity_shift for s, m in rows]),
        intensity_lift=np.array([s.demand.intensity_lift for s, _ in rows]),
        intensity_shift=np.array([s.demand.intensity_elasticity for s, _ in rows]),
        list_price=list_price,
        log_profile=profiles,
        intensity=comp.sum(axis=0),
        hours=hours.astype(np.int64),
        group=np.array([groups[m.name] if ts.choice else -1 for _, m in rows]),
        dispersion=float("inf") if ts.dispersion is None else float(ts.dispersion),
        reference_effect=ts.reference_effect,
        strategic_share=ts.strategic_share,
        patience=ts.patience,
        return_rate=ts.return_rate,
        return_delay=ts.return_delay_hours,
    )
    priors = [scenario.prior(s.category) for s, _ in rows]
    events = pd.DataFrame(log, columns=["ts", "type", "sku", "market", "reach", "count", "weight"])
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    return World(
        sku=row_sku,
        market=row_mkt,
        category=np.array([s.category for s, _ in rows]),
        list_price=list_price,
        unit_cost=np.array([s.unit_cost for s, _ in rows]),
        salvage=np.array([s.salvage_value for s, _ in rows]),
        inventory=np.array([s.inventory[m.name] for s, m in rows], dtype=np.int64),
        truth=truth,
        hours=hours.astype(np.int64),
        window_opens=opens,
        window_hours=window_hours.astype(np.int64),
        components=comp,
        half_lives=np.array([scenario.event_types[t].half_life_hours for t in types]),
        new_event=new_event,
        events=events,
        specs=tuple(specs),
        guardrails=stack_guardrails(specs, r),
        ladder=ladder,
        full_ladder=full,
        prior_mean=np.array([np.nan if p is None else p[0] for p in priors]),
        prior_sd=np.array([np.nan if p is None else p[1] for p in priors]),
        profit=scenario.objective == "profit",
    )


def _log_entry(ts: pd.Timestamp, kind: str, sku: str, market: str, size: float) -> dict[str, Any]:
    """One row of the shop's event log, with the size in the field production records.

    The size goes to the kind's size field (:data:`pricing.events.EVENT_KINDS`); a kind the
    index scores on a log scale (an announcement's reach) records ``e^size − 1``, so the
    index sees the truth's size either way.
    """
    spec = EVENT_KINDS[kind]
    row: dict[str, Any] = {"ts": ts, "type": kind, "sku": sku, "market": market}
    row.update({field: np.nan for field in _SIZE_FIELDS})
    row[spec.size_field] = math.expm1(size) if spec.log_size else size
    return row


def shop_history(world: World, hours: int, rng: np.random.Generator) -> pd.DataFrame:
    """The ``hours`` of ordinary sales before the drop, as a shop's records show them.

    Mostly at the list price, with a markdown day now and then; the shelf is restocked at
    midnight to a little over a day's expected demand, so busy days sell out and their last
    hours are censored. Demand is the truth at intensity 0 (shape, dispersion and daily
    profile included), drawn with ``rng``.

    Returns:
        Panel rows ``sku, market, period, price, quantity, intensity, sold_out``.
    """
    first = int(world.hours[0]) - hours
    r = world.inventory.size
    frames: list[pd.DataFrame] = []
    stock = np.zeros(r)
    markdown = np.zeros(r, dtype=bool)
    daily = 24.0 * np.exp(world.truth.log_base)  # expected units a day at list, intensity 0
    for h in range(first, int(world.hours[0])):
        if h == first or h % 24 == 0:
            stock = np.ceil(_RESTOCK_COVER * daily) + 1
            markdown = rng.random(r) < _MARKDOWN_DAY
        price = world.guardrails.snap(world.list_price * np.where(markdown, _MARKDOWN, 1.0))
        lam = world.truth.calm_rates(price, h % 24)
        demand = world.truth.draw(lam, np.clip(rng.random(r), 1e-12, 1 - 1e-12))
        open_shelf = stock > 0
        sold = np.minimum(demand, stock)
        stock = stock - sold
        frames.append(
            pd.DataFrame(
                {
                    "sku": world.sku[open_shelf],
                    "market": world.market[open_shelf],
                    "period": START + pd.Timedelta(hours=h),
                    "price": price[open_shelf],
                    "quantity": sold[open_shelf].astype(np.float64),
                    "intensity": 0.0,
                    "sold_out": (stock == 0)[open_shelf],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
