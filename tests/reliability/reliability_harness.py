"""Fault-injection harness: real redis-server, real uvicorn workers, real client threads.

- :class:`FaultyRedis` is a ``redis-server`` with append-only persistence on a free port
  that a test can stop, start, SIGKILL, pause (SIGSTOP) and resume (SIGCONT), or slow
  down with ``DEBUG SLEEP``.
- :class:`ServiceProcess` runs ``dropprice serve`` (uvicorn, several workers) as a
  subprocess in its own process group, so a test can SIGKILL the whole service
  mid-request and start it again.
- :class:`Traffic` drives price reads and sales from client threads; a sale that gets a
  503, a timeout or a dropped connection is retried with the same ``event_id`` until
  the service answers for it, so every sale ends ``accepted`` or refused, exactly once.
- :data:`FIGURES` collects what the suite did (requests sent, faults injected, 5xx
  seen, events lost); the terminal summary prints it and, with
  ``DROPPRICE_RELIABILITY_REPORT=path.json``, writes it for ``RELIABILITY.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis

from service.auth import hash_api_key
from service.embedded import RedisServer, embedded_url, free_port

POS_KEY = "pos-reliability-key-0123456789abcdef"
OPERATOR_KEY = "operator-reliability-key-0123456789abcdef"
ADMIN_KEY = "admin-reliability-key-0123456789abcdef"
SECRETS = (POS_KEY, OPERATOR_KEY, ADMIN_KEY)
MARKET = "m1"


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """What the suite did, summed over every test of the session."""

    requests_sent: int = 0
    faults_injected: int = 0
    responses_5xx_unexpected: int = 0
    sales_attempted: int = 0
    sales_accepted: int = 0
    sales_retried: int = 0
    sales_refused_sold_out: int = 0
    events_lost: int = 0
    units_oversold: int = 0
    stale_reads: int = 0
    schema_cases: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def fault(self, kind: str) -> None:
        with self.lock:
            self.faults_injected += 1
            self.faults[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("lock", "faults")}
        out["faults"] = dict(sorted(self.faults.items()))
        return out


FIGURES = Figures()


# --------------------------------------------------------------------------- redis


class FaultyRedis(RedisServer):
    """A persistent ``redis-server`` that tests can stop, kill, pause and slow down."""

    def pause(self) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing (a hung Redis)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        FIGURES.fault("redis_paused")

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def crash(self) -> None:
        """SIGKILL: no shutdown save; only what the AOF already holds survives."""
        self.kill()
        FIGURES.fault("redis_killed")

    def down(self) -> None:
        """SIGTERM and wait (clients see connection refused until :meth:`up`)."""
        self.stop(keep_data=True)
        FIGURES.fault("redis_stopped")

    def up(self) -> None:
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def sleep(self, seconds: float) -> threading.Thread:
        """Run ``DEBUG SLEEP seconds`` in the background (Redis blocks every client)."""

        def run() -> None:
            with contextlib.suppress(redis.RedisError):
                c = redis.Redis.from_url(self.url, socket_timeout=seconds + 5)
                c.execute_command("DEBUG", "SLEEP", seconds)
                c.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        FIGURES.fault("redis_debug_sleep")
        return thread


# --------------------------------------------------------------------------- configs


def write_config_dir(root: Path, skus: dict[str, int], *, list_price: float = 20.0) -> Path:
    """A configs/ folder with one drop open now, selling ``skus`` (sku -> units) in m1."""
    now = datetime.now(UTC).replace(microsecond=0)
    lines = [
        "id: reliability-drop",
        "name: reliability drop",
        f"markets: [{MARKET}]",
        "windows:",
        f'  - start: "{(now - timedelta(hours=1)).isoformat()}"',
        f'    end: "{(now + timedelta(hours=5)).isoformat()}"',
        "period_minutes: 30",
        "guardrails: {floor: 5.0, ceiling: 100.0}",
        "skus:",
    ]
    for sku, units in skus.items():
        lines += [
            f"  - sku: {sku}",
            "    category: comics",
            f"    list_price: {list_price}",
            f"    inventory: {{{MARKET}: {units}}}",
        ]
    (root / "drops").mkdir(parents=True, exist_ok=True)
    (root / "drops" / "reliability-drop.yaml").write_text("\n".join(lines) + "\n")
    (root / "categories.yaml").write_text("categories:\n  comics: {mean: -1.5, sd: 0.5}\n")
    (root / "defaults.yaml").write_text("currency: USD\nkeep_versions: 5\n")
    return root


def service_env(redis_url: str | None, config_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a service process: real keys, the given Redis (``None``: the
    embedded one) and configs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPPRICE_")}
    if redis_url:
        env["DROPPRICE_REDIS_URL"] = redis_url
    env.update(
        {
            "DROPPRICE_CONFIG_DIR": str(config_dir),
            "DROPPRICE_API_KEYS": json.dumps(
                {
                    hash_api_key(POS_KEY): "pos",
                    hash_api_key(OPERATOR_KEY): "operator",
                    hash_api_key(ADMIN_KEY): "admin",
                }
            ),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


# --------------------------------------------------------------------------- service


class ServiceProcess:
    """``dropprice serve`` with several uvicorn workers, in its own process group."""

    def __init__(
        self,
        *,
        redis_url: str | None,
        config_dir: Path,
        log_path: Path,
        workers: int = 2,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.redis_url = redis_url
        self.config_dir = config_dir
        self.workers = workers
        self.log_path = log_path
        self.env = env or service_env(redis_url, config_dir)

    def embedded_redis_url(self) -> str:
        """URL (with its password) of the embedded redis-server, found by its data folder
        as ``refit`` and ``config`` find it."""
        assert self.data_dir is not None, "the service runs on --redis-url, not embedded"
        return embedded_url(self.data_dir)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        cmd = [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--config-dir",
            str(self.config_dir),
        ]
        if self.redis_url:
            cmd += ["--redis-url", self.redis_url]
        else:  # the embedded, persistent redis-server under --data-dir
            assert self.data_dir is not None
            cmd += ["--data-dir", str(self.data_dir)]
        log = self.log_path.open("ab")
        log_offset = log.tell()
        self.process = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"service exited with {self.process.returncode}:\n{self.logs()[-3000:]}"
                )
            # Every worker must be serving before a fault test starts; each logs this
            # line once its lifespan (catalog, sync with Redis) has finished.
            if self.logs()[log_offset:].count("Application startup complete") >= self.workers:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"service not ready in {timeout}s:\n{self.logs()[-3000:]}")
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        return self
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"service not ready in {timeout}s:\n{self.logs()[-3000:]}")

    def restart(self) -> ServiceProcess:
        """Start again on the same port (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL the whole process group: the master and every worker, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            FIGURES.fault("service_sigkill")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


CATALOG: dict[str, int] = {
    # input limits, auth, schema fuzz (shared, stock never runs out)
    "REL-1": 100_000,
    "REL-2": 100_000,
    "REL-3": 5,
    # Redis stopped and restarted under load (REL-C sells out mid-run)
    "REL-A": 400,
    "REL-B": 400,
    "REL-C": 6,
    # Redis crashed and restarted under load (REL-F sells out mid-run)
    "REL-D": 400,
    "REL-E": 400,
    "REL-F": 6,
    # the last units race, the paused Redis
    "REL-LAST": 9,
    "REL-S": 50,
    # SIGKILL mid-batch
    **{f"REL-K{i}": 5000 for i in range(4)},
    # publisher killed mid-publish
    **{f"PUB-{i:04d}": 40 for i in range(120)},
}
"""Every SKU the shared service sells (in market ``m1``) and its starting stock; each
test owns its own SKUs so tests sharing the service never disturb each other."""


class ReliabilityEnv:
    """The session's real processes: one Redis (AOF) and ``dropprice serve`` (2 workers)."""

    def __init__(self, root: Path, *, workers: int = 2) -> None:
        self.redis = FaultyRedis(data_dir=root / "redis", appendonly=True)
        self.config_dir = write_config_dir(root / "configs", CATALOG)
        self.redis.start()
        self.service = ServiceProcess(
            redis_url=self.redis.url,
            config_dir=self.config_dir,
            log_path=root / "service.log",
            workers=workers,
        )

    @property
    def base_url(self) -> str:
        return self.service.base_url

    def ensure_up(self) -> None:
        """Bring Redis and the service back if a test left either down."""
        if self.redis.process is not None and self.redis.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.redis.process.pid, signal.SIGCONT)
        if not self.redis.running:
            self.redis.start()
        if self.service.process is None or self.service.process.poll() is not None:
            self.service.start()

    def close(self) -> None:
        self.service.stop()
        if self.redis.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.redis.process.pid, signal.SIGCONT)
        self.redis.stop()


