"""scripts/incident.py as staff run it: the lifecycle, areas from files, refusals, help."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner
from dbtools import database_with_towns, square_town
from enginetools import contents, engine_copy
from shapely.geometry import box, mapping

from portal import answers
from portal.data import db
from portal.incidents import writes as incidents
from portal.incidents.reads import IncidentReads

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "incident.py"
spec = importlib.util.spec_from_file_location("incident_script", SCRIPT)
incident_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(incident_script)


# Alpha and Beta share an edge; the two Dubki have the same name, so "Dubki" is ambiguous.
TOWNS = [
    square_town("alpha", "Alpha", 30.0, 60.0),
    square_town("beta", "Beta", 30.1, 60.0),
    square_town("dubki-north", "Dubki", 32.0, 62.0),
    square_town("dubki-south", "Dubki", 32.0, 58.0),
]
BUILDING = box(30.04, 60.04, 30.06, 60.06)


@pytest.fixture(scope="module")
def towns_template(tmp_path_factory):
    """The database whose live towns are the hand-made squares, made once."""
    return database_with_towns(tmp_path_factory.mktemp("towns") / "portal.sqlite", TOWNS)


@pytest.fixture
def db_path(engine, towns_template, tmp_path, request):
    """Give the test its own copy of it on the engine under test: a path, or a postgresql:// URL."""
    return engine_copy(engine, towns_template, tmp_path, request)


def when(hours_ago: float) -> str:
    """Return an ISO time some hours before now, in UTC with a Z."""
    return db.iso(db.utcnow() - timedelta(hours=hours_ago))


def run(*args):
    """Run the script in a real process from another directory, as staff would."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT.parent, env={**os.environ, "PORTAL_AUTHOR": "anna"})


def cli(*args):
    """Run the script's click group in-process."""
    return CliRunner().invoke(incident_script.main, [str(a) for a in args], env={"PORTAL_AUTHOR": "anna"})


def test_lifecycle_in_real_processes(db_path):
    opened = run("open", "--db", db_path, "--title", "No internet in Alpha", "--service", "internet",
                 "--town", "alpha", "--at", when(3), "--eta", when(-2), "--message", "We are on it")
    assert opened.returncode == 0, opened.stderr
    incident_id = int(opened.stdout.strip().splitlines()[-1])
    updated = run("update", incident_id, "--db", db_path, "--status", "identified",
                  "--message", "Cable cut by road works", "--cause", "Road works", "--at", when(2))
    resolved = run("resolve", incident_id, "--db", db_path, "--message", "Spliced; all back", "--at", when(1))
    listed = run("list", "--all", "--db", db_path)
    shown = run("show", incident_id, "--db", db_path)
    assert [p.returncode for p in (updated, resolved, listed, shown)] == [0, 0, 0, 0]
    assert "No internet in Alpha" in listed.stdout and "resolved" in listed.stdout
    assert "Cable cut by road works" in shown.stdout and "MSK" in shown.stdout
    with db.connect_readonly(db_path) as conn:
        got = answers.incident_report(IncidentReads.read(conn), incident_id, db.utcnow())
        authors = {r[0] for r in conn.execute("SELECT author FROM audit")}
    assert [u["status"] for u in got["updates"]] == ["investigating", "identified", "resolved"]
    assert got["cause"] == "Road works" and got["towns"] == ["alpha"]
    assert 2 * 3600 - 60 <= got["duration_s"] <= 2 * 3600 + 60  # the processes start seconds apart
    assert authors == {"anna"}


def test_town_names_resolve_like_the_public_search(db_path):
    result = cli("open", "--db", db_path, "--title", "TV down", "--service", "tv", "--town", "ALPHA",
                 "--town", "Betta")
    assert result.exit_code == 0, result.output
    assert "towns: Alpha (alpha), Beta (beta)" in result.stdout
    with db.connect_readonly(db_path) as conn:
        got = answers.incident_report(IncidentReads.read(conn), int(result.stdout.split()[-1]), db.utcnow())
    assert got["towns"] == ["alpha", "beta"] and got["services"] == ["tv"]


def test_naive_times_are_the_regions_local_time(db_path):
    result = cli("open", "--db", db_path, "--title", "Outage", "--service", "phone", "--town", "Alpha",
                 "--at", "2026-01-05T19:40")
    assert result.exit_code == 0, result.output
    with db.connect_readonly(db_path) as conn:
        got = answers.incident_report(IncidentReads.read(conn), int(result.stdout.split()[-1]), db.utcnow())
    assert got["started_at"] == "2026-01-05T16:40:00Z"


