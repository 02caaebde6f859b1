"""Following the primary: long-poll `/+changelog`, fetch and verify each entry's
blobs from `/+blobs/{sha256}`, then apply the entry with its original serial in
its own transaction (so a crash neither skips nor repeats one). A history that
does not continue ours (a primary restored from an old backup) stops the
follower instead of being mixed in."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from aiohttp import web

from lockgate.changelog.codec import ChainMismatch, decode_lines
from lockgate.changelog.registry import EntryRegistry
from lockgate.changelog.replay import apply_foreign_entry
from lockgate.db.session import Database
from lockgate.replica.client import PrimaryClient, PrimaryUnavailable
from lockgate.storage.blobs import BlobStore, HashingWriter

log = structlog.get_logger("lockgate.replica")

POLL_WAIT = 20
RETRY_SECONDS = 2.0


@dataclass
class FollowerState:
    primary_serial: int | None = None
    last_contact: float | None = None  # monotonic
    last_error: str | None = None
    diverged: str | None = None


class Follower:
    def __init__(
        self, db: Database, blobs: BlobStore, primary: PrimaryClient, registry: EntryRegistry
    ) -> None:
        self.db = db
        self.registry = registry
        self.blobs = blobs
        self.primary = primary
        self.state = FollowerState()

    async def run(self) -> None:
        while self.state.diverged is None:
            try:
                await self.poll_once()
                self.state.last_error = None
            except PrimaryUnavailable as exc:
                if self.state.last_error is None:
                    log.warning("primary unreachable; serving what we have", reason=str(exc))
                self.state.last_error = str(exc)
                await asyncio.sleep(RETRY_SECONDS)
            except ChainMismatch as exc:
                self.state.diverged = str(exc)
                log.error("primary history diverged from ours; not following", reason=str(exc))
            except Exception as exc:  # noqa: BLE001 - keep following after surprises
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("replica follow step failed")
                await asyncio.sleep(RETRY_SECONDS)

    async def poll_once(self) -> int:
        since = self.db.serial
        async with self.primary.get(
            f"/+changelog?since={since}&wait={POLL_WAIT}", read_timeout=POLL_WAIT + 30
        ) as response:
            if response.status in (401, 403):
                raise PrimaryUnavailable(
                    f"the primary refused our token ({response.status}): it was revoked, "
                    "expired or lacks the 'replicate' scope; serving what we have until "
                    "the replica is given a new one (--primary-token)"
                )
            if response.status != 200:
                raise PrimaryUnavailable(f"the primary answered {response.status} to /+changelog")
            header = response.headers.get("X-Lockgate-Serial", "")
            body = await response.text()
        self.state.last_contact = time.monotonic()
        if header.isdigit():
            self.state.primary_serial = int(header)
            if int(header) < since:
                raise ChainMismatch(
                    f"the primary is at serial {header}, behind ours ({since}): it was restored "
                    "from an older backup or is another server"
                )
        applied = 0
        for entry in decode_lines(body):
            for sha256 in self.registry.blobs(entry.kind, entry.payload):
                if not self.blobs.exists(sha256):
                    await self.fetch_blob(sha256)
            async with self.db.write() as session:
                await apply_foreign_entry(session, self.registry, entry)
            applied += 1
        return applied

    async def fetch_blob(self, sha256: str) -> None:
        handle, temp = self.blobs.new_temp()
        try:
            async with self.primary.get(f"/+blobs/{sha256}", read_timeout=120) as response:
                if response.status != 200:
                    raise PrimaryUnavailable(
                        f"the primary answered {response.status} for blob {sha256}"
                    )
                with handle:
                    writer = HashingWriter(handle)
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        await asyncio.to_thread(writer.write, chunk)
            if writer.digests().sha256 != sha256:
                raise PrimaryUnavailable(f"blob {sha256} from the primary does not match its hash")
            await asyncio.to_thread(self.blobs.commit_temp, temp, sha256)
        finally:
            self.blobs.discard(temp)

    def status(self) -> dict[str, object]:
        lag = None
        if self.state.primary_serial is not None:
            lag = max(0, self.state.primary_serial - self.db.serial)
        return {
            "primary": self.primary.url,
            "primary_serial": self.state.primary_serial,
            "lag": lag,
            "seconds_since_contact": (
                round(time.monotonic() - self.state.last_contact, 1)
                if self.state.last_contact is not None
                else None
            ),
            "last_error": self.state.last_error,
            "diverged": self.state.diverged,
        }


FOLLOWER = web.AppKey("follower", Follower)
