"""Settings: one frozen object, parsed once from flags, `LOCKGATE_*` variables and
the server directory's `lockgate.toml`, in that order of precedence."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from aiohttp import web

CONFIG_FILENAME = "lockgate.toml"
SQLITE_FILENAME = "lockgate.sqlite"
DEFAULT_PORT = 3141
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# Documentation zips (docs/): the upload, what it may unpack to, how many members.
DEFAULT_DOCS_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
DEFAULT_DOCS_MAX_UNPACKED_BYTES = 200 * 1024 * 1024
DEFAULT_DOCS_MAX_MEMBERS = 20_000


PRIMARY_PASSWORD_REFUSED = (
    "a replica no longer follows its primary with root's password: on the primary, as "
    "root, run `lockgate token create --name replica --scope replicate` and give the "
    "replica that token with --primary-token or LOCKGATE_PRIMARY_TOKEN (remove "
    "--primary-password / LOCKGATE_PRIMARY_PASSWORD / primary_password)"
)


def parse_allow(value: Any) -> tuple[str, ...]:
    """`upstream_allow` from TOML (a list) or a flag/variable (comma-separated)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(part).strip() for part in value if str(part).strip())


def parse_docs_url(value: Any) -> str | None:
    """`docs_url`: an origin (scheme, host, optional port), nothing after it, since
    documentation paths are this server's own paths under that origin."""
    if value in (None, ""):
        return None
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"docs_url must be an http(s) origin such as https://docs.example, not {value!r}"
        )
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"docs_url must be an origin only (scheme://host[:port]), without a path: {value!r}"
        )
    return text


def default_serverdir() -> Path:
    return Path(platformdirs.user_data_dir("lockgate")) / "server"


def default_db_url(serverdir: Path) -> str:
    return f"sqlite:///{serverdir.resolve() / SQLITE_FILENAME}"


def read_config_file(serverdir: Path) -> dict[str, Any]:
    path = serverdir / CONFIG_FILENAME
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    server = data.get("server", {})
    return server if isinstance(server, dict) else {}


@dataclass(frozen=True)
class Settings:
    serverdir: Path
    db_url: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allow_self_registration: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    log_format: str = "auto"  # auto | json | console
    # The URL clients reach this server by, when it differs from what requests
    # say (TLS-terminating proxy): absolute URLs in the JSON API use it.
    public_url: str | None = None
    # Private/loopback upstream hosts or networks the operator allows (SS-1).
    upstream_allow: tuple[str, ...] = ()
    # Private/loopback webhook targets (a Jenkins on the LAN) the operator allows.
    hook_allow: tuple[str, ...] = ()
    # Replica role: the primary (or upstream replica) this server follows.
    primary_url: str | None = None
    # A token of the primary's root with the `replicate` scope (never written to a file).
    primary_token: str | None = None
    # Set when the retired primary_password setting is still given (serve refuses it).
    primary_password_given: bool = False
    # Where browsers are sent for documentation pages (an origin such as
    # https://docs.pypi.corp reaching this same server), so that untrusted doc HTML
    # never runs on lockgate's own origin; None serves docs here (sandboxed anyway).
    docs_url: str | None = None
    docs_max_upload_bytes: int = DEFAULT_DOCS_MAX_UPLOAD_BYTES
    docs_max_unpacked_bytes: int = DEFAULT_DOCS_MAX_UNPACKED_BYTES
    docs_max_members: int = DEFAULT_DOCS_MAX_MEMBERS

    @property
    def is_replica(self) -> bool:
        return bool(self.primary_url)

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def blob_dir(self) -> Path:
        return self.serverdir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.serverdir / "tmp"


def _env(name: str) -> str | None:
    value = os.environ.get(f"LOCKGATE_{name.upper()}")
    return value if value not in (None, "") else None


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def load_settings(serverdir: Path, **flags: Any) -> Settings:
    """Merge flags (None = not given), environment and the config file."""
    file_values = read_config_file(serverdir)

    def pick(name: str, default: Any) -> Any:
        if flags.get(name) is not None:
            return flags[name]
        env = _env(name)
        if env is not None:
            return env
        if name in file_values:
            return file_values[name]
        return default

    db_url = pick("db", None) or default_db_url(serverdir)
    return Settings(
        serverdir=serverdir,
        db_url=str(db_url),
        host=str(pick("host", DEFAULT_HOST)),
        port=int(pick("port", DEFAULT_PORT)),
        allow_self_registration=_as_bool(pick("allow_self_registration", False)),
        max_upload_bytes=int(pick("max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES)),
        log_format=str(pick("log_format", "auto")),
        public_url=(str(pick("public_url", "")).rstrip("/") or None),
        upstream_allow=parse_allow(pick("upstream_allow", ())),
        hook_allow=parse_allow(pick("hook_allow", ())),
        primary_url=(str(pick("primary_url", "")).rstrip("/") or None),
        primary_token=(str(pick("primary_token", "")) or None),
        primary_password_given=pick("primary_password", None) is not None,
        docs_url=parse_docs_url(pick("docs_url", None)),
        docs_max_upload_bytes=int(pick("docs_max_upload_bytes", DEFAULT_DOCS_MAX_UPLOAD_BYTES)),
        docs_max_unpacked_bytes=int(
            pick("docs_max_unpacked_bytes", DEFAULT_DOCS_MAX_UNPACKED_BYTES)
        ),
        docs_max_members=int(pick("docs_max_members", DEFAULT_DOCS_MAX_MEMBERS)),
    )


SETTINGS = web.AppKey("settings", Settings)
