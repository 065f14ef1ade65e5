"""``dropprice loadtest`` end to end: a real service on a real Redis, locust, the books.

One short rush (a few seconds, a handful of terminals, inventory of two units per
SKU-market so the head of the drop sells out under the load). The test asserts the
verdict and the books, never the speed: the SLO it sets is the error rate only.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def rush(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    report = tmp_path_factory.mktemp("loadtest-report")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "loadtest",
            "--users",
            "8",
            "--duration",
            "7s",
            "--shape",
            "rush",
            "--rush-multiple",
            "4",
            "--skus",
            "6",
            "--markets",
            "2",
            "--inventory",
            "2",
            "--think-max",
            "0.2",
            "--slo",
            "error_rate=0",
            "--report-dir",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    return proc, report


def test_rush_passes_with_a_verdict_and_reports(
    rush: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, report = rush
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    verdict = json.loads((report / "verdict.json").read_text())
    assert verdict["passed"] is True
    assert [s["name"] for s in verdict["slos"]] == ["error_rate"]
    assert verdict["slos"][0]["measured"] == 0
    # Every route of a checkout was exercised and is reported with its percentiles.
    routes = {r["name"]: r for r in verdict["routes"]}
    for route in ("GET /v1/prices/[sku]", "POST /v1/prices:batch", "POST /v1/events"):
        assert routes[route]["requests"] > 0, routes
        assert routes[route]["p99"] is not None
    assert "PASS" in proc.stdout and "p99 ms" in proc.stdout
    assert "GET /v1/prices/[sku]" in proc.stdout  # printed as is, not eaten as markup
    # The service counted the requests the terminals sent, route by route. When the run
    # stops, a terminal may have one request in flight, counted on one side and not the
    # other (a stopped terminal never records its answer): the two counts agree to within
    # one request per terminal.
    server = {r["route"]: r["requests"] for r in verdict["server"]}
    terminals = 8  # --users
    sales = (
        routes["POST /v1/events"]["requests"]
        + routes.get("POST /v1/events [replay]", {"requests": 0})["requests"]
    )
    for served, sent in (
        (server["GET /v1/prices/{sku}"], routes["GET /v1/prices/[sku]"]["requests"]),
        (server["POST /v1/prices:batch"], routes["POST /v1/prices:batch"]["requests"]),
        (server["POST /v1/events"], sales),
    ):
        assert abs(served - sent) <= terminals, (server, routes)
    # The rush spiked: from its baseline of 8 / 4 = 2 terminals towards the peak of 8
    # (locust samples the user count once a second, so the exact top may fall between).
    assert 2 < verdict["peak"]["users"] <= 8, verdict["peak"]
    assert verdict["peak"]["rps"] > 0
    assert (report / "locust.html").stat().st_size > 0
    with (report / "locust_stats.csv").open() as fh:
        assert any(row["Name"] == "Aggregated" for row in csv.DictReader(fh))


def test_rush_books_balance_and_the_head_sells_out(
    rush: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, report = rush
    books = json.loads((report / "verdict.json").read_text())["books"]
    checks = {c["name"]: c["ok"] for c in books["checks"]}
    # The stream check ran (the command read its own Redis), it was not skipped.
    assert checks == {
        "no oversell": True,
        "inventory balances": True,
        "stream exactly once": True,
        "no 5xx": True,
    }, books["checks"]
    assert books["pairs"] == 12 and books["units_initial"] == 24
    assert 0 < books["units_sold"] <= books["units_initial"]
    # The head of the drop sold out under the load (so "no oversell" was really tested).
    assert books["sold_out_pairs"] >= 1


def test_rush_against_a_running_service_seeds_through_the_operator_api(
    redis_url: str, tmp_path: Path
) -> None:
    """``--host`` (soak shape): the drop is created with PUT /v1/drops (a configured category and only
    the markets the config knows, in their currency), tested, checked against the
    service's Redis, and removed again."""
    import hashlib
    import os

    import httpx
    import yaml

    from service.embedded import free_port

    configs = tmp_path / "configs"
    (configs / "drops").mkdir(parents=True)
    (configs / "defaults.yaml").write_text(
        yaml.safe_dump(
            {
                "currency": "USD",
                "markets": {
                    "east": {"currency": "USD"},
                    "west": {"currency": "USD"},
                    "paris": {"currency": "EUR"},
                },
            }
        )
    )
    (configs / "categories.yaml").write_text(
        yaml.safe_dump({"categories": {"comics": {"mean": -1.6, "sd": 0.5}}})
    )
    pos, operator = "pos-key-for-the-rush", "operator-key-for-the-rush"
    env = dict(os.environ)
    env["DROPPRICE_API_KEYS"] = json.dumps(
        {
            hashlib.sha256(pos.encode()).hexdigest(): "pos",
            hashlib.sha256(operator.encode()).hexdigest(): "operator",
        }
    )
    env["DROPPRICE_RATE_LIMIT_ENABLED"] = "false"
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(port),
            "--redis-url",
            redis_url,
            "--config-dir",
            str(configs),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        from service.commands.loadtest import _wait_ready

        _wait_ready(host, server, tmp_path / "serve.log")
        report = tmp_path / "report"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "service.cli",
                "loadtest",
                "--host",
                host,
                "--api-key",
                pos,
                "--operator-key",
                operator,
                "--redis-url",
                redis_url,
                "--users",
                "4",
                "--duration",
                "5s",
                "--shape",
                "soak",
                "--skus",
                "4",
                "--markets",
                "3",
                "--inventory",
                "2",
                "--think-max",
                "0.2",
                "--slo",
                "error_rate=0",
                "--report-dir",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        verdict = json.loads((report / "verdict.json").read_text())
        checks = {c["name"]: c["ok"] for c in verdict["books"]["checks"]}
        assert all(checks.values()) and checks["stream exactly once"] is True, checks
        # Only the USD markets the config knows were used: 4 SKUs x 2 markets.
        assert verdict["books"]["pairs"] == 8
        assert verdict["books"]["units_sold"] > 0
        assert verdict["shape"] == "soak" and verdict["peak"]["users"] == 4  # soak holds 4
        config = httpx.get(f"{host}/v1/config", headers={"X-API-Key": operator}).json()
        assert [d["id"] for d in config["config"]["drops"]] == []  # the run's drop is gone
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
