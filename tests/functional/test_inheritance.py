"""Index inheritance and the dependency-confusion guard (docs/reliability.md DC-1, DC-3..DC-5),
checked on the lookup service over a real database, both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from lockgate.accounts.services import create_user, prepare_new_user
from lockgate.catalog.services import project_files
from lockgate.changelog.codec import SYSTEM
from lockgate.db.session import Database
from lockgate.indexes.services import create_index, modify_index, require_index, resolve_chain
from lockgate.packages.entries import ProjectDelete, ReleaseDelete
from tests.support.inprocess import add_file, add_mirror_page, bootstrap

H = {n: f"{n:x}" * 64 for n in range(1, 10)}  # fake sha256 digests


async def _visible(db: Database, index: str, project: str) -> list[tuple[str, str]]:
    user, name = index.split("/")
    async with db.read() as session:
        view = await project_files(
            session, await resolve_chain(session, await require_index(session, user, name)), project
        )
    return [] if view is None else [(f.index.path, f.filename) for f in view.files]


async def _setup(url: str) -> Database:
    db = await bootstrap(url)
    acme = await prepare_new_user("acme", {"password": "pw"})
    async with db.write() as session:
        await create_user(session, "acme", acme, SYSTEM)
        await create_index(session, "acme", "prod", {"bases": ["root/pypi"]}, SYSTEM)
        await create_index(session, "acme", "dev", {"bases": ["acme/prod"]}, SYSTEM)
        await create_index(session, "acme", "flip", {"bases": ["root/pypi", "acme/prod"]}, SYSTEM)
    # What the PyPI mirror holds for the public names.
    await add_mirror_page(
        db,
        "root/pypi",
        "acme.utils",
        [("acme_utils-99.0-py3-none-any.whl", H[1]), ("acme_utils-1.0-py3-none-any.whl", H[9])],
    )
    await add_mirror_page(db, "root/pypi", "requests", [("requests-2.0-py3-none-any.whl", H[2])])
    return db


def _db_url(make_db_url: Callable[[], str | None], tmp_path: Path) -> str:
    return make_db_url() or f"sqlite:///{tmp_path / 'inherit.sqlite'}"


def test_guard_hides_mirror_versions_of_private_names(
    make_db_url: Callable[[], str | None], tmp_path: Path
) -> None:
    async def scenario() -> None:
        db = await _setup(_db_url(make_db_url, tmp_path))
        try:
            # Before any private upload the public name is visible through the mirror.
            assert len(await _visible(db, "acme/dev", "acme-utils")) == 2
            await add_file(
                db, "acme/prod", "Acme_Utils", "1.0", "acme_utils-1.0-py3-none-any.whl", H[3]
            )
            private = [("acme/prod", "acme_utils-1.0-py3-none-any.whl")]
            # DC-1/DC-3: only the private file, whatever spelling upstream uses.
            assert await _visible(db, "acme/prod", "acme-utils") == private
            # DC-4: through a chain, and with the mirror listed before the stage.
            assert await _visible(db, "acme/dev", "acme-utils") == private
            assert await _visible(db, "acme/flip", "acme-utils") == private
            # Unrelated public names still come through.
            assert await _visible(db, "acme/dev", "requests") == [
                ("root/pypi", "requests-2.0-py3-none-any.whl")
            ]
            # DC-5: the allow-list opts in, and removing it hides again at once.
            async with db.write() as session:
                await modify_index(
                    session, "acme", "prod", {"mirror_whitelist": ["acme-utils"]}, SYSTEM
                )
            visible = await _visible(db, "acme/dev", "acme-utils")
            assert ("root/pypi", "acme_utils-99.0-py3-none-any.whl") in visible
            # Nearest wins for the same file name: the private 1.0 file, not the mirror's.
            assert ("acme/prod", "acme_utils-1.0-py3-none-any.whl") in visible
            assert ("root/pypi", "acme_utils-1.0-py3-none-any.whl") not in visible
            async with db.write() as session:
                await modify_index(session, "acme", "prod", {"mirror_whitelist": []}, SYSTEM)
            assert await _visible(db, "acme/dev", "acme-utils") == private
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_versions_merge_and_nearest_index_wins(
    make_db_url: Callable[[], str | None], tmp_path: Path
) -> None:
    async def scenario() -> None:
        db = await _setup(_db_url(make_db_url, tmp_path))
        try:
            await add_file(db, "acme/prod", "tool", "1.0", "tool-1.0-py3-none-any.whl", H[4])
            await add_file(db, "acme/dev", "tool", "2.0", "tool-2.0-py3-none-any.whl", H[5])
            await add_file(db, "acme/dev", "tool", "1.0", "tool-1.0-py3-none-any.whl", H[6])
            user, name = "acme", "dev"
            async with db.read() as session:
                index = await require_index(session, user, name)
                view = await project_files(session, await resolve_chain(session, index), "tool")
            assert view is not None
            assert view.versions == ["1.0", "2.0"]
            by_name = {f.filename: f for f in view.files}
            assert by_name["tool-1.0-py3-none-any.whl"].sha256 == H[6]
            assert by_name["tool-1.0-py3-none-any.whl"].index.path == "acme/dev"
            # The parent alone still sees its own file.
            assert await _visible(db, "acme/prod", "tool") == [
                ("acme/prod", "tool-1.0-py3-none-any.whl")
            ]
            assert await _visible(db, "acme/prod", "nothing-here") == []
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_dc7_deleted_private_project_keeps_the_name_until_released(
    make_db_url: Callable[[], str | None], tmp_path: Path
) -> None:
    from lockgate.changelog.writer import record

    async def scenario() -> None:
        db = await _setup(_db_url(make_db_url, tmp_path))
        try:
            await add_file(
                db, "acme/prod", "acme-utils", "1.0", "acme_utils-1.0-py3-none-any.whl", H[3]
            )
            async with db.write() as session:
                await record(
                    session,
                    ReleaseDelete(user="acme", index="prod", project="acme-utils", version="1.0"),
                    SYSTEM,
                )
            # Every private release is gone, but the public 99.0 must not appear.
            assert await _visible(db, "acme/dev", "acme-utils") == []
            async with db.write() as session:
                await record(
                    session, ProjectDelete(user="acme", index="prod", project="acme-utils"), SYSTEM
                )
            visible = await _visible(db, "acme/dev", "acme-utils")
            assert ("root/pypi", "acme_utils-99.0-py3-none-any.whl") in visible
        finally:
            await db.dispose()

    asyncio.run(scenario())
