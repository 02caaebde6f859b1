"""The bundle format: an uncompressed tar (the blobs are archives already) with

- `manifest.json`: format, source server id, serial range (`from_serial`
  exclusive, `to_serial` inclusive) with the hashes at both ends, the sha256 of
  `changelog.jsonl`, and the size of every blob;
- `changelog.jsonl`: the entries, one JSON line each, in the changelog's one wire format
  (`changelog/codec.py`, as `/+changelog` gives them);
- `blobs/<sha256>`: every blob the entries reference.

Nothing else may be in it: the importer refuses any other member.
"""

from __future__ import annotations

import re

FORMAT = 1
MANIFEST = "manifest.json"
CHANGELOG = "changelog.jsonl"
BLOB_MEMBER_RE = re.compile(r"^blobs/([0-9a-f]{64})\Z")
