"""Subscribing on the web: the JSON API, the pages' form (CSRF, honeypot), rate limits, the links,
privacy (no exact point, no address kept after unsubscribing or 7 days unconfirmed), the staff script."""
from __future__ import annotations

import importlib.util
from contextlib import closing
from datetime import timedelta

import pytest
from click.testing import CliRunner
from enginetools import contents
from tests_paths import ROOT

from portal import create_app
from portal.data import db, statements
from portal.listening import store, subscriptions

spec = importlib.util.spec_from_file_location("subscribers_script", ROOT / "scripts" / "subscribers.py")
subscribers_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(subscribers_script)

SAME = {"Sec-Fetch-Site": "same-origin"}
GOOD = {"email": "vera@example.org", "town": "pechory", "services": ["internet"], "lang": "ru"}


@pytest.fixture
def target(app) -> str:
    """The database the app under test runs on: an SQLite path or a postgresql:// URL."""
    return app.config["DATABASE"]


def rows(target, sql="SELECT * FROM subscriptions ORDER BY id"):
    """Return rows of the database (on either engine) as dicts."""
    with closing(statements.connect(target)) as conn:
        return [dict(r) for r in conn.execute(sql)]


def dump(target) -> str:
    """Return every row of every table as text, to look for what must not be kept."""
    return repr(contents(target))


def test_the_api_answers_202_pending_and_queues_one_confirmation(client, target):
    answer = client.post("/api/v1/subscriptions", json=GOOD)
    assert answer.status_code == 202 and answer.json == {"status": "pending"}
    [sub] = rows(target)
    assert sub["confirmed_at"] is None and sub["town"] == "pechory" and sub["lang"] == "ru"
    assert [r["kind"] for r in rows(target, "SELECT kind FROM outbox WHERE state = 'pending'")] == ["confirm"]


@pytest.mark.parametrize("change, field", [
    ({"email": "not-an-address"}, "email"),
    ({"email": None}, "email"),
    ({"town": "atlantis"}, "town"),
    ({"town": None}, "town"),
    ({"services": ["radio"]}, "services"),
    ({"services": []}, "services"),
    ({"lang": "de"}, "lang"),
    ({"town": None, "lat": 95, "lon": 27.6}, "lat"),
    ({"town": None, "lat": 57.8, "lon": "east"}, "lon"),
    ({"webhook": "ftp://example.org/hook"}, "webhook"),
])
def test_bad_fields_get_400_naming_the_field(client, target, change, field):
    answer = client.post("/api/v1/subscriptions", json={**GOOD, **change})
    assert answer.status_code == 400
    assert answer.json["field"] == field and field in answer.json["error"]
    assert rows(target) == []


