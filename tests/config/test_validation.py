"""Every validation rule: the problem lands on its file, line and field path."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.config.loader import ConfigIssue, load_config_dir, load_paths
from service.exceptions import ConfigError
from tests.config.conftest import CATEGORIES, DEFAULTS, DROP, WriteTree

FILE = "drops/ny-popup.yaml"


def _issues(root: Path) -> list[ConfigIssue]:
    result = load_paths([root])
    assert result.bundle is None
    assert result.issues, "expected at least one issue"
    return list(result.issues)


def _one(root: Path) -> ConfigIssue:
    issues = _issues(root)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def _drop(*replacements: tuple[str, str]) -> str:
    text = DROP
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def _assert_issue(
    issue: ConfigIssue, line: int | None, path: str, *fragments: str, file: str = FILE
) -> None:
    assert (issue.file, issue.line, issue.path) == (file, line, path), str(issue)
    for fragment in fragments:
        assert fragment in issue.message, str(issue)


def test_the_valid_tree_loads(write_tree: WriteTree) -> None:
    bundle = load_config_dir(write_tree())
    assert [s.sku for s in bundle.drops[0].skus] == ["A-1", "A-2", "A-3"]
    assert bundle.find_sku("A-2") is not None
    assert set(bundle.defaults.markets) == {"nyc", "jersey-city", "toronto"}


# --- syntax and structure -----------------------------------------------------------


def test_yaml_syntax_error_names_the_line(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny-popup.yaml": _drop(("  floor: 5.0\n", "  floor: [5.0\n"))}))
    assert issue.file == FILE and issue.line is not None and 7 <= issue.line <= 9
    assert "not valid YAML" in issue.message


def test_duplicate_key_is_reported_not_overwritten(write_tree: WriteTree) -> None:
    issue = _one(
        write_tree(
            {"ny-popup.yaml": _drop(("  ceiling: 60.0\n", "  ceiling: 60.0\n  floor: 6.0\n"))}
        )
    )
    _assert_issue(issue, 9, "guardrails.floor", "appears twice")


def test_unknown_field_suggests_the_close_name(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny-popup.yaml": _drop(("  floor: 5.0\n", "  flor: 5.0\n"))}))
    _assert_issue(
        issue, 7, "guardrails.flor", "unknown field 'flor'", "did you mean 'floor'", "ceiling"
    )


def test_missing_required_field_points_at_its_parent(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny-popup.yaml": _drop(("    category: snacks\n", ""))}))
    _assert_issue(issue, 18, "skus[2].category", "missing required field 'category'")


def test_wrong_type_says_what_was_received(write_tree: WriteTree) -> None:
    issue = _one(
        write_tree({"ny-popup.yaml": _drop(("    list_price: 25.0\n", "    list_price: cheap\n"))})
    )
    _assert_issue(issue, 16, "skus[1].list_price", "valid number", "'cheap'")


def test_top_level_not_a_mapping(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny-popup.yaml": "- just\n- a list\n"}))
    _assert_issue(issue, 1, "", "expected a mapping")


# --- single-file rules --------------------------------------------------------------


def test_floor_above_ceiling_lands_on_floor(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny-popup.yaml": _drop(("  floor: 5.0\n", "  floor: 70.0\n"))}))
    _assert_issue(issue, 7, "guardrails.floor", "floor 70 is above ceiling 60")


def test_sku_floor_above_drop_ceiling_lands_on_the_sku_floor(write_tree: WriteTree) -> None:
    text = _drop(("    unit_cost: 2.0\n", "    unit_cost: 2.0\n    guardrails: {floor: 80.0}\n"))
    issues = _issues(write_tree({"ny-popup.yaml": text}))
    assert str(issues[0]).startswith(
        "drops/ny-popup.yaml:22 skus[2].guardrails.floor: floor 80 is above ceiling 60"
    )
    assert len(issues) == 1


def test_sku_ceiling_below_drop_floor_lands_on_the_sku_ceiling(write_tree: WriteTree) -> None:
    text = _drop(
        ("    unit_cost: 2.0\n", "    unit_cost: 2.0\n    guardrails:\n      ceiling: 4.0\n")
    )
    issue = _issues(write_tree({"ny-popup.yaml": text}))[0]
    _assert_issue(issue, 23, "skus[2].guardrails.ceiling", "floor 5 is above ceiling 4")


def test_ladder_must_ascend(write_tree: WriteTree) -> None:
    text = _drop(("  ceiling: 60.0\n", "  ceiling: 60.0\n  ladder: [9.99, 19.99, 14.99]\n"))
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 9, "guardrails.ladder[2]", "strictly ascending", "14.99 after 19.99")


def test_ladder_must_have_a_step_inside_the_bounds(write_tree: WriteTree) -> None:
    text = _drop(("  ceiling: 60.0\n", "  ceiling: 60.0\n  ladder: [70, 80]\n"))
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(
        issue, 9, "guardrails.ladder", "no ladder price lies between floor 5 and ceiling 60"
    )


def test_price_ending_needs_a_price_between_the_bounds(write_tree: WriteTree) -> None:
    text = _drop(
        (
            "  floor: 5.0\n  ceiling: 60.0\n",
            "  floor: 10.0\n  ceiling: 10.5\n  price_ending: 0.99\n",
        ),
        ("    list_price: 20.0\n", "    list_price: 10.2\n"),
        ("    list_price: 25.0\n", "    list_price: 10.2\n"),
        ("    list_price: 10.0\n", "    list_price: 10.2\n"),
    )
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 9, "guardrails.price_ending", "no price ending in 0.99")


def test_window_end_before_start_lands_on_end(write_tree: WriteTree) -> None:
    text = _drop(
        ('    end: "2026-12-05T18:00:00-05:00"\n', '    end: "2026-12-05T09:00:00-05:00"\n')
    )
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 5, "windows[0].end", "is not after start")


def test_window_without_time_zone_is_refused(write_tree: WriteTree) -> None:
    text = _drop(('    end: "2026-12-05T18:00:00-05:00"\n', '    end: "2026-12-05T18:00:00"\n'))
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 5, "windows[0].end", "timezone")


def test_overlapping_windows_land_on_the_later_start(write_tree: WriteTree) -> None:
    text = _drop(
        (
            '    end: "2026-12-05T18:00:00-05:00"\n',
            '    end: "2026-12-05T18:00:00-05:00"\n'
            '  - start: "2026-12-05T17:00:00-05:00"\n'
            '    end: "2026-12-05T20:00:00-05:00"\n',
        )
    )
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 6, "windows[1].start", "before the previous window ends")


def test_duplicate_sku_in_one_drop(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny-popup.yaml": _drop(("  - sku: A-3\n", "  - sku: A-1\n"))}))
    _assert_issue(issue, 18, "skus[2].sku", "duplicate SKU 'A-1'", "skus[0]")


def test_inventory_in_a_market_the_drop_does_not_run(write_tree: WriteTree) -> None:
    issue = _one(
        write_tree({"ny-popup.yaml": _drop(("{nyc: 5, jersey-city: 5}", "{nyc: 5, hoboken: 5}"))})
    )
    _assert_issue(issue, 17, "skus[1].inventory.hoboken", "unknown market 'hoboken'")


def test_sku_with_no_inventory(write_tree: WriteTree) -> None:
    issue = _one(
        write_tree({"ny-popup.yaml": _drop(("    inventory: {nyc: 10}\n", "    inventory: {}\n"))})
    )
    _assert_issue(issue, 13, "skus[0].inventory", "at least 1")


def test_market_listed_twice(write_tree: WriteTree) -> None:
    issue = _one(
        write_tree({"ny-popup.yaml": _drop(("[nyc, jersey-city]", "[nyc, jersey-city, nyc]"))})
    )
    _assert_issue(issue, 2, "markets[2]", "listed twice")


def test_bad_currency_code(write_tree: WriteTree) -> None:
    text = _drop(("    list_price: 20.0\n", "    list_price: 20.0\n    currency: usd\n"))
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 13, "skus[0].currency", "3-letter ISO 4217", "'usd'")


ARMS = """\
arms:
  - name: waves
    markets: [nyc]
    release: waves
    waves: 3
  - name: open
    markets: [jersey-city]
