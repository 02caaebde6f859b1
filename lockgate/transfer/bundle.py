"""The bundle format: an uncompressed tar (the blobs are archives already) with

- `manifest.json`: format, source server id, serial range (`from_serial`
  exclusive, `to_serial` inclusive) with the hashes at both ends, the sha256 of
  `changelog.jsonl`, and the size of every blob;
- `changelog.jsonl`: the entries, one JSON object per line, as `/+changelog` gives them;
- `blobs/<sha256>`: every blob the entries reference.

Nothing else may be in it: the importer refuses any other member.
"""

from __future__ import annotations

import re
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
CHANGELOG = "changelog.jsonl"
BLOB_MEMBER_RE = re.compile(r"^blobs/([0-9a-f]{64})\Z")


def referenced_blobs(kind: str, payload: dict[str, Any]) -> list[str]:
    """The blobs a changelog entry needs, by its kind."""
    keys: tuple[str, ...]
    if kind in ("file.add", "mirror.file"):
        keys = ("sha256", "core_metadata_sha256")
    elif kind in ("mirror.metadata", "mirror.projectlist"):
        keys = ("sha256",)
    else:
        return []
    return [payload[key] for key in keys if payload.get(key)]
