"""gunicorn settings for the portal: ``gunicorn -c docs/gunicorn.conf.py wsgi:app`` (see docs/deploy.md).

The app is loaded once in the master (``preload_app``) and its caches are filled
there, so the coverage index and the incident index are built once and shared
copy-on-write by every forked worker instead of once per worker.
"""
import os

bind = os.environ.get("PORTAL_BIND", "127.0.0.1:8000")
# Sync workers, one per core: an answer is CPU work of well under a millisecond, so threads
# would only contend for the interpreter lock; nginx in front buffers slow clients.
workers = int(os.environ.get("PORTAL_WORKERS", os.cpu_count() or 2))
worker_class = os.environ.get("PORTAL_WORKER_CLASS", "sync")
threads = int(os.environ.get("PORTAL_THREADS", "1"))
preload_app = True
# Connections wait in the kernel's queue while both workers are busy (a spike).
backlog = 2048
# A worker that sees new data (an import) rebuilds its index on the request that notices it,
# and the town shares on the first request that needs all of them (home page, /towns): at
# 100,000 polygons about 11 s and 27 s. Long enough for both; nginx serves stale copies
# meanwhile (proxy_cache_use_stale updating).
timeout = 120
graceful_timeout = 10
accesslog = os.environ.get("PORTAL_ACCESS_LOG") or None


def when_ready(server):
    """Build the live snapshot and incident index in the master before the workers fork."""
    app = server.app.wsgi()
    warm = getattr(app, "extensions", {}).get("portal_warm")
    if warm is not None:
        warm()