"""


def test_valid_arms_load(write_tree: WriteTree) -> None:
    bundle = load_config_dir(write_tree({"ny-popup.yaml": DROP + ARMS}))
    assert bundle.drops[0].arm_for("nyc") is not None
    assert bundle.drops[0].arm_for("nyc").waves == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        (
            "markets: [jersey-city]",
            "markets: [hoboken]",
            29,
            "arms[1].markets[0]",
            "unknown market 'hoboken'",
        ),
        (
            "markets: [jersey-city]",
            "markets: [nyc]",
            29,
            "arms[1].markets[0]",
            "already in arm 'waves'",
        ),
        ("  - name: open\n", "  - name: waves\n", 28, "arms[1].name", "duplicate arm name"),
        ("    waves: 3\n", "    waves: 1\n", 27, "arms[0].waves", "needs waves >= 2"),
        ("    release: waves\n", "", 26, "arms[0].waves", "needs release: waves"),
        ("    markets: [jersey-city]\n", "    markets: []\n", 29, "arms[1].markets", "at least 1"),
    ],
)
def test_arm_rules(
    write_tree: WriteTree, old: str, new: str, line: int, path: str, fragment: str
) -> None:
    issue = _one(write_tree({"ny-popup.yaml": DROP + ARMS.replace(old, new, 1)}))
    _assert_issue(issue, line, path, fragment)


def test_arm_guardrails_conflicting_with_the_drop(write_tree: WriteTree) -> None:
    arms = ARMS + "    guardrails: {ceiling: 3.0}\n"
    issue = _issues(write_tree({"ny-popup.yaml": DROP + arms}))[0]
    _assert_issue(
        issue, 30, "arms[1].guardrails.ceiling", "floor 5 is above ceiling 3", "drop's guardrails"
    )


def test_category_prior_mean_outside_its_range(write_tree: WriteTree) -> None:
    cats = CATEGORIES.replace("mean: -1.6", "mean: -6.0")
    issue = _one(write_tree(categories=cats))
    _assert_issue(
        issue, 2, "categories.comics.mean", "outside allowed_range", file="categories.yaml"
    )


def test_category_prior_range_reversed(write_tree: WriteTree) -> None:
    cats = CATEGORIES.replace("[-7.0, -0.5]", "[-0.5, -7.0]")
    issue = _one(write_tree(categories=cats))
    _assert_issue(issue, 3, "categories.snacks.allowed_range", "lo < hi", file="categories.yaml")


def test_market_time_zone_must_exist(write_tree: WriteTree) -> None:
    issue = _one(write_tree(defaults=DEFAULTS.replace("America/Toronto", "Canada/Nowhere")))
    _assert_issue(issue, 7, "markets.toronto.timezone", "IANA", file="defaults.yaml")


# --- cross-file rules ---------------------------------------------------------------


def test_unknown_category(write_tree: WriteTree) -> None:
    issue = _one(
        write_tree({"ny-popup.yaml": _drop(("    category: snacks\n", "    category: toys\n"))})
    )
    _assert_issue(issue, 19, "skus[2].category", "unknown category 'toys'", "['comics', 'snacks']")


def test_unknown_market_against_the_registry(write_tree: WriteTree) -> None:
    text = _drop(("[nyc, jersey-city]", "[nyc, jersey-city, boston]"))
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 2, "markets[2]", "unknown market 'boston'", "defaults.yaml markets")


def test_no_registry_means_any_market(write_tree: WriteTree) -> None:
    text = _drop(("[nyc, jersey-city]", "[nyc, jersey-city, boston]"))
    assert load_paths([write_tree({"ny-popup.yaml": text}, defaults="currency: USD\n")]).ok


def test_currency_must_match_the_market(write_tree: WriteTree) -> None:
    text = _drop(
        ("[nyc, jersey-city]", "[nyc, jersey-city, toronto]"),
        ("    inventory: {nyc: 10}\n", "    inventory: {nyc: 10, toronto: 3}\n"),
    )
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 10, "skus[0].currency", "USD does not match market 'toronto' currency CAD")


OTHER = """\
id: other-drop
markets: [nyc]
windows:
  - start: "2026-12-05T16:00:00-05:00"
    end: "2026-12-05T22:00:00-05:00"
