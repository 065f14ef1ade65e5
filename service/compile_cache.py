"""JAX's persistent compilation cache for the re-fit and the service.

A fresh process compiles the fit and the policy solver before it can run them: about
15 s of a first 10,000-SKU re-fit on a 2-core CPU. With the persistent cache, XLA's
compiled programs are written to a folder and a later process with the same programs
(same shapes, same JAX and jaxlib, same device) loads them instead of compiling.

Where the cache goes, first match wins:

1. ``--compile-cache DIR`` on ``dropprice refit`` / ``worker`` / ``serve``, or the
   ``DROPPRICE_COMPILE_CACHE`` environment variable (the option's default);
2. a cache folder JAX is already configured with (``JAX_COMPILATION_CACHE_DIR``, or
   ``jax.config.update`` by the caller);
3. ``.dropprice/jax-cache`` under the working directory (the data folder that also
   holds the embedded Redis).

``off`` (or ``none``, ``false``, ``0``, an empty value) turns it off. The folder is
safe to delete at any time; entries of other JAX versions are never loaded. Programs
that compiled in less than :data:`MIN_COMPILE_SECONDS` are not written (they cost
less to compile than to read back).

Example:
    >>> enable_compile_cache("off") is None
    True
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DEFAULT_DIR",
    "ENV_VAR",
    "MIN_COMPILE_SECONDS",
    "CacheStats",
    "cache_stats",
    "enable_compile_cache",
]

DEFAULT_DIR = Path(".dropprice") / "jax-cache"
"""Default cache folder, relative to the working directory."""
ENV_VAR = "DROPPRICE_COMPILE_CACHE"
"""Environment variable naming the cache folder (or ``off``)."""
MIN_COMPILE_SECONDS = 0.1
"""Programs compiled faster than this are not written to the cache."""
_OFF = frozenset({"off", "none", "false", "no", "0", ""})


class CacheStats(NamedTuple):
    """Persistent-cache look-ups of this process since :func:`enable_compile_cache`."""

    directory: str | None
    hits: int
    misses: int


_lock = threading.Lock()
_counts = {"hits": 0, "misses": 0}
_listening = False
_directory: str | None = None


def _on_event(event: str, **_: object) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        with _lock:
            _counts["hits"] += 1
    elif event == "/jax/compilation_cache/cache_misses":
        with _lock:
            _counts["misses"] += 1


def enable_compile_cache(setting: str | Path | None = None, *, export: bool = False) -> Path | None:
    """Point JAX's persistent compilation cache at a folder (see the module docstring).

    Call it before the process compiles anything (before the first jitted call).

    Args:
        setting: a folder, ``off`` (and the other off words), or ``None`` for the
            configured or default folder.
        export: also set ``JAX_COMPILATION_CACHE_DIR`` (and the minimum compile time)
            in the environment, so worker processes started from this one use the
            same cache; without it JAX is configured in this process only (JAX is then
            imported here if it was not yet).

    Returns:
        The cache folder (created if missing), or ``None`` when the cache is off.

    Raises:
        ValueError: the folder cannot be created (the message names it and why).
    """
    global _directory, _listening
    in_process = not export or "jax" in sys.modules
    text = None if setting is None else str(setting).strip()
    if text is not None and text.lower() in _OFF:
        if in_process:
            import jax

            jax.config.update("jax_compilation_cache_dir", None)  # type: ignore[no-untyped-call]
        if export:
            os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
        _directory = None
        return None
    own_settings = True
    if text is None:
        configured = os.environ.get("JAX_COMPILATION_CACHE_DIR")
        if "jax" in sys.modules:
            import jax

            configured = getattr(jax.config, "jax_compilation_cache_dir", None) or configured
        # A folder JAX was given keeps the minimum compile time it was given too.
        own_settings = not configured
        text = configured or str(DEFAULT_DIR)
    path = Path(text).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"compile cache folder {str(path)!r} cannot be created ({exc.strerror}); pass "
            f"--compile-cache with a writable folder, or 'off'"
        ) from exc
    path = path.resolve()
    if export:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(path)
        if own_settings:
            os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(MIN_COMPILE_SECONDS)
    if in_process:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(path))  # type: ignore[no-untyped-call]
        if own_settings:
            jax.config.update(  # type: ignore[no-untyped-call]
                "jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS
            )
        with _lock:
            if not _listening:
                jax.monitoring.register_event_listener(_on_event)
                _listening = True
            _counts.update(hits=0, misses=0)
    _directory = str(path)
    return path


def cache_stats() -> CacheStats:
    """Cache folder and hit/miss counts of this process (misses include new entries)."""
    with _lock:
        return CacheStats(_directory, _counts["hits"], _counts["misses"])
