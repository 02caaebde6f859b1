"""Validation of user and index names (project names follow PEP 503, see packaging)."""

from __future__ import annotations

import re

from lockgate.errors import BadRequest

# Letters, digits, '.', '_' and '-', starting with a letter or digit: this keeps
# names clear of route prefixes ('+simple', '+f') and of path tricks ('..', '/').
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
PROJECT_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)


def check_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name) or ".." in name:
        raise BadRequest(
            f"invalid {kind} name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def is_valid_project_name(name: str) -> bool:
    return bool(PROJECT_NAME_RE.match(name))
