""""This answer is wrong here": the form and API on every verdict, staff's script, the answer mailed through a
real SMTP server, the town's public numbers, and that nothing anyone wrote is shown to the public."""
from __future__ import annotations

from contextlib import closing

import pytest
from enginetools import contents
from listening_tools import settings_for
from mailserver import BASE_URL, SmtpServer, body, run_script, subject, worker_env
from tests_paths import ROOT

from portal import create_app
from portal.data import statements
from portal.listening import feedback, worker

FEEDBACK = ROOT / "scripts" / "feedback.py"
PECHORY = (57.812371, 27.614539)
SECRET_TEXT = "<b>Lenina 5</b> has no fiber"


def staff(db_path, *args):
    return run_script(FEEDBACK, *args, "--db", db_path, env=worker_env(None))


def test_report_answer_reaches_its_author(app):
    db_path = app.config["DATABASE"]  # the app's own copy of the demo database, on the engine under test
    server = SmtpServer().start()
    try:
        c = app.test_client()
        c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
        sent = c.post("/api/v1/feedback", json={"lat": PECHORY[0], "lon": PECHORY[1], "technology": "fiber",
                                                "message": SECRET_TEXT + "\x07\x1b", "email": "vera@example.org",
                                                "lang": "en"})
        assert sent.status_code == 202 and sent.get_json() == {"status": "received"}
        settings = settings_for(db_path, SMTP_URL=server.url)
        worker.run_once(settings)
        [confirmation] = server.inbox.wait_for(1)
        link = next(w for w in body(confirmation).split() if "/feedback/confirm/" in w).removeprefix(BASE_URL)
        assert c.get(link).status_code == 200

        listed = staff(db_path, "list")
        assert listed.returncode == 0 and "#1" in listed.stdout and "Lenina 5" in listed.stdout
        assert "\x07" not in listed.stdout and "pechory" in listed.stdout
        before = contents(db_path)
        bad = staff(db_path, "answer", "99", "--message", "x")
        assert bad.returncode != 0 and "no feedback report 99" in bad.stderr and "Traceback" not in bad.stderr
        assert contents(db_path) == before
        done = staff(db_path, "answer", "1", "--message", "Checked: fiber reaches your street since May.")
        assert done.returncode == 0, done.stderr
        worker.run_once(settings)
        messages = server.inbox.wait_for(2)
        answer = messages[1]
        assert answer["To"] == "vera@example.org" and subject(answer).startswith("Our answer")
        assert "fiber reaches your street" in body(answer)

        town = c.get("/api/v1/towns/pechory").get_json()
        assert town["feedback"]["open"] == 1 and town["feedback"]["promised_days"] == 30
        assert town["feedback"]["median_days_to_answer"] is not None
        assert staff(db_path, "close", "1").returncode == 0
        again = staff(db_path, "close", "1")
        assert again.returncode != 0 and "already closed" in again.stderr
        assert c.get("/api/v1/towns/pechory").get_json()["feedback"]["open"] == 0
        page = c.get("/towns/pechory").get_data(as_text=True)
        assert "We promise to answer within 30 days." in page and 'action="/feedback"' in page
        assert "Lenina" not in page and "Lenina" not in str(town)
    finally:
        server.stop()


def test_form_on_every_verdict_and_its_defences(db_target):
    app = create_app({"DATABASE": str(db_target), "TESTING": True, "FEEDBACK_RESPONSE_DAYS": 14,
                      "RATE_LIMITS": {"client": (2, 3600), "email": (5, 86400)}})
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    check = c.get(f"/check?lat={PECHORY[0]}&lon={PECHORY[1]}").get_data(as_text=True)
    assert 'id="feedback"' in check and "<script>" not in check
    assert c.post("/feedback", data={"town": "pechory", "technology": "fiber", "message": "x"},
                  headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    robot = c.post("/feedback", data={"town": "pechory", "technology": "fiber", "message": "x", "website": "y"},
                   headers={"Sec-Fetch-Site": "same-origin"})
    assert robot.status_code == 202
    wrong = c.post("/feedback", data={"town": "pechory", "technology": "radio", "message": "x"},
                   headers={"Sec-Fetch-Site": "same-origin"})
    assert wrong.status_code == 400 and "Technology" in wrong.get_data(as_text=True)
    assert c.get("/api/v1/towns/pechory").get_json()["feedback"]["promised_days"] == 14
    first = c.post("/api/v1/feedback", json={"town": "pechory", "technology": "dsl", "message": "slow"})
    assert first.status_code == 202  # the refused form post counted as this client's first
    limited = c.post("/api/v1/feedback", json={"town": "pechory", "technology": "dsl", "message": "slow"})
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    with closing(statements.connect(db_target)) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone()[0] == 1


@pytest.mark.parametrize("data, field", [
    ({"technology": "fiber", "message": "x"}, "town"),
    ({"town": "pechory", "message": "x"}, "technology"),
    ({"town": "pechory", "technology": "fiber", "message": " \x00 "}, "message"),
    ({"lat": 95, "lon": 27, "technology": "fiber", "message": "x"}, "lat"),
    ({"town": "pechory", "technology": "fiber", "message": "x", "email": "nope"}, "email"),
])
def test_api_names_the_bad_field(client, data, field):
    answer = client.post("/api/v1/feedback", json=data)
    assert answer.status_code == 400 and answer.get_json()["field"] == field


def test_message_is_capped_and_stripped():
    text = feedback.clean_message("a\tb\nc\x00d\x1b" + "x" * 2000)
    assert text.startswith("a b cd") and len(text) == feedback.MAX_MESSAGE


def test_median_time_to_an_answer(db_target):
    """Runs on SQLite and on PostgreSQL."""
    from datetime import timedelta

    from portal.data import db
    from portal.listening import store
    start = db.utcnow()
    with store.transaction(db_target) as conn:
        for days in (1, 3, 10):
            item = feedback.Feedback("pechory", None, None, None, "fiber", "wrong", None, "en")
            n = feedback.submit(conn, item, start)
            feedback.answer(conn, n, "ok", "anna", start + timedelta(days=days))
        feedback.submit(conn, item, start)
        assert feedback.town_stats(conn, "pechory", 30) == {"open": 4, "answered": 3,
                                                            "median_days_to_answer": 3.0, "promised_days": 30}
