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


@sql.collection
def _statements() -> SimpleNamespace:
    audit = sql.table("audit")
    return SimpleNamespace(insert=sql.Statement(sa.insert(audit).values({c: sa.bindparam(c) for c in (
        "at", "author", "action", "subject", "detail")})))
