"""The JAX devices a re-fit runs on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.exceptions import RefitError

__all__ = ["describe_devices", "select_devices"]


def select_devices(kind: str = "auto") -> list[Any]:
    """JAX devices a re-fit runs on: all devices of the chosen platform.

    Args:
        kind: ``auto`` (JAX's default platform), ``cpu`` or ``gpu``.

    Raises:
        RefitError: ``gpu`` asked for but JAX sees none, or an unknown kind.
    """
    import jax

    if kind == "auto":
        return list(jax.devices())
    if kind not in ("cpu", "gpu"):
        raise RefitError(f"--device must be one of cpu, gpu, auto, got {kind!r}")
    try:
        devices = list(jax.devices(kind))
    except RuntimeError as exc:
        raise RefitError(
            f"--device {kind}: JAX sees no {kind} device ({exc}); available: "
            f"{[str(d) for d in jax.devices()]}. Install jax[cuda12] or use --device cpu"
        ) from exc
    return devices


def describe_devices(devices: Sequence[Any]) -> str:
    """``"cpu:0"`` or ``"gpu:0-3 (4 devices, SKU-sharded)"``."""
    platform = devices[0].platform
    if len(devices) == 1:
        return f"{platform}:{devices[0].id}"
    return f"{platform}:{devices[0].id}-{devices[-1].id} ({len(devices)} devices, SKU-sharded)"
