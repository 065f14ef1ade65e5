"""Peak resident memory of the benchmark process, for the benchmarks' reports.

``ru_maxrss`` is the high-water mark of the whole process so far (KiB on Linux, bytes on
macOS): printed after a phase it bounds that phase and everything before it, so the
benchmarks print it after each phase in the order they run.
"""

from __future__ import annotations

import resource
import sys

__all__ = ["peak_rss_mib", "rss_line"]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def rss_line(phase: str) -> str:
    """``peak RSS after <phase>: N MiB``, the line every benchmark prints."""
    return f"peak RSS after {phase}: {peak_rss_mib():,.0f} MiB"
