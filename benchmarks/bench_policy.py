"""Price-surface DP throughput: 10,000 SKUs x 100 units x 72 periods x 32 prices.

Run::

    python benchmarks/bench_policy.py            # full size
    python benchmarks/bench_policy.py --skus 2000 --subsample 10

Prints the compile time, the best of ``--repeat`` solves after compilation (target: under
5 s on the 2-core CPU), and a plain numpy loop over SKUs (``solve_surfaces_numpy``: the same
recursion, vectorised over stock and prices inside each SKU) timed on a subsample and scaled
to all SKUs, with the speed-up ratio. Both solvers are checked to agree on the subsample.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from pricing.policy import solve_surfaces, solve_surfaces_numpy


def make_problem(skus: int, periods: int, prices: int, units: int, *, seed: int = 0):
    """Exponential-ish demand around each SKU's list price with a retail daily profile."""
    rng = np.random.default_rng(seed)
    list_price = rng.uniform(10, 120, skus)
    # A ladder from 30 % under to 50 % over the list price (typical floor and ceiling).
    ladder = list_price[:, None] * np.geomspace(0.7, 1.5, prices)[None, :]
    elasticity = rng.uniform(-3.0, -1.3, skus)
    # Units per period at the list price: enough to sell ~units over the horizon.
    base = units / periods * rng.uniform(0.6, 1.6, skus)
    hour = np.arange(periods) % 24
    profile = 0.6 + 0.8 * np.sin(np.pi * np.clip(hour - 7, 0, 14) / 14)
    rates = (
        base[:, None, None]
        * profile[None, :, None]
        * (ladder[:, None, :] / list_price[:, None, None]) ** elasticity[:, None, None]
    )
    return rates, ladder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=10_000)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--periods", type=int, default=72)
    ap.add_argument("--prices", type=int, default=32)
    ap.add_argument("--subsample", type=int, default=8, help="SKUs timed with the numpy loop")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    rates, ladder = make_problem(args.skus, args.periods, args.prices, args.units)
    print(
        f"problem: {args.skus} SKUs x {args.units} units x {args.periods} periods x "
        f"{args.prices} prices, max rate {rates.max():.2f}/period, device {jax.devices()[0]}"
    )
    t0 = time.perf_counter()
    sol = solve_surfaces(rates, ladder, args.units)
    sol.value.block_until_ready()
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        sol = solve_surfaces(rates, ladder, args.units)
        sol.value.block_until_ready()
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"largest demand truncation d_max = {sol.d_max} (per row block, a multiple of 8)")
    print(f"jax  first call (compile + solve): {first:7.2f} s")
    print(
        f"jax  solve after compilation     : {best:7.2f} s  (target < 5 s)  {'OK' if best < 5 else 'OVER'}"
    )

    k = min(args.subsample, args.skus)
    t0 = time.perf_counter()
    ref_price, ref_value = solve_surfaces_numpy(rates[:k], ladder[:k], args.units)
    loop = time.perf_counter() - t0
    scaled = loop / k * args.skus
    print(
        f"numpy loop over SKUs             : {loop:7.2f} s for {k} SKUs -> {scaled:9.1f} s for all"
    )
    print(f"speed-up (numpy loop / jax)      : {scaled / best:9.1f} x")
    value = np.asarray(sol.value[:k])
    rel = np.max(np.abs(value - ref_value) / np.maximum(np.abs(ref_value), 1.0))
    same = np.mean(np.isclose(np.asarray(sol.price[:k]), ref_price, rtol=1e-5))
    print(
        f"agreement on the subsample       : max rel value diff {rel:.1e}, same price in {same:.2%} of cells"
    )


if __name__ == "__main__":
    main()
