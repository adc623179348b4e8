"""Real servers for the notification tests: an SMTP server (aiosmtpd), a webhook receiver, a worker process."""
from __future__ import annotations

import asyncio
import email
import email.header
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

from benchmarks.load import redis_server  # noqa: F401 -- the tests' Redis comes from here too

ROOT = Path(__file__).resolve().parent.parent
NOTIFY = ROOT / "scripts" / "notify.py"
INCIDENT = ROOT / "scripts" / "incident.py"
BASE_URL = "https://portal.example"


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts, in order.

    ``hold_at(n)``: the n-th message (1-based) waits inside DATA, before it is accepted, until
    ``release()``; ``held`` is set when it arrives. A client that dies meanwhile cancels the
    wait (aiosmtpd cancels the handler when the connection is lost): that message is never
    accepted, as with any server that had not yet answered "250".
    """

    def __init__(self):
        self.messages: list[email.message.Message] = []
        self.lock = threading.Lock()
        self.hold_number: int | None = None
        self.held = threading.Event()
        self._gate: asyncio.Event | None = None
        self._loop = None
        self.arrived = 0

    def hold_at(self, number: int) -> None:
        """Make the ``number``-th message wait before it is accepted."""
        self.hold_number = number

    def release(self) -> None:
        """Let a held message go on."""
        if self._gate is not None:
            self._loop.call_soon_threadsafe(self._gate.set)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 -- aiosmtpd's hook name
        self.arrived += 1
        if self.hold_number is not None and self.arrived == self.hold_number:
            self._loop = asyncio.get_running_loop()
            self._gate = asyncio.Event()
            self.held.set()
            await self._gate.wait()
        message = email.message_from_bytes(envelope.content)
        with self.lock:
            self.messages.append(message)
        return "250 OK queued"

    def wait_for(self, count: int, timeout: float = 30.0) -> list:
        """Wait until at least ``count`` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} messages within {timeout} s, got {len(self.messages)}: "
                             f"{[subject(m) for m in self.messages]}")

    def to(self, address: str) -> list:
        """Return the messages sent to one address."""
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.inbox = Inbox()
        self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def subject(message) -> str:
    """Return a message's subject decoded."""
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def body(message, subtype: str = "plain") -> str:
    """Return the text/plain (or html) part decoded."""
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part")


def link(message, kind: str) -> str:
    """Return the path of the confirm or unsubscribe link in a message (under BASE_URL)."""
    found = re.search(rf"{re.escape(BASE_URL)}(/subscriptions/{kind}/[A-Za-z0-9_-]+)", body(message))
    assert found, f"no {kind} link in {body(message)!r}"
    return found.group(1)


def worker_env(smtp_url: str | None, **extra) -> dict:
    """Return the environment of a worker or staff script talking to the test's servers."""
    env = {**os.environ, "PORTAL_BASE_URL": BASE_URL, "PORTAL_NOTIFY_FOLD_SECONDS": "1",
           "PORTAL_NOTIFY_RETRY_SECONDS": "1", "PORTAL_AUTHOR": "anna"}
    env.pop("PORTAL_REDIS_URL", None)
    if smtp_url:
        env["PORTAL_SMTP_URL"] = smtp_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(db_path, env) -> subprocess.Popen:
    """Start ``scripts/notify.py run`` as its own process."""
    return subprocess.Popen([sys.executable, str(NOTIFY), "run", "--db", str(db_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT.parent)


def stop_worker(proc: subprocess.Popen, kill: bool = False) -> None:
    """Stop a worker: SIGINT (its graceful stop), or SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_script(script: Path, *args, env=None) -> subprocess.CompletedProcess:
    """Run a staff script in its own process."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT.parent, timeout=120)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every POST (headers and JSON body)."""

    def __init__(self):
        received = self.received = []
        status = self.status = [200]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- http.server's hook name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"headers": dict(self.headers), "raw": raw, "json": json.loads(raw)})
                self.send_response(status[0])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
