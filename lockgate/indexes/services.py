"""Indexes: reading them (with their typed configuration), creating, changing
and deleting them through the changelog, and resolving inheritance chains."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.services import ROOT_USER, require_self_or_root, require_user
from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import record
from lockgate.db.session import Database
from lockgate.egress import EgressPolicy, EgressRefused
from lockgate.errors import BadRequest, Conflict, Forbidden, NotFound
from lockgate.indexes.config import (
    UPSTREAM_KEYS,
    IndexConfig,
    KeyValueOp,
    MirrorConfig,
    Readers,
    StageConfig,
    apply_keyvalue_ops,
    ca_bundle_of,
    check_ca_bundle,
    from_stored,
    parse_config,
    public_form,
    to_stored,
)
from lockgate.indexes.entries import IndexDelete, IndexPut
from lockgate.indexes.models import Index
from lockgate.names import check_name
from lockgate.urls import REDACTED, keep_secret


@dataclass(frozen=True)
class IndexView:
    """An index as the read paths need it: id, path and typed configuration."""

    id: int
    user: str
    name: str
    config: IndexConfig

    @property
    def path(self) -> str:
        return f"{self.user}/{self.name}"

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def is_mirror(self) -> bool:
        return isinstance(self.config, MirrorConfig)

    @property
    def mirror(self) -> MirrorConfig:
        """The mirror settings; only for mirror indexes."""
        if not isinstance(self.config, MirrorConfig):
            raise TypeError(f"index {self.path} is not a mirror")
        return self.config

    @property
    def bases(self) -> list[str]:
        return list(self.config.bases)

    @property
    def volatile(self) -> bool:
        return self.config.volatile

    @property
    def readers(self) -> Readers:
        return Readers(self.user, self.config.acl_read)

    def whitelists(self, project: str) -> bool:
        return isinstance(self.config, StageConfig) and self.config.whitelists(project)

    def names_in_whitelist(self, project: str) -> bool:
        """`project` itself is in the mirror_whitelist (not only through '*')."""
        return isinstance(self.config, StageConfig) and self.config.names_in_whitelist(project)

    def public_config(self) -> dict[str, Any]:
        """The configuration as the API shows it: upstream credentials masked."""
        return public_form(self.config)

    @staticmethod
    def from_row(row: Index) -> IndexView:
        config = from_stored(row.type, json.loads(row.config), row.user_name)
        return IndexView(row.id, row.user_name, row.name, config)


def require_upload_permission(actor: str, index: IndexView, project: str) -> None:
    allowed = actor == ROOT_USER or (
        isinstance(index.config, StageConfig) and index.config.may_upload(actor)
    )
    if not allowed:
        raise Forbidden(
            f"The user '{actor}' isn't allowed to upload to project '{project}' "
            f"on index {index.path}."
        )


def require_root_for_upstream(actor: str) -> None:
    if actor != ROOT_USER:
        raise Forbidden(
            "only root may create mirror indexes or change where they fetch from "
            "(mirror_url, mirror_ca_bundle)"
        )


async def precheck_config(data: dict[str, Any]) -> None:
    """The checks that touch the file system (the CA bundle loads): run before the
    write transaction, so a slow disk never holds the writers' lock."""
    bundle = ca_bundle_of(data)
    if bundle:
        await asyncio.to_thread(check_ca_bundle, bundle)


async def precheck_index_change(
    db: Database,
    owner: str,
    name: str,
    changes: dict[str, Any],
    ops: list[KeyValueOp] | None = None,
) -> None:
    """`precheck_config` for a change: the stored settings merged with the changes
    (or with devpi's key-value operations applied)."""
    async with db.read() as session:
        index = await get_index(session, owner, name)
    current = to_stored(index.config) if index is not None else {}
    await precheck_config(apply_keyvalue_ops(current, ops) if ops else {**current, **changes})


async def get_index(session: AsyncSession, user: str, name: str) -> IndexView | None:
    row = (
        await session.execute(select(Index).where(Index.user_name == user, Index.name == name))
    ).scalar_one_or_none()
    return IndexView.from_row(row) if row else None


async def indexes_named_any_case(session: AsyncSession, user: str, name: str) -> list[str]:
    """The names of `user`'s indexes that equal `name` regardless of case (more than one
    only where look-alikes existed before index names became case-insensitive)."""
    query = (
        select(Index.name)
        .where(Index.user_name == user, func.lower(Index.name) == name.lower())
        .order_by(Index.name)
    )
    return list((await session.execute(query)).scalars())


