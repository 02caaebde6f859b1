"""Index configuration, typed: stage and mirror settings as frozen objects, their
defaults in one place, validated once when an index is created or changed.

The stored form (the JSON the `index.put` entry carries and the API shows) keeps
devpi's key names; `to_stored()` writes it and `from_stored()` reads it back.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from lockgate.errors import BadRequest
from lockgate.names import NAME_RE as _USER_NAME_RE
from lockgate.names import is_valid_project_name
from lockgate.urls import redact_url

PYPI_SIMPLE_URL = "https://pypi.org/simple/"
DEFAULT_MIRROR_CACHE_EXPIRY = 1800
DEFAULT_MIRROR_TIMEOUT = 10.0
DEFAULT_MIRROR_OFFLINE_RETRY = 10.0
MAX_SECONDS = 86400
MAX_CA_BUNDLE_BYTES = 16 * 1024 * 1024
ANONYMOUS = ":ANONYMOUS:"
AUTHENTICATED = ":AUTHENTICATED:"
SPECIAL_READERS = (ANONYMOUS, AUTHENTICATED)
# A test environment's name (a tox env, a CI job): what `push_requires` lists and
# what a posted test result is filed under.
ENVIRONMENT_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")
ENVIRONMENT_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"

STAGE_KEYS = {
    "type",
    "bases",
    "volatile",
    "acl_upload",
    "acl_read",
    "mirror_whitelist",
    "strict_filenames",
    "title",
    "description",
    "push_requires",
    "promote_to",
}
MIRROR_KEYS = {
    "type",
    "mirror_url",
    "mirror_cache_expiry",
    "mirror_no_project_list",
    "mirror_timeout",
    "mirror_offline_retry",
    "mirror_ca_bundle",
    "acl_read",
    "volatile",
    "title",
    "description",
    "bases",
}
# Settings that decide where the server sends requests: root only, so a user
# cannot turn lockgate into a proxy towards internal hosts (docs/reliability.md SS-4).
UPSTREAM_KEYS = {"mirror_url", "mirror_ca_bundle"}


@dataclass(frozen=True)
class StageConfig:
    """An index that holds uploads and inherits its bases."""

    acl_upload: tuple[str, ...]  # who may upload; the owner by default
    acl_read: tuple[str, ...] = (ANONYMOUS,)  # who may read, besides its owner and root
    bases: tuple[str, ...] = ()
    volatile: bool = True  # false: releases can never be overwritten or deleted
    mirror_whitelist: tuple[str, ...] = ()  # normalized names, or "*"
    # PyPI's rule: file names must spell the project in today's normalized form.
    strict_filenames: bool = False
    title: str = ""
    description: str = ""
    # Test environments a release needs a passing result in before it may be
    # pushed here (docs: README "Release workflow").
    push_requires: tuple[str, ...] = ()
    # A stage index this one pushes a release to once its results meet that
    # index's push_requires (None: no automatic promotion).
    promote_to: str | None = None
    type: str = dataclasses.field(default="stage", init=False)

    def whitelists(self, project: str) -> bool:
        return "*" in self.mirror_whitelist or canonicalize_name(project) in self.mirror_whitelist

    def names_in_whitelist(self, project: str) -> bool:
        """Listed by name: what a reserved namespace's names need ('*' is not enough)."""
        return canonicalize_name(project) in self.mirror_whitelist

    def may_upload(self, actor: str) -> bool:
        return actor in self.acl_upload or ANONYMOUS in self.acl_upload


@dataclass(frozen=True)
class MirrorConfig:
    """An index that caches an upstream simple index."""

    mirror_url: str = PYPI_SIMPLE_URL
    mirror_cache_expiry: int = DEFAULT_MIRROR_CACHE_EXPIRY  # seconds a page stays fresh
    mirror_timeout: float = DEFAULT_MIRROR_TIMEOUT
    mirror_offline_retry: float = DEFAULT_MIRROR_OFFLINE_RETRY
    mirror_ca_bundle: str = ""  # extra CA certificates (a PEM file on the server)
    mirror_no_project_list: bool = False
    acl_read: tuple[str, ...] = (ANONYMOUS,)
    volatile: bool = False
    title: str = ""
    description: str = ""
    type: str = dataclasses.field(default="mirror", init=False)
    bases: tuple[str, ...] = dataclasses.field(default=(), init=False)

    @property
    def timeout(self) -> float:
        return max(0.1, self.mirror_timeout)


