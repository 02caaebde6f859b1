"""The one wire format of changelog entries, and the one hash-chain check.

`/+changelog` (replicas), export bundles and replay all carry entries as JSON
objects with `serial`, `created_at`, `kind`, `payload`, `prev_hash` and `hash`.
An entry's hash covers the previous entry's hash, its serial, its kind and its
canonical payload, so a rewound, reordered or edited history shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64
ENTRY_KEYS = ("serial", "created_at", "kind", "payload", "prev_hash", "hash")
# Who caused an entry; absent in entries written before lockgate recorded it.
ACTOR_KEYS = ("actor", "actor_token")


class ChainMismatch(ValueError):
    """An entry does not continue the history it is applied to or checked against."""


class MalformedEntry(ValueError):
    """A changelog line that is not an entry."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str,
    serial: int,
    kind: str,
    payload_json: str,
    actor: str | None = None,
    actor_token: str | None = None,
) -> str:
    """The chain hash; it covers the actor too, where one is recorded (entries
    written before actors were recorded hash as they always did)."""
    parts = [prev_hash, str(serial), kind, payload_json]
    if actor is not None:
        parts += [actor, actor_token or ""]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who caused an entry: a user (and the token it used), or `system` for what the
    server does by itself (mirror fills, gc, bootstrap)."""

    name: str
    token_id: str | None = None

    def __str__(self) -> str:
        return f"{self.name} (token {self.token_id})" if self.token_id else self.name


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Entry:
    """One changelog entry as it travels; `payload` is the JSON object as written."""

    serial: int
    created_at: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    actor: str | None = None
    actor_token: str | None = None

    def payload_json(self) -> str:
        return canonical_json(self.payload)

    def computed_hash(self) -> str:
        return entry_hash(
            self.prev_hash,
            self.serial,
            self.kind,
            self.payload_json(),
            self.actor,
            self.actor_token,
        )

    def caused_by(self) -> Actor | None:
        return Actor(self.actor, self.actor_token) if self.actor is not None else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "serial": self.serial,
            "created_at": self.created_at,
            "kind": self.kind,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }
        if self.actor is not None:
            data["actor"] = self.actor
            data["actor_token"] = self.actor_token
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Entry:
        if (
            not isinstance(data, Mapping)
            or not set(ENTRY_KEYS) <= set(data)
            or not set(data) <= {*ENTRY_KEYS, *ACTOR_KEYS}
        ):
            raise MalformedEntry(
                f"a changelog entry has the keys {', '.join(ENTRY_KEYS)} "
                f"(and {' and '.join(ACTOR_KEYS)})"
            )
        actor, actor_token = data.get("actor"), data.get("actor_token")
        if not isinstance(actor, str | None) or not isinstance(actor_token, str | None):
            raise MalformedEntry("an entry's actor is a string or null")
        serial, payload = data["serial"], data["payload"]
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
            raise MalformedEntry(f"invalid serial {serial!r} in a changelog entry")
        if not isinstance(payload, dict):
            raise MalformedEntry(f"the payload of entry {serial} is not a JSON object")
        text = (data["created_at"], data["kind"], data["prev_hash"], data["hash"])
        if not all(isinstance(value, str) for value in text):
            raise MalformedEntry(f"entry {serial} has a non-string field")
        created_at, kind, prev_hash, entry_hash_ = text
        return Entry(serial, created_at, kind, payload, prev_hash, entry_hash_, actor, actor_token)


def encode_line(entry: Entry) -> str:
    """One entry as a JSON line (without the newline), keys sorted."""
    return json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":"))


def decode_lines(text: str) -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedEntry(f"changelog line {number} is not JSON ({exc})") from None
        entries.append(Entry.from_json(data))
    return entries


class ChainCursor:
    """Where a history stands (last serial and its hash), checking each next entry."""

    def __init__(self, serial: int = 0, last_hash: str = GENESIS_HASH) -> None:
        self.serial = serial
        self.last_hash = last_hash

    def problems(self, entry: Entry) -> list[str]:
        """Everything wrong with `entry` as the next one; the cursor moves past it."""
        found = []
        if entry.serial != self.serial + 1:
            found.append(f"expected serial {self.serial + 1}, got {entry.serial}")
        if entry.prev_hash != self.last_hash:
            found.append(
                f"entry {entry.serial} does not follow this history (previous hash differs)"
            )
        if entry.computed_hash() != entry.hash:
            found.append(f"entry {entry.serial} is corrupt (hash does not match its content)")
        self.serial, self.last_hash = entry.serial, entry.hash
        return found

    def advance(self, entry: Entry) -> None:
        """Check `entry` as the next one; ChainMismatch (first problem) if it is not."""
        found = self.problems(entry)
        if found:
            raise ChainMismatch(found[0])


def verify_chain(
    entries: Iterable[Entry], serial: int = 0, last_hash: str = GENESIS_HASH
) -> ChainCursor:
    """Check that `entries` continue the history ending at (`serial`, `last_hash`);
    returns where they end. Raises ChainMismatch at the first entry that does not."""
    cursor = ChainCursor(serial, last_hash)
    for entry in entries:
        cursor.advance(entry)
    return cursor
