"""The demo's drop config and its price service under uvicorn.

The demo drop is ``configs/drops/comic-shop-creator-drop.yaml`` as written, except
for what a window of a few seconds cannot keep. Every such change is returned as a
:class:`Loosened` rule and printed before the drop opens:

- the windows move to *now* and last seconds;
- ``period_minutes`` becomes 1, so each window is one pricing period (the shortest a
  drop may have; see :mod:`service.demo.truth` for the clock);
- ``no_touch_minutes`` becomes 0: a hold of that many minutes would freeze the whole
  one-period window at its opening price.

Everything else (floors, ceilings, the ladder, ``max_change_pct``,
``max_changes_per_window``, the approval band, ``refit_during_window``) stays as
written; a re-fit held by the approval band is approved by the demo's operator
through ``POST /v1/admin/approvals/{id}``, under a name, as a person would.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEMO_DROP",
    "Loosened",
    "Recorder",
    "default_config_dir",
    "running_service",
    "write_demo_configs",
]

DEMO_DROP = "comic-shop-creator-drop"
"""The example drop the demo prices (``configs/drops/<id>.yaml``)."""

DEMO_PERIOD_MINUTES = 1
"""The demo drop's pricing period: the shortest a drop may have."""


@dataclass(frozen=True)
class Loosened:
    """One rule of the drop the demo changes, and why."""

    field: str
    was: Any
    now: Any
    why: str

    def __str__(self) -> str:
        return f"{self.field}: {self.was} -> {self.now} ({self.why})"

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "was": self.was, "now": self.now, "why": self.why}


def default_config_dir() -> Path:
    """The repository's ``configs/`` folder (next to the ``service`` package)."""
    return Path(__file__).resolve().parents[2] / "configs"


def _drop_file(source: Path) -> Path:
    drop_file = source / "drops" / f"{DEMO_DROP}.yaml"
    if not drop_file.is_file():
        raise FileNotFoundError(f"the demo drop is missing: expected {drop_file}")
    return drop_file


def write_demo_configs(
    source: Path, target: Path, *, windows: list[tuple[datetime, datetime]]
) -> tuple[dict[str, Any], list[Loosened]]:
    """Copy ``source`` configs to ``target`` with the demo drop's windows set to ``windows``.

    Returns:
        The demo drop as a dict (as written) and the rules it changed, each with why.
    """
    from service.config.loader import load_config_dir

    drop_file = _drop_file(source)
    (target / "drops").mkdir(parents=True, exist_ok=True)
    for name in ("defaults.yaml", "categories.yaml"):
        shutil.copyfile(source / name, target / name)
    original: dict[str, Any] = yaml.safe_load(drop_file.read_text())
    defaults: dict[str, Any] = yaml.safe_load((source / "defaults.yaml").read_text()) or {}
    drop = dict(original)
    loosened = [
        Loosened(
            "windows",
            " and ".join(f"{w['start']} to {w['end']}" for w in original.get("windows", [])),
            f"{len(windows)} window(s) of {(windows[0][1] - windows[0][0]).total_seconds():.0f} s "
            "from now",
            "the demo runs now, in seconds",
        )
    ]
    drop["windows"] = [{"start": a.isoformat(), "end": b.isoformat()} for a, b in windows]
    period = original.get("period_minutes", 60)
    if period != DEMO_PERIOD_MINUTES:
        drop["period_minutes"] = DEMO_PERIOD_MINUTES
        loosened.append(
            Loosened(
                "period_minutes",
                period,
                DEMO_PERIOD_MINUTES,
                "each window of seconds plays one pricing period of one minute",
            )
        )
    rails = dict(drop.get("guardrails") or {})
    hold = rails.get(
        "no_touch_minutes", (defaults.get("guardrails") or {}).get("no_touch_minutes", 0)
    )
    if hold:
        rails["no_touch_minutes"] = 0
        drop["guardrails"] = rails
        loosened.append(
            Loosened(
                "guardrails.no_touch_minutes",
                hold,
                0,
                "a hold that long would freeze the whole one-period window at its opening price",
            )
        )
    (target / "drops" / f"{DEMO_DROP}.yaml").write_text(yaml.safe_dump(drop, sort_keys=False))
    load_config_dir(target)  # fail here, naming the field, rather than in the service
    return drop, loosened


@contextlib.contextmanager
def running_service(settings: Any, port: int) -> Iterator[str]:
    """The price service under uvicorn in a thread; yields its base URL."""
    import uvicorn

    from service.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dropprice-demo-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo's price service did not start (see the log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class Recorder:
    """Re-fit progress reporter that names the running stage on the demo's screen."""

    def __init__(self, on_stage: Callable[[str], None]) -> None:
        self.on_stage = on_stage

    def stage_started(self, name: str) -> None:
        self.on_stage(name)

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        pass

    def note(self, message: str, **fields: Any) -> None:
        pass
