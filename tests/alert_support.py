"""Real local alert channels for tests: an HTTP webhook receiver and a minimal SMTP server on 127.0.0.1.

Python 3.11 has no ``smtpd`` and ``aiosmtpd`` is not a dependency: :class:`SmtpReceiver` speaks just
enough SMTP (over a real socket) for :mod:`smtplib` to deliver to it.
"""

from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class WebhookReceiver:
    """A ThreadingHTTPServer recording every POST; answers the queued statuses in turn, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append(json.loads(body))
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/s3cret-path"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SmtpReceiver(socketserver.ThreadingTCPServer):
    """Just enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to receive messages."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.port = self.server_address[1]
        self.received: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self._reply("220 127.0.0.1 test SMTP ready")
        sender, recipients = "", []
        while line := self.rfile.readline():
            command = line.decode("ascii").rstrip("\r\n")
            verb, _, argument = command.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250 127.0.0.1")
            elif verb == "MAIL":
                sender, recipients = argument.partition(":")[2].strip("<> "), []
                self._reply("250 OK")
            elif verb == "RCPT":
                recipients.append(argument.partition(":")[2].strip("<> "))
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                self.server.received.append((sender, recipients, self._read_data()))
                self._reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 command not implemented")

    def _read_data(self) -> email.message.EmailMessage:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            line = line[1:] if line.startswith(b"..") else line  # undo dot-stuffing
            lines.append(line.replace(b"\r\n", b"\n"))  # stored with local line ends, as an MTA would
        return email.message_from_bytes(b"".join(lines), policy=email.policy.default)

    def _reply(self, text: str) -> None:
        self.wfile.write(text.encode("ascii") + b"\r\n")


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1 for one test."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """An SMTP server on 127.0.0.1 for one test."""
    server = SmtpReceiver()
    yield server
    server.close()
