"""Real HTTP servers on 127.0.0.1 that speak the two draw-source formats, for tests.

- :class:`MuslServer`: MUSL game service v3, ``GET /v3/numbers?GameCode=powerball[&DrawDate=...]``
  with an ``x-api-key`` header; one drawing object per answer, white balls in draw order.
- :class:`NyServer`: NY Open Data (Socrata ``d6yy-54nr``), ``GET /resource/d6yy-54nr.json`` with
  ``$limit``, ``$offset``, ``$order`` and the ``$where`` forms the workbench sends.

Each server runs a stdlib ``ThreadingHTTPServer`` on an ephemeral port in a background thread, is a
context manager that shuts down cleanly (slow handlers are woken up), keeps a log of every request
(:attr:`FakeServer.requests`) and takes programmable :class:`Fault` s per path: an error status (with
``Retry-After``), N failures then success, a slow or trickling answer, a replacement body (HTML page,
truncated JSON), or a huge body generated while it is sent (:func:`huge_body`). The fixtures
``musl_server`` and ``ny_server`` reach every test through ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import pytest

from shiol_lib.domain.draw_calendar import draw_instant
from shiol_lib.domain.draws import Draw
from shiol_lib.ingest.records import parse_ny_csv

MUSL_PATH = "/v3/numbers"
NY_PATH = "/resource/d6yy-54nr.json"
MUSL_API_KEY = "test-musl-key"
_CHUNK = 1024  # bytes per chunk of a chunked answer

# Three drawings after the end of the bundled history (2024-06-29), current matrix; the last one has
# no multiplier, as NY records sometimes lack it.
NEWER_DRAWS: tuple[Draw, ...] = (
    Draw(date(2024, 7, 1), (1, 6, 40, 51, 67), 2, 2),
    Draw(date(2024, 7, 3), (12, 25, 33, 48, 60), 14, 3),
    Draw(date(2024, 7, 6), (7, 19, 28, 44, 65), 21, None),
)

# The six scheduled drawings the bundled history lacks, with invented numbers valid for their era.
MISSING_DRAWS: tuple[Draw, ...] = (
    Draw(date(2014, 6, 28), (5, 18, 27, 43, 58), 33, 2),  # 5 of 1-59, PB 1-35
    Draw(date(2017, 6, 10), (3, 16, 29, 52, 68), 11, 3),
    Draw(date(2021, 4, 28), (9, 22, 35, 41, 66), 24, 2),
    Draw(date(2022, 3, 12), (14, 20, 31, 47, 69), 5, 4),
    Draw(date(2022, 4, 9), (2, 13, 38, 50, 61), 19, 2),
    Draw(date(2022, 11, 7), (10, 33, 41, 47, 56), 10, 2),
)
MISSING_DATES: tuple[date, ...] = tuple(d.draw_date for d in MISSING_DRAWS)


@lru_cache(maxsize=1)
def _bundled() -> tuple[Draw, ...]:
    text = resources.files("shiol_lib").joinpath("data", "powerball_draws_ny.csv").read_text(encoding="utf-8")
    batch = parse_ny_csv(text, source="bundled", now=datetime.now(UTC))
    if not batch.ok:
        raise AssertionError(f"the bundled history does not parse: {batch.rejections[:3]}")
    return tuple(sorted(batch.draws))


def history_draws() -> list[Draw]:
    """The real bundled history (1,647 draws, 2010-02-03 .. 2024-06-29), oldest first."""
    return list(_bundled())


# -- record formats ------------------------------------------------------------------------------


def ny_record(draw: Draw) -> dict[str, str]:
    """A Socrata ``d6yy-54nr`` record; ``multiplier`` is left out when the draw has none."""
    record = {
        "draw_date": f"{draw.draw_date.isoformat()}T00:00:00.000",
        "winning_numbers": " ".join(f"{n:02d}" for n in (*draw.whites, draw.powerball)),
    }
    if draw.multiplier is not None:
        record["multiplier"] = str(draw.multiplier)
    return record


def draw_order(draw: Draw) -> list[int]:
    """The white balls in a (deterministic) draw order that is never ascending."""
    order = list(draw.whites)
    random.Random(draw.draw_date.toordinal()).shuffle(order)
    if order == sorted(order):
        order.reverse()
    return order


def _utc(day: date) -> str:
    return draw_instant(day).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _draw_id(day: date) -> str:
    return str(day.toordinal())


def musl_drawing(
    draw_date: date,
    whites: Iterable[int] = (),
    powerball: int | None = None,
    multiplier: int | None = None,
    *,
    status: str = "complete",
) -> dict[str, Any]:
    """A MUSL v3 drawing object; white balls are listed in the order given (draw order).

    ``previousDrawing``/``nextDrawing`` are filled in by :class:`MuslServer` when it serves it.
    """
    numbers = [
        {"itemCode": "white-balls", "ruleCode": "white-balls", "value": f"{n:02d}", "orderDrawn": i}
        for i, n in enumerate(whites, start=1)
    ]
    if powerball is not None:
        numbers.append(
            {
                "itemCode": "powerball",
                "ruleCode": "powerball",
                "value": f"{powerball:02d}",
                "orderDrawn": len(numbers) + 1,
            }
        )
    if multiplier is not None:
        numbers.append(
            {
                "itemCode": "power-play",
                "ruleCode": "power-play",
                "value": f"{multiplier:02d}",
                "orderDrawn": len(numbers) + 1,
            }
        )
    return {
        "drawId": _draw_id(draw_date),
        "game": {"code": "powerball", "name": "Powerball"},
        "statusCode": status,
        "drawDate": draw_date.isoformat(),
        "drawDateUtc": _utc(draw_date),
        "previousDrawing": None,
        "nextDrawing": None,
        "numbers": numbers,
    }


def musl_payload(draw: Draw, *, status: str = "complete") -> dict[str, Any]:
    """The MUSL drawing object of ``draw``, white balls unsorted (see :func:`draw_order`)."""
    if status != "complete":
        return musl_drawing(draw.draw_date, status=status)
    return musl_drawing(draw.draw_date, draw_order(draw), draw.powerball, draw.multiplier)


# -- faults and the request log ------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request a fake server received."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float  # time.monotonic() when the request line had been read


@dataclass
class Fault:
    """How to spoil the answers to one path; ``times=None`` spoils every request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # None: the normal answer (with ``status`` and ``headers``)
    content_type: str = "application/json"
    delay_s: float = 0.0  # sleep before answering
    gate: threading.Event | None = None  # hold the answer until this is set (or the server stops)
    trickle_s: float = 0.0  # send the body one byte at a time, this far apart
    cut_after: int | None = None  # close the connection after this many body bytes (Content-Length kept)
    times: int | None = None
    when: Callable[[Request], bool] | None = None  # only requests matching this
    stream_bytes: int = 0  # instead of the answer: this many bytes of ``stream_pattern``, made while sending
    stream_pattern: bytes = b" "
    declare_length: bool = False  # a streamed body announces its Content-Length (else it is chunked)
    sent: int = 0  # streamed body bytes written before the client went away (set by the server)


