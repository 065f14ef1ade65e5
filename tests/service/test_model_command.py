"""``dropprice model validate``: held-out scores of a panel file, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pricing._panel_sim import simulate_demand_panel
from pricing.validation import compare_models
from service.cli import app


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """12 SKUs x 60 weekly periods with a promotion flag, as a user's CSV."""
    panel, _ = simulate_demand_panel(
        12, 60, seed=21, promo_effect=0.4, base_rate=(3.0, 8.0), freq="W"
    )
    path = tmp_path_factory.mktemp("panel") / "sales.csv"
    panel.to_csv(path, index=False)
    return path, pd.read_csv(path, parse_dates=["period"])


def test_validate_prints_the_three_scores_as_json(panel_csv: tuple[Path, pd.DataFrame]) -> None:
    path, panel = panel_csv
    args = ["model", "validate", str(path), "--covariate", "promo", "--holdout-periods", "10"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["n_holdout_periods"] == 10 and scores["n_train_periods"] == 50
    assert scores["n_cells"] == 12 * 10 and scores["n_rows"] == 12
    # The same numbers as the library function a notebook would call.
    direct = compare_models(panel, covariates=["promo"], holdout_periods=10)
    assert scores["model"] == pytest.approx(direct.model, rel=1e-6)
    assert scores["glm"] == pytest.approx(direct.glm, rel=1e-6)
    assert scores["naive"] == pytest.approx(direct.naive, rel=1e-6)
    # Simulated from the model itself: the fit beats the per-SKU mean by far.
    assert scores["model"] < 0.8 * scores["naive"]
    assert scores["beats_baselines"] == (
        scores["model"] < scores["glm"] and scores["model"] < scores["naive"]
    )

    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "default fit" in text.output and "per-row Poisson GLM" in text.output
    assert "last 10 of 60 periods" in text.output


def test_validate_names_what_is_wrong(panel_csv: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    path, _ = panel_csv
    missing = CliRunner().invoke(app, ["model", "validate", str(path), "--sku-col", "item"])
    assert missing.exit_code == 2
    assert "missing column(s) ['item']" in missing.output
    too_many = CliRunner().invoke(app, ["model", "validate", str(path), "--holdout-periods", "60"])
    assert too_many.exit_code == 2 and "holdout periods must be in [1, 59]" in too_many.output
    other = tmp_path / "sales.xlsx"
    other.write_bytes(b"")
    wrong = CliRunner().invoke(app, ["model", "validate", str(other)])
    assert wrong.exit_code == 2 and ".csv or .parquet" in wrong.output
