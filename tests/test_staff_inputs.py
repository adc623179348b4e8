"""Staff inputs that cannot hurt: control characters, edit and cancel, --db, import removals, audit.

Every script runs in a real process, as staff run it, on SQLite and on PostgreSQL; a refused input
must leave the database as it was: byte-identical on SQLite (the file and its write-ahead log hashed
before and after), every row of every table the same on PostgreSQL.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import feedparser
import geopandas as gpd
import pytest
import shapely
from enginetools import contents

from portal import create_app
from portal.data import db
from portal.data import statements as sql
from tests.conftest import DEMO_NOW

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def run(script: str, *args, author: str = "anna") -> subprocess.CompletedProcess:
    """Run a staff script in a real process from another folder."""
    return subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT.parent, env={**os.environ, "PORTAL_AUTHOR": author})


def fingerprint(path: Path) -> str:
    """Return a hash of the database's bytes: the file and its write-ahead log.

    Called while this process holds no SQLite connection to the file: closing any descriptor
    of a file drops every POSIX lock the process holds on it, SQLite's included.
    """
    digest = hashlib.sha256()
    for part in (path, Path(f"{path}-wal")):
        # A read-only open of a WAL database may create an empty log beside it: no frame, no change.
        digest.update(part.read_bytes() if part.exists() else b"")
    return digest.hexdigest()


def state(target):
    """Return what must not change: the SQLite file's bytes (``fingerprint``), or every row on PostgreSQL."""
    return contents(target) if "://" in str(target) else fingerprint(Path(target))


def refused(target, script: str, *args, author: str = "anna") -> str:
    """Run a call that must be refused: exit 2, nothing on stdout, the database unchanged; return stderr."""
    before = state(target)
    result = run(script, *args, author=author)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("Error: ")
    assert state(target) == before
    return result.stderr


def when(hours_from_now: float) -> str:
    """Return an ISO time relative to now, in UTC."""
    return db.iso(db.utcnow() + timedelta(hours=hours_from_now))


def opened(target, title="No internet in Pechory") -> int:
    """Open an incident through the script; return its id."""
    result = run("incident.py", "open", "--db", target, "--title", title, "--service", "internet",
                 "--town", "pechory", "--at", when(-1))
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


# --- control characters ---------------------------------------------------------------------


@pytest.mark.parametrize("option,value,char", [
    ("--title", "No internet\x0bin Pechory", "U+000B (vertical tab)"),
    ("--message", "Crew on the way\x1b[31m", "U+001B (escape)"),
    ("--cause", "Cable\x0ccut", "U+000C (form feed)"),
    ("--title", "Broken \x7f text", "U+007F (delete)"),
])
def test_a_control_character_in_any_incident_text_is_refused(db_target, option, value, char):
    args = {"--title": "No internet", "--message": "We are on it", "--cause": "Unknown"}
    args[option] = value
    err = refused(db_target, "incident.py", "open", "--db", db_target, "--service", "internet", "--town",
                  "pechory", *[x for pair in args.items() for x in pair])
    assert f"contains the control character {char}" in err
    assert option.lstrip("-") in err and "remove it" in err


def test_a_control_character_in_a_rollback_or_import_author_is_refused(db_target):
    err = refused(db_target, "layers.py", "rollback", "1", "--db", db_target, "--author", "olga\x1b")
    assert "U+001B (escape)" in err
    err = refused(db_target, "import_coverage.py", ROOT / "geodata" / "coverage.geojson", "--db", db_target,
                  "--author", "olga\x07")
    assert "U+0007 (bell)" in err


def test_a_control_character_in_the_author_is_refused(db_target):
    err = refused(db_target, "incident.py", "open", "--db", db_target, "--title", "x", "--service", "tv",
                  "--town", "pechory", author="anna\x08\x08")
    assert "author 'anna\\x08\\x08' contains the control character U+0008 (backspace)" in err


def test_tabs_and_line_breaks_become_spaces_in_a_title_and_stay_in_a_message(db_target):
    result = run("incident.py", "open", "--db", db_target, "--title", "No internet\tin\r\nPechory ",
                 "--service", "internet", "--town", "pechory", "--message", "Line one\r\nline\ttwo")
    assert result.returncode == 0, result.stderr
    incident_id = int(result.stdout.split()[-1])
    body = create_app({"DATABASE": str(db_target)}).test_client().get(f"/api/v1/incidents/{incident_id}").get_json()
    assert body["title"] == "No internet in Pechory"
    assert body["updates"][0]["message"] == "Line one\nline two"


