"""The engine's pricing loop at its defaults: Bayesian expected demand on inventory-aware surfaces.

What the product does during a drop, with no per-drop settings. Every rule below depends only
on the guardrails, the window's length, the stock and the data:

1. **Price the posterior, from the first period.** Before any sale the posterior is the
   operator's category prior for the elasticity and a neutral level for demand (on average
   the rate that just sells the stock at list over the open hours, log-normal with sd 1);
   after, the Laplace posterior of :func:`pricing.model.fit_elasticity` (with that level as
   its prior, ``level_priors``). The DP (:func:`pricing.policy.solve_surfaces`) prices
   the posterior **expected** demand, ``E[λ] = exp(a'θ̂ + ½ a'Σa)``
   (:meth:`~pricing.model.ElasticityFit.posterior_rates`): the expected revenue of a price
   averages over what the data still allow, so a drop whose demand is uncertain is priced
   for the rush it may be, and scarce stock is not sold off cheaply to learn. One posterior
   draw per re-solve (Thompson sampling with inventory, Ferreira, Simchi-Levi & Wang 2018)
   and the plug-in ``λ(θ̂)`` were both measured on the scenario suite and did worse on the
   scenarios tried (``benchmarks/RESULTS.md``).
2. **A category prior the data contradict is overruled** row by row
   (:func:`overrule_conflicts`): the data's own fit (empirical Bayes over the drop) replaces
   it where the two lie more than two combined standard deviations apart.
3. **The price grid comes from the guardrails and the data**
   (:func:`pricing.guardrails.trust_region`):
   inside the static bounds, within 1.5x of the prices the row has been seen at. Where the
   optimum sits at the edge, the next re-solve reaches 1.5x further; the model is never
   trusted far from its data (a log-linear curve carried to a 70 % markdown).
4. **The intensity terms are fitted only when the data move them** (:func:`identified`):
   the exogenous index (announcements, claims, listings, built from the event log by
   :func:`pricing.intensity.build_intensity_index` with the production weights and
   half-lives) must vary across the observed hours. Otherwise an event still lifts the
   forecast by a default prior lift per unit of the index.
5. **Re-fit cadence from the window and the data** (:func:`refit_due`): after 1, 2, 3, 4,
   6, 8, 12, ... observed hours (each gap at most a third of the data so far), at least
   every eighth of the window, and whenever a window opens or a new event is seen.

References:
    Ferreira, K. J., Simchi-Levi, D. and Wang, H. (2018). Online network revenue management
    using Thompson sampling. Operations Research 66(6), 1586-1602.
    Gallego, G. and van Ryzin, G. (1994). Management Science 40(8), 999-1020.
    Evans, M. and Moshonov, H. (2006). Checking for prior-data conflict. Bayesian Analysis
    1(4), 893-914.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from pricing.baselines import SurfacePolicy
from pricing.events import STIMULUS_KINDS
from pricing.exceptions import InputError
from pricing.guardrails import POLICY_EXTRAPOLATION, price_grid, trust_region
from pricing.intensity import IntensityParams, build_intensity_index, forecast_intensity
from pricing.model import FALLBACK_PRIOR, DemandParams, ElasticityFit, fit_elasticity
from pricing.world import START, World

__all__ = [
    "EnginePolicy",
    "exogenous_index",
    "overrule_conflicts",
    "identified",
    "refit_due",
]

_IDENTIFIED_SD = 0.2  # intensity must vary this much over the observed hours ...
_IDENTIFIED_HOURS = 6  # ... with at least this many hours above zero
_MAX_LOG_VAR = 1.0  # cap on the log-scale variance a rate is averaged over
_CONFLICT_Z = 2.0  # prior-data conflict threshold, in combined standard deviations
_LEVEL_SD = 1.0  # prior sd of the log demand level around the neutral guess
_LIFT_PRIOR = 0.25  # log-demand lift per unit of the index
_PAD_PERIODS = 24  # the fit's panel is padded to a multiple of this many periods per row
_PAD_OFFSET = 100_000  # pad cells sit this many hours after the drop's start


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
        compiled_fit_max_rows: int = 200,
        fitter: FitFn | None = None,
        params: IntensityParams | None = None,
    ) -> None:
        w = world
        self.specs = w.specs
        self.seen_low = w.list_price.astype(np.float64).copy()
        self.seen_high = self.seen_low.copy()
        if history is not None and not history.empty:
            keyed = history.groupby(["sku", "market"])["price"].agg(["min", "max"])
            for r, pair in enumerate(zip(w.sku.tolist(), w.market.tolist(), strict=True)):
                if pair in keyed.index:
                    self.seen_low[r] = min(self.seen_low[r], keyed.loc[pair, "min"])
                    self.seen_high[r] = max(self.seen_high[r], keyed.loc[pair, "max"])
        super().__init__(world, self._grid())
        if fitter is None:
            # The compiled fit specialises on the number of sold-out cells, so a drop with
            # many rows selling out at different hours would compile at almost every re-fit;
            # above ``compiled_fit_max_rows`` rows the same fit runs eagerly instead.
            fitter = partial(fit_elasticity, jit=w.inventory.size <= compiled_fit_max_rows)
        self.fitter = fitter
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
        self.fit_data: Any = None
        self.fit_rows: np.ndarray | None = None
        self.use_intensity = False
        self.observed = 0  # drop hours observed
        self.last_fit = -1
        # Neutral guess of the demand level: on average, the rate that just sells the stock
        # at list (the median of a log-normal with that mean).
        self.neutral = np.log(np.maximum(w.inventory / w.hours.size, 1e-3)) - 0.5 * _LEVEL_SD**2
        self.level_priors = {
            key: (float(self.neutral[r]), _LEVEL_SD, float(w.list_price[r]))
            for r, key in enumerate(self.keys)
        }
        self.fit_intensity = np.zeros(w.inventory.size)  # mean index the fit's level saw

    def _grid(self) -> np.ndarray:
        edges = [
            trust_region(sp, lo, hi)
            for sp, lo, hi in zip(self.specs, self.seen_low, self.seen_high, strict=True)
        ]
        return np.stack(
            [price_grid(sp, lo, hi) for sp, (lo, hi) in zip(self.specs, edges, strict=True)]
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
        """Solve the surface of the posterior expected demand on the trust region's grid."""
        self.ladder = self._grid()
        self.solve(period, stock, self._rates(period))

    def _rates(self, period: int) -> np.ndarray:
        """``[R, T, K]`` posterior expected demand (:meth:`~pricing.model.ElasticityFit.posterior_rates`) from ``period`` on."""
        w = self.world
        hours = w.hours[period:] % 24
        forecast = self._forecast(period)
        if self.fit is None:
            mean = np.where(np.isfinite(w.prior_mean), w.prior_mean, FALLBACK_PRIOR[0])
            sd = np.where(np.isfinite(w.prior_sd), w.prior_sd, FALLBACK_PRIOR[1])
            x = np.log(self.ladder / w.list_price[:, None])[:, None, :]  # [R, 1, K]
            log_rate = self.neutral[:, None, None] + mean[:, None, None] * x
            var = _LEVEL_SD**2 + (sd[:, None, None] * x) ** 2
            lift = _LIFT_PRIOR * forecast[:, :, None]
            return np.asarray(np.exp(log_rate + 0.5 * var + lift))
        assert self.fit_rows is not None
        order = np.empty_like(self.fit_rows)
        order[self.fit_rows] = np.arange(self.fit_rows.size)
        rates = self.fit.posterior_rates(
            self.ladder[order],
            intensity=forecast[order] if self.use_intensity else None,
            hours=hours,
            max_log_var=_MAX_LOG_VAR,
            extrapolation=POLICY_EXTRAPOLATION,
        )[self.fit_rows]
        if not self.use_intensity:
            # The data have not moved the index enough to fit its lift; events still lift
            # demand by the default prior lift, relative to the level the fit saw.
            rates = (
                rates * np.exp(_LIFT_PRIOR * (forecast - self.fit_intensity[:, None]))[:, :, None]
            )
        return np.asarray(rates)

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

        def run(priors: dict[str, tuple[float, float]] | None, init: Any) -> Any:
            same = init is not None and init.has_intensity == self.use_intensity
            return self.fitter(
                panel,
                sku="sku",
                market="market",
                period="period",
                price="price",
                quantity="quantity",
                intensity="intensity" if self.use_intensity else None,
                sold_out="sold_out",
                level_priors=self.level_priors,
                priors=priors,
                categories=cats,
                init=init if same else None,
            )

        try:
            fit = run(self.priors or None, self.fit)
            if self.priors:
                # The operator's prior may be wrong; the data's own fit (empirical Bayes
                # across the drop) overrules it row by row where the two conflict.
                self.fit_data = run(None, self.fit_data)
                fit = overrule_conflicts(fit, self.fit_data)
        except InputError:
            return  # keep the previous fit (or the prior) and price on
        index = {k: i for i, k in enumerate(fit.keys)}
        if any(k not in index for k in self.keys):
            return
        self.fit = fit
        self.fit_rows = np.array([index[k] for k in self.keys])
        seen = observed.groupby(["sku", "market"], sort=False)["intensity"].mean()
        self.fit_intensity = np.array([float(seen.get(k, 0.0)) for k in self.keys])
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
        self.seen_low = np.minimum(self.seen_low, price)
        self.seen_high = np.maximum(self.seen_high, price)
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


