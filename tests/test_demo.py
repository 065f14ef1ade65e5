"""``dropprice demo`` end to end: the real CLI, a private redis-server, the service over
HTTP, re-fits through :mod:`service.refit`; the books must balance to the cent, prices follow
the units left within a window, and SIGTERM/SIGHUP end the demo and its redis-server."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    """One short, non-interactive demo run (two windows, one re-fit between them)."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "service.cli", "demo",
            "--duration", "20", "--windows", "2", "--seed", "3",
            "--non-interactive", "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return dict(json.loads(last))


def _drop_config() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "configs/drops/comic-shop-creator-drop.yaml").read_text()))


@pytest.mark.timeout(300)
def test_demo_books_balance_per_sku_market(summary: dict[str, Any]) -> None:
    drop = _drop_config()
    stock = {s["sku"]: s["inventory"][drop["markets"][0]] for s in drop["skus"]}
    assert {s["sku"] for s in summary["skus"]} == set(stock)
    assert summary["units_sold"] > 0
    total = 0.0
    for s in summary["skus"]:
        # The drop opens with the config's stock (the replayed history was restocked).
        assert s["initial_inventory"] == stock[s["sku"]]
        assert s["initial_inventory"] - s["units_left"] == s["units_sold"], s["sku"]
        assert sum(units for units, _ in s["sales"]) == s["units_sold"]
        charged = sum(units * price for units, price in s["sales"])
        assert s["revenue"] == pytest.approx(charged, abs=0.01)
        # Every sale was charged a price the terminals were quoted.
        assert {price for _, price in s["sales"]} <= set(s["distinct_prices"])
        assert s["refused_sales"] == 0
        total += charged
        # The counterfactual never sells stock it does not have.
        assert 0 <= s["fixed_price"]["units_sold"] <= s["initial_inventory"]
    assert summary["revenue"] == pytest.approx(total, abs=0.05)
    assert summary["books_balanced"] is True


@pytest.mark.timeout(300)
def test_demo_prices_moved_inside_the_guardrails(summary: dict[str, Any]) -> None:
    drop = _drop_config()
    rails = drop["guardrails"]
    by_sku = {s["sku"]: s for s in drop["skus"]}
    moved = [
        s["sku"]
        for s in summary["skus"]
        if len(s["distinct_prices"]) > 1 or s["first_price"] != s["list_price"]
    ]
    assert moved, [(s["sku"], s["distinct_prices"], s["list_price"]) for s in summary["skus"]]
    assert summary["prices_moved"] is True
    for s in summary["skus"]:
        own = {**rails, **(by_sku[s["sku"]].get("guardrails") or {})}
        assert own["floor"] - 1e-9 <= s["min_price"] <= s["max_price"] <= own["ceiling"] + 1e-9
        if own.get("ladder"):
            assert set(s["distinct_prices"]) <= set(own["ladder"])


@pytest.mark.timeout(300)
def test_demo_refits_publish_versions(summary: dict[str, Any]) -> None:
    published = [r for r in summary["refits"] if r["state"] == "published"]
    # One re-fit from the history before the drop opens, one between the two windows.
    assert len(summary["refits"]) == 2
    assert len(published) >= 1
    versions = [r["version"] for r in published]
    assert all(re.fullmatch(r"v\d{8}T\d{6}Z?-f\d+", v or "") for v in versions), versions
    assert len(set(versions)) == len(versions)
    # The second re-fit learned from the first window's sales.
    assert summary["refits"][1]["events_read"] > 0
    assert all(s["elasticity"] is not None and s["elasticity"] < 0 for s in summary["skus"])
    assert summary["fixed_price"]["revenue"] > 0
    assert summary["uplift_pct"] == pytest.approx(
        100
        * (summary["revenue"] - summary["fixed_price"]["revenue"])
        / summary["fixed_price"]["revenue"],
        abs=0.01,
    )


@pytest.mark.timeout(300)
def test_demo_prices_follow_the_units_left_within_a_window(summary: dict[str, Any]) -> None:
    moving = []
    for s in summary["skus"]:
        for w in s["windows"]:
            assert w["distinct_prices"] == len(w["prices"]) >= 1
            # Every price served says which guardrail bound it (None: the optimum).
            assert all("bound_by" in p for p in w["prices"])
            if w["distinct_prices"] < 2:
                continue
            moving.append((s["sku"], w["window"]))
            # Fewer units left, a price at least as high: each higher price was served
            # only once the units left had fallen below those of every lower price.
            by_price = sorted(w["prices"], key=lambda p: p["price"])
            for low, high in zip(by_price, by_price[1:], strict=False):
                assert high["units_left_range"][1] <= low["units_left_range"][0], (s["sku"], w)
            assert w["units_left_end"] < w["units_left_start"]
    assert moving, [(s["sku"], s["windows"]) for s in summary["skus"]]
    # prices_moved means a price moved within a window, not only between re-fits.
    assert summary["prices_moved"] is True


@pytest.mark.timeout(300)
def test_demo_reports_its_rules_intensity_and_verdicts(summary: dict[str, Any]) -> None:
    drop = _drop_config()
    loosened = {r["field"]: r for r in summary["loosened_rules"]}
    # The demo changes only what seconds-long windows cannot keep, and says so.
    assert set(loosened) == {"windows", "period_minutes", "guardrails.no_touch_minutes"}
    assert loosened["period_minutes"]["was"] == drop["period_minutes"]
    assert loosened["guardrails.no_touch_minutes"]["was"] == drop["guardrails"]["no_touch_minutes"]
    assert all(r["why"] for r in summary["loosened_rules"])
    for s in summary["skus"]:
        assert s["verdict"].startswith("earns ")
        fixed = s["fixed_price"]["revenue"]
        assert ("LESS" in s["verdict"]) == (s["revenue"] < fixed), s["verdict"]
        intensity = s["intensity"]
        assert intensity["unit"].startswith("multiple of")
        assert intensity["relative"] == pytest.approx(intensity["index"] / intensity["usual"])
        assert 0.05 < intensity["relative"] < 20, intensity
    # Any change held by the approval band was approved by a named operator.
    for approval in summary["approvals"]:
        assert approval["status"] == "approved"
        assert approval["decided_by"].startswith("demo operator")


def test_demo_without_its_drop_config_says_what_is_missing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "demo", "--json", "--config-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "demo cannot start" in proc.stderr
    assert str(tmp_path / "drops" / "comic-shop-creator-drop.yaml") in proc.stderr
    assert proc.stdout == ""


# -- ended by a signal ---------------------------------------------------------------


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
