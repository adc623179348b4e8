"""HTTP caching for outage spikes: validators from the data revision, 304s, Cache-Control, gzip.

Every public GET answers with

- ``ETag: W/"<build>.<revision>-<minute>-<language>"``: the data (``db.data_key``: the
  revision, bumped by every write, within the build it belongs to), the current minute
  (incident status, ETAs and maintenance windows change with the clock, not only with the
  data) and the page language;
- ``Last-Modified``: the latest write to the database file, but not before the start of
  the current minute;
- ``Cache-Control: public, max-age=30, stale-while-revalidate=300, stale-if-error=86400``:
  a browser or proxy may reuse an answer for 30 s, serve it up to 5 minutes longer while it
  fetches a fresh one in the background, and for a day while the portal is failing;
- ``Vary: Accept-Language, Cookie`` on pages and feeds (the language comes from the query,
  the ``lang`` cookie or the header).

A request whose ``If-None-Match`` (or, without it, ``If-Modified-Since``) matches gets a
304 before any page is built, so revalidation costs one indexed read. Errors are cached
for 10 s at most (5xx not at all). Bodies are gzipped when the client accepts it; behind
nginx, nginx asks for identity and compresses itself (docs/nginx.conf).
"""
from __future__ import annotations

import gzip
import os
from datetime import datetime, timezone
from functools import lru_cache

from flask import Flask, Response, current_app, g, request
from werkzeug.http import http_date

from portal.data import db
from portal.web import request as web
from portal.web.i18n import select_locale

MAX_AGE_S = 30
STALE_WHILE_REVALIDATE_S = 300
STALE_IF_ERROR_S = 86400
ERROR_MAX_AGE_S = 10
BUCKET_S = 60
PUBLIC = f"public, max-age={MAX_AGE_S}, stale-while-revalidate={STALE_WHILE_REVALIDATE_S}, " \
         f"stale-if-error={STALE_IF_ERROR_S}"
# A body under 1 KB goes out in one TCP segment with its headers whether gzipped or not, so
# compressing it saves no round trip; such answers (a point check, a status) then carry no
# ``Vary: Accept-Encoding`` either: one header less for every proxy and client to handle.
COMPRESS_MIN_BYTES = 1024
COMPRESS_LEVEL = 6
COMPRESSIBLE = ("text/", "application/json", "application/geo+json", "application/atom+xml",
                "application/javascript", "application/xml", "image/svg+xml")
_UNSET = object()
# Endpoints that set their own validators (files served as they are).
OWN_VALIDATORS = ("static", "vendor")


def _request_kind() -> tuple[bool, bool]:
    """Return (cacheable, api) for this request, decided once per request.

    Cacheable: a public GET/HEAD of one of the portal's own routes. API: a machine answer,
    whose body does not depend on the language.
    """
    found = g.get("request_kind")
    if found is None:
        endpoint = request.endpoint
        found = g.request_kind = (
            request.method in ("GET", "HEAD") and endpoint is not None and endpoint not in OWN_VALIDATORS,
            request.path.startswith("/api/"),
        )
    return found


def _data_mtime(path: str) -> float:
    """Return when the database was last written (the file or its write-ahead log)."""
    latest = 0.0
    for name in (path, f"{path}-wal"):
        try:
            latest = max(latest, os.stat(name).st_mtime)
        except OSError:
            pass
    return latest