def overrule_conflicts(
    informed: ElasticityFit, data: ElasticityFit, *, z: float = _CONFLICT_Z
) -> ElasticityFit:
    """``informed`` with the rows whose prior the data contradict taken from ``data``.

    A row's prior conflicts with its data when the data's elasticity lies more than ``z``
    combined standard deviations from the prior mean,
    ``|β̂_data − μ| > z · sqrt(se_data² + τ²)`` (a prior-data conflict check, Evans &
    Moshonov 2006). Both fits must come from the same panel (same rows, same order).
    """
    se = data.elasticity_se
    gap = np.abs(np.asarray(data.params.elasticity) - informed.prior_mean)
    conflict = np.isfinite(informed.prior_sd) & (gap > z * np.sqrt(se**2 + informed.prior_sd**2))
    if not conflict.any() or list(data.keys) != list(informed.keys):
        return informed
    params = DemandParams(
        *(
            np.where(conflict, np.asarray(d), np.asarray(i))
            for d, i in zip(data.params, informed.params, strict=True)
        )
    )
    dim = min(informed.param_cov.shape[1], data.param_cov.shape[1])
    cov = informed.param_cov.copy()
    cov[conflict, :dim, :dim] = data.param_cov[conflict, :dim, :dim]
    return dataclasses.replace(
        informed,
        params=params,
        param_cov=cov,
        prior_mean=np.where(conflict, data.prior_mean, informed.prior_mean),
        prior_sd=np.where(conflict, data.prior_sd, informed.prior_sd),
        _index={},
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
    parts = {k: np.zeros((r, p)) for k in STIMULUS_KINDS}
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
    for kind in STIMULUS_KINDS:
        parts[kind][rows[ok], col[ok]] = index[kind].to_numpy()[ok]
    total = sum(parts.values(), np.zeros((r, p)))
    return total, parts
