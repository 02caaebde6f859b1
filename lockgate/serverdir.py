"""The server directory: creating it (`init`), and checking it before serving.

Layout: `lockgate.toml` (marks the directory and holds settings),
`lockgate.sqlite` (embedded database, unless another URL is configured),
`blobs/` (content-addressed files) and `tmp/` (uploads and downloads in flight).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lockgate import migrations
from lockgate.accounts.services import ROOT_USER, create_user, prepare_new_user
from lockgate.accounts.sessions import ensure_session_key
from lockgate.changelog.codec import GENESIS_HASH, SYSTEM
from lockgate.config import CONFIG_FILENAME, Settings
from lockgate.db.engine import DatabaseURLError, normalize_url
from lockgate.db.session import Database
from lockgate.db.state import new_state, read_state
from lockgate.egress import private_host
from lockgate.indexes.config import PYPI_SIMPLE_URL
from lockgate.indexes.services import create_index
from lockgate.storage.blobs import temp_in_use

FORMAT_VERSION = 1


class ServerDirError(Exception):
    """The server directory cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class InitResult:
    root_password: str
    generated: bool


def is_serverdir(path: Path) -> bool:
    return (path / CONFIG_FILENAME).is_file()


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_config(
    path: Path,
    db_url: str | None,
    upstream_allow: tuple[str, ...],
    primary_url: str | None = None,
) -> None:
    lines = ["[server]", f"format = {FORMAT_VERSION}"]
    if primary_url:
        lines.append(f"primary_url = {_toml_string(primary_url)}")
    if db_url:
        lines.append(f"db = {_toml_string(db_url)}")
    if upstream_allow:
        listed = ", ".join(_toml_string(host) for host in upstream_allow)
        lines.append(f"upstream_allow = [{listed}]")
    target = path / CONFIG_FILENAME
    temp = target.with_suffix(".tmp")
    temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temp.replace(target)


def check_can_init(path: Path) -> None:
    if is_serverdir(path):
        raise ServerDirError(
            f"{path} is already a lockgate server directory; nothing was changed "
            "(use `lockgate serve` to run it, or pick another --serverdir)"
        )
    if path.exists() and not path.is_dir():
        raise ServerDirError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise ServerDirError(
            f"{path} is not empty and is not a lockgate server directory; "
            "refusing to initialise it (pick an empty or new directory)"
        )


async def _bootstrap(settings: Settings, root_password: str, upstream: str) -> None:
    database = Database(settings.db_url)
    root = await prepare_new_user(ROOT_USER, {"password": root_password})
    try:
        async with database.write() as session:
            if await read_state(session) is not None:
                raise ServerDirError(
                    "the database already holds a lockgate server; "
                    "refusing to initialise over it (use an empty database)"
                )
            session.add(new_state(uuid.uuid4().hex, GENESIS_HASH))
            await session.flush()
            await create_user(session, ROOT_USER, root, SYSTEM)
            await create_index(
                session,
                ROOT_USER,
                "pypi",
                {"type": "mirror", "mirror_url": upstream, "title": "PyPI mirror"},
                SYSTEM,
            )
    finally:
        await database.dispose()


def init_serverdir(
    settings: Settings,
    *,
    db_url_given: bool,
    root_password: str | None,
    upstream: str | None,
    generate_password: Callable[[], str],
) -> InitResult:
    """Create the server directory. An upstream given here on a private or
    loopback host is the operator's own choice: it goes into `upstream_allow`."""
    upstream_allow = tuple(settings.upstream_allow)
    if upstream:
        host = private_host(upstream)
        if host and host not in upstream_allow:
            upstream_allow = (*upstream_allow, host)
    path = settings.serverdir
    check_can_init(path)
    try:
        normalize_url(settings.db_url)
    except DatabaseURLError as exc:
        raise ServerDirError(str(exc)) from None
    created = not path.exists()
    password = root_password or generate_password()
    try:
        path.mkdir(parents=True, exist_ok=True)
        settings.blob_dir.mkdir(exist_ok=True)
        settings.tmp_dir.mkdir(exist_ok=True)
        ensure_session_key(path)
        migrations.upgrade(settings.db_url)
        asyncio.run(_bootstrap(settings, password, upstream or PYPI_SIMPLE_URL))
        _write_config(path, settings.db_url if db_url_given else None, upstream_allow)
    except BaseException:
        # Leave the directory as it was found: a half-made server dir would
        # otherwise be refused by every later command.
        if created:
            shutil.rmtree(path, ignore_errors=True)
        else:
            for child in path.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return InitResult(root_password=password, generated=root_password is None)


def clean_tmp(settings: Settings) -> int:
    """Remove temp files left by crashed processes. Temp names carry their
    writer's pid, so files of other live processes sharing the directory stay."""
    removed = 0
    if settings.tmp_dir.is_dir():
        for child in settings.tmp_dir.iterdir():
            if not child.is_file():
                continue
            if temp_in_use(child.name):
                continue
            child.unlink(missing_ok=True)
            removed += 1
    return removed


async def _bootstrap_replica(settings: Settings) -> None:
    database = Database(settings.db_url)
    try:
        async with database.write() as session:
            if await read_state(session) is not None:
                raise ServerDirError(
                    "the database already holds a lockgate server; a replica needs an empty one"
                )
            # Everything else (users, indexes, files) arrives through the changelog.
            session.add(new_state(uuid.uuid4().hex, GENESIS_HASH))
    finally:
        await database.dispose()


def init_replica(settings: Settings, *, db_url_given: bool) -> None:
    """A new server directory that follows `settings.primary_url`."""
    assert settings.primary_url
    path = settings.serverdir
    check_can_init(path)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        settings.blob_dir.mkdir(exist_ok=True)
        settings.tmp_dir.mkdir(exist_ok=True)
        migrations.upgrade(settings.db_url)
        asyncio.run(_bootstrap_replica(settings))
        _write_config(
            path,
            settings.db_url if db_url_given else None,
            tuple(settings.upstream_allow),
            settings.primary_url,
        )
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_string(str(value))


def promote(path: Path) -> str:
    """Make a replica's server directory a primary's: it stops following and,
    on its next start, takes writes, continuing the serial sequence."""
    import tomllib

    config_path = path / CONFIG_FILENAME
    with config_path.open("rb") as handle:
        data = tomllib.load(handle)
    server = dict(data.get("server", {}))
    primary = server.pop("primary_url", None)
    if not primary:
        raise ServerDirError(f"{path} is not a replica (no primary_url in {CONFIG_FILENAME})")
    server.pop("primary_user", None)  # written by lockgate before tokens
    server.pop("primary_token", None)
    lines = ["[server]", *(f"{key} = {_toml_value(value)}" for key, value in server.items())]
    temp = config_path.with_suffix(".tmp")
    temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temp.replace(config_path)
    return str(primary)


def check_serveable(settings: Settings) -> None:
    path = settings.serverdir
    if not is_serverdir(path):
        raise ServerDirError(
            f"{path} is not a lockgate server directory (no {CONFIG_FILENAME}); "
            "run `lockgate init --serverdir DIR` or point --serverdir at an existing one"
        )
    try:
        current = migrations.current_revision(settings.db_url)
    except Exception as exc:  # noqa: BLE001 - any driver error means "cannot open"
        raise ServerDirError(f"cannot open the database: {exc}") from None
    head = migrations.head_revision()
    if current != head:
        raise ServerDirError(
            f"the database schema is at revision {current!r} but this lockgate needs {head!r}; "
            f"run `lockgate migrate --serverdir {path}` first"
        )
