"""Keeping the mirror's cached pages fresh, offline-tolerant and coalesced.

`MirrorService.ensure_page()` is called before a page that involves a mirror
index is built: it returns at once when the cached page is fresh, otherwise it
asks the upstream (one request per project at a time, however many clients
wait), records a `mirror.page` entry only when the page content changed, and
falls back to the cached page, marked stale, when the upstream is down.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import SYSTEM
from lockgate.changelog.writer import record_alone, utcnow_iso
from lockgate.db.session import Database
from lockgate.distfiles import project_from_filename
from lockgate.indexes.services import IndexView
from lockgate.mirror.entries import MirrorGone, MirrorPage, MirrorProjectListSet
from lockgate.mirror.files import MirrorFiles
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProject, MirrorProjectList
from lockgate.mirror.pages import JSON_V1, UpstreamLink, UpstreamPage
from lockgate.mirror.upstream import PageFetch, UpstreamBadData, UpstreamClient, UpstreamUnavailable
from lockgate.replica.client import PrimaryClient, PrimaryUnavailable
from lockgate.storage.blobs import BlobStore
from lockgate.urls import strip_credentials

log = structlog.get_logger("lockgate.mirror")

MISSING_TTL = 60.0
# How long a replica waits for its follower to apply what the primary just cached.
REPLICA_CATCH_UP_SECONDS = 10.0
# More cached projects reported gone than this within the window is a broken upstream.
REMOVAL_STORM = 10
REMOVAL_WINDOW = 60.0
# On a 404 for a mirror page whose name lies in a reserved namespace (the mirror
# itself never serves those, docs/reliability.md DC-6): the namespace's prefix. A
# replica then asks its primary through the stage index it looked the name up in.
RESERVED_HEADER = "X-Lockgate-Reserved"


@dataclass(frozen=True)
class PageState:
    """What the mirror could do for one project page."""

    cached: bool  # a page (possibly empty) is in the database
    stale: bool  # the upstream could not confirm it just now
    reason: str | None = None  # why it is stale or missing


async def load_cached_page(
    session: AsyncSession, index_id: int, project: str
) -> tuple[MirrorProject, list[MirrorLink]] | None:
    row = (
        await session.execute(
            select(MirrorProject).where(
                MirrorProject.index_id == index_id, MirrorProject.name == project
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    links = (
        await session.execute(
            select(MirrorLink)
            .where(MirrorLink.index_id == index_id, MirrorLink.project == project)
            .order_by(MirrorLink.filename)
        )
    ).scalars()
    return row, list(links)


def _link_payload(link: UpstreamLink) -> dict[str, Any]:
    data = link.to_json()
    data["url"] = strip_credentials(link.url)
    return data


def _stored_payload(link: MirrorLink) -> dict[str, Any]:
    return {
        "filename": link.filename,
        "url": link.url,
        "sha256": link.sha256,
        "requires_python": link.requires_python,
        "yanked": link.yanked,
        "yanked_reason": link.yanked_reason,
        "core_metadata": link.core_metadata,
        "core_metadata_sha256": link.core_metadata_sha256,
        "size": link.size,
        "upload_time": link.upload_time,
    }


class MirrorService:
    def __init__(
        self,
        db: Database,
        upstream: UpstreamClient,
        blobs: BlobStore,
        primary: PrimaryClient | None = None,
    ) -> None:
        self.db = db
        self.upstream = upstream
        self.blobs = blobs
        # On a replica the primary is asked instead of the upstream: replicas
        # never talk to the internet, and the cache fills through the changelog.
        self.primary = primary
        self.files = MirrorFiles(db, upstream, blobs)
        self.project_lists = ProjectListService(db, upstream, blobs, primary)
        # When each page was last confirmed with the upstream (monotonic clock);
        # compared with the index's current expiry so config changes apply at once.
        self._confirmed_at: dict[tuple[str, str], float] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[PageState]] = {}
        self.integrity_alarms: list[str] = []
        self._removals: dict[str, collections.deque[float]] = {}

    async def close(self) -> None:
        await self.files.close()
        await self.project_lists.close()

    def forget(self, index: IndexView, project: str) -> None:
        """Make the next request for this page ask the upstream (`mirror refresh`)."""
        self._confirmed_at.pop((index.path, canonicalize_name(project)), None)

    async def ensure_page(
        self, index: IndexView, project: str, *, force: bool = False, via: str | None = None
    ) -> PageState:
        """`via`: the stage index (`user/index`) the page is looked up through."""
        name = canonicalize_name(project)
        key = (index.path, name)
        expiry = float(index.mirror.mirror_cache_expiry)
        confirmed = self._confirmed_at.get(key)
        if not force and confirmed is not None and confirmed + expiry > time.monotonic():
            return PageState(cached=True, stale=False)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[PageState] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            state = await self._refresh(index, name, via)
            future.set_result(state)
            return state
        except BaseException as exc:
            future.set_exception(exc)
            # Mark the exception retrieved even when no follower awaited it.
            future.exception()
            raise
        finally:
            del self._inflight[key]

    async def _refresh(self, index: IndexView, name: str, via: str | None = None) -> PageState:
        if self.primary is not None:
            return await self._refresh_via_primary(index, name, self.primary, via)
        async with self.db.read() as session:
            cached = await load_cached_page(session, index.id, name)
        etag = cached[0].etag if cached else None
        last_modified = cached[0].last_modified if cached else None
        try:
            fetched = await self.upstream.fetch_page(index, name, etag, last_modified)
        except (UpstreamUnavailable, UpstreamBadData) as exc:
            if cached is None:
                return PageState(cached=False, stale=True, reason=str(exc))
            log.warning(
                "serving stale mirror page", index=index.path, project=name, reason=str(exc)
            )
            return PageState(cached=True, stale=True, reason=str(exc))
        if (
            fetched.kind == "ok"
            and cached is not None
            and fetched.serial is not None
            and cached[0].upstream_serial is not None
            and fetched.serial < cached[0].upstream_serial
        ):
            # An older view of the project (a lagging mirror or CDN node): keep
            # what we have (docs/reliability.md CP-4).
            log.warning(
                "upstream serial went backwards; keeping the cached page",
                project=name,
                cached_serial=cached[0].upstream_serial,
                upstream_serial=fetched.serial,
            )
            self._confirmed_at[(index.path, name)] = time.monotonic()
            return PageState(cached=True, stale=False)
        if fetched.kind == "ok" and fetched.page is not None:
            doubt = implausible_page(name, fetched.page, cached[1] if cached else [])
            if doubt is not None:
                # A captive portal, a proxy's error page or another project's page
                # must never replace a good cache (docs/reliability.md CP-3).
                log.warning("refusing implausible upstream page", project=name, reason=doubt)
                return PageState(cached=cached is not None, stale=True, reason=doubt)
        self._confirmed_at[(index.path, name)] = time.monotonic()
        if fetched.kind == "not_modified":
            return PageState(cached=cached is not None, stale=False)
        if fetched.kind == "missing":
            # Names the upstream lacks are asked again sooner: they may appear any minute.
            expiry = float(index.mirror.mirror_cache_expiry)
            self._confirmed_at[(index.path, name)] -= max(0.0, expiry - MISSING_TTL)
            if cached is not None:
                if not await self.upstream.root_answers(index) or self._removal_storm(index):
                    # Many cached projects "gone" at once is a broken upstream (a wrong
                    # URL, a misrouted proxy), not a wave of takedowns (docs/reliability.md F-U8).
                    reason = "the upstream reports many cached projects missing at once"
                    self.upstream.mark_down(index, reason)
                    log.warning("serving stale mirror page", project=name, reason=reason)
                    return PageState(cached=True, stale=True, reason=reason)
                gone = MirrorGone(user=index.user, index=index.name, project=name)
                await record_alone(self.db, gone, SYSTEM)
            return PageState(cached=False, stale=False, reason="not found on the upstream")
        await self._store_page(index, name, fetched, cached)
        return PageState(cached=True, stale=False)

    async def _store_page(
        self,
        index: IndexView,
        name: str,
        fetched: PageFetch,
        cached: tuple[MirrorProject, list[MirrorLink]] | None,
    ) -> None:
        assert fetched.page is not None
        links = sorted(
            (_link_payload(link) for link in fetched.page.links), key=lambda d: d["filename"]
        )
        # One entry per filename: the last listing wins, as a browser would see it.
        unique = list({link["filename"]: link for link in links}.values())
        await self._keep_cached_identities(index, name, unique)
        payload = MirrorPage(
            user=index.user,
            index=index.name,
            project=name,
            display_name=fetched.page.name or name,
            status=fetched.page.status,
            status_reason=fetched.page.status_reason,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            upstream_serial=fetched.serial,
            links=tuple(UpstreamLink.from_json(link) for link in unique),
        )
        if cached is not None:
            project, stored = cached
            same = (
                [_stored_payload(link) for link in stored] == unique
                and project.status == payload.status
                and project.status_reason == payload.status_reason
                and project.display_name == payload.display_name
            )
            if same:
                return  # unchanged: no changelog entry, nothing for replicas to do
        await record_alone(self.db, payload, SYSTEM)

    async def _refresh_via_primary(
        self, index: IndexView, name: str, primary: PrimaryClient, via: str | None = None
    ) -> PageState:
        """Ask the primary for the page (it consults its upstream and records what
        it caches), then wait until the follower has applied that serial here."""
        try:
            answer = await _ask_primary(primary, f"/{index.path}/+simple/{name}/")
            if answer.status == 404 and answer.reserved and via and via != index.path:
                # The primary's mirror refuses a name in a reserved namespace; the stage
                # index this lookup goes through may allow it (the replica decided so
                # with the same configuration): ask the primary through that stage.
                answer = await _ask_primary(primary, f"/{via}/+simple/{name}/")
        except PrimaryUnavailable as exc:
            async with self.db.read() as session:
                cached = await load_cached_page(session, index.id, name)
            return PageState(cached=cached is not None, stale=True, reason=str(exc))
        key = (index.path, name)
        if answer.status == 200 and answer.serial.isdigit():
            if self.db.serial < int(answer.serial):
                await self.db.wait_for_serial(int(answer.serial) - 1, REPLICA_CATCH_UP_SECONDS)
            self._confirmed_at[key] = time.monotonic()
            return PageState(cached=True, stale=bool(answer.stale), reason=answer.stale)
        if answer.status == 404:
            self._confirmed_at[key] = time.monotonic() - max(
                0.0, float(index.mirror.mirror_cache_expiry) - MISSING_TTL
            )
            reason = answer.text.strip() or "not found on the primary"
            stale = "upstream" in reason and not answer.reserved
            return PageState(cached=False, stale=stale, reason=reason)
        return PageState(cached=False, stale=True, reason=f"the primary answered {answer.status}")

    def _removal_storm(self, index: IndexView) -> bool:
        now = time.monotonic()
        recent = self._removals.setdefault(index.path, collections.deque())
        while recent and now - recent[0] > REMOVAL_WINDOW:
            recent.popleft()
        recent.append(now)
        return len(recent) > REMOVAL_STORM

    async def _keep_cached_identities(
        self, index: IndexView, name: str, links: list[dict[str, Any]]
    ) -> None:
        """A cached file keeps the bytes and hash it was cached with, whatever the
        upstream says later (docs/reliability.md INV-4, CP-5); a change is an alarm."""
        filenames = [link["filename"] for link in links]
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(MirrorCachedFile.filename, MirrorCachedFile.sha256).where(
                        MirrorCachedFile.index_id == index.id,
                        MirrorCachedFile.filename.in_(filenames),
                    )
                )
            ).all()
        cached = {filename: sha256 for filename, sha256 in rows if sha256}
        for filename in filenames:
            # A download that verified its file answers its clients before its entry
            # commits: its hash is already the identity the file keeps.
            download = self.files.downloads.running(index, filename)
            if filename not in cached and download is not None and download.verified:
                cached[filename] = download.sha256 or ""
        for link in links:
            kept = cached.get(link["filename"])
            if kept and link["sha256"] != kept:
                alarm = (
                    f"{index.path}: upstream now lists {link['filename']} with sha256 "
                    f"{link['sha256']}, but it was cached with {kept}; keeping the cached file"
                )
                log.error("integrity alarm", project=name, detail=alarm)
                self.integrity_alarms.append(alarm)
                link["sha256"] = kept


@dataclass(frozen=True)
class PrimaryAnswer:
    status: int
    serial: str  # the primary's serial once it answered (after caching the page)
    stale: str | None
    text: str
    reserved: bool  # a mirror page refused: the name is in a reserved namespace


async def _ask_primary(primary: PrimaryClient, path: str) -> PrimaryAnswer:
    async with primary.get(path, headers={"Accept": JSON_V1}) as response:
        return PrimaryAnswer(
            status=response.status,
            serial=response.headers.get("X-Lockgate-Serial", ""),
            stale=response.headers.get("X-Lockgate-Stale"),
            text=await response.text(),
            reserved=RESERVED_HEADER in response.headers,
        )


def implausible_page(name: str, page: UpstreamPage, cached: list[MirrorLink]) -> str | None:
    """Why an upstream answer cannot be this project's page, or None if it can."""
    if page.name and canonicalize_name(page.name) != name:
        return f"the upstream answered with the page of another project ({page.name!r})"
    if page.links and not any(project_from_filename(link.filename) == name for link in page.links):
        return (
            f"the upstream page lists no file of {name} (a captive portal or a proxy's error page?)"
        )
    if not page.links and cached and not page.status:
        return f"the upstream page lists no files at all while {len(cached)} are cached"
    return None


