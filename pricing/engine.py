"""The engine's pricing loop at its defaults: posterior sampling on inventory-aware surfaces.

What the product does during a drop, with no per-drop settings (the rules below depend only
on the guardrails, the window's length and the data):

1. **Posterior sampling from the first period** (Thompson sampling with inventory,
   Ferreira, Simchi-Levi & Wang 2018, on the DP instead of their LP): at every re-solve
   draw one set of demand parameters per row from the posterior (the Laplace posterior of
   :func:`pricing.model.fit_elasticity`, or the category prior before any sale), and serve
   the DP surface (:func:`pricing.policy.solve_surfaces`) of that draw. Exploration is
   therefore as wide as the posterior and no wider, and it is priced with the stock and the
   time left: scarce stock is never sold off cheaply to learn. Before any data the demand
   level is the neutral guess of the baseline, the rate that just sells the stock over the
   open hours, with a log-normal spread of one.
2. **The price grid comes from the guardrails and the posterior** (:func:`price_grid`):
   floor to ceiling where set; an open side starts at 0.5x / 2x the list price and widens
   by half whenever the surface's current cell sits on that edge, up to 0.1x / 10x.
3. **The intensity terms are used only when the data move them** (:func:`identified`):
   the exogenous index (announcements, claims, listings; built from the event log by
   :func:`pricing.intensity.build_intensity_index` with the production weights) must vary
   across the observed hours, else the fit leaves γ, δ out and tracks the level.
4. **Re-fit cadence from the window and the data** (:func:`refit_due`): after 1, 2, 3, 4,
   6, 8, 12, ... observed hours (each gap at most a third longer than the data before it),
   never more than an eighth of the window apart, and whenever a window opens or a new
   event is seen.

References:
    Ferreira, K. J., Simchi-Levi, D. and Wang, H. (2018). Online network revenue management
    using Thompson sampling. Operations Research 66(6), 1586-1602.
    Gallego, G. and van Ryzin, G. (1994). Management Science 40(8), 999-1020.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import numpy as np
import pandas as pd

from pricing.baselines import SurfacePolicy
from pricing.exceptions import InputError
from pricing.guardrails import GuardrailSpec
from pricing.intensity import IntensityParams, build_intensity_index, forecast_intensity
from pricing.model import fit_elasticity
from pricing.world import START, World

__all__ = [
    "GRID_SIZE",
    "EnginePolicy",
    "exogenous_index",
    "grid_edges",
    "identified",
    "price_grid",
    "refit_due",
    "widen",
]

GRID_SIZE = 24
"""Prices on each row's DP grid."""
_OPEN_SPAN = (0.5, 2.0)  # first span of an unbounded side, multiples of the list price
_MAX_SPAN = (0.1, 10.0)  # widest span of an unbounded side
_WIDEN = 1.5  # factor an edge moves by when the optimum sits on it
_IDENTIFIED_SD = 0.2  # intensity must vary this much over the observed hours ...
_IDENTIFIED_HOURS = 6  # ... with at least this many hours above zero
_FALLBACK_PRIOR = (-1.0, 2.0)  # elasticity prior of a category the operator gave none
_PAD_PERIODS = 24  # the fit's panel is padded to a multiple of this many periods per row
_PAD_OFFSET = 100_000  # pad cells sit this many hours after the drop's start
_EXOGENOUS = ("announcement", "claim", "listing")  # index parts the fit may use


def grid_edges(spec: GuardrailSpec, list_price: float) -> tuple[float, float]:
    """First ``(low, high)`` of a row's grid: the floor and ceiling where the operator set
    them, else 0.5x / 2x the list price (inside the static bounds)."""
    lo_bound, hi_bound = spec.bounds
    lo = lo_bound if spec.floor is not None else max(lo_bound, _OPEN_SPAN[0] * list_price)
    hi = hi_bound if math.isfinite(hi_bound) else max(_OPEN_SPAN[1] * list_price, lo)
    return lo, max(hi, lo)


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


