"""The embedded redis-server and the test cluster are real and persistent."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from service.embedded import RedisCluster, RedisServer, find_redis_server
from service.store import ClusterClient


def test_find_redis_server_returns_an_executable() -> None:
    assert find_redis_server().endswith("redis-server")


def test_append_only_data_survives_a_crash(tmp_path) -> None:
    server = RedisServer(data_dir=tmp_path, appendonly=True).start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("dp:{A}:inv:nyc", 7)
        client.execute_command("BGREWRITEAOF")
        client.incrby("dp:{A}:inv:nyc", -2)
        # A SIGKILL loses what is not yet written to the AOF (fsync only guards against a
        # power cut): wait, however loaded the machine, until the rewrite is done and the
        # AOF buffer is written out, rather than sleeping a fixed time.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            aof = client.info("persistence")
            # (Redis 7 has no rewrite buffer: missing fields count as empty.)
            pending = ("aof_buffer_length", "aof_rewrite_buffer_length", "aof_rewrite_in_progress")
            if not any(aof.get(k, 0) for k in (*pending, "aof_rewrite_scheduled")):
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"the AOF was not written out within 60 s: {aof}")
        client.close()
        server.kill()
        server.start()
        client = redis.Redis.from_url(server.url)
        assert int(client.get("dp:{A}:inv:nyc")) == 5
        client.close()
    finally:
        server.stop(keep_data=True)


def test_cluster_routes_hash_tagged_keys_to_one_node(redis_cluster: RedisCluster) -> None:
    client = ClusterClient(host=redis_cluster.host, port=redis_cluster.nodes[0].port)
    try:
        client.set("dp:{sku-1}:inv:a", 1)
        client.set("dp:{sku-1}:inv:b", 2)
        assert client.keyslot("dp:{sku-1}:inv:a") == client.keyslot("dp:{sku-1}:inv:b")
        assert client.mget_nonatomic(["dp:{sku-1}:inv:a", "dp:{sku-1}:inv:b"]) == [b"1", b"2"]
        assert len(client.get_primaries()) == 3
    finally:
        client.close()


def test_stable_port_is_the_same_for_a_folder_however_it_is_named(tmp_path, monkeypatch) -> None:
    from service.embedded import STABLE_PORTS, stable_port

    monkeypatch.chdir(tmp_path)
    relative = stable_port(Path(".dropprice/redis"))
    assert relative == stable_port(tmp_path / ".dropprice" / "redis")
    assert relative in STABLE_PORTS
    assert (
        stable_port(tmp_path / "other") != relative or stable_port(tmp_path / "third") != relative
    )


def test_relative_data_dir_starts(tmp_path, monkeypatch) -> None:
    """redis-server changes into its folder: a relative one must still work."""
    monkeypatch.chdir(tmp_path)
    server = RedisServer(data_dir=Path("rel/redis"), appendonly=True).start()
    try:
        assert server.data_dir == tmp_path / "rel" / "redis"
        assert (tmp_path / "rel" / "redis" / "redis.log").exists()
    finally:
        server.stop(keep_data=True)


def test_redact_url_hides_the_password_only() -> None:
    from service.embedded import redact_url

    assert redact_url("redis://:s3cret@127.0.0.1:23139/0") == "redis://:***@127.0.0.1:23139/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
