"""One guardrail declaration: a config, a scenario and the pricing core accept the same blocks.

The operator's YAML (``service.config``), a simulator scenario (``pricing.scenario``) and the
pricing core's spec (``pricing.guardrails.GuardrailSpec``) all derive from
:class:`pricing.guardrails.GuardrailRules`; a block one of them accepts and another refuses
would be a config that validates and then fails to re-fit, or a scenario that never runs.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.exceptions import GuardrailError, ScenarioError
from pricing.guardrails import GUARDRAIL_FIELDS, GuardrailCode, GuardrailRules, GuardrailSpec
from pricing.scenario import GuardrailsSpec, parse_scenario
from service.config.loader import parse_drop
from service.config.models import Guardrails

SHARED = tuple(GuardrailRules.model_fields)


def _drop_yaml(block: dict[str, Any]) -> str:
    drop = {
        "id": "d",
        "markets": ["m"],
        "windows": [{"start": "2026-12-05T10:00:00Z", "end": "2026-12-05T12:00:00Z"}],
        "skus": [{"sku": "S1", "category": "c", "list_price": 10.0, "inventory": {"m": 5}}],
        "guardrails": block,
    }
    return yaml.safe_dump(drop, sort_keys=False)


def _scenario(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "s",
        "horizon_hours": 4,
        "markets": [{"name": "m"}],
        "skus": [
            {
                "sku": "S1",
                "list_price": 10.0,
                "inventory": {"m": 5},
                "demand": {"base_rate": 1.0, "elasticity": -2.0},
            }
        ],
        "guardrails": block,
    }


def verdicts(block: dict[str, Any]) -> dict[str, bool]:
    """Whether the YAML config, a scenario and the pricing spec each accept ``block``.

    The ceiling is always stated (``None`` when not given): a config block that leaves it
    out inherits one, and its ladder is checked once merged with the drop's and defaults'.
    """
    block = {"ceiling": None, **block}
    drop, _, _ = parse_drop(_drop_yaml(block))
    try:
        parse_scenario(_scenario(block))
        scenario = True
    except ScenarioError:
        scenario = False
    try:
        GuardrailSpec(**block)
        spec = True
    except GuardrailError:
        spec = False
    return {"config": drop is not None, "scenario": scenario, "spec": spec}


# Blocks the three used to disagree on, each with whether it is accepted now.
DISAGREED = [
    ({"ceiling": 0.0}, False),  # no price of at least one cent fits
    ({"ceiling": 0.004}, False),
    ({"ladder": [10.0, 20.0], "price_ending": 0.99}, False),  # no step ends in .99
    ({"ladder": [9.99, 19.99], "price_ending": 0.99}, True),
    ({"ladder": [20.0, 10.0]}, False),  # not ascending
    ({"ladder": [10.0, 10.0]}, False),
    ({"ladder": [0.0, 10.0]}, False),  # a step of zero
    ({"max_change_pct": 150.0}, False),
    ({"max_changes_per_window": 20_000}, False),
    ({"floor": 2_000_000.0}, False),
    ({"floor": "20"}, False),  # a string is not an amount
    ({"max_changes_per_window": 2.5}, False),
    ({"allow_below_cost": "yes"}, False),
    ({"floor": 20.004, "ceiling": 20.0}, True),  # the same cent
    ({"floor": 20.01, "ceiling": 20.0}, False),
    ({"floor": 10, "ceiling": 20, "price_ending": 0.99, "max_change_pct": 20}, True),
]


@pytest.mark.parametrize(("block", "accepted"), DISAGREED)
def test_config_scenario_and_spec_agree_on_blocks_they_used_to_disagree_on(
    block: dict[str, Any], accepted: bool
) -> None:
    assert verdicts(block) == {"config": accepted, "scenario": accepted, "spec": accepted}


amount = st.one_of(
    st.none(),
    st.floats(min_value=-1.0, max_value=200.0, allow_nan=False),
    st.sampled_from([0.0, 0.004, 0.01, 9.99, 19.99, 20.0, 1_000_001.0]),
    st.integers(min_value=-1, max_value=100),
)
block_strategy = st.fixed_dictionaries(
    {"ceiling": amount},  # always set: a block that leaves it out inherits it (configs)
    optional={
        "floor": amount,
        "ladder": st.none()
        | st.lists(st.sampled_from([0.0, 4.99, 9.99, 10.0, 19.99, 25.0, 49.99]), max_size=4),
        "price_ending": st.none() | st.sampled_from([0.0, 0.49, 0.99, 1.0, -0.5]),
        "max_change_pct": st.none() | st.floats(-5, 120, allow_nan=False),
        "max_changes_per_window": st.none() | st.integers(-1, 12_000),
        "allow_below_cost": st.booleans(),
    },
)


@settings(max_examples=150, deadline=None)
@given(block=block_strategy)
def test_config_scenario_and_spec_accept_and_refuse_the_same_blocks(
    block: dict[str, Any],
) -> None:
    got = verdicts(block)
    assert len(set(got.values())) == 1, (block, got)
    if got["spec"]:
        spec = GuardrailSpec(**block)
        config = Guardrails.model_validate(block)
        scenario = GuardrailsSpec.model_validate(block)
        for name in SHARED:
            assert getattr(spec, name) == getattr(config, name) == getattr(scenario, name)


def test_the_three_holders_derive_from_the_one_declaration() -> None:
    for holder in (Guardrails, GuardrailsSpec, GuardrailSpec):
        assert issubclass(holder, GuardrailRules)
        assert set(SHARED) <= set(holder.model_fields)


def test_a_config_block_becomes_the_spec_without_copying_fields() -> None:
    rails = Guardrails(floor=19.0, ceiling=80.0, price_ending=0.99, max_change_pct=15.0)
    spec = GuardrailSpec.from_rules(rails, unit_cost=12.0, no_touch_periods=2)
    assert spec.rule_values() == rails.rule_values()
    assert (spec.unit_cost, spec.no_touch_periods) == (12.0, 2)
    with pytest.raises(GuardrailError, match="unit_cost 90 is above ceiling 80"):
        GuardrailSpec.from_rules(rails, unit_cost=90.0)


def test_each_guardrail_code_names_its_field() -> None:
    config_fields = set(Guardrails.model_fields)
    for code in GuardrailCode:
        if code in (GuardrailCode.NONE,):
            assert code.field is None
        elif code in (GuardrailCode.COST, GuardrailCode.HELD):
            assert code.field in ("cost", "held")
        else:
            assert code.field in config_fields, code
        assert GUARDRAIL_FIELDS[int(code)] == code.field
