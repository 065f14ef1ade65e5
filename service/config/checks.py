"""Rules that need more than one config file.

Each file validates on its own through the models in :mod:`service.config.models`;
the rules here look across files and across guardrail levels:

- every SKU's category is listed in ``categories.yaml`` (when any category is);
- every drop market is listed in ``defaults.yaml`` ``markets`` (when any market is),
  and a SKU's currency matches its markets' currency;
- drop ids are unique, and each drop file is named after its id;
- no SKU is sold by two drops whose windows overlap (the service would not know
  which drop's surface and guardrails to serve);
- guardrails stay consistent once merged (defaults -> drop -> arm -> SKU): a SKU
  floor above the drop ceiling is reported on the SKU's ``guardrails.floor``;
- the list price (served before any surface exists) lies inside the effective
  floor and ceiling, and neither it nor the ceiling is under unit cost unless
  ``allow_below_cost`` is set. These compare in the SKU currency's minor unit, the
  guardrail levels among themselves at the cent (:mod:`pricing.money`).

Each problem names the part it belongs to (``defaults``, ``categories`` or the
drop id) and a field path inside that part, so the loader can print the file and
line of the offending field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pricing.money import compare_money, minor_units
from service.config.models import (
    ConfigBundle,
    DropConfig,
    Guardrails,
    Problem,
    SkuConfig,
    guardrail_problems,
)

__all__ = ["BundleProblem", "bundle_problems", "merge_problems"]


class BundleProblem(NamedTuple):
    """A cross-file problem: which part (``defaults``, ``categories``, ``drop:<id>``) and where."""

    part: str
    path: tuple[str | int, ...]
    message: str


def _drop_part(drop: DropConfig) -> str:
    return f"drop:{drop.id}"


def merge_problems(
    base: Guardrails, override: Guardrails | None, where: tuple[str | int, ...], source: str
) -> tuple[Guardrails, list[Problem]]:
    """Merge one level of guardrails; report conflicts on the overriding level's fields.

    Returns:
        ``(merged, problems)``: the merged guardrails (``base`` when they conflict) and
        (path under ``where``, message) pairs naming the field the override set.
    """
    if override is None:
        return base, []
    merged = base.merged_unchecked(override)
    problems = guardrail_problems(merged)
    if not problems:
        return Guardrails.model_validate(merged.model_dump()), []
    out: list[Problem] = []
    set_here = override.model_fields_set
    for path, msg in problems:
        field = path[0]
        # Blame the field this level sets; if it set none of the conflicting pair,
        # blame the block itself.
        blamed = path if field in set_here else ()
        if not blamed:
            pair = {"floor": "ceiling", "ceiling": "floor"}.get(str(field))
            blamed = (pair,) if pair in set_here else ()
        out.append(((*where, "guardrails", *blamed), f"{msg} (after merging with {source})"))
    return base, out


def _sku_price_problems(
    sku: SkuConfig, g: Guardrails, where: tuple[str | int, ...], currency: str
) -> list[Problem]:
    # Money compares in the SKU currency's minor unit (pricing.money): a list price of
    # 50.0 respects a ceiling of 49.99999999999999, both being 5,000 cents.
    digits = minor_units(currency)

    def below(a: float, b: float) -> bool:
        return compare_money(a, b, digits=digits) < 0

    out: list[Problem] = []
    if g.floor is not None and below(sku.list_price, g.floor):
        out.append(
            (
                (*where, "list_price"),
                f"list price {sku.list_price:g} is below the effective floor {g.floor:g}: "
                "the list price is served before any surface, so it must respect the guardrails",
            )
        )
    if g.ceiling is not None and below(g.ceiling, sku.list_price):
        out.append(
            (
                (*where, "list_price"),
                f"list price {sku.list_price:g} is above the effective ceiling {g.ceiling:g}: "
                "the list price is served before any surface, so it must respect the guardrails",
            )
        )
    if not g.allow_below_cost:
        if below(sku.list_price, sku.unit_cost):
            out.append(
                (
                    (*where, "list_price"),
                    f"list price {sku.list_price:g} is below unit cost {sku.unit_cost:g}: "
                    "raise it or set guardrails.allow_below_cost: true",
                )
            )
        if g.ceiling is not None and below(g.ceiling, sku.unit_cost):
            out.append(
                (
                    (*where, "unit_cost"),
                    f"unit cost {sku.unit_cost:g} is above the effective ceiling {g.ceiling:g}: "
                    "no price is allowed; raise the ceiling or set guardrails.allow_below_cost",
                )
            )
    return out


def _drop_problems(bundle: ConfigBundle, drop: DropConfig) -> list[Problem]:
    out: list[Problem] = []
    categories = bundle.categories.categories
    known_markets = bundle.defaults.markets
    if known_markets:
        for k, market in enumerate(drop.markets):
            if market not in known_markets:
                out.append(
                    (
                        ("markets", k),
                        f"unknown market {market!r}, allowed {sorted(known_markets)} "
                        "(defaults.yaml markets)",
                    )
                )
    drop_g, problems = merge_problems(
        bundle.defaults.guardrails, drop.guardrails, (), "defaults.yaml guardrails"
    )
    out += problems
    arm_g: dict[str, tuple[int, Guardrails]] = {}
    for a, arm in enumerate(drop.arms):
        g, problems = merge_problems(drop_g, arm.guardrails, ("arms", a), "the drop's guardrails")
        out += problems
        for market in arm.markets:
            arm_g[market] = (a, g)
    for i, sku in enumerate(drop.skus):
        where: tuple[str | int, ...] = ("skus", i)
        if categories and sku.category not in categories:
            out.append(
                (
                    (*where, "category"),
                    f"unknown category {sku.category!r}, allowed {sorted(categories)} "
                    "(categories.yaml)",
                )
            )
        currency = bundle.currency_for(sku)
        for market in sku.inventory:
            want = known_markets[market].currency if market in known_markets else None
            if want is not None and want != currency:
                out.append(
                    (
                        (*where, "currency"),
                        f"currency {currency} does not match market {market!r} currency "
                        f"{want} (defaults.yaml markets)",
                    )
                )
        # One effective guardrail set per distinct context the SKU sells in.
        contexts: dict[int, Guardrails] = {-1: drop_g}
        for market in sku.inventory:
            if market in arm_g:
                contexts[arm_g[market][0]] = arm_g[market][1]
        reported: set[str] = set()
        for ctx, base in contexts.items():
            source = "the drop's guardrails" if ctx < 0 else f"arm {drop.arms[ctx].name!r}"
            g, problems = merge_problems(base, sku.guardrails, where, source)
            for p in problems:
                if p[1] not in reported:
                    out.append(p)
                    reported.add(p[1])
            if problems:
                continue
            if sku.guardrails is not None:
                g = base.merged(sku.guardrails)
            for p in _sku_price_problems(sku, g, where, currency):
                if p[1] not in reported:
                    out.append(p)
                    reported.add(p[1])
    return out


def bundle_problems(
    bundle: ConfigBundle, *, file_stems: dict[str, str] | None = None
) -> list[BundleProblem]:
    """Every cross-file problem of ``bundle``.

    Args:
        bundle: defaults, categories and drops, each already valid on its own.
        file_stems: drop id -> the stem of the file it came from, to check that each
            drop file is named after its id (skipped for drops given without a file).

    Returns:
        The problems in file order; empty when the bundle can go live.

    Example:
        >>> bundle_problems(ConfigBundle())
        []
    """
    out: list[BundleProblem] = []
    first_by_id: dict[str, int] = {}
    for n, drop in enumerate(bundle.drops):
        part = _drop_part(drop)
        if drop.id in first_by_id:
            out.append(
                BundleProblem(part, ("id",), f"duplicate drop id {drop.id!r}: ids must be unique")
            )
        else:
            first_by_id[drop.id] = n
        stem = (file_stems or {}).get(drop.id)
        if stem is not None and stem != drop.id:
            out.append(
                BundleProblem(
                    part,
                    ("id",),
                    f"drop id {drop.id!r} does not match its file name {stem!r}.yaml: "
                    f"rename the file to {drop.id}.yaml or set id: {stem}",
                )
            )
        for path, msg in _drop_problems(bundle, drop):
            out.append(BundleProblem(part, path, msg))
    out += _overlap_problems(bundle.drops)
    return out


def _overlap_problems(drops: Iterable[DropConfig]) -> list[BundleProblem]:
    out: list[BundleProblem] = []
    by_sku: dict[str, list[tuple[DropConfig, int]]] = {}
    for drop in drops:
        for i, sku in enumerate(drop.skus):
            by_sku.setdefault(sku.sku, []).append((drop, i))
    for sku_code, hits in by_sku.items():
        for j, (drop, i) in enumerate(hits):
            for other, _ in hits[:j]:
                if other.id != drop.id and drop.overlaps(other):
                    out.append(
                        BundleProblem(
                            _drop_part(drop),
                            ("skus", i, "sku"),
                            f"SKU {sku_code!r} is also sold by drop {other.id!r} whose windows "
                            "overlap this drop's: a SKU may be in only one drop at a time",
                        )
                    )
                    break
    return out
