"""``dropprice loadtest``: hold the checkout rush, or say why not.

One command answers the question the team asks before a drop. It

1. seeds a drop of its own (SKUs unique to the run, a window open now, inventory
   small enough that the popular SKUs sell out): with no ``--host`` it starts a
   private ``redis-server`` (:mod:`service.embedded`) and ``dropprice serve`` on
   it as a uvicorn subprocess, with the drop in a temporary config folder and
   price surfaces published through :meth:`service.store.PriceStore.publish_surfaces`;
   with ``--host`` it creates the drop through the operator API
   (``PUT /v1/drops/{id}``, ``--operator-key``, using a category and markets of
   the live config) and deletes it afterwards; no surfaces are published there
   (a publish moves the service's live version, which rollbacks follow), so its
   prices are the list prices (``source: base``);
2. runs locust headless as a subprocess (``locust -f loadtests/locustfile.py
   --headless --csv ... --html ...``) with the ``rush`` or ``soak`` shape;
3. checks the books (:mod:`loadtests.books`): nothing oversold, inventory moved
   by exactly the accepted sales, each accepted sale once in the events stream,
   no 5xx;
4. prints a verdict table (per route: requests, failures, p50/p95/p99, req/s),
   PASS/FAIL per SLO and per book check, writes everything to ``--report-dir``
   (``locust.html``, ``locust_stats.csv``, ``locust_stats_history.csv``,
   ``verdict.json``, ``locust.log``, ``service.log``) and exits 1 on any FAIL;
5. adds the service's own latency per route, from its ``/metrics`` request
   histogram scraped before and after the run (:mod:`loadtests.serverside`), so
   time lost in the load generator or to a busy machine can be told apart.

Exit codes: 0 PASS, 1 FAIL, 2 the run could not be judged (no service, no stats).

Latency SLOs (``p50_ms``, ``p95_ms``, ``p99_ms``) hold for every route and for the
total; ``error_rate`` is failures over requests; ``min_rps`` the total requests/s.

The locustfile is ``loadtests/locustfile.py`` of the source tree the ``service``
package is imported from (an editable install, ``pip install -e .``, or a
checkout on ``PYTHONPATH``); ``--locustfile`` or ``DROPPRICE_LOCUSTFILE`` point
elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

__all__ = [
    "RouteStats",
    "SloResult",
    "evaluate_slos",
    "parse_duration",
    "Peak",
    "parse_slos",
    "read_locust_stats",
    "read_peak",
    "register",
    "repo_root",
]

SLO_KEYS = {
    "p50_ms": "p50 latency (ms, every route)",
    "p95_ms": "p95 latency (ms, every route)",
    "p99_ms": "p99 latency (ms, every route)",
    "error_rate": "failed requests / requests",
    "min_rps": "total requests per second",
}
SHAPE_NAMES = ("rush", "soak", "steady")
TOTAL = "Aggregated"


def repo_root() -> Path:
    """The source tree ``service`` was imported from (holds ``loadtests/``)."""
    return Path(__file__).resolve().parents[2]


def _import_loadtests() -> None:
    """Make the ``loadtests`` folder of the source tree importable."""
    root = str(repo_root())
    if root not in sys.path:
        sys.path.insert(0, root)


def find_locustfile(explicit: Path | None) -> Path:
    """``--locustfile``, else ``$DROPPRICE_LOCUSTFILE``, else ``<repo>/loadtests/locustfile.py``.

    Raises:
        typer.BadParameter: the file does not exist (names every place looked at).
    """
    env = os.environ.get("DROPPRICE_LOCUSTFILE")
    chosen = explicit or (Path(env) if env else None)
    if chosen is not None:
        if chosen.is_file():
            return chosen.resolve()
        raise typer.BadParameter(
            f"locustfile {str(chosen)!r} does not exist", param_hint="--locustfile"
        )
    default = repo_root() / "loadtests" / "locustfile.py"
    if default.is_file():
        return default
    raise typer.BadParameter(
        f"no locustfile at {str(default)!r}: install dropprice from a checkout "
        "(pip install -e .) or pass --locustfile",
        param_hint="--locustfile",
    )


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"2m"``, ``"1h30m"`` -> seconds.

    Raises:
        typer.BadParameter: not a duration, or not positive.
    """
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
        if not text or parts is None:
            raise typer.BadParameter(
                f"duration must look like 60s, 2m or 1h30m, got {text!r}", param_hint="--duration"
            )
        h, m, s = parts.groups()
        seconds = int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    if seconds <= 0:
        raise typer.BadParameter(f"duration must be > 0, got {text!r}", param_hint="--duration")
    return seconds


