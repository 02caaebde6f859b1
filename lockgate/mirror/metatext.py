"""The searchable text of a mirrored distribution's core metadata (`METADATA`, or
the upstream's PEP 658 `.metadata`): summary, description, keywords, classifiers.

Read by the service when it has the metadata bytes in hand (in a thread: a
description can be long), and carried in the `mirror.file` / `mirror.metadata`
entry itself, as the docs domain carries its text: an applier has no blob store to
read from, and every node must end with the same state (INV-3)."""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import Parser
from email.policy import compat32

# Bounds per field: enough to find a README's words, so one huge description cannot
# make an entry (or the search index) large.
SUMMARY_CAP = 2048
DESCRIPTION_CAP = 100_000
KEYWORDS_CAP = 4096
CLASSIFIERS_CAP = 16_384
# Characters the search snippets use as markers, and NUL, which PostgreSQL refuses.
_FORBIDDEN = {0: None, 0xE000: None, 0xE001: None}


@dataclass(frozen=True)
class MetadataText:
    summary: str = ""
    description: str = ""
    keywords: str = ""
    classifiers: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.summary or self.description or self.keywords or self.classifiers)


def _clean(value: object, cap: int) -> str:
    if not isinstance(value, str):
        return ""
    return value.translate(_FORBIDDEN).strip()[:cap]


def read_text(metadata: bytes) -> MetadataText:
    """The text fields of core metadata (RFC 822 headers, the description as the body
    or, in older metadata versions, a `Description` header); empty when unreadable."""
    try:
        message = Parser(policy=compat32).parsestr(metadata.decode("utf-8", "replace"))
    except Exception:  # noqa: BLE001 - hostile bytes make an empty text, never an error
        return MetadataText()
    if message.get("Name") is None:  # not core metadata
        return MetadataText()
    body = message.get_payload()
    description = body if isinstance(body, str) and body.strip() else message.get("Description")
    if isinstance(description, str) and "\n        |" in description:
        # Metadata 1.x folded a multi-line Description header with "        |".
        description = description.replace("\n        |", "\n")
    classifiers: list[str] = []
    size = 0
    for value in message.get_all("Classifier") or []:
        cleaned = _clean(value, 255)
        size += len(cleaned)
        if cleaned and size <= CLASSIFIERS_CAP:
            classifiers.append(cleaned)
    return MetadataText(
        summary=_clean(message.get("Summary"), SUMMARY_CAP),
        description=_clean(description, DESCRIPTION_CAP),
        keywords=_clean(message.get("Keywords"), KEYWORDS_CAP),
        classifiers=tuple(classifiers),
    )
