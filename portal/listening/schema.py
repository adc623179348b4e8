"""The listening tables: subscriptions, the outbox of events, deliveries, rate-limit counts.

Created by the ``m010_listening`` migration in ``portal.data.migrations``.

- ``subscriptions``: one place (a town slug, or a ~100 m cell: never the submitted point),
  services (a bit mask, ``SERVICE_BITS``), language, channel (``email`` or ``webhook``) and
  its address, the link token, ``confirmed_at`` (NULL until the link is opened). Ids are
  never reused (AUTOINCREMENT): they are part of Message-IDs.
- ``outbox``: events recorded in the transaction of the write that caused them, fanned out
  to ``deliveries`` by the worker once due (``state`` pending → done, or folded into a later
  event of the same incident).
- ``deliveries``: one row per event and subscription (unique), pending → sending → sent, or
  failed for good; ``due_at`` is when to try next. Deleting a subscription deletes its rows.
- ``rate_counts``: requests per key and time window, when Redis is not used.
"""
from __future__ import annotations

import secrets

import sqlalchemy as sa

from portal.data import statements as sql

SERVICE_BITS = {"internet": 1, "tv": 2, "phone": 4}


def create(db) -> None:
    """Create the listening tables (``db`` is a sqlite-utils Database inside the migration)."""
    db.execute(
        """CREATE TABLE subscriptions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
            address TEXT NOT NULL,
            secret TEXT,
            token TEXT NOT NULL UNIQUE,
            town TEXT,
            cell TEXT,
            lat REAL,
            lon REAL,
            services INTEGER NOT NULL CHECK (services > 0),
            lang TEXT NOT NULL CHECK (lang IN ('ru', 'en')),
            created_at TEXT NOT NULL,
            confirmed_at TEXT,
            CHECK ((town IS NULL) <> (cell IS NULL))
        )"""
    )
    db.execute("CREATE INDEX subscriptions_town ON subscriptions(town) WHERE confirmed_at IS NOT NULL")
    db.execute("CREATE INDEX subscriptions_point ON subscriptions(lat, lon) WHERE cell IS NOT NULL")
    db.execute("CREATE INDEX subscriptions_address ON subscriptions(address)")
    db.execute("CREATE INDEX subscriptions_pending ON subscriptions(created_at) WHERE confirmed_at IS NULL")
    db.execute(
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            incident_id INTEGER,
            subscription_id INTEGER,
            service TEXT,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL,
            due_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'folded')),
            folded_into INTEGER,
            deliveries INTEGER
        )"""
    )
    db.execute("CREATE INDEX outbox_due ON outbox(due_at) WHERE state = 'pending'")
    db.execute("CREATE INDEX outbox_incident ON outbox(incident_id, kind)")
    # What the worker's periodic check records happens once per incident (and service).
    db.execute("CREATE UNIQUE INDEX outbox_once ON outbox(incident_id, kind, coalesce(service, ''))"
               " WHERE kind IN ('maintenance_started', 'deadline_passed')")
    db.execute(
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            event_id INTEGER NOT NULL REFERENCES outbox(id),
            subscription_id INTEGER NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            due_at REAL NOT NULL,
            claimed_by TEXT,
            claimed_until REAL,
            sent_at REAL,
            error TEXT,
            UNIQUE (event_id, subscription_id)
        )"""
    )
    db.execute("CREATE INDEX deliveries_due ON deliveries(due_at) WHERE state = 'pending'")
    db.execute("CREATE INDEX deliveries_sending ON deliveries(claimed_by) WHERE state = 'sending'")
    db.execute("CREATE INDEX deliveries_subscription ON deliveries(subscription_id)")
    db.execute(
        """CREATE TABLE rate_counts (
            key TEXT NOT NULL,
            window INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (key, window)
        ) WITHOUT ROWID"""
    )


_META = sa.table("meta", sa.column("key"), sa.column("value"))  # as m001 made it
_SET_LISTENING_KEY = sql.Statement(sql.upsert(_META, ["key"], {"key": sql.const("listening_key"),
                                                               "value": sa.bindparam("value")}, ["value"]))


def new_listening_key(conn) -> None:
    """Write a new secret that keys e-mail addresses for rate limits (``m010_listening``'s row, any engine).

    With it no address is kept outside its subscription.
    """
    sql.run(conn, _SET_LISTENING_KEY, value=secrets.token_hex(32))


