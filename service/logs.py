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
import sys
import threading
import time
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
    """One JSON line per request, written without the logging machinery.

    ``logging`` costs tens of microseconds a record, as much as the whole price read;
    access lines are therefore serialised with orjson straight into stderr's byte
    buffer and flushed every ``flush_interval_s`` by a daemon thread (and at
    :meth:`close`), like a web server's buffered access log. Lines carry ``ts``,
    ``level`` (``INFO``), ``logger`` (``dropprice.access``), ``msg`` (``request``) and
    the request's fields, the same shape as every other log line.
    """

    def __init__(self, enabled: bool = True, *, flush_interval_s: float = 0.25) -> None:
        self.enabled = enabled
        self.flush_interval_s = flush_interval_s
        self._second = -1
        self._stamp = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the flushing thread (the app's lifespan does)."""
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._flusher,
                args=(self.flush_interval_s,),
                name="dropprice-access-log",
                daemon=True,
            )
            self._thread.start()

    def _timestamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write(self, fields: dict[str, Any]) -> None:
        """Write one access line (no-op when disabled)."""
        if not self.enabled:
            return
        line = orjson.dumps(
            {
                "ts": self._timestamp(),
                "level": "INFO",
                "logger": "dropprice.access",
                "msg": "request",
                **fields,
            }
        )
        out = getattr(sys.stderr, "buffer", None)
        if out is not None:
            out.write(line + b"\n")
        else:  # a replaced stderr (e.g. captured in tests) takes text
            sys.stderr.write(line.decode() + "\n")

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()

    def _flusher(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        self.flush()
