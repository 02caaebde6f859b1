"""What a distribution's file name says: its project, version and package type.

Wheels and sdists are parsed with `packaging`; legacy names (eggs, odd sdists)
that an upstream may still list are read leniently, since pip parses them itself.
"""

from __future__ import annotations

import re

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion


def version_from_filename(filename: str) -> str:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        stem = filename.rsplit("/", 1)[-1]
        parts = stem.split("-")
        return parts[1] if len(parts) > 1 else ""


def project_from_filename(filename: str) -> str:
    """The normalized project name a file belongs to."""
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        # Legacy names (eggs, exe, odd sdists): the part before "-<digit>".
        return canonicalize_name(re.split(r"-(?=\d)", filename, maxsplit=1)[0])


def packagetype_of(filename: str) -> tuple[str, str]:
    """(packagetype, python_version) as the JSON API reports them."""
    if filename.endswith(".whl"):
        try:
            tags = parse_wheel_filename(filename)[3]
            return "bdist_wheel", ".".join(sorted({t.interpreter for t in tags}))
        except (InvalidWheelFilename, InvalidVersion):
            return "bdist_wheel", ""
    return "sdist", "source"
