"""The task queue that carries "deliver now" nudges and the once-a-minute check (huey).

By default the queue is a SQLite file beside the portal's database (``SqliteHuey``: nothing
else to run); with ``REDIS_URL`` it is Redis (``RedisHuey``), for several machines
delivering. The queue holds no messages: the outbox and deliveries tables do. A nudge that
is lost (the queue down, a crash) only delays delivery until the next tick.
"""
from __future__ import annotations

import logging
import threading
import time

from huey import RedisHuey, SqliteHuey, crontab

from portal.listening import deliveries, worker

log = logging.getLogger("portal.listening")
NAME = "portal-notify"
_producers: dict = {}
_lock = threading.Lock()


def make_queue(settings):
    """Return a huey instance for the settings, with the ``dispatch`` and ``tick`` tasks registered."""
    if settings.redis_url:
        from redis import ConnectionPool

        # Time-outs: a web request nudging an unreachable Redis must not hang (blocking reads wait 1 s).
        pool = ConnectionPool.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        huey = RedisHuey(NAME, connection_pool=pool, results=False)
    else:
        settings.queue_file.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(NAME, filename=str(settings.queue_file), results=False)
    stop = threading.Event()
    me = deliveries.worker_id()

    @huey.task(name="dispatch")
    def dispatch():
        """Fan out and deliver what is due; ask to be run again when the next retry is due."""
        found = worker.dispatch(settings, me, stop, helper=dispatch)
        if found["next_due"] is not None:
            delay = max(0.5, found["next_due"] - time.time() + 0.5)
            if delay < 3600:
                dispatch.schedule(delay=delay)
        if found["sent"] or found["failed"] or found["retry"]:
            log.info("delivered: %s", {k: v for k, v in found.items() if k != "next_due"})

    @huey.periodic_task(crontab(minute="*"), name="tick")
    def tick():
        """Record periodic events, recover dead workers' claims, then deliver."""
        found = worker.tick(settings)
        if any(found.values()):
            log.info("tick: %s", found)
        dispatch()

    huey.portal_tasks = {"dispatch": dispatch, "tick": tick}
    huey.portal_stop = stop
    return huey


def nudge(settings, delay: float = 0) -> bool:
    """Ask the worker to deliver now (or after ``delay`` seconds); False when the queue is unreachable.

    Never raises: the write that calls it has committed, and the tick finds its events anyway.
    """
    key = (settings.redis_url, str(settings.queue_file))
    try:
        with _lock:
            huey = _producers.get(key)
            if huey is None:
                huey = _producers[key] = make_queue(settings)
        task = huey.portal_tasks["dispatch"]
        if delay > 0:
            task.schedule(delay=delay)
        else:
            task()
        return True
    except Exception as exc:  # noqa: BLE001 -- a nudge must never fail the write that made it
        log.warning("could not nudge the notification worker (it will catch up within a minute): %s", exc)
        return False


def run(settings, workers: int = 2) -> None:
    """Run the consumer until SIGINT/SIGTERM: nudged dispatches, scheduled retries, the tick."""
    huey = make_queue(settings)
    # Catch up at once on what a previous run left (and recover its claims).
    huey.portal_tasks["tick"]()
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=True,
                                    initial_delay=0.05, backoff=1.3, max_delay=1.0, scheduler_interval=1)
    try:
        consumer.run()
    finally:
        huey.portal_stop.set()
