"""Write the whole public site into a folder any static host serves: the fallback status page.

Every page, feed and parameter-free JSON answer is rendered by the app itself
(its test client, so exactly what the live site would say at that moment) and
saved under a path plain static serving finds:

    /                      -> index.html
    /towns/pechory         -> towns/pechory/index.html   (links rewritten to towns/pechory/)
    /api/v1/towns/pechory  -> api/v1/towns/pechory.json  (links rewritten; nginx tries $uri.json)
    /feeds/incidents.atom  -> feeds/incidents.atom

Links inside pages are rewritten to those paths under ``base_url``. What needs the live
site (a point check, a search, sorting, another language) leads to a page saying so, with
the town list.
"""
from __future__ import annotations

import html
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask

HOST = "http://localhost"
# Pages that answer free parameters (or take a form post); the export writes a page pointing to the
# town list instead.
LIVE_ONLY = ("/check", "/search", "/subscriptions", "/reports", "/interest", "/feedback")
# Pages saved from a fuller variant: the saved town list has every town on one page (its
# page links would lead back to itself in a copy that ignores query strings).
EXPORT_QUERY = {"/towns": "page=all"}
_QUOTED = re.compile(r'(["\'])((?:https?://localhost)?/[^"\'\s<>]*)\1')
_HTML_TYPES = ("text/html",)
_TEXT_TYPES = ("text/", "application/atom+xml", "application/xml")


def _target(path: str) -> str:
    """Return the file a site path is saved as (relative to the export folder)."""
    path = path.rstrip("/") or "/"
    if path == "/":
        return "index.html"
    if path.startswith("/api/"):
        name = path.lstrip("/")
        return name if name.endswith((".json", ".geojson")) else f"{name}.json"
    if re.search(r"\.[a-z0-9]+$", path):  # feeds, CSV, assets keep their names
        return path.lstrip("/")
    return f"{path.lstrip('/')}/index.html"


def _link(target: str, base_url: str) -> str:
    """Return the URL a page links to for a saved file (folders for index pages)."""
    if target.endswith("index.html"):
        target = target[: -len("index.html")]
    return base_url + target


def site_paths(app: Flask) -> list[str]:
    """Return every parameter-free URL of the public site, from the live data."""
    from portal.data import db, layers

    conn = db.connect_readonly(app.config["DATABASE"])
    try:
        slugs = [t.slug for t in layers.load_towns(conn)]
        ids = [r[0] for r in conn.execute("SELECT id FROM incidents ORDER BY id")]
        claims = _claim_paths(app, conn)
    finally:
        conn.close()
    paths = ["/", "/favicon.ico", "/towns", "/towns.csv", "/incidents", "/api/v1/towns", "/api/v1/coverage.geojson",
             "/api/v1/demand.geojson",
             "/api/v1/incidents", "/api/v1/summary", "/api/v2/summary.json", "/api/v2/status.json",
             "/api/v2/components.json", "/api/v2/incidents.json", "/api/v2/incidents/unresolved.json",
             "/api/v2/scheduled-maintenances.json", "/api/v2/scheduled-maintenances/upcoming.json",
             "/api/v2/scheduled-maintenances/active.json",
             "/feeds/incidents.atom", "/feeds/maintenance.ics"]
    for slug in slugs:
        paths += [f"/towns/{slug}", f"/api/v1/towns/{slug}", f"/feeds/towns/{slug}.atom",
                  f"/feeds/towns/{slug}.ics"]
    paths += [f"/incidents/{i}" for i in ids] + [f"/api/v1/incidents/{i}" for i in ids] + claims
    return [p for p in paths if _routable(app, p)]


def _claim_paths(app: Flask, conn) -> list[str]:
    """Return the written claims incident pages link to: one per service whose deadline was missed."""
    from portal.data import db
    from portal.incidents.reads import IncidentReads

    pinned = app.config.get("NOW")
    now = db.parse_iso(pinned) if isinstance(pinned, str) else (pinned or db.utcnow())
    reads = IncidentReads.read(conn, deadline_hours=app.config["RESTORE_DEADLINE_HOURS"])
    return [f"/incidents/{r.id}/claim/{service}" for r in reads.records
            for service, d in reads.deadlines(r, now).items() if d["missed"]]


def _routable(app: Flask, path: str) -> bool:
    """Return whether the app has a route for a path (some blueprints are optional)."""
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match(path, method="GET")
        return True
    except Exception:  # noqa: BLE001 -- NotFound, MethodNotAllowed, RequestRedirect
        return False