def test_area_from_a_projected_geojson_is_reprojected(db_path, tmp_path):
    file = tmp_path / "building.geojson"
    gpd.GeoDataFrame(geometry=[BUILDING], crs=4326).to_crs(3857).to_file(file, driver="GeoJSON")
    result = cli("open", "--db", db_path, "--title", "No TV in one building", "--service", "tv",
                 "--area", file)
    assert result.exit_code == 0, result.output
    with db.connect_readonly(db_path) as conn:
        now, found = db.utcnow(), IncidentReads.read(conn)
        inside = found.affecting_point(60.05, 30.05, now)
        outside = found.affecting_point(60.07, 30.05, now)
        alpha = found.affecting_town("alpha", now)
    assert len(inside) == 1 and outside == [] and len(alpha) == 1


def test_maintenance_is_announced_and_listed(db_path):
    start, end = when(-24), when(-27)
    result = cli("maintenance", "--db", db_path, "--title", "Node upgrade", "--service", "internet",
                 "--service", "tv", "--town", "Beta", "--start", start, "--end", end)
    assert result.exit_code == 0, result.output
    incident_id = int(result.stdout.strip().splitlines()[-1])
    listed = cli("list", "--db", db_path)
    assert "Node upgrade" in listed.stdout and "scheduled" in listed.stdout
    shown = cli("show", incident_id, "--db", db_path)
    assert "window:" in shown.stdout


def write(tmp_path, name, text):
    """Write a text file in the test folder."""
    path = tmp_path / name
    path.write_text(text)
    return path


def feature_collection(geometry) -> str:
    """Return GeoJSON text of one feature with that geometry."""
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": geometry}]})


BOWTIE = {"type": "Polygon", "coordinates": [[[30.0, 60.0], [30.1, 60.1], [30.1, 60.0], [30.0, 60.1],
                                               [30.0, 60.0]]]}


def rejections(tmp_path):
    """Return (arguments, words the message must contain) for each refused command."""
    bowtie = write(tmp_path, "bowtie.geojson", feature_collection(BOWTIE))
    point = write(tmp_path, "point.geojson", feature_collection({"type": "Point", "coordinates": [30, 60]}))
    garbage = write(tmp_path, "garbage.geojson", "this is not GeoJSON {")
    open_ = ["open", "--title", "Outage", "--service", "internet"]
    return {
        "unknown service": (["open", "--title", "X", "--service", "radio", "--town", "Alpha"],
                            ["'radio'", "internet"]),
        "unknown town": ([*open_, "--town", "Atlantis"], ["'Atlantis'"]),
        "unknown town with a suggestion": ([*open_, "--town", "Alphaville"], ["'Alphaville'", "alpha"]),
        "ambiguous town": ([*open_, "--town", "Dubki"], ["'Dubki'", "dubki-north", "dubki-south"]),
        "no place": (open_, ["no towns and no area"]),
        "invalid geometry": ([*open_, "--area", bowtie], ["bowtie.geojson", "Self-intersection"]),
        "not a polygon": ([*open_, "--area", point], ["point.geojson", "Point"]),
        "unreadable file": ([*open_, "--area", garbage], ["garbage.geojson"]),
        "missing file": ([*open_, "--area", tmp_path / "nope.geojson"], ["nope.geojson"]),
        "unparseable time": ([*open_, "--town", "Alpha", "--at", "yesterday"], ["'yesterday'", "ISO 8601"]),
        "future start": ([*open_, "--town", "Alpha", "--at", when(-5)], ["in the future"]),
        "eta before start": ([*open_, "--town", "Alpha", "--at", when(3), "--eta", when(4)], ["eta"]),
        "empty title": (["open", "--title", " ", "--service", "tv", "--town", "Alpha"], ["empty title"]),
        "unknown status": (["update", 1, "--status", "fixed", "--message", "m"], ["'fixed'", "identified"]),
        "maintenance status on an outage": (["update", 1, "--status", "in_progress", "--message", "m"],
                                            ["'in_progress'"]),
        "update before start": (["update", 1, "--status", "identified", "--message", "m", "--at", when(4)],
                                ["before the start"]),
        "update before previous": (["update", 1, "--status", "identified", "--message", "m",
                                    "--at", when(2.5)], ["before the previous update"]),
        "update unknown incident": (["update", 99, "--status", "identified", "--message", "m"], ["#99"]),
        "update resolved": (["update", 2, "--status", "monitoring", "--message", "m"], ["already resolved"]),
        "resolve twice": (["resolve", 2, "--message", "again"], ["already resolved"]),
        "resolve before start": (["resolve", 1, "--message", "m", "--at", when(4)], ["before the start"]),
        "maintenance ends before it starts": (
            ["maintenance", "--title", "W", "--service", "tv", "--town", "Alpha", "--start", when(-5),
             "--end", when(-4)], ["not after start"]),
        "maintenance status by update": (["update", 3, "--status", "in_progress", "--message", "m"],
                                         ["derived from its window"]),
        "not an id": (["show", "abc"], ["'abc'"]),
        "show unknown incident": (["show", 42], ["#42"]),
    }


