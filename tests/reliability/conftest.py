"""Fixtures of the reliability suite; the harness itself is in ``reliability_harness.py``.

The session's figures (requests sent, faults injected, 5xx seen, events lost) are
printed in the terminal summary and, with ``DROPPRICE_RELIABILITY_REPORT=path.json``,
written for ``RELIABILITY.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis.internal.conjecture import providers
from reliability_harness import (
    FIGURES,
    FaultyRedis,
    ReliabilityEnv,
    ServiceProcess,
    service_env,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long runs of this suite are opt-in: ``-m slow`` selects them, plain runs skip them."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="long opt-in run: select with -m slow")
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES.requests_sent == 0 and FIGURES.faults_injected == 0:
        return
    data = FIGURES.as_dict()
    data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    terminalreporter.section("reliability figures")
    for name, value in data.items():
        terminalreporter.write_line(f"{name:>26}: {value}")
    target = os.environ.get("DROPPRICE_RELIABILITY_REPORT")
    if target:
        Path(target).write_text(json.dumps(data, indent=2) + "\n")
        terminalreporter.write_line(f"written to {target}")


@pytest.fixture
def faulty_redis(tmp_path: Path) -> Iterator[FaultyRedis]:
    server = FaultyRedis(data_dir=tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Factory: ``start_service(redis_url, config_dir, workers=2, **env)``; stopped at teardown."""
    started: list[ServiceProcess] = []

    def start(
        redis_url: str, config_dir: Path, *, workers: int = 2, **extra_env: str
    ) -> ServiceProcess:
        svc = ServiceProcess(
            redis_url=redis_url,
            config_dir=config_dir,
            workers=workers,
            log_path=tmp_path / f"service-{len(started)}.log",
            env=service_env(redis_url, config_dir, **extra_env),
        )
        started.append(svc)
        return svc.start()

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture(scope="session")
def reliability_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReliabilityEnv]:
    """The session's Redis and 2-worker service, selling :data:`CATALOG` in ``m1``."""
    env = ReliabilityEnv(tmp_path_factory.mktemp("reliability"))
    try:
        env.service.start()
        yield env
    finally:
        env.close()


@pytest.fixture
def env(reliability_env: ReliabilityEnv) -> Iterator[ReliabilityEnv]:
    """The shared environment, brought back up after a test that took a process down."""
    reliability_env.ensure_up()
    yield reliability_env
    reliability_env.ensure_up()


@pytest.fixture
def code_only_generation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hypothesis draws from the code under test alone, not from what else is imported.

    Besides its seed (fixed by ``derandomize``), Hypothesis draws some values from a pool
    of constants it reads out of every local module in ``sys.modules``: a file run alone
    and the same file in the full suite (which has imported every other test module) draw
    different examples. Schemathesis tests that must give one result either way run with
    that pool empty.
    """
    empty = providers.Constants()
    monkeypatch.setattr(providers, "_get_local_constants", lambda: empty)
    providers.CONSTANTS_CACHE.cache.clear()
    yield
    providers.CONSTANTS_CACHE.cache.clear()
