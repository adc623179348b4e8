"""Mail for "bring fiber here", with real parts: double opt-in through a real SMTP server (aiosmtpd) and a
real worker process, then staff imports of hand-made GIS files (written by geopandas) through
scripts/import_coverage.py and a rollback through scripts/layers.py: each registrant whose cell
fiber reaches is told once, in their language; nobody else is told anything."""
from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import geopandas as gpd
import pytest
from enginetools import engine_copy
from listening_tools import towns_db
from mailserver import BASE_URL, SmtpServer, body, run_script, start_worker, stop_worker, subject, worker_env
from shapely.geometry import box

from portal import create_app
from portal.data import statements

ROOT = Path(__file__).resolve().parent.parent
IMPORT = ROOT / "scripts" / "import_coverage.py"
LAYERS = ROOT / "scripts" / "layers.py"
SUBSCRIBERS = ROOT / "scripts" / "subscribers.py"
# Alpha is 30.0..30.1 E, 60.0..60.1 N; the village lies in its south-west corner, Beta's field east of it.
VILLAGE = (60.01, 30.01)
FIELD = (60.05, 30.15)
VILLAGE_FIBER = box(30.0, 60.0, 30.03, 60.03)


@pytest.fixture(scope="module")
def towns_template(tmp_path_factory):
    """A database of two hand-made towns (Alpha and Beta) and no coverage, made once."""
    return towns_db(tmp_path_factory.mktemp("towns") / "portal.db")


@pytest.fixture
def path(engine, towns_template, tmp_path, request):
    """The test's own copy of the two towns on the engine under test: a path or a postgresql:// URL."""
    return engine_copy(engine, towns_template, tmp_path, request)


def rows(target, query: str) -> list[tuple]:
    """Return the rows of a query without parameters, as tuples, on either engine."""
    with closing(statements.connect(target)) as conn:
        return [tuple(row) for row in conn.execute(query)]


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def worker(path, smtp):
    proc = start_worker(path, worker_env(smtp.url))
    yield proc
    stop_worker(proc)


def coverage_file(folder: Path, name: str, areas) -> Path:
    """Write a coverage layer as a GeoPackage (or GeoJSON by the name's extension)."""
    frame = gpd.GeoDataFrame(
        [{"feature_id": f"a{n}", "technology": t, "status": s, "max_down_mbps": 500, "max_up_mbps": 500,
          "available_from": d} for n, (t, s, d, _) in enumerate(areas)],
        geometry=[g for *_, g in areas], crs="EPSG:4326")
    out = folder / name
    frame.to_file(out)
    return out


def staff_import(path, file):
    done = run_script(IMPORT, file, "--db", path, "--replace-all", env=worker_env(None))
    assert done.returncode == 0, done.stderr
    return done


def register(client, lat, lon, email, lang, n):
    client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n}"
    sent = client.post("/api/v1/interest", json={"lat": lat, "lon": lon, "email": email, "lang": lang})
    assert sent.status_code == 202, sent.get_json()


def confirm_link(message) -> str:
    text = body(message)
    start = text.index(f"{BASE_URL}/interest/confirm/")
    return text[start:].split()[0].removeprefix(BASE_URL)


