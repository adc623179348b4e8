"""The static export browses offline: served by a plain static server, every link and asset works.

The site is exported from the demo on SQLite and from the demo on PostgreSQL; every test runs on both.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


class _Links(HTMLParser):
    """Collect href, src and form action URLs of a page."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action") and value:
                self.urls.append(value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_database(engine: str, request) -> str:
    """Return the demo database on an engine: the session's SQLite file, or a PostgreSQL copy of its own."""
    if engine == "sqlite":
        return str(request.getfixturevalue("demo_db_template"))
    import psycopg

    server, template = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_demo_template")
    name = f"static_export_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host={server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return f"postgresql://bench@/{name}?host={server}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def exported(request, tmp_path_factory):
    """Export the demo site once per engine and serve it with python -m http.server."""
    folder = tmp_path_factory.mktemp("export") / "site"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_static.py"), str(folder),
                          "--db", _demo_database(request.param, request)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            urllib.request.urlopen(base, timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    yield base, folder
    server.terminate()
    server.wait(timeout=10)


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get_content_type(), r.read()
    except urllib.error.HTTPError as e:
        return e.code, "", b""


def test_every_internal_link_and_asset_resolves(exported):
    base, _folder = exported
    seen, queue, broken = set(), [base], []
    host = urlsplit(base).netloc
    while queue:
        url = queue.pop()
        key = url.split("#")[0].split("?")[0]
        if key in seen:
            continue
        seen.add(key)
        status, ctype, body = _get(url)
        if status != 200:
            broken.append((url, status))
            continue
        text = body.decode("utf-8", "replace")
        if ctype == "text/html":
            parser = _Links()
            parser.feed(text)
            found = parser.urls
        elif ctype == "text/css":
            found = re.findall(r"url\(['\"]?([^'\")]+)", text)
        else:
            continue
        for link in found:
            if link.startswith(("data:", "mailto:", "#", "javascript:")):
                continue
            target = urljoin(url, link)
            if urlsplit(target).netloc == host:
                queue.append(target)
    assert not broken, broken[:20]
    assert len(seen) > 50


def test_pages_json_and_feeds_are_where_static_hosts_find_them(exported):
    base, folder = exported
    status, ctype, body = _get(base + "towns/pechory/")
    text = body.decode()
    assert status == 200 and ctype == "text/html"
    assert "Pechory" in text or "Печоры" in text
    assert "Saved copy" in text
    status, ctype, body = _get(base + "api/v1/towns/pechory.json")
    assert status == 200 and json.loads(body)["slug"] == "pechory"
    assert json.loads(_get(base + "api/v1/summary.json")[2])["incidents"] is not None
    assert "features" in json.loads(_get(base + "api/v1/coverage.geojson")[2])
    assert _get(base + "api/v2/status.json")[0] == 200
    assert _get(base + "feeds/incidents.atom")[2].startswith(b"<?xml")
    assert (folder / "static" / "vendor" / "leaflet" / "leaflet.js").exists()
    # Browsers ask the site root for its icon whatever the page links.
    assert (folder / "favicon.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"
    # Incidents pages exist for every incident of the API list.
    listed = json.loads(_get(base + "api/v1/incidents.json")[2])["incidents"]
    for item in listed:
        assert _get(base + f"incidents/{item['id']}/")[0] == 200


def test_point_check_and_search_say_the_live_site_is_down(exported):
    base, _folder = exported
    for path in ("check/?lat=57.8&lon=28.3", "search/?q=pech"):
        status, _ctype, body = _get(base + path)
        assert status == 200
        text = body.decode()
        assert "The live site is down" in text and 'href="/towns/"' in text
