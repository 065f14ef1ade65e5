"""Optional dependencies, imported when a command needs them.

A service host installs ``pip install dropprice``: the price service, the worker and
the operator CLI. Tools that pull heavy packages live in extras and import them only
when used::

    pip install "dropprice[loadtest]"   # locust: dropprice loadtest
    pip install "dropprice[plots]"      # matplotlib: every --plot option
    pip install "dropprice[parquet]"    # pyarrow: .parquet files, the re-fit's history
    pip install "dropprice[otel]"       # OpenTelemetry spans (DROPPRICE_OTEL_ENABLED)
    pip install "dropprice[dev]"        # all of them, and the test tools

:func:`require` imports a module of an extra or raises :class:`MissingExtra`, which
names the extra to install; on the command line it prints as an error and exits 1
(it is the command line's own ``ClickException``).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import typer

__all__ = ["EXTRAS", "MissingExtra", "require", "require_installed"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "loadtest": ("locust",),
    "plots": ("matplotlib",),
    "parquet": ("pyarrow",),
    "otel": ("opentelemetry.trace",),
}
"""Each extra of ``pyproject.toml`` and the modules it provides."""


# The ClickException class the CLI handles: typer vendors its own click in recent
# releases, so it is taken from typer's exception hierarchy rather than from click.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class MissingExtra(_ClickException, ImportError):  # type: ignore[valid-type,misc]
    """A module of an optional extra is not installed.

    Args:
        module: the module that failed to import.
        extra: the extra of ``pyproject.toml`` that provides it.
        purpose: what needed it, in a few words ("--plot", "reading .parquet files").
    """

    exit_code = 1

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        message = (
            f"{purpose} needs the optional package {module.split('.')[0]!r}, which is not "
            f'installed: pip install "dropprice[{extra}]"'
        )
        _ClickException.__init__(self, message)
        ImportError.__init__(self, message, name=module)
        self.module = module
        self.extra = extra


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` of the optional ``extra``.

    Raises:
        MissingExtra: the module is not installed (names the extra to install).
        ValueError: ``extra`` is not one of :data:`EXTRAS`.
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {sorted(EXTRAS)}, got {extra!r}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module, extra, purpose) from exc


def require_installed(module: str, extra: str, purpose: str) -> None:
    """Check that ``module`` of ``extra`` is installed without importing it (for a
    tool run as a subprocess: importing locust patches this process with gevent).

    Raises:
        MissingExtra: the module is not installed.
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {sorted(EXTRAS)}, got {extra!r}")
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtra(module, extra, purpose)
