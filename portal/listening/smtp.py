"""The e-mail channel: any SMTP relay (``SMTP_URL``) over one reused connection, or a Maildir.

``smtp://host:port`` (plain; ``?starttls=1`` to upgrade), ``smtps://host:port`` (TLS from
the start), with ``user:password@`` for relays that want a login. Without ``SMTP_URL`` the
messages go to a Maildir (stdlib ``mailbox``) under the instance folder, so a demo without a
mail server shows what would have been sent.

``send`` raises ``Temporary`` (try again later: the server is down, busy, or said 4xx) or
``Permanent`` (5xx: this message or recipient is refused; do not try again).
"""
from __future__ import annotations

import mailbox
import smtplib
import ssl
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

TIMEOUT_S = 30


class Temporary(Exception):
    """A failure worth retrying later."""


class Permanent(Exception):
    """A refusal that will not change by retrying."""


class SmtpMailer:
    """Sends over one SMTP connection, opened on first use and kept for the next messages."""

    def __init__(self, url: str, sender: str):
        """Parse the relay's URL; connect lazily."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"SMTP_URL {url!r} must look like smtp://host:port or smtps://host:port")
        self.host, self.tls = parts.hostname, parts.scheme == "smtps"
        self.port = parts.port or (465 if self.tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.sender = parseaddr(sender)[1] or sender
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        """Open and greet the relay (and log in when asked)."""
        try:
            if self.tls:
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT_S,
                                        context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S)
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.user:
                conn.login(self.user, self.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise Temporary(f"cannot reach the mail server {self.host}:{self.port}: {exc}") from None
        return conn

    def send(self, recipient: str, message: bytes) -> None:
        """Hand one message to the relay; raise Temporary or Permanent when it is not accepted."""
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.sendmail(self.sender, [recipient], message)
                return
            except smtplib.SMTPServerDisconnected as exc:
                # A kept connection the server closed while idle: one new connection, then give up.
                self._conn = None
                if attempt == 2:
                    raise Temporary(f"mail server closed the connection: {exc}") from None
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                self._reset()
                raise (Permanent if code >= 500 else Temporary)(f"{code} {_text(reply)}") from None
            except smtplib.SMTPResponseException as exc:
                self._reset()
                raise (Permanent if exc.smtp_code >= 500 else Temporary)(
                    f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise Temporary(f"mail server failed: {exc}") from None

    def _reset(self) -> None:
        """Clear a failed transaction so the connection can carry the next message."""
        try:
            self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        """Say goodbye and close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()


class MaildirMailer:
    """Writes each message into a Maildir folder: the demo's mail server."""

    def __init__(self, path: Path):
        """Create the Maildir when missing."""
        self.path = Path(path)
        self.box = mailbox.Maildir(str(self.path), create=True)

    def send(self, recipient: str, message: bytes) -> None:
        """Store the message in new/."""
        try:
            self.box.add(message)
        except OSError as exc:
            raise Temporary(f"cannot write to {self.path}: {exc}") from None

    def close(self) -> None:
        """Nothing to close."""


def mailer_for(settings):
    """Return the mailer the settings ask for: SMTP when SMTP_URL is set, else the Maildir."""
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from)
    return MaildirMailer(settings.maildir)


def _text(reply) -> str:
    """Return a server reply as text."""
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