def parse_slos(text: str) -> dict[str, float]:
    """``"p99_ms=10,error_rate=0.001"`` -> ``{"p99_ms": 10.0, "error_rate": 0.001}``.

    Raises:
        typer.BadParameter: an unknown SLO, a missing ``=`` or a bad value.
    """
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise typer.BadParameter(f"SLO must be name=value, got {item!r}", param_hint="--slo")
        if name not in SLO_KEYS:
            raise typer.BadParameter(
                f"unknown SLO {name!r}, allowed {sorted(SLO_KEYS)}", param_hint="--slo"
            )
        try:
            number = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"SLO {name} must be a number, got {value!r}", param_hint="--slo"
            ) from None
        if not number >= 0 or number == float("inf"):
            raise typer.BadParameter(
                f"SLO {name} must be a finite number >= 0, got {value!r}", param_hint="--slo"
            )
        if name == "error_rate" and number > 1:
            raise typer.BadParameter(
                f"error_rate is a fraction in [0, 1], got {number}", param_hint="--slo"
            )
        out[name] = number
    return out


class RouteStats(NamedTuple):
    """One row of locust's ``*_stats.csv`` (times in ms)."""

    name: str
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    rps: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def read_locust_stats(path: Path) -> list[RouteStats]:
    """Rows of locust's ``<prefix>_stats.csv``, the total (``Aggregated``) last.

    Raises:
        FileNotFoundError: locust wrote no stats (see ``locust.log``).
    """
    import csv

    def pct(value: str) -> float | None:
        return None if value in ("", "N/A") else float(value)

    rows = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append(
                RouteStats(
                    name=row["Name"] if row["Name"] == TOTAL else f"{row['Type']} {row['Name']}",
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    p50=pct(row["50%"]),
                    p95=pct(row["95%"]),
                    p99=pct(row["99%"]),
                    rps=float(row["Requests/s"]),
                )
            )
    rows.sort(key=lambda r: (r.name == TOTAL, r.name))
    return rows


class Peak(NamedTuple):
    """The busiest moment of a run, from locust's per-second history (``--csv-full-history``)."""

    users: int
    """Most terminals active at once."""
    rps: float
    """Highest total requests/s (locust's rolling average over the last seconds)."""


def read_peak(path: Path) -> Peak:
    """Peak users and requests/s from ``<prefix>_stats_history.csv`` (zeros if absent)."""
    import csv

    users, rps = 0, 0.0
    if not Path(path).exists():
        return Peak(0, 0.0)
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != TOTAL:
                continue
            users = max(users, int(row["User Count"] or 0))
            rps = max(rps, float(row["Requests/s"] or 0.0))
    return Peak(users, rps)


class SloResult(NamedTuple):
    """One SLO: its target, the measured value that decides it, PASS or FAIL."""

    name: str
    target: float
    measured: float | None
    where: str
    ok: bool


