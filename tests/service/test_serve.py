"""``dropprice serve`` as a user runs it: embedded Redis, two workers, clean stop."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from asgi_client import KEYS, write_configs

from service.auth import hash_api_key
from service.embedded import free_port, stable_port


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


ROOT = Path(__file__).resolve().parents[2]


def _readme_serve_command() -> list[str]:
    """The README's first ``dropprice serve`` command (section "Running the price service")."""
    section = (ROOT / "README.md").read_text().split("## Running the price service", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    line = next(x for x in block.splitlines() if x.startswith("dropprice serve --port"))
    return shlex.split(line.split("#", 1)[0])


def _dropprice() -> list[str]:
    """The ``dropprice`` console script as a user runs it (else the module)."""
    found = shutil.which("dropprice")
    return [found] if found else [sys.executable, "-m", "service.cli"]


def _user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPPRICE_")}
    env.update(extra)
    return env


def test_serve_as_the_readme_says_from_a_fresh_folder(tmp_path: Path) -> None:
    """The README's ``dropprice serve`` line, run in a fresh folder holding only the
    configs: the relative default data folder works, the Redis URL is printed on one line
    at the folder's stable port, a price is served, and ``config diff``, ``versions`` and
    ``signals`` find the embedded Redis with no URL given."""
    cmd = _readme_serve_command()
    assert cmd[:2] == ["dropprice", "serve"] and "--data-dir" not in cmd, cmd
    port = free_port()
    cmd[cmd.index("--port") + 1] = str(port)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env = _user_env(
        DROPPRICE_API_KEYS=json.dumps({hash_api_key(KEYS["pos"]): "pos"}),
        DROPPRICE_ACCESS_LOG="false",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _dropprice() + cmd[1:],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = wait_for(
            lambda: proc.poll() is None and httpx.get(f"{base}/readyz").status_code == 200,
            timeout=120,
        )
        assert ready, log_path.read_text()[-3000:]
        r = httpx.get(
            f"{base}/v1/prices/CMX-VAR-001",
            params={"market": "brooklyn-panel-page"},
            headers={"X-API-Key": KEYS["pos"]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["price"] > 0

        data_dir = tmp_path / ".dropprice" / "redis"
        lines = [x for x in log_path.read_text().splitlines() if "embedded redis-server at" in x]
        assert len(lines) == 1
        assert f"redis://127.0.0.1:{stable_port(data_dir)}/0" in lines[0]
        assert any(data_dir.glob("appendonly*"))

        tools = (["config", "diff", "configs/"], ["versions", "--json"], ["signals", "--json"])
        for tool in tools:
            out = subprocess.run(
                _dropprice() + tool,
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert out.returncode == 0, (tool, out.stdout[-1000:], out.stderr[-2000:])
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log_path.read_text()[-3000:]


def test_serve_without_keys_says_so_plainly_before_starting_redis(tmp_path: Path) -> None:
    """No API keys: exit 2 with the settings' own sentence (no pydantic "Value error,"
    prefix), and no embedded Redis was started (no data folder made)."""
    out = subprocess.run(
        _dropprice() + ["serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "settings: no API keys configured: set DROPPRICE_API_KEYS" in out.stderr
    assert "Value error" not in out.stderr
    assert not (tmp_path / ".dropprice").exists()


def test_serve_shows_redis_servers_own_error(tmp_path: Path) -> None:
    """When the embedded redis-server cannot start, its own reason is printed."""
    (tmp_path / "data" / "appendonly.aof").mkdir(parents=True)  # the AOF cannot be opened
    out = subprocess.run(
        _dropprice()
        + ["serve", "--port", str(free_port()), "--data-dir", "data", "--dev"]
        + ["--redis-port", str(free_port())],
        cwd=tmp_path,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "redis-server exited with code 1" in out.stderr
    assert "Can't open the append-only file" in out.stderr, out.stderr[-2000:]


def test_tools_without_a_running_serve_say_how_to_reach_one(tmp_path: Path) -> None:
    """``refit``, ``config`` and ``worker`` with no URL and no ``serve`` on the folder
    exit 2 naming the folder, instead of trying a Redis on 6379."""
    for tool in (["config", "history"], ["refit"], ["worker", "--once"]):
        out = subprocess.run(
            _dropprice() + tool + ["--data-dir", "somewhere"],
            cwd=tmp_path,
            env=_user_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2, (tool, out.stderr[-2000:])
        assert f"no dropprice serve is running on data folder {tmp_path / 'somewhere'}" in (
            out.stderr
        )


def test_version_option() -> None:
    out = subprocess.run(_dropprice() + ["--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip()
