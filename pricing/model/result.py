"""The result of a fit: :class:`ElasticityFit`, its summaries and persistence (its
predictions are :class:`~pricing.model.predict.Predictions`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pricing.model import persist
from pricing.model.likelihood import DemandParams
from pricing.model.predict import Predictions

__all__ = ["DemandParams", "ElasticityFit"]


@dataclass(frozen=True)
class ElasticityFit(Predictions):
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
        dispersion: ``[S]`` Pearson dispersion of the row's empirical-Bayes group (1 for
            Poisson-like data and rows with a configured prior; ``None`` for older fits).
            ``param_cov`` already includes it.
        row_covariate_effects: name -> ``[S]`` effect per row, for a fit with
            ``per_row_covariates=True`` (``covariate_effects`` then holds their
            precision-weighted averages); ``param_cov`` holds their variances in its last
            columns.
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
    dispersion: np.ndarray | None = None
    row_covariate_effects: dict[str, np.ndarray] | None = None
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
        out["positive_elasticity"] = self.positive_elasticity
        for name, effect in (self.row_covariate_effects or {}).items():
            out[f"effect_{name}"] = effect
        return out

    @property
    def positive_elasticity(self) -> np.ndarray:
        """``[S]`` flag: the row's own-price elasticity came out above 0.

        Demand rising with the own price is rarely real; it is a row the data could not
        separate from something else (a promotion, a competitor's price). Empirical Bayes
        pulls such a row toward its category with the full category prior (it is never
        treated as an outlier that may keep its estimate); a row still flagged needs its
        data or a configured prior looked at.
        """
        return np.asarray(self.params.elasticity > 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: fit diagnostics, shared effects and the per-row table."""
        table = self.table.replace([np.inf, -np.inf], None)
        return {
            "n_rows": len(self.keys),
            "converged": self.converged,
            "n_converged": int(np.sum(self.converged_rows)),
            "iterations": int(self.iterations),
            "max_grad_norm": float(np.max(self.grad_norm)) if len(self.keys) else 0.0,
            "n_positive_elasticity": int(np.sum(self.positive_elasticity)),
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
        n_pos = int(np.sum(self.positive_elasticity))
        if n_pos:
            lines.append(f"  {n_pos} row(s) with a positive elasticity (see positive_elasticity)")
        for name, (est, se) in self.covariate_effects.items():
            lines.append(f"  {name}: {est:+.3f} (se {se:.3f})")
        for name, effect in (self.row_covariate_effects or {}).items():
            q = np.percentile(effect, [10, 50, 90]) if len(effect) else np.zeros(3)
            lines.append(
                f"  {name} per row: median {q[1]:+.3f}, 10%-90% [{q[0]:+.3f}, {q[2]:+.3f}]"
            )
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