def test_confirmed_registrants_are_told_once_when_fiber_arrives(path, tmp_path, smtp, worker):
    # A first coverage layer with no fiber near anyone (cable in Beta).
    staff_import(path, coverage_file(tmp_path, "before.gpkg", [("cable", "live", None, box(30.1, 60.0, 30.2, 60.1))]))
    app = create_app({"DATABASE": str(path), "TESTING": True, "MAILDIR": str(tmp_path / "mail")})
    c = app.test_client()
    register(c, *VILLAGE, "vera@example.org", "ru", 1)
    register(app.test_client(), VILLAGE[0] + 0.0002, VILLAGE[1], "ivan@example.org", "en", 2)
    register(app.test_client(), *FIELD, "far@example.org", "en", 3)
    register(app.test_client(), VILLAGE[0] + 0.0004, VILLAGE[1], "never@example.org", "en", 4)
    register(app.test_client(), VILLAGE[0] + 0.0006, VILLAGE[1], None, "en", 5)  # no e-mail: counted only

    confirmations = smtp.inbox.wait_for(4)
    assert sorted(m["To"] for m in confirmations) == sorted(
        ["vera@example.org", "ivan@example.org", "far@example.org", "never@example.org"])
    [vera] = smtp.inbox.to("vera@example.org")
    assert vera["Content-Language"] == "ru" and "List-Unsubscribe" not in vera
    for person in ("vera@example.org", "ivan@example.org", "far@example.org"):
        opened = c.get(confirm_link(smtp.inbox.to(person)[0]))
        assert opened.status_code == 200 and opened.headers["Cache-Control"] == "no-store"
    time.sleep(1.5)
    assert len(smtp.inbox.messages) == 4  # nothing but the confirmations before the news

    # Fiber reaches the village: those confirmed there are told, once each, in their language.
    staff_import(path, coverage_file(tmp_path, "village.geojson", [
        ("cable", "live", None, box(30.1, 60.0, 30.2, 60.1)), ("fiber", "live", None, VILLAGE_FIBER)]))
    messages = smtp.inbox.wait_for(6)
    news = {m["To"]: m for m in messages[4:]}
    assert set(news) == {"vera@example.org", "ivan@example.org"}
    assert "Оптика" in subject(news["vera@example.org"]) and news["vera@example.org"]["Content-Language"] == "ru"
    assert subject(news["ivan@example.org"]).startswith("Fiber has arrived")
    assert news["ivan@example.org"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # A later import that still covers the village, and a rollback and re-import, tell nobody again.
    staff_import(path, coverage_file(tmp_path, "again.gpkg", [
        ("cable", "live", None, box(30.1, 60.0, 30.2, 60.1)), ("fiber", "live", None, VILLAGE_FIBER.buffer(0.001))]))
    rolled = run_script(LAYERS, "rollback", "2", "--db", path, env=worker_env(None))
    assert rolled.returncode == 0, rolled.stderr
    time.sleep(3)
    assert len(smtp.inbox.messages) == 6
    assert rows(path, "SELECT count(*) FROM letters WHERE state <> 'sent'") == [(0,)]

    # Forgetting on request: the one-click link deletes the registration; the script covers the rest.
    one_click = "".join(news["ivan@example.org"]["List-Unsubscribe"].split()).strip("<>")
    done = app.test_client().post(one_click.removeprefix(BASE_URL))
    assert done.status_code == 200
    forgot = run_script(SUBSCRIBERS, "forget", "VERA@example.org", "--db", path, env=worker_env(None))
    assert forgot.returncode == 0 and "1 fiber registration" in forgot.stdout
    left = [email for (email,) in rows(path, "SELECT email FROM interest WHERE email IS NOT NULL")]
    assert sorted(left) == ["far@example.org", "never@example.org"]


def test_arrival_survives_a_dead_mail_server(path, tmp_path):
    """The arrival event commits with the import; a worker run while the server is down sends it later, once."""
    from listening_tools import settings_for

    from portal.data import db
    from portal.listening import interest, store, worker

    staff_import(path, coverage_file(tmp_path, "before.gpkg", [("cable", "live", None, box(30.1, 60.0, 30.2, 60.1))]))
    with store.transaction(path) as conn:
        item = interest.parse({"lat": VILLAGE[0], "lon": VILLAGE[1], "email": "vera@example.org"}, conn)
        made = interest.register(conn, item, "household-1", db.utcnow())
        interest.confirm(conn, made["token"], db.utcnow())
    server = SmtpServer()
    settings = settings_for(path, SMTP_URL=server.url, MAILDIR=str(tmp_path / "mail"))
    staff_import(path, coverage_file(tmp_path, "planned.gpkg", [
        ("cable", "live", None, box(30.1, 60.0, 30.2, 60.1)), ("fiber", "planned", "2027-05-01", VILLAGE_FIBER)]))
    down = worker.run_once(settings)  # nobody listens on the port
    assert down["sent"] == 0 and down["retry"] >= 1
    server.start()
    try:
        time.sleep(2.5)  # past the first retry (1 s here)
        worker.run_once(settings)
        worker.run_once(settings)
        got = server.inbox.wait_for(2)
        time.sleep(0.5)
        assert [m["To"] for m in server.inbox.messages] == ["vera@example.org"] * 2
        planned = server.inbox.messages[1]
        assert "planned" in subject(planned).lower() or "заплан" in subject(planned).lower()
        assert len({m["Message-ID"] for m in got}) == 2
    finally:
        server.stop()


def test_letters_of_a_killed_worker_are_sent_once(path, tmp_path):
    """A worker killed with letters claimed leaves them 'sending'; the next one recovers and sends each once."""
    import socket

    from listening_tools import settings_for

    from portal.data import db
    from portal.listening import interest, letters, store, worker

    with store.transaction(path) as conn:
        for n, address in enumerate(("a@example.org", "b@example.org")):
            item = interest.parse({"town": "alpha", "email": address}, conn)
            made = interest.register(conn, item, f"household-{n}", db.utcnow())
            interest.confirm(conn, made["token"], db.utcnow())
    server = SmtpServer().start()
    try:
        settings = settings_for(path, SMTP_URL=server.url, MAILDIR=str(tmp_path / "mail"))
        conn = store.connect(path)
        worker.fan_out_due(conn, settings)
        # Claimed by a worker that has died (no such pid on this host), none of them sent yet.
        dead = f"{socket.gethostname()}:999999999:0"
        assert len(letters.claim(conn, dead, time.time())) == 2
        conn.close()
        worker.run_once(settings)
        worker.run_once(settings)
        got = server.inbox.wait_for(2)
        time.sleep(0.5)
        assert sorted(m["To"] for m in server.inbox.messages) == ["a@example.org", "b@example.org"]
        assert len({m["Message-ID"] for m in got}) == 2
    finally:
        server.stop()


def test_a_rollback_that_brings_fiber_back_tells_once(path):
    """Layer 1 had fiber in the village, layer 2 lost it; a household registers; rolling back to 1 tells it."""
    import json

    from portal.data import db, layers
    from portal.listening import interest, store

    fiber = layers.Area("fiber", "live", VILLAGE_FIBER, 500, 500)
    cable = layers.Area("cable", "live", box(30.1, 60.0, 30.2, 60.1), 100, 10)
    with db.writing(path) as conn:
        first = layers.store_layer(conn, "coverage", [fiber, cable], source="one", author="test")
    with db.writing(path) as conn:
        layers.store_layer(conn, "coverage", [cable], source="two", author="test")
    with store.transaction(path) as conn:
        for n, where in enumerate((VILLAGE, FIELD)):
            item = interest.parse({"lat": where[0], "lon": where[1], "email": f"p{n}@example.org"}, conn)
            made = interest.register(conn, item, f"household-{n}", db.utcnow())
            interest.confirm(conn, made["token"], db.utcnow())
    for _ in range(2):  # back to layer 1, then forth to 2 and back again: told once
        with db.writing(path) as conn:
            layers.activate_layer(conn, first)
        with db.writing(path) as conn:
            layers.activate_layer(conn, first + 1)
    events = [json.loads(payload) for (payload,) in
              rows(path, "SELECT payload FROM outbox WHERE kind = 'coverage_arrived'")]
    told = dict(rows(path, "SELECT email, told FROM interest"))
    assert [[a["status"] for a in e["arrivals"]] for e in events] == [["live"]]
    assert told == {"p0@example.org": "live", "p1@example.org": None}
