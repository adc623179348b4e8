"""Incidents in Russian and English: script options, the migration, the reader's language, the fallback."""
from __future__ import annotations

import importlib.util
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner
from dbtools import database_with_towns, square_town
from enginetools import contents, engine_copy
from shapely.geometry import box, mapping

from portal import create_app
from portal.data import db, migrations
from tests.conftest import DEMO_NOW

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("incident_script_lang", ROOT / "scripts" / "incident.py")
incident_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(incident_script)

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)  # 12:00 in Moscow
TOWNS = [square_town("alpha", "Alpha", 30.0, 60.0)]


@pytest.fixture(scope="module")
def alpha(tmp_path_factory):
    """A migrated database whose live towns are one hand-made square, made once: the template of ``target``."""
    return database_with_towns(tmp_path_factory.mktemp("alpha") / "portal.sqlite", TOWNS)


@pytest.fixture
def target(engine, alpha, tmp_path, request):
    """The test's own copy of ``alpha`` on the engine under test: an SQLite path or a postgresql:// URL."""
    return engine_copy(engine, alpha, tmp_path, request)


def cli(*args):
    """Run the staff script in-process, as staff would (exit code, output, errors)."""
    return CliRunner().invoke(incident_script.main, [str(a) for a in args], env={"PORTAL_AUTHOR": "anna"})


def opened(target, *args) -> int:
    """Open an incident in Alpha an hour ago with the given text options; return its id."""
    at = db.iso(db.utcnow() - timedelta(hours=1))
    result = cli("open", "--db", target, "--service", "internet", "--town", "alpha", "--at", at, *args)
    assert result.exit_code == 0, result.output
    return int(result.output.strip().splitlines()[-1])


def client(target, **config):
    """Return a test client of the app on ``target`` (no Accept-Language: the region's language)."""
    return create_app({"DATABASE": str(target), "TESTING": True, **config}).test_client()


def fingerprint(target) -> dict:
    """Return every row of every table (on either engine), to prove a refusal changed nothing."""
    return contents(target)


# --- the script takes both languages ---------------------------------------------------------------


def test_open_stores_both_languages_and_json_answers_in_the_asked_one(target):
    incident_id = opened(target, "--title", "Нет интернета на улице Ленина", "--title-en",
                         "No internet on Lenina St", "--message", "Бригада выехала", "--message-en",
                         "A crew is on the way", "--cause", "Обрыв кабеля", "--cause-en", "Cable cut",
                         "--where", "ул. Ленина, дома 1–9", "--where-en", "Lenina St, houses 1–9")
    web = client(target)
    ru = web.get(f"/api/v1/incidents/{incident_id}").get_json()
    en = web.get(f"/api/v1/incidents/{incident_id}?lang=en").get_json()
    assert (ru["title"], ru["title_lang"]) == ("Нет интернета на улице Ленина", "ru")
    assert (en["title"], en["title_lang"]) == ("No internet on Lenina St", "en")
    assert en["title_by_lang"] == ru["title_by_lang"] == {"ru": "Нет интернета на улице Ленина",
                                                           "en": "No internet on Lenina St"}
    assert [(u["message"], u["message_lang"]) for u in en["updates"]] == [("A crew is on the way", "en")]
    assert [(u["message"], u["message_lang"]) for u in ru["updates"]] == [("Бригада выехала", "ru")]
    assert (en["cause"], en["cause_lang"], ru["cause"]) == ("Cable cut", "en", "Обрыв кабеля")
    assert (en["where"], en["where_lang"]) == ("Lenina St, houses 1–9", "en")
    assert (ru["where"], ru["where_lang"]) == ("ул. Ленина, дома 1–9", "ru")
    listed = web.get("/api/v1/incidents?lang=en").get_json()["incidents"]
    assert [(i["title"], i["title_lang"]) for i in listed] == [("No internet on Lenina St", "en")]


