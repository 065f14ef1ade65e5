"""The verdict tables: per route, per SLO and per book check, and the service's own view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.commands.loadtest.stats import TOTAL, RouteStats, SloResult


def _verdict_tables(
    stats: Sequence[RouteStats], slos: Sequence[SloResult], books: Any, title: str
) -> list[Any]:
    from rich.table import Table
    from rich.text import Text  # plain cells: route names like /v1/prices/[sku] are not markup

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    routes = Table(title=Text(title), title_justify="left")
    for col in ("route", "requests", "failures", "p50 ms", "p95 ms", "p99 ms", "req/s"):
        routes.add_column(col, justify="left" if col == "route" else "right")
    for r in stats:
        routes.add_row(
            Text("total" if r.name == TOTAL else r.name),
            f"{r.requests:,}",
            f"{r.failures:,}",
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            f"{r.rps:,.1f}",
            style="bold" if r.name == TOTAL else None,
        )
    verdict = Table(title="verdict", title_justify="left")
    for col in ("check", "target", "measured", "", "result"):
        verdict.add_column(col)
    for s in slos:
        measured = "-" if s.measured is None else f"{s.measured:.4g}"
        op = ">=" if s.name == "min_rps" else "<="
        verdict.add_row(
            s.name,
            f"{op} {s.target:g}",
            measured,
            Text("" if s.where == TOTAL else s.where),
            "[green]PASS[/]" if s.ok else "[red]FAIL[/]",
        )
    for c in books.checks:
        result = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[yellow]SKIP[/]"}[c.ok]
        verdict.add_row(f"books: {c.name}", "", "", Text(c.detail), result)
    return [routes, verdict]


def _try_scrape(url: str) -> Any:
    """The service's latency histograms, or ``None`` when ``/metrics`` is not reachable."""
    from loadtests.serverside import scrape

    try:
        return scrape(url)
    except RuntimeError:
        return None


def _server_rows(before: Any, after: Any) -> list[Any] | None:
    """Server-side latency per API route over the run (health and metrics left out)."""
    if before is None or after is None:
        return None
    from loadtests.serverside import route_latencies, subtract

    rows = route_latencies(subtract(after, before))
    return [r for r in rows if r.route.split(" ", 1)[-1].startswith("/v1/")]


def _server_table(rows: Sequence[Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.2f}"

    table = Table(
        title="service side (its request histogram, one process; bucket-interpolated)",
        title_justify="left",
    )
    for col in ("route", "requests", "<= 10 ms", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "route" else "right")
    for r in rows:
        within = "-" if r.within_10ms is None else f"{100 * r.within_10ms:.2f} %"
        table.add_row(Text(r.route), f"{r.requests:,}", within, ms(r.p50), ms(r.p99))
    return table
