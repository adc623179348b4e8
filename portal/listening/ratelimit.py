"""Rate limits every web worker shares: counts in the portal's database, or in Redis with ``REDIS_URL``.

A fixed window per key: the first request of a window starts its count, and past the limit
the client is told how many seconds remain (``Retry-After``). An e-mail address is counted
under a keyed hash (the key is made per database, in ``meta``), so the counts keep no address.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from types import SimpleNamespace

import sqlalchemy as sa

from portal.data import statements as sql
from portal.listening import store

# name: (requests, seconds). Per client address generous enough for a household behind one
# carrier-grade NAT address; per e-mail address a few a day.
LIMITS = {"client": (20, 3600), "email": (5, 86400)}
_redis: dict = {}
_lock = threading.Lock()


class Limited(Exception):
    """Too many requests; ``retry_after`` seconds until the window ends."""

    def __init__(self, name: str, retry_after: int):
        super().__init__(f"too many requests ({name}); try again in {retry_after} s")
        self.name, self.retry_after = name, retry_after


def email_key(secret: str, address: str) -> str:
    """Return the counting key of an e-mail address (a keyed hash: the address is not kept)."""
    return hmac.new(secret.encode(), address.lower().encode(), hashlib.sha256).hexdigest()[:32]


def hit(settings, name: str, subject: str, limits: dict | None = None, now: float | None = None) -> None:
    """Count one request of ``subject`` against the limit ``name``; raise Limited when over it."""
    allowed, window_s = (limits or LIMITS)[name]
    now = time.time() if now is None else now
    window = int(now // window_s) * window_s
    key = f"{name}:{subject}"
    count = _count_redis(settings.redis_url, key, window, window_s) if settings.redis_url else \
        _count_db(settings.database, key, window)
    if count > allowed:
        raise Limited(name, max(1, int(window + window_s - now)))


def hit_in(conn, settings, name: str, subject: str, limits: dict | None = None,
           now: float | None = None) -> None:
    """Count one request like ``hit``, in the caller's write transaction when counts are in the database.

    A write that is rate-limited anyway then commits once instead of twice; when ``Limited`` is
    raised the caller's transaction rolls back, the count with it, and the client stays over the
    limit until the window ends all the same.
    """
    if settings.redis_url:
        hit(settings, name, subject, limits, now)
        return
    allowed, window_s = (limits or LIMITS)[name]
    now = time.time() if now is None else now
    window = int(now // window_s) * window_s
    if _add(conn, f"{name}:{subject}", window) > allowed:
        raise Limited(name, max(1, int(window + window_s - now)))


def _count_db(path, key: str, window: int) -> int:
    """Add one to the count in the database; return the new count."""
    with store.transaction(path) as conn:
        return _add(conn, key, window)


def _add(conn, key: str, window: int) -> int:
    """Add one to a count inside a write transaction; return the new count."""
    return sql.scalar(conn, _statements().add, key=key, window=window)


@sql.collection
def _statements() -> SimpleNamespace:
    """Return the statements of the counts kept in the database (``portal.data.statements``)."""
    counts = sql.table("rate_counts")
    # A count adds one to the stored one.
    add = sql.upsert(counts, ["key", "window"], {"key": sa.bindparam("key"), "window": sa.bindparam("window"),
                                                 "count": sql.const(1)},
                     {"count": counts.c.count + sql.const(1)}, returning=[counts.c.count])
    return SimpleNamespace(add=sql.Statement(add))


def _count_redis(url: str, key: str, window: int, window_s: int) -> int:
    """Add one to the count in Redis (expiring with its window); return the new count."""
    import redis

    with _lock:
        client = _redis.get(url)
        if client is None:
            client = _redis[url] = redis.Redis.from_url(url, socket_timeout=2)
    name = f"portal:rate:{key}:{window}"
    pipe = client.pipeline()
    pipe.incr(name)
    pipe.expire(name, window_s + 60)
    return int(pipe.execute()[0])
