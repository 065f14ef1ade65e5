"""Config versions, the live pointer, hot reload and the audit log on real Redis
(each test runs on a single node and on a 3-master cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.audit import read_audit, record_audit
from service.config.live import LiveConfig
from service.config.loader import load_config_dir, load_paths
from service.config.models import ConfigBundle, DropConfig
from service.config.versions import ConfigStore
from service.exceptions import ConfigConflict, ConfigError
from service.store import PriceStore, connect
from tests.config.conftest import WriteTree


@pytest.fixture
def client(any_redis_url: str) -> Iterator[Any]:
    c = connect(any_redis_url, timeout=5.0)
    yield c
    c.close()


def _with_price(bundle: ConfigBundle, sku: str, price: float) -> ConfigBundle:
    drop, cfg = bundle.find_sku(sku)  # type: ignore[misc]
    skus = tuple(
        s.model_copy(update={"list_price": price}) if s.sku == sku else s for s in drop.skus
    )
    return bundle.with_drops([drop.model_copy(update={"skus": skus})])


def test_apply_versions_pointer_diff_and_noop(client: Any, write_tree: WriteTree) -> None:
    store = ConfigStore(client)
    assert store.live() is None and store.live_version() is None
    bundle = load_config_dir(write_tree())
    first = store.apply(bundle, actor="alice", expect_version=0)
    assert (first.version, first.changed) == (1, True)
    assert "+ drops[ny-popup]: drop with 3 SKUs in 2 markets" in [str(c) for c in first.changes]
    live = store.live()
    assert live is not None and live.bundle == bundle and live.actor == "alice" and live.base == 0

    second = store.apply(_with_price(bundle, "A-2", 27.5), actor="bob", expect_version=1)
    assert second.version == 2
    assert [str(c) for c in second.changes] == [
        "~ drops[ny-popup].skus[A-2].list_price: 25.0 -> 27.5"
    ]
    assert store.live_version() == 2 and store.get(2).base == 1  # type: ignore[union-attr]
    assert [v.version for v in store.list_versions()] == [2, 1]

    same = store.apply(_with_price(bundle, "A-2", 27.5), actor="bob")
    assert (same.version, same.changed, same.audit_id) == (2, False, None)


def test_apply_refuses_a_stale_expected_version(client: Any, write_tree: WriteTree) -> None:
    store = ConfigStore(client)
    bundle = load_config_dir(write_tree())
    store.apply(bundle, actor="alice", expect_version=0)
    with pytest.raises(ConfigConflict) as info:
        store.apply(_with_price(bundle, "A-1", 30.0), actor="eve", expect_version=0)
    assert (info.value.expected, info.value.live) == (0, 1)
    assert store.live_version() == 1


def test_apply_refuses_a_bundle_that_breaks_a_cross_file_rule(
    client: Any, write_tree: WriteTree
) -> None:
    store = ConfigStore(client)
    bundle = load_config_dir(write_tree())
    bad = _with_price(bundle, "A-1", 99.0)  # above the drop's ceiling of 60
    with pytest.raises(ConfigError, match=r"skus\[0\].list_price: list price 99"):
        store.apply(bad, actor="eve")
    assert store.live_version() is None


def test_rollback_restores_an_earlier_version_as_a_new_one(
    client: Any, write_tree: WriteTree
) -> None:
    store = ConfigStore(client)
    bundle = load_config_dir(write_tree())
    store.apply(bundle, actor="alice")
    store.apply(_with_price(bundle, "A-1", 30.0), actor="bob")
    back = store.rollback(actor="carol")
    assert back.version == 3 and store.live().bundle == bundle  # type: ignore[union-attr]
    assert [str(c) for c in back.changes] == [
        "~ drops[ny-popup].skus[A-1].list_price: 30.0 -> 20.0"
    ]
    kinds = [r.kind for r in read_audit(client)]
    assert kinds == ["config.apply", "config.apply", "config.rollback"]
    with pytest.raises(ConfigError, match="not kept"):
        store.rollback(actor="carol", to_version=42)


def test_old_versions_are_evicted_beyond_keep(client: Any, write_tree: WriteTree) -> None:
    store = ConfigStore(client, keep=3)
    bundle = load_config_dir(write_tree())
    for i in range(5):
        store.apply(_with_price(bundle, "A-1", 20.0 + i), actor="x")
    assert [v.version for v in store.list_versions()] == [5, 4, 3]
    assert store.get(1) is None and store.get(5) is not None


def test_apply_registers_the_catalog_and_seeds_only_new_counters(
    client: Any, write_tree: WriteTree
) -> None:
    prices = PriceStore(client)
    prices.seed_inventory("A-1", "nyc", 3)  # a live counter: sales already moved it
    store = ConfigStore(client)
    store.apply(load_config_dir(write_tree()), actor="alice")
    assert prices.get_inventory("A-1", "nyc") == 3
    assert prices.get_inventory("A-2", "jersey-city") == 5
    meta = prices.catalog(["A-3"])["A-3"]
    assert (meta.list_price, meta.drop_id, meta.markets) == (10.0, "ny-popup", ("jersey-city",))
    # A new market for A-3 and a new price: the entry is rewritten, the new pair seeded,
    # the live counters untouched.
    bundle = load_config_dir(write_tree())
    drop, a3 = bundle.find_sku("A-3")  # type: ignore[misc]
    a3 = a3.model_copy(update={"list_price": 11.0, "inventory": {"jersey-city": 50, "nyc": 4}})
    prices.set_inventory("A-3", "jersey-city", 17)
    skus = tuple(a3 if s.sku == "A-3" else s for s in drop.skus)
    assert store.apply(
        bundle.with_drops([drop.model_copy(update={"skus": skus})]), actor="b"
    ).changed
    meta = prices.catalog(["A-3"])["A-3"]
    assert (meta.list_price, meta.markets) == (11.0, ("jersey-city", "nyc"))
    assert prices.get_inventory("A-3", "nyc") == 4
    assert prices.get_inventory("A-3", "jersey-city") == 17
    assert prices.get_inventory("A-1", "nyc") == 3


def test_live_config_reloads_on_apply_without_restart(client: Any, write_tree: WriteTree) -> None:
    files = load_config_dir(write_tree())
    seen: list[int | None] = []
    live = LiveConfig(client, fallback=files, poll_seconds=30.0)  # reload must come by pub/sub
    live.on_change(lambda bundle, version: seen.append(version))
    live.start()
    try:
        assert live.version is None and live.bundle == files
        store = ConfigStore(client)
        applied = store.apply(_with_price(files, "A-3", 11.0), actor="alice")
        assert live.wait_for(applied.version, timeout=10.0)
        found = live.bundle.find_sku("A-3")
        assert found is not None and found[1].list_price == 11.0
        assert seen == [applied.version]
    finally:
        live.stop()


def test_a_failing_listener_keeps_the_old_version_until_it_succeeds(
    client: Any, write_tree: WriteTree
) -> None:
    files = load_config_dir(write_tree())
    ok = {"now": False}

    def listener(bundle: ConfigBundle, version: int | None) -> None:
        if not ok["now"]:
            raise RuntimeError("redis went away while re-seeding")

    live = LiveConfig(client, fallback=files)
    live.on_change(listener)
    ConfigStore(client).apply(_with_price(files, "A-3", 11.0), actor="alice")
    assert live.refresh() is False and live.version is None
    ok["now"] = True
    assert live.refresh() is True and live.version == 1


def test_audit_is_append_only_ordered_and_filterable(client: Any) -> None:
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    ids = [
        record_audit(client, "surface.publish", "worker-1", {"version": "v1"}),
        record_audit(client, "refit.approve", "ops:alice", {"approval": "a1"}),
        record_audit(client, "surface.rollback", "ops:bob", {"to": "v1"}),
    ]
    records = read_audit(client, since=t0)
    assert [r.id for r in records] == ids
    assert records[1].actor == "ops:alice" and records[1].detail == {"approval": "a1"}
    assert all(r.at >= t0 for r in records)
    assert [r.id for r in read_audit(client, since=ids[0])] == ids[1:]
    assert [r.kind for r in read_audit(client, kind="surface")] == [
        "surface.publish",
        "surface.rollback",
    ]
    assert [r.id for r in read_audit(client, limit=2)] == ids[:2]
    for bad in ("Config Apply", "", "config."):
        with pytest.raises(ValueError, match="dotted lower case"):
            record_audit(client, bad, "x", {})
    with pytest.raises(ValueError, match="actor"):
        record_audit(client, "config.apply", " ", {})
    with pytest.raises(ValueError, match="since"):
        read_audit(client, since="last tuesday")
    assert len(read_audit(client)) == 3  # refused records were never written


def test_apply_of_a_single_drop_file_merges_into_the_live_config(
    client: Any, write_tree: WriteTree, tmp_path: Path
) -> None:
    root = write_tree()
    store = ConfigStore(client)
    live = store.apply(load_config_dir(root), actor="alice")
    extra = tmp_path / "pop.yaml"
    extra.write_text(
        "id: pop\nmarkets: [nyc]\nwindows:\n"
        '  - {start: "2026-12-20T10:00:00-05:00", end: "2026-12-20T12:00:00-05:00"}\n'
        "skus:\n  - {sku: P-1, category: snacks, list_price: 4.0, inventory: {nyc: 9}}\n"
    )
    current = store.live()
    assert current is not None
    result = load_paths([extra], base=current.bundle)
    assert result.ok, [str(i) for i in result.issues]
    assert result.bundle is not None
    assert [d.id for d in result.bundle.drops] == ["ny-popup", "pop"]
    applied = store.apply(result.bundle, actor="bob", expect_version=live.version)
    assert [str(c) for c in applied.changes] == ["+ drops[pop]: drop with 1 SKUs in 1 markets"]
    assert isinstance(store.live().bundle.drop("pop"), DropConfig)  # type: ignore[union-attr]


def test_a_stored_version_keeps_the_guardrails_each_level_inherits(
    client: Any, write_tree: WriteTree
) -> None:
    # defaults set max_change_pct 25, the drop sets floor and ceiling only: read back
    # from Redis, every SKU still inherits the defaults' max_change_pct.
    files = load_config_dir(write_tree())
    ConfigStore(client).apply(files, actor="alice", expect_version=0)
    stored = ConfigStore(client).live()
    assert stored is not None
    for drop in files.drops:
        for sku in drop.skus:
            for market in drop.markets:
                rails = stored.bundle.guardrails_for(drop, sku, market)
                assert rails == files.guardrails_for(drop, sku, market)
                assert (rails.max_change_pct, rails.floor, rails.ceiling) == (25, 5.0, 60.0)


def test_live_config_seeds_an_empty_redis_once_then_ignores_the_files(
    client: Any, write_tree: WriteTree
) -> None:
    from service.config.versions import live_config

    root = write_tree()
    files = load_config_dir(root)
    assert live_config(client, None) is None  # nothing live, nothing to seed with
    seeded = live_config(client, root, actor="worker-1")
    assert seeded is not None and seeded.bundle == files
    assert (seeded.version, seeded.kind, seeded.actor) == (1, "config.seed", "worker-1")
    assert [r.kind for r in read_audit(client, kind="config")] == ["config.seed"]
    # Seeding registered the catalog the way an apply does.
    assert set(PriceStore(client).skus()) == {s.sku for d in files.drops for s in d.skus}

    changed = _with_price(files, "A-1", 21.0)
    ConfigStore(client).apply(changed, actor="alice", expect_version=1)
    # Once a version is live the files are not read (nor applied again).
    again = live_config(client, root)
    assert again is not None and again.version == 2 and again.bundle == changed
    assert live_config(client, None) == again


def test_live_config_refuses_invalid_seed_files(client: Any, tmp_path: Path) -> None:
    from service.config.versions import live_config

    (tmp_path / "defaults.yaml").write_text("currency: 12\nbogus: true\n")
    with pytest.raises(ConfigError):
        live_config(client, tmp_path)
    assert ConfigStore(client).live() is None


def test_cli_diff_apply_history_rollback(redis_url: str, write_tree: WriteTree) -> None:
    import json

    from typer.testing import CliRunner

    from service.cli import app

    runner = CliRunner()
    root = write_tree()
    url = ["--redis-url", redis_url]
    first = runner.invoke(app, ["config", "apply", str(root), *url, "--actor", "alice"])
    assert first.exit_code == 0 and "config version 1 is live" in first.output, first.output
    drop = root / "drops" / "ny-popup.yaml"
    drop.write_text(drop.read_text().replace("list_price: 25.0", "list_price: 26.0"))
    diff = runner.invoke(app, ["config", "diff", str(drop), *url])
    assert diff.exit_code == 0
    assert diff.output.splitlines() == [
        "against live config version 1:",
        "~ drops[ny-popup].skus[A-2].list_price: 25.0 -> 26.0",
    ]
    stale = runner.invoke(app, ["config", "apply", str(drop), *url, "--expect-version", "0"])
    assert stale.exit_code == 1 and "version 1 is live, expected 0" in stale.output
    applied = runner.invoke(app, ["config", "apply", str(drop), *url, "--note", "A-2 up"])
    assert applied.exit_code == 0 and "config version 2 is live" in applied.output
    history = runner.invoke(app, ["config", "history", *url])
    lines = history.output.splitlines()
    assert lines[0].split()[:3] == ["ver", "applied", "(UTC)"]  # a header
    assert lines[1].startswith("*    2") and "1 changed" in lines[1]
    assert lines[2].strip() == "note: A-2 up"  # the note given with apply
    assert lines[3].startswith("     1") and "alice" in lines[3]
    back = runner.invoke(app, ["config", "rollback", *url, "--actor", "carol"])
    assert back.exit_code == 0 and "config version 3 is live" in back.output
    assert "26.0 -> 25.0" in back.output
    # A broken file never reaches Redis: exit 1 with the file:line message.
    drop.write_text(drop.read_text().replace("list_price: 26.0", "list_price: 90.0"))
    refused = runner.invoke(app, ["config", "apply", str(drop), *url])
    assert refused.exit_code == 1
    assert "drops/ny-popup.yaml:16 skus[1].list_price: list price 90 is above" in refused.output
    # validate --format json for tools
    as_json = runner.invoke(app, ["config", "validate", str(root), "--format", "json"])
    body = json.loads(as_json.output)
    assert as_json.exit_code == 1 and body["ok"] is False
    assert body["errors"][0]["line"] == 16 and body["errors"][0]["path"] == "skus[1].list_price"
    schema = runner.invoke(app, ["config", "schema", "defaults"])
    assert schema.exit_code == 0 and json.loads(schema.output)["title"] == "Defaults"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["apply", "stale", "rollback"]), st.integers(15, 30)),
        min_size=1,
        max_size=8,
    )
)
def test_apply_script_invariants(
    redis_url: str, write_tree: WriteTree, ops: list[tuple[str, int]]
) -> None:
    """Whatever operators do: versions increase by one per change, the pointer names the
    last change, each version's base is the version before it, and the audit log has
    exactly one record per change."""
    client = connect(redis_url, timeout=5.0)
    client.flushall()
    store = ConfigStore(client)
    files = load_config_dir(write_tree())
    changes: list[tuple[int, int]] = []  # (version, base) of every accepted change
    for op, price in ops:
        live = store.live_version() or 0
        if op == "apply":
            result = store.apply(
                _with_price(files, "A-1", float(price)), actor="a", expect_version=live
            )
            if result.changed:
                changes.append((result.version, live))
        elif op == "stale" and live > 0:
            with pytest.raises(ConfigConflict):
                store.apply(
                    _with_price(files, "A-1", price + 0.5), actor="b", expect_version=live - 1
                )
        elif op == "rollback" and live > 0:
            current = store.get(live)
            assert current is not None
            if current.base:
                result = store.rollback(actor="c")
                changes.append((result.version, live))
    numbers = [v for v, _ in changes]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert store.live_version() == (numbers[-1] if numbers else None)
    for version, base in changes:
        got = store.get(version)
        assert got is not None and got.base == base
    audit = read_audit(client, kind="config", limit=1000)
    assert [r.detail["version"] for r in audit] == numbers
    client.close()
