"""Ground-truth demand for the simulator, in shapes other than the engine's own model.

The engine fits a Poisson log-linear model (:mod:`pricing.model`). A judge that draws its
shoppers from that very model flatters it, so a scenario chooses the truth per SKU and per
drop. For row ``r`` (a SKU in a market) at price ``p``, list price ``L``, true intensity
``I``, clock hour ``h`` and ``x = p / L``:

- ``loglinear``: ``λ = b · s_r(h) · e^{γ I} · x^{β + δ I}`` (the engine's own form);
- ``linear``: ``λ = b · s_r(h) · e^{γ I} · max(0, 1 + (β + δ I)(x − 1))`` (the same elasticity
  at the list price, a choke price at ``x = 1 − 1/β``);
- ``logit``: a market of ``M = b / q`` shoppers who each buy with probability
  ``σ(a − k (x − 1))``, calibrated so that ``q`` of them buy at the list price (``q = 0.3``)
  and the elasticity there is ``β``: ``k = −β / (1 − q)``;
- ``choice`` (a drop-level switch): the SKUs of one market share their shoppers through a
  multinomial logit with an outside option. Attraction ``v_j = b_j e^{γ_j I} e^{k_j (x_j − 1)}``
  with ``k_j = β_j / (1 − s_j)`` (``s_j`` the SKU's share at list prices), outside weight
  ``O = Σ b_j``, shoppers ``Λ = O + Σ b_j e^{γ_j I}``, and ``λ_j = Λ v_j / (O + Σ_{k in stock} v_k)``:
  at list prices every SKU sells its ``b_j e^{γ_j I}``, a dearer variant loses shoppers to
  the others, and a sold-out variant spills its shoppers onto the rest.

On top of any shape:

- ``dispersion`` ``k``: demand is negative binomial with mean ``λ`` and variance
  ``λ + λ²/k`` instead of Poisson;
- ``reference_effect`` ``η``: shoppers remember the price (an exponentially smoothed
  reference ``ρ_t``, weight 0.2 per hour); a price above it sells ``e^{−η log(p/ρ)}`` times
  less (loss aversion: a jump hurts beyond the elasticity);
- ``strategic_share`` ``w``: that share of shoppers waits when the price is above the lowest
  price served so far in the window, expecting a markdown; waiting demand decays by
  ``patience`` per hour and buys when the price comes back down;
- ``return_rate`` / ``return_delay_hours``: each unit sold comes back with that probability
  that many hours later (refunded at the price paid, and back on the shelf while the window
  is open).

Every draw uses the common uniforms of the run (``D = F⁻¹(u; λ)``), so all policies face
the same shoppers. :meth:`Truth.expected_rates` gives the memoryless rates (other variants
at list and in stock, no reference or waiting effects) that the full-information policy and
the bounds price against.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = ["SHAPES", "Truth", "TruthState"]

SHAPES: tuple[str, ...] = ("loglinear", "linear", "logit")
"""Per-SKU demand shapes (the drop-level ``choice`` model sits on top of them)."""

_LOGIT_SHARE = 0.3  # share of a logit market that buys at the list price
_REFERENCE_WEIGHT = 0.2  # weight of the newest price in the shoppers' reference


class TruthState(NamedTuple):
    """What shoppers remember during one run (per row)."""

    reference: np.ndarray  # [R] smoothed reference price
    lowest: np.ndarray  # [R] lowest price served in the window so far
    waiting: np.ndarray  # [R] expected units of strategic shoppers waiting
    returns_due: np.ndarray  # [R, P + delay + 1] units coming back at each open period
    refunds_due: np.ndarray  # [R, P + delay + 1] money refunded then (past P: after the drop)


class Truth(NamedTuple):
    """True demand of ``R`` rows over ``P`` open periods.

    Attributes:
        shape: ``[R]`` index into :data:`SHAPES`.
        log_base: ``[R]`` log units/hour at list price, intensity 0, an average hour.
        elasticity, intensity_lift, intensity_shift: ``[R]`` true β, γ, δ.
        list_price: ``[R]``.
        log_profile: ``[R, 24]`` log daily profile per row (mean of its exp is one).
        intensity: ``[R, P]`` true intensity at each open period.
        hours: ``[P]`` clock hour of each open period.
        group: ``[R]`` choice group (rows sharing shoppers), ``-1`` for independent rows.
        dispersion: negative-binomial size ``k`` (``inf``: Poisson).
        reference_effect, strategic_share, patience: see the module docstring.
        return_rate, return_delay: share of units returned and after how many periods.
    """

    shape: np.ndarray
    log_base: np.ndarray
    elasticity: np.ndarray
    intensity_lift: np.ndarray
    intensity_shift: np.ndarray
    list_price: np.ndarray
    log_profile: np.ndarray
    intensity: np.ndarray
    hours: np.ndarray
    group: np.ndarray
    dispersion: float = float("inf")
    reference_effect: float = 0.0
    strategic_share: float = 0.0
    patience: float = 0.8
    return_rate: float = 0.0
    return_delay: int = 24

    # ------------------------------------------------------------------ rates

    def _level(self, rows: np.ndarray, inten: np.ndarray, hod: np.ndarray) -> np.ndarray:
        """``b · s(h) · e^{γ I}``, broadcast over ``inten``/``hod``."""
        prof = np.take_along_axis(self.log_profile[rows], hod % 24, axis=1)
        return np.asarray(
            np.exp(self.log_base[rows, None] + prof + self.intensity_lift[rows, None] * inten)
        )

    def _shape_factor(self, rows: np.ndarray, x: np.ndarray, slope: np.ndarray) -> np.ndarray:
        """Demand relative to the list price at ``x = p/L`` with elasticity ``slope``."""
        shape = self.shape[rows].reshape((-1,) + (1,) * (x.ndim - 1))
        loglin = np.exp(slope * np.log(x))
        linear = np.maximum(0.0, 1.0 + slope * (x - 1.0))
        k = -slope / (1.0 - _LOGIT_SHARE)
        a = np.log(_LOGIT_SHARE / (1.0 - _LOGIT_SHARE))
        logit = _expit(a - k * (x - 1.0)) / _LOGIT_SHARE
        return np.where(shape == 0, loglin, np.where(shape == 1, linear, logit))

    def expected_rates(
        self,
        prices: np.ndarray,
        start: int,
        intensity: np.ndarray,
        *,
        hours: np.ndarray | list[int] | None = None,
    ) -> np.ndarray:
        """Memoryless expected units ``[R, T, K]`` at ladder ``prices [R, K]``.

        Periods ``start .. start+T-1`` with the intensity path ``intensity [R, T]`` (the
        truth's, or a forecast of it). Choice rows are priced with the other variants at
        their list price and in stock; reference and waiting effects are left out.
        ``hours`` overrides the clock hours of the periods (default: the open periods').
        """
        rows = np.arange(self.log_base.size)
        t_len = intensity.shape[1]
        clock = self.hours[start : start + t_len] if hours is None else np.asarray(hours)
        hod = np.broadcast_to(clock, (rows.size, t_len))
        level = self._level(rows, intensity, hod)[:, :, None]  # [R, T, 1]
        x = (prices / self.list_price[:, None])[:, None, :]  # [R, 1, K]
        slope = (self.elasticity[:, None] + self.intensity_shift[:, None] * intensity)[:, :, None]
        grouped = self.group >= 0
        factor = self._shape_factor(rows, np.broadcast_to(x, slope.shape[:2] + x.shape[2:]), slope)
        if grouped.any():
            factor = np.where(
                grouped[:, None, None], self._choice_factor(x, slope, intensity), factor
            )
        return np.asarray(level * factor)

    def calm_rates(self, price: np.ndarray, hour_of_day: int) -> np.ndarray:
        """Expected units ``[R]`` at ``price`` in an ordinary hour (intensity 0, every variant
        in stock at list), as a shop's history before the drop saw them."""
        rates = self.expected_rates(
            price[:, None], 0, np.zeros((price.size, 1)), hours=[hour_of_day]
        )
        return rates[:, 0, 0]

    def _choice_share(self, intensity: np.ndarray) -> np.ndarray:
        """``[R, T]`` each row's share of its group's shoppers at list prices."""
        lift = np.exp(self.log_base[:, None] + self.intensity_lift[:, None] * intensity)
        base = np.exp(self.log_base)
        share = np.zeros_like(lift)
        for g in np.unique(self.group[self.group >= 0]):
            m = self.group == g
            outside = base[m].sum()
            share[m] = lift[m] / (outside + lift[m].sum(axis=0, keepdims=True))
        return np.asarray(share)

    def _choice_factor(self, x: np.ndarray, slope: np.ndarray, intensity: np.ndarray) -> np.ndarray:
        """Own-price response of a choice row with the others at list: ``[R, T, K]``."""
        share = self._choice_share(intensity)[:, :, None]
        k = slope / (1.0 - share)
        v = np.exp(k * (x - 1.0))
        # λ_j ∝ v_j / (1 − s_j + s_j v_j): the others keep their attraction.
        return np.asarray(v / (1.0 - share + share * v))

    def rates(
        self, price: np.ndarray, period: int, stock: np.ndarray, state: TruthState
    ) -> np.ndarray:
        """Expected units ``[R]`` in open period ``period`` at ``price``, given what shoppers remember."""
        rows = np.arange(price.size)
        inten = self.intensity[:, period : period + 1]
        hod = np.full((rows.size, 1), self.hours[period])
        level = self._level(rows, inten, hod)[:, 0]
        x = price / self.list_price
        slope = self.elasticity + self.intensity_shift * inten[:, 0]
        lam = level * self._shape_factor(rows, x, slope)
        grouped = self.group >= 0
        if grouped.any():
            lam = np.where(
                grouped, self._choice_rates(x, slope, inten[:, 0], hod[:, 0], stock), lam
            )
        if self.reference_effect > 0:
            jump = np.maximum(0.0, np.log(price / state.reference))
            lam = lam * np.exp(-self.reference_effect * jump)
        if self.strategic_share > 0:
            waits = price > state.lowest * (1 + 1e-9)
            strategic = self.strategic_share * lam
            lam = np.where(waits, lam - strategic, lam + (1.0 - self.patience) * state.waiting)
        return np.asarray(np.maximum(lam, 0.0))

    def _choice_rates(
        self,
        x: np.ndarray,
        slope: np.ndarray,
        inten: np.ndarray,
        hod: np.ndarray,
        stock: np.ndarray,
    ) -> np.ndarray:
        base = np.exp(self.log_base)
        prof = np.exp(self.log_profile[np.arange(x.size), hod % 24])
        lift = base * np.exp(self.intensity_lift * inten)
        share = self._choice_share(inten[:, None])[:, 0]
        v = lift * np.exp(slope / (1.0 - share) * (x - 1.0)) * (stock > 0)
        out = np.zeros_like(x)
        for g in np.unique(self.group[self.group >= 0]):
            m = self.group == g
            outside = base[m].sum()
            shoppers = outside + lift[m].sum()
            out[m] = prof[m] * shoppers * v[m] / (outside + v[m].sum())
        return out

    # ------------------------------------------------------------------ draws

    def initial_state(self) -> TruthState:
        r, p = self.intensity.shape
        return TruthState(
            reference=self.list_price.astype(np.float64).copy(),
            lowest=np.full(r, np.inf),
            waiting=np.zeros(r),
            returns_due=np.zeros((r, p + self.return_delay + 1), dtype=np.int64),
            refunds_due=np.zeros((r, p + self.return_delay + 1)),
        )

    def open_window(self, state: TruthState) -> TruthState:
        """A new window: the lowest price seen restarts, waiting shoppers go home."""
        return state._replace(lowest=np.full(state.lowest.size, np.inf), waiting=state.waiting * 0)

    def draw(self, lam: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Demand ``F⁻¹(u; λ)``: Poisson, or negative binomial with size ``dispersion``."""
        if np.isfinite(self.dispersion):
            k = self.dispersion
            return np.asarray(stats.nbinom.ppf(u, k, k / (k + np.maximum(lam, 1e-12))))
        return np.asarray(stats.poisson.ppf(u, lam))

    def after_sales(
        self,
        state: TruthState,
        period: int,
        price: np.ndarray,
        lam: np.ndarray,
        sold: np.ndarray,
        u_return: np.ndarray,
    ) -> TruthState:
        """Update what shoppers remember, and book the returns of this period's sales."""
        reference = (1 - _REFERENCE_WEIGHT) * state.reference + _REFERENCE_WEIGHT * price
        waiting = state.waiting
        if self.strategic_share > 0:
            waits = price > state.lowest * (1 + 1e-9)
            base = lam / np.where(waits, 1.0 - self.strategic_share, 1.0)
            gone = np.where(waits, 0.0, (1.0 - self.patience) * waiting)
            added = np.where(waits, self.strategic_share * base, 0.0)
            waiting = self.patience * (waiting - gone + added)
        returns_due, refunds_due = state.returns_due, state.refunds_due
        due = period + self.return_delay
        if self.return_rate > 0:
            back = stats.binom.ppf(u_return, sold, self.return_rate).astype(np.int64)
            returns_due = returns_due.copy()
            refunds_due = refunds_due.copy()
            returns_due[:, due] += back
            refunds_due[:, due] += back * price
        return TruthState(
            reference=reference,
            lowest=np.minimum(state.lowest, price),
            waiting=waiting,
            returns_due=returns_due,
            refunds_due=refunds_due,
        )


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