class _Rewriter:
    """Rewrites the site's own URLs in saved text to the saved files' URLs."""

    def __init__(self, saved: dict[str, str], base_url: str):
        """Remember what was saved where."""
        self.saved = saved
        self.base_url = base_url

    def url(self, url: str) -> str | None:
        """Return the static URL for a site URL, or None when it is not the site's."""
        parts = urlsplit(url)
        if parts.netloc and parts.netloc != "localhost":
            return None
        path = parts.path.rstrip("/") or "/"
        if path.startswith("/static/"):
            return self.base_url + path.lstrip("/")
        if path in self.saved:
            return _link(self.saved[path], self.base_url)
        if path in LIVE_ONLY:
            return _link(_target(path), self.base_url)
        return None

    def text(self, body: str) -> str:
        """Rewrite every quoted site URL in a page, script option or feed."""

        def swap(match: re.Match) -> str:
            quote, url = match.group(1), html.unescape(match.group(2))
            found = self.url(url)
            return match.group(0) if found is None else f"{quote}{found}{quote}"

        return _QUOTED.sub(swap, body)


def _notice(lang_note: str, stamp: str) -> str:
    """Return the banner that says a page is a saved copy."""
    return (f'<p class="static-copy" role="status" style="margin:0;padding:.5em 1em;background:#fff3cd;">'
            f'{lang_note} {html.escape(stamp)}</p>')


SAVED_NOTE = ("Сохранённая копия: основной сайт недоступен, данные на / Saved copy: the live site is"
              " unavailable; figures as of")
LIVE_DOWN = {
    "ru": ("Основной сайт сейчас недоступен",
           "Проверка адреса и поиск работают только на основном сайте. Вот сохранённый список"
           " населённых пунктов и сводка об авариях."),
    "en": ("The live site is down right now",
           "Checking a point and searching need the live site. Here is the saved town list and the"
           " outage summary."),
}


def _live_only_page(base_url: str, stamp: str) -> str:
    """Return the page saved in place of a point check or search."""
    parts = []
    for lang, (title, text) in LIVE_DOWN.items():
        parts.append(f'<section lang="{lang}"><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></section>')
    links = (f'<ul><li><a href="{base_url}towns/">Населённые пункты / Towns</a></li>'
             f'<li><a href="{base_url}incidents/">Аварии и работы / Outages and maintenance</a></li>'
             f'<li><a href="{base_url}">Главная / Home</a></li></ul>')
    return ('<!doctype html><html lang="ru"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(LIVE_DOWN["en"][0])}</title>'
            f'<link rel="stylesheet" href="{base_url}static/css/portal.css"></head><body><main>'
            f'{"".join(parts)}{links}<p>{html.escape(SAVED_NOTE)} {html.escape(stamp)}</p>'
            '</main></body></html>\n')


def _copy_assets(app: Flask, out: Path) -> int:
    """Copy the portal's static files and the vendored front-end packages; return the file count."""
    from portal.web.views.context import _vendor_dirs

    shutil.copytree(app.static_folder, out / "static", dirs_exist_ok=True)
    for name, folder in _vendor_dirs().items():
        shutil.copytree(folder, out / "static" / "vendor" / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return sum(1 for p in (out / "static").rglob("*") if p.is_file())


def export_site(app: Flask, out: Path, base_url: str = "/", lang: str | None = None) -> dict:
    """Render every public page and answer into ``out``; return counts and any failures."""
    out = Path(out)
    if not base_url.endswith("/"):
        base_url += "/"
    out.mkdir(parents=True, exist_ok=True)
    lang = lang or app.config.get("BABEL_DEFAULT_LOCALE", "ru")
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = lang
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    saved: dict[str, str] = {}
    bodies: dict[str, tuple[bytes, str]] = {}
    failed = []
    for path in site_paths(app):
        query = EXPORT_QUERY.get(path)
        response = client.get(f"{path}?{query}" if query else path)
        if response.status_code != 200:
            failed.append((path, response.status_code))
            continue
        saved[path] = _target(path)
        bodies[path] = (response.get_data(), response.mimetype or "")
    rewrite = _Rewriter(saved, base_url)
    # Absolute links (feeds, permalinks) point at the export's own address when it has one.
    external = base_url if base_url.startswith("http") else None
    for path, (body, mimetype) in bodies.items():
        if mimetype.startswith(_TEXT_TYPES):
            text = body.decode("utf-8")
            if mimetype.startswith(_HTML_TYPES):
                text = rewrite.text(text)
                text = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _notice(SAVED_NOTE, stamp), text, count=1)
            elif external:
                text = text.replace(f"{HOST}/", external)
            body = text.encode("utf-8")
        file = out / saved[path]
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(body)
    for path in LIVE_ONLY:
        file = out / _target(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(_live_only_page(base_url, stamp), encoding="utf-8")
    assets = _copy_assets(app, out)
    return {"pages": len(saved), "assets": assets, "failed": failed, "folder": str(out)}