skus:
  - sku: B-1
    category: comics
    list_price: 9.0
    inventory: {nyc: 10}
  - sku: A-2
    category: comics
    list_price: 9.0
    inventory: {nyc: 10}
"""


def test_duplicate_sku_across_overlapping_drops(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny-popup.yaml": DROP, "other-drop.yaml": OTHER}))
    _assert_issue(
        issue,
        11,
        "skus[1].sku",
        "'A-2' is also sold by drop 'ny-popup'",
        file="drops/other-drop.yaml",
    )


def test_same_sku_in_drops_that_do_not_overlap_is_fine(write_tree: WriteTree) -> None:
    later = OTHER.replace("2026-12-05T16", "2026-12-06T16").replace(
        "2026-12-05T22", "2026-12-06T22"
    )
    bundle = load_config_dir(write_tree({"ny-popup.yaml": DROP, "other-drop.yaml": later}))
    found = bundle.find_sku("A-2")
    assert found is not None and found[0].id == "other-drop"  # the later drop wins


def test_drop_file_named_after_its_id(write_tree: WriteTree) -> None:
    issue = _one(write_tree({"ny.yaml": DROP}))
    _assert_issue(issue, 1, "id", "does not match its file name 'ny'", file="drops/ny.yaml")


def test_duplicate_drop_id_across_files(write_tree: WriteTree) -> None:
    issues = _issues(write_tree({"ny-popup.yaml": DROP, "other-drop.yaml": DROP}))
    assert any(
        i.file == "drops/other-drop.yaml"
        and i.path == "id"
        and "duplicate drop id 'ny-popup'" in i.message
        for i in issues
    ), [str(i) for i in issues]


def test_list_price_above_the_effective_ceiling(write_tree: WriteTree) -> None:
    issue = _one(
        write_tree({"ny-popup.yaml": _drop(("    list_price: 25.0\n", "    list_price: 65.0\n"))})
    )
    _assert_issue(issue, 16, "skus[1].list_price", "above the effective ceiling 60")


def test_list_price_below_cost(write_tree: WriteTree) -> None:
    text = _drop(("    unit_cost: 2.0\n", "    unit_cost: 12.0\n"))
    issue = _one(write_tree({"ny-popup.yaml": text}))
    _assert_issue(issue, 20, "skus[2].list_price", "below unit cost 12", "allow_below_cost")


def test_ceiling_below_cost_leaves_no_price(write_tree: WriteTree) -> None:
    text = _drop(
        ("    unit_cost: 2.0\n", "    unit_cost: 70.0\n"),
        ("    list_price: 10.0\n", "    list_price: 59.0\n"),
    )
    issues = _issues(write_tree({"ny-popup.yaml": text}))
    paths = {(i.line, i.path) for i in issues}
    assert (21, "skus[2].unit_cost") in paths and (20, "skus[2].list_price") in paths


def test_allow_below_cost_lifts_the_cost_rules(write_tree: WriteTree) -> None:
    text = _drop(
        ("    unit_cost: 2.0\n", "    unit_cost: 12.0\n    guardrails: {allow_below_cost: true}\n"),
    )
    assert load_paths([write_tree({"ny-popup.yaml": text})]).ok


# --- all at once, CLI -------------------------------------------------------------------


def test_every_error_in_every_file_at_once(write_tree: WriteTree) -> None:
    bad_drop = _drop(
        ("  floor: 5.0\n", "  floor: 70.0\n"),
        ("    list_price: 25.0\n", "    list_price: -3\n"),
        ('    end: "2026-12-05T18:00:00-05:00"\n', '    end: "2026-12-05T09:00:00-05:00"\n'),
    )
    root = write_tree(
        {"ny-popup.yaml": bad_drop, "other-drop.yaml": OTHER.replace("B-1", "B 1")},
        categories=CATEGORIES.replace("sd: 0.5", "sd: 0"),
    )
    got = {(i.file, i.line, i.path) for i in _issues(root)}
    assert {
        ("categories.yaml", 2, "categories.comics.sd"),
        (FILE, 5, "windows[0].end"),
        (FILE, 7, "guardrails.floor"),
        (FILE, 16, "skus[1].list_price"),
        ("drops/other-drop.yaml", 7, "skus[0].sku"),
    } <= got
    with pytest.raises(ConfigError) as info:
        load_config_dir(root)
    assert len(info.value.errors) == len(got) and len(info.value.issues) == len(got)


def test_cli_validate_prints_file_line_path_and_exits_1(write_tree: WriteTree) -> None:
    root = write_tree({"ny-popup.yaml": _drop(("  floor: 5.0\n", "  floor: 70.0\n"))})
    result = CliRunner().invoke(app, ["config", "validate", str(root)])
    assert result.exit_code == 1
    assert (
        "drops/ny-popup.yaml:7 guardrails.floor: floor 70 is above ceiling 60: "
        "the floor must be at most the ceiling" in result.output
    )


def test_cli_validate_ok(write_tree: WriteTree) -> None:
    result = CliRunner().invoke(app, ["config", "validate", str(write_tree())])
    assert result.exit_code == 0, result.output
    assert "ok: 1 drop(s), 3 SKU(s)" in result.output


def test_single_drop_file_is_checked_against_its_config_dir(write_tree: WriteTree) -> None:
    root = write_tree({"ny-popup.yaml": DROP, "other-drop.yaml": OTHER})
    # Validating the other drop alone still sees the SKU overlap and the categories.
    result = load_paths([root / "drops" / "other-drop.yaml"])
    assert [(i.file, i.line, i.path) for i in result.issues] == [
        ("drops/other-drop.yaml", 11, "skus[1].sku")
    ]
    # A broken sibling is not the named file's problem.
    (root / "drops" / "ny-popup.yaml").write_text(DROP.replace("list_price: 20.0", "list_price: x"))
    assert load_paths([root / "drops" / "other-drop.yaml"]).ok


def test_missing_path_is_an_issue(tmp_path: Path) -> None:
    result = load_paths([tmp_path / "nope.yaml"])
    assert not result.ok and "no such file" in result.issues[0].message


def test_alias_bomb_is_refused_before_validation(write_tree: WriteTree) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    issue = _one(write_tree({"ny-popup.yaml": "\n".join(levels) + "\n"}))
    assert issue.file == FILE and "expands to 12,345,678 values" in issue.message
