"""A bootstrapped lockgate database used in-process, for service-level tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from lockgate import migrations
from lockgate.accounts.services import ROOT_USER, create_user, prepare_new_user
from lockgate.changelog.codec import GENESIS_HASH, SYSTEM
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.db.session import Database
from lockgate.db.state import new_state
from lockgate.indexes.services import create_index
from lockgate.mirror.entries import MirrorPage
from lockgate.mirror.pages import UpstreamLink
from lockgate.packages.entries import FileAdd


async def bootstrap(url: str) -> Database:
    await asyncio.to_thread(migrations.upgrade, url)
    db = Database(url)
    root = await prepare_new_user(ROOT_USER, {"password": "root"})
    async with db.write() as session:
        session.add(new_state(uuid.uuid4().hex, GENESIS_HASH))
        await session.flush()
        await create_user(session, ROOT_USER, root, SYSTEM)
        await create_index(session, ROOT_USER, "pypi", {"type": "mirror"}, SYSTEM)
    return db


async def add_file(
    db: Database, index: str, project: str, version: str, filename: str, sha256: str, **extra: Any
) -> int:
    """Record a file as the upload and mirror paths do (blob content is not needed here)."""
    user, name = index.split("/")
    async with db.write() as session:
        return await record(
            session,
            FileAdd(
                user=user,
                index=name,
                project=project,
                version=version,
                filename=filename,
                sha256=sha256,
                size=1,
                packagetype="bdist_wheel",
                python_version="py3",
                upload_time=utcnow_iso(),
                metadata={},
                **extra,
            ),
            SYSTEM,
        )


async def add_mirror_page(
    db: Database, index: str, project: str, links: list[tuple[str, str]], **page: Any
) -> int:
    """Record a cached upstream page as the mirror does: links are (filename, sha256)."""
    user, name = index.split("/")
    async with db.write() as session:
        return await record(
            session,
            MirrorPage(
                user=user,
                index=name,
                project=project,
                display_name=project,
                status=page.get("status"),
                status_reason=page.get("status_reason"),
                links=tuple(
                    UpstreamLink(
                        filename=filename,
                        url=f"https://files.example/{filename}",
                        sha256=sha256,
                        requires_python=None,
                        yanked=False,
                        yanked_reason=None,
                        core_metadata=False,
                        core_metadata_sha256=None,
                        size=1,
                        upload_time=None,
                    )
                    for filename, sha256 in links
                ),
            ),
            SYSTEM,
        )