def test_a_title_stored_before_the_checks_no_longer_breaks_the_feeds_and_can_be_corrected(db_target):
    """A vertical tab already in the database: the feeds answer 200, and `edit` fixes the title."""
    with closing(sql.connect(db_target)) as conn:
        conn.execute("UPDATE incidents SET title = 'Outage\x0bin Dno' WHERE id = 14")
    client = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW}).test_client()
    for url in ("/feeds/incidents.atom", "/feeds/towns/dno.atom"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "Outagein Dno" in response.get_data(as_text=True)
    result = run("incident.py", "edit", "14", "--db", db_target, "--title", "Outage in Dno")
    assert result.returncode == 0, result.stderr
    assert "title: 'Outage\\x0bin Dno' -> 'Outage in Dno'" in result.stdout
    feed = feedparser.parse(client.get("/feeds/incidents.atom").get_data())
    assert any(e.title.startswith("Outage in Dno") for e in feed.entries)


# --- edit and cancel -------------------------------------------------------------------------


def test_edit_corrects_a_published_title_and_message_and_the_audit_keeps_both(db_target):
    incident_id = opened(db_target, "No internat in Pechory")
    assert run("incident.py", "update", incident_id, "--db", db_target, "--status", "identified",
               "--message", "Cable cut by roadwroks").returncode == 0
    title = run("incident.py", "edit", incident_id, "--db", db_target, "--title", "No internet in Pechory",
                author="boris")
    message = run("incident.py", "edit", incident_id, "--db", db_target, "--message", "Cable cut by roadworks",
                  author="boris")
    first = run("incident.py", "edit", incident_id, "--db", db_target, "--update", "1", "--message",
                "A crew is on the way", author="boris")
    assert [r.returncode for r in (title, message, first)] == [0, 0, 0], message.stderr + first.stderr
    body = create_app({"DATABASE": str(db_target)}).test_client().get(f"/api/v1/incidents/{incident_id}").get_json()
    assert body["title"] == "No internet in Pechory"
    assert [u["message"] for u in body["updates"]] == ["A crew is on the way", "Cable cut by roadworks"]
    assert [u["status"] for u in body["updates"]] == ["investigating", "identified"]  # times and statuses kept
    trail = run("audit.py", "--db", db_target, "--incident", incident_id, "--author", "boris").stdout
    assert "incident.edit" in trail and "'No internat in Pechory' -> 'No internet in Pechory'" in trail
    assert "message (update 2): 'Cable cut by roadwroks' -> 'Cable cut by roadworks'" in trail


@pytest.mark.parametrize("args,words", [
    (["--title", "Bad\x0btitle"], "U+000B"),
    ([], "nothing to correct"),
    (["--update", "9", "--message", "x"], "update 9 is not in the timeline"),
    (["--title", "No internet in Pechory"], "is already the title"),
])
def test_a_refused_edit_changes_nothing(db_target, args, words):
    incident_id = opened(db_target)
    assert words in refused(db_target, "incident.py", "edit", incident_id, "--db", db_target, *args)


def test_cancel_calls_off_a_planned_window(db_target):
    made = run("incident.py", "maintenance", "--db", db_target, "--title", "Node upgrade", "--service", "tv",
               "--town", "pechory", "--start", when(48), "--end", when(52))
    window = int(made.stdout.split()[-1])
    done = run("incident.py", "cancel", window, "--db", db_target, "--message", "Postponed; a new date follows")
    assert done.returncode == 0, done.stderr
    assert "already cancelled" in refused(db_target, "incident.py", "cancel", window, "--db", db_target,
                                          "--message", "again")
    client = create_app({"DATABASE": str(db_target)}).test_client()
    body = client.get(f"/api/v1/incidents/{window}").get_json()
    assert body["status"] == "cancelled" and body["active"] is False and body["eta"] is None
    assert body["updates"][-1] == {**body["updates"][-1], "status": "cancelled",
                                   "message": "Postponed; a new date follows"}
    assert window not in [i["id"] for i in client.get("/api/v1/incidents").get_json()["incidents"]]
    page = client.get(f"/incidents/{window}?lang=en").get_data(as_text=True)
    assert "Cancelled" in page and "The maintenance window" not in page
    assert "Отменено" in client.get(f"/incidents/{window}?lang=ru").get_data(as_text=True)
    calendar = client.get("/feeds/maintenance.ics").get_data(as_text=True)
    event = calendar.split(f"UID:incident-{window}@")[1].split("END:VEVENT")[0]
    assert "STATUS:CANCELLED" in event


def test_only_a_maintenance_that_has_not_begun_can_be_cancelled(db_target):
    outage = opened(db_target)
    assert "not a maintenance" in refused(db_target, "incident.py", "cancel", outage, "--db", db_target,
                                          "--message", "x")
    made = run("incident.py", "maintenance", "--db", db_target, "--title", "Work", "--service", "tv",
               "--town", "pechory", "--start", when(-1), "--end", when(2))
    started = int(made.stdout.split()[-1])
    assert "only a window that has not begun" in refused(db_target, "incident.py", "cancel", started, "--db",
                                                         db_target, "--message", "x")


# --- --db must exist ------------------------------------------------------------------------


@pytest.mark.parametrize("script,args", [
    ("incident.py", ["list"]), ("incident.py", ["open", "--title", "x", "--service", "tv", "--town", "a"]),
    ("layers.py", ["list"]), ("export_layers.py", ["OUT"]), ("backup.py", ["OUT/b.sqlite"]),
    ("audit.py", []), ("import_coverage.py", ["geodata/coverage.geojson"]),
    ("import_towns.py", ["geodata/towns.geojson", "--dry-run"]), ("restore.py", ["OUT/b.sqlite"]),
    ("export_static.py", ["OUT"]),
])
def test_a_mistyped_db_is_refused_by_every_script_and_nothing_is_created(tmp_path, script, args):
    typo = tmp_path / "instance" / "portl.sqlite"
    args = [str(a).replace("OUT", str(tmp_path / "out")).replace("geodata/", str(ROOT / "geodata") + "/")
            for a in args]
    result = run(script, *args[:1], "--db", typo, *args[1:])
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--db {typo}: no such file" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_portal_database_is_refused(tmp_path):
    other = tmp_path / "notes.sqlite"
    sqlite3.connect(other).close()
    before = other.read_bytes()
    result = run("incident.py", "list", "--db", other)
    assert result.returncode == 2 and "is not a portal database" in result.stderr
    assert other.read_bytes() == before


# --- imports that would remove most of the layer -------------------------------------------


def _one_polygon(path: Path) -> Path:
    """Write a coverage file with a single fiber polygon in Pechory."""
    gpd.GeoDataFrame({"technology": ["fiber"], "status": ["live"], "max_down_mbps": [100],
                      "max_up_mbps": [100], "feature_id": ["new-1"]},
                     geometry=[shapely.box(27.60, 57.81, 27.61, 57.82)], crs=4326).to_file(path)
    return path


def test_a_one_polygon_import_stops_shows_the_difference_and_needs_replace_all(db_target, tmp_path):
    live = len(create_app({"DATABASE": str(db_target)}).test_client()
               .get("/api/v1/coverage.geojson").get_json()["features"])
    assert live > 10
    file = _one_polygon(tmp_path / "one.geojson")
    before = state(db_target)
    stopped = run("import_coverage.py", file, "--db", db_target)
    assert stopped.returncode == 2 and state(db_target) == before
    assert "removed" in stopped.stdout and "Compared with the live coverage layer: 1 added" in stopped.stdout
    assert f"would remove {live} of the {live} live coverage features (100%)" in stopped.stderr
    assert "--replace-all" in stopped.stderr
    done = run("import_coverage.py", file, "--db", db_target, "--replace-all")
    assert done.returncode == 0, done.stderr
    assert f"0 kept, 1 added, {live} removed" in done.stdout


def test_an_import_that_keeps_most_of_the_layer_needs_no_flag(db_target, tmp_path):
    out = tmp_path / "export"
    assert run("export_layers.py", out, "--db", db_target).returncode == 0
    frame = gpd.read_file(out / "coverage.geojson")
    frame.iloc[: int(len(frame) * 0.9)].to_file(tmp_path / "most.geojson")
    done = run("import_coverage.py", tmp_path / "most.geojson", "--db", db_target)
    assert done.returncode == 0, done.stderr


# --- audit ----------------------------------------------------------------------------------


def test_audit_lists_changes_by_incident_author_and_time(db_target):
    first = opened(db_target)
    second = run("incident.py", "open", "--db", db_target, "--title", "No TV", "--service", "tv", "--town",
                 "pechory", author="boris")
    second_id = int(second.stdout.split()[-1])
    everything = run("audit.py", "--db", db_target).stdout
    by_incident = run("audit.py", "--db", db_target, "--incident", first).stdout
    by_author = run("audit.py", "--db", db_target, "--author", "boris", "--json").stdout
    future = run("audit.py", "--db", db_target, "--since", when(1)).stdout
    assert f"incident:{first}" in everything and f"incident:{second_id}" in everything
    assert f"incident:{second_id}" not in by_incident and "anna" in by_incident
    rows = [json.loads(line) for line in by_author.splitlines()]
    assert [(r["author"], r["subject"], r["detail"]["title"]) for r in rows] == [
        ("boris", f"incident:{second_id}", "No TV")]
    assert future.strip() == "no changes recorded for these filters"
    assert "2026-13-01" in refused(db_target, "audit.py", "--db", db_target, "--since", "2026-13-01")


@pytest.mark.parametrize("script,command", [("incident.py", "edit"), ("incident.py", "cancel"),
                                            ("audit.py", None), ("restore.py", None)])
def test_new_commands_have_help_ending_with_an_example(script, command):
    out = run(script, *([command] if command else []), "--help").stdout.rstrip().splitlines()
    assert out[-1].strip().startswith(f"python scripts/{script}" + (f" {command}" if command else ""))
