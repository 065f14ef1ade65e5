"""The result of a fit: :class:`ElasticityFit`, its summaries and its predictions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from pricing.exceptions import InputError
from pricing.model import persist
from pricing.model.likelihood import DemandParams

__all__ = ["DemandParams", "ElasticityFit"]


@dataclass(frozen=True)
class ElasticityFit:
    """Result of :func:`fit_elasticity`: frozen, JSON/npz serialisable, no pickle.

    Attributes:
        keys: ``(sku, market)`` per row in table order (market ``None`` without markets).
        params: MAP :class:`DemandParams`, arrays ``[S]``.
        param_cov: ``[S, P, P]`` Laplace covariance of each row's ``[α, β(, γ, δ)]``.
        log_pref: ``[S]`` log reference price (geometric mean price of the row).
        daily_profile: ``[24]`` shared hour-of-day log effect, or ``None``.
        covariate_effects: name -> (estimate, Laplace se) of shared covariate effects.
        n_obs, n_censored: ``[S]`` observed and sold-out periods per row.
        converged: ``[S]`` per-row convergence (Newton decrement under tolerance).
        grad_norm: ``[S]`` gradient norm of each row's block at the solution.
        iterations: Newton iterations run (both stages for empirical Bayes).
        prior_mean, prior_sd: ``[S]`` elasticity prior used (``inf`` sd: none).
        categories: ``[S]`` category per row (``None`` when not given).
        period_hours: period length in hours for datetime periods, else ``None``.
        dtype: ``"float32"`` or ``"float64"``.
        loss: negative log posterior at the solution.
        log_price_range: ``[S, 2]`` lowest and highest log price each row was observed
            at (``None`` for fits saved before it was recorded); the prediction methods'
            ``extrapolation=`` bound reads it.
    """

    keys: list[tuple[Any, Any]]
    params: DemandParams
    param_cov: np.ndarray
    log_pref: np.ndarray
    daily_profile: np.ndarray | None
    covariate_effects: dict[str, tuple[float, float]]
    n_obs: np.ndarray
    n_censored: np.ndarray
    converged_rows: np.ndarray
    grad_norm: np.ndarray
    iterations: int
    prior_mean: np.ndarray
    prior_sd: np.ndarray
    categories: np.ndarray
    has_intensity: bool
    period_hours: float | None
    dtype: str
    loss: float
    shared_converged: bool = True
    log_price_range: np.ndarray | None = None
    _index: dict[tuple[Any, Any], int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({k: i for i, k in enumerate(self.keys)})

    # ------------------------------------------------------------------ summaries

    @property
    def converged(self) -> bool:
        """True when every row and the shared block converged."""
        return bool(np.all(self.converged_rows)) and self.shared_converged

    @property
    def elasticity_se(self) -> np.ndarray:
        """``[S]`` Laplace standard error of each row's elasticity."""
        return np.sqrt(np.maximum(self.param_cov[:, 1, 1], 0.0))

    @property
    def table(self) -> pd.DataFrame:
        """One row per SKU(-market): elasticity, its se, intensity terms, counts, flags."""
        sku, market = zip(*self.keys, strict=True) if self.keys else ((), ())
        out = pd.DataFrame({"sku": list(sku)})
        if any(m is not None for m in market):
            out["market"] = list(market)
        p = self.params
        out["elasticity"] = p.elasticity
        out["elasticity_se"] = self.elasticity_se
        out["intensity_lift"] = p.intensity_lift
        out["intensity_shift"] = p.intensity_shift
        if self.has_intensity:
            out["intensity_lift_se"] = np.sqrt(np.maximum(self.param_cov[:, 2, 2], 0.0))
            out["intensity_shift_se"] = np.sqrt(np.maximum(self.param_cov[:, 3, 3], 0.0))
        out["baseline"] = np.exp(p.alpha)
        out["ref_price"] = np.exp(self.log_pref)
        out["n_obs"] = self.n_obs
        out["n_censored"] = self.n_censored
        out["prior_mean"] = self.prior_mean
        out["prior_sd"] = self.prior_sd
        out["category"] = self.categories
        out["converged"] = self.converged_rows
        out["grad_norm"] = self.grad_norm
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: fit diagnostics, shared effects and the per-row table."""
        table = self.table.replace([np.inf, -np.inf], None)
        return {
            "n_rows": len(self.keys),
            "converged": self.converged,
            "n_converged": int(np.sum(self.converged_rows)),
            "iterations": int(self.iterations),
            "max_grad_norm": float(np.max(self.grad_norm)) if len(self.keys) else 0.0,
            "loss": float(self.loss),
            "dtype": self.dtype,
            "period_hours": self.period_hours,
            "daily_profile": None if self.daily_profile is None else self.daily_profile.tolist(),
            "covariate_effects": {k: list(v) for k, v in self.covariate_effects.items()},
            "table": json.loads(table.to_json(orient="records")),
        }

    def __str__(self) -> str:
        t = self.table
        head = (
            f"ElasticityFit: {len(self.keys)} rows, "
            f"{'converged' if self.converged else 'NOT converged'} "
            f"({int(np.sum(self.converged_rows))}/{len(self.keys)} rows) in {self.iterations} "
            f"iterations, {self.dtype}, max |grad| {float(np.max(self.grad_norm)) if len(t) else 0:.2e}"
        )
        lines = [head]
        if len(t):
            e = t["elasticity"]
            lines.append(
                f"  elasticity: median {e.median():.3f}, 10%-90% [{e.quantile(0.1):.3f}, "
                f"{e.quantile(0.9):.3f}], median se {t['elasticity_se'].median():.3f}"
            )
        for name, (est, se) in self.covariate_effects.items():
            lines.append(f"  {name}: {est:+.3f} (se {se:.3f})")
        if self.daily_profile is not None:
            peak = int(np.argmax(self.daily_profile))
            lines.append(f"  daily profile: peak hour {peak:02d} ({self.daily_profile[peak]:+.2f})")
        cols = [
            c
            for c in ("sku", "market", "elasticity", "elasticity_se", "n_obs", "converged")
            if c in t
        ]
        lines.append(t[cols].head(8).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if len(t) > 8:
            lines.append(f"  ... {len(t) - 8} more rows")
        return "\n".join(lines)

    # ------------------------------------------------------------------ prediction

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

    def _log_relative_price(
        self, log_price: np.ndarray, rows: np.ndarray | slice, extrapolation: float | None
    ) -> np.ndarray:
        """``x = log(p / p_ref)``, bounded to the observed range widened by ``extrapolation``.

        ``log_price`` broadcasts against ``rows`` on its trailing axis (``[K, S]`` with all
        rows, any shape for one row index). With ``lo, hi`` a row's observed ``x`` range and
        ``w = extrapolation``, ``x`` is clamped to ``[lo − w (hi − lo), hi + w (hi − lo)]``.
        """
        x = log_price - self.log_pref[rows]
        if extrapolation is None:
            return x
        if not (math.isfinite(extrapolation) and extrapolation >= 0):
            raise InputError(f"extrapolation must be a finite number >= 0, got {extrapolation!r}")
        if self.log_price_range is None:
            raise InputError(
                "extrapolation= needs the rows' observed price ranges, which this fit does not "
                "record (saved by an older version); refit it"
            )
        lo = self.log_price_range[rows, 0] - self.log_pref[rows]
        hi = self.log_price_range[rows, 1] - self.log_pref[rows]
        span = hi - lo
        return np.clip(x, lo - extrapolation * span, hi + extrapolation * span)

    def _covariate_term(
        self, covariates: Mapping[str, Any] | None, shape: tuple[int, ...], where: str
    ) -> np.ndarray | float:
        """``θ'z`` broadcast to ``shape``: 0 when ``covariates`` is ``None``.

        A mapping must name every fitted covariate (an omitted one would silently be
        predicted at 0, e.g. a promotion taken as off) and no other.
        """
        if covariates is None:
            return 0.0
        fitted = list(self.covariate_effects)
        unknown = [name for name in covariates if name not in self.covariate_effects]
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
            z = z + self.covariate_effects[name][0] * value
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
        extrapolation: float | None = None,
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
            extrapolation: as :meth:`demand_rates` (``None``: the curve is carried to any
                price).

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
        z = self._covariate_term(covariates, shape, "expected_demand")
        pr = self.params
        x = self._log_relative_price(np.log(p), i, extrapolation)
        eta = pr.alpha[i] + prof + pr.intensity_lift[i] * intensity
        eta = eta + (pr.elasticity[i] + pr.intensity_shift[i] * intensity) * x + z
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
        extrapolation: float | None = None,
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
            extrapolation: ``None`` (the default) carries the fitted log-linear curve to
                any price. A number ``w >= 0`` bounds the curve beyond the data: with
                ``lo, hi`` the lowest and highest ``x = log(p / p_ref)`` the row was fitted
                on, ``x`` is clamped to ``[lo − w (hi − lo), hi + w (hi − lo)]``, so a price
                further out is predicted the demand of the nearest bound (flat beyond it).
                ``w = 0.5`` lets the curve run half the observed range past each end; a
                row fitted at one price (``hi = lo``) is flat at its level. An elasticity
                of -11.5 fitted on -13 %..+5 % then predicts at -82 % what it predicts at
                -21 % (about 11x the level at ``p_ref``) instead of about 10⁸ times it.

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
        x = self._log_relative_price(np.log(prices).T, slice(None), extrapolation).T  # [S, K]
        a, b = np.asarray(p.alpha)[..., None], np.asarray(p.elasticity)[..., None]
        g, d = np.asarray(p.intensity_lift)[..., None], np.asarray(p.intensity_shift)[..., None]
        eta = a + prof + g * inten + z  # [..., S, T]
        slope = b + d * inten  # [..., S, T]
        return np.exp(eta[..., None] + slope[..., None] * x[:, None, :])

    def posterior_rates(
        self,
        prices: np.ndarray,
        intensity: np.ndarray | None = None,
        hours: np.ndarray | None = None,
        *,
        params: DemandParams | None = None,
        max_log_var: float = 1.0,
        covariates: Mapping[str, np.ndarray] | None = None,
        extrapolation: float | None = None,
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
                :meth:`demand_rates` (with ``extrapolation``, the variance is taken at the
                clamped ``x`` too)
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
        x = self._log_relative_price(log_p.T, slice(None), extrapolation).T[:, None, :]
        cov = np.nan_to_num(self.param_cov, nan=0.0, posinf=0.0, neginf=0.0)
        if self.has_intensity and intensity is not None and cov.shape[1] >= 4:
            i = np.asarray(intensity, dtype=float)[:, :, None]  # [S, T, 1]
            a = (np.ones_like(x + i), x + 0 * i, i + 0 * x, i * x)
            var = sum(cov[:, j, k, None, None] * a[j] * a[k] for j in range(4) for k in range(4))
        else:
            var = cov[:, 0, 0, None, None] + 2 * cov[:, 0, 1, None, None] * x
            var = var + cov[:, 1, 1, None, None] * x**2
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

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the fit as ``fit.npz`` (arrays) and ``fit.json`` (metadata) in ``path``.

        No pickle: keys and labels are JSON; arrays are plain numeric npz members.

        Returns:
            The directory written.
        """
        return persist.save_fit(self, path)

    @classmethod
    def load(cls, path: str | Path) -> ElasticityFit:
        """Read a fit written by :meth:`save`.

        Raises:
            InputError: if the files are missing or of an unknown format version.
        """
        return persist.load_fit(cls, path)

    def to_bytes(self) -> bytes:
        """The fit as one zip archive (the members :meth:`save` writes), for a store."""
        return persist.fit_to_bytes(self)

    @classmethod
    def from_bytes(cls, blob: bytes) -> ElasticityFit:
        """Read :meth:`to_bytes` output (and fits stored by earlier re-fits).

        Raises:
            InputError: if ``blob`` is not such an archive or of an unknown format version.
        """
        return persist.fit_from_bytes(cls, blob)
