"""Parsing and judging in ``dropprice loadtest``: durations, SLOs, locust's CSV, the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from hypothesis import assume, given
from hypothesis import strategies as st

from service.commands.loadtest import (
    RouteStats,
    evaluate_slos,
    find_locustfile,
    parse_duration,
    parse_slos,
    read_locust_stats,
    read_peak,
)

CSV_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)


@pytest.mark.parametrize(
    "text, seconds", [("60s", 60), ("2m", 120), ("1h30m", 5400), ("45", 45), ("1.5s", 1.5)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0s", "10x"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text)


def test_parse_slos() -> None:
    assert parse_slos("p99_ms=10, error_rate=0.001") == {"p99_ms": 10.0, "error_rate": 0.001}
    with pytest.raises(typer.BadParameter, match=r"unknown SLO 'p42'.*allowed"):
        parse_slos("p42=1")
    with pytest.raises(typer.BadParameter, match="must be a number, got 'fast'"):
        parse_slos("p99_ms=fast")
    with pytest.raises(typer.BadParameter, match="fraction"):
        parse_slos("error_rate=5")


def test_read_locust_stats_and_judge(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(
        "\n".join(
            [
                CSV_HEADER,
                "GET,/v1/prices/[sku],900,0,2,2.5,0.4,30,250,90.0,0.0,2,3,3,4,5,6,7,8,20,30,30",
                "POST,/v1/events,100,1,4,5.0,1,40,80,10.0,0.1,4,5,6,6,8,9,12,14,40,40,40",
                ",Aggregated,1000,1,2,2.7,0.4,40,233,100.0,0.1,2,3,3,4,5,6,8,9,30,40,40",
            ]
        )
        + "\n"
    )
    stats = read_locust_stats(path)
    assert [r.name for r in stats][-1] == "Aggregated"
    results = {
        r.name: r
        for r in evaluate_slos(
            stats, {"p99_ms": 10, "error_rate": 0.001, "p95_ms": 10, "min_rps": 50}
        )
    }
    # The worst route decides a latency SLO, not the total.
    assert results["p99_ms"].measured == 14 and results["p99_ms"].where == "POST /v1/events"
    assert results["p99_ms"].ok is False
    assert results["p95_ms"].ok is True
    assert results["error_rate"].measured == pytest.approx(0.001) and results["error_rate"].ok
    assert results["min_rps"].ok is True


def test_latency_slo_without_requests_fails() -> None:
    stats = [RouteStats("Aggregated", 0, 0, None, None, None, 0.0)]
    (result,) = evaluate_slos(stats, {"p99_ms": 10})
    assert result.ok is False


def test_locustfile_is_found_from_the_checkout() -> None:
    path = find_locustfile(None)
    assert path.name == "locustfile.py" and path.parent.name == "loadtests"
    with pytest.raises(typer.BadParameter, match="does not exist"):
        find_locustfile(Path("/nonexistent/locustfile.py"))


def test_read_peak_takes_the_busiest_second(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats_history.csv"
    path.write_text(
        "Timestamp,User Count,Type,Name,Requests/s\n"
        "1,2,,Aggregated,5.0\n"
        "2,20,GET,/v1/prices/[sku],90.0\n"
        "2,20,,Aggregated,61.5\n"
        "3,8,,Aggregated,70.25\n"
    )
    assert tuple(read_peak(path)) == (20, 70.25)
    assert tuple(read_peak(tmp_path / "missing.csv")) == (0, 0.0)


@given(
    slos=st.dictionaries(
        st.sampled_from(["p50_ms", "p95_ms", "p99_ms", "min_rps", "error_rate"]),
        st.floats(0, 1, allow_nan=False),
        min_size=1,
    )
)
def test_parse_slos_round_trips(slos: dict[str, float]) -> None:
    text = ",".join(f"{k}={v!r}" for k, v in slos.items())
    assert parse_slos(text) == slos


@given(h=st.integers(0, 48), m=st.integers(0, 59), s=st.integers(0, 59))
def test_parse_duration_of_hms(h: int, m: int, s: int) -> None:
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    assume(text)
    assert parse_duration(text) == h * 3600 + m * 60 + s


def test_unreachable_host_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    import subprocess
    import sys

    from service.embedded import free_port

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "loadtest",
            "--host",
            f"http://127.0.0.1:{free_port()}",
            "--api-key",
            "k",
            "--operator-key",
            "o",
            "--report-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot reach http://127.0.0.1:" in proc.stdout
    assert not (tmp_path / "r" / "verdict.json").exists()
