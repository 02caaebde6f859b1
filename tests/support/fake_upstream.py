"""A fake PyPI on a real loopback socket, for the mirror tests (docs/reliability.md §3.0 H1).

`FakeUpstream` runs an aiohttp application in a background thread with its own
event loop and listens on ``127.0.0.1`` only. It speaks the simple repository
API as PyPI does (docs/standards.md §1-3):

* ``/simple/`` -- the project list, PEP 503 HTML or PEP 691 JSON.
* ``/simple/<normalized>/`` -- a project page. Unknown projects give 404; a
  non-normalized name or a missing trailing slash gives 301 to the canonical URL.
* ``/files/<sha256-prefix>/<filename>`` -- the distributions (with ``Content-Length``,
  strong ``ETag``, single-range ``Range`` support), and ``<file>.metadata`` (PEP 658).

Pages carry hashes, requires-python (escaped once in HTML), yanked markers,
core-metadata (both PEP 714 names), PEP 700 ``versions``/``size``/``upload-time``
(JSON) and PEP 792 project-status markers (API version 1.4 when a status is set).
JSON pages link files by absolute URL on the requested host; HTML pages use relative
``../../files/...`` links, so both URL forms get exercised.

Faults: ``mode`` is ``"ok"``, ``"hang"`` (read the request, never answer until the
mode changes or the server stops) or ``"error"`` (500 with a body), and applies to
every route. ``slow_bytes_per_second`` trickles file bodies. ``stop()`` closes the
listening socket (connections are refused afterwards) and ``start()`` listens again
on the same port. Every request is logged as ``(method, path)``; ``ranged_requests``
also gives each request's ``Range`` header (None without one).

Upstreams without PEP 658 (an internal mirror, a static tree): ``add_wheel(...,
with_metadata=False)`` or ``metadata=False`` for every wheel added afterwards.
``ranges = False`` makes file answers ignore ``Range`` (200, the whole file, no
``Accept-Ranges``). ``truncate_files_at = N`` ends every file body after N bytes
(the connection is dropped: a dead upstream mid-transfer).

All mutators (`add_wheel`, `set_yanked`, ...) may be called from the test thread
while the server runs; every wait inside the server is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import html
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from tests.support.dists import (
    make_sdist,
    make_wheel,
    normalize_name,
    sha256_file,
    wheel_metadata,
)
from tests.support.threads import start_loop_thread

__all__ = ["FakeUpstream", "UpstreamFile", "upload_time_now"]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
V1_HTML_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# PyPI breaks q-value ties in this order, so `Accept: */*` yields text/html.
_TIE_ORDER = (TEXT_HTML, V1_HTML_TYPE, JSON_TYPE)

MODES = ("ok", "hang", "error")
FILE_PREFIX_LEN = 16
_CHUNK = 256 * 1024
_SLOW_TICK = 0.05


def upload_time_now() -> str:
    """The current UTC time as PEP 700 wants it: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_upload_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _http_date(when: float | datetime) -> str:
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


@dataclass
class UpstreamFile:
    """One distribution file of a fake upstream project."""

    filename: str
    path: Path
    sha256: str
    size: int
    requires_python: str | None = None
    yanked: bool | str = False
    upload_time: str = field(default_factory=upload_time_now)
    metadata: bytes | None = None
    #: When set, the pages advertise this (wrong) digest instead of `sha256`.
    advertised_sha256: str | None = None

    @classmethod
    def from_path(
        cls,
        path: Path,
        *,
        requires_python: str | None = None,
        yanked: bool | str = False,
        upload_time: str | None = None,
        metadata: bytes | None = None,
        advertised_sha256: str | None = None,
    ) -> UpstreamFile:
        path = Path(path)
        return cls(
            filename=path.name,
            path=path,
            sha256=sha256_file(path),
            size=path.stat().st_size,
            requires_python=requires_python,
            yanked=yanked,
            upload_time=upload_time or upload_time_now(),
            metadata=metadata,
            advertised_sha256=advertised_sha256,
        )

    @property
    def page_sha256(self) -> str:
        """The digest the simple pages advertise."""
        return self.advertised_sha256 or self.sha256

    @property
    def url_path(self) -> str:
        return f"/files/{self.sha256[:FILE_PREFIX_LEN]}/{self.filename}"

    @property
    def metadata_sha256(self) -> str | None:
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()

    @property
    def version(self) -> str | None:
        try:
            if self.filename.endswith(".whl"):
                return str(parse_wheel_filename(self.filename)[1])
            return str(parse_sdist_filename(self.filename)[1])
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            return None


