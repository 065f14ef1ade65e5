"""The shipped example configs validate and mirror the use cases; the schema describes them."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from service.config.loader import load_config_dir, load_paths
from service.config.schema import config_schema

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="module")
def bundle():  # type: ignore[no-untyped-def]
    return load_config_dir(CONFIGS)


def test_every_shipped_file_validates_alone_and_together() -> None:
    assert load_paths([CONFIGS]).ok
    for path in sorted((CONFIGS / "drops").glob("*.yaml")):
        result = load_paths([path])
        assert result.ok, [str(i) for i in result.issues]


def test_comic_shop_creator_drop_is_two_hours_in_one_shop(bundle) -> None:  # type: ignore[no-untyped-def]
    drop = bundle.drop("comic-shop-creator-drop")
    assert drop is not None and drop.markets == ("brooklyn-panel-page",)
    assert [w.end - w.start for w in drop.windows] == [timedelta(hours=2)]
    assert 120 // drop.period_minutes == 12  # twelve 10-minute pricing periods
    signed = drop.sku_config("CMX-VAR-002")
    g = bundle.guardrails_for(drop, signed)
    assert g.ladder == (24.99, 29.99, 34.99, 39.99) and g.floor == 24.99
    assert g.max_changes_per_window == 8  # the drop's promise to the community


def test_weekend_popup_runs_two_towns_with_different_scarcity_rules(bundle) -> None:  # type: ignore[no-untyped-def]
    drop = bundle.drop("weekend-popup-two-towns")
    assert drop is not None and set(drop.markets) == {"asbury-park", "ocean-grove"}
    assert len(drop.windows) == 2  # Saturday and Sunday
    boardwalk, main_street = drop.arm_for("asbury-park"), drop.arm_for("ocean-grove")
    assert boardwalk is not None and main_street is not None and boardwalk != main_street
    assert (boardwalk.release, boardwalk.waves) == ("waves", 3)
    assert main_street.release == "all_at_once"
    tee = drop.sku_config("SHR-TEE-001")
    assert bundle.guardrails_for(drop, tee, "asbury-park").max_change_pct == 20
    assert bundle.guardrails_for(drop, tee, "ocean-grove").max_change_pct == 10
    assert set(tee.inventory) == {"asbury-park", "ocean-grove"}


def test_catalogue_has_a_thousand_skus(bundle) -> None:  # type: ignore[no-untyped-def]
    drop = bundle.drop("holiday-catalogue")
    assert drop is not None and len(drop.skus) == 1000
    assert len({s.sku for s in drop.skus}) == 1000
    assert {s.category for s in drop.skus} == set(bundle.categories.categories)


def test_catalogue_file_is_what_the_script_generates() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_catalogue", ROOT / "scripts" / "make_catalogue.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (CONFIGS / "drops" / "holiday-catalogue.yaml").read_text()
    assert module.catalogue_yaml(1000) == committed


def test_catalogue_errors_point_at_the_sku_line(tmp_path: Path) -> None:
    lines = (CONFIGS / "drops" / "holiday-catalogue.yaml").read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if "HOL-SNA-0500" in line)
    lines[n] = lines[n].replace("category: snacks", "category: snax")
    (tmp_path / "drops").mkdir()
    (tmp_path / "categories.yaml").write_text((CONFIGS / "categories.yaml").read_text())
    (tmp_path / "drops" / "holiday-catalogue.yaml").write_text("\n".join(lines) + "\n")
    issues = load_paths([tmp_path]).issues
    assert [(i.line, i.path) for i in issues] == [(n + 1, "skus[499].category")]


@pytest.mark.parametrize(
    ("kind", "files"),
    [
        ("drop", sorted((CONFIGS / "drops").glob("*.yaml"))),
        ("defaults", [CONFIGS / "defaults.yaml"]),
        ("categories", [CONFIGS / "categories.yaml"]),
    ],
)
def test_json_schema_accepts_the_examples_and_rejects_typos(kind: str, files: list[Path]) -> None:
    schema = config_schema(kind)
    validator = jsonschema.Draft202012Validator(schema)
    for path in files:
        data = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)  # quoted times: strings
        errors = list(validator.iter_errors(data))
        assert errors == [], (path, [e.message for e in errors][:3])
        data["unexpected_field"] = 1
        assert list(validator.iter_errors(data)), "unknown fields must be rejected"


def test_schema_descriptions_come_from_the_field_docstrings() -> None:
    schema = config_schema("drop")
    guardrails = schema["$defs"]["Guardrails"]["properties"]
    assert guardrails["floor"]["description"].startswith("Lowest price ever served")
    assert schema["properties"]["period_minutes"]["description"].startswith(
        "Length of one pricing period"
    )
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no docstring"
    with pytest.raises(ValueError, match="one of"):
        config_schema("nope")