def evaluate_slos(stats: Sequence[RouteStats], slos: Mapping[str, float]) -> list[SloResult]:
    """Judge each SLO on the run's stats (latency: the worst route; rates: the total).

    A latency SLO with no measured request fails (nothing was proven).
    """
    total = next((r for r in stats if r.name == TOTAL), None)
    results = []
    for name, target in slos.items():
        if name.endswith("_ms"):
            attr = name.removesuffix("_ms")
            measured = [
                (getattr(r, attr), r.name)
                for r in stats
                if r.requests and getattr(r, attr) is not None
            ]
            if not measured:
                results.append(SloResult(name, target, None, "no requests", False))
                continue
            value, where = max(measured, key=lambda vw: vw[0])
            results.append(SloResult(name, target, value, where, value <= target))
        elif name == "error_rate":
            value = total.error_rate if total else 1.0
            results.append(SloResult(name, target, value, TOTAL, value <= target))
        elif name == "min_rps":
            value = total.rps if total else 0.0
            results.append(SloResult(name, target, value, TOTAL, value >= target))
    return results


# --------------------------------------------------------------------------- running


@dataclass
class _Service:
    """A service this command started (and must stop): redis-server + dropprice serve."""

    url: str
    redis_url: str
    redis: Any
    process: subprocess.Popen[bytes]
    log: Any
    workdir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        self.redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class _Run:
    """Everything one load-test run needs to know."""

    report_dir: Path
    host: str
    api_key: str
    redis_url: str | None
    drop: Any
    pairs: list[tuple[str, str]] = field(default_factory=list)


def _wait_ready(
    url: str, process: subprocess.Popen[bytes] | None, log_path: Path, timeout: float = 90.0
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path.exists() else ""
            raise RuntimeError(
                f"dropprice serve exited with code {process.returncode} before it was ready:\n"
                f"{tail}"
            )
        try:
            resp = httpx.get(f"{url}/readyz", timeout=2.0)
            if resp.status_code == 200:
                return
            last = f"{resp.status_code} {resp.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url}/readyz not ready after {timeout:.0f}s (last answer: {last})")


def _service_env(api_key: str, operator_key: str) -> dict[str, str]:
    """Environment for the ``dropprice serve`` this command starts.

    Keys are configured as SHA-256 digests (as in production). Every terminal of the
    run shares one ``pos`` key, so per-key rate limiting is off; per-request access
    logs are off too (a log line per request is measured load on a 2-core box).
    """
    import hashlib

    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    env = dict(os.environ)
    env.update(
        {
            "DROPPRICE_API_KEYS": json.dumps(
                {digest(api_key): "pos", digest(operator_key): "operator"}
            ),
            "DROPPRICE_RATE_LIMIT_ENABLED": "false",
            "DROPPRICE_ACCESS_LOG": "false",
            "DROPPRICE_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("DROPPRICE_REDIS_URL", "DROPPRICE_CONFIG_DIR", "DROPPRICE_AUTH_DISABLED"):
        env.pop(name, None)
    return env


def _start_service(
    run_dir: Path, config_dir: Path, api_key: str, operator_key: str, workers: int, log_path: Path
) -> _Service:
    from service.embedded import RedisServer, free_port

    redis = RedisServer(data_dir=run_dir / "redis", appendonly=True).start()
    port = free_port()
    log = log_path.open("wb")
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--redis-url",
        redis.url,
        "--config-dir",
        str(config_dir),
    ]
    try:
        process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_service_env(api_key, operator_key),
            cwd=run_dir,
            start_new_session=True,
        )
    except BaseException:
        log.close()
        redis.stop()
        raise
    service = _Service(f"http://127.0.0.1:{port}", redis.url, redis, process, log, run_dir)
    try:
        _wait_ready(service.url, process, log_path)
    except BaseException:
        service.stop()
        raise
    return service


