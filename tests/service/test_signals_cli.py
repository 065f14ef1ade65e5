"""``dropprice signals`` and ``dropprice experiment report`` on real event files and configs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import typer
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pricing.synthetic import ArmEffect, RegionalSpike, simulate_event_stream
from service.cli import app as cli

MARKETS = ("brooklyn", "queens", "harlem", "jersey-city", "hoboken", "newark")


@pytest.fixture(scope="module")
def stream():
    return simulate_event_stream(key=2, plant=(RegionalSpike("queens"),))


@pytest.fixture(scope="module")
def events_file(stream, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ev") / "events.parquet"
    stream.events.to_parquet(path, index=False)
    return path


def _run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_signals_json_feed_from_an_events_file(stream, events_file):
    last = stream.truth.hours[-1]
    since = (last - pd.Timedelta(days=7)).isoformat()
    out = _run(
        "signals",
        "--events",
        str(events_file),
        "--since",
        since,
        "--until",
        last.isoformat(),
        "--json",
    )
    feed = json.loads(out.stdout)
    assert [(d["archetype"], d["market"]) for d in feed["detections"]] == [
        ("regional_spike", "queens")
    ]
    assert len({r["hour"] for r in feed["index"]}) == 7 * 24 + 1
    assert {r["market"] for r in feed["markets"]} == set(MARKETS)


def test_signals_csv_tables(stream, events_file):
    last = stream.truth.hours[-1].isoformat()
    # A relative --since counts back from --until.
    since = "7d"
    out = _run("signals", "--events", str(events_file), "--since", since, "--until", last, "--csv")
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("archetype,market,sku,creator,score,detected_at")
    assert len(lines) == 2 and ",queens," in lines[1]
    out = _run(
        "signals", "--events", str(events_file), "--since", since, "--until", last,
        "--csv", "--table", "markets", "--market", "harlem",
    )  # fmt: skip
    frame = pd.read_csv(pd.io.common.StringIO(out.stdout))
    assert set(frame["market"]) == {"harlem"} and len(frame) == 7 * 24 + 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_signals_export_per_market(stream, events_file, tmp_path, fmt):
    last = stream.truth.hours[-1]
    since = (last - pd.Timedelta(days=7)).isoformat()
    _run(
        "signals", "--events", str(events_file), "--since", since, "--until", last.isoformat(),
        "--export-dir", str(tmp_path / "dma"), "--format", fmt, "--csv",
    )  # fmt: skip
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    for market in MARKETS:
        index = read(tmp_path / "dma" / market / f"index.{fmt}")
        assert set(index["market"]) == {market}
        assert set(index["sku"]) == set(stream.truth.keys["sku"])
        rollup = read(tmp_path / "dma" / market / f"rollup.{fmt}")
        assert len(rollup) == 7 * 24 + 1
        det = read(tmp_path / "dma" / market / f"detections.{fmt}")
        assert len(det) == (1 if market == "queens" else 0)
    assert len(read(tmp_path / "dma" / f"detections.{fmt}")) == 1


def test_signals_refuse_bad_times(events_file):
    result = CliRunner().invoke(
        cli, ["signals", "--events", str(events_file), "--since", "yesterday"]
    )
    assert result.exit_code != 0 and "24h" in result.output
    result = CliRunner().invoke(
        cli, ["signals", "--events", str(events_file), "--since", "2026-11-01T00:00:00"]
    )
    assert result.exit_code != 0 and "zone" in result.output
    result = CliRunner().invoke(cli, ["signals", "--events", str(events_file), "--since", "2w"])
    assert result.exit_code != 0 and "at most 168 h" in result.output


def _experiment_configs(root: Path, treated: tuple[str, ...]) -> Path:
    (root / "drops").mkdir(parents=True)
    (root / "defaults.yaml").write_text(yaml.safe_dump({"currency": "USD"}))
    (root / "categories.yaml").write_text(
        yaml.safe_dump({"categories": {"tees": {"mean": -1.5, "sd": 1.0}}})
    )
    start = datetime(2026, 11, 2, tzinfo=UTC)
    drop = {
        "id": "arm-drop",
        "markets": list(MARKETS),
        "windows": [{"start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat()}],
        "arms": [
            {"name": "control", "markets": [m for m in MARKETS if m not in treated]},
            {"name": "waves", "markets": list(treated), "release": "waves", "waves": 3},
        ],
        "skus": [
            {
                "sku": s,
                "category": "tees",
                "list_price": 20.0,
                "inventory": {m: 400 for m in MARKETS},
            }
            for s in ("SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-E")
        ],
    }
    (root / "drops" / "arm-drop.yaml").write_text(yaml.safe_dump(drop))
    return root


def test_experiment_report_json_and_plot(tmp_path):
    treated = ("queens", "harlem", "newark")
    s = simulate_event_stream(key=9, hours=7 * 24, plant=(ArmEffect("waves", treated, 1.4),))
    events = tmp_path / "events.csv"
    lookups = tmp_path / "lookups.csv"
    s.events.to_csv(events, index=False)
    s.lookups.to_csv(lookups, index=False)
    configs = _experiment_configs(tmp_path / "configs", treated)
    png = tmp_path / "arms.png"
    out = _run(
        "experiment", "report", "arm-drop", "--config-dir", str(configs),
        "--events", str(events), "--lookups", str(lookups), "--json", "--plot", str(png),
        "--n-boot", "500",
    )  # fmt: skip
    rep = json.loads(out.stdout)
    assert rep["control"] == "control"
    arms = {a["arm"]: a for a in rep["arms"]}
    assert set(arms) == {"control", "waves"}
    sales = s.events[s.events["type"] == "sale"]
    assert arms["waves"]["units"] == sales[sales["market"].isin(treated)]["quantity"].sum()
    assert arms["waves"]["inventory"] == 5 * 3 * 400
    units = next(d for d in rep["differences"] if d["metric"] == "units_per_cluster")
    assert units["ci_low"] > 0  # 40 % more demand in the waves markets
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    text = _run(
        "experiment", "report", "arm-drop", "--config-dir", str(configs),
        "--events", str(events), "--n-boot", "200",
    ).stdout  # fmt: skip
    assert "waves − control" in text


def test_experiment_report_names_what_is_wrong(tmp_path):
    configs = _experiment_configs(tmp_path / "configs", ("queens",))
    result = CliRunner().invoke(cli, ["experiment", "report", "nope", "--config-dir", str(configs)])
    assert result.exit_code != 0 and "arm-drop" in result.output


def test_signals_with_lookups_find_the_edge_market(tmp_path):
    from pricing.synthetic import EdgeMarket

    s = simulate_event_stream(key=6, plant=(EdgeMarket("hoboken"),))
    events, lookups = tmp_path / "events.csv", tmp_path / "lookups.parquet"
    s.events.to_csv(events, index=False)
    s.lookups.to_parquet(lookups, index=False)
    last = s.truth.hours[-1].isoformat()
    args = ["signals", "--events", str(events), "--since", "7d", "--until", last, "--json"]
    without = json.loads(_run(*args).stdout)["detections"]
    assert without == []  # conversion is unknown without look-ups
    found = json.loads(_run(*args, "--lookups", str(lookups)).stdout)["detections"]
    assert [(d["archetype"], d["market"]) for d in found] == [("edge_acceleration", "hoboken")]
    assert found[0]["stats"]["conversion_ratio"] > 1.3


@given(
    n=st.integers(min_value=0, max_value=10_000),
    unit=st.sampled_from(["h", "d", "w"]),
)
@settings(deadline=None)
def test_relative_times_count_back_from_now(n, unit):
    from service.commands.signals import parse_when

    now = datetime(2026, 12, 5, 18, tzinfo=UTC)
    hours = n * {"h": 1, "d": 24, "w": 168}[unit]
    assert parse_when(f"{n}{unit}", now=now) == now - timedelta(hours=hours)


@given(st.datetimes(timezones=st.just(UTC)))
@settings(deadline=None)
def test_zoned_times_parse_back_exactly(when):
    from service.commands.signals import parse_when

    assert parse_when(when.isoformat(), now=datetime.now(UTC)) == when
    with pytest.raises(typer.BadParameter, match="zone"):
        parse_when(when.replace(tzinfo=None).isoformat(), now=datetime.now(UTC))
