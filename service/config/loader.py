"""Load ``configs/`` into a :class:`~service.config.models.ConfigBundle`.

Every problem in every file is collected and raised at once as a
:class:`~service.exceptions.ConfigError` whose lines read
``file:line field.path: message``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from service.config.models import Categories, ConfigBundle, Defaults, DropConfig
from service.exceptions import ConfigError

__all__ = ["load_config_dir"]


def _read_yaml(path: Path, errors: list[str]) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        errors.append(f"{path}{line}: not valid YAML: {exc}")
        return None


def _format(path: Path, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
        out.append(f"{path} {loc.replace('.[', '[')}: {err['msg']}")
    return out


def load_config_dir(config_dir: Path) -> ConfigBundle:
    """Load ``defaults.yaml``, ``categories.yaml`` and ``drops/*.yaml`` under ``config_dir``.

    Raises:
        ConfigError: any file is invalid (all problems listed).
    """
    config_dir = Path(config_dir)
    errors: list[str] = []
    defaults = Defaults()
    categories = Categories(categories={})
    drops: list[DropConfig] = []
    if (p := config_dir / "defaults.yaml").exists() and (data := _read_yaml(p, errors)) is not None:
        try:
            defaults = Defaults.model_validate(data)
        except ValidationError as exc:
            errors += _format(p, exc)
    if (p := config_dir / "categories.yaml").exists() and (
        data := _read_yaml(p, errors)
    ) is not None:
        try:
            categories = Categories.model_validate(data)
        except ValidationError as exc:
            errors += _format(p, exc)
    for p in sorted((config_dir / "drops").glob("*.y*ml")):
        if (data := _read_yaml(p, errors)) is None:
            continue
        try:
            drops.append(DropConfig.model_validate(data))
        except ValidationError as exc:
            errors += _format(p, exc)
    for drop in drops:
        for i, sku in enumerate(drop.skus):
            if categories.categories and sku.category not in categories.categories:
                errors.append(
                    f"drops/{drop.id} skus[{i}].category: unknown category {sku.category!r}, "
                    f"allowed {sorted(categories.categories)}"
                )
    if errors:
        raise ConfigError(errors)
    return ConfigBundle(defaults=defaults, categories=categories, drops=tuple(drops))
