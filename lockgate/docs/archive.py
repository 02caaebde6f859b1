"""Checking a documentation zip and extracting its plain text; reading members back.

Everything here is blocking file work: callers run it in a thread, and the upload
path runs `inspect_docs_zip` before any write transaction opens. Nothing is ever
unpacked to disk: members are read from the zip (the blob) as they are served.

The refusals (docs/reliability.md DOC-2..DOC-6): member names that climb out
(`..`), are absolute, carry a backslash, a drive letter or a control character;
duplicate names; symlinks; encrypted members or compression other than stored or
deflated; more members or more unpacked bytes than the caps; a member that expands
like a zip bomb; a truncated or corrupt archive (every member is read through, so a
bad CRC or short data is caught here and not when a browser asks for it).
"""

from __future__ import annotations

import re
import stat
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from lockgate.errors import BadRequest

MIB = 1024 * 1024
# Plain text kept for search per documentation set: enough for the words of a large
# manual, small enough to travel inside a changelog entry.
TEXT_CAP = 256 * 1024
# A member larger than this that unpacks to more than RATIO_CAP times its compressed
# size is treated as a zip bomb (HTML compresses 5-20 times, zeros a thousand times).
BOMB_MIN_BYTES = 1 * MIB
RATIO_CAP = 200
READ_CHUNK = 256 * 1024
ALLOWED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HTML_SUFFIXES = (".html", ".htm")
# Sphinx's copies of the sources and its static files are not page text.
_SKIP_TEXT_PREFIXES = ("_sources/", "_static/", "_images/", "_modules/")


class DocsRejected(BadRequest):
    """A documentation archive refused, with a message saying why (400)."""


@dataclass(frozen=True)
class DocsLimits:
    max_unpacked_bytes: int
    max_members: int


@dataclass(frozen=True)
class InspectedDocs:
    members: int  # files, not directory entries
    unpacked_bytes: int
    text: str  # the pages' plain text, at most TEXT_CAP characters
    text_truncated: bool


