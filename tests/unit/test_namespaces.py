"""Namespace prefixes (PEP 752 semantics, docs/reliability.md DC-6): how a prefix is
read and which project names it covers."""

from __future__ import annotations

import pytest

from lockgate.errors import BadRequest
from lockgate.namespaces.services import covers, parse_prefix


@pytest.mark.parametrize("given", ["acme-", "acme_", "Acme.", "acme", "ACME--", "acme._-"])
def test_spellings_of_one_prefix_are_one_namespace(given: str) -> None:
    assert parse_prefix(given) == ("acme", given)


def test_a_prefix_is_normalized_inside_too() -> None:
    assert parse_prefix("Google.Cloud_") == ("google-cloud", "Google.Cloud_")


@pytest.mark.parametrize(
    "given", ["", "-", "._", "-acme", "acme*", "ac me", "acme/", "äcme-", "a/b-", "a" * 201]
)
def test_invalid_prefixes_are_refused(given: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_prefix(given)
    assert refused.value.status == 400
    assert ("required" if not given else "invalid namespace prefix") in refused.value.message


@pytest.mark.parametrize(
    ("project", "covered"),
    [
        ("acme-utils", True),
        ("Acme_Utils", True),
        ("ACME.utils.extra", True),
        ("acme", True),  # PEP 752: the namespace's own name
        ("acme--x", True),
        ("acmeutils", False),
        ("acm", False),
        ("xacme-utils", False),
        ("my-acme-utils", False),
    ],
)
def test_a_namespace_covers_its_name_and_the_names_after_a_separator(
    project: str, covered: bool
) -> None:
    assert covers("acme", project) is covered
