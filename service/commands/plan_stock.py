"""``dropprice plan-stock``: how many units of each SKU to send to each market and window.

Examples::

    dropprice plan-stock weekend-popup-two-towns
    dropprice plan-stock weekend-popup-two-towns --total SHR-TEE-001=300 --json
    dropprice plan-stock weekend-popup-two-towns --transfer-cost ocean-grove=1.50 \\
        --returns-rate 0.08 --announce 2026-12-12T09:00:00-05:00=2 --plot plan.png

The drop comes from the live config version in Redis (``--config-dir`` only seeds an
empty Redis, as for ``dropprice refit``). Demand is the live fit's posterior expected
demand where the live surface version saved one for the (SKU, market), else the
category prior with the engine's neutral level guess (the rate that sells the
configured stock at list over the drop's periods). :func:`pricing.allocation.plan_stock`
then values ``n`` units of every SKU x market x window with the engine's own DP and
hands them out by marginal value.

Money: the stock is on hand, so its unit cost is paid whatever the plan. Units compete
on what one more unit adds in revenue (net of returns) plus salvage, minus transfers;
a unit held back is worth its ``salvage_value``. The "last unit" and "next unit"
columns are those marginal values, to compare with the salvage value. The expected
profit of a row is its revenue net of returns, plus the salvage of what it leaves
unsold, minus the cost of the units it holds and the transfers into its market; a
SKU's is the whole stock's (held-back units salvaged, every unit's cost paid). A market's configured stock counts as on hand for its first
window; ``--transfer-cost`` charges each unit shipped in beyond it.

Exit codes: 0 planned, 2 bad input (unknown drop, bad ``--total``, no config, Redis down).
"""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.commands.redis_option import DEFAULT_DATA_DIR, FROM_DATA_DIR, DataDirOpt, RedisUrlOpt
from service.commands.refit import ConfigDirOpt

if TYPE_CHECKING:
    import numpy as np

    from pricing.allocation import SlotDemand, StockPlan
    from service.config.models import ConfigBundle, DropConfig, SkuConfig

__all__ = ["register"]

LEVEL_SD = 1.0
"""Sd of the log demand level around the neutral guess (the engine's)."""
PRIOR_LIFT = 0.25
"""Log-demand lift per unit of intensity when the fit has no intensity terms (the engine's)."""
ANNOUNCEMENT_HALF_LIFE = 24.0
"""Hours for a planned announcement's lift to halve (overridden by the event table's)."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def parse_pairs(values: list[str], option: str, *, integer: bool) -> dict[str, float]:
    """``KEY=VALUE`` options into a dict; exit 2 naming the bad one."""
    out: dict[str, float] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            number = None
        if not sep or not key or number is None or number < 0 or not math.isfinite(number):
            kind = "a whole number of units >= 0" if integer else "an amount >= 0"
            raise _fail(f"{option} takes KEY=VALUE with VALUE {kind}, got {raw!r}")
        if key in out:
            raise _fail(f"{option} names {key!r} twice")
        out[key.strip()] = number
    return out


def _announcements(values: list[str], start: datetime) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for raw in values:
        at, _, size = raw.partition("=")
        try:
            when = datetime.fromisoformat(at)
            amount = float(size) if size else 1.0
        except ValueError:
            raise _fail(f"--announce takes ISO_TIME[=SIZE] with a time zone, got {raw!r}") from None
        if when.tzinfo is None or not math.isfinite(amount) or amount < 0:
            raise _fail(f"--announce needs a zoned time and a size >= 0, got {raw!r}")
        out.append(((when - start).total_seconds() / 3600.0, amount))
    return out


def _load_fit(store: Any) -> tuple[Any, str | None]:
    """The live surface version's saved fit and its id, or ``(None, None)``."""
    from service.store.refit_state import RefitState

    live = store.live_version()
    if live is None:
        return None, None
    info = next((v for v in store.list_versions() if v.version == live), None)
    fit_id = info.meta.get("fit_id") if info is not None else None
    if not fit_id:
        return None, None
    try:
        fit = RefitState(store).load_fit(str(fit_id))
    except Exception:  # an unreadable fit plans on priors, like a cold start
        return None, None
    return fit, (str(fit_id) if fit is not None else None)


