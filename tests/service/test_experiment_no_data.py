"""``dropprice experiment report`` on a drop with no sales says so and exits 1, rather than
printing revenue 0, ``avg price nan`` and ``+0 [+0, +0] p=1.000``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from service.cli import app as cli

ROOT = Path(__file__).resolve().parents[2]


def test_report_without_sales_says_there_is_nothing_to_compare(redis_url: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["experiment", "report", "weekend-popup-two-towns", "--config-dir",
         str(ROOT / "configs"), "--redis-url", redis_url],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "no sales of its SKUs in its markets" in result.stderr
    assert "nan" not in result.stdout and "p=1.000" not in result.stdout
