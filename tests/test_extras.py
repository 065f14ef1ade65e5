"""Lean installs: heavy packages are optional extras, and a command that needs a
missing one fails with a message naming the extra to install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI with some top-level modules made unimportable, as on a host that
# installed dropprice without the extra that provides them.
_BLOCKED_CLI = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = set(sys.argv[1].split(","))

class Blocker(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from service.cli import app
app(sys.argv[2:], prog_name="dropprice")
"""


def _run_without(blocked: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED_CLI, blocked, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_core_dependencies_leave_out_the_tools() -> None:
    project = _pyproject()["project"]
    core = {d.split(">")[0].split("[")[0].split("=")[0].strip() for d in project["dependencies"]}
    assert not core & {"locust", "gevent", "flask", "matplotlib", "pyarrow", "optax"}
    extras = project["optional-dependencies"]
    assert extras["loadtest"] == ["locust>=2.24"]
    assert extras["plots"] == ["matplotlib>=3.8"]
    assert extras["parquet"] == ["pyarrow>=15"]
    # .[dev] keeps everything the tests and tools use.
    assert "dropprice[loadtest,plots,parquet,otel]" in extras["dev"]


def test_every_extra_module_table_matches_pyproject() -> None:
    from service.extras import EXTRAS

    declared = set(_pyproject()["project"]["optional-dependencies"])
    assert set(EXTRAS) <= declared


def test_loadtest_without_locust_names_the_extra(tmp_path: Path) -> None:
    result = _run_without("locust,gevent", "loadtest", "--duration", "5s", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'pip install "dropprice[loadtest]"' in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was started: no report folder was written.
    assert not list(tmp_path.glob("loadtest-report-*"))


def test_parquet_events_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    events = tmp_path / "events.parquet"
    events.write_bytes(b"PAR1")  # never read: the check comes first
    result = _run_without(
        "pyarrow,fastparquet", "signals", "--events", str(events), "--since", "72h", cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'pip install "dropprice[parquet]"' in result.stderr
    assert "reading .parquet files" in result.stderr
    assert "Traceback" not in result.stderr


def test_require_names_the_extra_and_is_an_import_error() -> None:
    from service.extras import MissingExtra, require

    with pytest.raises(ImportError) as info:
        require("dropprice_no_such_module", "plots", "--plot")
    assert isinstance(info.value, MissingExtra)
    assert info.value.extra == "plots"
    assert 'pip install "dropprice[plots]"' in str(info.value)
    assert require("json", "plots", "--plot").__name__ == "json"
    with pytest.raises(ValueError, match="extra must be one of"):
        require("json", "no-such-extra", "x")
