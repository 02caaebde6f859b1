"""`packages.deleted.derive_marks`, the rules migration 0016 applies to an existing
changelog (docs/reliability.md WEB-12): the same marks the appliers would have made."""

from __future__ import annotations

from typing import Any

from lockgate.packages.deleted import derive_marks

Entry = tuple[str, dict[str, Any], str, str | None]


def _add(index: str, project: str, version: str, filename: str) -> Entry:
    user, name = index.split("/")
    payload = {
        "user": user,
        "index": name,
        "project": project,
        "version": version,
        "filename": filename,
    }
    return ("file.add", payload, "2026-01-01T00:00:00Z", "alice")


def _where(index: str) -> dict[str, str]:
    user, name = index.split("/")
    return {"user": user, "index": name}


def test_release_delete_marks_and_a_new_upload_clears() -> None:
    entries: list[Entry] = [
        _add("alice/dev", "Foo.Bar", "1.0", "foo_bar-1.0-py3-none-any.whl"),
        _add("alice/dev", "Foo.Bar", "2.0", "foo_bar-2.0-py3-none-any.whl"),
        (
            "release.delete",
            {
                **_where("alice/dev"),
                "project": "foo-bar",
                "version": "1.0",
                "deleted_at": "2026-02-02T10:00:00Z",
            },
            "2026-02-03T00:00:00Z",
            "alice",
        ),
        (
            "release.delete",
            {**_where("alice/dev"), "project": "foo-bar", "version": "2.0"},
            "2026-02-04T00:00:00Z",
            "bob",
        ),
        _add("alice/dev", "Foo.Bar", "2.0", "foo_bar-2.0-py3-none-any.whl"),
        # A release the index does not hold: no mark (the applier does nothing either).
        (
            "release.delete",
            {**_where("alice/dev"), "project": "foo-bar", "version": "9.0"},
            "2026-02-05T00:00:00Z",
            "alice",
        ),
    ]
    marks = derive_marks(iter(entries))
    assert marks == {
        "alice/dev": {("foo-bar", "1.0"): ("Foo.Bar", "2026-02-02T10:00:00Z", "alice")}
    }


def test_project_delete_marks_every_release_and_index_delete_drops_marks() -> None:
    entries: list[Entry] = [
        _add("alice/dev", "pkg", "1.0", "pkg-1.0.tar.gz"),
        _add("alice/dev", "pkg", "1.1", "pkg-1.1.tar.gz"),
        _add("alice/dev", "pkg", "1.2", "pkg-1.2.tar.gz"),
        # The last file of 1.2 deleted: the release goes, marked.
        (
            "file.delete",
            {**_where("alice/dev"), "filename": "pkg-1.2.tar.gz"},
            "2026-02-01T00:00:00Z",
            "alice",
        ),
        _add("alice/dev", "pkg", "1.3", "pkg-1.3.tar.gz"),
        _add("alice/dev", "pkg", "1.3", "pkg-1.3-py3-none-any.whl"),
        # One of two files deleted: the release stays, no mark of its own.
        (
            "file.delete",
            {**_where("alice/dev"), "filename": "pkg-1.3.tar.gz"},
            "2026-02-01T00:00:00Z",
            "alice",
        ),
        (
            "project.delete",
            {**_where("alice/dev"), "project": "pkg"},
            "2026-02-02T00:00:00Z",
            "root",
        ),
        _add("alice/tmp", "pkg", "1.0", "pkg-1.0.tar.gz"),
        (
            "release.delete",
            {**_where("alice/tmp"), "project": "pkg", "version": "1.0"},
            "2026-02-03T00:00:00Z",
            "alice",
        ),
        ("index.delete", {"user": "alice", "name": "tmp"}, "2026-02-04T00:00:00Z", "alice"),
        _add("bob/dev", "pkg", "1.0", "pkg-1.0.tar.gz"),
        (
            "release.delete",
            {**_where("bob/dev"), "project": "pkg", "version": "1.0"},
            "2026-02-03T00:00:00Z",
            "bob",
        ),
        ("user.delete", {"name": "bob"}, "2026-02-05T00:00:00Z", "root"),
    ]
    marks = derive_marks(iter(entries))
    assert marks == {
        "alice/dev": {
            ("pkg", "1.0"): ("pkg", "2026-02-02T00:00:00Z", "root"),
            ("pkg", "1.1"): ("pkg", "2026-02-02T00:00:00Z", "root"),
            ("pkg", "1.2"): ("pkg", "2026-02-01T00:00:00Z", "alice"),
            ("pkg", "1.3"): ("pkg", "2026-02-02T00:00:00Z", "root"),
        }
    }


def test_a_push_adds_the_release_to_the_target_and_clears_its_mark() -> None:
    entries: list[Entry] = [
        _add("alice/dev", "pkg", "1.0", "pkg-1.0.tar.gz"),
        _add("alice/prod", "pkg", "1.0", "pkg-1.0.tar.gz"),
        (
            "release.delete",
            {**_where("alice/prod"), "project": "pkg", "version": "1.0"},
            "2026-02-03T00:00:00Z",
            "alice",
        ),
        (
            "release.push",
            {
                "user": "alice",
                "index": "prod",
                "source_user": "alice",
                "source_index": "dev",
                "project": "pkg",
                "version": "1.0",
                "files": [{"filename": "pkg-1.0.tar.gz", "sha256": "00"}],
            },
            "2026-02-04T00:00:00Z",
            "alice",
        ),
        (
            "release.delete",
            {**_where("alice/dev"), "project": "pkg", "version": "1.0"},
            "2026-02-05T00:00:00Z",
            "alice",
        ),
    ]
    marks = derive_marks(iter(entries))
    assert marks == {"alice/dev": {("pkg", "1.0"): ("pkg", "2026-02-05T00:00:00Z", "alice")}}