@dataclass
class _Project:
    name: str
    files: list[UpstreamFile] = field(default_factory=list)
    status: str | None = None
    status_reason: str | None = None
    last_modified: float = field(default_factory=time.time)


def _accept_q(accept: str, media_type: str) -> float:
    """The q-value `accept` gives `media_type`, from its most specific matching range."""
    main = media_type.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        rng = pieces[0].lower()
        if not rng:
            continue
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value.strip())))
                except ValueError:
                    q = 0.0
        if rng == media_type:
            specificity = 2
        elif rng == f"{main}/*":
            specificity = 1
        elif rng == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, q)
    return best[1]


def negotiate(accept: str | None, formats: Iterable[str]) -> str:
    """Pick the simple-API media type for an ``Accept`` header, as PyPI would.

    With only ``"html"`` offered the answer is always ``text/html`` (an old index
    that ignores ``Accept``); with only ``"json"`` it is always JSON. With both the
    highest q wins, ties go to text/html, and no match falls back to text/html.
    """
    formats = set(formats)
    if "json" not in formats:
        return TEXT_HTML
    if "html" not in formats:
        return JSON_TYPE
    accept = accept or "*/*"
    scored = [(_accept_q(accept, t), -i, t) for i, t in enumerate(_TIE_ORDER)]
    q, _, chosen = max(scored)
    return chosen if q > 0 else TEXT_HTML


