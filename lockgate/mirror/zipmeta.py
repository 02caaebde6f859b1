"""A wheel's METADATA read from the upstream without downloading the wheel.

A zip keeps its table of contents (the central directory) at its end, so two
range reads are enough: the last ~64 KiB (the end-of-central-directory record,
ZIP64's locator and record, usually the whole central directory), then the
METADATA member's local header and compressed bytes. Everything here is pure
parsing over a `read(start, end)` callback, so it runs the same on range
answers from the upstream and in tests.

Any doubt (an unusual layout, an unsupported compression, a CRC mismatch) makes
the reader give up with `Unreadable`; the caller then falls back to the whole
wheel and `zipfile`, which stays the one authority on what a wheel contains.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# The tail read first: the EOCD record is 22 bytes plus a comment of at most 64 KiB.
TAIL_BYTES = 64 * 1024 + 22
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
LOCAL_SLACK = 1024  # a local header's extra field may differ from the central one

EOCD = struct.Struct("<4s4H2LH")
EOCD_SIGNATURE = b"PK\x05\x06"
ZIP64_LOCATOR = struct.Struct("<4sLQL")
ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
CENTRAL_SIGNATURE = b"PK\x01\x02"
LOCAL = struct.Struct("<4s2B4HL2L2H")
LOCAL_SIGNATURE = b"PK\x03\x04"

STORED = 0
DEFLATED = 8


class Unreadable(Exception):
    """The wheel could not be read this way (the caller falls back to the whole file)."""


@dataclass(frozen=True)
class Tail:
    """The answer to a suffix range read: the bytes and where they sit in the file."""

    data: bytes
    start: int
    total: int


# read(start, end_exclusive) -> exactly those bytes
ReadRange = Callable[[int, int], Awaitable[bytes]]
Decompress = Callable[[bytes, int, int, int], Awaitable[bytes]]


@dataclass(frozen=True)
class Member:
    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    file_size: int
    header_offset: int


def _find_eocd(tail: bytes) -> int:
    """Position of the end-of-central-directory record in `tail`, as zipfile finds it."""
    position = tail.rfind(EOCD_SIGNATURE)
    while position >= 0:
        if position + EOCD.size <= len(tail):
            comment_length = EOCD.unpack_from(tail, position)[7]
            if position + EOCD.size + comment_length == len(tail):
                return position
        position = tail.rfind(EOCD_SIGNATURE, 0, position)
    raise Unreadable("no end-of-central-directory record in the last 64 KiB")


async def _slice(tail: Tail, read: ReadRange, start: int, end: int) -> bytes:
    """Bytes [start, end) of the file, from the tail when it holds them."""
    if start < 0 or end > tail.total or end < start:
        raise Unreadable(f"offsets {start}-{end} lie outside the file")
    if start >= tail.start:
        return tail.data[start - tail.start : end - tail.start]
    data = await read(start, end)
    if len(data) != end - start:
        raise Unreadable("a range read returned the wrong number of bytes")
    return data


async def _central_directory(tail: Tail, read: ReadRange) -> tuple[bytes, int, int]:
    """(central directory bytes, its entry count, the offset of data prepended to the zip)."""
    eocd = _find_eocd(tail.data)
    _sig, disk, cd_disk, _on_disk, entries, cd_size, cd_offset, _comment = EOCD.unpack_from(
        tail.data, eocd
    )
    eocd_at = tail.start + eocd
    record_at = eocd_at
    if 0xFFFF in (disk, cd_disk, entries) or 0xFFFFFFFF in (cd_size, cd_offset):
        if eocd < ZIP64_LOCATOR.size:
            raise Unreadable("ZIP64 locator outside the tail")
        signature = ZIP64_LOCATOR.unpack_from(tail.data, eocd - ZIP64_LOCATOR.size)[0]
        if signature != ZIP64_LOCATOR_SIGNATURE:
            raise Unreadable("ZIP64 locator missing")
        # zipfile expects the ZIP64 record right before its locator (and so do we).
        record_at = eocd_at - ZIP64_LOCATOR.size - ZIP64_EOCD.size
        record = await _slice(tail, read, record_at, record_at + ZIP64_EOCD.size)
        fields = ZIP64_EOCD.unpack(record)
        if fields[0] != ZIP64_EOCD_SIGNATURE:
            raise Unreadable("ZIP64 end-of-central-directory record missing")
        entries, cd_size, cd_offset = fields[7], fields[8], fields[9]
    if cd_size > MAX_CENTRAL_DIRECTORY:
        raise Unreadable(f"central directory of {cd_size} bytes")
    concat = record_at - cd_size - cd_offset
    if concat < 0:
        raise Unreadable("central directory offsets do not add up")
    start = cd_offset + concat
    return await _slice(tail, read, start, start + cd_size), entries, concat


def _zip64_extra(extra: bytes, member: Member) -> Member:
    """Sizes and offset that did not fit 32 bits, from the ZIP64 extra field."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, position)
        body = extra[position + 4 : position + 4 + length]
        position += 4 + length
        if kind != 0x0001:
            continue
        values = iter(struct.unpack_from(f"<{len(body) // 8}Q", body))
        try:
            file_size = next(values) if member.file_size == 0xFFFFFFFF else member.file_size
            compressed = (
                next(values) if member.compressed_size == 0xFFFFFFFF else member.compressed_size
            )
            offset = next(values) if member.header_offset == 0xFFFFFFFF else member.header_offset
        except StopIteration:
            raise Unreadable("truncated ZIP64 extra field") from None
        return Member(
            member.name, member.method, member.flags, member.crc, compressed, file_size, offset
        )
    raise Unreadable("ZIP64 sizes without a ZIP64 extra field")