def build_slots(
    bundle: ConfigBundle,
    drop: DropConfig,
    fit: Any,
    *,
    transfer_cost: dict[str, float],
    returns_rate: float,
    announcements: list[str],
) -> tuple[list[SlotDemand], list[str]]:
    """One :class:`~pricing.allocation.SlotDemand` per SKU x market x window of ``drop``.

    Returns:
        The slots and, per slot, where its demand came from (``fit`` or ``prior``).
    """
    import numpy as np

    from pricing.allocation import SlotDemand, planned_intensity
    from pricing.events import EVENT_KINDS
    from service.drops import guardrail_spec, sku_ladder, window_horizons

    half_life = EVENT_KINDS["announcement"].half_life_hours or ANNOUNCEMENT_HALF_LIFE
    horizons = window_horizons(drop)
    total_periods = sum(h.periods for h in horizons)
    planned = _announcements(announcements, drop.windows[0].start)
    fit_rows = {tuple(k): i for i, k in enumerate(fit.keys)} if fit is not None else {}
    slots: list[SlotDemand] = []
    sources: list[str] = []
    windows = []
    for horizon in horizons:
        starts = horizon.starts()
        hours = np.array([ts.astimezone(UTC).hour for ts in starts])
        offsets = np.array([(ts - drop.windows[0].start).total_seconds() / 3600 for ts in starts])
        windows.append((horizon, hours, planned_intensity(0.0, offsets, half_life, planned)[0]))
    # Rows read SKU by SKU, market by market, window by window.
    for sku in drop.skus:
        for market, stock in sku.inventory.items():
            rails = bundle.guardrails_for(drop, sku, market)
            for w, (horizon, hours, path) in enumerate(windows):
                ladder = sku_ladder(guardrail_spec(rails, sku, drop, horizon), rails, sku)
                row = fit_rows.get((sku.sku, market))
                if row is not None:
                    rates = _fit_rates(fit, row, ladder, hours, path, drop.period_minutes)
                    sources.append("fit")
                else:
                    rates = _prior_rates(bundle, sku, stock, total_periods, ladder, path)
                    sources.append("prior")
                slots.append(
                    SlotDemand(
                        sku=sku.sku,
                        market=market,
                        window=w,
                        rates=rates,
                        prices=ladder,
                        unit_cost=0.0,  # on hand: paid whatever the plan (see below)
                        salvage=sku.salvage_value,
                        pricing_cost=sku.unit_cost if drop.objective == "profit" else 0.0,
                        transfer_cost=transfer_cost.get(market, 0.0),
                        on_hand=stock if w == 0 else 0,
                        returns_rate=returns_rate,
                    )
                )
    return slots, sources


def _fit_rates(
    fit: Any, row: int, ladder: np.ndarray, hours: np.ndarray, path: np.ndarray, minutes: int
) -> np.ndarray:
    """``[T, K]`` posterior expected demand of one fitted row, per drop period."""
    import numpy as np

    from pricing.guardrails import POLICY_EXTRAPOLATION

    s_all = len(fit.keys)
    prices = np.ones((s_all, ladder.size))
    prices[row] = ladder
    intensity = np.zeros((s_all, path.size))
    intensity[row] = path
    with np.errstate(over="ignore", invalid="ignore"):
        rates = np.asarray(
            fit.posterior_rates(
                prices,
                intensity=intensity if fit.has_intensity else None,
                hours=hours,
                extrapolation=POLICY_EXTRAPOLATION,
            )
        )[row]
    if rates.shape[0] != path.size:
        rates = np.broadcast_to(rates, (path.size, ladder.size))
    if not fit.has_intensity:
        rates = rates * np.exp(PRIOR_LIFT * path)[:, None]
    scale = (minutes / 60.0) / (fit.period_hours or 1.0)
    return np.asarray(np.nan_to_num(rates * scale, nan=0.0, posinf=0.0))


