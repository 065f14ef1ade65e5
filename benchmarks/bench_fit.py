"""Benchmark the elasticity fit and the intensity index (issue #2).

Prints, in one run on the default JAX device:

- the fit time for each size (SKUs x 72 hourly periods) of the model a per-SKU
  statsmodels Poisson GLM can also fit (intercept + log price, no prior, no
  censoring; with ``--simple-intensity`` also the intensity lift and shift, in both), and
  the speed-up against a statsmodels loop over SKUs (timed on a subsample, scaled to all
  SKUs; same data);
- the full model (empirical-Bayes category prior, censored sell-outs, intensity lift
  and shift, shared daily profile, one promotion covariate) after compilation, with
  the compile time separately, in float32 and float64;
- the intensity index for 1,000,000 events over 10,000 SKU-markets.

"fit" times are ``fit_elasticity`` end to end (input checks and the pandas-to-array
preparation included; the median of three calls after a first one); "solve" is the
compiled device program alone; "prep" the preparation alone. Each line ends with the process's peak resident memory so far
(``ru_maxrss``: the phases run in order, so the figure after the largest size's full fit
is that fit's peak).

Run::

    python benchmarks/bench_fit.py                       # 1k, 10k, 100k
    python benchmarks/bench_fit.py --sizes 1000000 --json  # e.g. on a GPU
    python benchmarks/bench_fit.py --sizes 20000 --simple-intensity --f64-max 0
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pandas as pd
from _memory import peak_rss_mib


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree_util.tree_leaves(out)) if not hasattr(out, "table") else None
    return time.perf_counter() - start, out


def _simple_panel(n_skus: int, n_periods: int, seed: int, intensity: bool) -> pd.DataFrame:
    from pricing._panel_sim import simulate_demand_panel

    panel, _ = simulate_demand_panel(n_skus, n_periods, seed=seed, intensity=intensity)
    panel["period"] = np.tile(np.arange(n_periods), n_skus)  # no daily profile
    return panel


def _full_panel(n_skus: int, n_periods: int, seed: int) -> pd.DataFrame:
    from pricing._panel_sim import simulate_demand_panel

    panel, _ = simulate_demand_panel(
        n_skus,
        n_periods,
        seed=seed,
        categories={"comics": -1.6, "apparel": -2.0, "snacks": -2.5},
        intensity=True,
        profile_amplitude=0.5,
        promo_effect=0.3,
        stock=8.0,
    )
    return panel


def _glm_loop_per_sku(panel: pd.DataFrame, n_sample: int, intensity: bool) -> float:
    """Seconds per SKU of a statsmodels Poisson GLM loop (same design as the fit)."""
    import statsmodels.api as sm

    skus = panel["sku"].unique()[:n_sample]
    sub = panel[panel["sku"].isin(skus)]
    groups = [g for _, g in sub.groupby("sku", sort=True)]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for g in groups:
            logp = np.log(g["price"].to_numpy())
            x = logp - logp.mean()
            design = np.column_stack([np.ones(len(g)), x])
            if intensity:  # the model's intensity terms: lift I and shift x * I
                inten = g["intensity"].to_numpy()
                design = np.column_stack([design, inten, x * inten])
            sm.GLM(g["quantity"].to_numpy(), design, family=sm.families.Poisson()).fit()
    return (time.perf_counter() - start) / len(groups)


def _solve_only(panel: pd.DataFrame, kwargs: dict[str, Any]) -> tuple[float, float, int, float]:
    """(first call incl. compile, second call, iterations, preparation s) of the program."""
    from pricing import model

    # The preparation fit_elasticity would run: its defaults for every keyword not given
    # (a default that differs between the two, e.g. per-row covariates, would otherwise
    # time one model here and fit another end to end).
    defaults = {
        name: p.default
        for name, p in inspect.signature(model.fit_elasticity).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    prep_kwargs = {
        name: defaults[name]
        for name in inspect.signature(model._prepare).parameters
        if name in defaults
    }
    prep_kwargs.update(kwargs, covariates=tuple(kwargs.get("covariates", ())))
    # The preparation runs the compiled start (one IRLS step): the first call compiles it,
    # the second is timed (as the end-to-end fit, which runs after both).
    jax.block_until_ready(model._prepare(panel, **prep_kwargs).data)
    start = time.perf_counter()
    prep = model._prepare(panel, **prep_kwargs)
    jax.block_until_ready(prep.data)
    prep_s = time.perf_counter() - start
    first, _ = _timed(lambda: model._fit_impl(prep.data, prep.static))
    second, out = _timed(lambda: model._fit_impl(prep.data, prep.static))
    return first, second, int(out.iterations), prep_s


def _fit(
    panel: pd.DataFrame, kwargs: dict[str, Any], prep_s: float, solve_s: float, end_to_end: bool
) -> tuple[float, Any]:
    """fit_elasticity timed end to end (the median of 3 after one untimed call: its first
    call in a process also compiles the small eager steps around the solve), or (large
    sizes) preparation + solve measured above."""
    from pricing.model import fit_elasticity

    if end_to_end:
        call = functools.partial(fit_elasticity, panel, **kwargs)
        call()
        runs = [_timed(call) for _ in range(3)]
        return float(np.median([t for t, _ in runs])), runs[-1][1]
    return prep_s + solve_s, None


def bench_fit(
    sizes: list[int],
    n_periods: int,
    glm_sample: int,
    f64_max: int,
    e2e_max: int,
    simple_intensity: bool = False,
) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        row: dict[str, Any] = {"skus": n, "periods": n_periods}
        panel = _simple_panel(n, n_periods, seed=1, intensity=simple_intensity)
        simple: dict[str, Any] = {"pooling": False}
        if simple_intensity:
            simple["intensity"] = "intensity"
        compile_and_run, solve_s, iters, prep_s = _solve_only(panel, simple)
        fit_s, fit = _fit(panel, simple, prep_s, solve_s, n <= e2e_max)
        per_sku = _glm_loop_per_sku(panel, min(glm_sample, n), simple_intensity)
        row.update(
            simple_fit_s=fit_s,
            simple_solve_s=solve_s,
            simple_compile_s=max(compile_and_run - solve_s, 0.0),
            simple_iterations=iters,
            simple_converged=None if fit is None else bool(fit.converged),
            simple_prep_s=prep_s,
            glm_loop_s=per_sku * n,
            glm_loop_sampled_skus=min(glm_sample, n),
            speedup_fit=per_sku * n / fit_s,
            speedup_solve=per_sku * n / solve_s,
            simple_terms="intercept, log price" + (", intensity" if simple_intensity else ""),
            peak_rss_mib_after_simple=peak_rss_mib(),
        )
        del panel, fit
        full_panel = _full_panel(n, n_periods, seed=2)
        full = {
            "intensity": "intensity",
            "covariates": ["promo"],
            "sold_out": "sold_out",
            "categories": "category",
        }
        row["full_sold_out_share"] = float(full_panel["sold_out"].mean())
        dtypes = ["float32"] + (["float64"] if n <= f64_max else [])
        for dt in dtypes:
            jax.config.update("jax_enable_x64", dt == "float64")
            first, solve, iters, prep_s = _solve_only(full_panel, full)
            fit_s, fit = _fit(full_panel, full, prep_s, solve, n <= e2e_max)
            row[f"full_{dt}_fit_s"] = fit_s
            row[f"full_{dt}_solve_s"] = solve
            row[f"full_{dt}_compile_s"] = max(first - solve, 0.0)
            row[f"full_{dt}_iterations"] = iters
            row[f"full_{dt}_prep_s"] = prep_s
            row[f"full_{dt}_converged_share"] = (
                None if fit is None else float(np.mean(fit.converged_rows))
            )
            row[f"peak_rss_mib_after_full_{dt}"] = peak_rss_mib()
            del fit
        jax.config.update("jax_enable_x64", False)
        del full_panel
        results.append(row)
        _print_row(row)
    return results


def bench_intensity(n_events: int, n_keys: int) -> dict[str, Any]:
    from pricing.intensity import build_intensity_index

    rng = np.random.default_rng(0)
    key = rng.integers(0, n_keys, n_events)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    events = pd.DataFrame(
        {
            "ts": t0 + pd.to_timedelta(rng.uniform(0, 72 * 3600, n_events), unit="s"),
            "type": rng.choice(
                np.array(["sale", "announcement", "claim", "listing"]),
                n_events,
                p=[0.7, 0.05, 0.15, 0.1],
            ),
            "sku": np.char.add("sku-", (key // 4).astype(str)),
            "market": np.char.add("m", (key % 4).astype(str)),
            "quantity": rng.integers(1, 4, n_events).astype(float),
            "reach": rng.uniform(0, 1e5, n_events),
            "count": rng.integers(1, 5, n_events),
            "weight": 1.0,
        }
    )
    seconds, index = _timed(lambda: build_intensity_index(events))
    return {
        "events": n_events,
        "sku_markets": int(index[["sku", "market"]].drop_duplicates().shape[0]),
        "hours": int(index["hour"].nunique()),
        "seconds": seconds,
    }


def _share(value: float | None) -> str:
    return "n/a (not fitted end to end)" if value is None else f"{value:.1%}"


def _print_row(row: dict[str, Any]) -> None:
    n = row["skus"]
    print(
        f"{n:>9,} SKUs x {row['periods']}h | simple: fit {row['simple_fit_s']:.3f}s "
        f"(solve {row['simple_solve_s']:.3f}s, compile {row['simple_compile_s']:.1f}s, "
        f"{row['simple_iterations']} it) vs statsmodels loop {row['glm_loop_s']:.1f}s "
        f"-> {row['speedup_fit']:.0f}x (solve only {row['speedup_solve']:.0f}x) "
        f"[{row['simple_terms']}; prep {row['simple_prep_s']:.3f}s; "
        f"peak RSS {row['peak_rss_mib_after_simple']:,.0f} MiB]",
        flush=True,
    )
    for dt in ("float32", "float64"):
        if f"full_{dt}_fit_s" in row:
            print(
                f"{'':>9}      full {dt}: fit {row[f'full_{dt}_fit_s']:.3f}s "
                f"(solve {row[f'full_{dt}_solve_s']:.3f}s, compile "
                f"{row[f'full_{dt}_compile_s']:.1f}s, {row[f'full_{dt}_iterations']} it, "
                f"{_share(row[f'full_{dt}_converged_share'])} rows converged, "
                f"{row['full_sold_out_share']:.1%} periods sold out; prep "
                f"{row[f'full_{dt}_prep_s']:.3f}s; peak RSS "
                f"{row[f'peak_rss_mib_after_full_{dt}']:,.0f} MiB)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated SKU counts")
    parser.add_argument("--periods", type=int, default=72)
    parser.add_argument("--glm-sample", type=int, default=300, help="SKUs timed in the GLM loop")
    parser.add_argument("--f64-max", type=int, default=100_000, help="largest size run in float64")
    parser.add_argument(
        "--end-to-end-max",
        type=int,
        default=200_000,
        help="above this size, fit = preparation + solve (saves a second pandas preparation)",
    )
    parser.add_argument(
        "--simple-intensity",
        action="store_true",
        help="the simple model (and the statsmodels loop) also fit intensity (lift and shift)",
    )
    parser.add_argument("--intensity-events", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--intensity-keys", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print one JSON document at the end")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    device = jax.devices()[0]
    print(
        f"JAX {jax.__version__} on {device.platform} ({device.device_kind}), "
        f"{platform.machine()}, {jax.device_count()} device(s)",
        flush=True,
    )
    report: dict[str, Any] = {
        "device": f"{device.platform}:{device.device_kind}",
        "fit": bench_fit(
            sizes,
            args.periods,
            args.glm_sample,
            args.f64_max,
            args.end_to_end_max,
            simple_intensity=args.simple_intensity,
        ),
    }
    if args.intensity_events:
        inten = bench_intensity(args.intensity_events, args.intensity_keys)
        report["intensity"] = inten
        print(
            f"intensity index: {inten['events']:,} events, {inten['sku_markets']:,} SKU-markets "
            f"x {inten['hours']} h in {inten['seconds']:.2f}s; peak RSS {peak_rss_mib():,.0f} MiB",
            flush=True,
        )
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
