"""Counting downloads in memory and adding them to the table in batches; reading them.

A download costs a dictionary update, never a database write: the counter is flushed
every `FLUSH_SECONDS` and at shutdown, in one write transaction that adds each count to
its row (an upsert, so several processes sharing a database add up). A crash loses at
most the counts since the last flush (docs/reliability.md WEB-7).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.db.session import Database
from lockgate.distfiles import project_from_filename
from lockgate.downloads.models import DownloadCount

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

log = structlog.get_logger("lockgate.downloads")

FLUSH_SECONDS = 5.0
CHART_DAYS = 30

Key = tuple[str, str, str, str]  # index path, filename, day, project


def utc_today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _project_of(filename: str) -> str:
    try:
        return project_from_filename(filename)
    except ValueError:
        return filename.lower()


class DownloadCounter:
    """This process's downloads since the last flush."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: Counter[Key] = Counter()
        self._lock = asyncio.Lock()
        self.flushes = 0  # batches written by this process (pages showing counts key on it)

    def note(self, index_path: str, filename: str) -> None:
        day = utc_today().isoformat()
        self._pending[(index_path, filename, day, _project_of(filename))] += 1

    def epoch(self) -> str:
        """What cached pages showing counts key on: this process's flushes, and the
        minute, so that other workers' flushes show within a minute too."""
        return f"{self.flushes}:{int(time.time() // 60)}"

    @property
    def pending(self) -> int:
        return sum(self._pending.values())

    async def flush(self) -> int:
        """Add the pending counts to the table in one transaction; returns how many."""
        async with self._lock:
            batch, self._pending = self._pending, Counter()
            if not batch:
                return 0
            try:
                async with self.db.write() as session:
                    await add_counts(session, batch)
            except Exception:
                # Keep them for the next flush rather than lose a batch to a busy database.
                self._pending.update(batch)
                raise
            self.flushes += 1
            return sum(batch.values())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - counting must never stop; retried next time
                log.warning("could not write download counts", exc_info=True)


async def add_counts(session: AsyncSession, batch: Counter[Key]) -> None:
    rows = [
        {"index_path": i, "filename": f, "day": d, "project": p, "count": n}
        for (i, f, d, p), n in sorted(batch.items())
    ]
    # The dialect's own module, imported here: importing the PostgreSQL dialect package
    # (every driver's dialect module, ~2 MiB) into a server on SQLite would be waste.
    statement: postgresql.Insert | sqlite.Insert
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement = postgresql_insert(DownloadCount).values(rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(DownloadCount).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["index_path", "filename", "day"],
        set_={"count": DownloadCount.count + statement.excluded.count},
    )
    await session.execute(statement)


def _since(days: int, today: datetime.date) -> str:
    return (today - datetime.timedelta(days=days - 1)).isoformat()


async def daily_downloads(
    session: AsyncSession,
    index_paths: Iterable[str],
    project: str,
    *,
    days: int = CHART_DAYS,
    today: datetime.date | None = None,
) -> list[tuple[str, int]]:
    """(day, downloads) of `project`'s files held by `index_paths`, for each of the last
    `days` days (oldest first, days without downloads as 0)."""
    today = today or utc_today()
    rows = (
        await session.execute(
            select(DownloadCount.day, func.sum(DownloadCount.count))
            .where(
                DownloadCount.project == project,
                DownloadCount.index_path.in_(list(index_paths)),
                DownloadCount.day >= _since(days, today),
            )
            .group_by(DownloadCount.day)
        )
    ).all()
    per_day = {day: int(total) for day, total in rows}
    every = [(today - datetime.timedelta(days=back)).isoformat() for back in range(days)]
    return [(day, per_day.get(day, 0)) for day in reversed(every)]


async def file_downloads(
    session: AsyncSession,
    index_paths: Iterable[str],
    project: str,
    *,
    days: int = CHART_DAYS,
    today: datetime.date | None = None,
) -> dict[tuple[str, str], int]:
    """(index path, filename) → downloads in the last `days` days."""
    today = today or utc_today()
    rows = (
        await session.execute(
            select(DownloadCount.index_path, DownloadCount.filename, func.sum(DownloadCount.count))
            .where(
                DownloadCount.project == project,
                DownloadCount.index_path.in_(list(index_paths)),
                DownloadCount.day >= _since(days, today),
            )
            .group_by(DownloadCount.index_path, DownloadCount.filename)
        )
    ).all()
    return {(index_path, filename): int(total) for index_path, filename, total in rows}


def summary(daily: list[tuple[str, int]]) -> dict[str, int]:
    """PyPI's `downloads` keys from a daily series (newest last): today, the last 7 days
    and the last 30 days, UTC."""
    counts = [count for _, count in daily]
    return {
        "last_day": sum(counts[-1:]),
        "last_week": sum(counts[-7:]),
        "last_month": sum(counts[-30:]),
    }


DOWNLOADS = web.AppKey("downloads", DownloadCounter)
