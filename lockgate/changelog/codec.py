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


class ChainMismatch(ValueError):
    """An entry does not continue the history it is applied to or checked against."""


class MalformedEntry(ValueError):
    """A changelog line that is not an entry."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, serial: int, kind: str, payload_json: str) -> str:
    digest = hashlib.sha256()
    for part in (prev_hash, str(serial), kind, payload_json):
        digest.update(part.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One changelog entry as it travels; `payload` is the JSON object as written."""

    serial: int
    created_at: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def payload_json(self) -> str:
        return canonical_json(self.payload)

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "created_at": self.created_at,
            "kind": self.kind,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Entry:
        if not isinstance(data, Mapping) or set(data) != set(ENTRY_KEYS):
            raise MalformedEntry(f"a changelog entry has exactly the keys {', '.join(ENTRY_KEYS)}")
        serial, payload = data["serial"], data["payload"]
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
            raise MalformedEntry(f"invalid serial {serial!r} in a changelog entry")
        if not isinstance(payload, dict):
            raise MalformedEntry(f"the payload of entry {serial} is not a JSON object")
        text = (data["created_at"], data["kind"], data["prev_hash"], data["hash"])
        if not all(isinstance(value, str) for value in text):
            raise MalformedEntry(f"entry {serial} has a non-string field")
        created_at, kind, prev_hash, entry_hash_ = text
        return Entry(serial, created_at, kind, payload, prev_hash, entry_hash_)


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
        content_hash = entry_hash(entry.prev_hash, entry.serial, entry.kind, entry.payload_json())
        if content_hash != entry.hash:
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