def test_a_body_that_is_not_json_gets_400(client):
    answer = client.post("/api/v1/subscriptions", data="email=x", content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400 and answer.json["field"] == "body"


def test_a_point_is_kept_only_as_its_cell(client, target):
    answer = client.post("/api/v1/subscriptions", json={**GOOD, "town": None, "lat": 57.81234, "lon": 27.60987})
    assert answer.status_code == 202
    [sub] = rows(target)
    assert sub["cell"] and (sub["lat"], sub["lon"]) != (57.81234, 27.60987)
    assert abs(sub["lat"] - 57.81234) < 0.001 and abs(sub["lon"] - 27.60987) < 0.002
    assert "57.81234" not in dump(target) and "27.60987" not in dump(target)


def test_the_form_is_on_the_town_point_and_incident_pages(client):
    town = client.get("/towns/pechory").data.decode()
    assert 'name="town" value="pechory"' in town and 'src="/static/js/subscribe.js"' in town
    check = client.get("/check?lat=57.815&lon=27.606").data.decode()
    assert 'name="lat" value="57.81500"' in check
    incident = client.get("/incidents/3").data.decode()  # the demo's active outage in Velikiye Luki
    assert '<option value="velikiye-luki">' in incident
    assert client.get("/static/js/subscribe.js").status_code == 200


def test_the_form_posts_from_this_site_only(client, target):
    form = {**GOOD, "services": "internet"}
    assert client.post("/subscriptions", data=form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post("/subscriptions", data=form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/subscriptions", data=form).status_code == 403  # no origin, no token
    assert rows(target) == []
    assert client.post("/subscriptions", data=form, headers={"Origin": "http://localhost"}).status_code == 202
    token = client.get("/subscriptions/csrf")
    assert token.headers["Cache-Control"] == "no-store" and "csrf=" in token.headers["Set-Cookie"]
    answer = client.post("/subscriptions", data={**form, "email": "ivan@example.org", "csrf_token": token.json["token"]})
    assert answer.status_code == 202
    assert len(rows(target)) == 2


def test_the_honeypot_pretends_and_stores_nothing(client, target):
    answer = client.post("/subscriptions", data={**GOOD, "website": "http://spam.example"}, headers=SAME)
    assert answer.status_code == 202
    assert rows(target) == []


def test_a_bad_form_field_gets_a_400_page_naming_it(client):
    answer = client.post("/subscriptions", data={**GOOD, "email": "nope"}, headers=SAME)
    assert answer.status_code == 400 and "E-mail" in answer.data.decode()


def test_rate_limits_per_client_and_per_address(db_target):
    app = create_app({"DATABASE": str(db_target), "TESTING": True, "TRUSTED_PROXY_HOPS": 1,
                      "RATE_LIMITS": {"client": (3, 3600), "email": (2, 86400)}})
    client = app.test_client()

    def post(email, ip):
        return client.post("/api/v1/subscriptions", json={**GOOD, "email": email},
                           headers={"X-Forwarded-For": f"203.0.113.9, {ip}"})

    assert [post(f"a{n}@example.org", "198.51.100.1").status_code for n in range(4)] == [202, 202, 202, 429]
    limited = post("b@example.org", "198.51.100.1")
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 3600
    # The same address from other clients: the third in a day is refused.
    assert [post("same@example.org", f"198.51.100.{n}").status_code for n in (2, 3, 4)] == [202, 202, 429]
    # Counted in the database, under a keyed hash: no address is kept there.
    counted = rows(db_target, "SELECT key FROM rate_counts")
    assert counted and not any("@" in r["key"] for r in counted)


def test_confirm_unsubscribe_links(client, target):
    client.post("/api/v1/subscriptions", json=GOOD)
    [sub] = rows(target)
    assert client.get("/subscriptions/confirm/not-a-real-token-at-all").status_code == 404
    confirmed = client.get(f"/subscriptions/confirm/{sub['token']}")
    assert confirmed.status_code == 200 and "Pechory" in confirmed.data.decode()
    assert rows(target)[0]["confirmed_at"] is not None
    page = client.get(f"/subscriptions/unsubscribe/{sub['token']}")  # a GET (a link scanner) changes nothing
    assert page.status_code == 200 and len(rows(target)) == 1
    assert client.post(f"/subscriptions/unsubscribe/{sub['token']}").status_code == 200
    assert rows(target) == [] and "vera@example.org" not in dump(target)
    assert client.post(f"/subscriptions/unsubscribe/{sub['token']}").status_code == 200  # again: still fine


def test_a_second_confirmed_subscription_for_the_same_place_replaces_the_first(client, target):
    client.post("/api/v1/subscriptions", json=GOOD)
    client.post("/api/v1/subscriptions", json={**GOOD, "services": ["internet", "tv"], "lang": "en"})
    first, second = rows(target)
    client.get(f"/subscriptions/confirm/{first['token']}")
    client.get(f"/subscriptions/confirm/{second['token']}")
    [kept] = rows(target)
    assert kept["id"] == second["id"] and kept["services"] == 3


def test_unconfirmed_subscriptions_are_deleted_after_7_days(client, target):
    client.post("/api/v1/subscriptions", json=GOOD)
    with store.transaction(target) as conn:
        assert subscriptions.purge_unconfirmed(conn, db.utcnow() + timedelta(days=6)) == 0
        assert subscriptions.purge_unconfirmed(conn, db.utcnow() + timedelta(days=7, minutes=1)) == 1
    assert "vera@example.org" not in dump(target)


def test_subscribers_script_counts_without_addresses_and_forgets(client, target):
    client.post("/api/v1/subscriptions", json=GOOD)
    client.post("/api/v1/subscriptions", json={**GOOD, "email": "ivan@example.org", "town": None,
                                               "lat": 57.815, "lon": 27.606, "services": ["tv", "phone"]})
    runner = CliRunner()
    counts = runner.invoke(subscribers_script.main, ["counts", "--db", str(target)])
    assert counts.exit_code == 0 and "@" not in counts.output
    assert "pechory  town   internet  0          1" in counts.output
    assert "pechory  point  tv" in counts.output
    before = dump(target)
    refused = runner.invoke(subscribers_script.main, ["forget", "not an address", "--db", str(target)])
    assert refused.exit_code == 2 and "email" in refused.output and dump(target) == before
    forgot = runner.invoke(subscribers_script.main, ["forget", "Vera@example.org", "--db", str(target)])
    assert forgot.exit_code == 0 and "deleted 1" in forgot.output
    assert "vera@example.org" not in dump(target)
    for command in ("counts", "forget"):
        helped = runner.invoke(subscribers_script.main, [command, "--help"])
        assert "Example:" in helped.output and "python scripts/subscribers.py" in helped.output


def test_use_my_location_wins_over_the_pages_town(client, target):
    answer = client.post("/subscriptions", data={**GOOD, "lat": "57.8123", "lon": "27,6099"}, headers=SAME)
    assert answer.status_code == 202
    [sub] = rows(target)
    assert sub["town"] is None and sub["cell"]


def test_the_form_and_its_pages_speak_russian(client):
    assert "Сообщите, когда починят" in client.get("/towns/pechory?lang=ru").data.decode()
    answer = client.post("/subscriptions?lang=ru", data=GOOD, headers=SAME)
    assert "Проверьте почту" in answer.data.decode()
