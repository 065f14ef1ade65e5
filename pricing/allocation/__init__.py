"""Stock planning: how many units of each SKU to place in each market and window.

The engine prices whatever stock a market holds with the inventory-aware DP of
:func:`pricing.policy.solve_surfaces`. Its value function ``V(n, 0)`` is the expected
revenue (plus salvage of what is left) of starting a window with ``n`` units under that
policy, so the expected value of placing ``n`` units in one *slot* (a SKU in a market
for a window) is read straight off the DP, for every ``n`` at once:

.. math::

    f_j(n) = (1 - ρ)\\,R_j(n) + s_j\\,\\big(n - (1 - ρ) S_j(n)\\big)
             - (c_j + τ_j^{unit})\\,n - τ_j\\,\\max(0,\\, n - h_j)

where ``R_j(n)`` is the expected gross revenue and ``S_j(n)`` the expected units sold
under the policy (evaluated exactly from the policy's price index, see
:func:`value_curves`), ``ρ`` the returns rate (a returned sale is refunded and the unit
recovered at its salvage value ``s``), ``c`` the unit cost of a placed unit, and ``τ``
the transfer (restock) cost of each unit shipped into a market beyond the ``h`` units it
already holds.

A SKU's plan maximises ``Σ_j f_j(n_j) + b · (N − Σ_j n_j)`` subject to
``Σ_j n_j ≤ N``, where ``b`` is the value of a unit held back (not placed anywhere:
0 when an unplaced unit is simply not bought, its salvage value net of cost when the
stock is already on hand). A later window is a slot of its own, so holding a unit back
from the first window for the second is priced like any other placement: the option
value of a later window is that window's marginal value.

**Greedy is exact on concave curves.** With Poisson demand and the optimal policy the
marginal value of one more unit falls as stock rises (Gallego & van Ryzin 1994, Thm 1),
so each ``f_j`` is concave and handing out units one at a time to the slot with the
largest marginal value is optimal for the separable objective (Gross 1956; Ibaraki &
Katoh 1988, ch. 4). :func:`allocate` checks concavity on the curves it is given and falls
back to an exact dynamic programme over slots (a small knapsack, ``O(J N²)``) where it
fails. It does fail in practice: on ``objective: profit`` drops the engine's DP prices with
the cost per *sale* (``pricing_cost``), so the policy's expected sales jump where its
price switches and the value of *placed* units (cost paid per unit placed) has bumps.

Windows are planned as separate slots: units left unsold when a window closes are
valued at salvage (the operator re-plans the next window with them), so the plan is a
feasible policy whose value is a lower bound on carrying them over.

Modules: :mod:`~pricing.allocation.curves` (what ``n`` units are worth, the demand
inputs), :mod:`~pricing.allocation.marginal` (greedy and exact allocation),
:mod:`~pricing.allocation.plan` (the drop's plan, per slot and per market and window),
:mod:`~pricing.allocation.failover` (which variant absorbs a sold-out one's shoppers).

References:
    Gallego, G. and van Ryzin, G. (1994). Optimal dynamic pricing of inventories with
    stochastic demand over finite horizons. Management Science 40(8), 999-1020.
    Gross, O. (1956). A class of discrete-type minimization problems. RAND RM-1644.
    Ibaraki, T. and Katoh, N. (1988). Resource Allocation Problems. MIT Press.
"""

from pricing.allocation.curves import ValueCurves, planned_intensity, prior_rates, value_curves
from pricing.allocation.failover import (
    Failover,
    estimate_diversion,
    failover_table,
    panel_diversion,
)
from pricing.allocation.marginal import (
    CONCAVITY_TOL,
    Allocation,
    allocate,
    allocate_exact,
    allocate_greedy,
    is_concave,
)
from pricing.allocation.plan import SlotDemand, StockPlan, plan_stock

__all__ = [
    "CONCAVITY_TOL",
    "Allocation",
    "Failover",
    "SlotDemand",
    "StockPlan",
    "ValueCurves",
    "allocate",
    "allocate_exact",
    "allocate_greedy",
    "estimate_diversion",
    "failover_table",
    "is_concave",
    "panel_diversion",
    "plan_stock",
    "planned_intensity",
    "prior_rates",
    "value_curves",
]