async def case_lookalike_indexes(session: AsyncSession) -> list[list[str]]:
    """Groups of one user's index paths whose names differ only in case, each sorted:
    left from before index names became case-insensitive (or applied from such a
    server's changelog). `lockgate migrate` lists them for the operator;
    `create_index` refuses new ones."""
    folded = func.lower(Index.name)
    clashing = (
        select(Index.user_name.label("user_name"), folded.label("folded"))
        .group_by(Index.user_name, folded)
        .having(func.count() > 1)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Index.user_name, Index.name)
            .join(
                clashing,
                (clashing.c.user_name == Index.user_name) & (clashing.c.folded == folded),
            )
            .order_by(Index.user_name, Index.name)
        )
    ).all()
    groups: dict[tuple[str, str], list[str]] = {}
    for user, name in rows:
        groups.setdefault((user, name.lower()), []).append(f"{user}/{name}")
    return [groups[key] for key in sorted(groups)]


async def require_index(session: AsyncSession, user: str, name: str) -> IndexView:
    index = await get_index(session, user, name)
    if index is None:
        raise NotFound(f"index {user}/{name} does not exist")
    return index


async def user_indexes(session: AsyncSession, user: str) -> list[IndexView]:
    rows = (
        await session.execute(select(Index).where(Index.user_name == user).order_by(Index.name))
    ).scalars()
    return [IndexView.from_row(row) for row in rows]


async def all_indexes(session: AsyncSession) -> list[IndexView]:
    """Every index, by user and name (one query, for listings)."""
    rows = (await session.execute(select(Index).order_by(Index.user_name, Index.name))).scalars()
    return [IndexView.from_row(row) for row in rows]


async def mirror_indexes(session: AsyncSession) -> list[IndexView]:
    rows = (await session.execute(select(Index).where(Index.type == "mirror"))).scalars()
    return [IndexView.from_row(row) for row in rows]


async def _check_bases_exist(session: AsyncSession, config: IndexConfig) -> None:
    for base in config.bases:
        user, name = base.split("/")
        if await get_index(session, user, name) is None:
            raise BadRequest(f"base index {base} does not exist")


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


def _chain_in(views: dict[str, IndexView], start: IndexView) -> list[IndexView]:
    chain: list[IndexView] = []
    seen: set[str] = set()

    def visit(current: IndexView) -> None:
        if current.path in seen:
            return
        seen.add(current.path)
        chain.append(current)
        for base in current.bases:
            if base in views:
                visit(views[base])

    visit(start)
    return chain


async def _check_no_read_leak(session: AsyncSession, changed: IndexView) -> None:
    """Refuse a configuration under which some index could be read by someone who
    may not read one of its bases: its content would leak through inheritance."""
    rows = (await session.execute(select(Index))).scalars().all()
    views = {view.path: view for view in map(IndexView.from_row, rows)}
    views[changed.path] = changed
    for view in views.values():
        for base in _chain_in(views, view)[1:]:
            if not view.readers.within(base.readers, ROOT_USER):
                raise BadRequest(
                    f"index {view.path} (acl_read {', '.join(view.config.acl_read)}) would be "
                    f"readable by users who may not read its base {base.path} (acl_read "
                    f"{', '.join(base.config.acl_read)}): narrow {view.path}'s acl_read or "
                    f"widen {base.path}'s"
                )


async def _check_promote_to(session: AsyncSession, changed: IndexView) -> None:
    """`promote_to` names an existing stage index (not this one) that the index's
    owner may upload to, and following promote_to from there never comes back."""
    config = changed.config
    if not isinstance(config, StageConfig) or config.promote_to is None:
        return
    user, name = config.promote_to.split("/")
    target = await get_index(session, user, name)
    if target is None:
        raise BadRequest(f"'promote_to' index {config.promote_to} does not exist")
    if not isinstance(target.config, StageConfig):
        raise BadRequest(f"'promote_to' index {target.path} is a mirror: name a stage index")
    if changed.user != ROOT_USER and not target.config.may_upload(changed.user):
        raise BadRequest(
            f"'promote_to' index {target.path} does not let {changed.user} (the owner of "
            f"{changed.path}) upload: add them to its acl_upload first"
        )
    seen = [changed.path]
    current: IndexView | None = target
    while current is not None and isinstance(current.config, StageConfig):
        if current.path in seen:
            raise BadRequest(
                f"'promote_to' would make a cycle: {' -> '.join(seen)} -> {current.path}"
            )
        seen.append(current.path)
        following = current.config.promote_to
        if following is None:
            break
        next_user, next_name = following.split("/")
        current = await get_index(session, next_user, next_name)


async def _put(
    session: AsyncSession, owner: str, name: str, config: IndexConfig, actor: Actor
) -> IndexView:
    await record(
        session, IndexPut(user=owner, name=name, type=config.type, config=to_stored(config)), actor
    )
    return await require_index(session, owner, name)


