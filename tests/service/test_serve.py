"""``dropprice serve`` as a user runs it: embedded Redis, two workers, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from asgi_client import KEYS, write_configs

from service.auth import hash_api_key
from service.embedded import free_port


def wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    return None


def test_serve_with_embedded_redis_and_two_workers(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "redis-data"
    env = {
        **os.environ,
        "DROPPRICE_API_KEYS": json.dumps({hash_api_key(KEYS["pos"]): "pos"}),
        "DROPPRICE_ACCESS_LOG": "false",
    }
    env.pop("DROPPRICE_REDIS_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--config-dir",
            str(write_configs(tmp_path / "configs")),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": KEYS["pos"]}
    try:
        assert wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200), "not ready"
        body = httpx.get(f"{base}/v1/prices/TEE-1", headers=headers).json()
        assert (body["inventory"], body["source"]) == (12, "base")
        sale = {
            "type": "sale",
            "event_id": "serve-1",
            "sku": "TEE-1",
            "market": "nyc",
            "quantity": 3,
            "unit_price": 30.0,
            "ts": "2026-01-01T10:00:00Z",
        }
        out = httpx.post(f"{base}/v1/events", headers=headers, json={"events": [sale]}).json()
        assert out["results"][0]["status"] == "accepted"

        # Whichever worker answers, the sale made by one of them shows in the other
        # (new connections spread over both workers).
        def all_reads_show_it() -> bool:
            return all(
                httpx.get(f"{base}/v1/prices/TEE-1", headers=headers).json()["inventory"] == 9
                for _ in range(20)
            )

        assert wait_for(all_reads_show_it, timeout=10)
        assert (data_dir / "appendonlydir").exists() or any(data_dir.glob("*.aof"))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    # The embedded server is stopped with the service; its data stays for next time.
    log = err.decode()
    url = log.split("embedded redis-server at ")[1].split(",")[0]
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        client.ping()
        raise AssertionError("embedded redis-server still running after serve exited")
    except redis.ConnectionError:
        pass
    finally:
        client.close()
