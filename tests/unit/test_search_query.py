"""Search queries read as words, and snippets escaped with <mark> only
(docs/reliability.md SR-4)."""

from __future__ import annotations

import pytest

from lockgate.errors import BadRequest
from lockgate.search.index import clean, latest_version
from lockgate.search.services import MARK_CLOSE, MARK_OPEN, highlight, make_snippet, parse_query


def test_queries_are_words_and_a_name() -> None:
    query = parse_query('  "Zephyr_Tools*" OR NEAR(x ')
    assert query.words == ("zephyr", "tools", "or", "near", "x")
    assert query.name is None  # not a project name as typed
    named = parse_query("Zephyr_Tools")
    assert named.words == ("zephyr", "tools") and named.name == "zephyr-tools"
    assert parse_query("ünïcödé 日本語").words == ("ünïcödé", "日本語")
    assert len(parse_query(" ".join(f"w{i}" for i in range(40))).words) == 12


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "give something"),
        ("   ", "give something"),
        ("!!! ---", "no letters or digits"),
        ("a\x00b", "control character"),
        ("x" * 201, "at most 200"),
    ],
)
def test_unsearchable_queries_are_refused(raw: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_query(raw)


def test_snippets_mark_matches_and_escape_the_rest() -> None:
    text = "<script>x</script> The <b>Renderer</b> renders café & more."
    marked = make_snippet(text, ("render", "cafe"))
    assert marked is not None
    html = str(highlight(marked))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<mark>Renderer</mark>" in html and "<mark>renders</mark>" in html
    assert "<mark>café</mark> &amp; more." in html
    assert make_snippet(text, ("absent",)) is None
    # Markers from stored text cannot forge <mark>: they are removed when stored.
    assert clean(f"a{MARK_OPEN}b{MARK_CLOSE}\x00c") == "abc"
    assert str(highlight(f"{MARK_OPEN}unbalanced")) == "unbalanced"


def test_snippets_are_bounded_around_the_first_match() -> None:
    text = " ".join(f"w{i}" for i in range(1000)) + " needle " + "tail " * 100
    marked = make_snippet(text, ("needle",))
    assert marked is not None and marked.startswith("… ") and marked.endswith(" …")
    assert len(marked.split()) < 30


def test_latest_version_skips_yanked_and_prereleases() -> None:
    assert latest_version(["1.0", "2.0rc1", "1.1"]) == "1.1"
    assert latest_version(["1.0", "1.1"], yanked=["1.1"]) == "1.0"
    assert latest_version(["2.0rc1"]) == "2.0rc1"
    assert latest_version(["1.0"], yanked=["1.0"]) == "1.0"
    assert latest_version([]) is None


def _match(n: int, summary: str = "", keywords: str = "", name: str = "") -> dict[str, object]:
    name = name or f"p-{n:04d}"
    return {"id": n, "index_id": 1, "name": name, "display_name": name, "kind": "stage",
            "latest": "1.0", "summary": summary, "keywords": keywords}  # fmt: skip


def test_ranking_is_bounded_and_tiered() -> None:
    """SR-9: the first RANK_CANDIDATES matches are put in tiers (summary holding every
    word, then the rest) and scored (name, then summary, then keywords; a whole word
    above a prefix); matches beyond them follow in the database's order."""
    from lockgate.search.services import RANK_CANDIDATES, _rank

    rows = [
        _match(1, summary="nothing here", keywords="zephyr"),  # keywords only: the rest
        _match(2, summary="A zephyrine breeze"),  # summary, prefix
        _match(3, summary="The zephyr wind"),  # summary, whole word
        _match(4, summary="zephyr", name="zephyr-extra"),  # summary and name
        _match(5),  # matched by its description alone
        *(_match(10 + n) for n in range(RANK_CANDIDATES)),  # description-only filler
    ]
    rows.append(_match(9999, summary="zephyr zephyr", name="zephyr-late"))  # beyond the bound
    ranked = _rank([dict(row) for row in rows], ("zephyr",), taken={})
    order = [row["id"] for row in ranked]
    assert order[:3] == [4, 3, 2]  # tier 2, by score
    assert order[3] == 1 and all(row["tier"] == 3 for row in ranked[3:])
    assert order[-1] == 9999  # not ranked: after every candidate
    assert len(ranked) == len(rows)
    # Rows a name tier took are left out; accents and case fold as FTS5 folds them.
    assert [r["id"] for r in _rank([dict(_match(7, summary="ZÉPHYR"))], ("zephyr",), {})] == [7]
    assert _rank([dict(_match(7, summary="ZÉPHYR"))], ("zephyr",), {})[0]["tier"] == 2
    assert _rank([dict(rows[0])], ("zephyr",), {1: {}}) == []
