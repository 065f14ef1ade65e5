"""Price-surface DP throughput: 10,000 SKUs x 100 units x 72 periods x 32 prices.

Run::

    python benchmarks/bench_policy.py                        # full size
    python benchmarks/bench_policy.py --skus 2000 --subsample 10
    python benchmarks/bench_policy.py --against 5dc14da      # old vs new, interleaved rounds

Prints the compile time, the best of ``--repeat`` solves after compilation (target: under
3 s on the 2-core CPU) with the process CPU time of each, the peak resident memory after each
phase, and a plain numpy loop over SKUs (``solve_surfaces_numpy``: the same recursion,
vectorised over stock and prices inside each SKU) timed on a subsample and scaled to all
SKUs, with the speed-up ratio. Both solvers are checked to agree on the subsample.

``--against REV`` also loads ``pricing/policy.py`` as it was at git revision ``REV`` and
alternates the two solvers round by round in this process, so both see the same machine
load; it prints each one's best and median wall and CPU time and the ratio, and checks that
they agree. Compare ratios from such a run, not absolute times from runs at different loads.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import numpy as np
from _memory import rss_line

from pricing.policy import solve_surfaces, solve_surfaces_numpy

REPO = Path(__file__).resolve().parents[1]


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


def policy_at_revision(rev: str) -> ModuleType:
    """``pricing/policy.py`` (and its ``policy_*`` siblings) as at git revision ``rev``.

    The modules are loaded under private names, so both versions live in this process; the
    rest of ``pricing`` is today's.
    """
    folder = Path(tempfile.mkdtemp(prefix="policy_at_"))
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", rev, "pricing/"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    names = [Path(p).stem for p in listing if Path(p).name.startswith("policy")]
    tag = "_rev_" + "".join(c for c in rev if c.isalnum())
    for name in names:
        text = subprocess.run(
            ["git", "show", f"{rev}:pricing/{name}.py"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for other in names:
            text = text.replace(f"pricing.{other} ", f"{tag}_{other} ")
            text = text.replace(f"pricing.{other}\n", f"{tag}_{other}\n")
        (folder / f"{tag}_{name}.py").write_text(text)
    sys.path.insert(0, str(folder))
    order = sorted(names, key=lambda n: n == "policy")  # siblings first
    module = None
    for name in order:
        spec = importlib.util.spec_from_file_location(f"{tag}_{name}", folder / f"{tag}_{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    assert module is not None
    return module


def _timed(solve: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, process CPU s, solution) of one solve, waited for."""
    cpu, wall = time.process_time(), time.perf_counter()
    sol = solve()
    jax.block_until_ready(sol.value)
    return time.perf_counter() - wall, time.process_time() - cpu, sol


def _load() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg())


def compare(rates: np.ndarray, ladder: np.ndarray, units: int, rev: str, rounds: int) -> None:
    """Old (``rev``) and current solver alternating round by round: best, median, ratio."""
    old = policy_at_revision(rev)
    solvers = {
        f"at {rev}": lambda: old.solve_surfaces(rates, ladder, units),
        "current": lambda: solve_surfaces(rates, ladder, units),
    }
    out = {name: _timed(fn)[2] for name, fn in solvers.items()}  # compile both first
    a, b = (np.asarray(s.value) for s in out.values())
    same = np.mean(np.asarray(out[f"at {rev}"].price) == np.asarray(out["current"].price))
    print(
        f"agreement old/new: max rel value diff "
        f"{np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.0)):.1e}, same price in {same:.2%}"
    )
    print(_load())
    wall: dict[str, list[float]] = {name: [] for name in solvers}
    cpu: dict[str, list[float]] = {name: [] for name in solvers}
    for r in range(rounds):
        for name, fn in solvers.items() if r % 2 == 0 else reversed(solvers.items()):
            w, c, _ = _timed(fn)
            wall[name].append(w)
            cpu[name].append(c)
    print(_load())
    for name in solvers:
        print(
            f"{name:>14}: wall best {min(wall[name]):6.2f} s, median {np.median(wall[name]):6.2f} s"
            f" | CPU best {min(cpu[name]):6.2f} s, median {np.median(cpu[name]):6.2f} s"
            f"  ({', '.join(f'{w:.2f}' for w in wall[name])})"
        )
    names = list(solvers)
    print(
        f"old / new: wall best {min(wall[names[0]]) / min(wall[names[1]]):.2f}x, "
        f"median {np.median(wall[names[0]]) / np.median(wall[names[1]]):.2f}x; "
        f"CPU median {np.median(cpu[names[0]]) / np.median(cpu[names[1]]):.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=10_000)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--periods", type=int, default=72)
    ap.add_argument("--prices", type=int, default=32)
    ap.add_argument("--subsample", type=int, default=8, help="SKUs timed with the numpy loop")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", metavar="REV", help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds with --against")
    args = ap.parse_args()

    rates, ladder = make_problem(args.skus, args.periods, args.prices, args.units)
    print(
        f"problem: {args.skus} SKUs x {args.units} units x {args.periods} periods x "
        f"{args.prices} prices, max rate {rates.max():.2f}/period, device {jax.devices()[0]}, "
        f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}"
        f" usable cores, {_load()}"
    )
    print(rss_line("building the problem"))
    if args.against:
        compare(rates, ladder, args.units, args.against, args.rounds)
        print(rss_line("both solvers"))
        return
    first, _, sol = _timed(lambda: solve_surfaces(rates, ladder, args.units))
    times = [_timed(lambda: solve_surfaces(rates, ladder, args.units)) for _ in range(args.repeat)]
    best = min(times, key=lambda x: x[0])
    sol = best[2]
    print(f"largest demand truncation d_max = {sol.d_max} (per row block, 8k - 1)")
    print(f"jax  first call (compile + solve): {first:7.2f} s")
    print(
        f"jax  solve after compilation     : {best[0]:7.2f} s  (CPU {best[1]:.2f} s; "
        f"target < 3 s)  {'OK' if best[0] < 3 else 'OVER'}   {_load()}"
    )
    out_mib = sum(np.asarray(a).nbytes for a in (sol.price, sol.value, sol.index)) / 2**20
    print(f"surfaces held: {out_mib:,.0f} MiB (price, value, index)")
    print(rss_line("the JAX solves"))

    k = min(args.subsample, args.skus)
    t0 = time.perf_counter()
    ref_price, ref_value = solve_surfaces_numpy(rates[:k], ladder[:k], args.units)
    loop = time.perf_counter() - t0
    scaled = loop / k * args.skus
    print(
        f"numpy loop over SKUs             : {loop:7.2f} s for {k} SKUs -> {scaled:9.1f} s for all"
    )
    print(f"speed-up (numpy loop / jax)      : {scaled / best[0]:9.1f} x")
    value = np.asarray(sol.value[:k])
    rel = np.max(np.abs(value - ref_value) / np.maximum(np.abs(ref_value), 1.0))
    same = np.mean(np.isclose(np.asarray(sol.price[:k]), ref_price, rtol=1e-5))
    print(
        f"agreement on the subsample       : max rel value diff {rel:.1e}, same price in {same:.2%} of cells"
    )
    print(rss_line("the numpy loop"))


if __name__ == "__main__":
    main()
