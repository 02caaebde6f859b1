"""URL helpers every layer uses: credentials in upstream URLs (stripped, masked,
kept when sent back masked) and the paths of stored files.

File URLs are `/{user}/{index}/+f/{key}/{filename}`: the key is the first 16
hex digits of the file's sha256, or, for a mirrored file the upstream gave no
hash for, a key derived from its upstream URL.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

REDACTED = "****"


def _host_part(netloc: str) -> str:
    """host[:port] of a netloc, without userinfo (IPv6 brackets kept)."""
    return netloc.rpartition("@")[2]


def strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(
        (parts.scheme, _host_part(parts.netloc), parts.path, parts.query, parts.fragment)
    )


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{REDACTED}@{_host_part(parts.netloc)}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def keep_secret(new_url: str, old_url: str) -> str:
    """A URL sent back as the API showed it (password masked) keeps the stored password."""
    new, old = urlsplit(new_url), urlsplit(old_url)
    if new.password != REDACTED or old.password is None:
        return new_url
    if (new.username, _host_part(new.netloc)) != (old.username, _host_part(old.netloc)):
        return new_url
    return urlunsplit((new.scheme, old.netloc, new.path, new.query, new.fragment))


def url_key(url: str) -> str:
    """`+f` path key for a mirrored file the upstream gave no sha256 for."""
    return "u" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:15]


def file_key(sha256: str | None, upstream_url: str | None = None) -> str:
    """The `+f/{key}/` segment of a file's URL."""
    if sha256:
        return sha256[:16]
    if upstream_url is None:
        raise ValueError("a file without a sha256 needs its upstream URL for a key")
    return url_key(upstream_url)


def file_path(index_path: str, key: str, filename: str) -> str:
    """Server-absolute path of a file (files are served by the index holding them)."""
    return f"/{index_path}/+f/{key}/{filename}"
