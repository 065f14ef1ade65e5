"""``dropprice demo``: a compressed creator drop priced live by the real service.

- :mod:`service.demo.run`: the run, end to end (:func:`run_demo`);
- :mod:`service.demo.setup`: the demo drop's config (and the rules it loosens), the
  service under uvicorn;
- :mod:`service.demo.truth`: the shoppers' true demand and the demo's clock;
- :mod:`service.demo.client`: the POS and operator clients over HTTP;
- :mod:`service.demo.state`: what the demo records as it runs;
- :mod:`service.demo.report`: the summary and the verdict per SKU against fixed.
"""

from __future__ import annotations

from service.demo.run import DemoOptions, run_demo, schedule
from service.demo.setup import (
    DEMO_DROP,
    Loosened,
    default_config_dir,
    running_service,
    write_demo_configs,
)
from service.demo.state import DemoState, SkuState
from service.demo.truth import TRUTH, SkuTruth

__all__ = [
    "DEMO_DROP",
    "DemoOptions",
    "DemoState",
    "Loosened",
    "SkuState",
    "SkuTruth",
    "TRUTH",
    "default_config_dir",
    "run_demo",
    "running_service",
    "schedule",
    "write_demo_configs",
]
