"""The searchable text read from a mirrored distribution's core metadata
(lockgate/mirror/metatext.py): the fields search needs, bounded, and nothing but an
empty text from bytes that are not core metadata (docs/reliability.md SR-8)."""

from __future__ import annotations

from lockgate.mirror.metatext import DESCRIPTION_CAP, SUMMARY_CAP, MetadataText, read_text


def test_fields_of_metadata_2_1_with_a_body_description() -> None:
    raw = (
        "Metadata-Version: 2.1\nName: nebula\nVersion: 1.0\nSummary: Cosmic dust\n"
        "Keywords: astronomy,dust\nClassifier: Topic :: Scientific/Engineering\n"
        "Classifier: Programming Language :: Python :: 3\n\n# nebula\n\nTracks dust. é\n"
    ).encode()
    text = read_text(raw)
    assert text.summary == "Cosmic dust" and text.keywords == "astronomy,dust"
    assert text.classifiers == (
        "Topic :: Scientific/Engineering",
        "Programming Language :: Python :: 3",
    )
    assert text.description == "# nebula\n\nTracks dust. é"


def test_a_folded_description_header_of_metadata_1_x() -> None:
    raw = b"Metadata-Version: 1.1\nName: old\nDescription: first line\n        |second line\n"
    assert read_text(raw).description == "first line\nsecond line"


def test_what_is_not_core_metadata_gives_an_empty_text() -> None:
    for raw in (b"", b"\xff\xfe\x00garbage", b"<html>not metadata</html>", b"\n\nbody only"):
        text = read_text(raw)
        assert text == MetadataText() and not text, raw


def test_fields_are_bounded_and_cleaned() -> None:
    raw = (
        f"Metadata-Version: 2.1\nName: big\nSummary: {'s' * 5000}\x00\n\n"
        f"{'d' * 300_000}\ue000mark\ue001"
    ).encode()
    text = read_text(raw)
    assert len(text.summary) == SUMMARY_CAP and "\x00" not in text.summary
    assert len(text.description) == DESCRIPTION_CAP
    marked = read_text("Metadata-Version: 2.1\nName: m\n\n\ue000x\ue001".encode())
    assert marked.description == "x"
