"""The stores themselves: atomic reserve, settle applied once, window buckets that expire, reservations
that expire, URLs. SQLite on a temporary file; Redis the real redis-server."""

from __future__ import annotations

import time

import pytest

from otel_tokens._internal.budgets.store import BUCKETS, RedisStore, Settle, SQLiteStore, open_store

KEY = "workflow:research"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'spend.db'}")
    else:
        opened = open_store(request.getfixturevalue("redis_url"))
    yield opened
    opened.close()


def test_reserve_is_all_or_nothing_and_settle_replaces_it(store) -> None:
    items = [(KEY, None, 1.0), ("total:all", 3600, 0.5)]
    assert store.reserve(items, 0.3, "r1", 60) == (-1, [0.0, 0.0], [0.0, 0.0])
    # The second item would pass its limit (0.3 reserved + 0.3 > 0.5): nothing is reserved anywhere.
    assert store.reserve(items, 0.3, "r2", 60) == (1, [0.0, 0.0], [0.3, 0.3])
    assert store.reserve([(KEY, None, 1.0)], 0.7, "r3", 60) == (-1, [0.0], [0.3])
    spent = store.settle([Settle("e1", ((KEY, None), ("total:all", 3600)), 0.125, "r1")],
                         [(KEY, None), ("total:all", 3600)])
    assert spent == {KEY: 0.125, "total:all": 0.125}
    # r1 is gone, r3 (0.7) remains.
    assert store.reserve([(KEY, None, 1.0)], 0.2, "r4", 60) == (0, [0.125], [0.7])


def test_a_settle_is_applied_once(store) -> None:
    entry = Settle("same-id", ((KEY, None),), 0.0625)
    store.settle([entry], [])
    store.settle([entry, entry], [])  # a retry after a lost reply
    assert store.settle([], [(KEY, None)]) == {KEY: 0.0625}


def test_costs_sum_exactly(store) -> None:
    costs = [1.7e-06, 3.3e-06, 2.05e-05, 9.99e-07] * 25
    for index, cost in enumerate(costs):
        store.settle([Settle(f"e{index}", ((KEY, None), (KEY, 60)), cost)], [])
    spent = store.settle([], [(KEY, None), (KEY, 60)])
    assert abs(spent[KEY] - sum(costs)) <= 1e-15


def test_reservations_of_a_dead_worker_expire(store) -> None:
    assert store.reserve([(KEY, None, 1.0)], 0.75, "dead", 0.5)[0] == -1
    assert store.reserve([(KEY, None, 1.0)], 0.5, "next", 0.5)[0] == 0
    time.sleep(0.6)
    assert store.reserve([(KEY, None, 1.0)], 0.5, "next", 60) == (-1, [0.0], [0.0])


def test_sqlite_window_buckets_expire_one_bucket_late_never_early(tmp_path) -> None:
    clock = Clock()
    store = SQLiteStore(str(tmp_path / "spend.db"), clock=clock)
    window = 3600
    store.settle([Settle("a", ((KEY, window),), 0.5)], [])
    clock.now += window - 1
    assert store.settle([], [(KEY, window)]) == {KEY: 0.5}
    clock.now += 1 + window / BUCKETS
    assert store.settle([], [(KEY, window)]) == {KEY: 0.0}
    store.close()


def test_redis_window_buckets_live_on_the_server_and_expire(redis_url, redis_server) -> None:
    store = open_store(redis_url)
    store.settle([Settle("a", ((KEY, 1),), 0.5), Settle("b", ((KEY, None),), 0.25)], [])
    client = redis_server.client()
    buckets = [name for name in client.keys("otel_tokens:budget:*") if name.rsplit(":", 2)[-2] == "1"]
    assert len(buckets) == 1 and 0 < client.ttl(buckets[0]) <= 62
    assert client.ttl(f"otel_tokens:budget:{{{KEY}}}:spent") == -1  # lifetime spend never expires
    assert store.settle([], [(KEY, 1)]) == {KEY: 0.5}
    time.sleep(1.1)  # a 1 s window: gone one bucket (1/60 s) after it passed
    assert store.settle([], [(KEY, 1)]) == {KEY: 0.0}
    assert store.settle([], [(KEY, None)]) == {KEY: 0.25}
    store.close()


def test_store_urls(tmp_path) -> None:
    sqlite = open_store(f"sqlite:///{tmp_path}/spend.db?reservation_ttl=30")
    assert isinstance(sqlite, SQLiteStore) and sqlite.reservation_ttl_s == 30.0
    assert sqlite.description == f"sqlite://{tmp_path}/spend.db" and sqlite.path == f"{tmp_path}/spend.db"
    assert open_store("sqlite:///./spend.db").path == "./spend.db"
    redis = open_store("redis://:s3cret@127.0.0.1:1/2?reservation_ttl=5")
    assert isinstance(redis, RedisStore) and redis.reservation_ttl_s == 5.0
    assert redis.description == "redis://127.0.0.1:1/2" and "s3cret" not in redis.description
    assert open_store("rediss://cache.internal:6380/0").description == "rediss://cache.internal:6380/0"
    for bad, problem in (("memory", "is not a URL"), ("mysql://x/y", "unknown scheme"),
                         ("sqlite://relative.db", "expected sqlite:///"),
                         ("redis://h:1/0?reservation_ttl=0", "reservation_ttl must be a positive")):
        with pytest.raises(ValueError, match=problem):
            open_store(bad)


def test_redis_with_a_password(make_redis) -> None:
    server = make_redis("--requirepass", "s3cret-pw")
    store = open_store(f"redis://:s3cret-pw@127.0.0.1:{server.port}/3")
    store.settle([Settle("a", ((KEY, None),), 0.5)], [])
    assert store.settle([], [(KEY, None)]) == {KEY: 0.5}
    assert "s3cret" not in store.description
    store.close()
    wrong = open_store(f"redis://:wrong@127.0.0.1:{server.port}/3")
    with pytest.raises(Exception, match="(?i)auth|password"):
        wrong.settle([], [(KEY, None)])
    wrong.close()
