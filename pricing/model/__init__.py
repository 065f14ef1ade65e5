"""The demand model: Poisson log-linear demand with intensity, one MAP fit for all SKUs.

For SKU(-market) row ``i`` in period ``t`` with price ``p``, intensity ``I`` and covariates ``z``:

.. math::

    \\log \\lambda_{it} = \\alpha_i + s(h_t) + \\gamma_i I_{it}
        + (\\beta_i + \\delta_i I_{it})\\, x_{it} + \\theta' z_{it},
    \\qquad x_{it} = \\log(p_{it} / p^{\\mathrm{ref}}_i),
    \\qquad y_{it} \\sim \\mathrm{Poisson}(\\lambda_{it})

``λ`` is expected units per period (the period length Δt is absorbed into ``α``, so hourly
drop panels and weekly retail panels fit the same way). ``p_ref`` is the SKU's geometric
mean price, so ``x`` is centred per SKU (float32 Newton then converges in a few steps).
``β`` is the own-price elasticity at zero intensity; at intensity ``I`` it is ``β + δ I``;
``γ`` is the demand lift per unit of intensity; ``s`` a shared hour-of-day profile
(mean zero over observed hours); ``θ`` shared covariate effects (promotion, display, ...).

One idea per module:

- :mod:`~pricing.model.likelihood`: parameters, design arrays, each cell's loss (sell-outs
  censored);
- :mod:`~pricing.model.priors`: configured priors, robust empirical Bayes by category
  (overdispersion-aware) and :data:`FALLBACK_PRIOR`;
- :mod:`~pricing.model.solver`: block-coordinate Newton to the MAP, Laplace errors;
- :mod:`~pricing.model.preparation`: a pandas panel checked and numbered by codes;
- :mod:`~pricing.model.cells`: checked cells laid out as padded device arrays (both
  entry points);
- :mod:`~pricing.model.result`: :class:`ElasticityFit` and its summaries;
- :mod:`~pricing.model.predict`: its predictions (covariates per row and period; beyond a
  row's seen prices, the category's elasticity);
- :mod:`~pricing.model.persist`: saving and loading a fit (npz + JSON, no pickle);
- :mod:`~pricing.model.fit`: the entry point :func:`fit_elasticity`.
- :mod:`~pricing.model.arrays`: :func:`fit_elasticity_arrays`, the same fit from ``[S, T]`` grids;
- :mod:`~pricing.model.start`: the solver's starting point (one IRLS step from ``y + ½``).
"""

from pricing.model.arrays import fit_elasticity_arrays
from pricing.model.fit import fit_elasticity
from pricing.model.likelihood import DemandParams
from pricing.model.preparation import _prepare  # noqa: F401  (benchmarks time the stages)
from pricing.model.priors import FALLBACK_PRIOR, ElasticityPrior
from pricing.model.result import ElasticityFit
from pricing.model.solver import _fit_impl  # noqa: F401  (benchmarks time the stages)

__all__ = [
    "FALLBACK_PRIOR",
    "DemandParams",
    "ElasticityFit",
    "ElasticityPrior",
    "fit_elasticity",
    "fit_elasticity_arrays",
]
