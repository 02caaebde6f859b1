"""Reserved namespaces: parsing prefixes, reserving and releasing them through the
changelog, and the two questions the rest of lockgate asks (docs/reliability.md DC-6):
which namespace a project name falls in, and whether a user may create it.

The semantics follow PEP 752 ("Package repository namespaces"):
- a namespace is a project name, PEP 503-normalized: `acme-`, `acme_`, `Acme.` and
  `acme` all reserve the namespace `acme` (the trailing separator is optional);
- it covers the project named exactly `acme` and every project whose normalized
  name starts with `acme-` (`acme-utils`, `acme-ml-core`), never `acmeutils`;
- namespaces may nest (`acme` for team, `acme-ml` for ml): the most specific one
  decides who may create a project;
- only new projects are restricted: projects that already exist on an index when
  the namespace is reserved keep working there (uploads of new releases included);
- reserving one changes no stored project, release or cached page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.services import ROOT_USER, get_user
from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.errors import BadRequest, Conflict, Forbidden, NotFound
from lockgate.indexes.models import Index
from lockgate.names import is_valid_project_name
from lockgate.namespaces.entries import NamespaceDelete, NamespacePut
from lockgate.namespaces.models import Namespace
from lockgate.packages.models import Project

MAX_PREFIX_LENGTH = 200
SEPARATORS = "-_."
NAMESPACE_FIELDS = {"owner"}
# How many already existing matching projects a reservation reports.
MAX_EXISTING_REPORTED = 100


@dataclass(frozen=True)
class NamespaceView:
    name: str  # normalized, without the trailing separator: "acme"
    display: str  # as reserved: "acme-"
    owner: str
    created_at: str

    @property
    def prefix(self) -> str:
        """The normalized prefix, as people write it: "acme-"."""
        return f"{self.name}-"

    def covers(self, project: str) -> bool:
        return covers(self.name, project)

    def to_api(self) -> dict[str, Any]:
        return {
            "namespace": self.name,
            "prefix": self.prefix,
            "display": self.display,
            "owner": self.owner,
            "matches": [self.name, f"{self.prefix}*"],
            "created": self.created_at,
        }

    @staticmethod
    def from_row(row: Namespace) -> NamespaceView:
        return NamespaceView(row.name, row.display, row.owner, row.created_at)


def covers(namespace: str, project: str) -> bool:
    """Whether the (normalized) namespace covers `project` (PEP 752 grant semantics)."""
    name = canonicalize_name(project)
    return name == namespace or name.startswith(f"{namespace}-")


def parse_prefix(text: str) -> tuple[str, str]:
    """(normalized namespace, display form) of a prefix as root wrote it; 400 when
    it is not a project name optionally followed by '-', '_' or '.'."""
    if not text:
        raise BadRequest("a namespace prefix is required, e.g. 'acme-'")
    stripped = text.rstrip(SEPARATORS)
    if len(text) > MAX_PREFIX_LENGTH or not stripped or not is_valid_project_name(stripped):
        raise BadRequest(
            f"invalid namespace prefix {text!r}: use a project name (ASCII letters, digits, "
            "'.', '_' and '-', starting and ending with a letter or digit), optionally "
            "followed by '-', '_' or '.', e.g. 'acme-'"
        )
    return str(canonicalize_name(stripped)), text


def _candidates(project: str) -> list[str]:
    """Every namespace that could cover `project`: "acme", "acme-ml", "acme-ml-core"."""
    parts = canonicalize_name(project).split("-")
    return ["-".join(parts[: i + 1]) for i in range(len(parts))]


async def namespace_of(session: AsyncSession, project: str) -> NamespaceView | None:
    """The most specific reserved namespace covering `project`, or None."""
    rows = (
        await session.execute(select(Namespace).where(Namespace.name.in_(_candidates(project))))
    ).scalars()
    found = [NamespaceView.from_row(row) for row in rows]
    return max(found, key=lambda ns: len(ns.name)) if found else None


async def reserved_names(session: AsyncSession) -> list[str]:
    """Every reserved namespace (normalized), for checking many names at once."""
    return list((await session.execute(select(Namespace.name))).scalars())


async def list_namespaces(session: AsyncSession) -> list[NamespaceView]:
    rows = (await session.execute(select(Namespace).order_by(Namespace.name))).scalars()
    return [NamespaceView.from_row(row) for row in rows]


async def require_namespace(session: AsyncSession, prefix: str) -> NamespaceView:
    name, _ = parse_prefix(prefix)
    row = await session.get(Namespace, name)
    if row is None:
        raise NotFound(f"no namespace {name}- is reserved")
    return NamespaceView.from_row(row)


def require_root(actor: str) -> None:
    if actor != ROOT_USER:
        raise Forbidden("only root may reserve or release namespaces")


@dataclass(frozen=True)
class Reservation:
    namespace: NamespaceView
    created: bool  # False: it existed (and may have changed owner)
    # Projects that already matched (`user/index/project`): they are kept.
    existing: list[str]


async def reserve_namespace(
    session: AsyncSession, prefix: str, data: dict[str, Any], actor: Actor
) -> Reservation:
    """Reserve `prefix` for `data["owner"]`, or give a reserved one to another owner."""
    name, display = parse_prefix(prefix)
    unknown = set(data) - NAMESPACE_FIELDS
    if unknown:
        raise BadRequest(f"unknown namespace field(s): {', '.join(sorted(unknown))}")
    owner = data.get("owner")
    if not isinstance(owner, str) or not owner:
        raise BadRequest("'owner' (the user name that may create projects in it) is required")
    if await get_user(session, owner) is None:
        raise BadRequest(f"owner {owner!r} is not a user of this server: create the user first")
    existing = await session.get(Namespace, name)
    unchanged = existing is not None and (existing.owner, existing.display) == (owner, display)
    if not unchanged:
        created_at = existing.created_at if existing is not None else utcnow_iso()
        await record(
            session,
            NamespacePut(name=name, display=display, owner=owner, created_at=created_at),
            actor,
        )
    row = await session.get(Namespace, name)
    assert row is not None
    return Reservation(
        NamespaceView.from_row(row), existing is None, await _existing_projects(session, name)
    )


async def _existing_projects(session: AsyncSession, name: str) -> list[str]:
    rows = (
        await session.execute(
            select(Index.user_name, Index.name, Project.name)
            .join(Index, Index.id == Project.index_id)
            # Normalized names hold only [a-z0-9-]: no LIKE wildcard to escape.
            .where(or_(Project.name == name, Project.name.like(f"{name}-%")))
            .order_by(Index.user_name, Index.name, Project.name)
            .limit(MAX_EXISTING_REPORTED)
        )
    ).all()
    return [f"{user}/{index}/{project}" for user, index, project in rows]


async def release_namespace(session: AsyncSession, prefix: str, actor: Actor) -> NamespaceView:
    namespace = await require_namespace(session, prefix)
    await record(session, NamespaceDelete(name=namespace.name), actor)
    return namespace


async def require_may_create(session: AsyncSession, actor: str, project: str) -> None:
    """403 when `actor` may not create the project `project` (a new one: existing
    projects are not asked about) because it lies in another owner's namespace."""
    if actor == ROOT_USER:
        return
    namespace = await namespace_of(session, project)
    if namespace is not None and namespace.owner != actor:
        raise Forbidden(
            f"The name '{project}' is in the namespace '{namespace.prefix}' reserved for "
            f"'{namespace.owner}': only {namespace.owner} (or root) may create projects "
            f"named {namespace.name} or {namespace.prefix}*."
        )


async def refuse_deleting_owner(session: AsyncSession, user: str) -> None:
    """409 when `user` owns namespaces: deleting it would end the reservations
    silently (and a new user of that name would own them)."""
    owned = (
        await session.execute(
            select(Namespace.name).where(Namespace.owner == user).order_by(Namespace.name)
        )
    ).scalars()
    prefixes = [f"{name}-" for name in owned]
    if prefixes:
        raise Conflict(
            f"user {user} owns the namespace(s) {', '.join(prefixes)}: release them "
            "(lockgate namespace release PREFIX) or give them to another owner "
            "(lockgate namespace reserve PREFIX --owner USER) first"
        )
