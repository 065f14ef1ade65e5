"""Metrics, access log and trace context of the service, over HTTP to the real app."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from asgi_client import AppClient, auth, settings_for, write_configs

from service.app import create_app
from service.store import PriceStore, SurfaceRecord, connect
from service.tracing import new_trace, parse_traceparent, start_otel

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _client(redis_url: str, tmp_path: Path, **overrides: Any) -> AppClient:
    return AppClient(create_app(settings_for(redis_url, write_configs(tmp_path), **overrides)))


@pytest.fixture
def client(redis_url: str, tmp_path: Path) -> Iterator[AppClient]:
    with _client(redis_url, tmp_path, access_log=True) as c:
        yield c


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert match is not None, f"{name} not in /metrics"
    return float(match.group(1))


def _access_lines(client: AppClient, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    client.app.state.access_log.flush()
    err = capsys.readouterr().err
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "dropprice.access"]


# ------------------------------------------------------------------ trace context
@pytest.mark.parametrize(
    "value",
    [
        TRACEPARENT,
        f"01-{TRACE}-{PARENT}-01-later-version-field",
    ],
)
def test_valid_traceparent_parses(value: str) -> None:
    assert parse_traceparent(value) == (TRACE, PARENT, "01")


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE}-{PARENT}-01",
        f"00-{TRACE[:-1]}-{PARENT}-01",
    ],
)
def test_invalid_traceparent_starts_a_new_trace(value: str) -> None:
    assert parse_traceparent(value) is None
    trace = new_trace(value.encode())
    assert HEX32.match(trace.trace_id) and trace.trace_id != "0" * 32
    assert trace.parent_id is None


@pytest.mark.parametrize("path", ["/v1/prices/TEE-1", "/healthz"])
def test_incoming_traceparent_is_kept_in_response_and_access_log(
    client: AppClient, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    capsys.readouterr()
    r = client.get(path, headers={**auth(), "traceparent": TRACEPARENT})
    assert r.status_code == 200
    trace_id, span_id, flags = parse_traceparent(r.headers["traceparent"]) or ("", "", "")
    assert (trace_id, flags) == (TRACE, "01")
    assert span_id != PARENT  # the service's own span, child of the caller's
    (line,) = [x for x in _access_lines(client, capsys) if x["path"] == path]
    assert line["trace_id"] == TRACE
    assert line["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/v1/prices/TEE-1", "/healthz", "/v1/prices/NOPE"])
def test_without_traceparent_a_trace_is_started_and_named_by_the_request_id(
    client: AppClient, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    capsys.readouterr()
    first = client.get(path, headers=auth())
    second = client.get(path, headers=auth())
    ids = [r.headers["x-request-id"] for r in (first, second)]
    assert all(HEX32.match(i) and i != "0" * 32 for i in ids) and ids[0] != ids[1]
    # The trace id is the request id; no traceparent was sent, none comes back.
    assert "traceparent" not in first.headers and "traceparent" not in second.headers
    logged = {x["request_id"]: x for x in _access_lines(client, capsys)}
    assert [logged[i]["trace_id"] for i in ids] == ids


@pytest.mark.parametrize("path", ["/v1/prices/TEE-1", "/healthz"])
def test_a_malformed_traceparent_starts_a_new_trace_returned_to_the_caller(
    client: AppClient, path: str
) -> None:
    r = client.get(path, headers={**auth(), "traceparent": f"00-{TRACE.upper()}-{PARENT}-01"})
    parsed = parse_traceparent(r.headers["traceparent"])
    assert parsed is not None and parsed[0] != TRACE and parsed[0] == r.headers["x-request-id"]


def test_access_log_sampling_keeps_every_error(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _client(redis_url, tmp_path, access_log=True, access_log_sample=0.0) as client:
        capsys.readouterr()
        for _ in range(20):
            assert client.get("/v1/prices/TEE-1", headers=auth()).status_code == 200
        assert client.get("/v1/prices/NOPE", headers=auth()).status_code == 404
        lines = _access_lines(client, capsys)
    assert [(x["path"], x["status"]) for x in lines] == [("/v1/prices/NOPE", 404)]


# ----------------------------------------------------------------------- metrics
def test_metric_names_and_rate_limited_count(redis_url: str, tmp_path: Path) -> None:
    overrides = {"rate_limit_pos_per_second": 0.01, "rate_limit_pos_burst": 2}
    with _client(redis_url, tmp_path, **overrides) as client:
        statuses = [client.get("/v1/prices/TEE-1", headers=auth()).status_code for _ in range(5)]
        assert statuses == [200, 200, 429, 429, 429]
        refused = client.get("/v1/prices/TEE-1", headers={**auth(), "traceparent": TRACEPARENT})
        assert refused.status_code == 429
        assert refused.headers["traceparent"].startswith(f"00-{TRACE}-")
        assert len(refused.headers.get_list("x-request-id")) == 1
        text = client.get("/metrics").text
    assert "dropprice_request_seconds" not in text
    assert _metric(text, "dropprice_rate_limited_total") == 4.0
    reads = 'route="/v1/prices/{sku}",status="200"'
    assert _metric(text, f'dropprice_request_duration_seconds_count{{method="GET",{reads}}}') == 2
    assert (
        _metric(
            text,
            'dropprice_request_duration_seconds_count{method="GET",route="unmatched",status="429"}',
        )
        == 4.0
    )


def test_quotes_honoured_and_expired_are_counted(client: AppClient) -> None:
    read = client.get("/v1/prices/TEE-1", headers=auth()).json()
    runtime = client.app.state.service
    expired_id, _ = runtime.book.signer.sign(
        "TEE-1", "nyc", read["price"], read["version"], time.time() - 3600
    )
    sales = [
        {
            "type": "sale",
            "event_id": f"q-{i}",
            "sku": "TEE-1",
            "market": "nyc",
            "quantity": 1,
            "unit_price": read["price"],
            "ts": "2026-01-01T10:30:00-05:00",
            "quote_id": quote,
        }
        for i, quote in enumerate([read["quote_id"], read["quote_id"], expired_id])
    ]
    r = client.post("/v1/events", headers=auth(), json={"events": sales})
    assert r.status_code == 200, r.text
    assert [x.get("quote") for x in r.json()["results"]] == ["honoured", "honoured", "expired"]
    text = client.get("/metrics").text
    assert _metric(text, 'dropprice_quotes_total{status="honoured"}') == 2.0
    assert _metric(text, 'dropprice_quotes_total{status="expired"}') == 1.0


def test_surface_age_of_the_versions_served(client: AppClient, redis_url: str) -> None:
    text = client.get("/metrics").text
    assert _metric(text, 'dropprice_surface_age_seconds{which="newest"}') == 0.0
    store = PriceStore(connect(redis_url, timeout=2.0))
    surface = SurfaceRecord(
        price=np.full((13, 4), 31.0),
        period_start=datetime.now(UTC) - timedelta(minutes=1),
        period_seconds=3600,
    )
    store.publish_surfaces("age-v1", {("TEE-1", "nyc"): surface})
    store.close()
    deadline = time.monotonic() + 10
    while client.get("/v1/prices/TEE-1", headers=auth()).json()["version"] != "age-v1":
        assert time.monotonic() < deadline, "the published surface never arrived"
        time.sleep(0.05)
    before = datetime.now(UTC)
    text = client.get("/metrics").text
    newest = _metric(text, 'dropprice_surface_age_seconds{which="newest"}')
    oldest = _metric(text, 'dropprice_surface_age_seconds{which="oldest"}')
    assert 0.0 < newest <= oldest
    assert newest < (datetime.now(UTC) - before).total_seconds() + 60


# ------------------------------------------------------------------ OpenTelemetry
@pytest.fixture(scope="module")
def span_exporter() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_otel_spans_continue_the_callers_trace(
    span_exporter: Any, redis_url: str, tmp_path: Path
) -> None:
    span_exporter.clear()
    with _client(redis_url, tmp_path, otel_enabled=True) as client:
        read = client.get("/v1/prices/TEE-1", headers={**auth(), "traceparent": TRACEPARENT})
        health = client.get("/healthz", headers={"traceparent": TRACEPARENT})
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    assert set(spans) >= {"GET /v1/prices/{sku}", "GET /healthz"}
    for name, response in (("GET /v1/prices/{sku}", read), ("GET /healthz", health)):
        span = spans[name]
        assert f"{span.context.trace_id:032x}" == TRACE
        assert f"{span.parent.span_id:016x}" == PARENT
        assert response.headers["traceparent"] == f"00-{TRACE}-{span.context.span_id:016x}-01"


def test_without_opentelemetry_nothing_breaks(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path
) -> None:
    # As on a host without the [otel] extra: the package cannot be imported.
    for name in [m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    assert start_otel(True) is None
    with _client(redis_url, tmp_path, otel_enabled=True) as client:
        r = client.get("/v1/prices/TEE-1", headers={**auth(), "traceparent": TRACEPARENT})
        assert r.status_code == 200
        assert r.headers["traceparent"].startswith(f"00-{TRACE}-")
        assert client.get("/healthz").status_code == 200
