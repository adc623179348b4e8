"""Subscriptions, registered interest, feedback, coverage arrival and rate counts, called directly.

Every test runs twice: on SQLite and on PostgreSQL (a private cluster), on the test's own copy of
the demo database (``write_conn``), and checks answers worked out by hand. Letters (``letters``)
are recorded by a stand-in: what these modules ask to be sent is checked here, the letters
themselves in ``test_interest_mail``.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
import shapely
from shapely.geometry import box

from portal.data import layers
from portal.listening import arrival, cells, feedback, interest, letters, ratelimit, store, subscriptions

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
PECHORY = (57.812371, 27.614539)  # a point inside Pechory's extent
NOWHERE = (61.5, 31.5)  # outside every town of the demo


@pytest.fixture
def conn(write_conn):
    return write_conn


@pytest.fixture
def sent(monkeypatch):
    """Record the letters asked for: ``[(kind, payload)]``."""
    asked: list = []

    def record(conn, kind, payload):
        asked.append((kind, payload))
        return len(asked)

    monkeypatch.setattr(letters, "record", record)
    return asked


def values(conn, query: str) -> list[tuple]:
    """Return the rows of a query (plain SQL valid on both engines) as tuples."""
    return [tuple(r) for r in conn.execute(query).fetchall()]


def request(email="vera@example.org", *, town="pechory", point=None, services=("internet",), lang="ru"):
    cell = lat = lon = None
    if point is not None:
        town = None
        cell, lat, lon = cells.cell_of(*point)
    return subscriptions.Request(channel="email", address=email, town=town, cell=cell, lat=lat, lon=lon,
                                 services=services, lang=lang)


# Subscriptions


def test_places_are_towns_of_the_live_layer(conn):
    assert subscriptions.known_town(conn, "pechory") and not subscriptions.known_town(conn, "atlantis")
    assert subscriptions.town_at(conn, *PECHORY) == "pechory"
    assert subscriptions.town_at(conn, *NOWHERE) is None
    assert subscriptions.parse_place({"town": " Pechory "}, conn) == ("pechory", None, None, None)
    with pytest.raises(subscriptions.SubscriptionError) as refused:
        subscriptions.parse_place({"town": "atlantis"}, conn)
    assert refused.value.field == "town"


def test_subscribe_confirm_replace_unsubscribe(conn):
    first = subscriptions.subscribe(conn, request(), NOW)
    second = subscriptions.subscribe(conn, request(services=("internet", "tv"), lang="en"), NOW)
    assert second["id"] > first["id"] and first["secret"] is None
    # One confirmation each, in the outbox, and nothing else until a link is opened.
    assert values(conn, "SELECT kind, subscription_id FROM outbox ORDER BY id") == [
        ("confirm", first["id"]), ("confirm", second["id"])]
    row = subscriptions.find(conn, first["token"])
    assert row["id"] == first["id"] and row["address"] == "vera@example.org" and row["confirmed_at"] is None
    assert subscriptions.find(conn, "x" * 20) is None and subscriptions.find(conn, "short") is None

    assert subscriptions.confirm(conn, first["token"], NOW) == {
        "town": "pechory", "cell": None, "lat": None, "lon": None, "services": ["internet"], "lang": "ru",
        "channel": "email", "confirmed": True}
    assert subscriptions.confirm(conn, first["token"], NOW + timedelta(hours=1))["confirmed"]  # again: fine
    assert values(conn, "SELECT confirmed_at FROM subscriptions WHERE id = " + str(first["id"])) == [
        ("2026-11-22T12:00:00Z",)]
    # The same address confirming again for the same place replaces its older subscription.
    assert subscriptions.confirm(conn, second["token"], NOW)["services"] == ["internet", "tv"]
    assert values(conn, "SELECT id, services FROM subscriptions") == [(second["id"], 3)]
    assert subscriptions.confirm(conn, "y" * 32, NOW) is None

    assert subscriptions.unsubscribe(conn, second["token"]) is True
    assert subscriptions.unsubscribe(conn, second["token"]) is False
    assert values(conn, "SELECT count(*) FROM subscriptions") == [(0,)]


def test_a_point_and_a_town_of_one_address_are_both_kept(conn):
    town = subscriptions.subscribe(conn, request(), NOW)
    point = subscriptions.subscribe(conn, request(point=PECHORY), NOW)
    subscriptions.confirm(conn, town["token"], NOW)
    subscriptions.confirm(conn, point["token"], NOW)
    assert sorted(r[0] for r in values(conn, "SELECT id FROM subscriptions")) == [town["id"], point["id"]]
    assert subscriptions.unsubscribe_id(conn, point["id"]) is True
    assert subscriptions.unsubscribe_id(conn, point["id"]) is False


def test_counts_per_place_and_service_without_addresses(conn):
    a = subscriptions.subscribe(conn, request("a@example.org"), NOW)
    subscriptions.subscribe(conn, request("b@example.org", services=("internet", "phone")), NOW)
    c = subscriptions.subscribe(conn, request("c@example.org", point=PECHORY, services=("tv",)), NOW)
    subscriptions.subscribe(conn, request("d@example.org", point=NOWHERE, services=("tv",)), NOW)
    subscriptions.subscribe(conn, request("e@example.org", town="pskov"), NOW)
    subscriptions.confirm(conn, a["token"], NOW)
    subscriptions.confirm(conn, c["token"], NOW)
    # A staff subscription is not a customer's: never counted.
    staff = subscriptions.subscribe(conn, request("staff@example.org"), NOW)
    conn.execute(f"UPDATE subscriptions SET staff = 1 WHERE id = {staff['id']}")

    def entry(town, kind, service, confirmed, pending):
        return {"town": town, "kind": kind, "service": service, "confirmed": confirmed, "pending": pending}

    assert subscriptions.counts(conn) == [
        entry("(point)", "point", "tv", 0, 1),
        entry("pechory", "point", "tv", 1, 0),
        entry("pechory", "town", "internet", 1, 1),
        entry("pechory", "town", "phone", 0, 1),
        entry("pskov", "town", "internet", 0, 1),
    ]


def test_forget_and_purge_unconfirmed(conn):
    subscriptions.subscribe(conn, request(), NOW)
    subscriptions.subscribe(conn, request(town="pskov"), NOW)
    kept = subscriptions.subscribe(conn, request("ivan@example.org"), NOW)
    assert subscriptions.forget(conn, " Vera@Example.org ") == 2
    assert subscriptions.forget(conn, "vera@example.org") == 0
    late = subscriptions.subscribe(conn, request("anna@example.org"), NOW + timedelta(days=3))
    subscriptions.confirm(conn, late["token"], NOW + timedelta(days=3))
    assert subscriptions.purge_unconfirmed(conn, NOW + timedelta(days=6)) == 0
    assert subscriptions.purge_unconfirmed(conn, NOW + timedelta(days=7, minutes=1)) == 1  # ivan's
    assert subscriptions.find(conn, kept["token"]) is None
    assert subscriptions.purge_unconfirmed(conn, NOW + timedelta(days=30)) == 0  # anna's is confirmed
    assert values(conn, "SELECT address FROM subscriptions") == [("anna@example.org",)]


# Registered interest

VILLAGE = (57.8123, 27.6145)  # inside Pechory


def register(conn, data, household):
    return interest.register(conn, interest.parse(data, conn), household, NOW)


def test_one_household_counts_once_and_towns_are_counted(conn, sent):
    assert register(conn, {"town": "pechory"}, "h1") == {"counted": True, "token": None}
    assert register(conn, {"town": "pechory"}, "h1") == {"counted": False, "token": None}
    register(conn, {"town": "pechory"}, "h2")
    register(conn, {"town": "pskov"}, "h3")
    register(conn, {"lat": VILLAGE[0], "lon": VILLAGE[1]}, "h4")  # a point counts in its town too
    register(conn, {"lat": NOWHERE[0], "lon": NOWHERE[1]}, "h5")  # a point in no town
    assert interest.town_counts(conn) == {"pechory": 3, "pskov": 1}
    assert interest.households(conn, "pechory") == 3 and interest.households(conn, "gdov") == 0
    assert values(conn, "SELECT count(*) FROM interest") == [(5,)]
    assert sent == []  # nobody left an address


def test_cells_threshold_and_staff_rows(conn):
    for n in range(12):  # twelve homes a metre or so apart: one public cell
        register(conn, {"lat": VILLAGE[0] + n * 1e-5, "lon": VILLAGE[1]}, f"v{n}")
    register(conn, {"lat": NOWHERE[0], "lon": NOWHERE[1]}, "far")
    register(conn, {"town": "gdov"}, "g1")
    register(conn, {"town": "gdov"}, "g2")
    big, big_lat, big_lon = cells.cell_of(*cells.cell_of(*VILLAGE)[1:], 250)
    far, far_lat, far_lon = cells.cell_of(*cells.cell_of(*NOWHERE)[1:], 250)
    assert interest.cell_counts(conn) == [
        {"cell": big, "lat": big_lat, "lon": big_lon, "size_m": 250.0, "households": 12}]
    assert sorted(c["households"] for c in interest.cell_counts(conn, minimum=1)) == [1, 12]

    assert interest.demand(conn, "pechory") == {"households": 12}
    interest.set_threshold(conn, "pechory", 48, "2027-06-30", NOW)
    assert interest.demand(conn, "pechory") == {"households": 12, "threshold": 48, "deadline": "2027-06-30",
                                                "progress": 0.25}
    interest.set_threshold(conn, "pechory", 10, None, NOW)  # replaced, not added
    assert interest.demand(conn, "pechory") == {"households": 12, "threshold": 10, "deadline": None,
                                                "progress": 1.0}
    assert values(conn, "SELECT count(*) FROM demand_thresholds") == [(1,)]

    rows = interest.staff_rows(conn)
    assert [(r["kind"], r["cell"], r["town"], r["households"]) for r in rows] == sorted(
        [("cell", big, "pechory", 12), ("cell", far, None, 1)], key=lambda r: (r[1], r[2] or "")) + [
        ("town", None, "gdov", 2)]
    town_row = rows[-1]
    assert (town_row["lat"], town_row["lon"]) == (58.74439, 27.81959)  # Gdov's centre in the towns layer


def test_an_address_is_confirmed_forgotten_or_purged(conn, sent):
    made = register(conn, {"town": "pechory", "email": "Vera@Example.org"}, "h1")
    assert made["counted"] and made["token"]
    [(interest_id,)] = values(conn, "SELECT id FROM interest")
    assert sent == [("interest_confirm", {"interest_id": interest_id})]
    assert register(conn, {"town": "pechory", "email": "vera@example.org"}, "h1") == {"counted": False,
                                                                                       "token": None}
    assert interest.is_known_link(conn, made["token"]) and not interest.is_known_link(conn, "z" * 30)
    assert interest.confirm(conn, made["token"], NOW) is True
    assert interest.confirm(conn, made["token"], NOW + timedelta(days=1)) is True  # kept the first time
    assert values(conn, "SELECT email, confirmed_at FROM interest") == [("vera@example.org",
                                                                         "2026-11-22T12:00:00Z")]
    assert interest.confirm(conn, "z" * 30, NOW) is False

    pending = register(conn, {"town": "pskov", "email": "ivan@example.org"}, "h2")
    register(conn, {"town": "gdov", "email": "ivan@example.org"}, "h3")
    assert interest.purge_unconfirmed(conn, NOW + timedelta(days=6)) == 0
    assert interest.purge_unconfirmed(conn, NOW + timedelta(days=8)) == 2  # the addresses go, not the counts
    assert interest.town_counts(conn) == {"pechory": 1, "pskov": 1, "gdov": 1}
    assert interest.is_known_link(conn, pending["token"]) is False

    assert interest.forget_link(conn, made["token"]) is True  # the registration goes with its address
    assert interest.forget_link(conn, made["token"]) is False
    register(conn, {"town": "pechory", "email": "anna@example.org"}, "h4")
    register(conn, {"town": "gdov", "email": "anna@example.org"}, "h5")
    assert interest.forget(conn, "ANNA@example.org") == 2
    assert interest.town_counts(conn) == {"pskov": 1, "gdov": 1}


# Feedback


def report(town="pechory", email=None):
    return feedback.Feedback(town, None, None, None, "fiber", "wrong here", email, "en")


def test_town_stats_count_open_reports_and_the_median_wait(conn):
    for days in (1, 3, 10):
        n = feedback.submit(conn, report(), NOW)
        feedback.answer(conn, n, "ok", "anna", NOW + timedelta(days=days))
    closed = feedback.submit(conn, report(), NOW)
    feedback.close(conn, closed, NOW)
    feedback.submit(conn, report(), NOW)
    feedback.submit(conn, report("pskov"), NOW)
    assert feedback.town_stats(conn, "pechory", 30) == {"open": 4, "answered": 3, "median_days_to_answer": 3.0,
                                                        "promised_days": 30}
    assert feedback.town_stats(conn, "gdov", 14) == {"open": 0, "answered": 0, "median_days_to_answer": None,
                                                     "promised_days": 14}
    assert len(feedback.staff_list(conn)) == 5 and len(feedback.staff_list(conn, everything=True)) == 6
    assert [r["id"] for r in feedback.staff_list(conn)] == sorted((r["id"] for r in feedback.staff_list(conn)),
                                                                 reverse=True)


def test_answer_close_and_the_letters_they_make(conn, sent):
    quiet = feedback.submit(conn, report(), NOW)
    assert feedback.answer(conn, quiet, "checked", "anna", NOW) is False  # no address: nothing to send
    mailed = feedback.submit(conn, report(email="vera@example.org"), NOW)
    assert sent == [("feedback_confirm", {"feedback_id": mailed})]
    assert feedback.answer(conn, mailed, "first", "anna", NOW + timedelta(days=1)) is False  # not confirmed
    # Confirming later sends the answer given meanwhile; a later answer keeps the first answer's time.
    [(token,)] = values(conn, f"SELECT token FROM feedback WHERE id = {mailed}")
    assert feedback.confirm(conn, token, NOW + timedelta(days=2)) is True
    assert sent[-1] == ("feedback_answered", {"feedback_id": mailed})
    assert feedback.answer(conn, mailed, "second", "ivan", NOW + timedelta(days=5)) is True
    row = feedback.get(conn, mailed)
    assert (row["answer"], row["answered_by"], row["answered_at"]) == ("second", "ivan", "2026-11-23T12:00:00Z")
    assert len(sent) == 3

    feedback.close(conn, mailed, NOW)
    with pytest.raises(feedback.FeedbackError, match="already closed"):
        feedback.close(conn, mailed, NOW)
    with pytest.raises(feedback.FeedbackError, match="is closed"):
        feedback.answer(conn, mailed, "third", "anna", NOW)
    with pytest.raises(feedback.FeedbackError, match=f"no feedback report 999; open reports: {quiet}"):
        feedback.get(conn, 999)


def test_feedback_addresses_are_forgotten_and_purged(conn, sent):
    one = feedback.submit(conn, report(email="vera@example.org"), NOW)
    feedback.submit(conn, report("pskov", email="vera@example.org"), NOW)
    feedback.submit(conn, report(email="ivan@example.org"), NOW)
    [(token,)] = values(conn, f"SELECT token FROM feedback WHERE id = {one}")
    assert feedback.forget_link(conn, token) is True and feedback.forget_link(conn, token) is False
    assert feedback.confirm(conn, token, NOW) is False  # the link no longer names an address
    assert feedback.forget(conn, "VERA@example.org") == 1
    assert feedback.purge_unconfirmed(conn, NOW + timedelta(days=6)) == 0
    assert feedback.purge_unconfirmed(conn, NOW + timedelta(days=8)) == 1
    assert values(conn, "SELECT count(*) FROM feedback WHERE email IS NOT NULL") == [(0,)]
    assert values(conn, "SELECT count(*) FROM feedback") == [(3,)]  # the reports stay for staff


# Coverage arrival


def confirmed(conn, data, household):
    made = register(conn, {**data, "email": f"{household}@example.org"}, household)
    interest.confirm(conn, made["token"], NOW)
    [(found,)] = values(conn, f"SELECT id FROM interest WHERE household = '{household}'")
    return found


def fiber(status, geometry, available_from=None):
    return layers.Area(technology="fiber", status=status, geometry=geometry, available_from=available_from)


def test_arrival_tells_each_household_once_per_step(conn, sent):
    point = confirmed(conn, {"lat": VILLAGE[0], "lon": VILLAGE[1]}, "p")
    town = confirmed(conn, {"town": "pskov"}, "t")
    register(conn, {"town": "pskov", "email": "unconfirmed@example.org"}, "u")  # never told anything
    sent.clear()
    near = box(VILLAGE[1] - 0.01, VILLAGE[0] - 0.01, VILLAGE[1] + 0.01, VILLAGE[0] + 0.01)
    pskov = shapely.Point(28.33181, 57.81922).buffer(0.01)  # around the town's centre
    planned = [fiber("planned", near, "2027-05-01"), fiber("planned", pskov, "2027-03-01"),
               layers.Area(technology="dsl", status="live", geometry=pskov)]
    assert arrival.coverage_changed(conn, None, planned) == 1
    assert sent == [("coverage_arrived", {"arrivals": [
        {"interest_id": point, "status": "planned", "available_from": "2027-05-01"},
        {"interest_id": town, "status": "planned", "available_from": "2027-03-01"}]})]
    assert arrival.coverage_changed(conn, None, planned) is None  # told already
    assert arrival.coverage_changed(conn, None, [fiber("live", near)]) == 2
    assert sent[-1] == ("coverage_arrived", {"arrivals": [
        {"interest_id": point, "status": "live", "available_from": None}]})
    assert arrival.coverage_changed(conn, None, [fiber("live", near), fiber("live", pskov)]) == 3
    assert sent[-1][1]["arrivals"] == [{"interest_id": town, "status": "live", "available_from": None}]
    assert arrival.coverage_changed(conn, None, [fiber("live", near), fiber("live", pskov)]) is None
    assert sorted(values(conn, "SELECT household, told FROM interest")) == [("p", "live"), ("t", "live"),
                                                                           ("u", None)]


def test_arrival_reads_the_stored_layers_fiber(conn, sent, demo_db_template):
    # The live coverage layer as layers.load_coverage reads it on SQLite: the answer on every engine.
    with sqlite3.connect(demo_db_template) as template:
        template.row_factory = sqlite3.Row
        live = layers.live_layer_ids(template)["coverage"]
        expected = [a for a in layers.load_coverage(template, live) if a.technology == "fiber"]
    found = arrival._fiber(conn, live)
    assert len(found) == len(expected) == 31
    for got, want in zip(found, expected):
        assert (got.feature_id, got.status, got.available_from, got.max_down_mbps) == (
            want.feature_id, want.status, want.available_from, want.max_down_mbps)
        assert got.geometry.equals_exact(want.geometry, 1e-9)
    # A household whose cell's centre live fiber covers.
    centres = (cells.cell_of(p.y, p.x)[1:] for p in (a.geometry.representative_point() for a in expected))
    lat, lon = next((lat, lon) for lat, lon in centres
                    if arrival.state(expected, shapely.Point(lon, lat)) == ("live", None))
    household = confirmed(conn, {"lat": lat, "lon": lon}, "h")
    sent.clear()
    # Switching from no layer to the live one tells the household; the same layer again does not.
    assert arrival.coverage_changed(conn, None, live) == 1
    assert sent == [("coverage_arrived", {"arrivals": [
        {"interest_id": household, "status": "live", "available_from": None}]})]
    assert arrival.coverage_changed(conn, live, live) is None


# Rate counts in the database


def test_the_next_hit_past_the_limit_waits_for_the_window(db_target, conn):
    settings = SimpleNamespace(redis_url=None, database=db_target)
    limits = {"client": (3, 3600)}
    start = 1_795_000_000 // 3600 * 3600  # the start of an hour
    for n in range(3):
        ratelimit.hit(settings, "client", "10.0.0.1", limits, now=start + 100 + n)
    with pytest.raises(ratelimit.Limited) as limited:
        ratelimit.hit(settings, "client", "10.0.0.1", limits, now=start + 1000)
    assert limited.value.retry_after == 2600 and limited.value.name == "client"
    ratelimit.hit(settings, "client", "10.0.0.2", limits, now=start + 1000)  # another client: its own count
    with pytest.raises(ratelimit.Limited) as last_second:
        ratelimit.hit(settings, "client", "10.0.0.1", limits, now=start + 3599.5)
    assert last_second.value.retry_after == 1  # never 0
    ratelimit.hit(settings, "client", "10.0.0.1", limits, now=start + 3600)  # a new window starts again
    assert sorted(values(conn, "SELECT key, count FROM rate_counts")) == [
        ("client:10.0.0.1", 1), ("client:10.0.0.1", 5), ("client:10.0.0.2", 1)]


def test_a_hit_in_a_rolled_back_write_is_not_counted(db_target, conn):
    settings = SimpleNamespace(redis_url=None, database=db_target)
    limits = {"email": (1, 86400)}
    day = 1_795_000_000 // 86400 * 86400
    with store.transaction(conn):
        ratelimit.hit_in(conn, settings, "email", "k", limits, now=day + 10)
    with pytest.raises(ratelimit.Limited) as limited:
        with store.transaction(conn):
            ratelimit.hit_in(conn, settings, "email", "k", limits, now=day + 86400 - 10)
    assert limited.value.retry_after == 10
    assert values(conn, "SELECT count FROM rate_counts") == [(1,)]  # the refused hit rolled back
