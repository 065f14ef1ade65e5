"""How a re-fit reports: progress sinks and the re-fit's Prometheus metrics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

__all__ = [
    "REFITS",
    "REFIT_DEAD_LETTERED",
    "REFIT_HOLDOUT_DEVIANCE",
    "REFIT_SECONDS",
    "REFIT_STAGE_SECONDS",
    "REFIT_VALIDATIONS",
    "LogReporter",
    "Reporter",
]

log = logging.getLogger("dropprice.refit")

REFIT_SECONDS = Histogram(
    "dropprice_refit_duration_seconds",
    "Wall time of one re-fit, events in Redis to new version live, by outcome.",
    ["outcome"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
REFIT_STAGE_SECONDS = Histogram(
    "dropprice_refit_stage_seconds",
    "Wall time of one re-fit stage.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
REFITS = Counter(
    "dropprice_refits",
    "Re-fits by outcome (published, held, no_change, locked, failed).",
    ["outcome"],
)
REFIT_VALIDATIONS = Counter(
    "dropprice_refit_validations",
    "Held-out checks of re-fits by outcome (passed, rejected, skipped).",
    ["outcome"],
)
REFIT_HOLDOUT_DEVIANCE = Histogram(
    "dropprice_refit_holdout_deviance",
    "Mean Poisson deviance per held-out hour of a re-fit's check, model and naive mean.",
    ["predictor"],
    buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 100),
)
REFIT_DEAD_LETTERED = Counter(
    "dropprice_refit_dead_lettered",
    "Stream entries a re-fit could not decode and moved to the dead-letter stream.",
)


class Reporter(Protocol):
    """Receives progress: the CLI shows it with rich or as JSON lines."""

    def stage_started(self, name: str) -> None: ...

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None: ...

    def note(self, message: str, **fields: Any) -> None: ...


class LogReporter:
    """Progress as structured log records on the ``dropprice.refit`` logger."""

    def stage_started(self, name: str) -> None:
        log.debug("stage started", extra={"stage": name})

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        log.info("stage finished", extra={"stage": name, "seconds": round(seconds, 4), **detail})

    def note(self, message: str, **fields: Any) -> None:
        log.info(message, extra=fields)
