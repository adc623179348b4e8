"""The audit log: who changed what, when (every staff write records a row in its own transaction)."""
from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

import sqlalchemy as sa

from portal.data import db
from portal.data import statements as sql


def record(conn, *, author: str, action: str, subject: str, detail: dict, at: datetime | None = None) -> None:
    """Add one row inside the caller's transaction (``detail`` is stored as JSON)."""
    sql.run(conn, _statements().insert, at=db.iso(at or db.utcnow()), author=author, action=action,
            subject=subject, detail=json.dumps(detail, ensure_ascii=False))


def entries(conn, *, subject: str | None = None, author: str | None = None, since: str | None = None,
            until: str | None = None, limit: int = 200) -> list:
    """Return the latest ``limit`` rows that match (an ISO time range ``since`` ≤ at < ``until``), oldest first."""
    audit = sql.table("audit")
    where = [column == value for column, value in ((audit.c.subject, subject), (audit.c.author, author))
             if value is not None]
    if since is not None:
        where.append(audit.c.at >= since)
    if until is not None:
        where.append(audit.c.at < until)
    # Made for these filters (staff ask now and then: the statement is not kept).
    found = sql.Statement(sa.select(audit.c.id, audit.c.at, audit.c.author, audit.c.action, audit.c.subject,
                                    audit.c.detail).where(*where)
                          .order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit))
    return list(reversed(sql.run(conn, found).fetchall()))


@sql.collection
def _statements() -> SimpleNamespace:
    audit = sql.table("audit")
    return SimpleNamespace(insert=sql.Statement(sa.insert(audit).values({c: sa.bindparam(c) for c in (
        "at", "author", "action", "subject", "detail")})))