IndexConfig = StageConfig | MirrorConfig


def to_stored(config: IndexConfig) -> dict[str, Any]:
    """The JSON form kept in the changelog and the indexes table."""
    stored = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in stored.items()
    }


def public_form(config: IndexConfig) -> dict[str, Any]:
    """The configuration as the API shows it: upstream credentials masked."""
    shown = to_stored(config)
    if isinstance(config, MirrorConfig) and config.mirror_url:
        shown["mirror_url"] = redact_url(config.mirror_url)
    return shown


def from_stored(index_type: str, data: dict[str, Any], owner: str) -> IndexConfig:
    """Read a stored configuration (already validated when it was written); keys
    added to the format later take their defaults."""
    if index_type == "mirror":
        names = {f.name for f in dataclasses.fields(MirrorConfig) if f.init}
        values = {key: value for key, value in data.items() if key in names}
        if "acl_read" in values:
            values["acl_read"] = tuple(values["acl_read"])
        return MirrorConfig(**values)
    return StageConfig(
        acl_upload=tuple(data.get("acl_upload", [owner])),
        acl_read=tuple(data.get("acl_read", [ANONYMOUS])),
        bases=tuple(data.get("bases", [])),
        volatile=bool(data.get("volatile", True)),
        mirror_whitelist=tuple(data.get("mirror_whitelist", [])),
        strict_filenames=bool(data.get("strict_filenames", False)),
        title=str(data.get("title") or ""),
        description=str(data.get("description") or ""),
        push_requires=tuple(data.get("push_requires") or ()),
        promote_to=data.get("promote_to") or None,
    )


def check_environment(name: Any, what: str = "environment") -> str:
    """A valid test environment name, or 400 saying what one is."""
    if not isinstance(name, str) or not ENVIRONMENT_RE.match(name):
        raise BadRequest(f"invalid {what} name {name!r}: use {ENVIRONMENT_RULE}")
    return name


