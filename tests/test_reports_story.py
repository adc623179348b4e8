"""The issue's story: forty people in Pskov tap "no internet"; staff confirm the draft from the shell."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from enginetools import contents

from portal import create_app
from portal.data import statements
from tests.conftest import DEMO_NOW

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "incident.py"


def run(target, *args):
    """Run the staff script in a real process, as staff would (on a path or a postgresql:// URL)."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args), "--db", str(target)],
                          capture_output=True, text=True, cwd=ROOT.parent,
                          env={**os.environ, "PORTAL_AUTHOR": "anna"})


def snapshot(target):
    """Return what a refusal must leave as it was: the SQLite file and its log, or every PostgreSQL row."""
    if "://" in str(target):
        return contents(target)
    wal = Path(f"{target}-wal")
    return hashlib.sha256(Path(target).read_bytes() + (wal.read_bytes() if wal.exists() else b"")).hexdigest()


@pytest.fixture
def app(db_target, tmp_path):
    """The app on the test's own copy of the demo database, on SQLite and on PostgreSQL."""
    return create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW, "TESTING": True, "TRUSTED_PROXY_HOPS": 1,
                       "MAILDIR": str(tmp_path / "mail")})


def tap(app, n, **extra):
    return app.test_client().post("/api/v1/reports", json={"service": "internet", "town": "pskov", **extra},
                                  headers={"X-Forwarded-For": f"10.{n}.3.{n}"})


def test_forty_reports_draft_staff_confirm_and_it_is_public(app, db_target):
    counts = [tap(app, n, **({"email": f"r{n}@example.org"} if n < 3 else {})).json["last_hour"]
              for n in range(40)]
    assert counts == list(range(1, 41))
    listed = run(db_target, "drafts")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if "pskov" in row)
    draft_id, state, *_rest = line.split()
    assert state == "draft" and " 40 " in f" {line} "

    confirmed = run(db_target, "confirm", draft_id)
    assert confirmed.returncode == 0, confirmed.stderr
    incident_id = int(confirmed.stdout.strip().splitlines()[-1])
    client = app.test_client()
    public = client.get("/api/v1/incidents?town=pskov&service=internet").json["incidents"]
    assert incident_id in [i["id"] for i in public]
    # Its headline and first update are in both languages, naming the town as people do.
    english = client.get(f"/api/v1/incidents/{incident_id}?lang=en").json
    russian = client.get(f"/api/v1/incidents/{incident_id}?lang=ru").json
    assert english["title"] == "Internet down in Pskov (reported by customers)"
    assert russian["title"] == "Сбой: Интернет — Псков (по сообщениям абонентов)"
    assert english["title_lang"] == "en" and russian["title_lang"] == "ru"
    assert english["updates"][0]["message"] == "40 customers reported problems with internet; we are checking."
    assert russian["updates"][0]["message"] == "Абонентов, сообщивших о проблеме (Интернет): 40; мы проверяем."
    # A reporter now sees the incident and how many reported it, not the bare count.
    later = tap(app, 77).json
    assert later["incident"]["id"] == incident_id and later["reported"] == 41
    # Reporters who left an e-mail have a pending subscription to Pskov's internet (double opt-in).
    with closing(statements.connect(db_target)) as conn:
        subs = conn.execute("SELECT town, services, confirmed_at FROM subscriptions ORDER BY id")
        assert [tuple(row) for row in subs] == [("pskov", 1, None)] * 3
        opened = [row[0] for row in conn.execute("SELECT incident_id FROM outbox WHERE kind = 'opened'")]
        assert opened.count(incident_id) == 1
    # Deciding the same draft again is refused and changes nothing.
    before = snapshot(db_target)
    again = run(db_target, "dismiss", draft_id, "--reason", "late")
    assert again.returncode == 2 and "already confirmed" in again.stderr and "Traceback" not in again.stderr
    assert snapshot(db_target) == before


def test_dismiss_with_reason_and_refusals(app, db_target):
    for n in range(12):
        tap(app, n)
    with closing(statements.connect(db_target)) as conn:
        (draft_id,) = conn.execute("SELECT id FROM report_drafts").fetchone()
    before = snapshot(db_target)
    for args, words in ((("confirm", 999), "draft 999 does not exist"),
                        (("dismiss", draft_id, "--reason", "  "), "--reason is empty"),
                        (("dismiss", draft_id), "--reason")):
        refused = run(db_target, *args)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
        assert snapshot(db_target) == before
    done = run(db_target, "dismiss", draft_id, "--reason", "A single building, known fault")
    assert done.returncode == 0, done.stderr
    assert run(db_target, "drafts").stdout.strip() == "no open drafts"
    everything = run(db_target, "drafts", "--all").stdout
    assert "dismissed: A single building, known fault" in everything
    public = app.test_client().get("/api/v1/incidents?status=all").get_data(as_text=True)
    assert "reported by customers" not in public


def test_help_ends_with_an_example():
    for command in ("drafts", "confirm", "dismiss"):
        out = subprocess.run([sys.executable, str(SCRIPT), command, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.rstrip().splitlines()[-1].strip().startswith(
            "python scripts/incident.py " + command)
