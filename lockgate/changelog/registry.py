"""The registry of entry kinds: which payload class each kind string decodes to,
each domain's part of the state digest, and the blobs each domain's state references.

`changelog/` imports no domain. Each domain's `entries.py` has a
`register(registry)` that adds its kinds and digest part; `lockgate.domains`
calls them all where the application and the command line start.

Observers let a domain keep a projection of other domains' state current (the
search index) without the owning domain knowing it: `observe(kinds, observer)`, and
the observer runs right after every applied entry of those kinds, in the same session
and transaction — for `record()` (a write here, an import) and for
`apply_foreign_entry` (a replica, a replay) alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import EntryFormatError, Payload

# A domain's part of the state digest: its tables by natural keys, sorted.
DigestPart = Callable[[AsyncSession], Awaitable[dict[str, Any]]]
# The blobs a domain's current state references (what gc must keep, fsck must find).
BlobRefs = Callable[[AsyncSession], Awaitable[set[str]]]
# Called right after an entry of a kind it observes was applied, in the same session.
Observer = Callable[[AsyncSession, Payload], Awaitable[None]]

# Observers by kind, for the whole process: `record()` is called from every service with
# only a session, so it cannot be handed the registry. Registering is idempotent (every
# `build_registry()` registers the same functions), so this holds one list per kind.
_OBSERVERS: dict[str, list[Observer]] = {}


class UnknownEntryKind(EntryFormatError):
    pass


class EntryRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, type[Payload]] = {}
        self._digest_parts: dict[str, DigestPart] = {}
        self._blob_refs: dict[str, BlobRefs] = {}

    def register(self, *payload_types: type[Payload]) -> None:
        for payload_type in payload_types:
            kind = payload_type.KIND
            if kind in self._kinds and self._kinds[kind] is not payload_type:
                raise ValueError(f"entry kind {kind!r} is registered twice")
            self._kinds[kind] = payload_type

    def register_digest(self, domain: str, part: DigestPart) -> None:
        if domain in self._digest_parts:
            raise ValueError(f"a digest part for {domain!r} is registered twice")
        self._digest_parts[domain] = part

    def register_blob_refs(self, domain: str, refs: BlobRefs) -> None:
        if domain in self._blob_refs:
            raise ValueError(f"blob references of {domain!r} are registered twice")
        self._blob_refs[domain] = refs

    def observe(self, kinds: tuple[str, ...], observer: Observer) -> None:
        """Call `observer(session, payload)` after each applied entry of `kinds`."""
        for kind in kinds:
            observers = _OBSERVERS.setdefault(kind, [])
            if observer not in observers:
                observers.append(observer)

    @property
    def kinds(self) -> dict[str, type[Payload]]:
        return dict(self._kinds)

    def decode(self, kind: str, payload: Mapping[str, Any]) -> Payload:
        try:
            payload_type = self._kinds[kind]
        except KeyError:
            raise UnknownEntryKind(f"unknown changelog entry kind {kind!r}") from None
        return payload_type.from_json(payload)

    def blobs(self, kind: str, payload: Mapping[str, Any]) -> tuple[str, ...]:
        return self.decode(kind, payload).blobs()

    async def live_blobs(self, session: AsyncSession) -> set[str]:
        """Every blob the current state references, over all domains."""
        refs: set[str] = set()
        for part in self._blob_refs.values():
            refs |= await part(session)
        return refs

    async def digest(self, session: AsyncSession) -> dict[str, Any]:
        """Every domain's state by natural keys (no row ids), sorted, for comparison."""
        combined: dict[str, Any] = {}
        for domain, part in self._digest_parts.items():
            for section, value in (await part(session)).items():
                if section in combined:
                    raise ValueError(f"digest section {section!r} of {domain} is taken")
                combined[section] = value
        return combined


async def notify_observers(session: AsyncSession, payload: Payload) -> None:
    """Run the observers of `payload`'s kind; the writer and replay call this right
    after applying it, so a projection commits (or rolls back) with the entry."""
    for observer in _OBSERVERS.get(payload.KIND, ()):
        await observer(session, payload)


def row_values(row: Any, *skip: str) -> tuple[str, ...]:
    """Every column of a row but `skip` (row ids), as sortable strings."""
    return tuple(
        repr(getattr(row, column.key)) for column in row.__table__.columns if column.key not in skip
    )


REGISTRY = web.AppKey("entry_registry", EntryRegistry)
