"""The webhook channel: a JSON POST signed with the subscription's secret, to public addresses only.

Signature (``X-Portal-Signature``): ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
with the secret returned when the webhook subscribed; receivers should refuse old times.
``X-Portal-Delivery`` names the event and subscription: the same on every attempt, so a
receiver can drop a repeat.

The URL's host is resolved when it subscribes and again at every delivery, and the request
goes to the address that was checked (no second look-up a DNS trick could answer
differently). Private, loopback, link-local, multicast and reserved addresses are refused
unless the setting ``WEBHOOK_ALLOW_PRIVATE`` is true.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
import time
from urllib.parse import urlsplit

from portal.listening.smtp import Permanent, Temporary

TIMEOUT_S = 10


class WebhookRefused(ValueError):
    """A webhook URL that may not be called; the message says why."""


def check_url(url: str, allow_private: bool = False) -> str:
    """Return the URL if it is an http(s) URL whose host resolves to allowed addresses; else raise."""
    _target(url, allow_private)
    return url


def _target(url: str, allow_private: bool) -> tuple:
    """Return (scheme, host, port, path, address to connect to) of a checked URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("it must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise WebhookRefused("it must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("its port is not a number from 1 to 65535") from None
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise WebhookRefused(f"its host {parts.hostname!r} does not resolve") from None
    addresses = [info[4][0] for info in found]
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise WebhookRefused(f"its host {parts.hostname!r} is at {address}, a private, loopback, "
                                     "link-local or reserved address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path, addresses[0]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header's value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300, now: float | None = None) -> bool:
    """Return whether a signature header is right for the body and recent (what a receiver does)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a given address, with the certificate checked against the URL's host name."""

    def __init__(self, host, port, address, **kwargs):
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: dict, *, secret: str, key: str, event: str, allow_private: bool = False) -> int:
    """POST the signed JSON body; return the status, raising Temporary or Permanent when not accepted."""
    try:
        scheme, host, port, path, address = _target(url, allow_private)
    except WebhookRefused as exc:
        raise Permanent(f"webhook refused: {exc}") from None
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "portal-notifications/1",
               "X-Portal-Event": event, "X-Portal-Delivery": key,
               "X-Portal-Signature": sign(secret, int(time.time()), data),
               "Host": host if port in (80, 443) else f"{host}:{port}"}
    if scheme == "https":
        conn = _PinnedHTTPS(host, port, address, timeout=TIMEOUT_S, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(address, port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", path, body=data, headers=headers)
        response = conn.getresponse()
        response.read(65536)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise Temporary(f"webhook {host} failed: {exc}") from None
    finally:
        conn.close()
    if 200 <= status < 300:
        return status
    if status == 410:
        raise Gone(f"webhook answered {status}")
    if status in (408, 425, 429) or status >= 500:
        raise Temporary(f"webhook answered {status}")
    raise Permanent(f"webhook answered {status}")


class Gone(Permanent):
    """The receiver says the subscription is over (410 Gone): it is ended."""