def _publish_surfaces(redis_url: str, drop: Any) -> str:
    """Publish an inventory-aware surface per SKU-market, so reads hit the surface path.

    The surface is the closed-form optimum for exponential demand (Gallego & van
    Ryzin 1994, :func:`pricing.policy.exponential_demand_price`) with the price
    sensitivity set so the price at full stock and mid-window is near the list price,
    clipped to [0.5, 2] x list price and rounded to cents.
    """
    from datetime import timedelta

    import numpy as np

    from pricing.policy import exponential_demand_price
    from service.store import PriceStore, SurfaceRecord, connect

    period_s = 600
    periods = max(1, int((drop.window_end - drop.window_start) / timedelta(seconds=period_s)))
    n = np.arange(drop.inventory + 1)
    surfaces = {}
    for sku, list_price in zip(drop.skus, drop.list_prices, strict=True):
        alpha = 1.0 / list_price
        a = max(drop.inventory, 1) * np.e / (periods / 2)  # sells out around mid-window
        grid = np.empty((drop.inventory + 1, periods), dtype=np.float64)
        for t in range(periods):
            col = exponential_demand_price(np.maximum(n, 1), float(periods - t), a, alpha)
            grid[:, t] = np.clip(col, 0.5 * list_price, 2.0 * list_price)
        grid = np.round(grid, 2).astype(np.float64)
        for market in drop.markets:
            surfaces[(sku, market)] = SurfaceRecord(
                price=grid,
                period_start=drop.window_start,
                period_seconds=period_s,
                currency="USD",
                explain={"source": "dropprice loadtest", "drop": drop.drop_id},
            )
    version = f"{drop.drop_id}-v1"
    store = PriceStore(connect(redis_url, timeout=5.0))
    try:
        store.publish_surfaces(version, surfaces, {"created_by": "dropprice loadtest"})
    finally:
        store.close()
    return version


def _remote_catalog(host: str, operator_key: str) -> tuple[str, tuple[str, ...], str | None]:
    """What a drop on ``host`` may use: a category, the known markets, their currency.

    Reads the live config (``GET /v1/config``). A drop must name a configured
    category and, when the config lists markets, only those (with their currency).

    Returns:
        (category, known markets (empty: any), currency of those markets or ``None``).
    """
    import httpx

    try:
        resp = httpx.get(f"{host}/v1/config", headers={"X-API-Key": operator_key}, timeout=30.0)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"cannot reach {host}: {exc!r}") from exc
    if resp.status_code != 200:
        raise RuntimeError(f"GET /v1/config answered {resp.status_code}: {resp.text[:300]}")
    config = resp.json()["config"]
    categories = sorted(config.get("categories", {}).get("categories", {}))
    known: dict[str, Any] = config.get("defaults", {}).get("markets", {}) or {}
    currency = None
    markets: tuple[str, ...] = ()
    if known:
        # One currency for the whole run: the first market's, and markets that agree.
        first = next(iter(known.values())).get("currency")
        markets = tuple(m for m, spec in known.items() if spec.get("currency") in (None, first))
        currency = first
    return (categories[0] if categories else "loadtest"), markets, currency