def test_update_resolve_and_edit_take_english_too(target):
    incident_id = opened(target, "--title", "Нет интернета", "--title-en", "No internet")
    assert cli("update", incident_id, "--db", target, "--status", "identified", "--message", "Нашли обрыв",
               "--message-en", "Found the cut").exit_code == 0
    edited = cli("edit", incident_id, "--db", target, "--title-en", "No internet in Alpha")
    assert edited.exit_code == 0, edited.output
    assert "title_en: 'No internet' -> 'No internet in Alpha'" in edited.output
    assert cli("resolve", incident_id, "--db", target, "--message", "Починили",
               "--message-en", "Fixed").exit_code == 0
    en = client(target).get(f"/api/v1/incidents/{incident_id}?lang=en").get_json()
    assert en["title"] == "No internet in Alpha"
    assert [u["message"] for u in en["updates"]] == ["No internet", "Found the cut", "Fixed"]
    assert [u["message_by_lang"]["ru"] for u in en["updates"]] == ["Нет интернета", "Нашли обрыв", "Починили"]


def test_a_title_without_a_cyrillic_letter_is_english(target):
    # The contract's own example: --title in English, nothing else. It stays English, and says so.
    incident_id = opened(target, "--title", "No internet on Lenina St")
    ru = client(target).get(f"/api/v1/incidents/{incident_id}?lang=ru").get_json()
    assert (ru["title"], ru["title_lang"]) == ("No internet on Lenina St", "en")
    assert ru["title_by_lang"] == {"ru": None, "en": "No internet on Lenina St"}
    assert ru["updates"][0]["message_lang"] == "en"  # the first update defaults to the title


def test_where_comes_from_the_area_files_names(target, tmp_path):
    area = tmp_path / "street.geojson"
    area.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name_ru": "ул. Мира, 3", "name_en": "3 Mira St"},
         "geometry": mapping(box(30.02, 60.02, 30.03, 60.03))},
        {"type": "Feature", "properties": {"name_ru": "ул. Мира, 5", "name_en": "5 Mira St"},
         "geometry": mapping(box(30.03, 60.02, 30.04, 60.03))}]}), encoding="utf-8")
    at = db.iso(db.utcnow() - timedelta(hours=1))
    result = cli("open", "--db", target, "--title", "Нет ТВ", "--service", "tv", "--area", area, "--at", at)
    assert result.exit_code == 0, result.output
    incident_id = int(result.output.strip().splitlines()[-1])
    found = client(target).get(f"/api/v1/incidents/{incident_id}").get_json()
    assert found["where_by_lang"] == {"ru": "ул. Мира, 3, ул. Мира, 5", "en": "3 Mira St, 5 Mira St"}


@pytest.mark.parametrize("args,words", [
    (["--title", "Нет интернета", "--title-en", "Нет интернета"], "title-en 'Нет интернета' is written in"
                                                                    " Cyrillic"),
    (["--title", "No internet", "--title-en", "No internet at all"], "so it is taken as English"),
    (["--title", "Нет интернета", "--where-en", "улица Ленина"], "where-en 'улица Ленина' is written in"),
    (["--title", "Нет интернета", "--message-en", "   "], "empty message-en"),
    (["--title", "Нет интернета", "--cause-en", "Cut\x0bcable"], "U+000B"),
])
def test_bad_texts_are_refused_and_change_nothing(target, args, words):
    before = fingerprint(target)
    at = db.iso(db.utcnow() - timedelta(hours=1))
    result = cli("open", "--db", target, "--service", "internet", "--town", "alpha", "--at", at, *args)
    assert result.exit_code == 2 and words in result.output, result.output
    assert "Traceback" not in result.output
    assert fingerprint(target) == before


def test_an_edit_that_changes_nothing_is_refused(target):
    incident_id = opened(target, "--title", "Нет интернета", "--title-en", "No internet")
    before = fingerprint(target)
    result = cli("edit", incident_id, "--db", target, "--title-en", "No internet")
    assert result.exit_code == 2 and "title-en 'No internet' is already the title" in result.output
    assert fingerprint(target) == before


# --- the migration ----------------------------------------------------------------------------------


