"""The drop a load test seeds for itself, and the manifest the locustfile reads.

A load test must not run against a real drop's stock, and it must sell out for the
books to mean anything: so each run creates its own drop, with SKU codes unique to
the run (``LT<run>-0001`` ...), a window open now, and inventory small enough that
the popular SKUs sell out during the run while the long tail does not.

Popularity is Zipf-like (a few SKUs take most checkouts, as in any drop): SKU ``i``
(0-based, most popular first) is picked with probability

    w_i = (i + 1)^(-s) / sum_j (j + 1)^(-s)

with ``s = 1.1`` by default. Markets (stores) get uneven traffic too, with a milder
exponent (``0.6``), so a small store and a flagship both appear.

The drop is written as an ordinary config folder (``defaults.yaml``,
``categories.yaml``, ``drops/<id>.yaml``), validated with the same pydantic models
the service loads, and handed to ``dropprice serve --config-dir``. The manifest
(JSON) tells the locustfile which SKUs and markets to hit, with which API key, and
where to write its sales ledger.

Example:
    >>> drop = make_load_drop("demo", n_skus=3, markets=("m1",), inventory=5)
    >>> drop.skus
    ('LTdemo-0001', 'LTdemo-0002', 'LTdemo-0003')
    >>> round(sum(zipf_weights(3, 1.1)), 6)
    1.0
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import yaml

__all__ = [
    "LoadDrop",
    "Manifest",
    "make_load_drop",
    "write_config_dir",
    "zipf_weights",
]

CATEGORY = "loadtest"


def zipf_weights(n: int, s: float) -> list[float]:
    """Normalised Zipf weights ``(i + 1)^(-s)`` for ranks ``0..n-1`` (most popular first).

    Raises:
        ValueError: ``n < 1`` or ``s < 0``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not s >= 0:
        raise ValueError(f"Zipf exponent s must be >= 0, got {s}")
    raw = [(i + 1) ** -s for i in range(n)]
    total = sum(raw)
    return [w / total for w in raw]


class LoadDrop(NamedTuple):
    """A drop created for one load-test run."""

    drop_id: str
    skus: tuple[str, ...]
    """SKU codes, most popular first."""
    markets: tuple[str, ...]
    """Markets, busiest first."""
    inventory: int
    """Units per SKU and market at the start."""
    list_prices: tuple[float, ...]
    """List price per SKU (same order as ``skus``)."""
    window_start: datetime
    window_end: datetime
    category: str = CATEGORY
    """Category of every SKU (its elasticity prior); must exist in the service's config."""
    currency: str | None = None
    """Currency of every SKU; ``None``: the config's default currency."""

    def config(self) -> dict[str, Any]:
        """The ``drops/<id>.yaml`` document."""
        return {
            "id": self.drop_id,
            "name": f"Load test {self.drop_id}",
            "markets": list(self.markets),
            "windows": [
                {"start": self.window_start.isoformat(), "end": self.window_end.isoformat()}
            ],
            "period_minutes": 10,
            "objective": "revenue",
            "guardrails": {"floor": 1.0, "ceiling": 500.0},
            "skus": [
                {
                    "sku": sku,
                    "name": f"Load-test item {i + 1}",
                    "category": self.category,
                    "list_price": price,
                    **({"currency": self.currency} if self.currency else {}),
                    "unit_cost": round(price * 0.3, 2),
                    "inventory": {m: self.inventory for m in self.markets},
                }
                for i, (sku, price) in enumerate(zip(self.skus, self.list_prices, strict=True))
            ],
        }


def make_load_drop(
    run_id: str,
    *,
    n_skus: int = 40,
    markets: tuple[str, ...] = ("lt-flagship", "lt-mall", "lt-popup"),
    inventory: int = 10,
    now: datetime | None = None,
    window_hours: float = 6.0,
    category: str = CATEGORY,
    currency: str | None = None,
) -> LoadDrop:
    """A drop of ``n_skus`` SKUs x ``markets`` with ``inventory`` units each, open now.

    Raises:
        ValueError: a size is out of range.
    """
    if not 1 <= n_skus <= 9999:
        raise ValueError(f"n_skus must be in [1, 9999], got {n_skus}")
    if not markets:
        raise ValueError("markets must name at least one market, got none")
    if inventory < 0:
        raise ValueError(f"inventory must be >= 0 units, got {inventory}")
    now = now or datetime.now(UTC)
    skus = tuple(f"LT{run_id}-{i + 1:04d}" for i in range(n_skus))
    # Popular items are the expensive variants, the tail is cheaper merch.
    prices = tuple(round(max(5.0, 60.0 / (1 + 0.15 * i)), 2) for i in range(n_skus))
    return LoadDrop(
        drop_id=f"loadtest-{run_id}",
        skus=skus,
        markets=tuple(markets),
        inventory=inventory,
        list_prices=prices,
        window_start=(now - timedelta(minutes=5)).replace(microsecond=0),
        window_end=(now + timedelta(hours=window_hours)).replace(microsecond=0),
        category=category,
        currency=currency,
    )


def write_config_dir(drop: LoadDrop, config_dir: Path) -> Path:
    """Write a complete, validated config folder for ``drop`` under ``config_dir``.

    Returns:
        The path of the drop's YAML file.

    Raises:
        service.exceptions.ConfigError: the generated config does not validate
            (a bug here, never the user's input).
    """
    from service.config.loader import load_config_dir

    config_dir = Path(config_dir)
    (config_dir / "drops").mkdir(parents=True, exist_ok=True)
    (config_dir / "defaults.yaml").write_text(
        yaml.safe_dump({"currency": "USD", "quote_ttl_seconds": 120, "keep_versions": 5})
    )
    (config_dir / "categories.yaml").write_text(
        yaml.safe_dump(
            {"categories": {CATEGORY: {"mean": -1.5, "sd": 0.5, "allowed_range": [-5.0, -0.1]}}}
        )
    )
    path = config_dir / "drops" / f"{drop.drop_id}.yaml"
    path.write_text(yaml.safe_dump(drop.config(), sort_keys=False))
    load_config_dir(config_dir)  # raises ConfigError with every problem listed
    return path


class Manifest(NamedTuple):
    """What the locustfile needs to know about the run (written as JSON)."""

    run_id: str
    api_key: str
    skus: tuple[str, ...]
    """SKU codes, most popular first (Zipf rank order)."""
    markets: tuple[str, ...]
    """Markets, busiest first."""
    ledger_dir: str
    """Folder where each locust process writes ``ledger-<pid>.jsonl``."""
    zipf_s: float = 1.1
    market_zipf_s: float = 0.6

    def dump(self, path: Path) -> Path:
        data = self._asdict()
        data["skus"] = list(self.skus)
        data["markets"] = list(self.markets)
        Path(path).write_text(json.dumps(data, indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest file.

        Raises:
            ValueError: the file is not a manifest (names the missing fields).
        """
        data = json.loads(Path(path).read_text())
        missing = sorted({"run_id", "api_key", "skus", "markets", "ledger_dir"} - set(data))
        if missing:
            raise ValueError(f"{path}: not a load-test manifest, missing fields {missing}")
        data["skus"] = tuple(data["skus"])
        data["markets"] = tuple(data["markets"])
        return cls(**{k: v for k, v in data.items() if k in cls._fields})
