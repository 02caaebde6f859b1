"""Index configuration (devpi's shape), its validation, and inheritance chains."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.services import require_user
from lockgate.changelog.writer import record
from lockgate.errors import BadRequest, Conflict, NotFound
from lockgate.indexes.models import Index
from lockgate.mirror.pages import keep_secret, redact_url
from lockgate.names import check_name, is_valid_project_name

PYPI_SIMPLE_URL = "https://pypi.org/simple/"
DEFAULT_MIRROR_CACHE_EXPIRY = 1800
MAX_CA_BUNDLE_BYTES = 16 * 1024 * 1024

STAGE_KEYS = {"type", "bases", "volatile", "acl_upload", "mirror_whitelist", "title", "description"}
MIRROR_KEYS = {
    "type",
    "mirror_url",
    "mirror_cache_expiry",
    "mirror_no_project_list",
    "mirror_timeout",
    "mirror_offline_retry",
    "mirror_ca_bundle",
    "volatile",
    "title",
    "description",
    "bases",
}


@dataclass(frozen=True)
class IndexView:
    """An index as the read paths need it: id, path and parsed configuration."""

    id: int
    user: str
    name: str
    type: str
    config: dict[str, Any]

    @property
    def path(self) -> str:
        return f"{self.user}/{self.name}"

    @property
    def is_mirror(self) -> bool:
        return self.type == "mirror"

    @property
    def bases(self) -> list[str]:
        return list(self.config.get("bases", []))

    @property
    def volatile(self) -> bool:
        return bool(self.config.get("volatile", True))

    def whitelists(self, project: str) -> bool:
        allowed = self.config.get("mirror_whitelist", [])
        return "*" in allowed or canonicalize_name(project) in allowed

    def public_config(self) -> dict[str, Any]:
        """The configuration as the API shows it: upstream credentials masked."""
        config = dict(self.config)
        if config.get("mirror_url"):
            config["mirror_url"] = redact_url(config["mirror_url"])
        return config

    @staticmethod
    def from_row(row: Index) -> IndexView:
        return IndexView(row.id, row.user_name, row.name, row.type, json.loads(row.config))


def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise BadRequest(f"{key!r} must be a list of strings")


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise BadRequest(f"{key!r} must be true or false")


def _as_seconds(value: Any, key: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{key!r} must be a number of seconds") from None
    if seconds < 0 or seconds > 86400:
        raise BadRequest(f"{key!r} must be between 0 and 86400 seconds")
    return seconds


def _check_url(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest("'mirror_url' must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"'mirror_url' must be an http(s) URL, not {value!r}")
    return value if value.endswith("/") else value + "/"


def _check_ca_bundle(path: str) -> None:
    """Refuse a CA bundle the upstream client could not load (same call as it makes)."""
    problem = None
    if not os.path.isabs(path):
        problem = "must be an absolute path"
    elif not os.path.isfile(path):
        problem = "is not an existing regular file"
    elif os.path.getsize(path) > MAX_CA_BUNDLE_BYTES:
        problem = f"is larger than {MAX_CA_BUNDLE_BYTES} bytes"
    else:
        try:
            ssl.create_default_context().load_verify_locations(cafile=path)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            problem = f"is not a readable PEM file of CA certificates ({exc})"
    if problem:
        raise BadRequest(f"'mirror_ca_bundle' {path!r} {problem}")


async def get_index(session: AsyncSession, user: str, name: str) -> IndexView | None:
    row = (
        await session.execute(select(Index).where(Index.user_name == user, Index.name == name))
    ).scalar_one_or_none()
    return IndexView.from_row(row) if row else None


async def require_index(session: AsyncSession, user: str, name: str) -> IndexView:
    index = await get_index(session, user, name)
    if index is None:
        raise NotFound(f"index {user}/{name} does not exist")
    return index


async def normalize_config(
    session: AsyncSession, owner: str, name: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Validate a full configuration and fill in defaults; returns the stored form."""
    index_type = data.get("type", "stage")
    if index_type not in ("stage", "mirror"):
        raise BadRequest(f"unknown index type {index_type!r}: use 'stage' or 'mirror'")
    allowed = STAGE_KEYS if index_type == "stage" else MIRROR_KEYS
    unknown = set(data) - allowed
    if unknown:
        raise BadRequest(f"unknown key(s) for a {index_type} index: {', '.join(sorted(unknown))}")
    config: dict[str, Any] = {
        "type": index_type,
        "title": str(data.get("title") or ""),
        "description": str(data.get("description") or ""),
    }
    if index_type == "mirror":
        if _as_list(data.get("bases"), "bases"):
            raise BadRequest("a mirror index cannot have bases")
        config["bases"] = []
        config["mirror_url"] = _check_url(data.get("mirror_url", PYPI_SIMPLE_URL))
        expiry = data.get("mirror_cache_expiry", DEFAULT_MIRROR_CACHE_EXPIRY)
        try:
            config["mirror_cache_expiry"] = int(expiry)
        except (TypeError, ValueError):
            raise BadRequest("'mirror_cache_expiry' must be a number of seconds") from None
        if config["mirror_cache_expiry"] < 0:
            raise BadRequest("'mirror_cache_expiry' must not be negative")
        config["mirror_timeout"] = _as_seconds(data.get("mirror_timeout", 10), "mirror_timeout")
        config["mirror_offline_retry"] = _as_seconds(
            data.get("mirror_offline_retry", 10), "mirror_offline_retry"
        )
        bundle = data.get("mirror_ca_bundle") or ""
        if not isinstance(bundle, str):
            raise BadRequest("'mirror_ca_bundle' must be the path of a PEM file on the server")
        if bundle:
            await asyncio.to_thread(_check_ca_bundle, bundle)
        config["mirror_ca_bundle"] = bundle
        config["mirror_no_project_list"] = _as_bool(
            data.get("mirror_no_project_list", False), "mirror_no_project_list"
        )
        config["volatile"] = _as_bool(data.get("volatile", False), "volatile")
        return config
    bases = _as_list(data.get("bases"), "bases")
    for base in bases:
        parts = base.split("/")
        if len(parts) != 2:
            raise BadRequest(f"base {base!r} must be written 'user/index'")
        if parts == [owner, name]:
            raise BadRequest("an index cannot be its own base")
        if await get_index(session, parts[0], parts[1]) is None:
            raise BadRequest(f"base index {base} does not exist")
    if len(set(bases)) != len(bases):
        raise BadRequest("'bases' lists an index twice")
    whitelist = _as_list(data.get("mirror_whitelist"), "mirror_whitelist")
    for project in whitelist:
        if project != "*" and not is_valid_project_name(project):
            raise BadRequest(f"invalid project name {project!r} in 'mirror_whitelist'")
    config["bases"] = bases
    config["volatile"] = _as_bool(data.get("volatile", True), "volatile")
    acl = _as_list(data.get("acl_upload", [owner]), "acl_upload")
    config["acl_upload"] = acl
    config["mirror_whitelist"] = sorted(
        {p if p == "*" else canonicalize_name(p) for p in whitelist}
    )
    return config


