"""W3C Trace Context for every request, and OpenTelemetry spans when enabled.

A request that carries a valid ``traceparent`` header
(``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``, W3C Trace Context) keeps
its trace id: it is written in the request's access-log line (``trace_id``) and
returned in the response's ``traceparent``, whose parent id is this request's own
span id. A request with one that does not parse gets a new trace (as the spec says)
and that ``traceparent`` back. A request without one gets a new trace id in the same
format, written in the access log and, unless the client sent its own
``X-Request-ID``, returned as the response's ``X-Request-ID`` (no ``traceparent``
header then: the id it would carry is already there).

OpenTelemetry is optional (``pip install "dropprice[otel]"``). With
``DROPPRICE_OTEL_ENABLED=true`` and ``opentelemetry`` installed, every request is a
server span of the globally configured tracer provider, child of the incoming
``traceparent``; the ids in the log and the response are then the span's. Without
the package, or with a tracer provider that records nothing, the service runs as if
the setting were off (and says so once in the log).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from typing import Any, NamedTuple

__all__ = [
    "Otel",
    "TraceIds",
    "format_traceparent",
    "new_trace",
    "parse_traceparent",
    "response_ids",
    "start_otel",
]

log = logging.getLogger("dropprice.tracing")

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class TraceIds(NamedTuple):
    """The trace of one request: its trace id, this request's span id, the trace
    flags (``01``: sampled) and the caller's span id (``None`` for a new trace)."""

    trace_id: str
    span_id: str
    flags: str
    parent_id: str | None


def parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """``(trace id, parent id, flags)`` of a ``traceparent`` header value, or ``None``
    when it does not follow the W3C format (then a new trace is started).

    Version ``00`` is exactly 55 characters; a later version may append fields after
    a ``-``, which are ignored. Version ``ff``, an all-zero trace or parent id and
    upper-case hex are invalid.
    """
    if len(value) < 55 or (len(value) > 55 and (value[:2] == "00" or value[55] != "-")):
        return None
    version, trace_id, parent_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2] != "-" or value[35] != "-" or value[52] != "-" or version == "ff":
        return None
    if not _HEX.issuperset(version + trace_id + parent_id + flags):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, flags


# Ids are a per-process random prefix and a counter (one hex formatting per request):
# unique, and cheaper than a random 128-bit draw per request. A trace id is 16 random
# hex digits and the counter's 16; a span id 8 random (never all zero) and the
# counter's low 8.
_ids = count(1)
_PREFIX = ""
_SPAN_PREFIX = ""
_PREFIX_B = b""
_SPAN_PREFIX_B = b""


def _reseed() -> None:
    global _PREFIX, _SPAN_PREFIX, _PREFIX_B, _SPAN_PREFIX_B
    _PREFIX = f"{random.getrandbits(64) ^ os.getpid():016x}"
    _SPAN_PREFIX = f"{random.getrandbits(32) | 1:08x}"
    _PREFIX_B, _SPAN_PREFIX_B = _PREFIX.encode(), _SPAN_PREFIX.encode()


_reseed()
os.register_at_fork(after_in_child=_reseed)
_make = TraceIds._make


def new_trace(header: bytes | None) -> TraceIds:
    """The trace of a request given its ``traceparent`` header (or ``None``)."""
    counter = "%016x" % next(_ids)  # noqa: UP031 - the cheapest formatting here
    span_id = _SPAN_PREFIX + counter[8:]
    if header is not None:
        parsed = parse_traceparent(header.decode("latin-1").strip())
        if parsed is not None:
            return _make((parsed[0], span_id, parsed[2], parsed[1]))
    return _make((_PREFIX + counter, span_id, "01", None))


def response_ids(header: bytes | None) -> tuple[bytes, bytes | None]:
    """``(trace id, response traceparent or None)`` as bytes: :func:`new_trace` and
    :func:`format_traceparent` in one step, for the price read's fast path (the
    response carries a ``traceparent`` when the request did)."""
    counter = b"%016x" % next(_ids)
    if header is None:
        return _PREFIX_B + counter, None
    span = _SPAN_PREFIX_B + counter[8:]
    parsed = parse_traceparent(header.decode("latin-1").strip())
    if parsed is not None:
        trace_id = parsed[0].encode()
        return trace_id, b"00-" + trace_id + b"-" + span + b"-" + parsed[2].encode()
    trace_id = _PREFIX_B + counter
    return trace_id, b"00-" + trace_id + b"-" + span + b"-01"


def format_traceparent(trace: TraceIds) -> bytes:
    """The response's ``traceparent``: the trace id and this request's span id."""
    return ("00-" + trace[0] + "-" + trace[1] + "-" + trace[2]).encode()


class Otel:
    """OpenTelemetry spans for requests (see the module docstring)."""

    def __init__(self, tracer: Any, trace_api: Any) -> None:
        self._tracer = tracer
        self._trace = trace_api

    @contextmanager
    def span(self, name: str, trace: TraceIds, attributes: dict[str, Any]) -> Iterator[TraceIds]:
        """A server span named ``name`` (child of the caller's span if any); yields
        the ids to log and return: the span's own when the provider records them."""
        api = self._trace
        context = None
        if trace.parent_id is not None:
            parent = api.SpanContext(
                trace_id=int(trace.trace_id, 16),
                span_id=int(trace.parent_id, 16),
                is_remote=True,
                trace_flags=api.TraceFlags(int(trace.flags, 16)),
            )
            context = api.set_span_in_context(api.NonRecordingSpan(parent))
        with self._tracer.start_as_current_span(
            name, context=context, kind=api.SpanKind.SERVER, attributes=attributes
        ) as span:
            ctx = span.get_span_context()
            if ctx.is_valid:
                trace = TraceIds(
                    f"{ctx.trace_id:032x}",
                    f"{ctx.span_id:016x}",
                    f"{int(ctx.trace_flags):02x}",
                    trace.parent_id,
                )
            yield trace


def start_otel(enabled: bool) -> Otel | None:
    """The span factory when ``enabled`` and OpenTelemetry is installed, else ``None``."""
    if not enabled:
        return None
    try:
        from opentelemetry import trace as trace_api
    except ImportError:
        log.warning(
            "DROPPRICE_OTEL_ENABLED is set but OpenTelemetry is not installed "
            '(pip install "dropprice[otel]"); no spans are created'
        )
        return None
    return Otel(trace_api.get_tracer("dropprice"), trace_api)
