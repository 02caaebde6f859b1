"""The base of every entry kind's payload.

A payload is a frozen dataclass whose fields are the keys of the entry's JSON
payload. Its class names the entry kind (`KIND`), says how the entry changes the
state tables (`apply`) and which blobs it needs (`blobs`). Each domain declares
its payloads in its own `entries.py`; the changelog only encodes, hashes and
replays them.

Entries name things by natural keys (user, index, project, version, filename),
never by row ids, so the same entry applies on another node or after an import.
Appliers are idempotent upserts where that is natural, so replaying is safe.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from sqlalchemy.ext.asyncio import AsyncSession


class EntryFormatError(ValueError):
    """A payload does not have the shape its entry kind declares."""


def to_plain(value: Any) -> Any:
    """Dataclasses and tuples as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    return value


_UnionType = type(int | None)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _tuple_item_type(hint: Any) -> Any:
    """For `tuple[X, ...]` (or `tuple[X, ...] | None`) the item type X, else None."""
    union = typing.get_origin(hint) in (typing.Union, _UnionType)
    options = typing.get_args(hint) if union else (hint,)
    for option in options:
        if typing.get_origin(option) is tuple:
            args = typing.get_args(option)
            return args[0] if args else Any
    return None


def from_plain(cls: type[Any], data: Mapping[str, Any], what: str) -> Any:
    """Build dataclass `cls` from its JSON form: required keys present, no unknown
    keys, lists turned back into tuples (of nested dataclasses where declared)."""
    if not isinstance(data, Mapping):
        raise EntryFormatError(f"{what} must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise EntryFormatError(f"{what} has unknown key(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    hints = _hints(cls)
    for name, field in fields.items():
        if name not in data:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise EntryFormatError(f"{what} lacks the key {name!r}")
            continue
        value = data[name]
        item_type = _tuple_item_type(hints[name])
        if item_type is not None and isinstance(value, list):
            if isinstance(item_type, type) and dataclasses.is_dataclass(item_type):
                value = tuple(from_plain(item_type, item, f"{what}.{name}") for item in value)
            else:
                value = tuple(value)
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise EntryFormatError(f"{what} is malformed: {exc}") from None


class Payload:
    """Base of the frozen dataclasses that are changelog entry payloads."""

    KIND: ClassVar[str]
    # True for kinds that only cache what an upstream said (mirror pages, files,
    # metadata, lists): committing them leaves indexes, users, namespaces and
    # permissions as they were, so memos of those outlive the commit
    # (`Database.config_serial`).
    CACHE_ONLY: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        plain = to_plain(self)
        assert isinstance(plain, dict)
        return plain

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        built = from_plain(cls, data, f"the payload of a {cls.KIND!r} entry")
        assert isinstance(built, cls)
        return built

    def blobs(self) -> tuple[str, ...]:
        """sha256 of every blob the entry references (they travel with it)."""
        return ()

    async def apply(self, session: AsyncSession) -> None:
        """Change the state tables as this entry says; the caller owns the transaction."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it applies")


_FOREIGN = "lockgate.applying_foreign_entries"


@contextmanager
def applying_foreign_entries(session: AsyncSession) -> Iterator[None]:
    """Mark `session` as applying entries another server wrote (a replica following
    its primary, an import, a replay). Their appliers must reproduce that server's
    state even where this server's own rules would refuse the change today, such
    as user or index names differing only in case, written before they were refused."""
    before = session.info.get(_FOREIGN, False)
    session.info[_FOREIGN] = True
    try:
        yield
    finally:
        session.info[_FOREIGN] = before


def applying_foreign(session: AsyncSession) -> bool:
    """Whether `session` applies entries another server wrote (see above)."""
    return bool(session.info.get(_FOREIGN, False))


_ENTRY = "lockgate.applying_entry"


@dataclass(frozen=True)
class EntryContext:
    """The entry an applier is applying: its serial, when it was written and who
    caused it. An applier that keeps a record of who did what (the deleted-release
    marks) reads the actor here: an import re-records entries with their actor, a
    replica and a replay keep it, so every node records the same name."""

    serial: int
    created_at: str
    actor: str | None


@contextmanager
def applying_entry(session: AsyncSession, context: EntryContext) -> Iterator[None]:
    """Set by `record()` and `apply_foreign_entry()` around an entry's applier and
    observers (whoever applies it: a write, a replica, an import, a replay)."""
    before = session.info.get(_ENTRY)
    session.info[_ENTRY] = context
    try:
        yield
    finally:
        session.info[_ENTRY] = before


def current_entry(session: AsyncSession) -> EntryContext | None:
    """The entry being applied in `session` (None outside `applying_entry`, as when a
    test calls an applier directly)."""
    found = session.info.get(_ENTRY)
    return found if isinstance(found, EntryContext) else None