def parse_central_directory(directory: bytes, entries: int) -> list[Member]:
    members = []
    position = 0
    for _ in range(entries):
        if position + CENTRAL.size > len(directory):
            raise Unreadable("truncated central directory")
        fields = CENTRAL.unpack_from(directory, position)
        if fields[0] != CENTRAL_SIGNATURE:
            raise Unreadable("bad central directory entry")
        flags, method = fields[5], fields[6]
        crc, compressed, file_size = fields[9], fields[10], fields[11]
        name_length, extra_length, comment_length = fields[12], fields[13], fields[14]
        header_offset = fields[18]
        position += CENTRAL.size
        raw_name = directory[position : position + name_length]
        extra = directory[position + name_length : position + name_length + extra_length]
        position += name_length + extra_length + comment_length
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        member = Member(name, method, flags, crc, compressed, file_size, header_offset)
        if 0xFFFFFFFF in (compressed, file_size, header_offset):
            member = _zip64_extra(extra, member)
        members.append(member)
    return members


def metadata_member(members: list[Member], max_bytes: int) -> Member:
    """The one `*.dist-info/METADATA` at the top level (the rule extract_wheel_metadata uses)."""
    candidates = [
        m for m in members if m.name.count("/") == 1 and m.name.endswith(".dist-info/METADATA")
    ]
    if len(candidates) != 1:
        raise Unreadable(f"{len(candidates)} top-level .dist-info/METADATA members")
    member = candidates[0]
    if member.file_size > max_bytes or member.compressed_size > max_bytes:
        raise Unreadable("METADATA is too large")
    if member.flags & 0x1:
        raise Unreadable("METADATA is encrypted")
    if member.method not in (STORED, DEFLATED):
        raise Unreadable(f"METADATA uses compression method {member.method}")
    return member


def decompress_member(data: bytes, method: int, file_size: int, crc: int) -> bytes:
    """The member's bytes, checked against its size and CRC (CPU-bound: run in a thread)."""
    if method == STORED:
        content = data
    else:
        inflater = zlib.decompressobj(-15)
        try:
            content = inflater.decompress(data, file_size + 1)
        except zlib.error as exc:
            raise Unreadable(f"METADATA does not inflate: {exc}") from None
    if len(content) != file_size or zlib.crc32(content) != crc:
        raise Unreadable("METADATA does not match its size or CRC")
    return content


async def read_metadata(
    tail: Tail, read: ReadRange, decompress: Decompress, max_bytes: int
) -> bytes:
    """The exact bytes of the wheel's METADATA, given its tail and a range reader."""
    directory, entries, concat = await _central_directory(tail, read)
    member = metadata_member(parse_central_directory(directory, entries), max_bytes)
    start = member.header_offset + concat
    guess = LOCAL.size + len(member.name.encode("utf-8")) + LOCAL_SLACK + member.compressed_size
    head = await _slice(tail, read, start, min(tail.total, start + guess))
    if len(head) < LOCAL.size:
        raise Unreadable("truncated local header")
    fields = LOCAL.unpack_from(head, 0)
    if fields[0] != LOCAL_SIGNATURE:
        raise Unreadable("bad local header")
    data_at = LOCAL.size + fields[10] + fields[11]
    data_end = data_at + member.compressed_size
    if data_end > len(head):
        head += await _slice(tail, read, start + len(head), start + data_end)
    return await decompress(head[data_at:data_end], member.method, member.file_size, member.crc)
