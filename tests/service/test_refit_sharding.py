"""Several devices: the re-fit shards fit and solve along the SKU axis.

Runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` so
this CPU shows JAX two devices (the flag must be set before JAX starts).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from refit_factories import (
    ELASTIC,
    MARKET,
    as_records,
    day_of_events,
    seed_store,
    worker_env,
    write_configs,
)

from service.store import PriceStore

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from service.config.loader import load_config_dir
    from pricing.sharding import solve_sharded
    from service.refit import Refitter, select_devices
    from service.store import PriceStore, connect

    url, config_dir = sys.argv[1], sys.argv[2]
    devices = select_devices("cpu")
    rng = np.random.default_rng(0)
    s = 7
    rates = rng.uniform(0.05, 4.0, (s, 5, 4))
    prices = np.sort(rng.uniform(5.0, 20.0, (s, 4)), axis=1)
    inv = rng.integers(1, 12, s)
    zeros = np.zeros(s)
    two = solve_sharded(rates, prices, inv, zeros, zeros, devices)
    one = solve_sharded(rates, prices, inv, zeros, zeros, devices[:1])
    same = all(np.allclose(one[i, : inv[i] + 1], two[i, : inv[i] + 1]) for i in range(s))
    store = PriceStore(connect(url, timeout=30.0))
    record = Refitter(store, load_config_dir(config_dir), device="cpu").run()
    prices_now = {k: float(store.get_surface(k, "m1")[1].price[-1, 0])
                  for k in json.loads(sys.argv[3])}
    print(json.dumps({"devices": len(devices), "same": same, "state": record.state,
                      "device": record.device, "reasons": record.reasons,
                      "prices": prices_now}))
    """
)


pytestmark = pytest.mark.usefixtures("compile_cache")


def test_two_devices_shard_fit_and_solve(
    store: PriceStore, redis_url: str, tmp_path: Path, compile_cache: Path
) -> None:
    # Twelve SKUs: two blocks of six, the shapes the single-device tests compile.
    drop = write_configs(tmp_path / "configs", 12)
    seed_store(store, drop)
    store.record_events(as_records(day_of_events(drop), drop.list_price))
    for s in drop.skus:
        store.set_inventory(s, MARKET, drop.inventory)
    env = worker_env(compile_cache, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, redis_url, str(drop.config_dir), json.dumps(drop.skus)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["same"] is True  # the sharded solve equals the single-device one
    assert result["state"] == "published", result["reasons"]
    assert "2 devices, SKU-sharded" in result["device"]
    # Every SKU got a surface from its block's fit. The strongly elastic ones (true
    # elasticity -3.5) are identified by any block and priced below list; the weakly
    # elastic ones are left to the single-device tests, because a block of six SKUs
    # estimates its own daily profile, which moves their noisier estimates.
    assert set(result["prices"]) == set(drop.skus)
    for sku, price in result["prices"].items():
        if drop.elasticity[sku] == ELASTIC:
            assert price < drop.list_price[sku], (sku, price)
