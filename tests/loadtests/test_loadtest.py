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
