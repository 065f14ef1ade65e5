"""``dropprice simulate --scenario PATH``: run the pricing policies on a simulated drop.

Examples::

    dropprice simulate --scenario configs/scenarios/hot-creator-drop.yaml
    dropprice simulate --scenario configs/scenarios/weekend-popup.yaml --seeds 20 --json
    dropprice simulate --scenario configs/scenarios/hot-creator-drop.yaml --plot drop.png
    dropprice simulate --scenario my.yaml --policy fixed --policy oracle

Every policy (``fixed``, ``oracle``, ``engine``, ``thompson``) prices the same simulated
shoppers (common random numbers; see :mod:`pricing.simulate`). The table lists revenue with a
95 % interval over seeds, the percent of the oracle, units, sell-through and stock-outs.
``--json`` prints one object::

    {"scenario": ..., "seeds": N, "rows": R, "hours": H,
     "bound": B,
     "policies": {"<name>": {"revenue": .., "revenue_ci": [lo, hi], "pct_of_oracle": ..,
                             "pct_of_bound": .., "pct_of_bound_ci": [lo, hi],
                             "sell_through": .., "units": .., "stockouts": .., ...}}}

``oracle`` is the full-information policy (the DP on the true demand over the whole allowed
price range); ``bound`` is the fluid upper bound on any policy's expected objective
(:func:`pricing.baselines.fluid_bound`).

A bad scenario file exits with status 2 and a message naming the file and the field.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pricing.simulate import SimulationReport

__all__ = ["plot_report", "register"]


def plot_report(report: SimulationReport, path: Path, *, rows: int = 3) -> Path:
    """Save a figure: revenue per policy with its interval, then for the ``rows`` SKU-markets
    with the most stock each policy's served price and units left on seed 0, with the hours
    an event became visible marked."""
    from service.extras import require

    matplotlib = require("matplotlib", "plots", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report.policies)
    stock = np.asarray(report.inventory) if report.inventory else np.ones(report.rows)
    shown = [int(r) for r in np.argsort(-stock, kind="stable")[: max(1, rows)]]
    fig, axes = plt.subplots(1 + len(shown), 1, figsize=(11, 3.2 * (1 + len(shown))), squeeze=False)
    ax = axes[0, 0]
    rev = np.array([report.policies[n].revenue for n in names])
    lo = rev - np.array([report.policies[n].revenue_ci[0] for n in names])
    hi = np.array([report.policies[n].revenue_ci[1] for n in names]) - rev
    ax.bar(names, rev, yerr=[lo, hi], capsize=6, color="tab:blue", alpha=0.8)
    ax.set_ylabel("revenue (mean, 95% CI)")
    ax.set_title(f"{report.scenario}: {report.seeds} seed(s), upper bound {report.bound:,.0f}")
    for ax, row in zip(axes[1:, 0], shown, strict=True):
        units = ax.twinx()
        for i, name in enumerate(names):
            run = report.runs[name][0]
            colour = f"C{i}"
            ax.step(np.arange(run.price_path.shape[1]), run.price_path[row], where="post",
                    color=colour, label=name)  # fmt: skip
            left = stock[row] - np.cumsum(run.sales_path[row])
            units.plot(left, color=colour, linestyle=":", alpha=0.7)
        for t in report.event_periods:
            ax.axvline(t, color="grey", linestyle="--", linewidth=0.8)
        key = report.row_keys[row] if report.row_keys else (str(row), "")
        ax.set_title(f"{key[0]} in {key[1]} (seed 0): price (solid), units left (dotted), "
                     "events (dashed)")  # fmt: skip
        ax.set_ylabel("served price")
        units.set_ylabel("units left")
        ax.set_xlabel("open hour")
    axes[1, 0].legend(loc="upper right", fontsize=8) if len(axes) > 1 else None
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(report: SimulationReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{report.scenario}: {report.seeds} seed(s), {report.rows} SKU-markets, "
        f"{report.hours} open hours"
    )
    for col in (
        "policy",
        "revenue",
        "95% CI",
        "% of oracle",
        "% of bound",
        "units",
        "sell-through",
        "stock-outs",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, s in report.policies.items():
        table.add_row(
            name,
            f"{s.revenue:,.2f}",
            f"[{s.revenue_ci[0]:,.0f}, {s.revenue_ci[1]:,.0f}]",
            "-" if s.pct_of_oracle is None else f"{s.pct_of_oracle:.1f}%",
            f"{s.pct_of_bound:.1f}%",
            f"{s.units:,.1f}",
            f"{s.sell_through:.1%}",
            f"{s.stockouts:.1f}",
        )
    # Wide enough for every column when the output is not a terminal (a pipe, a file, CI).
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the ``dropprice`` app."""

    @app.command("simulate")
    def simulate_command(
        scenario: Annotated[
            Path, typer.Option("--scenario", help="Scenario YAML (see configs/scenarios/).")
        ],
        seeds: Annotated[int, typer.Option("--seeds", min=1, max=10_000, help="Seeds.")] = 5,
        policy: Annotated[
            list[str] | None,
            typer.Option("--policy", help="Policy to run (repeat); default all four."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        plot: Annotated[
            Path | None, typer.Option("--plot", help="Save a figure to this PNG path.")
        ] = None,
    ) -> None:
        """Run fixed, oracle, engine and Thompson pricing on a simulated drop and compare them."""
        from pricing.exceptions import PricingError
        from pricing.scenario import load_scenario
        from pricing.simulate import POLICIES, simulate

        try:
            sc = load_scenario(scenario)
            chosen = tuple(policy) if policy else POLICIES
            report = simulate(sc, seeds=seeds, policies=chosen, source=str(scenario))
        except PricingError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from None
        if plot is not None:
            plot_report(report, plot)
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
        else:
            _table(report)
            if plot is not None:
                typer.echo(f"figure: {plot}")
