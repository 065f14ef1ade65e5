"""Predictions of a fit: expected demand per row, period and price, plug-in or posterior.

:class:`Predictions` is the half of :class:`~pricing.model.result.ElasticityFit` that
turns its parameters into rates; the result object inherits it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model.likelihood import DemandParams

__all__ = ["Extrapolation", "Predictions"]

Extrapolation = Literal["prior"] | float | None
"""How predictions treat prices beyond those a row was fitted on (see
:meth:`Predictions.demand_rates`)."""


class Predictions:
    """Prediction methods over the fields of :class:`~pricing.model.result.ElasticityFit`."""

    keys: list[tuple[Any, Any]]
    params: DemandParams
    param_cov: np.ndarray
    log_pref: np.ndarray
    log_price_range: np.ndarray | None
    daily_profile: np.ndarray | None
    covariate_effects: dict[str, tuple[float, float]]
    row_covariate_effects: dict[str, np.ndarray] | None
    prior_mean: np.ndarray
    prior_sd: np.ndarray
    has_intensity: bool
    _index: dict[tuple[Any, Any], int]

    def _row(self, sku: Any, market: Any) -> int:
        try:
            return self._index[(sku, market)]
        except KeyError:
            known = [k for k in self.keys[:5]]
            raise InputError(
                f"no fitted row for sku={sku!r} market={market!r}; fitted keys look like {known}"
            ) from None

    def _profile_at(self, hours: np.ndarray | None) -> np.ndarray:
        if self.daily_profile is None:
            return np.zeros(() if hours is None else np.shape(hours))
        if hours is None:
            # The average hour: expected units per period averaged over the day.
            return np.log(np.mean(np.exp(self.daily_profile)))
        h = np.asarray(hours)
        if not np.issubdtype(h.dtype, np.integer) or np.any((h < 0) | (h > 23)):
            raise InputError(f"hours must be integers in [0, 23], got {h!r}")
        return self.daily_profile[h]

    def _price_split(
        self, log_price: np.ndarray, rows: int | np.ndarray | slice, extrapolation: Extrapolation
    ) -> tuple[np.ndarray, np.ndarray]:
        """``x = log(p / p_ref)`` split as ``x_in + x_out``: within the seen range, beyond it.

        ``log_price`` broadcasts against ``rows`` on its trailing axis (``[K, S]`` with all
        rows, any shape for one row index). With ``lo, hi`` a row's observed ``x`` range:

        - ``"prior"``: ``x_in`` is ``x`` clamped to ``[lo, hi]``, ``x_out`` the rest (priced
          with :meth:`_slope_beyond`);
        - a number ``w``: ``x_in`` is ``x`` clamped to ``[lo − w (hi − lo), hi + w (hi −
          lo)]``, ``x_out = 0`` (flat beyond);
        - ``None``: ``x_in = x`` (the fitted curve carried on).

        Fits saved before price ranges were recorded carry the curve under ``"prior"``.
        """
        x = log_price - self.log_pref[rows]
        zero = np.zeros_like(x)
        if extrapolation is None or (extrapolation == "prior" and self.log_price_range is None):
            return x, zero
        if extrapolation == "prior":
            widen = 0.0
        elif isinstance(extrapolation, int | float) and math.isfinite(extrapolation):
            widen = float(extrapolation)
        else:
            widen = -1.0
        if widen < 0:
            raise InputError(
                f'extrapolation must be "prior", None or a finite number >= 0, got {extrapolation!r}'
            )
        if self.log_price_range is None:
            raise InputError(
                "extrapolation= needs the rows' observed price ranges, which this fit does not "
                "record (saved by an older version); refit it"
            )
        lo = self.log_price_range[rows, 0] - self.log_pref[rows]
        hi = self.log_price_range[rows, 1] - self.log_pref[rows]
        span = hi - lo
        inside = np.clip(x, lo - widen * span, hi + widen * span)
        return inside, (x - inside if extrapolation == "prior" else zero)

    def _slope_beyond(self, elasticity: np.ndarray, rows: int | np.ndarray | slice) -> np.ndarray:
        """Elasticity priced beyond the seen prices: the row's prior mean where it has a
        prior (the category's, by empirical Bayes), else its own (an unpooled fit)."""
        has_prior = np.isfinite(self.prior_sd[rows])
        return np.where(has_prior, self.prior_mean[rows], elasticity)

    def _covariate_term(
        self,
        covariates: Mapping[str, Any] | None,
        shape: tuple[int, ...],
        where: str,
        row: int | None = None,
    ) -> np.ndarray | float:
        """``θ'z`` broadcast to ``shape``: 0 when ``covariates`` is ``None``.

        A mapping must name every fitted covariate (an omitted one would silently be
        predicted at 0, e.g. a promotion taken as off) and no other. Per-row effects are
        row ``row``'s, or every row's along the first axis of ``shape`` (``[S, T]``).
        """
        if covariates is None:
            return 0.0
        per_row = self.row_covariate_effects or {}
        effects: dict[str, Any] = {name: est for name, (est, _) in self.covariate_effects.items()}
        for name, effect in per_row.items():
            effects[name] = effect[:, None] if row is None else effect[row]
        fitted = list(effects)
        unknown = [name for name in covariates if name not in effects]
        if unknown:
            raise InputError(f"{where}: unknown covariate(s) {unknown}; fitted covariates {fitted}")
        missing = [name for name in fitted if name not in covariates]
        if missing:
            raise InputError(
                f"{where}: covariate(s) {missing} missing; pass every fitted covariate "
                f"{fitted}, or covariates=None to predict with all of them at 0"
            )
        z = np.zeros(shape)
        for name in fitted:
            value = np.asarray(covariates[name], dtype=float)
            try:
                value = np.broadcast_to(value, shape)
            except ValueError:
                raise InputError(
                    f"{where}: covariates[{name!r}] has shape {value.shape}, which does not "
                    f"broadcast to {shape}"
                ) from None
            if not np.all(np.isfinite(value)):
                raise InputError(f"{where}: covariates[{name!r}] must be finite")
            z = z + effects[name] * value
        return z

    def expected_demand(
        self,
        sku: Any,
        price: float | Sequence[float] | np.ndarray,
        intensity: float = 0.0,
        market: Any = None,
        period: Any = None,
        covariates: Mapping[str, float | Sequence[float] | np.ndarray] | None = None,
        *,
        extrapolation: Extrapolation = "prior",
    ) -> float | np.ndarray:
        """Expected units per period for one SKU(-market) at ``price``.

        Args:
            sku, market: the row (``market=None`` for fits without markets).
            price: scalar or array of prices (> 0).
            intensity: micro-event intensity I.
            period: a timestamp (its hour picks the daily-profile value) or an hour
                0-23; ``None`` averages over the day.
            covariates: ``{name: value}`` for every fitted covariate; a value is a
                scalar or an array broadcastable with ``price`` (one value per price).
                ``None`` predicts with every covariate at 0 (e.g. no promotion); a
                mapping that omits a fitted covariate, or names an unknown one, is an
                :class:`InputError`.
            extrapolation: as :meth:`demand_rates` (default ``"prior"``: beyond the prices
                seen, the prior's elasticity).

        Returns:
            λ = exp(α + s(h) + γ I + (β + δ I) log(p/p_ref) + θ'z), a float for a scalar
            price and scalar covariates.

        Raises:
            InputError: an unknown row, a non-positive price, or covariates as above.

        Example:
            >>> fit.expected_demand("sku-1", [9.0, 10.0])  # doctest: +SKIP
            array([4.1, 3.5])
            >>> fit.expected_demand("sku-1", 10.0, covariates={"promo": [0, 1]})  # doctest: +SKIP
            array([3.5, 4.9])
        """
        i = self._row(sku, market)
        p = np.asarray(price, dtype=float)
        if np.any(~np.isfinite(p) | (p <= 0)):
            raise InputError(f"price must be finite and > 0, got {price!r}")
        if period is None:
            prof = self._profile_at(None)
        else:
            hour = period if isinstance(period, int | np.integer) else pd.Timestamp(period).hour
            prof = self._profile_at(np.asarray(int(hour)))
        try:
            shape = np.broadcast_shapes(
                p.shape, *(np.shape(v) for v in (covariates or {}).values())
            )
        except ValueError:
            shapes = {k: np.shape(v) for k, v in (covariates or {}).items()}
            raise InputError(
                f"expected_demand: covariate shapes {shapes} do not broadcast with the "
                f"price's shape {p.shape}"
            ) from None
        z = self._covariate_term(covariates, shape, "expected_demand", row=i)
        pr = self.params
        x_in, x_out = self._price_split(np.log(p), i, extrapolation)
        beyond = self._slope_beyond(pr.elasticity[i], i)
        eta = pr.alpha[i] + prof + pr.intensity_lift[i] * intensity + z
        eta = eta + (pr.elasticity[i] + pr.intensity_shift[i] * intensity) * x_in
        eta = eta + (beyond + pr.intensity_shift[i] * intensity) * x_out
        out = np.exp(eta)
        return float(out) if out.ndim == 0 else out

    def demand_rates(
        self,
        prices: np.ndarray,
        intensity: np.ndarray | None = None,
        hours: np.ndarray | None = None,
        *,
        params: DemandParams | None = None,
        covariates: Mapping[str, np.ndarray] | None = None,
        extrapolation: Extrapolation = "prior",
    ) -> np.ndarray:
        """Expected units per period for every row, period and candidate price.

        Args:
            prices: ``[S, K]`` candidate prices per row of :attr:`table` (> 0).
            intensity: ``[S, T]`` forecast intensity, or ``None`` (zero).
            hours: ``[T]`` hour of day of each period for the daily profile, or ``None``
                (the day's average).
            params: parameters to use instead of the MAP (e.g. one draw of
                :meth:`sample_params`, arrays ``[S]``; or ``[n, S]`` for ``n`` draws).
            covariates: ``{name: array}`` for every fitted covariate, each broadcastable
                to ``[S, T]`` (a scalar, ``[S, 1]`` per row, ``[T]`` per period or
                ``[S, T]`` per cell), applied with the fitted shared effects ``θ``.
                **``None`` predicts with every covariate at 0** (no promotion, no
                display, ...): the rates of a fit with covariates then describe the
                periods where all of them are off. A mapping that omits a fitted
                covariate or names an unknown one is an :class:`InputError`.
            extrapolation: what a price beyond the row's seen prices is predicted with
                (``lo, hi`` the lowest and highest ``x = log(p / p_ref)`` it was fitted on):

                - ``"prior"`` (the default): the fitted curve up to ``lo``/``hi``, then the
                  row's prior elasticity (its category's, by empirical Bayes) beyond: the
                  data say nothing about demand out there, the category does. A row with
                  no prior (an unpooled fit) carries its own curve. An elasticity of -11.5
                  fitted on -13 %..+5 % in a category of -2 then predicts at -82 % about
                  70x its level at ``p_ref`` instead of about 10⁸ times it;
                  :meth:`posterior_rates` adds the prior's variance for the distance.
                - a number ``w >= 0``: ``x`` clamped to ``[lo − w (hi − lo), hi + w (hi −
                  lo)]``, flat beyond (``w = 0.5`` lets the curve run half the observed
                  range past each end; a row fitted at one price is flat at its level);
                - ``None``: the fitted log-linear curve carried to any price.

        Returns:
            ``[S, T, K]`` (``[n, S, T, K]`` for ``[n, S]`` params) rates, where
            ``T`` is ``intensity.shape[1]``, else ``len(hours)``, else the covariates'
            period axis, else 1.

        Raises:
            InputError: on shapes that do not match the fit, non-positive prices, or
                covariates as above.

        Example:
            >>> on = fit.demand_rates(prices, covariates={"promo": np.ones((S, 24))})  # doctest: +SKIP
        """
        s = len(self.keys)
        prices = np.asarray(prices, dtype=float)
        if prices.ndim != 2 or prices.shape[0] != s:
            raise InputError(f"prices must have shape [S={s}, K], got {prices.shape}")
        if np.any(~np.isfinite(prices) | (prices <= 0)):
            raise InputError("prices must be finite and > 0")
        if intensity is not None:
            inten = np.asarray(intensity, dtype=float)
            if inten.ndim != 2 or inten.shape[0] != s:
                raise InputError(f"intensity must have shape [S={s}, T], got {inten.shape}")
            n_t = inten.shape[1]
        else:
            if hours is not None:
                n_t = len(hours)
            else:  # the covariates' period axis, when they have one
                lengths = {np.shape(v)[-1] for v in (covariates or {}).values() if np.ndim(v) >= 1}
                lengths.discard(1)
                n_t = lengths.pop() if len(lengths) == 1 else 1
            inten = np.zeros((s, n_t))
        if hours is not None and len(hours) != n_t:
            raise InputError(f"hours must have length T={n_t}, got {len(hours)}")
        prof = np.broadcast_to(
            self._profile_at(None if hours is None else np.asarray(hours)), (n_t,)
        )
        z = self._covariate_term(covariates, (s, n_t), "demand_rates")
        p = self.params if params is None else params
        x_in, x_out = self._price_split(np.log(prices).T, slice(None), extrapolation)
        x_in, x_out = x_in.T, x_out.T  # [S, K]
        a, b = np.asarray(p.alpha)[..., None], np.asarray(p.elasticity)[..., None]
        g, d = np.asarray(p.intensity_lift)[..., None], np.asarray(p.intensity_shift)[..., None]
        beyond = self._slope_beyond(np.asarray(p.elasticity), slice(None))[..., None]
        eta = a + prof + g * inten + z  # [..., S, T]
        slope = b + d * inten  # [..., S, T]
        slope_out = beyond + d * inten
        eta = eta[..., None] + slope[..., None] * x_in[:, None, :]
        if np.any(x_out):
            eta = eta + slope_out[..., None] * x_out[:, None, :]
        return np.exp(eta)

    def posterior_rates(
        self,
        prices: np.ndarray,
        intensity: np.ndarray | None = None,
        hours: np.ndarray | None = None,
        *,
        params: DemandParams | None = None,
        max_log_var: float = 1.0,
        covariates: Mapping[str, np.ndarray] | None = None,
        extrapolation: Extrapolation = "prior",
    ) -> np.ndarray:
        """Expected units ``[S, T, K]`` averaged over the Laplace posterior.

        With ``log λ = a'θ`` linear in the row's parameters ``θ ~ N(θ̂, Σ)``
        (``a = [1, x, I, I x]``, ``x = log(p / p_ref)``),

        .. math:: E[λ] = \\exp(a'\\hat θ + \\tfrac12 a'Σa)

        the demand the expected revenue of a price is made of; the plug-in
        :meth:`demand_rates` understates it by the spread of what the data allow, most
        for prices far from the data (larger ``x``). The log variance is capped at
        ``max_log_var`` so a weakly identified row cannot inflate its demand without bound.

        Args:
            prices, intensity, hours, params, covariates, extrapolation: as
                :meth:`demand_rates` (the variance is taken at the clamped ``x``; with
                ``"prior"``, the prior's variance ``prior_sd² x_out²`` is added for the
                distance ``x_out`` beyond the seen prices, so the posterior widens with it)
                (``params`` ``[S]``; ``covariates=None`` predicts with every covariate at
                0). The shared effects ``θ`` enter at their estimates: their uncertainty,
                pooled over every row, is not added to a row's variance.
            max_log_var: cap on ``a'Σa``.

        Returns:
            ``[S, T, K]`` rates.
        """
        mean = np.asarray(
            self.demand_rates(
                prices,
                intensity=intensity,
                hours=hours,
                params=params,
                covariates=covariates,
                extrapolation=extrapolation,
            )
        )
        log_p = np.log(np.asarray(prices, dtype=float))
        x_in, x_out = self._price_split(log_p.T, slice(None), extrapolation)
        x_out = x_out.T[:, None, :]
        has_prior = np.isfinite(self.prior_sd)[:, None, None]
        # Beyond the seen prices the slope is the prior's: its variance grows with the
        # distance, prior_sd² x_out² (an unpooled row carries its own slope and variance).
        x = x_in.T[:, None, :] + np.where(has_prior, 0.0, x_out)
        beyond_var = np.where(
            has_prior, np.nan_to_num(self.prior_sd, posinf=0.0)[:, None, None] ** 2, 0.0
        )
        cov = np.nan_to_num(self.param_cov, nan=0.0, posinf=0.0, neginf=0.0)
        if self.has_intensity and intensity is not None and cov.shape[1] >= 4:
            i = np.asarray(intensity, dtype=float)[:, :, None]  # [S, T, 1]
            a = (np.ones_like(x + i), x + 0 * i, i + 0 * x, i * x)
            var = sum(cov[:, j, k, None, None] * a[j] * a[k] for j in range(4) for k in range(4))
        else:
            var = cov[:, 0, 0, None, None] + 2 * cov[:, 0, 1, None, None] * x
            var = var + cov[:, 1, 1, None, None] * x**2
        var = var + beyond_var * x_out**2
        return mean * np.exp(0.5 * np.clip(var, 0.0, max_log_var))

    def sample_params(self, n: int, *, key: jax.Array) -> DemandParams:
        """``n`` draws of every row's parameters from the Laplace posterior N(MAP, H⁻¹).

        Args:
            n: number of draws.
            key: a ``jax.random`` PRNG key (split by the caller; never global).

        Returns:
            :class:`DemandParams` with arrays ``[n, S]``.
        """
        if int(n) < 1:
            raise InputError(f"n must be >= 1, got {n}")
        mean = np.stack(
            [self.params.alpha, self.params.elasticity]
            + (
                [self.params.intensity_lift, self.params.intensity_shift]
                if self.has_intensity
                else []
            ),
            axis=1,
        )
        pdim = mean.shape[1]
        cov = self.param_cov[:, :pdim, :pdim]
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2)) + 1e-12 * np.eye(pdim)
        chol = np.linalg.cholesky(np.where(np.isfinite(cov), cov, 0.0) + 0.0)
        z = np.asarray(jax.random.normal(key, (int(n), len(self.keys), pdim)), dtype=float)
        draws = mean[None] + np.einsum("spq,nsq->nsp", chol, z)
        zeros = np.zeros(draws.shape[:2])
        return DemandParams(
            alpha=draws[..., 0],
            elasticity=draws[..., 1],
            intensity_lift=draws[..., 2] if self.has_intensity else zeros,
            intensity_shift=draws[..., 3] if self.has_intensity else zeros,
        )