async def create_index(
    session: AsyncSession, owner: str, name: str, data: dict[str, Any], actor: Actor
) -> IndexView:
    """Create an index; `precheck_config(data)` must have run before the transaction."""
    check_name("index", name)
    await require_user(session, owner)
    # Inside the write transaction, so a racing creation is seen (and the unique
    # index on (user_name, lower(name)) stops it in the database too).
    existing = await indexes_named_any_case(session, owner, name)
    if name in existing:
        raise Conflict(f"index {owner}/{name} already exists")
    if existing:
        raise Conflict(
            f"index {owner}/{existing[0]} already exists "
            "(index names are unique within a user regardless of case)"
        )
    config = parse_config(owner, name, data)
    await _check_bases_exist(session, config)
    await _check_no_read_leak(session, IndexView(0, owner, name, config))
    await _check_promote_to(session, IndexView(0, owner, name, config))
    return await _put(session, owner, name, config, actor)


async def modify_index(
    session: AsyncSession,
    owner: str,
    name: str,
    changes: dict[str, Any],
    actor: Actor,
    ops: list[KeyValueOp] | None = None,
) -> IndexView:
    """Change an index: merge `changes` into its settings, or apply devpi's key-value
    `ops` to them (read here, inside the write, so concurrent changes are not lost);
    `precheck_index_change` must have run before the transaction."""
    index = await require_index(session, owner, name)
    stored = to_stored(index.config)
    if ops:
        merged = apply_keyvalue_ops(stored, ops)
        changes = {key: merged.get(key) for key in {op.key for op in ops}}
    else:
        merged = {**stored, **changes}
    if "type" in changes and changes["type"] != index.type:
        raise BadRequest("the type of an existing index cannot be changed")
    if isinstance(changes.get("mirror_url"), str) and isinstance(index.config, MirrorConfig):
        merged["mirror_url"] = keep_secret(changes["mirror_url"], index.config.mirror_url)
    config = parse_config(owner, name, merged)
    await _check_bases_exist(session, config)
    await _check_no_cycle(session, index.path, list(config.bases))
    await _check_no_read_leak(session, IndexView(index.id, owner, name, config))
    await _check_promote_to(session, IndexView(index.id, owner, name, config))
    return await _put(session, owner, name, config, actor)


async def delete_index(session: AsyncSession, owner: str, name: str, actor: Actor) -> None:
    index = await require_index(session, owner, name)
    rows = (await session.execute(select(Index))).scalars().all()
    views = list(map(IndexView.from_row, rows))
    users = [view.path for view in views if index.path in view.bases]
    if users:
        raise Conflict(
            f"index {index.path} is a base of {', '.join(sorted(users))}; remove it there first"
        )
    promoters = [
        view.path
        for view in views
        if isinstance(view.config, StageConfig) and view.config.promote_to == index.path
    ]
    if promoters:
        raise Conflict(
            f"index {index.path} is the promote_to of {', '.join(sorted(promoters))}; "
            "change it there first"
        )
    await record(session, IndexDelete(user=owner, name=name), actor)


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


# --- what the API handlers and the browser forms share ------------------------------


async def check_upstream_allowed(egress: EgressPolicy, data: dict[str, Any]) -> None:
    """A mirror URL must resolve to a host the server may fetch from (SS-1): DNS, so
    before any write transaction."""
    url = data.get("mirror_url")
    if isinstance(url, str) and "://" in url and REDACTED not in url:
        try:
            await egress.check_url_resolved(url)
        except EgressRefused as exc:
            raise BadRequest(str(exc)) from None


def authorize_index_change(principal_user: str, owner: str, touches_upstream: bool) -> None:
    """The owner or root changes an index; only root where it fetches from."""
    require_self_or_root(principal_user, owner)
    if touches_upstream:
        require_root_for_upstream(principal_user)


async def put_new_index(
    db: Database, egress: EgressPolicy, owner: str, name: str, data: dict[str, Any], actor: Actor
) -> IndexView:
    """Create an index as `PUT /{user}/{index}` and the new-index form do: the upstream
    checks first, then one write transaction."""
    if data.get("type") == "mirror":
        await check_upstream_allowed(egress, data)
        await precheck_config(data)
    async with db.write() as session:
        return await create_index(session, owner, name, data, actor)


async def change_index(
    db: Database,
    egress: EgressPolicy,
    owner: str,
    name: str,
    changes: dict[str, Any],
    actor: Actor,
    ops: list[KeyValueOp] | None = None,
) -> IndexView:
    """Change an index as `PATCH /{user}/{index}` and the edit form do: merge `changes`,
    or apply devpi's key-value `ops` (whose `set` values `changes` then holds)."""
    if UPSTREAM_KEYS & set(changes):
        await check_upstream_allowed(egress, changes)
    await precheck_index_change(db, owner, name, changes, ops)
    async with db.write() as session:
        return await modify_index(session, owner, name, changes, actor, ops=ops)
