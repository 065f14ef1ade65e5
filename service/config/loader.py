"""Load ``configs/`` into a :class:`~service.config.models.ConfigBundle`, with file:line errors.

Every problem in every file is collected and reported at once, each as a
:class:`ConfigIssue` that prints as ``file:LINE field.path: message``::

    drops/ny-popup.yaml:14 skus[2].guardrails.floor: floor 30 is above ceiling 25: ...

Lines come from a line-tracking YAML parse (:mod:`service.config.yamlio`);
pydantic's error locations are mapped onto them, and problems a model validator
raises as :class:`~service.config.models.FieldIssues` land on the offending field.
Cross-file rules (:mod:`service.config.checks`) run once every file is valid on
its own.

Which files make up a config (:func:`load_paths`):

- a directory holding ``defaults.yaml``, ``categories.yaml`` and/or ``drops/`` is a
  whole config (it replaces everything when applied);
- ``defaults.yaml`` / ``categories.yaml`` replace that part;
- any other ``.yaml`` file is one drop (added, or replacing the drop with its id).

Parts not named on the command line come from the ``base`` bundle (the live one,
for ``config apply``/``diff``) or, when there is none, from the named files'
config directory on disk (for ``config validate``), so a single drop file is
checked against the categories, markets and other drops it will live with.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from service.config.checks import bundle_problems
from service.config.models import (
    Categories,
    ConfigBundle,
    Defaults,
    DropConfig,
    FieldIssues,
)
from service.config.yamlio import LineMap, PathPart, format_path, load_yaml_with_lines
from service.exceptions import ConfigError

__all__ = [
    "ConfigIssue",
    "LoadResult",
    "load_config_dir",
    "load_paths",
    "parse_drop",
    "validation_issues",
]

_PART_MODELS: dict[str, type[BaseModel]] = {
    "defaults": Defaults,
    "categories": Categories,
    "drop": DropConfig,
}


class ConfigIssue(NamedTuple):
    """One config problem: where (file, line, field path) and what is wrong and allowed."""

    file: str | None
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "")
        if self.path:
            where = f"{where} {self.path}" if where else self.path
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON form used by the operator API (``422`` bodies)."""
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}


class LoadResult(NamedTuple):
    """A loaded config: the bundle (``None`` when invalid) and every issue found."""

    bundle: ConfigBundle | None
    issues: tuple[ConfigIssue, ...]
    files: Mapping[str, str]
    """Part (``defaults``, ``categories``, ``drop:<id>``) -> file it was read from."""

    @property
    def ok(self) -> bool:
        return self.bundle is not None and not self.issues

    def raise_for_issues(self) -> ConfigBundle:
        """Return the bundle, or raise :class:`ConfigError` listing every issue."""
        if self.bundle is None or self.issues:
            raise ConfigError([str(i) for i in self.issues], issues=self.issues)
        return self.bundle


# -- pydantic errors -> issues ----------------------------------------------------------