@pytest.fixture
def busy_db(db_path):
    """Give the database with an open outage (#1), a resolved one (#2) and a future maintenance (#3)."""
    now = db.utcnow()
    first = incidents.open_incident(db_path, title="Open", services=["internet"], towns=["alpha"],
                                    at=now - timedelta(hours=3), author="ops")
    incidents.update_incident(db_path, first, status="identified", message="Found",
                              at=now - timedelta(hours=2), author="ops")
    second = incidents.open_incident(db_path, title="Done", services=["tv"], towns=["beta"],
                                     at=now - timedelta(hours=5), author="ops")
    incidents.resolve_incident(db_path, second, message="Fixed", at=now - timedelta(hours=4), author="ops")
    incidents.schedule_maintenance(db_path, title="Later", services=["tv"], towns=["beta"],
                                   start=now + timedelta(days=1), end=now + timedelta(days=1, hours=2),
                                   author="ops")
    return db_path


CASES = [
    "unknown service", "unknown town", "unknown town with a suggestion", "ambiguous town", "no place",
    "invalid geometry", "not a polygon", "unreadable file", "missing file", "unparseable time", "future start",
    "eta before start", "empty title", "unknown status", "maintenance status on an outage",
    "update before start", "update before previous", "update unknown incident", "update resolved",
    "resolve twice", "resolve before start", "maintenance ends before it starts",
    "maintenance status by update", "not an id", "show unknown incident",
]


@pytest.mark.parametrize("case", CASES)
def test_refusals_name_the_value_and_leave_the_database_unchanged(busy_db, tmp_path, case):
    args, words = rejections(tmp_path)[case]
    before = contents(busy_db)
    result = cli(*args, "--db", busy_db)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for word in words:
        assert word in result.stderr
    assert contents(busy_db) == before


def test_refusal_in_a_real_process(busy_db):
    before = contents(busy_db)
    result = run("resolve", 2, "--db", busy_db, "--message", "again")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: incident #2 is already resolved")
    assert contents(busy_db) == before


def test_a_mistyped_database_is_refused_and_nothing_is_created(tmp_path):
    """A typo in --db used to build a fresh demo database and file the incident there (exit 0)."""
    path = tmp_path / "new" / "portl.sqlite"
    path.parent.mkdir()
    result = run("open", "--db", path, "--title", "No internet", "--service", "internet", "--town", "alpha")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: --db {path}: no such file;") and "build_db.py" in result.stderr
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("command", ["open", "update", "resolve", "maintenance", "list", "show", None])
def test_help_ends_with_a_real_example(command):
    result = cli(*([command] if command else []), "--help")
    assert result.exit_code == 0
    last = result.output.strip().splitlines()[-1].strip()
    assert last.startswith("python scripts/incident.py " + (command or ""))
    assert "--db" in result.output or command is None


def test_open_help_says_naive_times_are_local():
    assert "Europe/Moscow" in cli("open", "--help").output


def test_geometry_written_by_the_script_round_trips(db_path, tmp_path):
    file = write(tmp_path, "street.geojson", feature_collection(mapping(BUILDING)))
    result = cli("open", "--db", db_path, "--title", "Street", "--service", "internet", "--area", file,
                 "--town", "Beta")
    assert result.exit_code == 0, result.output
    with db.connect_readonly(db_path) as conn:
        got = answers.incident_report(IncidentReads.read(conn), 1, db.utcnow())
    assert got["affected_towns"] == ["alpha", "beta"] and got["towns"] == ["beta"]