def check_member_name(name: str) -> None:
    """Refuse names a naive unpacker would write outside its target directory."""
    if not name:
        raise DocsRejected("documentation zip has a member with an empty name")
    if "\\" in name:
        raise DocsRejected(f"documentation zip member {name!r} has a backslash in its name")
    if _CONTROL.search(name):
        raise DocsRejected(f"documentation zip member {name!r} has a control character in its name")
    if name.startswith("/"):
        raise DocsRejected(f"documentation zip member {name!r} has an absolute path")
    if _DRIVE.match(name):
        raise DocsRejected(f"documentation zip member {name!r} names a drive")
    parts = name.rstrip("/").split("/")
    if any(part in ("..", ".") for part in parts):
        raise DocsRejected(f"documentation zip member {name!r} climbs out with '..' or '.'")
    if any(part == "" for part in parts):
        raise DocsRejected(f"documentation zip member {name!r} has an empty path segment")


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix mode bits live in the high 16 bits of external_attr (zip's "made by"
    # Unix); S_IFLNK there is how `zip --symlinks` stores a link.
    return stat.S_ISLNK(info.external_attr >> 16)


class _TextExtractor(HTMLParser):
    """The visible text of an HTML page: no script, style or template content."""

    _HIDDEN = frozenset({"script", "style", "template", "noscript", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._HIDDEN:
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)


def html_text(data: bytes) -> str:
    """One line per page: its title, then its words separated by single spaces."""
    parser = _TextExtractor()
    try:
        parser.feed(data.decode("utf-8", errors="replace"))
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; a page it chokes on adds no text
        return ""
    words = " ".join(" ".join(parser.parts).split())
    title = " ".join(" ".join(parser.title).split())
    return f"{title}: {words}" if title and words else title or words


def _wants_text(name: str) -> bool:
    return name.lower().endswith(_HTML_SUFFIXES) and not name.startswith(_SKIP_TEXT_PREFIXES)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, keep: bool) -> bytes:
    """Read a member through (CRC and length checked by zipfile); its bytes if `keep`."""
    kept = bytearray()
    seen = 0
    with archive.open(info) as handle:
        while chunk := handle.read(READ_CHUNK):
            seen += len(chunk)
            if seen > info.file_size:  # zipfile stops at file_size; be sure anyway
                raise DocsRejected(f"documentation zip member {info.filename!r} is corrupt")
            if keep:
                kept += chunk
    return bytes(kept)


def inspect_docs_zip(path: Path, limits: DocsLimits) -> InspectedDocs:
    """Check a documentation zip (see the module docstring) and extract its text."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise DocsRejected(
            f"the documentation is not a valid zip archive (truncated or corrupt?): {exc}"
        ) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise DocsRejected(
                f"documentation zip has {len(infos)} members; at most {limits.max_members} "
                "are accepted"
            )
        seen: set[str] = set()
        total = 0
        for info in infos:
            check_member_name(info.filename)
            if info.filename in seen:
                raise DocsRejected(f"documentation zip holds {info.filename!r} more than once")
            seen.add(info.filename)
            if _is_symlink(info):
                raise DocsRejected(
                    f"documentation zip member {info.filename!r} is a symbolic link; "
                    "links are not accepted"
                )
            if info.flag_bits & 0x1:
                raise DocsRejected(f"documentation zip member {info.filename!r} is encrypted")
            if info.compress_type not in ALLOWED_COMPRESSION:
                raise DocsRejected(
                    f"documentation zip member {info.filename!r} uses compression method "
                    f"{info.compress_type}; only stored and deflated members are accepted"
                )
            total += info.file_size
            if total > limits.max_unpacked_bytes:
                raise DocsRejected(
                    f"documentation zip unpacks to more than {_size(limits.max_unpacked_bytes)}"
                    f" (the limit); make it smaller"
                )
            if info.file_size > BOMB_MIN_BYTES and info.file_size > RATIO_CAP * max(
                info.compress_size, 1
            ):
                raise DocsRejected(
                    f"documentation zip member {info.filename!r} expands {info.file_size} bytes "
                    f"from {info.compress_size}: refused as a zip bomb"
                )
        return _read_through(archive, infos, total)


def _read_through(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], total: int
) -> InspectedDocs:
    texts: list[str] = []
    length = 0
    truncated = False
    members = 0
    for info in infos:
        if info.is_dir():
            continue
        members += 1
        keep = not truncated and _wants_text(info.filename)
        try:
            data = _read_member(archive, info, keep)
        except DocsRejected:
            raise
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            ValueError,
            RuntimeError,
            NotImplementedError,
        ) as exc:
            raise DocsRejected(
                f"documentation zip member {info.filename!r} cannot be read (truncated or "
                f"corrupt archive?): {exc}"
            ) from None
        if keep:
            page = html_text(data)
            if page:
                if length + len(page) + 1 > TEXT_CAP:
                    page = page[: max(TEXT_CAP - length - 1, 0)]
                    truncated = True
                texts.append(page)
                length += len(page) + 1
    if members == 0:
        raise DocsRejected("the documentation zip holds no files")
    return InspectedDocs(members, total, "\n".join(texts)[:TEXT_CAP], truncated)


def _size(value: int) -> str:
    return f"{value // MIB} MiB" if value % MIB == 0 else f"{value} bytes"


# --------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    crc: int


class _OpenZips:
    """The last few served zips, kept open with their member lists and directories.

    Reading a zip's central directory costs time in proportion to its members
    (a third of a second for 20 000 on a loaded machine), which every page of a
    manual would pay again. Blobs never change, so an open zip stays valid. ZipFile
    lets several threads read members at once (it locks its file per read).
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._open: OrderedDict[Path, tuple[zipfile.ZipFile, frozenset[str]]] = OrderedDict()

    def get(self, path: Path) -> tuple[zipfile.ZipFile, frozenset[str]]:
        with self._lock:
            found = self._open.get(path)
            if found is not None:
                self._open.move_to_end(path)
                return found
        archive = zipfile.ZipFile(path)
        directories = frozenset(
            name[: i + 1] for name in archive.namelist() for i, c in enumerate(name) if c == "/"
        )
        with self._lock:
            if path in self._open:  # another thread opened it meanwhile
                archive.close()
                return self._open[path]
            self._open[path] = (archive, directories)
            while len(self._open) > self._size:
                # Not closed here: a thread may be about to read from it. The last
                # reference going closes it (ZipFile.__del__).
                self._open.popitem(last=False)
            return archive, directories


OPEN_ZIPS = _OpenZips()


def find_member(path: Path, relpath: str) -> tuple[Member | None, bool]:
    """The member `relpath` names (a directory's `index.html` for '' or 'dir/'), and
    whether `relpath` is a directory (so the caller redirects to 'relpath/')."""
    archive, directories = OPEN_ZIPS.get(path)
    wanted = relpath + "index.html" if relpath == "" or relpath.endswith("/") else relpath
    try:
        info = archive.getinfo(wanted)
    except KeyError:
        info = None
    if info is not None and not info.is_dir():
        return Member(info.filename, info.file_size, info.CRC), False
    if relpath and not relpath.endswith("/"):
        return None, relpath + "/" in directories
    return None, False


def read_member(path: Path, name: str) -> bytes:
    archive, _ = OPEN_ZIPS.get(path)
    with archive.open(name) as handle:
        return handle.read()


def iter_member(path: Path, name: str) -> Generator[bytes, None, None]:
    """A member in chunks (for the big ones); each `next()` is blocking file work."""
    archive, _ = OPEN_ZIPS.get(path)
    with archive.open(name) as handle:
        while chunk := handle.read(READ_CHUNK):
            yield chunk