def _field_names(model: type[BaseModel], loc: Sequence[PathPart]) -> list[str] | None:
    """Field names allowed at ``loc`` inside ``model`` (for 'unknown field' hints)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
            continue
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (tuple, list) and args:
            tp = args[0]
        elif origin is dict and len(args) == 2:
            tp = args[1]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = typing.get_args(tp)
        if args and type(None) in args and origin is not None and origin not in (tuple, dict, list):
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                tp = rest[0]
                continue
        return tp


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validation_issues(
    exc: ValidationError,
    *,
    model: type[BaseModel],
    file: str | None = None,
    lines: LineMap | None = None,
    prefix: Sequence[PathPart] = (),
) -> list[ConfigIssue]:
    """Turn a pydantic ``ValidationError`` into :class:`ConfigIssue` s with lines.

    Args:
        exc: the error raised by ``model.model_validate``.
        model: the model validated (to list allowed field names on typos).
        file: file name to print (``None`` for an HTTP body without a file).
        lines: the line map of the parsed YAML (``None``: no lines).
        prefix: path of the validated data inside its file.
    """
    lines = lines or LineMap()
    out: list[ConfigIssue] = []
    errors = exc.errors()
    locs = [tuple(e["loc"]) for e in errors]
    for err in errors:
        loc_full = tuple(err["loc"])
        if err["type"] == "too_short" and any(
            len(other) > len(loc_full) and other[: len(loc_full)] == loc_full for other in locs
        ):
            continue  # "too few items" only because an item inside failed: noise
        loc = lines.resolve(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldIssues):
            for rel, msg in cause.issues:
                path = (*prefix, *loc, *rel)
                out.append(ConfigIssue(file, lines.line_of(path), format_path(path), msg))
            continue
        path = (*prefix, *loc)
        kind = err["type"]
        if kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
        elif kind == "missing":
            msg = f"missing required field {str(loc[-1])!r}" if loc else "missing required field"
        elif kind == "extra_forbidden":
            # The raw location names the field even when it does not resolve (e.g. "").
            name = str(err["loc"][-1]) if err["loc"] else ""
            allowed = _field_names(model, loc[:-1]) or []
            msg = f"unknown field {name!r}"
            close = difflib.get_close_matches(name, allowed, n=1)
            if close:
                msg += f" (did you mean {close[0]!r}?)"
            if allowed:
                msg += f"; allowed: {', '.join(allowed)}"
        else:
            msg = f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {_short(err.get('input'))}"
        out.append(ConfigIssue(file, lines.line_of(path), format_path(path), msg))
    return out


# -- parsing one file ---------------------------------------------------------------------


class _Parsed(NamedTuple):
    model: BaseModel | None
    lines: LineMap
    issues: list[ConfigIssue]


def _parse_text(text: str, kind: str, display: str | None) -> _Parsed:
    model_cls = _PART_MODELS[kind]
    try:
        doc = load_yaml_with_lines(text, source=display or "<body>")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return _Parsed(
            None,
            LineMap(),
            [
                ConfigIssue(
                    display, mark.line + 1 if mark else None, "", f"not valid YAML: {problem}"
                )
            ],
        )
    issues = [
        ConfigIssue(
            display, line, format_path((*path, key)), f"key {key!r} appears twice in this mapping"
        )
        for path, line, key in doc.duplicate_keys
    ]
    if not isinstance(doc.data, dict):
        issues.append(
            ConfigIssue(
                display, 1, "", f"expected a mapping of fields, got {type(doc.data).__name__}"
            )
        )
        return _Parsed(None, doc.lines, issues)
    try:
        model = model_cls.model_validate(doc.data)
    except ValidationError as exc:
        issues += validation_issues(exc, model=model_cls, file=display, lines=doc.lines)
        return _Parsed(None, doc.lines, issues)
    return _Parsed(model if not issues else None, doc.lines, issues)


def parse_drop(
    text: str | bytes | Mapping[str, Any], *, file: str | None = None
) -> tuple[DropConfig | None, list[ConfigIssue], LineMap]:
    """Parse one drop from YAML text (with lines) or an already-decoded mapping.

    Returns:
        ``(drop or None, issues, line map)``; the drop is ``None`` when invalid.
    """
    if isinstance(text, Mapping):
        try:
            return DropConfig.model_validate(dict(text)), [], LineMap()
        except ValidationError as exc:
            return None, validation_issues(exc, model=DropConfig, file=file), LineMap()
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    parsed = _parse_text(text, "drop", file)
    drop = parsed.model if isinstance(parsed.model, DropConfig) else None
    return drop, parsed.issues, parsed.lines


# -- which files form a config --------------------------------------------------------


class _Sources(NamedTuple):
    root: Path | None
    defaults: Path | None
    categories: Path | None
    drops: tuple[Path, ...]
    whole: bool


def _is_config_dir(path: Path) -> bool:
    return (
        (path / "drops").is_dir()
        or (path / "defaults.yaml").is_file()
        or (path / "categories.yaml").is_file()
    )


def _drop_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def _sources(paths: Iterable[Path | str]) -> tuple[_Sources, list[ConfigIssue]]:
    root: Path | None = None
    defaults = categories = None
    drops: list[Path] = []
    whole = False
    issues: list[ConfigIssue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if _is_config_dir(path):
                root = root or path
                whole = True
                defaults = (
                    path / "defaults.yaml" if (path / "defaults.yaml").is_file() else defaults
                )
                if (path / "categories.yaml").is_file():
                    categories = path / "categories.yaml"
                drops += _drop_files(path / "drops")
            else:
                root = root or (path.parent if _is_config_dir(path.parent) else None)
                drops += _drop_files(path)
        elif path.is_file():
            if path.name == "defaults.yaml":
                defaults = path
                root = root or path.parent
            elif path.name == "categories.yaml":
                categories = path
                root = root or path.parent
            else:
                drops.append(path)
                if path.parent.name == "drops" and _is_config_dir(path.parent.parent):
                    root = root or path.parent.parent
        else:
            issues.append(ConfigIssue(str(path), None, "", "no such file or directory"))
    unique = list(dict.fromkeys(p.resolve() for p in drops))
    return _Sources(root, defaults, categories, tuple(unique), whole), issues


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def _read(path: Path, kind: str, root: Path | None) -> _Parsed:
    display = _display(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _Parsed(None, LineMap(), [ConfigIssue(display, None, "", f"cannot read: {exc}")])
    return _parse_text(text, kind, display)


def load_paths(paths: Iterable[Path | str], *, base: ConfigBundle | None = None) -> LoadResult:
    """Load the config made of ``paths`` (see the module docstring) and check it.

    Args:
        paths: config directories, ``defaults.yaml``/``categories.yaml`` files and drop
            files, in any mix.
        base: the config the named parts replace parts of (the live one when applying);
            ``None`` takes the missing parts from the files' config directory on disk.

    Returns:
        A :class:`LoadResult` with every issue (syntax, per-file and cross-file).
    """
    src, issues = _sources(paths)
    files: dict[str, str] = {}
    lines: dict[str, LineMap] = {}
    named: set[str] = set()

    def part_model(path: Path, kind: str, part: str, *, report: bool) -> BaseModel | None:
        parsed = _read(path, kind, src.root)
        if report:
            issues.extend(parsed.issues)
        if parsed.model is not None:
            files[part] = _display(path, src.root)
            lines[part] = parsed.lines
        return parsed.model

    on_disk = base is None and src.root is not None
    defaults = base.defaults if base is not None else Defaults()
    categories = base.categories if base is not None else Categories(categories={})
    for kind, named_path, disk_path in (
        ("defaults", src.defaults, (src.root / "defaults.yaml") if src.root else None),
        ("categories", src.categories, (src.root / "categories.yaml") if src.root else None),
    ):
        path = named_path or (disk_path if on_disk and disk_path and disk_path.is_file() else None)
        if path is None:
            continue
        model = part_model(path, kind, kind, report=True)
        named.add(kind)
        if model is None:
            continue
        if kind == "defaults":
            assert isinstance(model, Defaults)
            defaults = model
        else:
            assert isinstance(model, Categories)
            categories = model

    drops: dict[str, DropConfig] = {}
    stems: dict[str, str] = {}
    if base is not None and not src.whole:
        drops = {d.id: d for d in base.drops}
    elif on_disk and src.root is not None and not src.whole:
        # Context for a single file: its siblings on disk, reported only if named.
        for path in _drop_files(src.root / "drops"):
            if path.resolve() in src.drops:
                continue
            model = part_model(path, "drop", f"sibling:{path}", report=False)
            if isinstance(model, DropConfig) and model.id not in drops:
                drops[model.id] = model
                stems[model.id] = path.stem
                files[f"drop:{model.id}"] = files.pop(f"sibling:{path}")
                lines[f"drop:{model.id}"] = lines.pop(f"sibling:{path}")
    seen_named: dict[str, str] = {}
    for path in src.drops:
        parsed = _read(path, "drop", src.root)
        issues.extend(_blame_drop_markets(path, parsed, defaults))
        display = _display(path, src.root)
        if not isinstance(parsed.model, DropConfig):
            continue
        drop = parsed.model
        if drop.id in seen_named:
            issues.append(
                ConfigIssue(
                    display,
                    parsed.lines.line_of(("id",)),
                    "id",
                    f"duplicate drop id {drop.id!r}: also defined in {seen_named[drop.id]}",
                )
            )
            continue
        seen_named[drop.id] = display
        drops[drop.id] = drop
        stems[drop.id] = path.stem
        part = f"drop:{drop.id}"
        files[part] = display
        lines[part] = parsed.lines
        named.add(part)

    bundle = ConfigBundle(defaults=defaults, categories=categories, drops=tuple(drops.values()))
    for problem in bundle_problems(bundle, file_stems=stems):
        # Siblings on disk are context for a single named file: their own problems
        # are reported when they are validated themselves.
        if on_disk and not src.whole and problem.part not in named:
            continue
        file = files.get(problem.part, "live config" if base is not None else None)
        line_map = lines.get(problem.part)
        issues.append(
            ConfigIssue(
                file,
                line_map.line_of(problem.path) if line_map else None,
                format_path(problem.path),
                problem.message,
            )
        )
    ok = not issues
    return LoadResult(bundle if ok else None, tuple(issues), files)


def _blame_drop_markets(path: Path, parsed: _Parsed, defaults: Defaults) -> list[ConfigIssue]:
    """The drop file's issues, with a misspelled name under ``markets:`` flagged by name.

    A drop whose ``markets`` list misspells a market fails on its own with every
    SKU's (correct) inventory key reported as unknown. When ``defaults.yaml`` lists
    markets, the misspelled entry is reported on ``markets[k]`` instead, and the
    inventory keys that name a known market are not blamed.
    """
    known = defaults.markets
    if parsed.model is not None or not known:
        return parsed.issues
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return parsed.issues
    listed = data.get("markets") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return parsed.issues
    display = parsed.issues[0].file if parsed.issues else str(path)
    unknown = [(k, m) for k, m in enumerate(listed) if isinstance(m, str) and m not in known]
    if not unknown:
        return parsed.issues
    out: list[ConfigIssue] = []
    for k, market in unknown:
        close = difflib.get_close_matches(market, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        out.append(
            ConfigIssue(
                display,
                parsed.lines.line_of(("markets", k)),
                format_path(("markets", k)),
                f"unknown market {market!r}{hint}, allowed {sorted(known)} (defaults.yaml markets)",
            )
        )
    inventory_key = re.compile(r"skus\[\d+\]\.inventory\.(.+)")
    for issue in parsed.issues:
        hit = inventory_key.fullmatch(issue.path)
        if hit and hit.group(1) in known and "(the drop's markets)" in issue.message:
            continue  # the key is right; the drop's markets list is not
        out.append(issue)
    return out


def load_config_dir(config_dir: Path | str) -> ConfigBundle:
    """Load ``defaults.yaml``, ``categories.yaml`` and ``drops/*.yaml`` under ``config_dir``.

    Raises:
        ConfigError: any file is invalid (all problems listed, ``file:line path: msg``).
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError([f"{config_dir}: not a config directory"])
    return load_paths([config_dir]).raise_for_issues()


def bundle_to_json(bundle: ConfigBundle) -> str:
    """Canonical JSON of a bundle (sorted keys, no spaces): what is stored and hashed.

    Only the fields the operator set are written (``exclude_unset``): a guardrail
    block inherits every field it leaves out (:meth:`Guardrails.merged` reads
    ``model_fields_set``), so a stored version that spelled out every default would
    override the drop-wide or default guardrails with ``None`` once read back.
    """
    data = bundle.model_dump(mode="json", exclude_unset=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
