"""Why a price is what it is, and what a config change would do to it (explain, preview).

Both start from what is live for one (SKU, market): the published price surface
(its elasticity row, the intensity it was solved at, the guardrail code of every
cell), the elasticity fit saved with that surface version (``fit_id`` in the
version's meta), the live config and the units left now. Nothing is written.

**Preview** re-runs the re-fit's solve stage for one row with candidate changes
(guardrail fields, an elasticity or category prior, list price, cost, salvage,
units): the same horizon (:func:`service.drops.drop_horizon`), guardrail spec and
price ladder (:func:`service.drops.guardrail_spec`, :func:`service.drops.sku_ladder`),
demand rates from the live fit and the intensity path the surface was solved with
(``explain.intensity_forecast`` when the record carries it, else the centred index
at solve time held over the horizon; see ``_horizon_inputs``), then
:func:`pricing.policy.solve_surfaces` and :func:`pricing.guardrails.apply_guardrails`.
With no change it reproduces the published surface; with a change it is what the
next re-fit on the same data would publish.

A new category prior is folded in with the Gaussian (Laplace) approximation the fit
itself rests on: the published elasticity ``β̂ ± se`` is a posterior under the old
prior ``N(μ₀, τ₀²)``; dividing that prior out leaves the likelihood's information
``1/se² − 1/τ₀²`` about ``β``, which is combined with the new prior ``N(μ₁, τ₁²)``:

.. math::

    \\beta' = \\frac{\\betâ/se^2 - \\mu_0/\\tau_0^2 + \\mu_1/\\tau_1^2}
                 {1/se^2 - 1/\\tau_0^2 + 1/\\tau_1^2}

(when the data carry no information beyond the old prior, ``β'`` is the new mean).

**Expected revenue and sell-through** of a surface are evaluated exactly, not
simulated: the distribution of units left is carried forward period by period
from (units now, period now) with Poisson demand at the surface's price in each
state, ``D ~ Poisson(λ(p(n, t), t))``, sales ``min(D, n)``.

References:
    Gallego, G. and van Ryzin, G. (1994). Optimal dynamic pricing of inventories with
    stochastic demand over finite horizons. Management Science 40(8), 999-1020.

The package's modules: :mod:`~service.config.whatif.live` (what is live for one
SKU-market: surface, fit, config, units left), :mod:`~service.config.whatif.evaluate`
(demand rates over a horizon, a surface's expected outcome, the posterior elasticity),
:mod:`~service.config.whatif.preview` and :mod:`~service.config.whatif.explain`.
"""

from __future__ import annotations

from service.config.whatif.evaluate import _horizon_inputs as _horizon_inputs
from service.config.whatif.evaluate import evaluate_surface, posterior_elasticity
from service.config.whatif.explain import UNCONSTRAINED_GRID, explain
from service.config.whatif.live import (
    Evaluation,
    LiveRow,
    NoLiveSurface,
    PreviewChanges,
    load_live_row,
)
from service.config.whatif.preview import MAX_PREVIEW_UNITS, preview

__all__ = [
    "MAX_PREVIEW_UNITS",
    "UNCONSTRAINED_GRID",
    "Evaluation",
    "LiveRow",
    "NoLiveSurface",
    "PreviewChanges",
    "evaluate_surface",
    "explain",
    "load_live_row",
    "posterior_elasticity",
    "preview",
]
