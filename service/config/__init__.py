"""Operator configuration: models, loading with file:line errors, versions, live reload.

- :mod:`service.config.models`   frozen pydantic models (the single source of truth)
- :mod:`service.config.loader`   YAML files -> bundle, every problem as ``file:line path: msg``
- :mod:`service.config.checks`   rules across files and guardrail levels
- :mod:`service.config.versions` config versions in Redis (apply, rollback, audit)
- :mod:`service.config.live`     the live bundle inside a service process (hot reload)
- :mod:`service.config.whatif`   explain a served price, preview a change
"""

from service.config.checks import bundle_problems
from service.config.loader import ConfigIssue, LoadResult, load_config_dir, load_paths
from service.config.models import (
    Arm,
    Categories,
    CategoryPrior,
    ConfigBundle,
    Defaults,
    DropConfig,
    DropWindow,
    Guardrails,
    Market,
    SkuConfig,
)
from service.config.versions import ConfigStore, live_config

__all__ = [
    "Arm",
    "Categories",
    "CategoryPrior",
    "ConfigBundle",
    "ConfigIssue",
    "ConfigStore",
    "Defaults",
    "DropConfig",
    "DropWindow",
    "Guardrails",
    "LoadResult",
    "Market",
    "SkuConfig",
    "bundle_problems",
    "live_config",
    "load_config_dir",
    "load_paths",
]
