"""``dropprice plan-stock`` on a shipped drop, against a real redis-server.

An empty Redis is seeded from the repository's ``configs/`` (as ``dropprice refit``
does); with no surface published yet the plan runs on the category priors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.cli import app as cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DROP = "weekend-popup-two-towns"


def _run(redis_url: str, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["plan-stock", *args, "--redis-url", redis_url, "--config-dir", str(CONFIGS)]
    )


@pytest.fixture
def plan(redis_url: str) -> dict[str, Any]:
    result = _run(redis_url, DROP, "--json")
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def test_the_plan_covers_every_sku_market_and_window_of_the_drop(plan: dict[str, Any]) -> None:
    assert plan["drop"] == DROP
    assert plan["demand"].startswith("category priors")
    slots = {(r["sku"], r["market"], r["window"]) for r in plan["rows"]}
    # 5 SKUs in two towns and the pin in Ocean Grove only, over two windows.
    assert len(slots) == len(plan["rows"]) == (5 * 2 + 1) * 2
    for sku, summary in plan["skus"].items():
        placed = sum(r["units"] for r in plan["rows"] if r["sku"] == sku)
        assert placed == summary["placed"] <= summary["total"]
        assert summary["placed"] + summary["held_back"] == summary["total"]
    markets = {(m["market"], m["window"]): m for m in plan["markets"]}
    assert set(markets) == {(m, w) for m in ("asbury-park", "ocean-grove") for w in (0, 1)}
    for (market, window), m in markets.items():
        rows = [r for r in plan["rows"] if (r["market"], r["window"]) == (market, window)]
        assert m["units"] == sum(r["units"] for r in rows) > 0
        assert 0 < m["sell_through"] <= 1
        assert m["next_unit_sku"] in {r["sku"] for r in rows}
    tees = plan["skus"]["SHR-TEE-001"]
    assert tees["total"] == 270  # the configured stock of both towns
    assert tees["placed"] > 0


def test_units_follow_the_configured_demand_guess(plan: dict[str, Any]) -> None:
    # Cold start: the neutral level is the rate that sells each town's configured stock,
    # so Asbury Park (twice Ocean Grove's tees) gets more tees than Ocean Grove.
    def units(market: str) -> int:
        return sum(
            r["units"] for r in plan["rows"] if r["sku"] == "SHR-TEE-001" and r["market"] == market
        )

    assert units("asbury-park") > units("ocean-grove")


def test_the_table_shows_units_profit_and_the_last_units_value(redis_url: str) -> None:
    result = _run(redis_url, DROP)
    assert result.exit_code == 0, result.output
    for text in ("SHR-HOOD-001", "asbury-park", "last unit", "exp. profit", "held back"):
        assert text in result.stdout
    for text in ("per market and window", "one more unit"):
        assert text in result.stdout
    assert "expected profit of the plan" in result.stdout


def test_total_overrides_the_stock_of_one_sku(redis_url: str) -> None:
    result = _run(redis_url, DROP, "--json", "--total", "SHR-HOOD-001=10")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["skus"]["SHR-HOOD-001"]["total"] == 10
    assert sum(r["units"] for r in body["rows"] if r["sku"] == "SHR-HOOD-001") <= 10


def test_a_transfer_cost_keeps_more_stock_where_it_is(redis_url: str) -> None:
    plain = json.loads(_run(redis_url, DROP, "--json").stdout)
    costly = _run(redis_url, DROP, "--json", "--transfer-cost", "ocean-grove=50")
    assert costly.exit_code == 0, costly.output
    body = json.loads(costly.stdout)

    def grove(plan: dict[str, Any]) -> int:
        return sum(r["units"] for r in plan["rows"] if r["market"] == "ocean-grove")

    assert grove(body) <= grove(plain)


def test_the_plot_is_written(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "plan.png"
    result = _run(redis_url, DROP, "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_drop_is_refused_with_the_known_ones(redis_url: str) -> None:
    result = _run(redis_url, "no-such-drop")
    assert result.exit_code == 2
    assert "unknown drop 'no-such-drop'" in result.stderr
    assert DROP in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("SHR-TEE-001", "KEY=VALUE"),
        ("SHR-TEE-001=many", "whole number of units"),
        ("SHR-TEE-001=-3", "whole number of units"),
        ("NOT-A-SKU=5", "does not sell"),
    ],
)
def test_a_bad_total_is_refused(redis_url: str, value: str, message: str) -> None:
    result = _run(redis_url, DROP, "--total", value)
    assert result.exit_code == 2
    assert message in result.stderr


class _StubFit:
    """The surface of an ElasticityFit the planner reads: a fit for Asbury Park only,
    hourly periods, 40 tees an hour at list: six times the cold-start guess."""

    keys = [("SHR-TEE-001", "asbury-park")]
    has_intensity = False
    period_hours = 1.0

    def posterior_rates(
        self, prices: Any, intensity: Any = None, hours: Any = None, extrapolation: Any = None
    ) -> Any:
        import numpy as np

        return np.broadcast_to(40.0 * (prices / 28.99)[:, None, :] ** -2.0,
                               (prices.shape[0], len(hours), prices.shape[1]))  # fmt: skip


def test_fitted_rows_use_the_fit_and_the_rest_the_priors() -> None:
    import numpy as np

    from pricing.allocation import plan_stock
    from service.commands.plan_stock import build_slots
    from service.config.loader import load_config_dir

    bundle = load_config_dir(CONFIGS)
    drop = bundle.drop(DROP)
    assert drop is not None
    slots, sources = build_slots(
        bundle, drop, _StubFit(), transfer_cost={}, returns_rate=0.0, announcements=[]
    )
    fitted = [s for s, src in zip(slots, sources, strict=True) if src == "fit"]
    assert {(s.sku, s.market) for s in fitted} == {("SHR-TEE-001", "asbury-park")}
    # Hourly fit, 30-minute periods: half the fit's hourly rate per period.
    k = int(np.argmin(np.abs(fitted[0].prices - 28.99)))
    assert fitted[0].rates[:, k] == pytest.approx(20.0 * (28.99 / fitted[0].prices[k]) ** 2)
    tees = [s for s in slots if s.sku == "SHR-TEE-001"]
    plan = plan_stock(tees, {"SHR-TEE-001": 270})
    units = {
        m: sum(r["units"] for r in plan.rows if r["market"] == m)
        for m in ("asbury-park", "ocean-grove")
    }
    assert units["asbury-park"] > 2 * units["ocean-grove"]  # the fit says Asbury is busier
