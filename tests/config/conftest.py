"""Helpers for config tests: a small valid config tree written to a temp folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

CATEGORIES = """\
categories:
  comics: {mean: -1.6, sd: 0.5, allowed_range: [-5.0, -0.2]}
  snacks: {mean: -2.5, sd: 0.7, allowed_range: [-7.0, -0.5]}
"""

DEFAULTS = """\
currency: USD
guardrails:
  max_change_pct: 25
markets:
  nyc: {timezone: America/New_York, currency: USD}
  jersey-city: {timezone: America/New_York, currency: USD}
  toronto: {timezone: America/Toronto, currency: CAD}
"""

# Line numbers matter: tests point at them.
DROP = """\
id: ny-popup
markets: [nyc, jersey-city]
windows:
  - start: "2026-12-05T10:00:00-05:00"
    end: "2026-12-05T18:00:00-05:00"
guardrails:
  floor: 5.0
  ceiling: 60.0
skus:
  - sku: A-1
    category: comics
    list_price: 20.0
    inventory: {nyc: 10}
  - sku: A-2
    category: comics
    list_price: 25.0
    inventory: {nyc: 5, jersey-city: 5}
  - sku: A-3
    category: snacks
    list_price: 10.0
    unit_cost: 2.0
    inventory: {jersey-city: 50}
"""

WriteTree = Callable[..., Path]


@pytest.fixture
def write_tree(tmp_path: Path) -> WriteTree:
    """Write a config folder: defaults, categories and ``drops`` (file name -> text)."""

    def write(
        drops: dict[str, str] | None = None,
        *,
        defaults: str | None = DEFAULTS,
        categories: str | None = CATEGORIES,
    ) -> Path:
        root = tmp_path / "configs"
        (root / "drops").mkdir(parents=True, exist_ok=True)
        if defaults is not None:
            (root / "defaults.yaml").write_text(defaults)
        if categories is not None:
            (root / "categories.yaml").write_text(categories)
        for name, text in (drops if drops is not None else {"ny-popup.yaml": DROP}).items():
            (root / "drops" / name).write_text(text)
        return root

    return write
