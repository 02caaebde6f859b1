"""The one upstream client: a shared `ClientSession` with explicit timeouts,
proxies from the environment, an optional extra CA bundle, credentials taken
from the mirror URL (never stored with file URLs, never logged), and a short
circuit breaker so a dead upstream costs one timeout, not one per request."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog

from lockgate import __version__
from lockgate.egress import EgressPolicy, EgressRefused, GuardedResolver
from lockgate.indexes.services import IndexView
from lockgate.mirror.pages import (
    ACCEPT,
    JSON_V1,
    PageFormatError,
    UpstreamPage,
    parse_html_page,
    parse_json_page,
    parse_project_list,
)
from lockgate.urls import strip_credentials

log = structlog.get_logger("lockgate.mirror")

USER_AGENT = f"lockgate/{__version__} (+mirror)"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_LIST_BYTES = 512 * 1024 * 1024


class UpstreamUnavailable(Exception):
    """The upstream could not be reached, timed out or failed (5xx)."""


class UpstreamBadData(Exception):
    """The upstream answered, but with something unusable."""


class RangeNotHonoured(Exception):
    """The upstream answered a Range request with the whole file (200)."""


CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)")


@dataclass(frozen=True)
class RangeAnswer:
    """A 206 answer: `data` is bytes [start, start + len(data)) of a `total`-byte file."""

    data: bytes
    start: int
    total: int


@dataclass(frozen=True)
class PageFetch:
    kind: str  # "ok" | "not_modified" | "missing"
    page: UpstreamPage | None = None
    etag: str | None = None
    last_modified: str | None = None
    serial: int | None = None  # X-PyPI-Last-Serial, when the upstream sends it


class UpstreamClient:
    def __init__(self, policy: EgressPolicy | None = None) -> None:
        self.policy = policy or EgressPolicy()
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[tuple[str, int, int, int], ssl.SSLContext] = {}
        # index path -> (the connection settings it failed with, retry time)
        self._down_until: dict[str, tuple[tuple[str, str], float]] = {}
        self._last_failure: dict[str, str] = {}
        # index path -> the connection settings whose upstream ignored a Range request
        self._no_ranges: dict[str, tuple[str, str]] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.policy)),
            trust_env=True,  # HTTP(S)_PROXY / NO_PROXY from the environment
            headers={"User-Agent": USER_AGENT},
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "UpstreamClient.start() was not called"
        return self._session

    # --- plumbing -----------------------------------------------------------
    def _ssl_for(self, index: IndexView) -> ssl.SSLContext | bool:
        bundle = index.mirror.mirror_ca_bundle
        if not bundle:
            return True
        try:
            # Keyed by the file's identity too: a replaced bundle is read again.
            stat = os.stat(bundle)
            key = (bundle, stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if key not in self._ssl:
                context = ssl.create_default_context()
                context.load_verify_locations(cafile=bundle)
                self._ssl = {k: v for k, v in self._ssl.items() if k[0] != bundle}
                self._ssl[key] = context
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            # A configuration problem, not an upstream outage: no circuit breaker.
            raise UpstreamUnavailable(f"cannot load mirror_ca_bundle {bundle!r}: {exc}") from None
        return self._ssl[key]

    def _auth_for(self, index: IndexView, url: str) -> aiohttp.BasicAuth | None:
        base = urlsplit(index.mirror.mirror_url)
        target = urlsplit(url)
        if base.username is None or (base.hostname, base.port) != (target.hostname, target.port):
            return None
        return aiohttp.BasicAuth(base.username, base.password or "")

    @staticmethod
    def _connection_settings(index: IndexView) -> tuple[str, str]:
        return (index.mirror.mirror_url, index.mirror.mirror_ca_bundle)

    def is_down(self, index: IndexView) -> bool:
        # A changed URL or CA bundle gets a fresh try at once, not after the retry delay.
        settings, until = self._down_until.get(index.path, (None, 0.0))
        return settings == self._connection_settings(index) and until > time.monotonic()

    def last_failure(self, index: IndexView) -> str | None:
        """Why the last request to this mirror's upstream failed; None after a success."""
        return self._last_failure.get(index.path)

    def mark_down(self, index: IndexView, reason: str) -> None:
        retry = index.mirror.mirror_offline_retry
        until = time.monotonic() + max(0.0, retry)
        self._down_until[index.path] = (self._connection_settings(index), until)
        self._last_failure[index.path] = reason
        log.warning("upstream unavailable", index=index.path, reason=reason, retry_in_seconds=retry)

    def _mark_up(self, index: IndexView) -> None:
        self._down_until.pop(index.path, None)
        if self._last_failure.pop(index.path, None) is not None:
            log.info("upstream reachable again", index=index.path)

    @asynccontextmanager
    async def get(
        self,
        index: IndexView,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        total_timeout: float | None = None,
        method: str = "GET",
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET (or `method`) with this mirror's settings; connection trouble and 5xx raise
        UpstreamUnavailable (and open the circuit breaker). Redirects are
        followed here, each hop checked against the egress policy."""
        if self.is_down(index):
            raise UpstreamUnavailable("upstream is marked unreachable; retrying shortly")
        seconds = index.mirror.timeout
        timeout = aiohttp.ClientTimeout(
            total=total_timeout, sock_connect=seconds, sock_read=seconds
        )
        current = strip_credentials(url)
        response: aiohttp.ClientResponse | None = None
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                self.policy.check_url(current)
                hop_headers = dict(headers or {})
                auth = self._auth_for(index, current)
                if auth is not None:
                    # Only towards the mirror's own host (never on a redirect elsewhere).
                    hop_headers["Authorization"] = auth.encode()
                response = await self.session.request(
                    method,
                    current,
                    headers=hop_headers,
                    timeout=timeout,
                    ssl=self._ssl_for(index),
                    allow_redirects=False,
                )
                location = response.headers.get("Location")
                if response.status in REDIRECT_STATUSES and location:
                    response.release()
                    current = strip_credentials(urljoin(current, location))
                    continue
                break
            else:
                raise UpstreamBadData(f"more than {MAX_REDIRECTS} redirects from {url!r}")
            assert response is not None
            if response.status >= 500:
                reason = f"upstream answered {response.status} for {current}"
                self.mark_down(index, reason)
                raise UpstreamUnavailable(reason)
            self._mark_up(index)
            yield response
        except EgressRefused as exc:
            # A configuration problem, not an outage: no circuit breaker.
            raise UpstreamUnavailable(str(exc)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.mark_down(index, reason)
            raise UpstreamUnavailable(f"upstream unreachable ({reason})") from None
        finally:
            if response is not None:
                response.release()

    # --- ranges -------------------------------------------------------------
    def ranges_unsupported(self, index: IndexView) -> bool:
        return self._no_ranges.get(index.path) == self._connection_settings(index)

    async def fetch_range(
        self, index: IndexView, url: str, range_header: str, limit: int
    ) -> RangeAnswer:
        """One byte range of a file (`Range: bytes=...`), read whole and checked
        against its Content-Range; RangeNotHonoured when the upstream sends the
        whole file instead (remembered, so it is not asked again)."""
        seconds = index.mirror.timeout
        headers = {"Range": range_header, "Accept-Encoding": "identity"}
        async with self.get(index, url, headers=headers, total_timeout=seconds * 3) as response:
            if response.status == 200:
                # Leave the body unread: releasing it closes the connection.
                self._no_ranges[index.path] = self._connection_settings(index)
                log.info("upstream ignores range requests", index=index.path)
                raise RangeNotHonoured(url)
            if response.status != 206:
                raise UpstreamBadData(
                    f"the upstream answered {response.status} to a range request for "
                    f"{url.rsplit('/', 1)[-1]}"
                )
            match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None:
                raise UpstreamBadData("the upstream's 206 answer has no usable Content-Range")
            first, last, total = (int(group) for group in match.groups())
            length = last - first + 1
            if length <= 0 or last >= total or length > limit:
                raise UpstreamBadData(
                    f"the upstream's Content-Range {first}-{last}/{total} is not usable"
                )
            data = await self.read_limited(response, length)
            if len(data) != length:
                raise UpstreamBadData(
                    f"the upstream sent {len(data)} bytes of a {length}-byte range"
                )
            return RangeAnswer(data, first, total)

    # --- pages --------------------------------------------------------------
    def project_url(self, index: IndexView, project: str) -> str:
        return index.mirror.mirror_url.rstrip("/") + f"/{project}/"

    async def fetch_page(
        self, index: IndexView, project: str, etag: str | None, last_modified: str | None
    ) -> PageFetch:
        url = self.project_url(index, project)
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        seconds = index.mirror.timeout
        async with self.get(index, url, headers=headers, total_timeout=seconds * 3) as response:
            if response.status == 304:
                return PageFetch("not_modified", etag=etag, last_modified=last_modified)
            if response.status in (404, 410):
                return PageFetch("missing")
            if response.status != 200:
                raise UpstreamBadData(f"upstream answered {response.status} for {project}")
            body = await self.read_limited(response, MAX_PAGE_BYTES)
            content_type = response.headers.get("Content-Type", "text/html").lower()
            final_url = strip_credentials(str(response.url))
            try:
                if content_type.startswith(JSON_V1):
                    page = parse_json_page(body, final_url)
                else:
                    page = parse_html_page(body, final_url, response.charset or "utf-8")
            except PageFormatError as exc:
                raise UpstreamBadData(str(exc)) from None
            serial = response.headers.get("X-PyPI-Last-Serial", "")
            return PageFetch(
                "ok",
                page=page,
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                serial=int(serial) if serial.isdigit() else None,
            )

    async def root_answers(self, index: IndexView) -> bool:
        """Whether the upstream's index root is there: a 404 for one project
        only means "removed" when the index itself answers (docs/reliability.md F-U8)."""
        try:
            url = index.mirror.mirror_url
            async with self.get(index, url, method="HEAD") as response:
                return response.status == 200
        except (UpstreamUnavailable, UpstreamBadData):
            return False

    async def fetch_project_list(self, index: IndexView) -> list[str]:
        url = index.mirror.mirror_url
        seconds = index.mirror.timeout
        async with self.get(
            index, url, headers={"Accept": ACCEPT}, total_timeout=max(60.0, seconds * 30)
        ) as response:
            if response.status != 200:
                raise UpstreamBadData(f"upstream answered {response.status} for its project list")
            body = await self.read_limited(response, MAX_LIST_BYTES)
            content_type = response.headers.get("Content-Type", "text/html").lower()
            try:
                return await asyncio.to_thread(parse_project_list, body, content_type)
            except PageFormatError as exc:
                raise UpstreamBadData(str(exc)) from None

    @staticmethod
    async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise UpstreamBadData(f"upstream page larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
