"""Where budget spend lives when it must outlive the process or be shared: SQLite or Redis.

A store keeps, per budget key (``"agent:researcher"``), the settled spend in window buckets and the
reservations of blocking calls in flight. Both operations are atomic on the store side:

- ``reserve(items, projected, reservation_id, ttl_s)``: for every ``(key, window_s, limit)`` item, checks
  spent + reserved + projected <= limit; only if all pass, adds the reservation to every key.
- ``settle(entries, keys, samples)``: applies a batch of :class:`Settle` entries (each removes its
  reservation and adds its cost to its keys' current bucket, once: an entry id is applied at most once),
  appends ``samples`` (finished calls' output tokens, by history key) to the projection history, and
  returns the spent of ``keys``.
- ``history(keys)``: the stored output tokens of each history key, oldest first (at most
  :data:`HISTORY_SAMPLES`), for a process that projects a model it has not seen yet.
- ``claim_batch(key)``: True the first time a finished batch job (``openai:batch_abc``) is claimed, so
  the processes sharing the store count it once (``accounting.batches``); remembered for a year.

Windows are fixed buckets, ``window / BUCKETS`` wide, on the store's clock (Redis ``TIME``; SQLite the
host's wall clock); a cost leaves the window up to one bucket late, never early. A reservation whose
worker died mid-call expires after ``reservation_ttl`` seconds (default 300). A history key keeps its
last :data:`HISTORY_SAMPLES` counts and is dropped :data:`HISTORY_TTL_S` after its last sample.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from otel_tokens._internal.base.errors import ConfigError
from otel_tokens._internal.budgets.projection import SAMPLES

# Server-side buckets per window: a bucket is window / 60 wide (1 day -> 24 minutes).
BUCKETS: Final = 60
DEFAULT_RESERVATION_TTL_S: Final = 300.0
# How long an applied entry id is remembered, so a retry after a lost reply is not counted twice.
SETTLED_ID_TTL_S: Final = 3_600
# How long a finished batch's id is remembered: a batch still listed after that would count again.
BATCH_ID_TTL_S: Final = 366 * 86_400
_EPSILON_USD: Final = 1e-12
# The projection history per key: the last output counts a process's ring holds, kept 30 days after the
# last one, so models and agents no longer used leave the store.
HISTORY_SAMPLES: Final = SAMPLES
HISTORY_TTL_S: Final = 30 * 86_400

# (key, window seconds or None for the lifetime)
StoreKey = tuple[str, int | None]


@dataclass(frozen=True, slots=True)
class Settle:
    """One settled call (or a batch of warn-only costs): its cost goes to every key once."""

    entry_id: str
    keys: tuple[StoreKey, ...]
    cost: float
    reservation_id: str | None = None


class SpendStore(Protocol):
    kind: str
    description: str
    # True: warn-only settles may be batched in the background (a network store).
    batch_warn_settles: bool

    def reserve(
        self, items: list[tuple[str, int | None, float]], projected: float, reservation_id: str, ttl_s: float
    ) -> tuple[int, list[float], list[float]]:
        """(index of the first item that would pass its limit or -1, spent per item, reserved per item)."""

    def settle(
        self, entries: list[Settle], keys: list[StoreKey], samples: Sequence[tuple[str, int]] = ()
    ) -> dict[str, float]: ...

    def history(self, keys: list[str]) -> list[list[int]]: ...

    def claim_batch(self, key: str) -> bool:
        """True if no process claimed this finished batch before (atomic); raises if the store is down."""

    def close(self) -> None: ...


def _bucket(now: float, window_s: int) -> int:
    return math.floor(now * BUCKETS / window_s)


def open_store(url: str) -> SpendStore:
    """A store from ``sqlite:///abs/path/spend.db`` (``sqlite:///./spend.db``: relative) or ``redis://[:password@]host:port/db`` (``rediss://``
    for TLS). ``?reservation_ttl=SECONDS`` sets how long a dead worker's reservation holds. Raises
    ConfigError (a ValueError) for a URL that names no store we know."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store {url!r} is not a URL: use sqlite:///path/spend.db or redis://host:port/0")
    scheme = url.split("://", 1)[0].lower()
    parsed = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    ttl = query.pop("reservation_ttl", None)
    try:
        ttl_s = float(ttl) if ttl is not None else DEFAULT_RESERVATION_TTL_S
    except ValueError:
        ttl_s = -1.0
    if not math.isfinite(ttl_s) or ttl_s <= 0:
        raise ConfigError(f"store {_redacted(url)}: reservation_ttl must be a positive number of seconds")
    if scheme == "sqlite":
        path = urllib.parse.unquote(parsed.path)
        if parsed.netloc or not path or path == "/":
            raise ConfigError(f"store {url!r}: expected sqlite:///absolute/path/spend.db or sqlite:///./relative.db")
        if path.startswith("/./"):
            path = path[1:]  # sqlite:///./spend.db: relative to the working directory
        elif path.startswith("//"):
            path = "/" + path.lstrip("/")  # sqlite:////abs/spend.db, SQLAlchemy's spelling
        return SQLiteStore(path, reservation_ttl_s=ttl_s)
    if scheme in ("redis", "rediss"):
        rest = urllib.parse.urlencode(query)
        clean = urllib.parse.urlunsplit(parsed._replace(query=rest))
        return RedisStore(clean, reservation_ttl_s=ttl_s)
    raise ConfigError(f"store {_redacted(url)}: unknown scheme {scheme!r}; use sqlite:/// or redis://")