def _seed_remote(host: str, operator_key: str, drop: Any) -> None:
    """Create the run's drop on a running service through ``PUT /v1/drops/{id}``."""
    import httpx

    try:
        resp = httpx.put(
            f"{host}/v1/drops/{drop.drop_id}",
            json=drop.config(),
            params={"note": "dropprice loadtest"},
            headers={"X-API-Key": operator_key, "X-Actor": "dropprice-loadtest"},
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        raise RuntimeError(f"cannot reach {host}: {exc!r}") from exc
    if resp.status_code not in (200, 201):
        raise RuntimeError(
            f"PUT /v1/drops/{drop.drop_id} answered {resp.status_code}: {resp.text[:600]}"
        )


def _remove_remote(host: str, operator_key: str, drop: Any) -> None:
    """Take the run's drop off ``host`` again (``DELETE /v1/drops/{id}``)."""
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(
            f"{host}/v1/drops/{drop.drop_id}",
            params={"note": "dropprice loadtest done"},
            headers={"X-API-Key": operator_key, "X-Actor": "dropprice-loadtest"},
            timeout=30.0,
        )


def _warm_up(run: _Run, requests: int) -> None:
    """Send ``requests`` reads (and a few refused sales) before the measured run.

    A freshly started process pays one-time costs on its first requests (lazy
    imports, first validation of each schema, connection set-up) that a service
    which has been up before the drop opens has already paid. Sales in the warm-up
    name a market the drop does not sell in, so they are refused before touching
    inventory or the events stream and the books stay exact. Not counted anywhere.
    """
    import httpx

    if requests <= 0:
        return
    headers = {"X-API-Key": run.api_key}
    skus = run.drop.skus
    market = run.drop.markets[0]
    with httpx.Client(base_url=run.host, headers=headers, timeout=10.0) as http:
        for i in range(requests):
            sku = skus[i % len(skus)]
            if i % 5 == 0:
                http.post(
                    "/v1/prices:batch",
                    json={"items": [{"sku": s, "market": market} for s in skus[:4]]},
                )
            elif i % 10 == 1:
                event = {
                    "type": "sale",
                    "event_id": f"warmup-{run.drop.drop_id}-{i}",
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                    "sku": sku,
                    "market": "warm-up-no-such-market",
                    "quantity": 1,
                    "unit_price": 1.0,
                }
                http.post("/v1/events", json={"events": [event]})
            else:
                http.get(f"/v1/prices/{sku}", params={"market": market})


def _wait_seeded(run: _Run, timeout: float = 30.0) -> dict[tuple[str, str], int]:
    """Initial inventory of every SKU-market, once the service serves all of them."""
    from loadtests.books import fetch_inventory

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            initial = fetch_inventory(run.host, run.api_key, run.pairs)
            if all(v == run.drop.inventory for v in initial.values()):
                return initial
            last = f"inventory not seeded yet: {sorted(set(initial.values()))}"
        except RuntimeError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"the load-test drop {run.drop.drop_id} is not served: {last}")


def _run_locust(
    run: _Run,
    locustfile: Path,
    *,
    users: int,
    spawn_rate: float,
    duration_s: float,
    shape: str,
    manifest: Path,
    extra: Sequence[str],
) -> int:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        run.host,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{max(1, round(duration_s))}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(run.report_dir / "locust"),
        "--csv-full-history",
        "--html",
        str(run.report_dir / "locust.html"),
        "--manifest",
        str(manifest),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
        *extra,
    ]
    env = dict(os.environ)
    env["DROPPRICE_SHAPE"] = "" if shape == "steady" else shape
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root()), env.get("PYTHONPATH", "")]))
    with (run.report_dir / "locust.log").open("wb") as log:
        proc = subprocess.run(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=repo_root(),
            timeout=duration_s + 120,
            check=False,
        )
    return proc.returncode


@contextlib.contextmanager
def _target(
    host: str | None,
    run_dir: Path,
    report_dir: Path,
    drop: Any,
    api_key: str,
    operator_key: str | None,
    redis_url: str | None,
    workers: int,
) -> Iterator[tuple[str, str | None]]:
    """The service under test (started here unless ``host``) with the drop seeded."""
    from loadtests.drop import write_config_dir

    if host:
        assert operator_key is not None  # checked by the command
        _seed_remote(host, operator_key, drop)
        try:
            yield host, redis_url
        finally:
            _remove_remote(host, operator_key, drop)
        return
    config_dir = run_dir / "configs"
    write_config_dir(drop, config_dir)
    service = _start_service(
        run_dir, config_dir, api_key, secrets.token_urlsafe(24), workers, report_dir / "service.log"
    )
    try:
        _publish_surfaces(service.redis_url, drop)
        yield service.url, service.redis_url
    finally:
        service.stop()


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
        typer.Option(help="Locustfile to run (default loadtests/locustfile.py of the checkout)."),
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
    _import_loadtests()
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
