"""JSON Schema of the operator config files, generated from the pydantic models.

Editors (VS Code's YAML extension, JetBrains) autocomplete and check ``configs/``
with it: add ``# yaml-language-server: $schema=drop.schema.json`` to a drop file
after ``dropprice config schema drop > drop.schema.json``. Each property's
``description`` is the field's docstring in :mod:`service.config.models`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.config.models import Categories, ConfigBundle, Defaults, DropConfig

__all__ = ["SCHEMA_KINDS", "config_schema"]

SCHEMA_KINDS: dict[str, type[BaseModel]] = {
    "drop": DropConfig,
    "defaults": Defaults,
    "categories": Categories,
    "bundle": ConfigBundle,
}


def config_schema(kind: str = "drop") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one kind of config file.

    Args:
        kind: ``drop`` (``drops/*.yaml``), ``defaults``, ``categories`` or ``bundle``
            (the whole config as ``GET /v1/config`` returns it).

    Raises:
        ValueError: unknown ``kind`` (the message lists the allowed ones).
    """
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"schema kind must be one of {sorted(SCHEMA_KINDS)}, got {kind!r}")
    schema = SCHEMA_KINDS[kind].model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://dropprice.dev/schema/{kind}.json",
        **schema,
    }