class FakeUpstream:
    """A fake PyPI for mirror tests; see the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        require_auth: tuple[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.root = Path(root)
        #: Basic-auth credentials every request must carry (None: no auth).
        self.require_auth = require_auth
        #: Serve HTTPS with this server-side context (None: plain HTTP).
        self.ssl_context = ssl_context
        self.root.mkdir(parents=True, exist_ok=True)
        self.formats: set[str] = {"json", "html"}
        self.slow_bytes_per_second: int | None = None
        #: Upper bound on how long a "hang" request is held, so no wait is unbounded.
        self.hang_max_seconds: float = 120.0
        #: Cache-Control for simple pages and files (PyPI: max-age=600 for pages).
        self.page_cache_control = "max-age=0, must-revalidate"
        self.file_cache_control = "max-age=365000000, immutable, public"
        #: When set, pages carry ``X-PyPI-Last-Serial`` with this value (as PyPI's do).
        self.last_serial: int | None = None
        #: Whether file answers honour ``Range`` (and say ``Accept-Ranges: bytes``).
        self.ranges = True
        #: When set, file bodies stop after this many bytes and the connection drops.
        self.truncate_files_at: int | None = None
        #: Default for `add_wheel(with_metadata=...)`: False models an upstream without PEP 658.
        self.metadata = True

        self._lock = threading.Lock()
        self._projects: dict[str, _Project] = {}
        self._requests: list[tuple[str, str]] = []
        self._ranges: list[str | None] = []
        self._authorizations: list[tuple[str, tuple[str, str] | None]] = []
        self._mode = "ok"

        # Reserve the port now with a bound, non-listening socket: `url` is valid
        # before start(), and connections are refused until the server listens.
        self._reserve: socket.socket | None = self._bind(0)
        self.port: int = int(self._reserve.getsockname()[1])

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

    # --- addresses -------------------------------------------------------------
    @property
    def origin(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base simple URL, with a trailing slash."""
        return f"{self.origin}/simple/"

    def project_url(self, name: str) -> str:
        return f"{self.url}{normalize_name(name)}/"

    def file_url(self, file: UpstreamFile) -> str:
        return self.origin + file.url_path

    # --- fault knobs and request log --------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value
        self._wake_waiters()

    @property
    def requests(self) -> list[tuple[str, str]]:
        """A copy of the ``(method, path)`` log, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def ranged_requests(self) -> list[tuple[str, str, str | None]]:
        """``(method, path, Range header or None)`` per request, in arrival order."""
        with self._lock:
            return [(m, p, r) for (m, p), r in zip(self._requests, self._ranges, strict=True)]

    def full_file_requests(self, filename: str) -> list[tuple[str, str]]:
        """The GETs of `filename` itself without a Range: whole-file transfers."""
        return [
            (m, p)
            for m, p, r in self.ranged_requests
            if m == "GET" and p.endswith("/" + filename) and r is None
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._ranges.clear()
            self._authorizations.clear()

    @property
    def authorizations(self) -> list[tuple[str, tuple[str, str] | None]]:
        """``(path, (user, password) or None)`` per request: the basic-auth
        credentials each one carried, in arrival order (cleared with the log)."""
        with self._lock:
            return list(self._authorizations)

    def requests_for(self, fragment: str) -> list[tuple[str, str]]:
        """The logged requests whose path contains `fragment`."""
        return [r for r in self.requests if fragment in r[1]]

    # --- content ---------------------------------------------------------------
    def add_project(
        self,
        name: str,
        files: Sequence[UpstreamFile] = (),
        status: str | None = None,
        status_reason: str | None = None,
    ) -> None:
        """Add (or extend) a project; a file with an existing filename replaces it."""
        key = normalize_name(name)
        with self._lock:
            project = self._projects.get(key)
            if project is None:
                project = self._projects[key] = _Project(name=name)
            for new in files:
                project.files = [f for f in project.files if f.filename != new.filename]
                project.files.append(new)
            if status is not None:
                project.status, project.status_reason = status, status_reason
            project.last_modified = time.time()

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        requires_python: str | None = None,
        requires_dist: Sequence[str] = (),
        yanked: bool | str = False,
        with_metadata: bool | None = None,
        payload_size: int = 0,
        wrong_hash: bool = False,
        tag: str = "py3-none-any",
        upload_time: str | None = None,
        summary: str = "test package",
        extra_metadata: Mapping[str, str] | None = None,
    ) -> UpstreamFile:
        """Build a wheel with `make_wheel`, add it to project `name` and return it."""
        path = make_wheel(
            self.root / normalize_name(name),
            name,
            version,
            requires_python=requires_python,
            requires_dist=requires_dist,
            tag=tag,
            payload_size=payload_size,
            summary=summary,
            extra_metadata=extra_metadata,
        )
        file = UpstreamFile.from_path(
            path,
            requires_python=requires_python,
            yanked=yanked,
            upload_time=upload_time,
            metadata=wheel_metadata(path)
            if (self.metadata if with_metadata is None else with_metadata)
            else None,
        )
        if wrong_hash:
            file.advertised_sha256 = hashlib.sha256(b"not " + file.sha256.encode()).hexdigest()
        self.add_project(name, [file])
        return file

    def add_sdist(
        self,
        name: str,
        version: str,
        *,
        requires_python: str | None = None,
        requires_dist: Sequence[str] = (),
        yanked: bool | str = False,
        wrong_hash: bool = False,
        upload_time: str | None = None,
    ) -> UpstreamFile:
        """Build an sdist with `make_sdist`, add it to project `name` and return it.

        Like PyPI, no ``.metadata`` is offered for sdists.
        """
        path = make_sdist(
            self.root / normalize_name(name),
            name,
            version,
            requires_python=requires_python,
            requires_dist=requires_dist,
        )
        file = UpstreamFile.from_path(
            path, requires_python=requires_python, yanked=yanked, upload_time=upload_time
        )
        if wrong_hash:
            file.advertised_sha256 = hashlib.sha256(b"not " + file.sha256.encode()).hexdigest()
        self.add_project(name, [file])
        return file

    def remove_file(self, name: str, filename: str) -> None:
        """Delete a file: it leaves the page and its URL answers 404."""
        with self._lock:
            project = self._project(name)
            kept = [f for f in project.files if f.filename != filename]
            if len(kept) == len(project.files):
                raise KeyError(f"{name}: no file {filename!r}")
            project.files = kept
            project.last_modified = time.time()

    def remove_project(self, name: str) -> None:
        with self._lock:
            del self._projects[normalize_name(name)]

    def set_yanked(self, name: str, filename: str, reason: str | bool) -> None:
        """Yank (``True`` or a reason string, ``""`` meaning no reason) or unyank (``False``)."""
        with self._lock:
            project = self._project(name)
            for f in project.files:
                if f.filename == filename:
                    f.yanked = reason
                    project.last_modified = time.time()
                    return
            raise KeyError(f"{name}: no file {filename!r}")

    def set_status(self, name: str, status: str | None, reason: str | None = None) -> None:
        """Set the PEP 792 status marker (``None`` removes it: plain active, API 1.1)."""
        with self._lock:
            project = self._project(name)
            project.status, project.status_reason = status, reason
            project.last_modified = time.time()

    def files(self, name: str) -> list[UpstreamFile]:
        with self._lock:
            return list(self._project(name).files)

    def _project(self, name: str) -> _Project:
        try:
            return self._projects[normalize_name(name)]
        except KeyError:
            raise KeyError(f"no upstream project {name!r}") from None

    # --- lifecycle ---------------------------------------------------------------
    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        return sock

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout: float = 10.0) -> FakeUpstream:
        """Listen on `port` (the same one every time) and serve in a background thread."""
        if self._thread is not None:
            return self
        if self._reserve is not None:
            sock, self._reserve = self._reserve, None
        else:
            sock = self._bind(self.port)
        sock.listen(128)
        sock.setblocking(False)
        self._stopping = False
        loop, thread = start_loop_thread(f"fake-upstream-{self.port}", self._startup, sock, timeout)
        self._loop, self._thread = loop, thread
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening (new connections are refused) and end in-flight requests.

        Hanging and trickling requests are cut off. Raises TimeoutError if the server
        thread does not finish within `timeout` seconds.
        """
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._stopping = True
        deadline = time.monotonic() + timeout
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout / 2), loop)
            with contextlib.suppress(Exception):
                future.result(max(0.1, deadline - time.monotonic()))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(max(0.1, deadline - time.monotonic()))
            self._loop = self._thread = None
            self._runner = self._wake = None
            # Keep the port reserved (bound, not listening: connections are refused).
            with contextlib.suppress(OSError):
                self._reserve = self._bind(self.port)
        if thread.is_alive():
            raise TimeoutError(f"fake upstream on port {self.port} did not stop in {timeout}s")

    def close(self) -> None:
        """Stop, and release the port."""
        self.stop()
        if self._reserve is not None:
            self._reserve.close()
            self._reserve = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _startup(self, sock: socket.socket) -> None:
        self._wake = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/simple", self._redirect_slash)
        app.router.add_get("/simple/", self._index)
        app.router.add_get("/simple/{project}", self._redirect_slash)
        app.router.add_get("/simple/{project}/", self._detail)
        app.router.add_get("/files/{prefix}/{filename}", self._file)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=self.ssl_context).start()
        self._runner = runner

    async def _shutdown(self, budget: float) -> None:
        self._wake_all()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(budget):
                    await self._runner.cleanup()

    def _wake_waiters(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        # Runs on the loop: release every waiter, then arm a fresh event.
        if self._wake is not None:
            self._wake.set()
        self._wake = asyncio.Event()

    # --- HTTP ------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        credentials = _basic_credentials(request.headers.get("Authorization"))
        with self._lock:
            self._requests.append((request.method, request.path))
            self._ranges.append(request.headers.get("Range"))
            self._authorizations.append((request.path, credentials))
        if self.require_auth is not None and credentials != tuple(self.require_auth):
            return web.Response(
                status=401,
                text="401 Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="fake upstream"'},
            )
        deadline = time.monotonic() + self.hang_max_seconds
        while self._mode == "hang" and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wake is None:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
        if self._stopping:
            # The server is going away: drop the connection without an answer.
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable(text="fake upstream stopping\n")
        if self._mode == "error":
            return web.Response(
                status=500,
                text="fake upstream: internal server error (mode=error)\n",
                headers={"Cache-Control": "no-store"},
            )
        return await handler(request)

    async def _redirect_slash(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(request.path + "/")

    def _conditional(
        self,
        request: web.Request,
        body: bytes,
        content_type: str,
        last_modified: float,
        vary: bool,
    ) -> web.Response:
        etag = '"' + hashlib.sha256(content_type.encode() + b"\0" + body).hexdigest()[:32] + '"'
        headers = {
            "ETag": etag,
            "Last-Modified": _http_date(last_modified),
            "Cache-Control": self.page_cache_control,
        }
        if vary:
            headers["Vary"] = "Accept"
        if self.last_serial is not None:
            headers["X-PyPI-Last-Serial"] = str(self.last_serial)
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = content_type
        return web.Response(body=body, headers=headers)

    def _page_type(self, request: web.Request) -> str:
        return negotiate(request.headers.get("Accept"), self.formats)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            names = sorted(
                (p.name for p in self._projects.values() if p.status != "quarantined"),
                key=normalize_name,
            )
            last_modified = max((p.last_modified for p in self._projects.values()), default=0.0)
        media = self._page_type(request)
        if media == JSON_TYPE:
            doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            body = json.dumps(doc).encode()
            content_type = JSON_TYPE
        else:
            links = "\n".join(
                f'<a href="/simple/{normalize_name(n)}/">{html.escape(n)}</a><br/>' for n in names
            )
            body = (
                "<!DOCTYPE html>\n<html>\n<head>\n"
                '<meta name="pypi:repository-version" content="1.1">\n'
                "<title>Simple index</title>\n</head>\n<body>\n"
                f"{links}\n</body>\n</html>\n"
            ).encode()
            content_type = _html_content_type(media)
        return self._conditional(
            request, body, content_type, last_modified, vary=len(self.formats) > 1
        )

    async def _detail(self, request: web.Request) -> web.StreamResponse:
        raw = request.match_info["project"]
        key = normalize_name(raw)
        if raw != key:
            raise web.HTTPMovedPermanently(f"/simple/{key}/")
        with self._lock:
            project = self._projects.get(key)
            if project is None:
                raise web.HTTPNotFound(text="404 Not Found")
            files = [] if project.status == "quarantined" else list(project.files)
            versions = {f.version for f in project.files} - {None}
            status, reason = project.status, project.status_reason
            last_modified = project.last_modified
        api_version = "1.4" if status is not None else "1.1"
        media = self._page_type(request)
        if media == JSON_TYPE:
            origin = f"{request.scheme}://{request.host}"
            doc: dict[str, Any] = {
                "meta": {"api-version": api_version},
                "name": key,
                "versions": _sorted_versions(versions),
                "files": [_json_file(f, origin) for f in files],
            }
            if status is not None:
                doc["project-status"] = {"status": status}
                if reason is not None:
                    doc["project-status"]["reason"] = reason
            body = json.dumps(doc).encode()
            content_type = JSON_TYPE
        else:
            body = _html_detail(key, files, api_version, status, reason).encode()
            content_type = _html_content_type(media)
        return self._conditional(
            request, body, content_type, last_modified, vary=len(self.formats) > 1
        )

    def _find_file(self, prefix: str, filename: str) -> UpstreamFile | None:
        with self._lock:
            for project in self._projects.values():
                if project.status == "quarantined":
                    continue
                for f in project.files:
                    if f.filename == filename and f.sha256[:FILE_PREFIX_LEN] == prefix:
                        return f
        return None

    async def _file(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        filename = request.match_info["filename"]
        if filename.endswith(".metadata"):
            file = self._find_file(prefix, filename.removesuffix(".metadata"))
            if file is not None and file.metadata is not None:
                return self._conditional_bytes(request, file.metadata, file)
            raise web.HTTPNotFound(text="404 Not Found")
        file = self._find_file(prefix, filename)
        if file is None:
            raise web.HTTPNotFound(text="404 Not Found")
        return await self._send_file(request, file)

    def _file_headers(self, etag: str, file: UpstreamFile) -> dict[str, str]:
        return {
            "ETag": etag,
            "Last-Modified": _http_date(_parse_upload_time(file.upload_time)),
            "Cache-Control": self.file_cache_control,
            "Accept-Ranges": "bytes",
        }

    def _conditional_bytes(
        self, request: web.Request, body: bytes, file: UpstreamFile
    ) -> web.Response:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = self._file_headers(etag, file)
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = "application/octet-stream"
        return web.Response(body=body, headers=headers)

    async def _send_file(self, request: web.Request, file: UpstreamFile) -> web.StreamResponse:
        etag = f'"{file.sha256}"'
        headers = self._file_headers(etag, file)
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
        size = file.path.stat().st_size
        start, end, status = 0, size, 200
        if not self.ranges:
            headers.pop("Accept-Ranges")
        byte_range = _parse_range(request.headers.get("Range") if self.ranges else None, size)
        if byte_range == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            return web.Response(status=416, headers=headers)
        if byte_range is not None:
            start, end = byte_range
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        # Never a Content-Encoding on distributions (docs/standards.md C6.5).
        headers["Content-Type"] = "application/octet-stream"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        rate = self.slow_bytes_per_second
        try:
            # Local test files: a blocking open/read on the loop is fine and keeps
            # chunk timing exact for the trickle mode.
            with open(file.path, "rb") as fh:  # noqa: ASYNC230
                fh.seek(start)
                remaining = end - start
                cut = self.truncate_files_at
                while remaining > 0:
                    if cut is not None and end - start - remaining >= cut:
                        if request.transport is not None:
                            request.transport.abort()
                        return response
                    if self._stopping:
                        if request.transport is not None:
                            request.transport.abort()
                        return response
                    rate = self.slow_bytes_per_second
                    step = _CHUNK if not rate else max(1, int(rate * _SLOW_TICK))
                    if cut is not None:
                        step = min(step, max(1, cut - (end - start - remaining)))
                    chunk = fh.read(min(step, remaining))
                    if not chunk:  # the file shrank under us: end the body short
                        break
                    await response.write(chunk)
                    remaining -= len(chunk)
                    if rate:
                        await asyncio.sleep(len(chunk) / rate)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            # The client went away (or the server is stopping) mid-body.
            if request.transport is not None:
                request.transport.abort()
            raise
        return response


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The ``(user, password)`` of a ``Basic`` Authorization header, else None."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison, as RFC 9110 prescribes for If-None-Match.
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return etag in candidates


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as ``(start, end_exclusive)``; None means the whole file."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multiple or malformed ranges: ignore, send everything
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return (max(0, size - n), size)
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or end <= start:
        return "unsatisfiable"
    return (start, end)


def _sorted_versions(versions: set[str | None]) -> list[str]:
    return sorted((v for v in versions if v is not None), key=Version)


def _html_content_type(media: str) -> str:
    return f"{media}; charset=utf-8" if media == TEXT_HTML else media


def _json_file(f: UpstreamFile, origin: str) -> dict[str, Any]:
    yanked: bool | str = f.yanked
    if yanked == "":
        yanked = True  # an empty reason would read as "not yanked" in JSON
    core: dict[str, str] | bool = (
        {"sha256": f.metadata_sha256} if f.metadata_sha256 is not None else False
    )
    return {
        "filename": f.filename,
        "url": origin + f.url_path,
        "hashes": {"sha256": f.page_sha256},
        "requires-python": f.requires_python,
        "yanked": yanked,
        "core-metadata": core,
        "data-dist-info-metadata": core,
        "size": f.size,
        "upload-time": f.upload_time,
    }


def _html_detail(
    key: str,
    files: list[UpstreamFile],
    api_version: str,
    status: str | None,
    reason: str | None,
) -> str:
    head = [f'<meta name="pypi:repository-version" content="{api_version}">']
    if status is not None:
        head.append(f'<meta name="pypi:project-status" content="{html.escape(status)}">')
        if reason is not None:
            head.append(f'<meta name="pypi:project-status-reason" content="{html.escape(reason)}">')
    links = []
    for f in files:
        attrs = [f'href="../..{f.url_path}#sha256={f.page_sha256}"']
        if f.requires_python is not None:
            attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
        if f.yanked is not False:
            reason_text = "" if f.yanked is True else str(f.yanked)
            attrs.append(f'data-yanked="{html.escape(reason_text)}"')
        if f.metadata_sha256 is not None:
            value = f"sha256={f.metadata_sha256}"
            attrs.append(f'data-dist-info-metadata="{value}"')
            attrs.append(f'data-core-metadata="{value}"')
        links.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>")
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        + "\n".join(head)
        + f"\n<title>Links for {html.escape(key)}</title>\n</head>\n<body>\n"
        + f"<h1>Links for {html.escape(key)}</h1>\n"
        + "\n".join(links)
        + "\n</body>\n</html>\n"
    )
