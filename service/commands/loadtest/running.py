"""What a load test runs against (a private service, or a remote one with its own drop)
and locust itself, run headless as a subprocess."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer


def find_locustfile(explicit: Path | None) -> Path:
    """``--locustfile``, else ``$DROPPRICE_LOCUSTFILE``, else the installed ``loadtests`` package's.

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
    # Located without importing it: the locustfile imports locust (an optional extra).
    spec = importlib.util.find_spec("loadtests.locustfile")
    if spec is None or spec.origin is None:
        raise typer.BadParameter(
            "no loadtests package is installed with dropprice: reinstall it "
            "(pip install -e .) or pass --locustfile",
            param_hint="--locustfile",
        )
    return Path(spec.origin)


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
    with (run.report_dir / "locust.log").open("wb") as log:
        proc = subprocess.run(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=run.report_dir,
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
