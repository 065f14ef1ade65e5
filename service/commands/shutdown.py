"""Signals that end a command by unwinding it, so its clean-up runs.

Python's default for SIGTERM and SIGHUP ends the process on the spot, skipping every
``finally``: a private redis-server, a temporary folder or a data-folder lock would be
left behind. Inside :func:`exit_on_signals` they raise :class:`SignalExit` instead.

Example::

    with exit_on_signals(signal.SIGTERM, signal.SIGHUP):
        run_demo(options)        # its ``finally`` stops the demo's redis-server
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["Received", "SignalExit", "exit_on_signals"]


class SignalExit(SystemExit):
    """The process was asked to stop by ``signum``; exits with ``code``."""

    def __init__(self, signum: int, code: int) -> None:
        super().__init__(code)
        self.signum = signum


class Received:
    """Which signal, if any, arrived inside :func:`exit_on_signals` (what it yields)."""

    signum: int | None = None


@contextlib.contextmanager
def exit_on_signals(*signums: signal.Signals, exit_code: int | None = None) -> Iterator[Received]:
    """Turn ``signums`` into :class:`SignalExit` inside the block.

    Args:
        signums: the signals to catch (main thread only).
        exit_code: the process's exit status; ``None`` for ``128 + signum``, the
            shell's convention for "ended by a signal".

    The first signal raises; more signals while the block unwinds are ignored, so a
    clean-up is not cut short. A handler that fires inside a garbage collector callback
    (JAX installs one) has its exception swallowed and reported to
    ``sys.unraisablehook``; the hook sends the signal again, to be handled in ordinary
    code. Code that turns every exception into its own (pydantic building a schema does)
    can hide the :class:`SignalExit`: the yielded :class:`Received` still says which
    signal arrived.
    """
    unwinding = threading.Event()
    received = Received()

    def leave(signum: int, _frame: FrameType | None) -> None:
        if unwinding.is_set():
            return
        unwinding.set()
        received.signum = signum
        raise SignalExit(signum, 128 + signum if exit_code is None else exit_code)

    previous_hook = sys.unraisablehook

    def redeliver(info: Any) -> None:
        if isinstance(info.exc_value, SignalExit):
            unwinding.clear()
            threading.Timer(0.05, os.kill, (os.getpid(), info.exc_value.signum)).start()
            return
        previous_hook(info)

    previous = {sig: signal.signal(sig, leave) for sig in signums}
    sys.unraisablehook = redeliver
    try:
        yield received
    finally:
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)
