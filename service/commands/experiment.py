"""``dropprice experiment report DROP_ID``: how a drop's arms did against each other.

Examples::

    dropprice experiment report weekend-popup-two-towns
    dropprice experiment report weekend-popup-two-towns --control main-street-open --json
    dropprice experiment report weekend-popup-two-towns --plot arms.png
    dropprice experiment report my-drop --events events.parquet --lookups lookups.csv

The drop's arms and starting inventory come from its config (``--config-dir``); its
events (sales, returns) from the service's Redis (``--redis-url``) or an events file;
price look-ups (for conversion) from the served-price record in Redis
(:mod:`service.served`) or ``--lookups`` (CSV/Parquet with ``sku, market, lookups``);
with ``--events`` and no ``--redis-url`` Redis is not read at all. The report lists
per arm revenue, units, sell-through, average price,
conversion and returns rate, the difference of each against the control arm with a
cluster-bootstrap interval (:func:`pricing.experiments.experiment_report`), and the
returns velocity per SKU and arm.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.commands.redis_option import (
    DEFAULT_DATA_DIR,
    FROM_DATA_DIR,
    DataDirOpt,
    LazyRedisUrlOpt,
    resolve_or_exit,
)

if TYPE_CHECKING:
    from pricing.experiments import ExperimentReport
    from service.config.models import DropConfig

__all__ = ["plot_report", "register"]

experiment_app = typer.Typer(help="Drop experiments: arms over markets and their report.")


def plot_report(report: ExperimentReport, path: Path) -> Path:
    """Save a figure: each metric's difference to control with its interval, per arm."""
    from service.extras import require

    matplotlib = require("matplotlib", "plots", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from pricing.experiments import METRICS

    diffs = report.differences
    arms = sorted(diffs["arm"].unique())
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, metric in zip(axes.ravel(), METRICS, strict=True):
        rows = diffs[diffs["metric"] == metric].set_index("arm").reindex(arms)
        y = rows["difference"].to_numpy(dtype=float)
        lo = y - rows["ci_low"].to_numpy(dtype=float)
        hi = rows["ci_high"].to_numpy(dtype=float) - y
        ax.errorbar(range(len(arms)), y, yerr=[lo, hi], fmt="o", capsize=6, color="tab:blue")
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        if not np.isfinite(y).any():
            ax.text(0.5, 0.5, "n/a: no data for this metric", ha="center", transform=ax.transAxes)
        ax.set_xticks(range(len(arms)), arms, rotation=15)
        ax.set_title(metric.replace("_", " "))
    pct = int(round(100 * report.level))
    fig.suptitle(
        f"{report.drop_id or 'experiment'}: arm − {report.control} ({pct}% bootstrap intervals)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _with_customers(
    rep: ExperimentReport,
    events: Any,
    drop: DropConfig,
    *,
    n_boot: int,
    level: float,
    seed: int,
    now: datetime | None,
) -> ExperimentReport:
    """``rep`` with the 30-day repeat value of the drop's new customers, when its sales
    carry customers (:func:`pricing.customers.repeat_value`)."""
    import dataclasses

    from pricing.customers import repeat_value

    if "customer_id" not in events.columns or not events["customer_id"].notna().any():
        return rep
    market_arm = {m: a.name for a in drop.arms for m in a.markets}
    market_arm.update({m: "control" for m in drop.markets if m not in market_arm})
    if len(set(market_arm.values())) < 2:
        return rep
    value = repeat_value(
        events,
        drop_start=drop.windows[0].start,
        drop_end=drop.windows[-1].end,
        market_arm=market_arm,
        control=rep.control,
        now=now if now is None or now.tzinfo else now.replace(tzinfo=UTC),
        n_boot=n_boot,
        level=level,
        key=seed,
    )
    return dataclasses.replace(rep, customers=value)


def _read_table(path: Path) -> Any:
    import pandas as pd

    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    if path.suffix.lower() == ".parquet":
        from service.extras import require

        require("pyarrow", "parquet", "reading .parquet files")
        return pd.read_parquet(path)
    return pd.read_csv(path)


@experiment_app.command("report")
def report(
    drop_id: Annotated[str, typer.Argument(help="The drop's id (its config file's `id`).")],
    config_dir: Annotated[
        Path,
        typer.Option("--config-dir", envvar="DROPPRICE_CONFIG_DIR", help="Operator configs."),
    ] = Path("configs"),
    redis_url: LazyRedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    events_file: Annotated[
        Path | None, typer.Option("--events", help="Events CSV/Parquet instead of Redis.")
    ] = None,
    lookups_file: Annotated[
        Path | None, typer.Option("--lookups", help="Price look-ups CSV/Parquet.")
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="Reference arm (default: 'control', else the first).")
    ] = None,
    cluster: Annotated[
        str, typer.Option(help="Bootstrap unit: sku_market or market.")
    ] = "sku_market",
    n_boot: Annotated[int, typer.Option(min=100, max=100_000, help="Bootstrap draws.")] = 2000,
    level: Annotated[float, typer.Option(min=0.5, max=0.999, help="Interval level.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Save a figure of the differences here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            help="Report as of this time (ISO 8601, default now): the 30 days of repeat "
            "purchases are counted up to it.",
        ),
    ] = None,
) -> None:
    """Per-arm revenue, units, sell-through, average price, conversion and returns,
    and each arm's difference to the control arm with a confidence interval."""
    from pricing.exceptions import InputError
    from pricing.experiments import ArmSpec, experiment_report
    from service.commands.signals import read_events_file
    from service.config.loader import load_config_dir
    from service.exceptions import ConfigError

    try:
        bundle = load_config_dir(config_dir)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    drop = next((d for d in bundle.drops if d.id == drop_id), None)
    if drop is None:
        known = sorted(d.id for d in bundle.drops)
        raise typer.BadParameter(f"no drop {drop_id!r} under {config_dir}; drops: {known}")
    if not drop.arms:
        raise typer.BadParameter(
            f"drop {drop_id!r} has no arms; add `arms:` to its config to run an experiment"
        )
    arms = [ArmSpec(a.name, tuple(a.markets), a.pricing, a.release, a.waves) for a in drop.arms]
    inventory = {(s.sku, m): n for s in drop.skus for m, n in s.inventory.items()}
    skus = [s.sku for s in drop.skus]
    lookups = _read_table(lookups_file) if lookups_file is not None else None
    if events_file is None:  # the events come from Redis: the one given, else serve's
        redis_url = resolve_or_exit(redis_url, data_dir)
    if redis_url and (events_file is None or lookups is None):
        from service.served import load_lookups
        from service.signal_feed import load_events
        from service.store import PriceStore, connect

        store = PriceStore(connect(redis_url, timeout=5.0))
        try:
            if events_file is None:
                # Every kept event (streams are capped): the drop's sales in the windows,
                # the returns that trail them, and its customers' later purchases of any SKU.
                events = load_events(store, since=None)
            if lookups is None:
                pairs = [(s.sku, m) for s in drop.skus for m in s.inventory]
                lookups = load_lookups(store, pairs)
        finally:
            store.close()
    if events_file is not None:
        events = read_events_file(events_file)
    in_drop = events[events["sku"].isin(skus) & events["market"].isin(drop.markets)]
    if "type" not in in_drop.columns or not (in_drop["type"] == "sale").any():
        typer.echo(
            f"cannot report on {drop_id}: no sales of its SKUs in its markets "
            f"({', '.join(drop.markets)}) yet, so there is nothing to compare between arms",
            err=True,
        )
        raise typer.Exit(1)
    try:
        rep = experiment_report(
            in_drop,
            lookups,
            arms=arms,
            inventory=inventory,
            control=control,
            cluster=cluster,  # type: ignore[arg-type]
            n_boot=n_boot,
            level=level,
            key=seed,
            drop_id=drop_id,
        )
        rep = _with_customers(rep, events, drop, n_boot=n_boot, level=level, seed=seed, now=as_of)
    except InputError as exc:
        typer.echo(f"cannot report on {drop_id}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if plot is not None:
        plot_report(rep, plot)
        typer.echo(f"wrote {plot}", err=True)
    if as_json:
        sys.stdout.write(json.dumps(rep.to_dict(), default=str) + "\n")
    else:
        typer.echo(str(rep))


def register(app: typer.Typer) -> None:
    """Add the ``dropprice experiment`` group to ``app``."""
    app.add_typer(experiment_app, name="experiment")
