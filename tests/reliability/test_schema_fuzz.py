"""Schemathesis against the service's own OpenAPI schema: zero 5xx, responses conform.

Every operation the schema lists is driven with generated requests, valid ones
(positive) and invalid ones (negative), carrying an admin key so no operation is
skipped for want of a role. Each response must not be a 5xx, must use a status code
and content type the schema declares, and must match the declared response schema;
invalid requests must be refused with a 4xx.

The CI run is small (a few examples per operation and mode, derandomised); the
opt-in run (``pytest -m slow tests/reliability``) draws many more.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from reliability_harness import ADMIN_KEY, FIGURES
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("code_only_generation")]

PER_ITEM_VALIDATION = frozenset({"POST /v1/events"})
"""Operations that validate each item on its own by contract: a batch with an invalid
event is answered 200 with that event ``rejected`` (naming the field) and the valid
ones accepted, so an invalid item is not a rejected request. Their refusals are proven
case by case in ``test_input_limits.py``."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _fuzz_operation(
    base_url: str,
    op: Any,
    mode: GenerationMode,
    examples: int,
    derandomize: bool,
    statuses: Counter[str],
    failures: list[str],
) -> None:
    checks = list(CHECKS)
    if mode is GenerationMode.NEGATIVE and op.label not in PER_ITEM_VALIDATION:
        checks.append(negative_data_rejection)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(mode))
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), "X-API-Key": ADMIN_KEY}
        response = case.call(base_url=base_url, timeout=15)
        statuses[f"{response.status_code // 100}xx"] += 1
        FIGURES.add(requests_sent=1, schema_cases=1)
        if response.status_code >= 500:
            FIGURES.add(responses_5xx_unexpected=1)
        try:
            # 413 (body over the size limit) is a refusal too, one Schemathesis's
            # negative-data check does not list.
            case.validate_response(
                response,
                checks=checks
                if response.status_code != 413
                else [c for c in checks if c is not negative_data_rejection],
            )
        except (Exception, BaseExceptionGroup) as exc:  # collect every failure, report all
            text = f"{op.label} [{mode.value}]: {str(exc)[:1500]}"
            if not any(
                f.split(": ")[0] == text.split(": ")[0] and f[-300:] == text[-300:]
                for f in failures
            ):
                failures.append(text)

    try:
        run()
    except Unsatisfiable:
        # An operation with no inputs has no invalid variant to generate.
        assert mode is GenerationMode.NEGATIVE, f"{op.label}: no valid request could be drawn"


def _fuzz(base_url: str, *, examples: int, derandomize: bool) -> tuple[Counter[str], list[str]]:
    """Drive every operation in both modes; return status counts and the failures."""
    raw = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    # Auth is proven route by route in test_access_control.py; here every request carries an admin
    # key, so the security requirement is dropped from the schema (otherwise negative
    # cases that "omit the key" would be sent with it and read as wrongly accepted).
    raw.get("components", {}).pop("securitySchemes", None)
    for item in raw["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    schema = schemathesis.openapi.from_dict(raw)
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]

    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(base_url, op, mode, examples, derandomize, statuses, failures)
    return statuses, failures


def _summary(failures: list[str]) -> str:
    """One line per failing operation and check, then the first reports in full."""
    lines = sorted(
        {
            f"{f.split(': ')[0]}: "
            + ", ".join(
                sorted({w for w in f.split() if len(w) == 5 and w[:2] == "ST" and w[2:].isdigit()})
            )
            for f in failures
        }
    )
    return "\n".join(lines) + "\n\n" + "\n\n".join(failures[:5])


def test_schema_fuzz_small(reliability_env: Any) -> None:
    statuses, failures = _fuzz(reliability_env.base_url, examples=8, derandomize=True)
    assert not failures, _summary(failures)
    assert statuses["5xx"] == 0
    assert statuses["2xx"] > 0 and statuses["4xx"] > 0, statuses


@pytest.mark.slow
def test_schema_fuzz_long(reliability_env: Any) -> None:
    examples = int(os.environ.get("DROPPRICE_FUZZ_EXAMPLES", "300"))
    statuses, failures = _fuzz(reliability_env.base_url, examples=examples, derandomize=False)
    assert not failures, _summary(failures)
    assert statuses["5xx"] == 0