def validators() -> tuple[str, datetime, str] | None:
    """Return this request's (ETag, Last-Modified, Last-Modified as an HTTP date), or None without data."""
    found = g.get("validators", _UNSET)
    if found is _UNSET:
        try:
            meta = db.get_meta(web.get_db())
        except Exception:  # noqa: BLE001 -- no validators is better than no page
            g.validators = None
            return None
        written = meta.get("written_at")
        if not written:  # a database no write has gone through since written_at was introduced
            written = _data_mtime(current_app.config["DATABASE"])
        # JSON answers are the same in every language (only error texts differ, and errors
        # carry no validators): skip parsing Accept-Language for them.
        variant = "api" if _request_kind()[1] else select_locale()
        found = g.validators = _validators(db.data_key(meta), written,
                                           int(web.now().timestamp() // BUCKET_S), variant)
    return found


@lru_cache(maxsize=256)
def _validators(data: str, written, bucket: int, variant: str) -> tuple[str, datetime, str]:
    """Return the validators of the data (``db.data_key``), last write (seconds), minute and language.

    Cached: the same data, write, minute and language give the same validators, made once.
    """
    modified = datetime.fromtimestamp(max(int(float(written)), bucket * BUCKET_S), timezone.utc)
    return f'W/"{data}-{bucket}-{variant}"', modified, http_date(modified)


def _matches(etag: str, modified: datetime) -> bool:
    """Return whether the request's conditional headers match the current validators."""
    if request.if_none_match:
        # Weak comparison (RFC 9110): W/"x" and "x" match; proxies may strip or add W/.
        tag = etag.removeprefix("W/").strip('"')
        return request.if_none_match.contains_weak(tag) or request.if_none_match.star_tag
    if request.if_modified_since:
        return modified <= request.if_modified_since
    return False


def _present(response: Response) -> dict[str, str]:
    """Return the response's headers by lower-cased name, read in one pass (a response has a few)."""
    return {name.lower(): value for name, value in response.headers}


def _not_modified() -> Response | None:
    """Answer 304 before the page is built when the client's copy is current."""
    environ = request.environ
    # Most requests are unconditional: no validators are needed before the answer is built.
    if "HTTP_IF_NONE_MATCH" not in environ and "HTTP_IF_MODIFIED_SINCE" not in environ:
        return None
    if not _request_kind()[0]:
        return None
    found = validators()
    if found is None or not _matches(found[0], found[1]):
        return None
    return Response(status=304)


def _finish(response: Response) -> Response:
    """Set validators and Cache-Control on public answers, and compress the body."""
    present = _present(response)
    headers = response.headers
    status = response.status_code
    cacheable, api = _request_kind()
    vary = []
    if cacheable:
        # API answers are the same in every language, except error messages, which are translated.
        if status >= 400 or not api:
            vary += ["Accept-Language", "Cookie"]
        if status in (200, 304) and "cache-control" not in present:
            found = validators()
            if found is not None:
                etag, _modified, modified_http = found
                headers.add("ETag", etag)
                headers.add("Last-Modified", modified_http)
            private = "set-cookie" in present
            headers.add("Cache-Control", f"private, max-age={MAX_AGE_S}" if private else PUBLIC)
        elif status >= 500:
            headers["Cache-Control"] = "no-store"
        elif "cache-control" not in present:
            # A wrong address or value: absorb a burst of them, but do not remember them long.
            headers.add("Cache-Control", f"public, max-age={ERROR_MAX_AGE_S}")
    compress = _compressible(response, status, present)
    if compress:
        vary.append("Accept-Encoding")
    if vary:
        _add_vary(response, present, vary)
    if compress:
        _compress(response)
    return response


def _add_vary(response: Response, present: dict[str, str], values: list[str]) -> None:
    """Add names to the Vary header (one header write; merged with a view's own Vary)."""
    if "vary" in present:
        response.vary.update(values)
    else:
        response.headers.add("Vary", ", ".join(values))


def _compressible(response: Response, status: int, present: dict[str, str]) -> bool:
    """Return whether the body may be gzipped for a client that asks (its Vary then names Accept-Encoding).

    A body shorter than COMPRESS_MIN_BYTES goes out as it is to every client, so its
    answer does not vary by Accept-Encoding.
    """
    if not 200 <= status or status in (204, 304) or "content-encoding" in present:
        return False
    # The Content-Type header starts with the mimetype: no need to parse its parameters.
    if not present.get("content-type", "").startswith(COMPRESSIBLE):
        return False
    if response.direct_passthrough or response.is_streamed:
        return False
    length = present.get("content-length")
    return length is None or not length.isdigit() or int(length) >= COMPRESS_MIN_BYTES


def _compress(response: Response) -> None:
    """Gzip the body when the client accepts it and it is worth it."""
    if "gzip" not in request.environ.get("HTTP_ACCEPT_ENCODING", ""):
        return
    if "gzip" not in request.accept_encodings:
        return
    body = response.get_data()
    if len(body) < COMPRESS_MIN_BYTES:
        return
    # mtime=0 keeps the bytes (and so any proxy's copy) the same for the same body.
    response.set_data(gzip.compress(body, COMPRESS_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"


def init_app(app: Flask) -> None:
    """Register the conditional-request check and the response headers."""
    app.before_request(_not_modified)
    app.after_request(_finish)
    app.extensions["portal_warm"] = lambda: warm(app)


def warm(app: Flask) -> None:
    """Build the live snapshot and the incident index now (before a pre-forking server forks).

    Forked workers then share these structures copy-on-write; ``gc.freeze`` keeps the
    collector from touching (and so copying) them in every worker.
    """
    import gc

    from portal import answers
    from portal.coverage import snapshot as state
    from portal.data import db, statements

    conn = db.connect_readonly(app.config["DATABASE"])
    try:
        snap = state.snapshot(conn, app.config["DATABASE"], app.config["DROP_DISTANCE_M"],
                              app.config["RESTORE_DEADLINE_HOURS"])
        snap.coverage.all_town_summaries()
        answers.service_summary(snap.incidents, db.utcnow())
        # One point answer loads the compiled searches here, not in every worker's first
        # requests (a few hundred milliseconds each). Just outside the data, every technology
        # is missing, so every nearest search runs.
        minlon, minlat, _, _ = snap.coverage.bounds or (0.0, 0.0, 0.0, 0.0)
        answers.check_point(snap, max(minlat - 0.01, -90.0), max(minlon - 0.01, -180.0), db.utcnow())
        # The statements requests run, written out for this engine once, here.
        import portal.listening.reports  # noqa: F401 -- registers its statements
        statements.prepare(statements.POSTGRESQL if "://" in str(app.config["DATABASE"]) else statements.SQLITE)
    finally:
        conn.close()
    gc.collect()
    gc.freeze()