def test_m015_keeps_old_incidents_and_reads_their_language_from_their_letters(tmp_path):
    # SQLite only: a database older than m015 is brought up to date on SQLite (PostgreSQL ones are refused).
    path = tmp_path / "old.sqlite"
    conn = sqlite_utils.Database(str(path))
    migrations.MIGRATIONS.apply(conn, stop_before="m015_incident_languages")
    conn.close()
    raw = sqlite3.connect(path)
    with raw:
        raw.executemany("INSERT INTO incidents (id, title, kind, started_at, created_at, author)"
                        " VALUES (?, ?, 'outage', ?, ?, 'x')",
                        [(1, "Cable cut in Alpha", db.iso(NOW), db.iso(NOW)),
                         (2, "Обрыв кабеля", db.iso(NOW), db.iso(NOW))])
    columns_before = {r[1] for r in raw.execute("PRAGMA table_info(incidents)")}
    raw.close()
    assert "title_en" not in columns_before
    migrations.migrate(path)
    raw = sqlite3.connect(path)
    columns = {r[1] for r in raw.execute("PRAGMA table_info(incidents)")}
    update_columns = {r[1] for r in raw.execute("PRAGMA table_info(incident_updates)")}
    rows = raw.execute("SELECT id, title, title_en FROM incidents ORDER BY id").fetchall()
    raw.close()
    assert {"title_en", "cause_en", "place", "place_en"} <= columns and "message_en" in update_columns
    assert rows == [(1, "Cable cut in Alpha", None), (2, "Обрыв кабеля", None)]  # nothing rewritten
    from portal.incidents.records import load_records

    with db.connect_readonly(path) as conn:
        found = {r.id: r.title_by_lang for r in load_records(conn)}
    assert found == {1: {"ru": None, "en": "Cable cut in Alpha"}, 2: {"ru": "Обрыв кабеля", "en": None}}


# --- pages: the reader's language, and the other one marked -------------------------------------------


def test_pages_answer_in_the_readers_language_and_mark_the_other_one(target):
    both = opened(target, "--title", "Нет интернета в Альфе", "--title-en", "No internet in Alpha")
    english_only = opened(target, "--title", "Cable cut in Alpha")
    web = client(target)
    en = web.get(f"/incidents/{both}?lang=en").get_data(as_text=True)
    ru = web.get(f"/incidents/{both}?lang=ru").get_data(as_text=True)
    assert "<h1>No internet in Alpha</h1>" in en and "<h1>Нет интернета в Альфе</h1>" in ru
    fallback = web.get(f"/incidents/{english_only}?lang=ru").get_data(as_text=True)
    marked = '<span lang="en">Cable cut in Alpha</span> <span class="lang-note">(по-английски)</span>'
    assert f"<h1>{marked}</h1>" in fallback
    listing = web.get("/incidents?lang=ru").get_data(as_text=True)
    assert "Нет интернета в Альфе" in listing and "No internet in Alpha" not in listing


def test_a_russian_only_text_on_an_english_page_is_marked_russian(target):
    incident_id = opened(target, "--title", "Нет интернета в Альфе", "--where", "ул. Ленина, 5")
    page = client(target).get(f"/incidents/{incident_id}?lang=en").get_data(as_text=True)
    assert '<span lang="ru">Нет интернета в Альфе</span> <span class="lang-note">(in Russian)</span>' in page
    assert '<span lang="ru">ул. Ленина, 5</span>' in page


def test_feeds_answer_in_the_readers_language(target):
    opened(target, "--title", "Нет интернета в Альфе", "--title-en", "No internet in Alpha")
    web = client(target)
    en = web.get("/feeds/incidents.atom?lang=en").get_data(as_text=True)
    ru = web.get("/feeds/incidents.atom?lang=ru").get_data(as_text=True)
    assert "No internet in Alpha" in en and "Нет интернета в Альфе" not in en
    assert "Нет интернета в Альфе" in ru and "No internet in Alpha" not in ru


# --- the demo ---------------------------------------------------------------------------------------


def test_demo_incidents_are_russian_on_russian_pages_and_english_on_english_ones(db_target):
    client = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW, "TESTING": True}).test_client()
    ru = client.get("/incidents/2?lang=ru").get_data(as_text=True)
    en = client.get("/incidents/2?lang=en").get_data(as_text=True)
    assert "<h1>Нет интернета на одной улице в Гдове после обрыва кабеля</h1>" in ru
    assert "<h1>No internet on one street in Gdov after a cable cut</h1>" in en
    assert "улица Ленина, дома 1–25" in ru and "Lenina St, houses 1–25" in en
    assert "lang-note" not in ru and "lang-note" not in en  # nothing fell back to the other language
    found = client.get("/api/v1/incidents/2?lang=en").get_json()
    assert found["where"] == "Lenina St, houses 1–25 (demo)" and found["where_lang"] == "en"


