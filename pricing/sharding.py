"""Splitting a catalogue's rows over several devices, and putting the pieces together.

Rows of the demand fit are independent given the shared daily profile, and rows of the
price DP are independent outright, so both can be cut into contiguous blocks of rows,
one per device, and solved in parallel:

- :func:`row_blocks` assigns each (SKU, market) row to a block;
- :func:`merge_fits` joins the fits of disjoint blocks into one
  :class:`~pricing.model.ElasticityFit` (expected units per day unchanged);
- :func:`solve_sharded` solves the price surfaces with the rows split over the devices
  and lays the result out with a ``NamedSharding`` over a one-axis ``sku`` mesh.

With one device each is the plain single-device computation.

Example:
    >>> price = solve_sharded(rates, prices, inventory, cost, salvage, jax.devices())  # doctest: +SKIP
    >>> price.shape  # [S, N+1, T]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pricing.model import DemandParams, ElasticityFit

__all__ = ["merge_fits", "row_blocks", "solve_sharded"]


def row_blocks(n_rows: int, n_blocks: int) -> np.ndarray:
    """Block number of each of ``n_rows`` sorted rows: ``n_blocks`` contiguous blocks of
    (nearly) equal size, block ``b`` holding rows ``[b*n/B, (b+1)*n/B)``."""
    return np.arange(n_rows) * n_blocks // max(n_rows, 1)


def merge_fits(fits: Sequence[ElasticityFit]) -> ElasticityFit:
    """One :class:`~pricing.model.ElasticityFit` from fits of disjoint blocks of rows.

    Row arrays are concatenated in block order. The merged daily profile is the
    mean of the blocks' profiles; each row's ``α`` absorbs the difference of its
    block's profile from it on the daily scale,
    ``α_i += log mean_h e^{s_b(h)} − log mean_h e^{s̄(h)}``, so expected units per
    day are unchanged.
    """
    profiles = [f.daily_profile for f in fits]
    has_profile = all(p is not None for p in profiles)
    mean_profile = (
        np.mean(np.stack([p for p in profiles if p is not None]), axis=0)
        if has_profile
        else np.zeros(24)
    )
    alphas = []
    for f in fits:
        alpha = np.asarray(f.params.alpha, dtype=float)
        if f.daily_profile is not None and has_profile:
            shift = np.log(np.mean(np.exp(f.daily_profile))) - np.log(np.mean(np.exp(mean_profile)))
            alpha = alpha + shift
        alphas.append(alpha)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(f, name)) for f in fits])

    def par(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(f.params, name), dtype=float) for f in fits])

    first = fits[0]
    return ElasticityFit(
        keys=[k for f in fits for k in f.keys],
        params=DemandParams(
            np.concatenate(alphas),
            par("elasticity"),
            par("intensity_lift"),
            par("intensity_shift"),
        ),
        param_cov=cat("param_cov"),
        log_pref=cat("log_pref"),
        daily_profile=mean_profile if has_profile else None,
        covariate_effects=dict(first.covariate_effects),
        n_obs=cat("n_obs"),
        n_censored=cat("n_censored"),
        converged_rows=cat("converged_rows"),
        grad_norm=cat("grad_norm"),
        iterations=max(int(f.iterations) for f in fits),
        prior_mean=cat("prior_mean"),
        prior_sd=cat("prior_sd"),
        categories=np.concatenate([np.asarray(f.categories, dtype=object) for f in fits]),
        has_intensity=first.has_intensity,
        period_hours=first.period_hours,
        dtype=first.dtype,
        loss=float(sum(f.loss for f in fits)),
        shared_converged=all(f.shared_converged for f in fits),
        log_price_range=(
            cat("log_price_range") if all(f.log_price_range is not None for f in fits) else None
        ),
    )


def solve_sharded(
    rates: np.ndarray,
    prices: np.ndarray,
    inventory: np.ndarray,
    cost: np.ndarray,
    salvage: np.ndarray,
    devices: Sequence[Any],
) -> np.ndarray:
    """Optimal price surfaces ``[S, N+1, T]``, rows split over ``devices`` (SKU axis).

    With one device this is :func:`pricing.policy.solve_surfaces`. With several, the
    rows are cut into one contiguous block per device, each block solved on its
    device, and the blocks assembled into one ``jax.Array`` laid out with a
    ``NamedSharding`` over a one-axis ``sku`` mesh (rows are independent DPs, so
    the split changes nothing in the result).
    """
    import jax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from pricing.policy import solve_surfaces

    s = rates.shape[0]
    n_max = int(inventory.max())
    if len(devices) == 1 or s < len(devices):
        sol = solve_surfaces(rates, prices, inventory, unit_cost=cost, salvage=salvage)
        return np.asarray(sol.price)
    d = len(devices)
    per = math.ceil(s / d)
    pad = per * d - s

    # Pad with copies of the last row so every device gets an equal block.
    def padded(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x

    rates_p, prices_p, inv_p = padded(rates), padded(prices), padded(inventory)
    cost_p, salvage_p = padded(cost), padded(salvage)

    def solve_block(b: int) -> Any:
        sl = slice(b * per, (b + 1) * per)
        with jax.default_device(devices[b]):
            sol = solve_surfaces(
                rates_p[sl], prices_p[sl], inv_p[sl], unit_cost=cost_p[sl], salvage=salvage_p[sl]
            )
            price = sol.price
            # Every block must share N so the blocks stack: pad inventory rows up to it.
            if price.shape[1] < n_max + 1:
                price = jax.numpy.pad(
                    price, ((0, 0), (0, n_max + 1 - price.shape[1]), (0, 0)), mode="edge"
                )
            return jax.device_put(price, devices[b])

    with ThreadPoolExecutor(max_workers=d) as pool:
        blocks = list(pool.map(solve_block, range(d)))
    mesh = Mesh(np.array(devices), ("sku",))
    sharding = NamedSharding(mesh, P("sku"))  # type: ignore[no-untyped-call]
    shape = (per * d, n_max + 1, rates.shape[1])
    global_price = jax.make_array_from_single_device_arrays(shape, sharding, blocks)
    return np.asarray(global_price)[:s]
