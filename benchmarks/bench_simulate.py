"""Policy comparison on every shipped scenario, the engine at its defaults (>= 20 seeds each).

Run::

    python benchmarks/bench_simulate.py                       # every configs/scenarios/*.yaml, 20 seeds
    python benchmarks/bench_simulate.py --seeds 5 configs/scenarios/hot-creator-drop.yaml
    python benchmarks/bench_simulate.py --json results.json --skip catalogue-1000

For each scenario it prints revenue per policy with its 95 % interval over seeds, the percent
of the full-information policy (``oracle``, mean of per-seed ratios on the same shoppers) and
of the fluid upper bound, sell-through and stock-outs, then the engine's verdicts:

- ``>= 90 % of full information`` (mean of the per-seed ratios);
- ``not below fixed`` and ``not below thompson``: the 95 % interval of the per-seed paired
  difference of the objective is not below zero.

At the end one table gives every scenario's verdict and the suite's median share of full
information (target: >= 95 %).
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
FLOOR_PCT = 90.0  # engine share of full information on every scenario
MEDIAN_PCT = 95.0  # engine median share over the suite


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
    ap.add_argument("--skip", action="append", default=[], help="scenario name to leave out")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    paths = args.scenarios or sorted((ROOT / "configs" / "scenarios").glob("*.yaml"))
    out: dict[str, dict] = {}
    verdicts: list[tuple[str, float, str, str, str, bool]] = []
    for path in paths:
        sc = load_scenario(path)
        if sc.name in args.skip:
            continue
        t0 = time.perf_counter()
        seeds = list(range(args.seed_start, args.seed_start + args.seeds))
        report = simulate(sc, seeds=seeds, policies=POLICIES, source=str(path))
        wall = time.perf_counter() - t0
        print(
            f"\n## {sc.name} ({report.seeds} seeds, {report.rows} SKU-markets, "
            f"{report.hours} open hours, bound {report.bound:,.0f}, {wall:.0f} s)"
        )
        print(
            "| policy | revenue | 95% CI | % of full info | 95% CI | % of bound "
            "| sell-through | stock-outs |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, s in report.policies.items():
            ci = s.pct_of_oracle_ci or (float("nan"), float("nan"))
            print(
                f"| {name} | {s.revenue:,.0f} | [{s.revenue_ci[0]:,.0f}, {s.revenue_ci[1]:,.0f}] "
                f"| {s.pct_of_oracle:.1f}% | [{ci[0]:.1f}, {ci[1]:.1f}] | {s.pct_of_bound:.1f}% "
                f"| {s.sell_through:.1%} | {s.stockouts:.1f} |"
            )
        obj = {n: np.array([r.objective for r in rs]) for n, rs in report.runs.items()}
        eng = report.policies["engine"]
        share = float(eng.pct_of_oracle or float("nan"))
        diffs = {other: paired(obj["engine"], obj[other]) for other in ("fixed", "thompson")}
        checks = {
            f">= {FLOOR_PCT:.0f}% of full information": share >= FLOOR_PCT,
            "not below fixed": diffs["fixed"][2] >= 0.0,
            "not below thompson": diffs["thompson"][2] >= 0.0,
        }
        for other, (m, lo, hi) in diffs.items():
            print(f"engine - {other} per seed: {m:+,.0f} [{lo:+,.0f}, {hi:+,.0f}]")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}: {name}")
        verdicts.append(
            (
                sc.name,
                share,
                f"{diffs['fixed'][0]:+,.0f} [{diffs['fixed'][1]:+,.0f}, {diffs['fixed'][2]:+,.0f}]",
                f"{diffs['thompson'][0]:+,.0f} [{diffs['thompson'][1]:+,.0f}, "
                f"{diffs['thompson'][2]:+,.0f}]",
                ", ".join(k for k, ok in checks.items() if not ok) or "all pass",
                all(checks.values()),
            )
        )
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
        if args.json is not None:  # after every scenario: a long run keeps what it has
            args.json.write_text(json.dumps(out, indent=2))
    print("\n## Verdicts (engine at its defaults)")
    print("| scenario | engine % of full info | engine - fixed | engine - thompson | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, share, vs_fixed, vs_ts, verdict, _ in verdicts:
        print(f"| {name} | {share:.1f}% | {vs_fixed} | {vs_ts} | {verdict} |")
    if verdicts:
        median = float(np.median([v[1] for v in verdicts]))
        passed = sum(v[5] for v in verdicts)
        print(
            f"\nmedian engine share of full information: {median:.1f}% "
            f"({'PASS' if median >= MEDIAN_PCT else 'FAIL'}: >= {MEDIAN_PCT:.0f}%); "
            f"{passed} of {len(verdicts)} scenarios pass every check"
        )


if __name__ == "__main__":
    main()
