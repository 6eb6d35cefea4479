"""Draw sources: MUSL (primary), NY Open Data (fallback, bulk backfill), the bundled snapshot (offline).

The MUSL game service v3, the NY Open Data Socrata dataset and the CSV shipped in the package. The one
module that speaks HTTP.

Every call has a wall-clock timeout and a body size cap (cut off while streaming, never retried);
idempotent GETs are retried with exponential backoff on connection errors, timeouts and 429/5xx,
honouring ``Retry-After`` up to a cap; past that the source gives up with a :class:`FetchError` and the
caller falls back to the next source. A body that is not the source's format comes back as a failed
:class:`Batch` (see :mod:`shiol_lib.ingest.records`), never as an exception.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import urllib3

from shiol_lib.errors import FetchError, MalformedBodyError, ResponseTooLargeError
from shiol_lib.ingest.records import (
    Batch,
    body_failure,
    merge_batches,
    ny_page_records,
    parse_musl_json,
    parse_ny_csv,
    parse_ny_records,
)
from shiol_lib.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
NY_DATASET = "d6yy-54nr"
NY_PAGE_SIZE = 1000
NY_MAX_PAGES = 20
NY_MAX_DATES_PER_QUERY = 100
BUNDLED_FILE = "powerball_draws_ny.csv"
DEFAULT_MAX_BYTES = 5_000_000
_CHUNK_BYTES = 65536
_ASCII_DIGITS = re.compile(r"[0-9]+")
_NO_PAGE = object()  # "no page read yet": unlike None, no JSON value equals it


class HttpClient:
    """GET with a whole-response deadline, a body size cap and bounded retries; raises :class:`FetchError`."""

    def __init__(
        self,
        *,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        max_retry_after_s: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.max_bytes = max_bytes
        self._sleep = sleep
        self._session = requests.Session()

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpClient:
        """A client configured from the ``SHIOL_HTTP_*`` settings."""
        return cls(
            timeout_s=settings.http_timeout_s,
            retries=settings.http_retries,
            backoff_s=settings.http_backoff_s,
            max_retry_after_s=settings.http_max_retry_after_s,
            max_bytes=settings.http_max_bytes,
        )

    def get_text(self, url: str, *, params: Mapping[str, str], headers: Mapping[str, str] | None = None) -> str:
        """The body of a successful GET; retries what may succeed next time, then raises."""
        attempt = 0
        while True:
            try:
                return self._get_once(url, params, headers or {})
            except FetchError as err:
                wait = self._retry_wait(err, attempt)
                if wait is None:
                    raise
                log.info("GET %s failed (%s); retry %d in %.2f s", url, err, attempt + 1, wait)
                self._sleep(wait)
                attempt += 1

    def _retry_wait(self, err: FetchError, attempt: int) -> float | None:
        if isinstance(err, ResponseTooLargeError):
            return None  # the same body would come again
        if attempt >= self.retries or (err.status is not None and err.status not in RETRYABLE_STATUS):
            return None
        backoff = self.backoff_s * (2**attempt)
        retry_after = err.retry_after
        if retry_after is None:
            return backoff
        if retry_after > self.max_retry_after_s:
            err.args = (f"{err} (Retry-After {retry_after:g} s exceeds the {self.max_retry_after_s:g} s cap)",)
            return None
        return max(retry_after, backoff)

    def _get_once(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
        deadline = time.monotonic() + self.timeout_s
        try:
            response = self._session.get(url, params=params, headers=headers, timeout=self.timeout_s, stream=True)
        except requests.Timeout as err:
            raise FetchError(f"no answer within {self.timeout_s:g} s", url=url) from err
        except requests.RequestException as err:
            raise FetchError(f"connection failed: {_short(err)}", url=url) from err
        with response:
            if response.status_code != 200:
                raise FetchError(
                    f"HTTP {response.status_code}",
                    url=response.url,
                    status=response.status_code,
                    retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                )
            declared = response.headers.get("Content-Length", "").strip()
            if (
                not response.headers.get("Content-Encoding")
                and _ASCII_DIGITS.fullmatch(declared)
                and int(declared) > self.max_bytes
            ):
                raise self._too_large(response.url, f"Content-Length {int(declared):,}; not downloaded")
            chunks = []
            size = 0
            try:
                # read1: at most one socket read per chunk, so a server trickling bytes (each read
                # within the socket timeout) still meets the whole-response deadline. The cap counts
                # decoded bytes (a small gzip body may inflate) and stops reading as soon as it is passed.
                while chunk := response.raw.read1(_CHUNK_BYTES, decode_content=True):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_large(response.url, f"cut off after {size:,} bytes")
                    if time.monotonic() > deadline:
                        raise FetchError(f"response not complete within {self.timeout_s:g} s", url=response.url)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
                raise FetchError(f"response broken off: {_short(err)}", url=response.url) from err
            return _decode(b"".join(chunks), response.encoding)

    def _too_large(self, url: str, detail: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"response larger than the {self.max_bytes:,} byte limit (SHIOL_HTTP_MAX_BYTES): {detail}",
            url=url,
            limit=self.max_bytes,
        )


def _decode(body: bytes, encoding: str | None) -> str:
    """The body as text in its declared charset; an unknown charset is read as UTF-8."""
    try:
        return body.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        log.info("unknown charset %r in a response; reading it as UTF-8", encoding)
        return body.decode("utf-8", errors="replace")


def _short(err: Exception) -> str:
    text = str(err)
    return text if len(text) < 200 else text[:197] + "..."


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if _ASCII_DIGITS.fullmatch(value):  # not str.isdigit: float("²") raises
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class Attempt:
    """One thing an update asked a source, and what came of it (for the update report)."""

    source: str
    request: str
    outcome: str


class MuslSource:
    """MUSL game service v3: one drawing per request, the latest or a given ``DrawDate``."""

    name = "musl"

    def __init__(self, base_url: str, api_key: str | None, http: HttpClient) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.http = http

    @property
    def configured(self) -> bool:
        """False without an API key: the source is then skipped, not an error."""
        return bool(self.api_key)

    def fetch(self, draw_date: date | None, *, now: datetime) -> Batch:
        """The drawing of ``draw_date`` (or the latest); raises :class:`FetchError`.

        An answer about another drawing than ``draw_date`` comes back in :attr:`Batch.misdated`.
        """
        params = {"GameCode": "powerball"}
        if draw_date is not None:
            params["DrawDate"] = draw_date.isoformat()
        text = self.http.get_text(
            f"{self.base_url}/v3/numbers", params=params, headers={"x-api-key": self.api_key or ""}
        )
        return parse_musl_json(text, source=self.name, now=now, requested=draw_date)


class NySource:
    """NY Open Data (Socrata dataset ``d6yy-54nr``): paged bulk queries."""

    name = "ny"

    def __init__(self, base_url: str, http: HttpClient) -> None:
        self.base_url = base_url
        self.http = http

    def fetch_after(self, after: date, *, now: datetime) -> Batch:
        """Every record dated after ``after``, oldest first, following ``$offset`` pages."""
        where = f"draw_date > '{after.isoformat()}T00:00:00.000'"
        return self._fetch_pages(where, now=now)

    def fetch_dates(self, dates: Iterable[date], *, now: datetime) -> Batch:
        """The records of the given dates (a server ignoring ``$where`` is filtered client-side)."""
        wanted = sorted(set(dates))
        batches = []
        for start in range(0, len(wanted), NY_MAX_DATES_PER_QUERY):
            chunk = wanted[start : start + NY_MAX_DATES_PER_QUERY]
            listed = ", ".join(f"'{d.isoformat()}T00:00:00.000'" for d in chunk)
            batch = self._fetch_pages(f"draw_date in ({listed})", now=now)
            batch.draws = [d for d in batch.draws if d.draw_date in set(chunk)]
            batches.append(batch)
        return merge_batches(self.name, batches)

    def _fetch_pages(self, where: str, *, now: datetime) -> Batch:
        url = f"{self.base_url}/resource/{NY_DATASET}.json"
        records: list[Any] = []
        previous_first: Any = _NO_PAGE
        for page in range(NY_MAX_PAGES):
            params = {
                "$where": where,
                "$order": "draw_date ASC",
                "$limit": str(NY_PAGE_SIZE),
                "$offset": str(page * NY_PAGE_SIZE),
            }
            text = self.http.get_text(url, params=params)
            try:
                payload = ny_page_records(text)
            except MalformedBodyError as err:
                return body_failure(self.name, text, str(err))  # the pages before are dropped too
            if not payload or payload[0] == previous_first:  # empty, or a server ignoring $offset
                break
            previous_first = payload[0]
            records.extend(payload)
            if len(payload) < NY_PAGE_SIZE:
                break
        return parse_ny_records(records, source=self.name, now=now)


class BundledSource:
    """The NY CSV export shipped inside the package: the offline default and the seed of a store.

    ``path`` reads another file of the same layout instead (a newer export, or a test's file).
    """

    name = "bundled"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path

    def fetch(self, *, now: datetime) -> Batch:
        """Every draw of the snapshot; a file that cannot be read is a failed batch."""
        try:
            if self.path is None:
                text = resources.files("shiol_lib").joinpath("data", BUNDLED_FILE).read_text(encoding="utf-8")
            else:
                text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            where = self.path or BUNDLED_FILE
            return body_failure(self.name, str(where), f"snapshot {where} cannot be read ({_short(err)})")
        return parse_ny_csv(text, source=self.name, now=now)
