"""The documentation zip checks and text extraction (lockgate/docs/archive.py), on zips
built here: docs/reliability.md DOC-2 (names), DOC-3 (links, encryption, compression),
DOC-4 (caps), DOC-5 (corrupt archives); the upload form (DOC-10) and `docs_url`."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from lockgate.config import parse_docs_url
from lockgate.docs.archive import (
    TEXT_CAP,
    DocsLimits,
    DocsRejected,
    check_member_name,
    find_member,
    html_text,
    inspect_docs_zip,
)
from lockgate.docs.services import parse_docs_form

LIMITS = DocsLimits(max_unpacked_bytes=10 * 1024 * 1024, max_members=100)


def write_zip(path: Path, members: dict[str, bytes | str], **kw: int) -> Path:
    with zipfile.ZipFile(path, "w", kw.get("compression", zipfile.ZIP_DEFLATED)) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("../x.html", "climbs out"),
        ("a/./x.html", "climbs out"),
        ("/x.html", "absolute path"),
        ("a\\x.html", "backslash"),
        ("c:x.html", "names a drive"),
        ("a\x00.html", "control character"),
        ("a\n.html", "control character"),
        ("a//x.html", "empty path segment"),
        ("", "empty name"),
    ],
)
def test_hostile_names(name: str, phrase: str) -> None:
    with pytest.raises(DocsRejected, match=phrase):
        check_member_name(name)


@pytest.mark.parametrize("name", ["index.html", "_static/a.css", "api/", "a..b.html", "x/y/z.js"])
def test_ordinary_names(name: str) -> None:
    check_member_name(name)


def test_duplicate_names(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("index.html", "a")
        archive.writestr("index.html", "b")
    with pytest.raises(DocsRejected, match="more than once"):
        inspect_docs_zip(path, LIMITS)


def test_symlink_encrypted_and_bzip2(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("l.html")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "l.zip", "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DocsRejected, match="symbolic link"):
        inspect_docs_zip(tmp_path / "l.zip", LIMITS)

    # zipfile writes no encrypted members: set the flag bit in both headers by hand.
    data = bytearray(write_zip(tmp_path / "plain.zip", {"e.html": "x"}).read_bytes())
    data[6] |= 0x1  # the local file header's general purpose flags
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1  # the central directory's copy
    (tmp_path / "e.zip").write_bytes(bytes(data))
    with pytest.raises(DocsRejected, match="encrypted"):
        inspect_docs_zip(tmp_path / "e.zip", LIMITS)

    path = write_zip(tmp_path / "b.zip", {"index.html": "x"}, compression=zipfile.ZIP_BZIP2)
    with pytest.raises(DocsRejected, match="only stored and deflated"):
        inspect_docs_zip(path, LIMITS)


def test_caps_and_bomb(tmp_path: Path) -> None:
    many = write_zip(tmp_path / "m.zip", {f"{i}.html": "x" for i in range(101)})
    with pytest.raises(DocsRejected, match="at most 100"):
        inspect_docs_zip(many, LIMITS)
    big = write_zip(tmp_path / "big.zip", {"a.bin": b"\0" * (11 * 1024 * 1024)})
    with pytest.raises(DocsRejected, match="unpacks to more than 10 MiB"):
        inspect_docs_zip(big, LIMITS)
    bomb = write_zip(tmp_path / "bomb.zip", {"a.html": b"\0" * (5 * 1024 * 1024)})
    with pytest.raises(DocsRejected, match="zip bomb"):
        inspect_docs_zip(bomb, LIMITS)
    # Big but incompressible is fine (no bomb), and so is highly compressible but small.
    fine = write_zip(
        tmp_path / "fine.zip", {"a.bin": os.urandom(2 * 1024 * 1024), "b.html": b"\0" * 900_000}
    )
    assert inspect_docs_zip(fine, LIMITS).members == 2


def test_corrupt_archives(tmp_path: Path) -> None:
    good = write_zip(tmp_path / "g.zip", {"index.html": "<p>" + "words " * 2000 + "</p>"})
    data = good.read_bytes()
    (tmp_path / "t.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(DocsRejected, match="not a valid zip archive"):
        inspect_docs_zip(tmp_path / "t.zip", LIMITS)
    broken = bytearray(data)
    for i in range(45, 60):
        broken[i] ^= 0xFF
    (tmp_path / "c.zip").write_bytes(bytes(broken))
    with pytest.raises(DocsRejected, match="cannot be read"):
        inspect_docs_zip(tmp_path / "c.zip", LIMITS)
    (tmp_path / "e.zip").write_bytes(b"")
    with pytest.raises(DocsRejected, match="not a valid zip archive"):
        inspect_docs_zip(tmp_path / "e.zip", LIMITS)
    only_dirs = write_zip(tmp_path / "d.zip", {"api/": ""})
    with pytest.raises(DocsRejected, match="holds no files"):
        inspect_docs_zip(only_dirs, LIMITS)


def test_text_is_visible_words_and_capped(tmp_path: Path) -> None:
    page = (
        "<html><head><title>T &amp; T</title><style>p{}</style></head><body>"
        "<script>alert(1)</script><p>Hello\n\n   world</p><noscript>no</noscript></body></html>"
    )
    assert html_text(page.encode()) == "T & T: Hello world"
    inspected = inspect_docs_zip(
        write_zip(tmp_path / "p.zip", {"index.html": page, "_sources/index.txt": "src"}), LIMITS
    )
    assert inspected.text == "T & T: Hello world" and not inspected.text_truncated
    pages = {f"p{i}.html": "<p>" + f"word{i} " * 20_000 + "</p>" for i in range(5)}
    capped = inspect_docs_zip(write_zip(tmp_path / "c.zip", pages), LIMITS)
    assert capped.text_truncated and len(capped.text) <= TEXT_CAP


def test_find_member(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "s.zip", {"index.html": "i", "api/index.html": "a", "api/x.js": ""})
    assert find_member(path, "")[0] is not None
    assert find_member(path, "api/")[0] is not None
    member, is_dir = find_member(path, "api")
    assert member is None and is_dir
    assert find_member(path, "nope.html") == (None, False)
    assert find_member(path, "../index.html") == (None, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("https://docs.pypi.corp", "https://docs.pypi.corp"),
        ("http://localhost:8080/", "http://localhost:8080"),
    ],
)
def test_docs_url_is_an_origin(value: str | None, expected: str | None) -> None:
    assert parse_docs_url(value) == expected


@pytest.mark.parametrize(
    "value", ["docs.pypi.corp", "ftp://docs", "https://docs/path", "https://u:p@docs", "https://"]
)
def test_docs_url_refused(value: str) -> None:
    with pytest.raises(ValueError, match="docs_url"):
        parse_docs_url(value)


def test_docs_form() -> None:
    form = parse_docs_form(
        {
            ":action": ["doc_upload"],
            "protocol_version": ["1"],
            "name": ["Acme_Utils"],
            "version": ["1.0"],
        }
    )
    assert (form.name, form.version) == ("Acme_Utils", "1.0")
    assert parse_docs_form({"name": ["acme"]}).version == ""
    for fields, phrase in [
        ({"name": ["acme"], "protocol_version": ["2"]}, "protocol version"),
        ({}, "name: This field is required"),
        ({"name": ["a b"]}, "not a valid project name"),
        ({"name": ["a", "b"]}, "more than one value"),
        ({"name": ["a"], "version": ["1.0", "2.0"]}, "more than one value"),
        ({"name": ["a"], "version": ["one"]}, "not a valid version"),
    ]:
        with pytest.raises(DocsRejected, match=phrase):
            parse_docs_form(fields)