def _redacted(url: str) -> str:
    """The URL without its password or query, for logs and reports."""
    parsed = urllib.parse.urlsplit(url)
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc += f":{parsed.port}"
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, "", ""))


# -- SQLite ----------------------------------------------------------------------------------------
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spend (
    budget TEXT NOT NULL, window_s INTEGER NOT NULL, bucket INTEGER NOT NULL, cost REAL NOT NULL,
    PRIMARY KEY (budget, window_s, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT NOT NULL, budget TEXT NOT NULL, amount REAL NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (budget, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settled (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS settled_at ON settled (at);
CREATE TABLE IF NOT EXISTS batches (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outputs (key TEXT PRIMARY KEY, counts TEXT NOT NULL, at REAL NOT NULL) WITHOUT ROWID;
"""


class SQLiteStore:
    """Spend in one SQLite file (WAL), shared safely by the processes of one host.

    Every operation is one ``BEGIN IMMEDIATE`` transaction, so a process killed mid-call either
    committed its settle or did not; nothing is half-applied.
    """

    kind = "sqlite"
    batch_warn_settles = False

    def __init__(self, path: str, *, reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
                 timeout_s: float = 5.0, clock=time.time) -> None:
        self.path = path
        self.description = f"sqlite://{path}" if path.startswith("/") else f"sqlite:///{path}"
        self.reservation_ttl_s = reservation_ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._local = threading.local()
        self._next_history_prune = 0.0

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            return connection
        connection = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None,
                                     check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass

    def _transaction(self, body):
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = body(connection, self._clock())
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result
        except sqlite3.Error:
            # A file that vanished or a disk that failed: reconnect on the next try.
            self._drop_connection()
            raise

    @staticmethod
    def _spent(connection: sqlite3.Connection, key: str, window_s: int | None, now: float) -> float:
        if window_s is None:
            row = connection.execute(
                "SELECT cost FROM spend WHERE budget = ? AND window_s = 0 AND bucket = 0", (key,)
            ).fetchone()
            return row[0] if row else 0.0
        current = _bucket(now, window_s)
        row = connection.execute(
            "SELECT TOTAL(cost) FROM spend WHERE budget = ? AND window_s = ? AND bucket >= ?",
            (key, window_s, current - BUCKETS),
        ).fetchone()
        return row[0]

    @staticmethod
    def _reserved(connection: sqlite3.Connection, key: str, now: float) -> float:
        connection.execute("DELETE FROM reservations WHERE budget = ? AND expires <= ?", (key, now))
        return connection.execute("SELECT TOTAL(amount) FROM reservations WHERE budget = ?", (key,)).fetchone()[0]

    def reserve(
        self, items: list[tuple[str, int | None, float]], projected: float, reservation_id: str, ttl_s: float
    ) -> tuple[int, list[float], list[float]]:
        def body(connection: sqlite3.Connection, now: float) -> tuple[int, list[float], list[float]]:
            spent = [self._spent(connection, key, window_s, now) for key, window_s, _limit in items]
            reserved = [self._reserved(connection, key, now) for key, _window_s, _limit in items]
            for index, (_key, _window_s, limit) in enumerate(items):
                if spent[index] + reserved[index] + projected > limit + _EPSILON_USD:
                    return index, spent, reserved
            connection.executemany(
                "INSERT OR REPLACE INTO reservations (id, budget, amount, expires) VALUES (?, ?, ?, ?)",
                [(reservation_id, key, projected, now + ttl_s) for key, _window_s, _limit in items],
            )
            return -1, spent, reserved

        return self._transaction(body)

    def settle(
        self, entries: list[Settle], keys: list[StoreKey], samples: Sequence[tuple[str, int]] = ()
    ) -> dict[str, float]:
        def body(connection: sqlite3.Connection, now: float) -> dict[str, float]:
            if samples:
                self._add_samples(connection, samples, now)
            for entry in entries:
                if entry.reservation_id is not None:
                    connection.executemany(
                        "DELETE FROM reservations WHERE budget = ? AND id = ?",
                        [(key, entry.reservation_id) for key, _window_s in entry.keys],
                    )
                inserted = connection.execute(
                    "INSERT OR IGNORE INTO settled (id, at) VALUES (?, ?)", (entry.entry_id, now)
                ).rowcount
                if not inserted or not entry.cost:
                    continue
                connection.executemany(
                    "DELETE FROM spend WHERE budget = ? AND window_s = ? AND bucket < ?",
                    [(key, window_s, _bucket(now, window_s) - BUCKETS) for key, window_s in entry.keys if window_s],
                )
                connection.executemany(
                    "INSERT INTO spend (budget, window_s, bucket, cost) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (budget, window_s, bucket) DO UPDATE SET cost = cost + excluded.cost",
                    [(key, window_s or 0, _bucket(now, window_s) if window_s else 0, entry.cost)
                     for key, window_s in entry.keys],
                )
            if entries:
                connection.execute("DELETE FROM settled WHERE at < ?", (now - SETTLED_ID_TTL_S,))
            return {key: self._spent(connection, key, window_s, now) for key, window_s in keys}

        return self._transaction(body)

    def claim_batch(self, key: str) -> bool:
        def body(connection: sqlite3.Connection, now: float) -> bool:
            inserted = connection.execute("INSERT OR IGNORE INTO batches (key, at) VALUES (?, ?)", (key, now)).rowcount
            if inserted:  # rare (a batch finished): forget the ones past their time here
                connection.execute("DELETE FROM batches WHERE at < ?", (now - BATCH_ID_TTL_S,))
            return bool(inserted)

        return self._transaction(body)

    def _add_samples(self, connection: sqlite3.Connection, samples: Sequence[tuple[str, int]], now: float) -> None:
        # One row per key, its last HISTORY_SAMPLES counts as text: one page written per key, where a row per
        # count and the indexes to prune them cost three times the settle's own writes.
        added: dict[str, list[int]] = {}
        for key, tokens in samples:
            added.setdefault(key, []).append(tokens)
        rows = []
        for key, tokens in added.items():
            row = connection.execute("SELECT counts FROM outputs WHERE key = ?", (key,)).fetchone()
            counts = [*(_counts(row[0]) if row else ()), *tokens][-HISTORY_SAMPLES:]
            rows.append((key, " ".join(map(str, counts)), now))
        # An upsert, not INSERT OR REPLACE (a delete and an insert: twice the cost).
        connection.executemany(
            "INSERT INTO outputs (key, counts, at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET counts = excluded.counts, at = excluded.at", rows,
        )
        if now >= self._next_history_prune:  # keys with no count for HISTORY_TTL_S go; a scan, so hourly
            self._next_history_prune = now + 3_600
            connection.execute("DELETE FROM outputs WHERE at < ?", (now - HISTORY_TTL_S,))

    def history(self, keys: list[str]) -> list[list[int]]:
        connection = self._connection()
        try:
            found = dict(connection.execute(
                f"SELECT key, counts FROM outputs WHERE key IN ({', '.join('?' * len(keys))})", keys
            ).fetchall())
        except sqlite3.Error:
            self._drop_connection()
            raise
        return [_counts(found[key]) if key in found else [] for key in keys]

    def close(self) -> None:
        self._drop_connection()


def _counts(text: str) -> list[int]:
    return [int(count) for count in text.split()]


# -- Redis -----------------------------------------------------------------------------------------
# Keys per budget key K under "otel_tokens:budget:{K}": ":spent" (lifetime), ":<window>:<bucket>"
# (window buckets, expiring one bucket after they leave the window), ":res" (a sorted set of
# reservation ids by expiry) and ":resamt" (their amounts). Costs travel as strings at full precision.
_LUA_COMMON: Final = """
local BUCKETS = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function spent_of(p, w)
  if w == 0 then return tonumber(redis.call('GET', p .. ':spent') or '0') end
  local current = math.floor(now * BUCKETS / w)
  local names = {}
  for b = current - BUCKETS, current do names[#names + 1] = p .. ':' .. w .. ':' .. b end
  local total = 0
  for _, v in ipairs(redis.call('MGET', unpack(names))) do if v then total = total + tonumber(v) end end
  return total
end
local function reserved_of(p)
  local expired = redis.call('ZRANGEBYSCORE', p .. ':res', '-inf', now)
  if #expired > 0 then
    redis.call('HDEL', p .. ':resamt', unpack(expired))
    redis.call('ZREM', p .. ':res', unpack(expired))
  end
  local total = 0
  for _, v in ipairs(redis.call('HVALS', p .. ':resamt')) do total = total + tonumber(v) end
  return total
end
"""

# ARGV: BUCKETS, projected, reservation id, ttl, n, then n x (prefix, window or 0, limit)
_LUA_RESERVE: Final = _LUA_COMMON + """
local projected, rid, ttl, n = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {-1}
local failed = -1
for i = 1, n do
  local p, w, limit = ARGV[3 + 3 * i], tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i])
  local s, r = spent_of(p, w), reserved_of(p)
  out[#out + 1] = string.format('%.17g', s)
  out[#out + 1] = string.format('%.17g', r)
  if failed < 0 and s + r + projected > limit + 1e-12 then failed = i - 1 end
end
out[1] = failed
if failed < 0 then
  for i = 1, n do
    local p = ARGV[3 + 3 * i]
    redis.call('ZADD', p .. ':res', now + ttl, rid)
    redis.call('HSET', p .. ':resamt', rid, ARGV[2])
    redis.call('EXPIRE', p .. ':res', math.ceil(ttl) + 60)
    redis.call('EXPIRE', p .. ':resamt', math.ceil(ttl) + 60)
  end
end
return out
"""

# ARGV: BUCKETS, settled-id ttl, entries, then per entry (id, reservation id or '', cost, k, k x (prefix,
# window)), then m, m x (prefix, window) to read back, then HISTORY_SAMPLES, HISTORY_TTL_S, s, s x (history
# list, output tokens).
_LUA_SETTLE: Final = _LUA_COMMON + """
local idttl = tonumber(ARGV[2])
local entries = tonumber(ARGV[3])
local a = 4
for e = 1, entries do
  local id, rid, cost, k = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  a = a + 4
  local fresh = redis.call('SET', 'otel_tokens:settled:' .. id, '1', 'NX', 'EX', idttl)
  for j = 1, k do
    local p, w = ARGV[a], tonumber(ARGV[a + 1])
    a = a + 2
    if rid ~= '' then
      redis.call('ZREM', p .. ':res', rid)
      redis.call('HDEL', p .. ':resamt', rid)
    end
    if fresh and tonumber(cost) > 0 then
      if w == 0 then
        redis.call('INCRBYFLOAT', p .. ':spent', cost)
      else
        local name = p .. ':' .. w .. ':' .. math.floor(now * BUCKETS / w)
        redis.call('INCRBYFLOAT', name, cost)
        redis.call('EXPIRE', name, math.ceil(w + 2 * w / BUCKETS) + 60)
      end
    end
  end
end
local m = tonumber(ARGV[a])
a = a + 1
local out = {}
for j = 1, m do
  out[j] = string.format('%.17g', spent_of(ARGV[a], tonumber(ARGV[a + 1])))
  a = a + 2
end
local keep, histttl, s = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
a = a + 3
for j = 1, s do
  redis.call('LPUSH', ARGV[a], ARGV[a + 1])
  redis.call('LTRIM', ARGV[a], 0, keep - 1)
  redis.call('EXPIRE', ARGV[a], histttl)
  a = a + 2
end
return out
"""

# KEYS: history lists; each read newest first.
_LUA_HISTORY: Final = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('LRANGE', key, 0, tonumber(ARGV[1]) - 1) end
return out
"""


def _prefix(key: str) -> str:
    return f"otel_tokens:budget:{{{key}}}"


def _history_list(key: str) -> str:
    return f"otel_tokens:outputs:{key}"


class RedisStore:
    """Spend shared by a fleet through one Redis (redis-py); every operation is one Lua script call."""

    kind = "redis"
    batch_warn_settles = True

    def __init__(self, url: str, *, reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
                 timeout_s: float = 1.0) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ConfigError("a redis:// store needs redis-py: pip install 'otel-tokens[redis]'") from exc
        self.description = _redacted(url)
        self.reservation_ttl_s = reservation_ttl_s
        # Short timeouts and no retries inside redis-py: a store that is down must not stall calls;
        # we fall back to local counting and retry from the background.
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0), decode_responses=True, health_check_interval=0,
        )
        self._reserve = self._client.register_script(_LUA_RESERVE)
        self._settle = self._client.register_script(_LUA_SETTLE)
        self._history = self._client.register_script(_LUA_HISTORY)

    def reserve(
        self, items: list[tuple[str, int | None, float]], projected: float, reservation_id: str, ttl_s: float
    ) -> tuple[int, list[float], list[float]]:
        args: list[object] = [BUCKETS, repr(float(projected)), reservation_id, ttl_s, len(items)]
        for key, window_s, limit in items:
            args += [_prefix(key), window_s or 0, repr(float(limit))]
        reply = self._reserve(args=args)
        values = [float(v) for v in reply[1:]]
        return int(reply[0]), values[0::2], values[1::2]

    def settle(
        self, entries: list[Settle], keys: list[StoreKey], samples: Sequence[tuple[str, int]] = ()
    ) -> dict[str, float]:
        args: list[object] = [BUCKETS, SETTLED_ID_TTL_S, len(entries)]
        for entry in entries:
            args += [entry.entry_id, entry.reservation_id or "", repr(float(entry.cost)), len(entry.keys)]
            for key, window_s in entry.keys:
                args += [_prefix(key), window_s or 0]
        args.append(len(keys))
        for key, window_s in keys:
            args += [_prefix(key), window_s or 0]
        args += [HISTORY_SAMPLES, HISTORY_TTL_S, len(samples)]
        for key, tokens in samples:
            args += [_history_list(key), tokens]
        reply = self._settle(args=args)
        return {key: float(value) for (key, _window_s), value in zip(keys, reply, strict=True)}

    def claim_batch(self, key: str) -> bool:
        return bool(self._client.set(f"otel_tokens:batch:{key}", "1", nx=True, ex=BATCH_ID_TTL_S))

    def history(self, keys: list[str]) -> list[list[int]]:
        reply = self._history(keys=[_history_list(key) for key in keys], args=[HISTORY_SAMPLES])
        return [[int(value) for value in reversed(values)] for values in reply]

    def close(self) -> None:
        self._client.close()


__all__ = [
    "BATCH_ID_TTL_S", "BUCKETS", "DEFAULT_RESERVATION_TTL_S", "HISTORY_SAMPLES", "HISTORY_TTL_S", "RedisStore",
    "SQLiteStore", "Settle", "SpendStore", "open_store",
]
