"""Operator configuration models and loading."""

from service.config.loader import load_config_dir
from service.config.models import (
    Arm,
    Categories,
    CategoryPrior,
    ConfigBundle,
    Defaults,
    DropConfig,
    DropWindow,
    Guardrails,
    SkuConfig,
)

__all__ = [
    "Arm",
    "Categories",
    "CategoryPrior",
    "ConfigBundle",
    "Defaults",
    "DropConfig",
    "DropWindow",
    "Guardrails",
    "SkuConfig",
    "load_config_dir",
]
