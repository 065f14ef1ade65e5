"""Structured JSON logs, one object per line, with the request id of the request.

Every record is written as JSON (``ts``, ``level``, ``logger``, ``msg`` and any
``extra`` fields); the request id set by the request middleware (or echoed from
``X-Request-ID``) is attached from a context variable, so log lines written
anywhere while serving a request carry it.

Example:
    >>> configure_logging("INFO")  # doctest: +SKIP
    >>> logging.getLogger("dropprice").info("sale", extra={"sku": "A"})  # doctest: +SKIP
    {"ts":"2026-12-05T23:00:00.123Z","level":"INFO","logger":"dropprice","msg":"sale","sku":"A"}
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["AccessLog", "JsonFormatter", "configure_logging", "request_id_var"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dropprice_request_id", default=None
)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object (orjson), extras included."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid is not None:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send the ``dropprice`` and ``uvicorn`` loggers to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("dropprice", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # The service writes its own access lines (with request ids).
    logging.getLogger("uvicorn.access").disabled = True


class AccessLog:
    """One JSON line per request, buffered in memory and written in batches.

    ``logging`` costs tens of microseconds a record, more than the whole price read;
    access lines are therefore serialised straight to bytes (a fast-path price read
    keeps only its fields, serialised when written), appended to an in-memory
    buffer and written to stderr by a daemon thread every ``flush_interval_s`` (and
    at :meth:`close`), one ``write`` per batch, like a web server's buffered access
    log. Lines carry ``ts``, ``level`` (``INFO``), ``logger`` (``dropprice.access``),
    ``msg`` (``request``) and the request's fields, the same shape as every other log
    line.

    Args:
        enabled: write access lines at all (``DROPPRICE_ACCESS_LOG``).
        sample: share of successful requests logged, 0 to 1
            (``DROPPRICE_ACCESS_LOG_SAMPLE``); answers of 400 and above are always
            logged.
        flush_interval_s: how often the buffer is written out.
        max_buffered: lines held before a request's own write flushes (bounds memory
            if the flushing thread is starved).
    """

    def __init__(
        self,
        enabled: bool = True,
        *,
        sample: float = 1.0,
        flush_interval_s: float = 0.25,
        max_buffered: int = 50_000,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"access log sample must be between 0 and 1, got {sample!r}")
        self.enabled = enabled
        self.sample = sample
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self._second_cache: tuple[int, bytes] = (-1, b"")
        self._ms_cache: tuple[int, bytes] = (-1, b"")
        # Lines as bytes, or a price read's fields (formatted when written out).
        self._lines: list[bytes | tuple[float, bytes | None, str, float, str, bytes]] = []
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_flush: list[Callable[[], object]] = []
        """Also called by the flushing thread every interval (the metrics fold)."""

    def start(self) -> None:
        """Start the flushing thread (the app's lifespan does)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._flusher,
                args=(self.flush_interval_s,),
                name="dropprice-access-log",
                daemon=True,
            )
            self._thread.start()

    def sampled(self) -> bool:
        """Whether a successful request is logged (always, unless sampling is set)."""
        return self.enabled and (self.sample >= 1.0 or random.random() < self.sample)

    def _timestamp(self, now: float) -> bytes:
        """``now`` as ISO 8601 UTC to the millisecond (formatted once per millisecond).

        Called from the event loop (:meth:`write`) and the flushing thread (the price
        reads' lines): each cache is one tuple, replaced in one store, so neither
        thread can see a millisecond paired with another's stamp.
        """
        ms = int(now * 1000)
        cached_ms, stamp = self._ms_cache
        if ms != cached_ms:
            second = ms // 1000
            cached_second, prefix = self._second_cache
            if second != cached_second:
                prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
                self._second_cache = (second, prefix)
            stamp = b"%s.%03dZ" % (prefix, ms % 1000)
            self._ms_cache = (ms, stamp)
        return stamp

    def write_read(
        self,
        now: float,
        request_id: bytes | None,
        path: str,
        elapsed: float,
        key_id: str,
        trace_id: bytes,
    ) -> None:
        """The access line of a price read answered by the fast path (200).

        ``path`` and ``key_id`` are plain identifiers there (checked by the fast path);
        the client's ``request_id`` is JSON-escaped, and without one it is the trace id.
        The request keeps only its fields in the buffer: the line is formatted when the
        buffer is written (:meth:`_read_line`), in one loop, off the request.
        """
        lines = self._lines
        lines.append((now, request_id, path, elapsed, key_id, trace_id))
        if len(lines) >= self.max_buffered:
            self.flush()

    def _read_line(self, fields: tuple[float, bytes | None, str, float, str, bytes]) -> bytes:
        """The bytes of a line :meth:`write_read` kept as its fields."""
        now, request_id, path, elapsed, key_id, trace_id = fields
        return _READ_LINE % (
            self._timestamp(now),
            orjson.dumps(request_id.decode("latin-1"))
            if request_id is not None
            else b'"' + trace_id + b'"',
            path.encode(),
            elapsed * 1000.0,
            key_id.encode(),
            trace_id,
        )

    def write(self, fields: dict[str, Any]) -> None:
        """Write one access line (no-op when disabled)."""
        if not self.enabled:
            return
        line = orjson.dumps(
            {
                "ts": self._timestamp(time.time()).decode(),
                "level": "INFO",
                "logger": "dropprice.access",
                "msg": "request",
                **fields,
            },
            default=str,
        )
        self._append(line + b"\n")

    def _append(self, line: bytes) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) >= self.max_buffered:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines to stderr (one write) and flush it."""
        with self._write_lock:
            lines, self._lines = self._lines, []
            if lines:
                read_line = self._read_line
                blob = b"".join(
                    line if isinstance(line, bytes) else read_line(line) for line in lines
                )
                out = getattr(sys.stderr, "buffer", None)
                with contextlib.suppress(ValueError, OSError):
                    if out is not None:
                        out.write(blob)
                    else:  # a replaced stderr (e.g. captured in tests) takes text
                        sys.stderr.write(blob.decode())
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()

    def _flusher(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for hook in self.on_flush:
                try:
                    hook()
                except Exception:  # noqa: BLE001 - the flusher must keep running
                    logging.getLogger("dropprice.access").exception("flush hook failed")
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        for hook in self.on_flush:
            with contextlib.suppress(Exception):
                hook()
        self.flush()


_READ_LINE = (
    b'{"ts":"%s","level":"INFO","logger":"dropprice.access","msg":"request",'
    b'"request_id":%s,"method":"GET","path":"%s","route":"/v1/prices/{sku}","status":200,'
    b'"duration_ms":%.3f,"key_id":"%s","trace_id":"%s"}\n'
)
