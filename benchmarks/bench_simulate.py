"""Policy comparison on the shipped scenarios, >= 20 seeds each (the issue #3 evaluation).

Run::

    python benchmarks/bench_simulate.py                       # every configs/scenarios/*.yaml, 20 seeds
    python benchmarks/bench_simulate.py --seeds 5 configs/scenarios/hot-creator-drop.yaml
    python benchmarks/bench_simulate.py --json results.json

For each scenario prints revenue per policy with its 95 % interval over seeds, the percent
of the oracle (mean of per-seed ratios, with its interval), sell-through and stock-outs, and
the verdict of the targets: engine >= 92 % of the oracle, above ``fixed`` and above
``thompson`` (on the mean, and on the per-seed paired difference's 95 % interval).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from pricing.scenario import load_scenario
from pricing.simulate import POLICIES, simulate

ROOT = Path(__file__).resolve().parents[1]


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b per seed and its 95 % t-interval."""
    d = a - b
    half = (
        float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
        if d.size > 1
        else 0.0
    )
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", type=Path)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (split long runs)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    paths = args.scenarios or sorted((ROOT / "configs" / "scenarios").glob("*.yaml"))
    out = {}
    for path in paths:
        sc = load_scenario(path)
        t0 = time.perf_counter()
        seeds = list(range(args.seed_start, args.seed_start + args.seeds))
        report = simulate(
            sc,
            seeds=seeds,
            policies=POLICIES,
            source=str(path),
            progress=lambda name, seed: print(f"  running {name} seed {seed}", flush=True),
        )
        wall = time.perf_counter() - t0
        print(
            f"\n## {sc.name} ({report.seeds} seeds, {report.rows} SKU-markets, {report.hours} open hours, {wall:.0f} s)"
        )
        print("| policy | revenue | 95% CI | % of oracle | 95% CI | sell-through | stock-outs |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, s in report.policies.items():
            ci = s.pct_of_oracle_ci or (float("nan"), float("nan"))
            print(
                f"| {name} | {s.revenue:,.0f} | [{s.revenue_ci[0]:,.0f}, {s.revenue_ci[1]:,.0f}] "
                f"| {s.pct_of_oracle:.1f}% | [{ci[0]:.1f}, {ci[1]:.1f}] | {s.sell_through:.1%} "
                f"| {s.stockouts:.1f} |"
            )
        obj = {n: np.array([r.objective for r in rs]) for n, rs in report.runs.items()}
        eng = report.policies["engine"]
        checks = {
            "engine >= 92% of oracle": eng.pct_of_oracle is not None and eng.pct_of_oracle >= 92.0,
            "engine > fixed": eng.revenue > report.policies["fixed"].revenue,
            "engine > thompson": eng.revenue > report.policies["thompson"].revenue,
        }
        for other in ("fixed", "thompson"):
            m, lo, hi = paired(obj["engine"], obj[other])
            print(f"engine - {other} per seed: {m:,.0f} [{lo:,.0f}, {hi:,.0f}]")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}: {name}")
        per_seed = {
            n: {"revenue": [r.revenue for r in rs], "objective": [r.objective for r in rs]}
            for n, rs in report.runs.items()
        }
        out[sc.name] = {
            **report.to_dict(),
            "seed_list": seeds,
            "per_seed": per_seed,
            "wall_s": wall,
            "checks": checks,
        }
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
