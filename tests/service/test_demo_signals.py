"""``dropprice demo`` ended by SIGTERM or SIGHUP stops its private redis-server."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _redis_child(demo: psutil.Process) -> psutil.Process | None:
    with contextlib.suppress(psutil.Error):
        for child in demo.children(recursive=True):
            if child.name().startswith("redis-server"):
                return child
    return None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_demo_ended_by_signal_leaves_no_redis_server(signum: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "demo", "--duration", "30", "--non-interactive"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    demo = psutil.Process(proc.pid)
    server: psutil.Process | None = None
    try:
        deadline = time.monotonic() + 180
        while server is None and proc.poll() is None and time.monotonic() < deadline:
            server = _redis_child(demo)
            time.sleep(0.1)
        assert server is not None, "the demo started no redis-server"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + signum, err.decode()[-2000:]
        gone = psutil.wait_procs([server], timeout=30)[0]
        assert gone, f"redis-server {server.pid} still running after the demo ended"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if server is not None and server.is_running():
            server.kill()