def widen(
    spec: GuardrailSpec,
    list_price: float,
    low: float,
    high: float,
    served: float,
    grid: np.ndarray,
) -> tuple[float, float, bool]:
    """Move an open edge out by half when ``served`` sits on it.

    An edge is open when the operator set no bound there; it never passes the static
    bounds, 0.1x or 10x the list price.

    Returns:
        ``(low, high, changed)``.
    """
    if spec.ladder is not None:
        return low, high, False
    lo_bound, hi_bound = spec.bounds
    changed = False
    if served >= grid.max() - 1e-9 and not math.isfinite(hi_bound):
        new = min(high * _WIDEN, _MAX_SPAN[1] * list_price)
        changed = new > high * (1 + 1e-9)
        high = new
    if served <= grid.min() + 1e-9 and spec.floor is None:
        new = max(low / _WIDEN, _MAX_SPAN[0] * list_price, lo_bound)
        changed = changed or new < low * (1 - 1e-9)
        low = new
    return low, high, changed


def identified(intensity: np.ndarray) -> bool:
    """True when the observed exogenous intensity moves enough to fit γ and δ.

    Args:
        intensity: ``[cells]`` exogenous index of the observed panel cells.
    """
    values = np.asarray(intensity, dtype=float)
    if values.size == 0:
        return False
    return bool(
        np.std(values) >= _IDENTIFIED_SD and np.count_nonzero(values > 1e-6) >= _IDENTIFIED_HOURS
    )


