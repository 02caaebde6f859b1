"""The recipe of docs/architecture.md ("Adding an entry kind") is true: a new
kind declared and registered in one place is written by `record()`, carried by
the one wire format, checked by the one chain check and replayed into another
database to the same state, with no change anywhere else. Both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate import migrations
from lockgate.changelog.codec import GENESIS_HASH, SYSTEM, decode_lines, encode_line, verify_chain
from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.changelog.replay import apply_foreign_entry, read_entries, state_digest
from lockgate.changelog.writer import record
from lockgate.db.session import Database
from lockgate.db.state import new_state
from lockgate.domains import build_registry
from lockgate.indexes.entries import index_row
from lockgate.packages.models import Project
from tests.support.inprocess import add_file, bootstrap

SHA = "ab" * 32


@dataclass(frozen=True)
class ProjectRetitle(Payload):
    """The example kind of the recipe: a project's display name changes."""

    KIND = "test.project.retitle"
    user: str
    index: str
    project: str
    display_name: str

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        project = (
            await session.execute(
                select(Project).where(
                    Project.index_id == index.id, Project.name == canonicalize_name(self.project)
                )
            )
        ).scalar_one_or_none()
        if project is not None:
            project.display_name = self.display_name


def _registry() -> EntryRegistry:
    registry = build_registry()
    registry.register(ProjectRetitle)
    return registry


async def _scenario(source_url: str, target_url: str) -> None:
    registry = _registry()
    source = await bootstrap(source_url)
    try:
        await add_file(source, "root/pypi", "acme-utils", "1.0", "acme_utils-1.0.tar.gz", SHA)
        async with source.write() as session:
            serial = await record(
                session,
                ProjectRetitle(
                    user="root", index="pypi", project="acme-utils", display_name="ACME.Utils"
                ),
                SYSTEM,
            )
        async with source.read() as session:
            entries = await read_entries(session)
            live = await state_digest(session, registry)
    finally:
        await source.dispose()
    assert entries[-1].serial == serial and entries[-1].kind == ProjectRetitle.KIND
    # The one wire format carries it, the one chain check accepts it.
    carried = decode_lines("".join(encode_line(entry) + "\n" for entry in entries))
    assert carried == entries
    assert verify_chain(carried).serial == serial
    assert registry.decode(carried[-1].kind, carried[-1].payload) == ProjectRetitle(
        user="root", index="pypi", project="acme-utils", display_name="ACME.Utils"
    )
    # Replay into an empty database gives the same state.
    await asyncio.to_thread(migrations.upgrade, target_url)
    target = Database(target_url)
    try:
        async with target.write() as session:
            session.add(new_state(uuid.uuid4().hex, GENESIS_HASH))
        for entry in carried:
            async with target.write() as session:
                await apply_foreign_entry(session, registry, entry)
        async with target.read() as session:
            replayed = await state_digest(session, registry)
    finally:
        await target.dispose()
    assert ("root/pypi", "acme-utils", "ACME.Utils") in live["projects"]
    assert replayed == live


def test_a_new_entry_kind_needs_only_its_declaration(
    make_db_url: Callable[[], str | None], tmp_path: Path
) -> None:
    source = make_db_url() or f"sqlite:///{tmp_path / 'source.sqlite'}"
    target = make_db_url() or f"sqlite:///{tmp_path / 'target.sqlite'}"
    asyncio.run(_scenario(source, target))