async def _check_no_cycle(
    session: AsyncSession, path: str, bases: list[str], seen: tuple[str, ...] = ()
) -> None:
    for base in bases:
        if base == path or base in seen:
            raise BadRequest(f"bases would make a cycle through {base}")
        user, name = base.split("/")
        index = await get_index(session, user, name)
        if index is not None:
            await _check_no_cycle(session, path, index.bases, (*seen, base))


async def create_index(
    session: AsyncSession, owner: str, name: str, data: dict[str, Any]
) -> IndexView:
    check_name("index", name)
    await require_user(session, owner)
    if await get_index(session, owner, name) is not None:
        raise Conflict(f"index {owner}/{name} already exists")
    config = await normalize_config(session, owner, name, data)
    await record(
        session,
        "index.put",
        {"user": owner, "name": name, "type": config["type"], "config": config},
    )
    return await require_index(session, owner, name)


async def modify_index(
    session: AsyncSession, owner: str, name: str, changes: dict[str, Any]
) -> IndexView:
    index = await require_index(session, owner, name)
    if "type" in changes and changes["type"] != index.type:
        raise BadRequest("the type of an existing index cannot be changed")
    merged = {**index.config, **changes}
    if isinstance(changes.get("mirror_url"), str) and index.config.get("mirror_url"):
        merged["mirror_url"] = keep_secret(changes["mirror_url"], index.config["mirror_url"])
    config = await normalize_config(session, owner, name, merged)
    await _check_no_cycle(session, index.path, config["bases"])
    await record(
        session,
        "index.put",
        {"user": owner, "name": name, "type": config["type"], "config": config},
    )
    return await require_index(session, owner, name)


async def delete_index(session: AsyncSession, owner: str, name: str) -> None:
    index = await require_index(session, owner, name)
    rows = (await session.execute(select(Index))).scalars().all()
    users = [
        IndexView.from_row(row).path for row in rows if index.path in IndexView.from_row(row).bases
    ]
    if users:
        raise Conflict(
            f"index {index.path} is a base of {', '.join(sorted(users))}; remove it there first"
        )
    await record(session, "index.delete", {"user": owner, "name": name})


async def resolve_chain(session: AsyncSession, index: IndexView) -> list[IndexView]:
    """The index followed by its bases, depth first in order, each once."""
    chain: list[IndexView] = []
    seen: set[str] = set()

    async def visit(current: IndexView) -> None:
        if current.path in seen:
            return
        seen.add(current.path)
        chain.append(current)
        for base in current.bases:
            user, name = base.split("/")
            base_index = await get_index(session, user, name)
            if base_index is not None:
                await visit(base_index)

    await visit(index)
    return chain
