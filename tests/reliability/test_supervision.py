"""``dropprice serve`` supervises its embedded Redis and leaves nothing behind.

Real processes only: ``dropprice serve --workers 2`` on an embedded, persistent
redis-server; faults are SIGKILLs of the redis-server or of the serve master.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import redis
from reliability_harness import (
    FIGURES,
    MARKET,
    POS_KEY,
    ServiceProcess,
    Traffic,
    sale_event,
    service_env,
    wait_for,
    write_config_dir,
)

from service import keys
from service.embedded import DataDirLock, free_port
from service.store import connect


def _service(tmp_path: Path, skus: dict[str, int], *, workers: int = 2) -> ServiceProcess:
    config_dir = write_config_dir(tmp_path / "configs", skus)
    return ServiceProcess(
        redis_url=None,
        config_dir=config_dir,
        data_dir=tmp_path / "data",
        log_path=tmp_path / "serve.log",
        workers=workers,
        env=service_env(None, config_dir),
    )


def _redis_pid(url: str) -> int | None:
    """The pid of the redis-server answering at ``url`` (its own ``INFO``), or ``None``."""
    client = connect(url, timeout=0.5)
    try:
        return int(client.info("server")["process_id"])
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return None
    finally:
        client.close()


def _accepted(traffic: Traffic) -> int:
    with traffic.lock:
        return sum(s.outcome == "accepted" for s in traffic.sales)


def test_embedded_redis_sigkilled_under_load_is_restarted_within_5s_nothing_lost(
    tmp_path: Path,
) -> None:
    """SIGKILL of the embedded redis-server while clients read and sell: ``serve``
    starts it again on the same port within 5 s (logging the exit and the restart);
    every sale retried by ``event_id`` counts once, and inventory and streams are exact
    (the append-only file is replayed)."""
    stock = {"SUP-A": 400, "SUP-B": 400}
    svc = _service(tmp_path, stock)
    svc.start()
    try:
        url = svc.embedded_redis_url()
        first_pid = _redis_pid(url)
        assert first_pid is not None
        traffic = Traffic(svc.base_url, list(stock)).start(readers=2, sellers=2)
        assert wait_for(lambda: _accepted(traffic) >= 5, timeout=60)

        os.kill(first_pid, signal.SIGKILL)
        FIGURES.fault("embedded_redis_sigkill")
        # The promise: back within 5 s. Polled, the deadline is the promise itself.
        assert wait_for(lambda: _redis_pid(url) not in (None, first_pid), timeout=5.0), svc.logs()[
            -3000:
        ]
        sold_before = _accepted(traffic)
        assert wait_for(lambda: _accepted(traffic) >= sold_before + 5, timeout=60), (
            "sales did not resume after the restart"
        )
        traffic.stop()

        logs = svc.logs()
        assert f"embedded redis-server (pid {first_pid}) exited with code -9" in logs
        assert "embedded redis-server back at" in logs
        assert all(code < 500 for code in traffic.read_status), traffic.read_status
        assert {s.outcome for s in traffic.sales} <= {"accepted", "sold_out"}
        client = connect(url, timeout=5.0)
        try:
            for sku, initial in stock.items():
                accepted = traffic.accepted_units(sku)
                events = sum(1 for s in traffic.sales if s.sku == sku and s.outcome == "accepted")
                in_stream = int(client.xlen(keys.events(sku)))
                FIGURES.add(events_lost=max(0, events - in_stream))
                assert int(client.get(keys.inventory(sku, MARKET))) == initial - accepted, sku
                assert in_stream == events, sku  # none lost, none doubled
        finally:
            client.close()
    finally:
        svc.stop()


def test_serve_master_sigkilled_leaves_no_process_serving_and_restarts(
    tmp_path: Path,
) -> None:
    """SIGKILL of the ``serve`` master alone: its two workers and its redis-server exit
    by themselves (no orphan answers or holds the port), and a new ``serve`` on the same
    data folder and port starts and still has the sale made before."""
    svc = _service(tmp_path, {"SUP-K": 30})
    svc.start()
    assert svc.process is not None
    master = psutil.Process(svc.process.pid)
    children = master.children(recursive=True)
    redis_pid = _redis_pid(svc.embedded_redis_url())
    assert redis_pid in {c.pid for c in children}
    assert len([c for c in children if c.pid != redis_pid]) >= 2  # the workers
    headers = {"X-API-Key": POS_KEY}
    sale = sale_event("SUP-K", quantity=2)
    try:
        r = httpx.post(f"{svc.base_url}/v1/events", headers=headers, json={"events": [sale]})
        assert r.json()["results"][0]["status"] == "accepted"

        os.kill(master.pid, signal.SIGKILL)
        svc.process.wait(timeout=10)
        FIGURES.fault("serve_master_sigkill")

        def nothing_left() -> bool:
            return not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)

        assert wait_for(nothing_left, timeout=30), [
            (c.pid, c.name()) for c in children if c.is_running()
        ]
        try:
            httpx.get(f"{svc.base_url}/readyz", timeout=2.0)
            raise AssertionError("a process still answers on the service port")
        except httpx.ConnectError:
            pass

        svc.start()
        r = httpx.get(f"{svc.base_url}/v1/prices/SUP-K", headers=headers, params={"market": MARKET})
        assert r.json()["inventory"] == 28
        replay = httpx.post(f"{svc.base_url}/v1/events", headers=headers, json={"events": [sale]})
        assert replay.json()["results"][0]["status"] == "duplicate"
    finally:
        svc.stop()
        for orphan in children:  # should this test fail, leave no orphan behind
            with contextlib.suppress(psutil.Error):
                orphan.kill()


def test_second_serve_on_the_same_data_folder_refuses_naming_the_holder(
    tmp_path: Path,
) -> None:
    """A second ``serve`` on a data folder in use exits 1 naming the running server's pid,
    starts no redis-server on its append-only file, and the first keeps serving."""
    svc = _service(tmp_path, {"SUP-L": 10}, workers=1)
    svc.start()
    assert svc.process is not None
    try:
        url = svc.embedded_redis_url()
        first_redis = _redis_pid(url)
        second = subprocess.run(
            [
                sys.executable, "-m", "service.cli", "serve",
                "--port", str(free_port()),
                "--config-dir", str(svc.config_dir),
                "--data-dir", str(svc.data_dir),
            ],
            env=svc.env,
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert second.returncode == 1, second.stderr[-2000:]
        assert f"is in use by dropprice serve pid {svc.process.pid}" in second.stderr
        assert "redis-server exited" not in second.stderr
        assert _redis_pid(url) == first_redis
        with httpx.Client(base_url=svc.base_url, headers={"X-API-Key": POS_KEY}) as client:
            r = client.get("/v1/prices/SUP-L", params={"market": MARKET})
            assert r.status_code == 200 and r.json()["inventory"] == 10
    finally:
        svc.stop()
    # SIGTERM stops the first cleanly (uvicorn raises the signal again after its
    # graceful shutdown: that must not skip stopping Redis), and the folder is free.
    assert svc.process.returncode == 0, svc.logs()[-2000:]
    assert svc.data_dir is not None
    lock_path = svc.data_dir.resolve() / "serve.lock"
    holders = [
        (proc.pid, proc.info["cmdline"], svc.process.returncode)
        for proc in psutil.process_iter(["cmdline", "open_files"])
        if any(f.path == str(lock_path) for f in proc.info["open_files"] or [])
    ]
    assert not holders, holders
    with DataDirLock(svc.data_dir.resolve(), wait_s=0) as lock:
        assert lock.fd is not None


def test_embedded_redis_requires_its_password_kept_owner_only(tmp_path: Path) -> None:
    """The embedded Redis refuses clients without the password; the password file and
    the data folder (whose append-only file holds the quote secret) are the owner's only."""
    svc = _service(tmp_path, {"SUP-P": 10}, workers=1)
    svc.start()
    try:
        assert svc.data_dir is not None
        url = svc.embedded_redis_url()
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0)
        try:
            anonymous.get(keys.inventory("SUP-P", MARKET))
            raise AssertionError("the embedded Redis answered without its password")
        except redis.AuthenticationError:
            pass
        finally:
            anonymous.close()
        assert (svc.data_dir / "redis.password").stat().st_mode & 0o777 == 0o600
        assert svc.data_dir.stat().st_mode & 0o777 == 0o700
        password = (svc.data_dir / "redis.password").read_text().strip()
        assert password not in " ".join(psutil.Process(_redis_pid(url)).cmdline())
        assert password not in svc.logs()
    finally:
        svc.stop()
