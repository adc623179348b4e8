"""The listening side's settings, taken from the app's config or ``portal.config.settings()``."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from portal.config import DEFAULTS


@dataclass(frozen=True)
class Settings:
    """What the worker, the web side and the scripts need to know to listen and deliver."""

    database: Path
    smtp_url: str | None = None
    mail_from: str = "Coverage and outages <noreply@localhost>"
    base_url: str = "http://127.0.0.1:5000"
    redis_url: str | None = None
    webhook_allow_private: bool = False
    maildir: Path | None = None
    fold_s: float = 60.0
    retry_s: float = 60.0
    timezone: str = "Europe/Moscow"
    deadlines: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULTS["RESTORE_DEADLINE_HOURS"]))
    staff_emails: tuple[str, ...] = ()
    staff_webhook: str | None = None
    staff_lang: str = "ru"

    @classmethod
    def from_config(cls, config: Mapping) -> Settings:
        """Return the settings from a config mapping (``app.config`` or ``portal.config.settings()``)."""
        database = Path(config["DATABASE"])
        maildir = config.get("MAILDIR")
        return cls(
            database=database,
            smtp_url=config.get("SMTP_URL") or None,
            mail_from=config.get("MAIL_FROM") or cls.mail_from,
            base_url=(config.get("BASE_URL") or cls.base_url).rstrip("/"),
            redis_url=config.get("REDIS_URL") or None,
            webhook_allow_private=bool(config.get("WEBHOOK_ALLOW_PRIVATE")),
            maildir=Path(maildir) if maildir else database.parent / "mail",
            fold_s=float(config.get("NOTIFY_FOLD_SECONDS", cls.fold_s)),
            retry_s=float(config.get("NOTIFY_RETRY_SECONDS", cls.retry_s)),
            timezone=config.get("TIMEZONE") or cls.timezone,
            deadlines=dict(config.get("RESTORE_DEADLINE_HOURS") or DEFAULTS["RESTORE_DEADLINE_HOURS"]),
            staff_emails=tuple(a.strip() for a in (config.get("STAFF_EMAIL") or "").split(",") if a.strip()),
            staff_webhook=config.get("STAFF_WEBHOOK") or None,
            staff_lang=config.get("BABEL_DEFAULT_LOCALE") or cls.staff_lang,
        )

    @property
    def queue_file(self) -> Path:
        """Return the SQLite file of the huey queue (beside the database) when Redis is not used."""
        return self.database.with_name(f"{self.database.stem}-queue.sqlite")

    @property
    def mail_domain(self) -> str:
        """Return the domain of Message-IDs: the sender's, else the portal's host."""
        sender = self.mail_from.rsplit("<", 1)[-1].rstrip(">").strip()
        if "@" in sender:
            return sender.rsplit("@", 1)[1]
        return urlsplit(self.base_url).hostname or "portal"
