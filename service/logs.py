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

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging", "request_id_var"]

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