def _prior_rates(
    bundle: ConfigBundle,
    sku: SkuConfig,
    stock: int,
    total_periods: int,
    ladder: np.ndarray,
    path: np.ndarray,
) -> np.ndarray:
    """``[T, K]`` cold-start demand: category prior, the engine's neutral level guess."""
    import numpy as np

    from pricing.allocation import prior_rates
    from pricing.model import FALLBACK_PRIOR

    prior = bundle.categories.categories.get(sku.category)
    mean, sd = (prior.mean, prior.sd) if prior is not None else FALLBACK_PRIOR
    neutral = max(stock / total_periods, 1e-3) * math.exp(-0.5 * LEVEL_SD**2)
    rates = prior_rates(
        ladder[None, :],
        np.array([sku.list_price]),
        np.array([neutral]),
        elasticity_mean=np.array([mean]),
        elasticity_sd=np.array([sd]),
        periods=path.size,
        intensity=path[None, :],
        level_sd=LEVEL_SD,
        lift=PRIOR_LIFT,
    )
    return np.asarray(rates[0])


def _print_table(plan: StockPlan, drop: DropConfig, header: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"stock plan for {drop.id}", caption=header)
    for col, just in (
        ("sku", "left"),
        ("market", "left"),
        ("window", "right"),
        ("units", "right"),
        ("exp. sold", "right"),
        ("sell-through", "right"),
        ("exp. revenue", "right"),
        ("exp. profit", "right"),
        ("last unit", "right"),
        ("next unit", "right"),
        ("opening price", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]

    def money(x: float) -> str:
        return "-" if not math.isfinite(x) else f"{x:,.2f}"

    for r in plan.rows:
        table.add_row(
            r["sku"],
            r["market"],
            str(r["window"] + 1),
            str(r["units"]),
            f"{r['expected_sold']:.1f}",
            "-" if not math.isfinite(r["sell_through"]) else f"{r['sell_through']:.0%}",
            money(r["expected_revenue"]),
            money(r["expected_profit"]),
            money(r["marginal_value"]),
            money(r["next_unit_value"]),
            money(r["opening_price"]),
        )
    console.print(table)
    markets = Table(title="per market and window")
    for col in ("market", "window", "units", "exp. sold", "sell-through", "exp. revenue"):
        markets.add_column(col, justify="left" if col == "market" else "right")
    markets.add_column("one more unit", justify="right")
    for m in plan.by_market_window():
        best = m["next_unit_value"]
        markets.add_row(
            m["market"],
            str(m["window"] + 1),
            str(m["units"]),
            f"{m['expected_sold']:.1f}",
            "-" if not math.isfinite(m["sell_through"]) else f"{m['sell_through']:.0%}",
            money(m["expected_revenue"]),
            "-" if not math.isfinite(best) else f"{money(best)} ({m['next_unit_sku']})",
        )
    console.print(markets)
    for sku, s in plan.skus.items():
        console.print(
            f"{sku}: {s['placed']} of {s['total']} units placed, {s['held_back']} held back "
            f"(salvage {s['holdback_value']:.2f} each), expected profit "
            f"{s['expected_profit']:,.2f} ({s['method']} allocation)"
        )
    for f in plan.failover:
        console.print(
            f"if {f.sku} sells out in {f.market}: {f.share:.0%} of its shoppers expected to "
            f"buy {f.absorbed_by} ({'declared in the drop config' if f.source == 'config' else 'estimated from stock-outs'})"
        )
    console.print(f"expected profit of the plan: {plan.expected_profit:,.2f}")


def _plot(plan: StockPlan, path: Path, drop: DropConfig) -> None:
    """One panel per SKU: the marginal value of each slot's n-th unit, planned units marked."""
    from service.extras import require

    matplotlib = require("matplotlib", "plots", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    skus = list(plan.skus)
    cols = min(3, len(skus))
    rows = math.ceil(len(skus) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    units = {(r["sku"], r["market"], r["window"]): r["units"] for r in plan.rows}
    for ax, sku in zip(axes.ravel(), skus, strict=False):
        holdback = plan.skus[sku]["holdback_value"]
        for (s, market, window), curve in plan.curves.items():
            if s != sku or curve.size < 2:
                continue
            marginal = np.diff(curve)
            n = np.arange(1, curve.size)
            (line,) = ax.plot(n, marginal, lw=1.4, label=f"{market} w{window + 1}")
            k = units[(s, market, window)]
            if k > 0:
                ax.plot([k], [marginal[k - 1]], "o", color=line.get_color())
        ax.axhline(holdback, color="grey", ls="--", lw=0.8, label="held back")
        ax.set_title(sku, fontsize=9)
        ax.set_xlabel("n-th unit")
        ax.set_ylabel("marginal value")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(skus) :]:
        ax.axis("off")
    fig.suptitle(f"{drop.id}: marginal value of one more unit (dots: the plan)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plan_stock(
    drop_id: Annotated[str, typer.Argument(help="Drop id in the live config.")],
    total: Annotated[
        list[str] | None,
        typer.Option(
            "--total",
            help="SKU=N units available for a SKU (repeatable); default: the SKU's "
            "configured inventory summed over markets.",
        ),
    ] = None,
    transfer_cost: Annotated[
        list[str] | None,
        typer.Option(
            "--transfer-cost",
            help="MARKET=AMOUNT per unit shipped into a market beyond its configured stock.",
        ),
    ] = None,
    returns_rate: Annotated[
        float,
        typer.Option("--returns-rate", min=0.0, max=0.95, help="Share of sales returned."),
    ] = 0.0,
    announce: Annotated[
        list[str] | None,
        typer.Option(
            "--announce",
            help="ISO_TIME[=SIZE] a planned announcement (index units, default 1).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the marginal-value curves (PNG).")
    ] = None,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    config_dir: ConfigDirOpt = Path("configs"),
) -> None:
    """Plan units per SKU x market x window that maximise the drop's expected profit."""
    from pricing.allocation import plan_stock as plan
    from service.commands.refit import _connect, _live_config
    from service.failover import drop_failover, estimated_shares

    store = _connect(redis_url)
    try:
        live = _live_config(store, config_dir, required=True)
        drop = live.bundle.drop(drop_id)
        if drop is None:
            known = sorted(d.id for d in live.bundle.drops)
            raise _fail(
                f"unknown drop {drop_id!r} in config version {live.version}; drops: {known}"
            )
        totals_in = parse_pairs(total or [], "--total", integer=True)
        unknown = sorted(set(totals_in) - {s.sku for s in drop.skus})
        if unknown:
            raise _fail(
                f"--total names SKU(s) {unknown} that drop {drop_id!r} does not sell; "
                f"its SKUs: {[s.sku for s in drop.skus]}"
            )
        transfers = parse_pairs(transfer_cost or [], "--transfer-cost", integer=False)
        bad_markets = sorted(set(transfers) - set(drop.markets))
        if bad_markets:
            raise _fail(
                f"--transfer-cost names market(s) {bad_markets} outside the drop's "
                f"{list(drop.markets)}"
            )
        fit, fit_id = _load_fit(store)
        # Where a variant has sold out, the sales say where its shoppers went.
        shares = estimated_shares(store, drop, fit)
    finally:
        store.close()
    totals = {s.sku: int(totals_in.get(s.sku, sum(s.inventory.values()))) for s in drop.skus}
    slots, sources = build_slots(
        live.bundle,
        drop,
        fit,
        transfer_cost=transfers,
        returns_rate=returns_rate,
        announcements=announce or [],
    )
    # The stock's cost is sunk: units compete on revenue plus salvage, a unit held back is
    # worth its salvage; the cost of the units each row holds is netted out afterwards.
    holdback = {s.sku: s.salvage_value for s in drop.skus}
    failover = [
        f for market in drop.markets for f in drop_failover(drop, market, shares=shares.get(market))
    ]
    result = plan(slots, totals, holdback_value=holdback, failover=failover)
    cost = {s.sku: s.unit_cost for s in drop.skus}
    for row, source in zip(result.rows, sources, strict=True):
        row["demand"] = source
        row["expected_profit"] -= cost[row["sku"]] * row["units"]
    for sku, summary in result.skus.items():
        summary["expected_profit"] -= cost[sku] * summary["total"]
        summary["unit_cost"] = cost[sku]
    demand = f"live fit {fit_id}" if "fit" in sources else "category priors (cold start)"
    if plot is not None:
        _plot(result, plot, drop)
    if as_json:
        body = {
            "drop": drop.id,
            "config_version": live.version,
            "demand": demand,
            "fit_id": fit_id,
            "objective": drop.objective,
            "returns_rate": returns_rate,
            **result.to_dict(),
        }
        sys.stdout.write(json.dumps(body) + "\n")
        return
    _print_table(result, drop, f"config v{live.version}, demand from {demand}")
    if plot is not None:
        typer.echo(f"marginal-value curves written to {plot}")


def register(app: typer.Typer) -> None:
    """Add ``plan-stock`` to the CLI."""
    app.command("plan-stock")(plan_stock)