# --------------------------------------------------------------------------- traffic


def sale_event(
    sku: str,
    *,
    quantity: int = 1,
    unit_price: float = 20.0,
    event_id: str | None = None,
    market: str = MARKET,
) -> dict[str, Any]:
    return {
        "type": "sale",
        "event_id": event_id or f"rel-{uuid.uuid4().hex}",
        "ts": datetime.now(UTC).isoformat(),
        "sku": sku,
        "market": market,
        "quantity": quantity,
        "unit_price": unit_price,
    }


def event_outcome(result: dict[str, Any]) -> str:
    """The per-event status string of one item of ``POST /v1/events``'s results."""
    return str(result.get("status") or result.get("result") or result.get("outcome"))


@dataclass
class SaleRecord:
    event_id: str
    sku: str
    quantity: int
    outcome: str = "pending"
    attempts: int = 0


class Traffic:
    """Client threads reading prices and selling, retrying sales by ``event_id``.

    Reads count every status; a read is good when it is 200 (``source`` recorded) or
    404/4xx by contract. Sales are retried on 503/connection errors with the same
    ``event_id`` until the service answers for the event, so ``sales`` ends with
    each event's final outcome.
    """

    def __init__(
        self, base_url: str, skus: list[str], *, api_key: str = POS_KEY, timeout: float = 5.0
    ) -> None:
        self.base_url = base_url
        self.skus = skus
        self.headers = {"X-API-Key": api_key}
        self.timeout = timeout
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.read_status: Counter[int] = Counter()
        self.read_sources: Counter[str] = Counter()
        self.read_errors: Counter[str] = Counter()
        self.sale_status: Counter[int] = Counter()
        self.sales: list[SaleRecord] = []
        self.retry_after_missing = 0
        self.server_errors: list[tuple[str, int, str]] = []
        self.threads: list[threading.Thread] = []

    # -- readers
    def _reader(self) -> None:
        i = 0
        with httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout
        ) as client:
            while not self.stop_event.is_set():
                sku = self.skus[i % len(self.skus)]
                i += 1
                try:
                    r = client.get(f"/v1/prices/{sku}", params={"market": MARKET})
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.read_errors[type(exc).__name__] += 1
                    FIGURES.add(requests_sent=1)
                    time.sleep(0.02)
                    continue
                FIGURES.add(requests_sent=1)
                with self.lock:
                    self.read_status[r.status_code] += 1
                    if r.status_code == 200:
                        self.read_sources[r.json()["source"]] += 1
                    elif r.status_code >= 500:
                        self.server_errors.append(("read", r.status_code, r.text[:300]))
                time.sleep(0.002)

    # -- sellers
    def sell_once(self, client: httpx.Client, record: SaleRecord) -> None:
        """Send one sale until the service answers for it (same event_id on retries)."""
        event = sale_event(record.sku, quantity=record.quantity, event_id=record.event_id)
        while True:
            record.attempts += 1
            if record.attempts > 1:
                FIGURES.add(sales_retried=1)
            FIGURES.add(requests_sent=1)
            try:
                r = client.post("/v1/events", json={"events": [event]})
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            with self.lock:
                self.sale_status[r.status_code] += 1
            if r.status_code == 503:
                if "retry-after" not in r.headers:
                    with self.lock:
                        self.retry_after_missing += 1
                time.sleep(0.05)
                continue
            if r.status_code >= 500:
                with self.lock:
                    self.server_errors.append(("sale", r.status_code, r.text[:300]))
                time.sleep(0.05)
                continue
            assert r.status_code == 200, (r.status_code, r.text)
            result = r.json()["results"][0]
            outcome = event_outcome(result)
            if outcome == "duplicate" and record.attempts > 1:
                # An earlier attempt was applied but its answer was lost (Redis went away
                # between the script and the reply): its first outcome is what counts.
                outcome = str(result.get("first_status"))
            record.outcome = outcome
            return

    def _seller(self, sku_cycle: list[str], quantity: int, pause: float) -> None:
        i = 0
        with httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout
        ) as client:
            while not self.stop_event.is_set():
                record = SaleRecord(
                    f"rel-{uuid.uuid4().hex}", sku_cycle[i % len(sku_cycle)], quantity
                )
                i += 1
                with self.lock:
                    self.sales.append(record)
                self.sell_once(client, record)
                time.sleep(pause)

    def start(
        self, *, readers: int = 2, sellers: int = 2, quantity: int = 1, sell_pause: float = 0.01
    ) -> Traffic:
        for _ in range(readers):
            self.threads.append(threading.Thread(target=self._reader, daemon=True))
        for k in range(sellers):
            cycle = self.skus[k % len(self.skus) :] + self.skus[: k % len(self.skus)]
            self.threads.append(
                threading.Thread(
                    target=self._seller, args=(cycle, quantity, sell_pause), daemon=True
                )
            )
        for t in self.threads:
            t.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop issuing new requests and let in-flight sales finish their retries."""
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=timeout)
        assert not any(t.is_alive() for t in self.threads), "client threads did not finish"
        accepted = [s for s in self.sales if s.outcome == "accepted"]
        FIGURES.add(
            sales_attempted=len(self.sales),
            sales_accepted=len(accepted),
            sales_refused_sold_out=sum(s.outcome == "sold_out" for s in self.sales),
            stale_reads=self.read_sources.get("stale", 0),
            responses_5xx_unexpected=sum(n for code, n in self.read_status.items() if code >= 500),
        )

    def accepted_units(self, sku: str) -> int:
        return sum(s.quantity for s in self.sales if s.sku == sku and s.outcome == "accepted")


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