# --- notifications ------------------------------------------------------------------------------------


def test_each_subscriber_is_told_in_their_language(target):
    from portal.listening import messages

    incident_id = opened(target, "--title", "Нет интернета в Альфе", "--title-en", "No internet in Alpha",
                         "--message", "Бригада выехала", "--message-en", "A crew is on the way")
    with db.connect_readonly(target) as conn:
        payload = json.loads(conn.execute(f"SELECT payload FROM outbox WHERE incident_id = {int(incident_id)}"
                                          ).fetchone()[0])
    told = {lang: messages.content("opened", payload, [], messages.Words(lang, "Europe/Moscow"), "Alpha", {})
            for lang in ("ru", "en")}
    assert told["en"]["title"] == "No internet in Alpha" and "No internet in Alpha" in told["en"]["subject"]
    assert told["ru"]["title"] == "Нет интернета в Альфе"
    assert (told["en"]["latest"]["message"], told["ru"]["latest"]["message"]) == (
        "A crew is on the way", "Бригада выехала")


def test_statuspage_answers_follow_lang_too(target):
    opened(target, "--title", "Нет интернета в Альфе", "--title-en", "No internet in Alpha",
           "--message", "Бригада выехала", "--message-en", "A crew is on the way")
    web = client(target)
    en = web.get("/api/v2/incidents/unresolved.json?lang=en").get_json()["incidents"][0]
    ru = web.get("/api/v2/incidents/unresolved.json").get_json()["incidents"][0]
    assert (en["name"], en["name_lang"]) == ("No internet in Alpha", "en")
    assert ru["name"] == "Нет интернета в Альфе"
    assert (en["incident_updates"][0]["body"], ru["incident_updates"][0]["body"]) == (
        "A crew is on the way", "Бригада выехала")


def test_the_script_brings_an_older_database_up_to_date_before_writing(tmp_path):
    # SQLite only: a database older than m015 is brought up to date on SQLite (PostgreSQL ones are refused).
    path = tmp_path / "old.sqlite"
    conn = sqlite_utils.Database(str(path))
    migrations.MIGRATIONS.apply(conn, stop_before="m015_incident_languages")
    conn.close()
    from portal.data import layers

    with db.writing(path) as conn:
        layers.store_layer(conn, "towns", TOWNS, source="test", author="test")
    incident_id = opened(path, "--title", "Нет интернета", "--title-en", "No internet")
    found = client(path).get(f"/api/v1/incidents/{incident_id}?lang=en").get_json()
    assert found["title_by_lang"] == {"ru": "Нет интернета", "en": "No internet"}


def test_maintenance_and_its_cancellation_in_both_languages_and_edit_of_the_place(target):
    start, end = (db.iso(db.utcnow() + timedelta(hours=h)) for h in (48, 52))
    made = cli("maintenance", "--db", target, "--title", "Замена узла", "--title-en", "Node replacement",
               "--service", "tv", "--town", "alpha", "--start", start, "--end", end,
               "--where", "ул. Садовая", "--where-en", "Sadovaya St")
    assert made.exit_code == 0, made.output
    window = int(made.output.strip().splitlines()[-1])
    edited = cli("edit", window, "--db", target, "--where-en", "Sadovaya St, houses 2–10")
    assert edited.exit_code == 0 and "where_en: 'Sadovaya St' -> 'Sadovaya St, houses 2–10'" in edited.output
    assert cli("cancel", window, "--db", target, "--message", "Работы перенесены",
               "--message-en", "Postponed").exit_code == 0
    shown = cli("show", window, "--db", target)
    assert "in English: Node replacement" in shown.output
    assert "where (en): Sadovaya St, houses 2–10" in shown.output
    en = client(target).get(f"/api/v1/incidents/{window}?lang=en").get_json()
    assert (en["title"], en["where"]) == ("Node replacement", "Sadovaya St, houses 2–10")
    assert en["status"] == "cancelled"
    assert [u["message"] for u in en["updates"]] == ["Node replacement", "Postponed"]
