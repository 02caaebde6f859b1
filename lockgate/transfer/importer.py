"""`lockgate import`: verify a whole bundle before changing anything, then
replay its entries into this server's own changelog in one transaction.

Verification covers the member list (nothing but the manifest, the changelog
and `blobs/<sha256>`), the changelog's checksum and hash chain, every blob's
sha256 and size, and continuity: an incremental bundle must start exactly
where the last import from the same source ended (a rewound or diverged
source history is refused, never mixed in).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lockgate.changelog.codec import (
    GENESIS_HASH,
    SYSTEM,
    Actor,
    ChainMismatch,
    Entry,
    MalformedEntry,
    decode_lines,
    verify_chain,
)
from lockgate.changelog.payloads import EntryFormatError, Payload, applying_foreign_entries
from lockgate.changelog.registry import EntryRegistry
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.db.session import Database
from lockgate.db.state import require_state
from lockgate.storage.blobs import BlobStore, HashingWriter
from lockgate.transfer.bundle import BLOB_MEMBER_RE, CHANGELOG, FORMAT, MANIFEST
from lockgate.transfer.entries import ImportMarkSet
from lockgate.transfer.models import ImportMark

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_CHANGELOG_BYTES = 16 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024
# Recorded for imported entries that carry no actor (written before actors were).
IMPORTER = Actor("import")


class ImportRefused(Exception):
    """The bundle cannot be imported; nothing was changed."""


@dataclass(frozen=True)
class ImportResult:
    source_server_id: str
    from_serial: int
    to_serial: int
    entries: int
    blobs: int


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise ImportRefused(f"bundle member {member.name} is too large")
    handle = archive.extractfile(member)
    if handle is None:
        raise ImportRefused(f"bundle member {member.name} is not a regular file")
    data = handle.read(member.size)
    if len(data) != member.size:
        raise ImportRefused(f"bundle member {member.name} is truncated")
    return data


def _verify_chain(manifest: dict[str, Any], entries: list[Entry]) -> None:
    try:
        end = verify_chain(entries, manifest["from_serial"], manifest["from_hash"])
    except ChainMismatch as exc:
        raise ImportRefused(f"the bundle's changelog is broken or tampered with: {exc}") from None
    if end.serial != manifest["to_serial"] or end.last_hash != manifest["to_hash"]:
        raise ImportRefused("the changelog does not end where the manifest says")


def _decode_payloads(registry: EntryRegistry, entries: list[Entry]) -> list[tuple[Entry, Payload]]:
    try:
        return [(entry, registry.decode(entry.kind, entry.payload)) for entry in entries]
    except EntryFormatError as exc:
        raise ImportRefused(
            f"the bundle holds an entry this lockgate cannot apply: {exc}"
        ) from None


def _copy_blob(handle: IO[bytes], blobs: BlobStore) -> tuple[Path, str, int]:
    out, temp = blobs.new_temp()
    try:
        with out:
            writer = HashingWriter(out)
            while chunk := handle.read(CHUNK):
                writer.write(chunk)
        digests = writer.digests()
    except BaseException:
        blobs.discard(temp)
        raise
    return temp, digests.sha256, digests.size


def verify_bundle(
    path: Path,
    blobs: BlobStore,
    registry: EntryRegistry,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], list[tuple[Entry, Payload]], dict[str, Path]]:
    """Everything checked, blobs copied to verified temp files; nothing committed."""
    temps: dict[str, Path] = {}
    try:
        with tarfile.open(path, "r:") as archive:
            members = archive.getmembers()
            names = [m.name for m in members]
            if len(set(names)) != len(names):
                raise ImportRefused("the bundle lists a member twice")
            by_name = {m.name: m for m in members}
            for member in members:
                if member.name in (MANIFEST, CHANGELOG) or BLOB_MEMBER_RE.match(member.name):
                    if not member.isfile():
                        raise ImportRefused(f"bundle member {member.name} is not a regular file")
                    continue
                raise ImportRefused(f"unexpected member in the bundle: {member.name!r}")
            if MANIFEST not in by_name or CHANGELOG not in by_name:
                raise ImportRefused("this is not a lockgate bundle (no manifest or changelog)")
            manifest = json.loads(_read_member(archive, by_name[MANIFEST], MAX_MANIFEST_BYTES))
            if manifest.get("format") != FORMAT:
                raise ImportRefused(f"unsupported bundle format {manifest.get('format')!r}")
            changelog = _read_member(archive, by_name[CHANGELOG], MAX_CHANGELOG_BYTES)
            if hashlib.sha256(changelog).hexdigest() != manifest["changelog_sha256"]:
                raise ImportRefused("the changelog does not match the manifest's checksum")
            try:
                entries = decode_lines(changelog.decode("utf-8"))
            except MalformedEntry as exc:
                raise ImportRefused(f"the bundle's changelog is malformed: {exc}") from None
            _verify_chain(manifest, entries)
            payloads = _decode_payloads(registry, entries)
            expected = dict(manifest["blobs"])
            present = {BLOB_MEMBER_RE.match(n).group(1) for n in names if BLOB_MEMBER_RE.match(n)}  # type: ignore[union-attr]
            if present != set(expected):
                raise ImportRefused("the bundle's blobs differ from its manifest")
            needed = {sha for _, payload in payloads for sha in payload.blobs()}
            if not needed <= present:
                raise ImportRefused("the changelog references blobs the bundle lacks")
            for position, sha256 in enumerate(sorted(present), 1):
                handle = archive.extractfile(by_name[f"blobs/{sha256}"])
                assert handle is not None
                temp, actual, size = _copy_blob(handle, blobs)
                temps[sha256] = temp
                if actual != sha256 or size != expected[sha256]:
                    raise ImportRefused(f"blob {sha256} in the bundle is corrupt")
                if progress:
                    progress(position, len(present))
    except ImportRefused:
        for temp in temps.values():
            blobs.discard(temp)
        raise
    except (tarfile.TarError, OSError, EOFError, KeyError, ValueError, TypeError) as exc:
        for temp in temps.values():
            blobs.discard(temp)
        raise ImportRefused(f"the bundle is damaged or truncated ({exc})") from None
    return manifest, payloads, temps


async def import_bundle(
    db: Database,
    blobs: BlobStore,
    registry: EntryRegistry,
    path: Path,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    manifest, payloads, temps = verify_bundle(path, blobs, registry, progress)
    try:
        source = str(manifest["source_server_id"])
        async with db.read() as session:
            state = await require_state(session)
            mark = await session.get(ImportMark, source)
        if source == state.server_id:
            raise ImportRefused("this bundle was exported from this very server")
        done_serial = mark.serial if mark else 0
        done_hash = mark.hash if mark else GENESIS_HASH
        if (manifest["from_serial"], manifest["from_hash"]) != (done_serial, done_hash):
            raise ImportRefused(
                f"the bundle continues serial {manifest['from_serial']} of server {source}, but "
                f"this server has imported up to serial {done_serial} from it; export with "
                f"--since {done_serial} on the source (or check it was not restored from an "
                "older backup)"
            )
    except BaseException:
        for temp in temps.values():
            blobs.discard(temp)
        raise
    # Verified: blobs first (a crash leaves orphans at most), then one transaction.
    for sha256, temp in temps.items():
        blobs.commit_temp(temp, sha256)
    try:
        async with db.write() as session:
            with applying_foreign_entries(session):
                for entry, payload in payloads:
                    # Imported entries keep who caused them on the source server.
                    await record(session, payload, entry.caused_by() or IMPORTER)
            await record(
                session,
                ImportMarkSet(
                    source_server_id=source,
                    serial=manifest["to_serial"],
                    hash=manifest["to_hash"],
                    imported_at=utcnow_iso(),
                ),
                SYSTEM,
            )
    except Exception as exc:  # noqa: BLE001 - any failure rolls the whole import back
        raise ImportRefused(f"the bundle could not be applied, nothing was changed: {exc}") from exc
    return ImportResult(
        source, manifest["from_serial"], manifest["to_serial"], len(payloads), len(temps)
    )
