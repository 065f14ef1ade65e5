"""Validation names the real mistake: an inherited bound under a ladder, a misspelled market."""

from __future__ import annotations

from pathlib import Path

from service.config.loader import ConfigIssue, load_paths
from tests.config.conftest import DROP, WriteTree

FILE = "drops/ny-popup.yaml"


def _issues(root: Path) -> list[ConfigIssue]:
    result = load_paths([root])
    assert result.bundle is None
    return list(result.issues)


def _drop(*replacements: tuple[str, str]) -> str:
    text = DROP
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_sku_floor_above_the_inherited_ceiling_under_a_ladder(write_tree: WriteTree) -> None:
    # The drop's ceiling is 60; the SKU sets a ladder and a floor of 64.99 but no ceiling.
    sku = (
        "    list_price: 25.0\n",
        "    list_price: 25.0\n    guardrails:\n      floor: 64.99\n"
        "      ladder: [24.99, 29.99, 34.99, 59.99]\n",
    )
    issues = _issues(write_tree({"ny-popup.yaml": _drop(sku)}))
    texts = [str(i) for i in issues]
    floor = [i for i in issues if i.path == "skus[1].guardrails.floor"]
    assert floor, texts
    assert "floor 64.99 is above ceiling 60" in floor[0].message, texts
    assert not any("ceiling inf" in t for t in texts), texts


def test_a_ladder_without_any_ceiling_is_still_checked(write_tree: WriteTree) -> None:
    sku = (
        "    list_price: 25.0\n",
        "    list_price: 25.0\n    guardrails:\n      floor: 64.99\n      ladder: [24.99, 29.99]\n",
    )
    text = _drop(sku, ("  ceiling: 60.0\n", ""))
    texts = [str(i) for i in _issues(write_tree({"ny-popup.yaml": text}))]
    assert any("no ladder price lies between floor 64.99" in t for t in texts), texts


def test_misspelled_market_is_flagged_by_name(write_tree: WriteTree) -> None:
    text = _drop(("markets: [nyc, jersey-city]", "markets: [nyc, jersey-cty]"))
    issues = _issues(write_tree({"ny-popup.yaml": text}))
    texts = [str(i) for i in issues]
    assert len(issues) == 1, texts
    (issue,) = issues
    assert (issue.file, issue.line, issue.path) == (FILE, 2, "markets[1]"), texts
    assert "unknown market 'jersey-cty'" in issue.message
    assert "did you mean 'jersey-city'?" in issue.message
    # The SKUs' inventory keys are right and are not blamed.
    assert not any("inventory" in i.path for i in issues), texts
