"""Reading a wheel's METADATA by ranges (lockgate/mirror/zipmeta.py) gives exactly
what zipfile reads from the whole file (docs/reliability.md MC-5), for the layouts
wheels come in; anything doubtful is Unreadable (the caller falls back)."""

from __future__ import annotations

import asyncio
import io
import zipfile

import pytest

from lockgate.mirror.zipmeta import (
    TAIL_BYTES,
    Tail,
    Unreadable,
    decompress_member,
    read_metadata,
)

METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n" + b"description line\n" * 50


def _wheel(
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    members: int = 3,
    comment: bytes = b"",
    zip64: bool = False,
    prefix: bytes = b"",
    metadata_names: tuple[str, ...] = ("demo-1.0.dist-info/METADATA",),
) -> bytes:
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for number in range(members):
            archive.writestr(f"demo/module_{number:05d}.py", f"x = {number}\n" * 3)
        for name in metadata_names:
            with archive.open(zipfile.ZipInfo(name), "w", force_zip64=zip64) as member:
                member.write(METADATA)
        archive.writestr("demo-1.0.dist-info/RECORD", "")
        archive.comment = comment
    return buffer.getvalue()


def _read(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    reads: list[tuple[int, int]] = []

    async def read(start: int, end: int) -> bytes:
        reads.append((start, end))
        return data[start:end]

    async def decompress(chunk: bytes, method: int, size: int, crc: int) -> bytes:
        return decompress_member(chunk, method, size, crc)

    start = max(0, len(data) - TAIL_BYTES)
    tail = Tail(data[start:], start, len(data))
    return asyncio.run(read_metadata(tail, read, decompress, 10 * 1024 * 1024)), reads


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"compression": zipfile.ZIP_STORED},
        {"comment": b"c" * 60_000},
        {"members": 4000},  # a central directory larger than the tail
        {"zip64": True},  # ZIP64 extra fields on the member
        {"members": 0x10000},  # more entries than 16 bits: ZIP64 end records
        {"prefix": b"#!/bin/sh\n" * 10_000},  # data before the zip, as zipfile allows
    ],
)
def test_same_bytes_as_zipfile(layout: dict[str, object]) -> None:
    data = _wheel(**layout)  # type: ignore[arg-type]
    metadata, reads = _read(data)
    assert metadata == METADATA
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("demo-1.0.dist-info/METADATA") == metadata
    assert len(reads) <= 2


@pytest.mark.parametrize(
    "names",
    [
        (),
        ("demo-1.0.dist-info/METADATA", "other-1.0.dist-info/METADATA"),
        ("a/b.dist-info/METADATA",),
    ],
)
def test_no_single_top_level_metadata_is_unreadable(names: tuple[str, ...]) -> None:
    with pytest.raises(Unreadable):
        _read(_wheel(metadata_names=names))


def test_garbage_and_corruption_are_unreadable() -> None:
    with pytest.raises(Unreadable):
        _read(b"not a zip at all" * 1000)
    data = bytearray(_wheel(members=1, compression=zipfile.ZIP_STORED))
    position = data.find(b"Name: demo")
    data[position] ^= 0xFF  # the CRC no longer matches
    with pytest.raises(Unreadable):
        _read(bytes(data))
