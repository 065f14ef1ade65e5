"""Saving and loading an :class:`~pricing.model.result.ElasticityFit`: npz + JSON, no pickle.

A fit is two members, ``fit.npz`` (plain numeric arrays) and ``fit.json`` (keys, labels
and metadata), written to a folder (:func:`save_fit`) or packed into one zip archive in
memory (:func:`fit_to_bytes`) for a store that keeps fits as values.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pricing.exceptions import InputError
from pricing.model.likelihood import DemandParams

if TYPE_CHECKING:
    from pricing.model.result import ElasticityFit

_FORMAT_VERSION = 1
_MEMBERS = ("fit.json", "fit.npz")
_LEGACY_PREFIX = b"DIR"  # fits stored by earlier re-fits: a zip of the folder behind 3 bytes


def _arrays(fit: ElasticityFit) -> dict[str, np.ndarray]:
    out = {
        "alpha": fit.params.alpha,
        "elasticity": fit.params.elasticity,
        "intensity_lift": fit.params.intensity_lift,
        "intensity_shift": fit.params.intensity_shift,
        "param_cov": fit.param_cov,
        "log_pref": fit.log_pref,
        "daily_profile": np.zeros(0) if fit.daily_profile is None else fit.daily_profile,
        "n_obs": fit.n_obs,
        "n_censored": fit.n_censored,
        "converged_rows": fit.converged_rows,
        "grad_norm": fit.grad_norm,
        "prior_mean": fit.prior_mean,
        "prior_sd": fit.prior_sd,
    }
    for name in ("log_price_range", "dispersion"):  # absent from fits of older versions
        if getattr(fit, name) is not None:
            out[name] = getattr(fit, name)
    for c, effect in enumerate((fit.row_covariate_effects or {}).values()):
        out[f"row_covariate_{c}"] = effect
    return out


def _meta(fit: ElasticityFit) -> dict[str, Any]:
    return {
        "format_version": _FORMAT_VERSION,
        "keys": [[_jsonable(s), _jsonable(m)] for s, m in fit.keys],
        "categories": [_jsonable(c) for c in fit.categories.tolist()],
        "covariate_effects": {k: list(v) for k, v in fit.covariate_effects.items()},
        "has_profile": fit.daily_profile is not None,
        "has_intensity": fit.has_intensity,
        "iterations": int(fit.iterations),
        "period_hours": fit.period_hours,
        "dtype": fit.dtype,
        "loss": float(fit.loss),
        "shared_converged": bool(fit.shared_converged),
        "row_covariates": list(fit.row_covariate_effects or {}),
    }


def _npz_bytes(fit: ElasticityFit) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **_arrays(fit))
    return buf.getvalue()


def save_fit(fit: ElasticityFit, path: str | Path) -> Path:
    """Write ``fit.npz`` and ``fit.json`` into the folder ``path`` (created if needed)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fit.npz").write_bytes(_npz_bytes(fit))
    (folder / "fit.json").write_text(json.dumps(_meta(fit), indent=1))
    return folder


def fit_to_bytes(fit: ElasticityFit) -> bytes:
    """The two members of :func:`save_fit` as one zip archive in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("fit.json", json.dumps(_meta(fit)))
        archive.writestr("fit.npz", _npz_bytes(fit))
    return buf.getvalue()


def load_fit(cls: type[ElasticityFit], path: str | Path) -> ElasticityFit:
    """Read a folder written by :func:`save_fit`."""
    folder = Path(path)
    try:
        meta_text = (folder / "fit.json").read_text()
        npz = (folder / "fit.npz").read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"no saved fit in {folder}: expected fit.json and fit.npz") from exc
    return _build(cls, meta_text, npz, str(folder / "fit.json"))


def fit_from_bytes(cls: type[ElasticityFit], blob: bytes) -> ElasticityFit:
    """Read an archive written by :func:`fit_to_bytes` (or by earlier re-fits)."""
    if blob[:3] == _LEGACY_PREFIX:
        blob = blob[3:]
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            meta_text = archive.read("fit.json").decode()
            npz = archive.read("fit.npz")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise InputError(
            f"not a saved fit: expected a zip archive with members {list(_MEMBERS)} ({exc})"
        ) from exc
    return _build(cls, meta_text, npz, "fit.json")


def _build(cls: type[ElasticityFit], meta_text: str, npz: bytes, where: str) -> ElasticityFit:
    meta = json.loads(meta_text)
    if meta.get("format_version") != _FORMAT_VERSION:
        raise InputError(
            f"{where}: format_version {meta.get('format_version')!r}, "
            f"this version reads {_FORMAT_VERSION}"
        )
    arrays = np.load(io.BytesIO(npz), allow_pickle=False)
    return cls(
        keys=[(s, m) for s, m in meta["keys"]],
        params=DemandParams(
            arrays["alpha"],
            arrays["elasticity"],
            arrays["intensity_lift"],
            arrays["intensity_shift"],
        ),
        param_cov=arrays["param_cov"],
        log_pref=arrays["log_pref"],
        daily_profile=arrays["daily_profile"] if meta["has_profile"] else None,
        covariate_effects={
            k: (float(v[0]), float(v[1])) for k, v in meta["covariate_effects"].items()
        },
        n_obs=arrays["n_obs"],
        n_censored=arrays["n_censored"],
        converged_rows=arrays["converged_rows"],
        grad_norm=arrays["grad_norm"],
        iterations=int(meta["iterations"]),
        prior_mean=arrays["prior_mean"],
        prior_sd=arrays["prior_sd"],
        categories=np.array(meta["categories"], dtype=object),
        has_intensity=bool(meta["has_intensity"]),
        period_hours=meta["period_hours"],
        dtype=meta["dtype"],
        loss=float(meta["loss"]),
        shared_converged=bool(meta["shared_converged"]),
        log_price_range=arrays.get("log_price_range"),
        dispersion=arrays.get("dispersion"),
        row_covariate_effects={
            name: arrays[f"row_covariate_{c}"] for c, name in enumerate(meta["row_covariates"])
        }
        if meta.get("row_covariates")
        else None,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
