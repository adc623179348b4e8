"""Shared fixtures: the demo database built once from geodata/, an app and a client on a copy."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest

from portal import create_app
from portal.config import GEODATA_DIR
from portal.data import build

# The demo's incidents are placed relative to the build time; pages pin the same clock.
DEMO_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def demo_db_template(tmp_path_factory):
    """Build the demo database once per test session."""
    path = tmp_path_factory.mktemp("demo") / "portal.sqlite"
    build.build_database(path, GEODATA_DIR, now=DEMO_NOW)
    return path


@pytest.fixture
def db_path(demo_db_template, tmp_path):
    """Give each test its own copy of the demo database."""
    path = tmp_path / "portal.sqlite"
    shutil.copy(demo_db_template, path)
    return path


@pytest.fixture
def app(db_path):
    """Create the app on the test's database with the clock pinned to the build time."""
    return create_app({"DATABASE": str(db_path), "NOW": DEMO_NOW, "TESTING": True})


@pytest.fixture
def client(app):
    """Return a test client that asks for English unless a test says otherwise."""
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return c
