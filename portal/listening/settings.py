"""The listening side's settings, taken from the app's config or ``portal.config.settings()``."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from portal.config import DEFAULTS, INSTANCE_DIR


@dataclass(frozen=True)
class Settings:
    """What the worker, the web side and the scripts need to know to listen and deliver.

    Made from a config mapping; every value's default lives once, in ``portal.config``.
    """

    database: Path | str  # an SQLite file, or a postgresql:// URL
    smtp_url: str | None
    mail_from: str
    base_url: str
    redis_url: str | None
    webhook_allow_private: bool
    maildir: Path
    queue_path: Path | None  # QUEUE_FILE as given (None: the default place, ``queue_file``)
    fold_s: float
    retry_s: float
    timezone: str
    deadlines: Mapping[str, float]
    staff_emails: tuple[str, ...]
    staff_webhook: str | None
    staff_lang: str

    @classmethod
    def from_config(cls, config: Mapping) -> Settings:
        """Return the settings from a config mapping (``app.config`` or ``portal.config.settings()``)."""
        config = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
        database = str(config["DATABASE"])
        database = database if "://" in database else Path(database)
        maildir = config.get("MAILDIR")
        return cls(
            database=database,
            smtp_url=config.get("SMTP_URL") or None,
            mail_from=config["MAIL_FROM"],
            base_url=config["BASE_URL"].rstrip("/"),
            redis_url=config.get("REDIS_URL") or None,
            webhook_allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE"]),
            maildir=Path(maildir) if maildir else cls._beside(database, "mail"),
            queue_path=Path(config["QUEUE_FILE"]) if config.get("QUEUE_FILE") else None,
            fold_s=float(config["NOTIFY_FOLD_SECONDS"]),
            retry_s=float(config["NOTIFY_RETRY_SECONDS"]),
            timezone=config["TIMEZONE"],
            deadlines=dict(config["RESTORE_DEADLINE_HOURS"]),
            staff_emails=tuple(a.strip() for a in (config.get("STAFF_EMAIL") or "").split(",") if a.strip()),
            staff_webhook=config.get("STAFF_WEBHOOK") or None,
            staff_lang=config["BABEL_DEFAULT_LOCALE"],
        )

    @property
    def queue_file(self) -> Path:
        """Return the SQLite file of the huey queue (beside the database) when Redis is not used.

        With the data in PostgreSQL, the file is in the instance folder: one machine's queue.
        Several machines delivering share Redis (``REDIS_URL``) instead. ``QUEUE_FILE`` names
        another place.
        """
        if self.queue_path is not None:
            return self.queue_path
        if isinstance(self.database, str):
            return self._beside(self.database, "portal-queue.sqlite")
        return self.database.with_name(f"{self.database.stem}-queue.sqlite")

    @staticmethod
    def _beside(database: Path | str, name: str) -> Path:
        """Return a path beside the database file (in the instance folder when the data is in PostgreSQL)."""
        if isinstance(database, str):
            return INSTANCE_DIR / name
        return database.parent / name

    @property
    def mail_domain(self) -> str:
        """Return the domain of Message-IDs: the sender's, else the portal's host."""
        sender = self.mail_from.rsplit("<", 1)[-1].rstrip(">").strip()
        if "@" in sender:
            return sender.rsplit("@", 1)[1]
        return urlsplit(self.base_url).hostname or "portal"