def http_error(status: int, *, retry_after: str | float | None = None, times: int | None = None) -> Fault:
    """An error status with a small JSON body, optionally with ``Retry-After``."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Fault(status=status, headers=headers, body=json.dumps({"message": f"fake error {status}"}), times=times)


def slow(delay_s: float, *, times: int | None = None) -> Fault:
    """The normal answer, after ``delay_s`` of silence."""
    return Fault(delay_s=delay_s, times=times)


def held(gate: threading.Event, *, times: int | None = None) -> Fault:
    """The normal answer, once ``gate`` is set: a source that keeps a job waiting as long as a test likes."""
    return Fault(gate=gate, times=times)


def trickle(interval_s: float, *, times: int | None = None) -> Fault:
    """The normal answer, its body sent one byte every ``interval_s``."""
    return Fault(trickle_s=interval_s, times=times)


def cut_off(after_bytes: int, *, times: int | None = None) -> Fault:
    """The normal answer, the connection closed after ``after_bytes`` of its body."""
    return Fault(cut_after=after_bytes, times=times)


def html_page(*, times: int | None = None) -> Fault:
    """An HTML error page served with status 200 (a proxy or maintenance page)."""
    page = (
        "<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
        "<body><h1>Down for maintenance</h1></body></html>"
    )
    return Fault(body=page, content_type="text/html; charset=utf-8", times=times)


def raw_body(text: str, *, times: int | None = None) -> Fault:
    """``text`` as the 200 JSON body (e.g. truncated JSON)."""
    return Fault(body=text, times=times)


def huge_body(
    total_bytes: int, *, pattern: bytes = b" ", declare_length: bool = False, times: int | None = None
) -> Fault:
    """A 200 body of ``total_bytes`` (``pattern`` repeated), generated while sending, never held whole.

    :attr:`Fault.sent` then tells how much of it the client let the server write.
    """
    return Fault(stream_bytes=total_bytes, stream_pattern=pattern, declare_length=declare_length, times=times)


def truncated_json(*, times: int | None = None) -> Fault:
    """A JSON body cut off in the middle of a record."""
    return raw_body('[{"draw_date": "2024-07-01T00:00:00.000", "winning_numbers": "01 06 40', times=times)


# -- the servers ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # for chunked bodies; every answer says "Connection: close"

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: nothing to answer
            self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass


class _HTTPServer(ThreadingHTTPServer):
    fake: FakeServer


class FakeServer:
    """Base of the fake sources: lifecycle, request log, faults; subclasses implement :meth:`answer`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.gzip = False  # answer with Content-Encoding: gzip (as Socrata does)
        self.chunked = False  # answer with Transfer-Encoding: chunked instead of Content-Length

    # lifecycle

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and serve in a background thread."""
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{type(self).__name__}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake slow handlers and wait for every handler thread."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the base URL to configure."""
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # faults and log

    def inject(self, path: str, fault: Fault) -> None:
        """Spoil answers to ``path`` (faults are consumed in the order injected)."""
        with self._lock:
            self._faults.setdefault(path, []).append(fault)

    def clear_faults(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._faults.clear()

    def reset(self, draws: Iterable[Draw] = ()) -> None:
        """Serve exactly ``draws``, plainly, with an empty request log (one server for many tests)."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
        self.gzip = self.chunked = False
        self._reset_data(list(draws))

    def _reset_data(self, draws: list[Draw]) -> None:
        raise NotImplementedError

    def requests_to(self, path: str) -> list[Request]:
        """The logged requests for ``path``, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self._faults.get(request.path, []):
                if fault.when is not None and not fault.when(request):
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                return fault
        return None

    # request handling

    def answer(self, request: Request) -> tuple[int, Any]:
        """The normal (status, JSON payload) for ``request``."""
        raise NotImplementedError

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        request = Request(
            path=split.path,
            params=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in handler.headers.items()},
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault is not None and fault.delay_s and self._stopping.wait(fault.delay_s):
            return  # shutting down
        if fault is not None and fault.gate is not None:
            while not fault.gate.wait(0.05):
                if self._stopping.is_set():
                    return
        if fault is not None and fault.stream_bytes:
            self._stream(handler, fault)
            return
        if fault is not None and fault.body is not None:
            status, body, content_type = fault.status, fault.body, fault.content_type
        else:
            status, payload = self.answer(request)
            if fault is not None and fault.status != 200:
                status = fault.status
            body, content_type = json.dumps(payload), "application/json"
        data = body.encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Connection", "close")  # one request per connection: nothing lingers at shutdown
        if self.gzip:
            data = gzip.compress(data)
            handler.send_header("Content-Encoding", "gzip")
        if self.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
            data = b"".join(
                b"%x\r\n%s\r\n" % (len(part), part)
                for part in (data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK))
            )
            data += b"0\r\n\r\n"
        else:
            handler.send_header("Content-Length", str(len(data)))
        for name, value in fault.headers.items() if fault is not None else ():
            handler.send_header(name, value)
        handler.end_headers()
        if fault is not None and fault.cut_after is not None:
            data = data[: fault.cut_after]
        if fault is not None and fault.trickle_s:
            for i in range(len(data)):
                handler.wfile.write(data[i : i + 1])
                handler.wfile.flush()
                if self._stopping.wait(fault.trickle_s):
                    return
        else:
            handler.wfile.write(data)

    def _stream(self, handler: _Handler, fault: Fault) -> None:
        """Send ``fault.stream_bytes`` of the pattern in 64 KiB pieces, counting what got written."""
        handler.send_response(fault.status)
        handler.send_header("Content-Type", fault.content_type)
        handler.send_header("Connection", "close")
        if fault.declare_length:
            handler.send_header("Content-Length", str(fault.stream_bytes))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        piece = (fault.stream_pattern * (65536 // len(fault.stream_pattern) + 1))[:65536]
        left = fault.stream_bytes
        while left > 0 and not self._stopping.is_set():
            part = piece[: min(left, len(piece))]
            handler.wfile.write(part if fault.declare_length else b"%x\r\n%s\r\n" % (len(part), part))
            fault.sent += len(part)
            left -= len(part)
        if not fault.declare_length:
            handler.wfile.write(b"0\r\n\r\n")


class MuslServer(FakeServer):
    """MUSL game service v3: one drawing object per request; 401 without the right ``x-api-key``."""

    def __init__(self, draws: Iterable[Draw] = (), *, api_key: str = MUSL_API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self._drawings: dict[date, dict[str, Any]] = {}
        self.add_draws(draws)

    def add_draws(self, draws: Iterable[Draw]) -> None:
        """Serve these draws (replacing any drawing of the same date)."""
        for draw in draws:
            self._drawings[draw.draw_date] = musl_payload(draw)

    def _reset_data(self, draws: list[Draw]) -> None:
        self._drawings.clear()
        self.add_draws(draws)

    def add_payload(self, payload: dict[str, Any], *, served_for: date | None = None) -> None:
        """Serve a raw drawing object (e.g. ``reporting``, or invalid numbers) under its ``drawDate``.

        ``served_for`` serves it under another date (a source answering the wrong drawing), which
        a payload whose ``drawDate`` is missing or garbage needs.
        """
        self._drawings[served_for or date.fromisoformat(payload["drawDate"])] = payload

    def answer(self, request: Request) -> tuple[int, Any]:
        if request.path != MUSL_PATH:
            return 404, {"message": "Not Found"}
        if request.headers.get("x-api-key") != self.api_key:
            return 401, {"message": "Unauthorized"}
        if request.params.get("GameCode", "").lower() != "powerball":
            return 400, {"message": "GameCode is required"}
        days = sorted(self._drawings)
        raw = request.params.get("DrawDate")
        if raw is None:
            if not days:
                return 404, {"message": "no drawing"}
            day = days[-1]
        else:
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                return 400, {"message": f"DrawDate {raw!r} is not YYYY-MM-DD"}
            if day not in self._drawings:
                return 404, {"message": f"no drawing on {raw}"}
        payload = dict(self._drawings[day])
        index = days.index(day)
        if payload.get("previousDrawing") is None and index > 0:
            payload["previousDrawing"] = _link(days[index - 1])
        if payload.get("nextDrawing") is None and index + 1 < len(days):
            payload["nextDrawing"] = _link(days[index + 1])
        return 200, payload


def _link(day: date) -> dict[str, str]:
    return {"drawId": _draw_id(day), "drawDate": day.isoformat(), "drawDateUtc": _utc(day)}


_WHERE_COMPARE = re.compile(r"^\s*draw_date\s*(>=|>|<=|<|=)\s*'([^']*)'\s*$", re.IGNORECASE)
_WHERE_IN = re.compile(r"^\s*draw_date\s+in\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"'([^']*)'")
_COMPARE: dict[str, Callable[[datetime, datetime], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
}


def _floating(text: Any) -> datetime | None:
    """A Socrata floating timestamp, or None when the fake cannot read it."""
    if isinstance(text, dict):  # a whole record
        text = text.get("draw_date")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class NyServer(FakeServer):
    """NY Open Data ``d6yy-54nr``: ``$where``/``$order``/``$limit``/``$offset`` over a record list.

    Records whose ``draw_date`` the fake cannot read (a test's garbage) match every ``$where`` and
    sort last, so a test can slip them into any answer.
    """

    def __init__(self, draws: Iterable[Draw] = (), *, ignore_offset: bool = False, ignore_where: bool = False) -> None:
        super().__init__()
        self.ignore_offset = ignore_offset
        self.ignore_where = ignore_where
        self.records: list[Any] = []
        self.add_draws(draws)

    def add_draws(self, draws: Iterable[Draw]) -> None:
        """Serve these draws (replacing records of the same date)."""
        draws = list(draws)
        dates = {ny_record(d)["draw_date"] for d in draws}
        self.records = [r for r in self.records if not isinstance(r, dict) or r.get("draw_date") not in dates]
        self.records.extend(ny_record(d) for d in draws)

    def _reset_data(self, draws: list[Draw]) -> None:
        self.ignore_offset = self.ignore_where = False
        self.records = [ny_record(d) for d in draws]

    def add_records(self, records: Iterable[Any]) -> None:
        """Serve raw records as they are (possibly invalid, possibly not even objects)."""
        self.records.extend(records)

    def answer(self, request: Request) -> tuple[int, Any]:
        if request.path != NY_PATH:
            return 404, {"code": "not_found", "error": True, "message": "Not found"}
        params = request.params
        try:
            limit = int(params.get("$limit", "1000"))
            offset = 0 if self.ignore_offset else int(params.get("$offset", "0"))
            selected = self._where(params.get("$where"))
            selected = self._order(selected, params.get("$order"))
        except ValueError as err:
            return 400, {"code": "query.compiler.malformed", "error": True, "message": str(err)}
        return 200, selected[offset : offset + limit]

    def _where(self, where: str | None) -> list[dict[str, Any]]:
        if where is None or self.ignore_where:
            return list(self.records)
        match = _WHERE_COMPARE.match(where)
        if match:
            op, bound = _COMPARE[match[1]], _floating(match[2])
            if bound is None:
                raise ValueError(f"cannot read the timestamp {match[2]!r}")
            return [r for r in self.records if (t := _floating(r)) is None or op(t, bound)]
        match = _WHERE_IN.match(where)
        if match:
            wanted = {_floating(v) for v in _QUOTED.findall(match[1])}
            if None in wanted or not wanted:
                raise ValueError(f"cannot read the list {match[1]!r}")
            return [r for r in self.records if (t := _floating(r)) is None or t in wanted]
        raise ValueError(f"unsupported $where {where!r}")

    @staticmethod
    def _order(records: list[dict[str, Any]], order: str | None) -> list[dict[str, Any]]:
        if order is None:
            return records
        match = re.fullmatch(r"\s*draw_date(?:\s+(ASC|DESC))?\s*", order, re.IGNORECASE)
        if not match:
            raise ValueError(f"unsupported $order {order!r}")
        descending = (match[1] or "ASC").upper() == "DESC"
        readable = [r for r in records if _floating(r) is not None]
        unreadable = [r for r in records if _floating(r) is None]
        readable.sort(key=_floating, reverse=descending)
        return readable + unreadable


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def musl_server() -> Iterator[MuslServer]:
    """A MUSL server holding the bundled history (key :data:`MUSL_API_KEY`); add draws or faults."""
    with MuslServer(history_draws()) as server:
        yield server


@pytest.fixture
def ny_server() -> Iterator[NyServer]:
    """A NY Open Data server holding the bundled history; add draws, records or faults."""
    with NyServer(history_draws()) as server:
        yield server


def future_draw_day(days_ahead: int = 14) -> date:
    """A Wednesday at least ``days_ahead`` days from today (a draw day that has not happened)."""
    day = datetime.now(UTC).date() + timedelta(days=days_ahead)
    while day.weekday() != 2:
        day += timedelta(days=1)
    return day
