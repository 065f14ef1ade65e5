"""``dropprice loadtest``: the command that seeds, runs, checks and judges."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from service.commands.loadtest.report import (
    _server_rows,
    _server_table,
    _try_scrape,
    _verdict_tables,
)
from service.commands.loadtest.running import (
    _remote_catalog,
    _Run,
    _run_locust,
    _target,
    _wait_seeded,
    _warm_up,
    find_locustfile,
)
from service.commands.loadtest.stats import (
    SHAPE_NAMES,
    SLO_KEYS,
    evaluate_slos,
    parse_duration,
    parse_slos,
    read_locust_stats,
    read_peak,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``dropprice loadtest`` to ``app``."""
    app.command("loadtest")(loadtest)


def loadtest(
    host: Annotated[
        str | None,
        typer.Option(
            help="Service to test, e.g. http://10.0.0.5:8000. Default: start one here "
            "(dropprice serve on a private redis-server) and stop it after."
        ),
    ] = None,
    users: Annotated[
        int, typer.Option(min=1, max=100_000, help="Peak concurrent terminals (the rush plateau).")
    ] = 20,
    spawn_rate: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Terminals started per second (steady shape; rush/soak set their own). "
            "Default: all within 2 s.",
        ),
    ] = None,
    duration: Annotated[str, typer.Option(help="Run length: 60s, 2m, 1h30m.")] = "60s",
    shape: Annotated[
        str,
        typer.Option(
            help="rush (baseline, spike when the drop opens, plateau, decay), soak (steady "
            "for the whole run, after a ramp) or steady (plain --users/--spawn-rate)."
        ),
    ] = "rush",
    slo: Annotated[
        str, typer.Option(help=f"Comma-separated targets, from {sorted(SLO_KEYS)}.")
    ] = "p99_ms=10,error_rate=0.001",
    report_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for locust's HTML/CSV reports, logs and verdict.json "
            "(default: loadtest-report-<time>)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="DROPPRICE_API_KEY",
            help="pos key the terminals send (--host only; a fresh one otherwise).",
        ),
    ] = None,
    operator_key: Annotated[
        str | None,
        typer.Option(
            envvar="DROPPRICE_OPERATOR_KEY",
            help="operator key that creates the run's drop (--host only).",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(help="Redis of --host, read after the run to check the events stream."),
    ] = None,
    skus: Annotated[int, typer.Option(min=1, max=9999, help="SKUs in the run's drop.")] = 40,
    markets: Annotated[int, typer.Option(min=1, max=50, help="Markets (stores).")] = 3,
    inventory: Annotated[
        int,
        typer.Option(
            min=0,
            max=1_000_000,
            help="Units per SKU and market; small so the popular SKUs sell out.",
        ),
    ] = 10,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="uvicorn workers of the service started here.")
    ] = 1,
    rush_multiple: Annotated[
        float,
        typer.Option(min=1.0, help="rush: peak terminals over the baseline before the drop opens."),
    ] = 10.0,
    think_max: Annotated[
        float, typer.Option(min=0.0, help="Longest pause between one terminal's requests, seconds.")
    ] = 0.5,
    warmup: Annotated[
        int,
        typer.Option(
            min=0,
            max=100_000,
            help="Requests sent before the measured run (not counted), so a freshly "
            "started service is measured warm.",
        ),
    ] = 200,
    locustfile: Annotated[
        Path | None,
        typer.Option(help="Locustfile to run (default: the installed loadtests/locustfile.py)."),
    ] = None,
) -> None:
    """Run a drop rush against the service and judge it: SLOs and the books.

    Exit code 0 when every SLO and every book check passes, 1 when any fails, 2 when
    the run could not be judged (the service did not start, locust wrote no stats).
    """
    from rich.console import Console

    # A report read from a CI log or a file should not wrap at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 120)
    if shape not in SHAPE_NAMES:
        raise typer.BadParameter(
            f"shape must be one of {list(SHAPE_NAMES)}, got {shape!r}", param_hint="--shape"
        )
    duration_s = parse_duration(duration)
    slos = parse_slos(slo)
    from service.extras import require_installed

    require_installed("locust", "loadtest", "dropprice loadtest")
    locust_path = find_locustfile(locustfile)
    from loadtests.books import check_books, fetch_inventory, read_ledger, read_stream_sales
    from loadtests.drop import Manifest, make_load_drop

    run_id = time.strftime("%m%d%H%M%S") + secrets.token_hex(2)
    report = (report_dir or Path(f"loadtest-report-{run_id}")).resolve()
    report.mkdir(parents=True, exist_ok=True)
    market_names = tuple(f"lt-store-{i + 1:02d}" for i in range(markets))
    category, currency = "loadtest", None
    if host:
        host = host.rstrip("/")
        if not api_key:
            raise typer.BadParameter(
                "testing --host needs a pos key: pass --api-key or set DROPPRICE_API_KEY",
                param_hint="--api-key",
            )
        if not operator_key:
            raise typer.BadParameter(
                "seeding a drop on --host needs an operator key: pass --operator-key or set "
                "DROPPRICE_OPERATOR_KEY",
                param_hint="--operator-key",
            )
        try:
            category, known_markets, currency = _remote_catalog(host, operator_key)
        except RuntimeError as exc:
            from rich.markup import escape

            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from exc
        if known_markets:
            market_names = known_markets[:markets]
    else:
        api_key = secrets.token_urlsafe(24)
    drop = make_load_drop(
        run_id,
        n_skus=skus,
        markets=market_names,
        inventory=inventory,
        category=category,
        currency=currency,
    )

    load_before = os.getloadavg()
    run_dir = Path(tempfile.mkdtemp(prefix="dropprice-loadtest-"))
    try:
        console.print(
            f"[bold]dropprice loadtest[/] {shape}, {users} terminals, "
            f"{duration_s:g}s, drop {drop.drop_id} "
            f"({skus} SKUs x {markets} markets x {inventory} units)"
        )
        with _target(host, run_dir, report, drop, api_key, operator_key, redis_url, workers) as (
            url,
            stream_redis,
        ):
            run = _Run(
                report,
                url,
                api_key,
                stream_redis,
                drop,
                [(s, m) for s in drop.skus for m in drop.markets],
            )
            initial = _wait_seeded(run)
            _warm_up(run, warmup)
            ledger_dir = report / "ledger"
            shutil.rmtree(ledger_dir, ignore_errors=True)
            manifest = Manifest(
                run_id=run_id,
                api_key=api_key,
                skus=drop.skus,
                markets=drop.markets,
                ledger_dir=str(ledger_dir),
            )
            manifest_path = manifest.dump(run_dir / "manifest.json")
            console.print(f"service {url}; locust running (log: {report / 'locust.log'})")
            server_before = _try_scrape(url)
            code = _run_locust(
                run,
                locust_path,
                users=users,
                spawn_rate=spawn_rate or max(1.0, users / 2.0),
                duration_s=duration_s,
                shape=shape,
                manifest=manifest_path,
                extra=["--rush-multiple", str(rush_multiple), "--think-max", str(think_max)],
            )
            stats_csv = report / "locust_stats.csv"
            if not stats_csv.exists():
                tail = (report / "locust.log").read_text()[-3000:]
                raise RuntimeError(f"locust exited with code {code} and wrote no stats:\n{tail}")
            server_after = _try_scrape(url) if server_before is not None else None
            final = fetch_inventory(url, api_key, run.pairs)
            stream = read_stream_sales(stream_redis, drop.skus) if stream_redis else None
        sales, status_counts, _stale = read_ledger(ledger_dir)
        books = check_books(
            initial=initial, final=final, sales=sales, status_counts=status_counts, stream=stream
        )
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        # The run could not be judged (service did not start, locust died, ...): no verdict.
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        console.print(f"logs in {report}")
        raise typer.Exit(2) from exc
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    stats = read_locust_stats(stats_csv)
    server = _server_rows(server_before, server_after)
    peak = read_peak(report / "locust_stats_history.csv")
    slo_results = evaluate_slos(stats, slos)
    passed = all(s.ok for s in slo_results) and books.ok
    for table in _verdict_tables(
        stats, slo_results, books, f"{shape}: {users} terminals, {duration_s:g}s, {url}"
    ):
        console.print(table)
    if server is not None:
        console.print(_server_table(server))
    console.print(f"peak: {peak.users} terminals, {peak.rps:,.1f} req/s")
    console.print(
        f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (other work on the box shows in the latencies)"
    )
    console.print(
        f"books: {books.units_sold}/{books.units_initial} units sold in "
        f"{books.sales_accepted} sales, {books.sales_sold_out} refused sold_out, "
        f"{books.sold_out_pairs}/{books.pairs} SKU-markets sold out, "
        f"{books.replays} replays"
    )
    verdict = {
        "passed": passed,
        "run_id": run_id,
        "host": url,
        "shape": shape,
        "users": users,
        "duration_s": duration_s,
        "slos": [s._asdict() for s in slo_results],
        "routes": [r._asdict() for r in stats],
        "peak": peak._asdict(),
        # The service's own histogram (one process): excludes the load generator's delays.
        "server": None if server is None else [r._asdict() for r in server],
        "books": books.to_dict(),
        # Other work on the machine shows in the latencies: keep it with the figures.
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
        "reports": {"html": str(report / "locust.html"), "csv": str(stats_csv)},
    }
    (report / "verdict.json").write_text(json.dumps(verdict, indent=2))
    console.print(
        ("[bold green]PASS[/]" if passed else "[bold red]FAIL[/]") + f"  reports in {report}"
    )
    if not passed:
        raise typer.Exit(1)