def refit_due(observed_hours: int, last_fit_hours: int, window_hours: int) -> bool:
    """Whether to re-fit after ``observed_hours`` of data when the last fit had ``last_fit_hours``.

    Early data are worth most, so re-fits are dense at first (1, 2, 3, 4, 6, 8, 12, ...:
    each gap at most a third of the data so far) and at least every eighth of the window.
    """
    if observed_hours <= last_fit_hours:
        return False
    gap = observed_hours - last_fit_hours
    cap = max(1, window_hours // 8)
    return gap >= min(cap, max(1, math.ceil(last_fit_hours / 3)))


def draw_cold_start(
    n_rows: int,
    log_rate: np.ndarray,
    prior_mean: np.ndarray,
    prior_sd: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One draw of ``(log rate at list, elasticity)`` per row before any sale.

    The level is the neutral guess ``log_rate`` with a log-normal spread of one; the
    elasticity comes from the category prior.
    """
    alpha = log_rate + rng.normal(size=n_rows)
    beta = prior_mean + prior_sd * rng.normal(size=n_rows)
    return alpha, np.minimum(beta, -0.05)


FitFn = Callable[..., Any]


class EnginePolicy(SurfacePolicy):
    """The engine in the closed loop: what production sees, priced at the engine's defaults.

    Sees the shop's event log (its exogenous index built with the production weights and
    half-lives), its own sales and stock-outs, the guardrails, the category priors and the
    pre-drop history, never the truth. See the module docstring for the rules.
    """

    name = "engine"

    def __init__(
        self,
        world: World,
        *,
        history: pd.DataFrame | None = None,
        key: jax.Array,
        compiled_fit_max_rows: int = 200,
        fitter: FitFn | None = None,
        params: IntensityParams | None = None,
    ) -> None:
        w = world
        self.specs = w.specs
        self.low, self.high = np.array(
            [grid_edges(sp, lp) for sp, lp in zip(w.specs, w.list_price, strict=True)]
        ).T
        super().__init__(world, self._grid())
        if fitter is None:
            # The compiled fit specialises on the number of sold-out cells, so a drop with
            # many rows selling out at different hours would compile at almost every re-fit;
            # above ``compiled_fit_max_rows`` rows the same fit runs eagerly instead.
            fitter = partial(fit_elasticity, jit=w.inventory.size <= compiled_fit_max_rows)
        self.fitter = fitter
        self.key = key
        self.rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        self.params = params or IntensityParams()
        self.exo, self.exo_parts = exogenous_index(w, self.params)
        self.keys = list(zip(w.sku.tolist(), w.market.tolist(), strict=True))
        self.priors = {
            c: (float(m), float(sd))
            for c, m, sd in zip(w.category, w.prior_mean, w.prior_sd, strict=True)
            if np.isfinite(m)
        }
        self.log: list[pd.DataFrame] = [] if history is None or history.empty else [history]
        self.history_cells = 0 if history is None else len(history)
        self.fit: Any = None
        self.fit_rows: np.ndarray | None = None
        self.use_intensity = False
        self.observed = 0  # drop hours observed
        self.last_fit = -1

    def _grid(self) -> np.ndarray:
        return np.stack(
            [
                price_grid(sp, lo, hi)
                for sp, lo, hi in zip(self.specs, self.low, self.high, strict=True)
            ]
        )

    # ------------------------------------------------------------------ deciding

    def needs_solve(self, period: int) -> bool:
        return False  # :meth:`propose` decides when to re-solve

    def propose(self, period: int, stock: np.ndarray) -> np.ndarray:
        w = self.world
        due = (
            self.surface is None
            or bool(w.window_opens[period])
            or bool(w.new_event[period])
            or refit_due(self.observed, self.last_fit, int(w.window_hours[period]))
        )
        if due:
            if self.log and (self.observed > self.last_fit or self.fit is None):
                self.refit(period)
            self.resolve(period, stock)
        return super().propose(period, stock)

    def resolve(self, period: int, stock: np.ndarray) -> None:
        """Draw from the posterior, solve its surface, widen an edge the optimum sits on."""
        self.key, sub = jax.random.split(self.key)
        draw = self._draw(sub)
        for _ in range(3):
            self.solve(period, stock, self._rates(period, draw))
            assert self.surface is not None
            now = self.surface[self.rows, stock, 0]
            changed = False
            for r in range(self.rows.size):
                lo, hi, moved = widen(
                    self.specs[r], float(self.world.list_price[r]), self.low[r], self.high[r],
                    float(now[r]), self.ladder[r],
                )  # fmt: skip
                self.low[r], self.high[r] = lo, hi
                changed = changed or moved
            if not changed:
                break
            self.ladder = self._grid()

    def _draw(self, key: jax.Array) -> Any:
        w = self.world
        if self.fit is None:
            rate = np.log(np.maximum(w.inventory / w.hours.size, 1e-3))
            mean = np.where(np.isfinite(w.prior_mean), w.prior_mean, _FALLBACK_PRIOR[0])
            sd = np.where(np.isfinite(w.prior_sd), w.prior_sd, _FALLBACK_PRIOR[1])
            return draw_cold_start(w.inventory.size, rate, mean, sd, self.rng)
        return self.fit.sample_params(1, key=key)

    def _rates(self, period: int, draw: Any) -> np.ndarray:
        w = self.world
        hours = w.hours[period:] % 24
        if self.fit is None:
            alpha, beta = draw
            x = np.log(self.ladder / w.list_price[:, None])  # [R, K]
            rates = np.exp(alpha[:, None] + beta[:, None] * x)[:, None, :]
            return np.broadcast_to(rates, (w.inventory.size, hours.size, x.shape[1])).copy()
        assert self.fit_rows is not None
        order = np.empty_like(self.fit_rows)
        order[self.fit_rows] = np.arange(self.fit_rows.size)
        inten = None
        if self.use_intensity:
            inten = self._forecast(period)[order]
        one = type(draw)(*(np.asarray(a)[0] for a in draw))
        rates = self.fit.demand_rates(self.ladder[order], intensity=inten, hours=hours, params=one)
        return np.asarray(rates)[self.fit_rows]

    def _forecast(self, period: int) -> np.ndarray:
        """``[R, P - period]`` the engine's own exogenous index, decaying from its value now."""
        w = self.world
        offsets = (w.hours[period:] - w.hours[period]).astype(np.float64)
        out = np.zeros((w.inventory.size, offsets.size))
        for kind, part in self.exo_parts.items():
            out += forecast_intensity(part[:, period], offsets, self.params.half_life(kind))
        return out

    # ------------------------------------------------------------------ learning

    def refit(self, period: int) -> None:
        panel = self._padded_panel()
        observed = panel[panel["period"] < START + pd.Timedelta(hours=_PAD_OFFSET)]
        self.use_intensity = identified(observed["intensity"].to_numpy())
        cats = dict(zip(self.world.sku.tolist(), self.world.category.tolist(), strict=True))
        try:
            fit = self.fitter(
                panel,
                sku="sku",
                market="market",
                period="period",
                price="price",
                quantity="quantity",
                intensity="intensity" if self.use_intensity else None,
                sold_out="sold_out",
                priors=self.priors or None,
                categories=cats,
                init=self.fit
                if self.fit is not None and self.fit.has_intensity == self.use_intensity
                else None,
            )
        except InputError:
            return  # keep the previous fit (or the prior) and price on
        index = {k: i for i, k in enumerate(fit.keys)}
        if any(k not in index for k in self.keys):
            return
        self.fit = fit
        self.fit_rows = np.array([index[k] for k in self.keys])
        self.last_fit = self.observed

    def _padded_panel(self) -> pd.DataFrame:
        """Observed panel plus zero-information cells up to a fixed number of periods.

        The fit compiles one program per panel shape; padding every row to the next
        multiple of ``_PAD_PERIODS`` observed periods keeps the shape fixed between re-fits
        (one compile per bucket, reused across seeds). A pad cell is a sold-out period with
        zero units, whose likelihood is P(D ≥ 0) = 1: it carries no information.
        """
        panel = pd.concat(self.log, ignore_index=True)
        counts = panel.groupby(["sku", "market"], sort=False).size()
        target = int(-(-counts.max() // _PAD_PERIODS) * _PAD_PERIODS)
        need = target - counts
        need = need[need > 0]
        if need.empty:
            return panel
        last = panel.groupby(["sku", "market"], sort=False).last()
        pads = []
        for (sku, market), k in need.items():
            row = last.loc[(sku, market)]
            pads.append(
                pd.DataFrame(
                    {
                        "sku": sku,
                        "market": market,
                        "period": START + pd.to_timedelta(_PAD_OFFSET + np.arange(k), "h"),
                        "price": row["price"],
                        "quantity": 0.0,
                        "intensity": 0.0,
                        "sold_out": True,
                    }
                )
            )
        return pd.concat([panel, *pads], ignore_index=True)

    def observe(self, period: int, price: np.ndarray, sold: np.ndarray, stock: np.ndarray) -> None:
        w = self.world
        self.observed += 1
        was_open = stock + sold > 0  # a row with nothing to sell tells nothing
        if not was_open.any():
            return
        self.log.append(
            pd.DataFrame(
                {
                    "sku": w.sku[was_open],
                    "market": w.market[was_open],
                    "period": START + pd.Timedelta(hours=int(w.hours[period])),
                    "price": price[was_open],
                    "quantity": sold[was_open].astype(np.float64),
                    "intensity": self.exo[was_open, period],
                    "sold_out": stock[was_open] == 0,
                }
            )
        )


def exogenous_index(
    world: World, params: IntensityParams
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The engine's exogenous index ``[R, P]`` at each open hour, and its parts per kind.

    Built from the shop's event log by :func:`pricing.intensity.build_intensity_index` with
    ``params`` (the production weights and half-lives); only announcements, claims and
    listing changes count, as in the service's re-fit (the sales terms would regress sales
    on themselves). The index at an hour uses only the events seen by then.
    """
    w = world
    r, p = w.inventory.size, w.hours.size
    total = np.zeros((r, p))
    parts = {k: np.zeros((r, p)) for k in _EXOGENOUS}
    if w.events.empty:
        return total, parts
    # Start at the first event so every row an event touched has its key (events before
    # ``start`` would only lead in).
    index = build_intensity_index(
        w.events,
        params=params,
        start=min(w.events["ts"].min(), START + pd.Timedelta(hours=int(w.hours[0]))),
        end=START + pd.Timedelta(hours=int(w.hours[-1])),
    )
    row = {k: i for i, k in enumerate(zip(w.sku.tolist(), w.market.tolist(), strict=True))}
    hour = ((index["hour"] - START) / pd.Timedelta(hours=1)).to_numpy().astype(np.int64)
    col = np.searchsorted(w.hours, hour)
    ok = (col < p) & (w.hours[np.minimum(col, p - 1)] == hour)
    keys = zip(index["sku"], index["market"], strict=True)
    rows = np.array([row.get(k, -1) for k in keys], dtype=np.int64)
    ok = np.asarray(ok, dtype=bool) & (rows >= 0)
    for kind in _EXOGENOUS:
        parts[kind][rows[ok], col[ok]] = index[kind].to_numpy()[ok]
    total = sum(parts.values(), np.zeros((r, p)))
    return total, parts
