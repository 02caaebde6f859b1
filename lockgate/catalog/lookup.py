"""Looking a project up through an index chain, asking mirrors' upstreams first
where the dependency-confusion guard allows it. Used by every read API."""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from lockgate.catalog.services import ProjectView, mirrors_to_consult, project_files
from lockgate.db.session import Database
from lockgate.errors import NotFound
from lockgate.indexes.services import IndexView, require_index, resolve_chain
from lockgate.mirror.services import RESERVED_HEADER, MirrorService
from lockgate.namespaces.services import NamespaceView, namespace_of


@dataclass
class Lookup:
    index: IndexView
    view: ProjectView | None
    stale: list[str] = field(default_factory=list)  # why cached mirror pages are unconfirmed
    unavailable: list[str] = field(default_factory=list)  # mirrors with no cache and no upstream
    mirrors: list[IndexView] = field(default_factory=list)  # mirrors consulted
    reserved: NamespaceView | None = None  # the reserved namespace the name lies in

    def require(self, project: str) -> ProjectView:
        if self.view is not None:
            return self.view
        if self.reserved is not None and not self.mirrors:
            namespace = self.reserved
            headers = {RESERVED_HEADER: namespace.prefix}
            if self.index.is_mirror:
                raise NotFound(
                    f"project {project!r} is reserved for the organisation: it is in the "
                    f"namespace '{namespace.prefix}' (owner {namespace.owner}), which "
                    f"{self.index.path} never takes from its upstream; a stage index may "
                    "allow it by listing the name in its mirror_whitelist",
                    headers=headers,
                )
            raise NotFound(
                f"project {project!r} not found on index {self.index.path}; its name is in "
                f"the namespace '{namespace.prefix}' reserved for {namespace.owner}, so it is "
                "never taken from a mirror unless this index lists it in its mirror_whitelist",
                headers=headers,
            )
        if self.unavailable:
            raise NotFound(
                f"project {project!r} is not cached on index {self.index.path} and its upstream "
                f"cannot be reached ({self.unavailable[0]}); it will be fetched once the "
                "upstream is back"
            )
        raise NotFound(f"project {project!r} not found on index {self.index.path}")


async def lookup_project(
    db: Database,
    mirror: MirrorService,
    user: str,
    name: str,
    project: str,
    index_chain: tuple[IndexView, list[IndexView]] | None = None,
) -> Lookup:
    """`index_chain`: the index and its chain when the caller has them (remembered)."""
    normalized = canonicalize_name(project)
    async with db.read() as session:
        if index_chain is None:
            index = await require_index(session, user, name)
            chain = await resolve_chain(session, index)
        else:
            index, chain = index_chain
        consult = await mirrors_to_consult(session, chain, normalized)
        has_mirror = any(i.is_mirror for i in chain)
        reserved = await namespace_of(session, normalized) if has_mirror else None
    result = Lookup(index=index, view=None, mirrors=consult, reserved=reserved)
    await confirm_mirrors(mirror, consult, normalized, result, via=index.path)
    async with db.read() as session:
        result.view = await project_files(session, chain, normalized, consult)
    return result


async def confirm_mirrors(
    mirror: MirrorService,
    mirrors: list[IndexView],
    project: str,
    into: Lookup | None = None,
    *,
    via: str | None = None,
) -> list[str]:
    """Make sure the mirrors' cached pages of `project` are fresh; returns the
    reasons they could not be confirmed (the pages are then served stale).
    `via`: the index (`user/index`) the project is looked up in."""
    stale: list[str] = []
    for index in mirrors:
        state = await mirror.ensure_page(index, project, via=via)
        if state.stale and state.reason:
            stale.append(state.reason)
            if into is not None:
                (into.stale if state.cached else into.unavailable).append(state.reason)
    return stale
