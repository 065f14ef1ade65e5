"""Keeping the re-fit lock alive while a re-fit runs."""

from __future__ import annotations

import threading

from service.store.refit_state import RefitState

__all__ = ["Heartbeat"]


class Heartbeat:
    """Keeps extending the lock while a re-fit runs; ``lost`` is set if it cannot.

    A long stage (a first JIT compile, a 100k-SKU solve) then never outlives a short
    TTL, and a crashed worker's lock still expires within one TTL.
    """

    def __init__(self, state: RefitState, lock_value: str, ttl_s: float) -> None:
        self.state, self.lock_value, self.ttl_s = state, lock_value, ttl_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                ok = self.state.extend(self.lock_value, self.ttl_s)
            except Exception:  # Redis away for a moment: the next beat retries
                continue
            if not ok:
                self.lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="refit-lock", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
