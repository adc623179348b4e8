"""Registered interest: one household once, counts per town and per public cell, thresholds, privacy.

Every test that touches the database runs twice: on SQLite and on PostgreSQL (the hand-made towns of ``path``
or the demo database copied there).
"""
from __future__ import annotations

from contextlib import closing

import pytest
from enginetools import contents
from listening_tools import towns_db

from portal.data import db, statements
from portal.listening import cells, interest, store
from portal.listening.subscriptions import SubscriptionError

# A point inside Alpha (30.0..30.1 E, 60.0..60.1 N) and one outside every town.
VILLAGE = (60.05, 30.05)
NOWHERE = (61.5, 31.5)


_pg_databases = iter(range(1, 1_000_000))


@pytest.fixture
def sqlite_path(tmp_path):
    return towns_db(tmp_path / "portal.db")


@pytest.fixture
def path(engine, sqlite_path, request):
    """The towns of Alpha and Beta on the engine under test: an SQLite path or a postgresql:// URL."""
    if engine == "sqlite":
        return sqlite_path
    import psycopg

    from portal.data import transfer

    host = request.getfixturevalue("pg_server")
    name = f"interest_test_{next(_pg_databases)}"
    with psycopg.connect(f"host={host} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://bench@/{name}?host={host}"
    transfer.move(str(sqlite_path), url)
    return url


def register(path, data, client="10.0.0.1", cookie="c"):
    with store.transaction(path) as conn:
        item = interest.parse(data, conn)
        key = interest.household_key("salt", client, cookie, item.place)
        return interest.register(conn, item, key, db.utcnow())


def test_one_household_counts_once_per_place(path):
    assert register(path, {"town": "alpha"})["counted"]
    assert not register(path, {"town": "alpha"})["counted"]
    assert register(path, {"town": "alpha"}, cookie="other")["counted"]
    assert register(path, {"town": "beta"})["counted"]
    with store.transaction(path) as conn:
        assert interest.town_counts(conn) == {"alpha": 2, "beta": 1}


def test_twelve_households_near_the_village_count_in_town_and_cell(path):
    for n in range(12):
        # Twelve homes a few metres apart: all in one public cell.
        register(path, {"lat": VILLAGE[0] + n * 1e-5, "lon": VILLAGE[1]}, client=f"10.0.0.{n}")
    register(path, {"lat": NOWHERE[0], "lon": NOWHERE[1]})
    with store.transaction(path) as conn:
        assert interest.demand(conn, "alpha") == {"households": 12}
        shown = interest.cell_counts(conn)
        hidden = interest.cell_counts(conn, minimum=1)
    big, _, _ = cells.cell_of(*cells.cell_of(*VILLAGE)[1:], 250)
    assert [(c["cell"], c["households"]) for c in shown] == [(big, 12)]
    # The lone registration outside every town is counted but below the minimum to be shown.
    assert sorted(c["households"] for c in hidden) == [1, 12]
    assert all(c["size_m"] >= 250 for c in hidden)
    with pytest.raises(ValueError):
        interest.cell_counts(conn, size_m=100)


def test_threshold_progress_and_deadline(path):
    for n in range(3):
        register(path, {"town": "alpha"}, client=f"10.0.1.{n}")
    with store.transaction(path) as conn:
        interest.set_threshold(conn, "alpha", 12, "2027-06-30", db.utcnow())
        assert interest.demand(conn, "alpha") == {"households": 3, "threshold": 12, "deadline": "2027-06-30",
                                                  "progress": 0.25}
        interest.set_threshold(conn, "alpha", 2, None, db.utcnow())
        assert interest.demand(conn, "alpha")["progress"] == 1.0


@pytest.mark.parametrize("data, field", [
    ({}, "town"), ({"town": "atlantis"}, "town"), ({"lat": 91, "lon": 30}, "lat"),
    ({"lat": 60, "lon": "x"}, "lon"), ({"town": "alpha", "lat": 60, "lon": 30}, "town"),
    ({"town": "alpha", "email": "not an address"}, "email"), ({"town": "alpha", "lang": "de"}, "lang"),
])
def test_bad_input_names_the_field(path, data, field):
    with pytest.raises(SubscriptionError) as caught:
        register(path, data)
    assert caught.value.field == field


def _stored(target, skip=()) -> str:
    """Every stored row of every table (but those in ``skip``) as text, one row a line."""
    return "\n".join(f"{table}: {row}" for table, rows in contents(target).items() if table not in skip
                     for row in rows)


def test_no_point_or_client_is_stored(path):
    lat, lon = 60.051234, 30.054321
    register(path, {"lat": lat, "lon": lon, "email": "a@example.org"}, client="203.0.113.9",
             cookie="secret-c")
    text = _stored(path)
    for needle in (str(lat), str(lon), "203.0.113.9", "secret-c", "60.0512", "30.0543"):
        assert needle not in text


# The web side, on the demo region: Pechory holds the point below.
PECHORY = (57.812371, 27.614539)


def _household(app, n):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = f"198.51.100.{n}"
    return c


def test_twelve_households_show_in_the_town_answer_and_the_layer(app):
    for n in range(12):
        c = _household(app, n)
        sent = c.post("/api/v1/interest", json={"lat": PECHORY[0] + n * 2e-5, "lon": PECHORY[1]})
        assert sent.status_code == 202 and sent.get_json() == {"status": "counted"}
        again = c.post("/api/v1/interest", json={"lat": PECHORY[0] + n * 2e-5, "lon": PECHORY[1]})
        assert again.get_json() == {"status": "already counted"}
    assert app.test_client().post("/api/v1/interest", json={"town": "pechory"}).status_code == 202
    town = app.test_client().get("/api/v1/towns/pechory").get_json()
    assert town["demand"] == {"households": 13}
    layer = app.test_client().get("/api/v1/demand.geojson")
    assert layer.mimetype == "application/geo+json"
    assert [f["properties"]["households"] for f in layer.get_json()["features"]] == [12]
    # Privacy: no submitted coordinate in any public answer nor in the stored rows.
    # (Rate-limit windows key the client address for an hour, as for subscriptions; not a record of interest.)
    stored = _stored(app.config["DATABASE"], skip=("rate_counts",))
    for text in (str(town), layer.get_data(as_text=True), stored):
        for needle in ("57.81237", "27.61453", "198.51.100"):
            assert [line[:200] for line in text.splitlines() if needle in line] == []


def test_api_refuses_bad_fields_and_limits_clients(db_target):
    from portal import create_app
    app = create_app({"DATABASE": str(db_target), "TESTING": True,
                      "RATE_LIMITS": {"client": (2, 3600), "email": (5, 86400)}})
    c = app.test_client()
    bad = c.post("/api/v1/interest", json={"lat": 57.8, "lon": 200})
    assert bad.status_code == 400 and bad.get_json()["field"] == "lon"
    assert c.post("/api/v1/interest", data="x").get_json()["field"] == "body"
    assert c.post("/api/v1/interest", json={"town": "pechory"}).status_code == 202
    limited = c.post("/api/v1/interest", json={"town": "pechory"})
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_form_post_needs_the_same_site_and_ignores_robots(app):
    c = app.test_client()
    cross = c.post("/interest", data={"town": "pechory"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    same = {"Sec-Fetch-Site": "same-origin"}
    robot = c.post("/interest", data={"town": "pechory", "website": "x"}, headers=same)
    assert robot.status_code == 202
    person = c.post("/interest", data={"town": "pechory"}, headers={"Sec-Fetch-Site": "same-origin"})
    assert person.status_code == 202
    assert c.get("/api/v1/towns/pechory").get_json()["demand"]["households"] == 1


def test_town_page_shows_demand_and_the_form(app):
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    for n in range(2):
        _household(app, n).post("/api/v1/interest", json={"town": "pechory"})
    page = c.get("/towns/pechory").get_data(as_text=True)
    assert "2 households asked for fiber here." in page
    assert 'action="/interest"' in page and "<script>" not in page
    check = c.get(f"/check?lat={PECHORY[0]}&lon={PECHORY[1]}")
    assert 'id="interest"' in check.get_data(as_text=True)


def test_threshold_progress_on_the_russian_town_page(app):
    for n in range(3):
        _household(app, n).post("/api/v1/interest", json={"town": "pechory"})
    with store.transaction(app.config["DATABASE"]) as conn:
        interest.set_threshold(conn, "pechory", 12, "2027-06-30", db.utcnow())
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    page = c.get("/towns/pechory").get_data(as_text=True)
    assert "Оптику здесь попросили 3 домохозяйства." in page
    assert "попросят 12 домохозяйств" in page and 'value="0.25"' in page


def test_towns_list_sorts_by_demand_and_maps_load_the_demand_layer(app):
    for n in range(3):
        _household(app, n).post("/api/v1/interest", json={"town": "pechory"})
    _household(app, 9).post("/api/v1/interest", json={"town": "pskov"})
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = c.get("/towns?sort=demand&order=desc&page=all").get_data(as_text=True)
    assert "Households asking for fiber ↓" in page
    first_rows = page.split('<tbody>')[1].split("</tr>")[:2]
    assert "/towns/pechory" in first_rows[0] and "/towns/pskov" in first_rows[1]
    csv_text = c.get("/towns.csv?sort=demand&order=desc").get_data(as_text=True).splitlines()
    assert csv_text[0].endswith(",demand") and csv_text[1].startswith("pechory,") and csv_text[1].endswith(",3")
    for url in ("/", "/towns/pechory", f"/check?lat={PECHORY[0]}&lon={PECHORY[1]}"):
        assert '"demandUrl":"/api/v1/demand.geojson"' in c.get(url).get_data(as_text=True)


def test_an_address_given_is_only_sent_a_confirmation(app):
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = c.post("/interest", data={"town": "pechory", "email": "vera@example.org"},
                  headers={"Sec-Fetch-Site": "same-origin"})
    assert page.status_code == 202 and 'id="interest-confirm"' in page.get_data(as_text=True)
    answer = _household(app, 7).post("/api/v1/interest", json={"town": "pskov", "email": "ivan@example.org"})
    assert answer.get_json() == {"status": "counted", "confirmation": "sent"}
    with closing(statements.connect(app.config["DATABASE"])) as conn:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM outbox ORDER BY id")]
    assert kinds[-2:] == ["interest_confirm", "interest_confirm"]
