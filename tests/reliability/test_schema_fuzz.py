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

pytestmark = pytest.mark.timeout(600)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _fuzz(base_url: str, *, examples: int, derandomize: bool) -> tuple[Counter[str], list[str]]:
    """Drive every operation in both modes; return status counts and the failures."""
    raw = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]

    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE
                               else [])

            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=derandomize,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(mode))
            def run(case: Any, op: Any = op, mode: Any = mode, checks: Any = checks) -> None:
                case.headers = {**(case.headers or {}), "X-API-Key": ADMIN_KEY}
                response = case.call(base_url=base_url, timeout=15)
                statuses[f"{response.status_code // 100}xx"] += 1
                FIGURES.add(requests_sent=1, schema_cases=1)
                if response.status_code >= 500:
                    FIGURES.add(responses_5xx_unexpected=1)
                try:
                    case.validate_response(response, checks=checks)
                except Exception as exc:  # collect every failing operation, report them all
                    failures.append(f"{op.label} [{mode.value}]: {str(exc)[:600]}")

            run()
    return statuses, failures


def test_schema_fuzz_small(shared_service: Any) -> None:
    statuses, failures = _fuzz(shared_service.base_url, examples=8, derandomize=True)
    assert not failures, "\n\n".join(failures[:15])
    assert statuses["5xx"] == 0
    assert statuses["2xx"] > 0 and statuses["4xx"] > 0, statuses


@pytest.mark.slow
def test_schema_fuzz_long(shared_service: Any) -> None:
    examples = int(os.environ.get("DROPPRICE_FUZZ_EXAMPLES", "300"))
    statuses, failures = _fuzz(shared_service.base_url, examples=examples, derandomize=False)
    assert not failures, "\n\n".join(failures[:15])
    assert statuses["5xx"] == 0