def _promote_to(owner: str, name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("'promote_to' must be an index written 'user/index'")
    parts = value.strip().split("/")
    if len(parts) != 2 or not all(_USER_NAME_RE.match(part) for part in parts):
        raise BadRequest(f"'promote_to' {value!r} must be an index written 'user/index'")
    if parts == [owner, name]:
        raise BadRequest("an index cannot promote to itself")
    return "/".join(parts)


def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise BadRequest(f"{key!r} must be a list of strings")


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise BadRequest(f"{key!r} must be true or false")


def _as_seconds(value: Any, key: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{key!r} must be a number of seconds") from None
    if seconds < 0 or seconds > MAX_SECONDS:
        raise BadRequest(f"{key!r} must be between 0 and {MAX_SECONDS} seconds")
    return seconds


def _check_url(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest("'mirror_url' must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"'mirror_url' must be an http(s) URL, not {value!r}")
    return value if value.endswith("/") else value + "/"


def check_ca_bundle(path: str) -> None:
    """Refuse a CA bundle the upstream client could not load (same call as it makes).

    Reads a file: call it in a thread, before any write transaction."""
    problem = None
    if not os.path.isabs(path):
        problem = "must be an absolute path"
    elif not os.path.isfile(path):
        problem = "is not an existing regular file"
    elif os.path.getsize(path) > MAX_CA_BUNDLE_BYTES:
        problem = f"is larger than {MAX_CA_BUNDLE_BYTES} bytes"
    else:
        try:
            ssl.create_default_context().load_verify_locations(cafile=path)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            problem = f"is not a readable PEM file of CA certificates ({exc})"
    if problem:
        raise BadRequest(f"'mirror_ca_bundle' {path!r} {problem}")


def ca_bundle_of(data: dict[str, Any]) -> str:
    bundle = data.get("mirror_ca_bundle") or ""
    if not isinstance(bundle, str):
        raise BadRequest("'mirror_ca_bundle' must be the path of a PEM file on the server")
    return bundle


def _acl_read(data: dict[str, Any]) -> tuple[str, ...]:
    """Who may read: :ANONYMOUS: (everyone, the default), :AUTHENTICATED: or user names."""
    readers = _as_list(data.get("acl_read", [ANONYMOUS]), "acl_read")
    if not readers:
        raise BadRequest(
            "'acl_read' cannot be empty: list user names, :AUTHENTICATED: or :ANONYMOUS: "
            "(the owner and root may always read)"
        )
    for reader in readers:
        if reader.startswith(":") and reader not in SPECIAL_READERS:
            raise BadRequest(
                f"unknown special reader {reader!r} in 'acl_read': use "
                f"{' or '.join(SPECIAL_READERS)}, or user names"
            )
        if not reader.startswith(":") and not _USER_NAME_RE.match(reader):
            raise BadRequest(f"invalid user name {reader!r} in 'acl_read'")
    return tuple(dict.fromkeys(readers))


def _mirror_config(data: dict[str, Any], common: dict[str, str]) -> MirrorConfig:
    if _as_list(data.get("bases"), "bases"):
        raise BadRequest("a mirror index cannot have bases")
    expiry = data.get("mirror_cache_expiry", DEFAULT_MIRROR_CACHE_EXPIRY)
    try:
        cache_expiry = int(expiry)
    except (TypeError, ValueError):
        raise BadRequest("'mirror_cache_expiry' must be a number of seconds") from None
    if cache_expiry < 0:
        raise BadRequest("'mirror_cache_expiry' must not be negative")
    return MirrorConfig(
        mirror_url=_check_url(data.get("mirror_url", PYPI_SIMPLE_URL)),
        mirror_cache_expiry=cache_expiry,
        mirror_timeout=_as_seconds(
            data.get("mirror_timeout", DEFAULT_MIRROR_TIMEOUT), "mirror_timeout"
        ),
        mirror_offline_retry=_as_seconds(
            data.get("mirror_offline_retry", DEFAULT_MIRROR_OFFLINE_RETRY), "mirror_offline_retry"
        ),
        mirror_ca_bundle=ca_bundle_of(data),
        mirror_no_project_list=_as_bool(
            data.get("mirror_no_project_list", False), "mirror_no_project_list"
        ),
        acl_read=_acl_read(data),
        volatile=_as_bool(data.get("volatile", False), "volatile"),
        **common,
    )


def _stage_config(
    owner: str, name: str, data: dict[str, Any], common: dict[str, str]
) -> StageConfig:
    bases = _as_list(data.get("bases"), "bases")
    for base in bases:
        parts = base.split("/")
        if len(parts) != 2:
            raise BadRequest(f"base {base!r} must be written 'user/index'")
        if parts == [owner, name]:
            raise BadRequest("an index cannot be its own base")
    if len(set(bases)) != len(bases):
        raise BadRequest("'bases' lists an index twice")
    whitelist = _as_list(data.get("mirror_whitelist"), "mirror_whitelist")
    for project in whitelist:
        if project != "*" and not is_valid_project_name(project):
            raise BadRequest(f"invalid project name {project!r} in 'mirror_whitelist'")
    required = _as_list(data.get("push_requires"), "push_requires")
    for environment in required:
        check_environment(environment, "environment in 'push_requires'")
    return StageConfig(
        acl_upload=tuple(_as_list(data.get("acl_upload", [owner]), "acl_upload")),
        acl_read=_acl_read(data),
        bases=tuple(bases),
        volatile=_as_bool(data.get("volatile", True), "volatile"),
        mirror_whitelist=tuple(
            sorted({p if p == "*" else canonicalize_name(p) for p in whitelist})
        ),
        strict_filenames=_as_bool(data.get("strict_filenames", False), "strict_filenames"),
        push_requires=tuple(dict.fromkeys(required)),
        promote_to=_promote_to(owner, name, data.get("promote_to")),
        **common,
    )


def parse_config(owner: str, name: str, data: dict[str, Any]) -> IndexConfig:
    """Validate a full configuration body and fill in defaults.

    Checks that need the database (bases exist, no cycle) or the file system (the CA
    bundle loads) are the services' part."""
    index_type = data.get("type", "stage")
    if index_type not in ("stage", "mirror"):
        raise BadRequest(f"unknown index type {index_type!r}: use 'stage' or 'mirror'")
    allowed = STAGE_KEYS if index_type == "stage" else MIRROR_KEYS
    unknown = set(data) - allowed
    if unknown:
        raise BadRequest(f"unknown key(s) for a {index_type} index: {', '.join(sorted(unknown))}")
    common = {
        "title": str(data.get("title") or ""),
        "description": str(data.get("description") or ""),
    }
    if index_type == "mirror":
        return _mirror_config(data, common)
    return _stage_config(owner, name, data, common)


@dataclass(frozen=True)
class Readers:
    """Who may read an index: its owner, root, and what `acl_read` says."""

    owner: str
    acl: tuple[str, ...]

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS in self.acl

    def admits(self, user: str | None, root: str) -> bool:
        if self.anonymous:
            return True
        if user is None:
            return False
        return user in (self.owner, root) or AUTHENTICATED in self.acl or user in self.acl

    def within(self, other: Readers, root: str) -> bool:
        """Whether everyone who may read this index may read `other` too."""
        if other.anonymous:
            return True
        if self.anonymous:
            return False
        if AUTHENTICATED in other.acl:
            return True
        if AUTHENTICATED in self.acl:
            return False
        return all(other.admits(user, root) for user in (self.owner, *self.acl))


# devpi's key-value operations (`devpi index NAME bases+=team/dev acl_upload-=bob
# mirror_whitelist-=`, sent as a JSON list in a PATCH): set, add to a list,
# remove from a list, drop back to the default.
LIST_KEYS = {"bases", "acl_upload", "acl_read", "mirror_whitelist", "push_requires"}
KEYVALUE_HELP = "'key=value', 'key+=value', 'key-=value' or 'key-=' (back to the default)"


@dataclass(frozen=True)
class KeyValueOp:
    op: str  # "set", "add", "del" or "drop"
    key: str
    value: str


def parse_keyvalue_ops(items: list[Any]) -> list[KeyValueOp]:
    """devpi-client's operations, checked for form (the keys are checked with the
    rest of the configuration)."""
    if not items:
        raise BadRequest(f"no changes: send a list of {KEYVALUE_HELP}")
    ops = []
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise BadRequest(f"invalid index change {item!r}: use {KEYVALUE_HELP}")
        key, _, value = item.partition("=")
        if key.endswith("+"):
            op, key = "add", key[:-1]
        elif key.endswith("-"):
            op, key = ("drop" if value == "" else "del"), key[:-1]
        else:
            op = "set"
        if not key:
            raise BadRequest(f"invalid index change {item!r}: use {KEYVALUE_HELP}")
        if op in ("add", "del") and key not in LIST_KEYS:
            raise BadRequest(
                f"'{key}' is not a list setting: set it with {key}=value "
                f"(lists: {', '.join(sorted(LIST_KEYS))})"
            )
        ops.append(KeyValueOp(op, key, value.strip()))
    return ops


def apply_keyvalue_ops(stored: dict[str, Any], ops: list[KeyValueOp]) -> dict[str, Any]:
    """The configuration body after the operations (validated later as a whole)."""
    config = dict(stored)
    for item in ops:
        if item.op == "set":
            config[item.key] = item.value
        elif item.op == "drop":
            config.pop(item.key, None)
        else:
            values = _as_list(config.get(item.key), item.key)
            if item.op == "add":
                if item.value not in values:
                    values.append(item.value)
            elif item.value in values:
                values.remove(item.value)
            else:
                raise BadRequest(f"The '{item.key}' setting doesn't have value '{item.value}'")
            config[item.key] = values
    return config