def create_reports(db) -> None:
    """Create the crowd-report tables (``m011_reports``): reports and the drafts they raise.

    - ``reports``: one row per accepted report: the place (a town slug and/or a ~100 m cell id,
      never the point), service, epoch hour, keyed daily hashes of the reporter and of its
      network (never the address), whether it counted, and the active incident it attached to.
    - ``report_drafts``: incidents drafted by the spike rule, not public until staff confirm
      one (it then becomes a normal incident through ``open_incident``) or dismiss it.
    """
    db.execute(
        """CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            town TEXT,
            cell TEXT,
            service TEXT NOT NULL CHECK (service IN ('internet', 'tv', 'phone')),
            at REAL NOT NULL,
            hour INTEGER NOT NULL,
            reporter TEXT NOT NULL,
            network TEXT NOT NULL,
            counted INTEGER NOT NULL,
            incident_id INTEGER,
            CHECK (town IS NOT NULL OR cell IS NOT NULL)
        )"""
    )
    db.execute("CREATE INDEX reports_town ON reports(town, service, at) WHERE counted AND town IS NOT NULL")
    db.execute("CREATE INDEX reports_cell ON reports(cell, service, at) WHERE counted AND cell IS NOT NULL")
    db.execute("CREATE INDEX reports_reporter ON reports(reporter, service, hour)")
    db.execute("CREATE INDEX reports_incident ON reports(incident_id) WHERE incident_id IS NOT NULL")
    db.execute(
        """CREATE TABLE report_drafts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            town TEXT,
            cell TEXT,
            service TEXT NOT NULL,
            opened_at REAL NOT NULL,
            reporters INTEGER NOT NULL,
            networks INTEGER NOT NULL,
            usual REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'confirmed', 'dismissed')),
            incident_id INTEGER,
            reason TEXT,
            decided_at REAL,
            decided_by TEXT
        )"""
    )
    # Reports are written under BEGIN IMMEDIATE, so looking for a recent open draft before
    # inserting one is race-free; an old undecided draft does not absorb a new outage.
    db.execute("CREATE INDEX report_drafts_open ON report_drafts(town, cell, service) WHERE state = 'draft'")


def create_interest(db) -> None:
    """Create the "bring fiber here" tables (``m012_interest``; see ``portal.listening.interest``).

    - ``interest``: one row per household and place: a town slug, and for a point only the
      ~100 m cell and its centre (never the point). ``household`` is a keyed hash of the
      client and its cookie for that place, so one household counts once and nobody can be
      told apart from the stored row. ``email`` is optional (double opt-in: ``confirmed_at``);
      ``notified_at`` is set when coverage arrival was recorded for it, so it is told once.
    - ``demand_thresholds``: staff targets per planned area (a town slug) with a deadline.
    """
    db.execute(
        """CREATE TABLE interest (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            household TEXT NOT NULL UNIQUE,
            town TEXT,
            cell TEXT,
            lat REAL,
            lon REAL,
            email TEXT,
            lang TEXT NOT NULL CHECK (lang IN ('ru', 'en')),
            token TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            confirmed_at TEXT,
            notified_at TEXT,
            CHECK (town IS NOT NULL OR cell IS NOT NULL)
        )"""
    )
    db.execute("CREATE INDEX interest_town ON interest(town)")
    db.execute("CREATE INDEX interest_cell ON interest(cell) WHERE cell IS NOT NULL")
    db.execute(
        """CREATE TABLE demand_thresholds (
            town TEXT PRIMARY KEY,
            households INTEGER NOT NULL CHECK (households > 0),
            deadline TEXT,
            set_at TEXT NOT NULL
        )"""
    )


STAFF_CELL = "staff"


def create_staff_recipients(db) -> None:
    """Let staff be delivered to like subscribers (``m013_staff_and_report_counts``).

    A staff recipient (``STAFF_EMAIL``, ``STAFF_WEBHOOK``) is a ``subscriptions`` row with
    ``staff = 1``, so a drafted incident's event is fanned out, claimed, retried and marked sent
    by the same outbox and deliveries as any notification. Its place is the pseudo-cell
    ``STAFF_CELL`` with no centre: no incident ever reaches it, and no public count shows it.
    """
    db.execute("ALTER TABLE subscriptions ADD COLUMN staff INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE UNIQUE INDEX subscriptions_staff ON subscriptions(channel, address) WHERE staff")


def count_report_networks(db) -> None:
    """Count reports' networks and reporters by index ranges (``m013_staff_and_report_counts``).

    See ``portal.listening.reports`` for the counting rule.

    ``network_first`` marks a counted report that is its network's first for the place and
    service within the spike window; reports stored before this migration have 0, so a spike
    that began before it is judged on the reports after it. The reporter index now finds a
    reporter's last counted report by time (the rolling hour) rather than by clock hour.
    """
    db.execute("ALTER TABLE reports ADD COLUMN network_first INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX reports_town_networks ON reports(town, service, at)"
               " WHERE network_first AND town IS NOT NULL")
    db.execute("CREATE INDEX reports_cell_networks ON reports(cell, service, at)"
               " WHERE network_first AND cell IS NOT NULL")
    db.execute("CREATE INDEX reports_network ON reports(network, service, at) WHERE network_first")
    db.execute("DROP INDEX reports_reporter")
    db.execute("CREATE INDEX reports_reporter ON reports(reporter, service, at) WHERE counted")
