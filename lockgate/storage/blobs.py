"""The blob store: immutable files named by their sha256, written atomically.

A blob lives at `blobs/ab/cd/abcd…` (two fan-out levels). Writers stream into a
temp file under `tmp/` on the same filesystem, fsync it, rename it into place
and fsync the directory, all before the database transaction that references
it commits: a crash leaves at most an unreferenced blob, never a row without
its blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aiohttp import web

SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
TEMP_PREFIX = "incoming-"


def temp_owner(name: str) -> int | None:
    """The pid that wrote a temp file, from its name (None if not ours)."""
    if not name.startswith(TEMP_PREFIX):
        return None
    pid = name[len(TEMP_PREFIX) :].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def temp_in_use(name: str) -> bool:
    """True when the temp file belongs to another live process (a transfer in flight)."""
    owner = temp_owner(name)
    if owner is None or owner == os.getpid():
        return False
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InvalidBlobId(ValueError):
    pass


@dataclass(frozen=True)
class Digests:
    sha256: str
    blake2_256: str
    md5: str
    size: int


class HashingWriter:
    """Writes to a temp file while computing the digests the upload API needs."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._sha256 = hashlib.sha256()
        self._blake2 = hashlib.blake2b(digest_size=32)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._sha256.update(chunk)
        self._blake2.update(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    def digests(self) -> Digests:
        return Digests(
            sha256=self._sha256.hexdigest(),
            blake2_256=self._blake2.hexdigest(),
            md5=self._md5.hexdigest(),
            size=self.size,
        )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def ensure_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise InvalidBlobId(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def new_temp(self) -> tuple[IO[bytes], Path]:
        """An open temp file in the store's tmp dir; the caller closes or discards it."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix=f"{TEMP_PREFIX}{os.getpid()}-")
        return os.fdopen(fd, "wb"), Path(name)

    def commit_temp(self, temp: Path, sha256: str) -> Path:
        """Move a finished, fsynced temp file into place under its sha256."""
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # Same content already stored: blobs are immutable, keep the old one.
            temp.unlink(missing_ok=True)
            return target
        os.replace(temp, target)
        fsync_dir(target.parent)
        return target

    def put_bytes(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if self.exists(sha256):
            return sha256
        handle, temp = self.new_temp()
        try:
            with handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self.commit_temp(temp, sha256)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return sha256

    @staticmethod
    def discard(temp: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


BLOBS = web.AppKey("blobs", BlobStore)
