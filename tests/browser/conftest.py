"""Browser fixtures: one real gunicorn server and one Chromium per session; nothing may leave the machine.

Chromium is Debian's (``make browser`` installs it); Playwright never downloads a browser here. A
missing browser fails the run with a message instead of skipping, so CI cannot pass without these tests.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pagecheck import ROOT, SIZES
from tileserver import TileServer

from portal.config import GEODATA_DIR
from portal.data import build, db

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _free_port() -> int:
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Poll the server until it answers, failing early if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer {url} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def demo_database(tmp_path_factory) -> Path:
    """Build the demo database once per session; each server gets its own copy."""
    template = tmp_path_factory.mktemp("demo") / "template.sqlite"
    # Built with the real clock, so the demo's active outage (Velikiye Luki) is active now.
    build.build_database(template, GEODATA_DIR)
    return template


def _serve(workdir: Path, template: Path, tiles_url: str, database: str | None = None):
    """Run gunicorn on a copy of the demo database with ``tiles_url``; yield its base URL.

    With ``database`` (a ``postgresql://`` URL holding the demo), gunicorn serves that instead,
    its mail kept in ``workdir`` (by default it would go to the checkout's instance folder).
    """
    if database is None:
        db_path = workdir / "portal.sqlite"
        shutil.copy(template, db_path)
        extra = {"PORTAL_DB": str(db_path)}
    else:
        extra = {"PORTAL_DB": database, "PORTAL_MAILDIR": str(workdir / "mail")}
    port = _free_port()
    env = dict(os.environ, **extra, PORTAL_TILES_URL=tiles_url, PORTAL_TILES_ATTRIBUTION="Test tiles")
    base = f"http://127.0.0.1:{port}"
    with (workdir / "gunicorn.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(base + "/api/v1/summary", proc)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def sqlite_served(tmp_path_factory, demo_database):
    """Serve a fresh demo database with gunicorn; tiles point at a local port that answers nothing."""
    dead_port = _free_port()
    yield from _serve(tmp_path_factory.mktemp("browser"), demo_database,
                      f"http://127.0.0.1:{dead_port}/tiles/{{z}}/{{x}}/{{y}}.png")


@pytest.fixture(scope="session")
def pg_served(tmp_path_factory, demo_database, pg_server):
    """Serve the same demo from PostgreSQL, like ``sqlite_served``: ``PORTAL_DB`` is a URL.

    The demo is copied into a fresh database with ``migrate_db``'s copy (``transfer.move``).
    """
    import psycopg

    from portal.data import transfer

    with psycopg.connect(f"host={pg_server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute("CREATE DATABASE browser_demo")
    url = f"postgresql://bench@/browser_demo?host={pg_server}"
    transfer.move(str(demo_database), url)
    with db.writing(url):
        pass  # a revision of its own, which the file does not have: its ETags show who answers
    with closing(db.connect_readonly(url)) as conn:
        data = db.data_key(db.get_meta(conn))
    dead_port = _free_port()
    served = _serve(tmp_path_factory.mktemp("browser-pg"), demo_database,
                    f"http://127.0.0.1:{dead_port}/tiles/{{z}}/{{x}}/{{y}}.png", database=url)
    base = next(served)
    try:
        with urllib.request.urlopen(base + "/api/v1/summary", timeout=10) as response:
            assert response.headers["ETag"].startswith(f'W/"{data}-'), "gunicorn is not serving PostgreSQL"
        yield base
    finally:
        served.close()


# What these measure (pixels, Lighthouse's audits) does not depend on where the data lives.
ONE_ENGINE = {"test_screenshots", "test_lighthouse"}


def pytest_generate_tests(metafunc):
    """Run every page test on the portal serving SQLite and again on the one serving PostgreSQL."""
    if "server" in metafunc.fixturenames:
        one = metafunc.module.__name__.rsplit(".", 1)[-1] in ONE_ENGINE
        metafunc.parametrize("served_from", ["sqlite"] if one else ["sqlite", "postgresql"], scope="session")


@pytest.fixture(scope="session")
def server(served_from, request):
    """The base URL of the demo portal serving SQLite (``sqlite_served``) or PostgreSQL (``pg_served``)."""
    return request.getfixturevalue("sqlite_served" if served_from == "sqlite" else "pg_served")


@pytest.fixture(scope="session")
def tile_server(tmp_path_factory):
    """Serve a few small PNG tiles from a temporary folder over HTTP (any z/x/y gets one of them)."""
    with TileServer(tmp_path_factory.mktemp("tiles")) as tiles:
        yield tiles


@pytest.fixture(scope="session")
def tiled_server(tmp_path_factory, demo_database, tile_server):
    """Serve the demo like ``server``, but with the base map from the local tile server."""
    yield from _serve(tmp_path_factory.mktemp("browser-tiled"), demo_database, tile_server.url)


@pytest.fixture(scope="session")
def browser():
    """Launch Debian's Chromium once for the session, or fail saying how to install it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (apt-get install chromium) "
                    "or set CHROMIUM_PATH. The browser tests are never skipped.", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
        ])
        yield b
        b.close()


@pytest.fixture
def offsite():
    """Collect requests that tried to leave the machine; the test fails if there are any."""
    attempted: list[str] = []
    yield attempted
    assert not attempted, f"requests left the machine: {attempted}"


def _page_opener(browser, base: str, offsite: list[str]):
    """Return (open, contexts): open a page of ``base`` in a fresh context; nothing leaves the machine."""
    contexts = []

    def guard(route):
        url = route.request.url
        host = urlsplit(url).hostname
        if urlsplit(url).scheme in ("data", "blob") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            offsite.append(url)
            route.abort()

    def open_(path: str, *, size: str = "desktop", lang: str = "en", js: bool = True, wait: str = "load",
              **context_options):
        context = browser.new_context(
            viewport=SIZES[size], locale=lang, java_script_enabled=js, base_url=base,
            extra_http_headers={"Accept-Language": lang}, **context_options,
        )
        contexts.append(context)
        context.route("**/*", guard)
        page = context.new_page()
        page.goto(path, wait_until=wait)
        return page

    return open_, contexts


@pytest.fixture
def open_page(browser, server, offsite):
    """Return a function that opens a page in a fresh context (size, language, JavaScript on or off, and
    any other Playwright context option such as ``geolocation``)."""
    open_, contexts = _page_opener(browser, server, offsite)
    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def open_tiled_page(browser, tiled_server, offsite):
    """Like ``open_page``, on the portal whose base map comes from the local tile server."""
    open_, contexts = _page_opener(browser, tiled_server, offsite)
    yield open_
    for context in contexts:
        context.close()
