"""Configuring hooks: saving, showing (secrets masked), removing, and their deliveries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import record
from lockgate.db.session import Database
from lockgate.egress import EgressPolicy, EgressRefused
from lockgate.errors import BadRequest, NotFound
from lockgate.hooks.config import HookConfig, parse_hook
from lockgate.hooks.entries import HookDelete, HookPut
from lockgate.hooks.models import Hook
from lockgate.hooks.outbox import Delivery, deliveries, resend
from lockgate.indexes.services import IndexView, require_index
from lockgate.names import check_name


@dataclass(frozen=True)
class HookView:
    name: str
    config: HookConfig

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, **self.config.shown()}


def _view(hook: Hook) -> HookView:
    return HookView(
        hook.name,
        HookConfig(hook.kind, json.loads(hook.config), tuple(json.loads(hook.events))),
    )


async def _stage(session: AsyncSession, user: str, name: str) -> IndexView:
    index = await require_index(session, user, name)
    if index.is_mirror:
        raise BadRequest(f"index {index.path} is a mirror: hooks belong on stage indexes")
    return index


async def get_hook(session: AsyncSession, user: str, name: str, hook: str) -> HookView | None:
    index = await require_index(session, user, name)
    row = (
        await session.execute(select(Hook).where(Hook.index_id == index.id, Hook.name == hook))
    ).scalar_one_or_none()
    return _view(row) if row is not None else None


async def require_hook(session: AsyncSession, user: str, name: str, hook: str) -> HookView:
    found = await get_hook(session, user, name, hook)
    if found is None:
        raise NotFound(f"index {user}/{name} has no hook {hook!r}")
    return found


async def list_hooks(session: AsyncSession, user: str, name: str) -> list[HookView]:
    index = await require_index(session, user, name)
    rows = (
        await session.execute(select(Hook).where(Hook.index_id == index.id).order_by(Hook.name))
    ).scalars()
    return [_view(row) for row in rows]


def prepare_hook(hook: str, data: dict[str, Any], current: HookView | None) -> HookConfig:
    """Validate a hook body (a masked secret sent back keeps the stored one)."""
    check_name("hook", hook)
    return parse_hook(data, current.config if current is not None else None)


async def put_hook(
    session: AsyncSession, user: str, name: str, hook: str, config: HookConfig, actor: Actor
) -> HookView:
    index = await _stage(session, user, name)
    await record(
        session,
        HookPut(
            user=index.user,
            index=index.name,
            name=hook,
            kind=config.kind,
            config=config.settings,
            events=config.events,
        ),
        actor,
    )
    return await require_hook(session, user, name, hook)


async def delete_hook(session: AsyncSession, user: str, name: str, hook: str, actor: Actor) -> None:
    await require_hook(session, user, name, hook)
    await record(session, HookDelete(user=user, index=name, name=hook), actor)


async def hook_deliveries(session: AsyncSession, user: str, name: str, hook: str) -> list[Delivery]:
    await require_hook(session, user, name, hook)
    return await deliveries(session, f"{user}/{name}", hook)


async def resend_delivery(
    session: AsyncSession, user: str, name: str, hook: str, delivery: str
) -> None:
    await require_hook(session, user, name, hook)
    await resend(session, f"{user}/{name}", hook, delivery)


async def save_hook(
    db: Database,
    policy: EgressPolicy,
    user: str,
    name: str,
    hook: str,
    data: dict[str, Any],
    actor: Actor,
) -> tuple[HookView, bool]:
    """Add or change a hook as `PUT …/+hooks/{hook}` and the hook form do: validated,
    its target resolved (DNS) before the write transaction. Returns it and whether it
    is new."""
    async with db.read() as session:
        current = await get_hook(session, user, name, hook)
    config = prepare_hook(hook, data, current)
    try:
        await policy.check_url_resolved(config.url)
    except EgressRefused as exc:
        raise BadRequest(
            f"{exc} (the operator allows private hook targets with hook_allow)"
        ) from None
    async with db.write() as session:
        saved = await put_hook(session, user, name, hook, config, actor)
    return saved, current is None