class ProjectListService:
    """The upstream's project list: fetched once, stored as a blob through the
    changelog, refreshed in the background when older than the cache expiry."""

    def __init__(
        self,
        db: Database,
        upstream: UpstreamClient,
        blobs: BlobStore,
        primary: PrimaryClient | None = None,
    ) -> None:
        self.db = db
        self.upstream = upstream
        self.blobs = blobs
        self.primary = primary
        self._fresh_until: dict[str, float] = {}
        self._refreshing: dict[str, asyncio.Task[str | None]] = {}
        self._stored: dict[str, tuple[int, str | None]] = {}

    async def current(self, index: IndexView) -> tuple[str | None, bool]:
        """(blob sha256 of the list or None, stale?). Waits only when nothing is stored."""
        # The stored list only changes with a commit: remembered per serial, so a
        # listing served from the page cache costs no database read.
        serial = self.db.serial
        memo = self._stored.get(index.path)
        if memo is not None and memo[0] == serial:
            row_sha256 = memo[1]
        else:
            async with self.db.read() as session:
                row = await session.get(MirrorProjectList, index.id)
            row_sha256 = row.sha256 if row is not None else None
            self._stored[index.path] = (serial, row_sha256)
        stored = row_sha256 if row_sha256 is not None and self.blobs.exists(row_sha256) else None
        if self.primary is not None:
            return stored, stored is None  # replicas get the list through the changelog
        if stored is not None and self._fresh_until.get(index.path, 0.0) > time.monotonic():
            return stored, False
        task = self._refreshing.get(index.path)
        if task is None:
            task = asyncio.create_task(self._refresh(index))
            self._refreshing[index.path] = task
            task.add_done_callback(lambda _t: self._refreshing.pop(index.path, None))
        if stored is not None:
            return stored, False  # refresh runs in the background
        try:
            return await asyncio.shield(task), False
        except (UpstreamUnavailable, UpstreamBadData):
            return None, True

    async def _refresh(self, index: IndexView) -> str | None:
        try:
            names = await self.upstream.fetch_project_list(index)
        except (UpstreamUnavailable, UpstreamBadData) as exc:
            log.warning("project list refresh failed", index=index.path, reason=str(exc))
            raise
        body = "\n".join(sorted(set(names))).encode("utf-8")
        sha256 = await asyncio.to_thread(self.blobs.put_bytes, body)
        expiry = float(index.mirror.mirror_cache_expiry)
        self._fresh_until[index.path] = time.monotonic() + expiry
        async with self.db.read() as session:
            row = await session.get(MirrorProjectList, index.id)
        if row is None or row.sha256 != sha256:
            await record_alone(
                self.db,
                MirrorProjectListSet(
                    user=index.user,
                    index=index.name,
                    sha256=sha256,
                    count=len(names),
                    fetched_at=utcnow_iso(),
                ),
                SYSTEM,
            )
        return sha256

    async def close(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
        await asyncio.gather(*self._refreshing.values(), return_exceptions=True)


MIRROR = web.AppKey("mirror", MirrorService)
