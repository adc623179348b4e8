"""Security headers on every answer, CORS on the public GET API and feeds, the public origin.

Every answer (pages, JSON, feeds, static files, errors, 304s) carries

- ``Content-Security-Policy``: pages may run scripts from the portal itself only (no inline
  script, no ``eval``); the map's data travels in a ``<script type="application/json">``
  block that ``static/js/map.js`` reads, so the same cached page is valid for every visitor
  (a per-response nonce would be shared by everyone nginx serves that copy to). Images may
  also come from the configured tile server. Anything that is not a page gets a policy that
  allows nothing at all. ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY`` for old
  browsers): no other site can frame the portal;
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy``, ``Permissions-Policy``,
  ``Cross-Origin-Opener-Policy``.

``Strict-Transport-Security`` is nginx's to send, on its TLS server (docs/deploy.md): the
portal itself may be reached over plain HTTP on the loopback.

GET and HEAD answers under /api/, /feeds/ and /openapi.json carry
``Access-Control-Allow-Origin: *``: any web page may read the public data (nothing there
depends on cookies). A preflight (a browser asking before a conditional GET) is answered too.
"""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, has_request_context, request, url_for

REFERRER_POLICY = "strict-origin-when-cross-origin"
# Nothing on the portal uses these; geolocation is left to the portal's own pages only.
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), geolocation=(self), gyroscope=(), "
                      "magnetometer=(), microphone=(), payment=(), usb=()")
# Anything that is not an HTML page (JSON, feeds, CSV, images, scripts, stylesheets).
NON_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Paths whose GET answers any origin may read.
CORS_PREFIXES = ("/api/", "/feeds/", "/openapi.json")
CORS_REQUEST_HEADERS = "Accept-Language, If-None-Match, If-Modified-Since"
CORS_EXPOSED = "ETag, Last-Modified, Content-Language"
PREFLIGHT_MAX_AGE_S = 86400


def tile_source(tiles_url: str) -> str | None:
    """Return the CSP source that allows the tile server's images, or None for the portal's own.

    ``{s}`` (Leaflet's subdomain letter) becomes a ``*.`` wildcard; a relative URL needs nothing.
    """
    parts = urlsplit(tiles_url or "")
    if not parts.scheme or not parts.netloc:
        return None
    host = parts.netloc
    if host.startswith("{s}."):
        host = "*." + host[4:]
    host = host.replace("{s}", "*")
    if any(c in host for c in "{} ;,'\""):
        return None  # a template we cannot express as a source: keep tiles out rather than allow all
    return f"{parts.scheme}://{host}"


@lru_cache(maxsize=8)
def page_policy(tiles_url: str) -> str:
    """Return the Content-Security-Policy of HTML pages for a tile server."""
    tiles = tile_source(tiles_url)
    images = "'self' data:" + (f" {tiles}" if tiles else "")
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        # Leaflet positions its panes and tooltips through element.style (CSSOM), which a
        # policy without 'unsafe-inline' allows; no style attribute or <style> is in our markup.
        "style-src 'self'",
        f"img-src {images}",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _is_page(response: Response) -> bool:
    """Return whether the answer is an HTML page (which gets the page policy)."""
    return (response.mimetype or "") == "text/html"


def add_headers(response: Response) -> Response:
    """Add the security headers, and CORS where the answer is public data."""
    headers = response.headers
    config = current_app.config
    policy = page_policy(config.get("TILES_URL") or "") if _is_page(response) else NON_PAGE_POLICY
    headers["Content-Security-Policy"] = policy
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = REFERRER_POLICY
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if has_request_context() and request.path.startswith(CORS_PREFIXES):
        if request.method in ("GET", "HEAD"):
            headers["Access-Control-Allow-Origin"] = "*"
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        elif request.method == "OPTIONS":
            headers["Access-Control-Allow-Origin"] = "*"
            headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
            headers["Access-Control-Allow-Headers"] = CORS_REQUEST_HEADERS
            headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return response


def public_url(path: str = "/") -> str:
    """Return the absolute URL of a site path on the portal's public origin (``BASE_URL``).

    Feeds, e-mails and permanent links are built with this, never from the request's Host
    header (which anyone can set, and which a cache would then serve to everyone).
    """
    base = (current_app.config.get("BASE_URL") or "").rstrip("/")
    if not path.startswith("/"):
        path = "/" + path
    return base + path


def external_url(endpoint: str, **values) -> str:
    """Return the absolute URL of a view on the public origin (``url_for`` with ``BASE_URL``).

    The path prefix the request came in under is dropped: ``BASE_URL`` names the public one.
    """
    path = url_for(endpoint, **values)
    root = request.script_root if has_request_context() else ""
    if root and path.startswith(root):
        path = path[len(root):]
    return public_url(path)


def init_app(app: Flask) -> None:
    """Register the headers on every answer."""
    app.after_request(add_headers)
