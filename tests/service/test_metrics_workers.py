"""``/metrics`` of ``dropprice serve --workers 2`` counts the requests of every worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from asgi_client import KEYS, write_configs

from service.auth import hash_api_key
from service.embedded import free_port

READS = 60
READ_COUNT = re.compile(
    r'^dropprice_request_duration_seconds_count\{method="GET",route="/v1/prices/\{sku\}",'
    r'status="200"\} ([0-9.e+]+)$',
    re.M,
)


def _reads_counted(text: str) -> float:
    match = READ_COUNT.search(text)
    return float(match.group(1)) if match else 0.0


def _wait(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
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


def test_metrics_of_two_workers_add_up(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    stale = data_dir / "metrics" / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    env = {
        **os.environ,
        "DROPPRICE_API_KEYS": json.dumps({hash_api_key(KEYS["pos"]): "pos"}),
        "DROPPRICE_ACCESS_LOG": "false",
    }
    env.pop("DROPPRICE_REDIS_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
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
    try:
        assert _wait(lambda: httpx.get(f"{base}/readyz").status_code == 200), "not ready"
        assert not stale.exists(), "files of an earlier run are removed at start"
        for _ in range(READS):  # a new connection each: both workers answer some
            r = httpx.get(f"{base}/v1/prices/TEE-1", headers={"X-API-Key": KEYS["pos"]})
            assert r.status_code == 200
        # Each worker folds its reads into its metric files within a quarter second;
        # from then on every scrape, whichever worker answers it, shows all of them.
        assert _wait(lambda: _reads_counted(httpx.get(f"{base}/metrics").text) == READS)
        for _ in range(10):
            text = httpx.get(f"{base}/metrics").text
            assert _reads_counted(text) == READS
            assert 'dropprice_price_source_total{source="base"} 60.0' in text
        assert list((data_dir / "metrics").glob("counter_*.db")), "multiprocess files"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
