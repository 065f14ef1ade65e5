"""``dropprice demo``: a compressed creator drop priced live, in one command."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from service.commands.shutdown import SignalExit, exit_on_signals


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the CLI."""
    app.command("demo")(demo)


def demo(
    duration: Annotated[
        float,
        typer.Option(
            "--duration", min=6.0, max=3600.0, help="Seconds of the drop (windows and gaps)."
        ),
    ] = 90.0,
    windows: Annotated[
        int, typer.Option(min=1, max=10, help="Selling windows; the engine re-fits before each.")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the simulated shoppers.")] = 7,
    config_dir: Annotated[
        Path | None,
        typer.Option(
            help="Configs holding drops/comic-shop-creator-drop.yaml (default: the repo's)."
        ),
    ] = None,
    non_interactive: Annotated[
        bool,
        typer.Option("--non-interactive", help="No live screen; print the summary at the end."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    device: Annotated[
        str, typer.Option(help="JAX device of the re-fits: cpu, gpu or auto.")
    ] = "cpu",
) -> None:
    """Run a compressed creator drop end to end and watch the prices move.

    Starts a private redis-server and the price service, replays the shop's recent
    sales, re-fits, then simulates POS terminals (price look-ups with quote_ids,
    sales) and the artist's announcement over a few short windows, re-fitting
    between them. Ends with each SKU's revenue against a fixed list price on the
    same shoppers. Exit code 1 if the books do not balance, 2 if the demo cannot
    start (configs missing or invalid, no redis-server).
    """
    from service.demo import DemoOptions, run_demo

    options = DemoOptions(
        duration_s=duration, windows=windows, seed=seed, config_dir=config_dir, device=device
    )
    from service.exceptions import DropPriceError

    live = not (non_interactive or as_json)
    try:
        # Unwound by SIGTERM/SIGHUP too, so the demo's private redis-server is stopped.
        with exit_on_signals(signal.SIGTERM, signal.SIGHUP) as received:
            try:
                if live:
                    summary = _run_live(options)
                else:
                    summary = run_demo(options, on_update=_RulesOnce(err=as_json))
            except Exception:
                # A signal raised inside code that wraps every error in its own (pydantic
                # building a schema while the service starts) still ends the demo as one.
                if received.signum is not None:
                    raise SignalExit(received.signum, 128 + received.signum) from None
                raise
    except (FileNotFoundError, DropPriceError) as exc:
        detail = "\n".join(exc.errors) if hasattr(exc, "errors") else str(exc)
        typer.echo(f"demo cannot start: {detail}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(summary)
    if not summary["books_balanced"]:
        typer.echo("the books do not balance: see units_left and units_sold", err=True)
        raise typer.Exit(1)


class _RulesOnce:
    """Print the drop's rules the demo changed, once, as soon as they are known."""

    def __init__(self, *, err: bool) -> None:
        self.err = err
        self.done = False

    def __call__(self, state: Any) -> None:
        if self.done or not state.loosened:
            return
        self.done = True
        typer.echo(_rules_text(state.loosened), err=self.err)


def _rules_text(loosened: list[Any]) -> str:
    lines = ["The demo keeps the drop's rules as written, except:"]
    lines += [f"  - {rule}" for rule in loosened]
    return "\n".join(lines)


def _run_live(options: Any) -> dict[str, Any]:
    from rich.live import Live

    from service.demo import run_demo

    with Live(refresh_per_second=4, transient=False) as live:
        return run_demo(options, on_update=lambda state: live.update(_table(state)))


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(state: Any) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{state.drop_id} @ {state.market}: {state.phase}",
        caption="price served now and the guardrail holding it; units left; intensity as a "
        "multiple of its last-24-hour mean (1.0 = a usual hour); fitted elasticity",
    )
    for col in (
        "SKU",
        "price",
        "list",
        "held by",
        "units left",
        "sold",
        "revenue",
        "intensity",
        "elasticity",
        "source",
    ):
        table.add_column(col, justify="left" if col in ("SKU", "source", "held by") else "right")
    for s in state.skus.values():
        arrow = ""
        if s.previous_price is not None and s.price != s.previous_price:
            arrow = " ↑" if s.price > s.previous_price else " ↓"
        elasticity = _fmt(s.elasticity, ".2f")
        if s.elasticity is not None and s.elasticity_se:
            elasticity += f" ±{1.96 * s.elasticity_se:.2f}"
        rel = s.intensity_relative
        table.add_row(
            s.sku,
            f"{s.price:.2f}{arrow}",
            f"{s.list_price:.2f}",
            _held_by(s),
            _fmt(s.units_left, "d"),
            str(s.units_sold),
            f"{s.revenue:,.2f}",
            "-" if rel is None else f"{rel:.2f}x",
            elasticity,
            s.source + (f" {s.version}" if s.version else ""),
        )
    rules = Text(_rules_text(state.loosened), style="yellow") if state.loosened else Text("")
    log = Text("\n".join(state.log[-4:]), style="dim")
    return Group(rules, table, log)


def _held_by(s: Any) -> str:
    """The guardrail binding the served price, with its value (``-``: the optimum)."""
    if s.bound_by is None:
        return "-" if s.source != "base" else "list price (no surface)"
    value = s.guardrails.get(s.bound_by)
    if isinstance(value, int | float):
        return f"{s.bound_by} {value:g}"
    return str(s.bound_by)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['drop']}: engine vs fixed list price, same shoppers")
    table.add_column("SKU", no_wrap=True)
    for col in ("sold", "revenue", "prices", "fixed sold", "fixed revenue", "β fit (true)"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in summary["skus"]:
        prior = " prior" if s.get("elasticity_from_prior") else ""
        low, high = s["min_price"], s["max_price"]
        table.add_row(
            s["sku"],
            f"{s['units_sold']}/{s['initial_inventory']}",
            f"{s['revenue']:,.2f}",
            f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f}",
            str(s["fixed_price"]["units_sold"]),
            f"{s['fixed_price']['revenue']:,.2f}",
            f"{_fmt(s['elasticity'], '.2f')}{prior} ({s['true_elasticity']:.2f})",
        )
    fixed = summary["fixed_price"]["revenue"]
    table.add_row(
        "total",
        str(summary["units_sold"]),
        f"{summary['revenue']:,.2f}",
        "",
        str(summary["fixed_price"]["units_sold"]),
        f"{fixed:,.2f}",
        "",
    )
    # Off a terminal rich assumes 80 columns, which truncates the SKU codes and figures.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for s in summary["skus"]:
        for w in s["windows"]:
            moves = ", ".join(
                f"{p['price']:.2f}"
                + (
                    f" at {p['units_left_range'][1]}-{p['units_left_range'][0]} left"
                    if p["units_left_range"]
                    else ""
                )
                + (f" ({p['bound_by']})" if p["bound_by"] else "")
                for p in sorted(w["prices"], key=lambda p: -(p["units_left_range"] or [0, 0])[1])
            )
            console.print(
                f"{s['sku']} window {w['window']}: {w['distinct_prices']} price(s), "
                f"units left {w['units_left_start']} -> {w['units_left_end']}: {moves}"
            )
    for s in summary["skus"]:
        console.print(f"{s['sku']}: {s['verdict']}")
    if not summary["prices_moved"]:
        console.print("no SKU's price moved within a window (see the guardrails above)")
    published = [r for r in summary["refits"] if r["state"] == "published"]
    console.print(
        f"revenue {summary['revenue']:,.2f} vs {fixed:,.2f} at the list price "
        f"({_fmt(summary['uplift_pct'], '+.1f')} %); {len(published)} re-fit(s) published "
        f"({', '.join(r['version'] for r in published)}); books balanced: "
        f"{'yes' if summary['books_balanced'] else 'NO'}; {summary['seconds']:.0f} s"
    )
