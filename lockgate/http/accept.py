"""Parsing an Accept header into (media range, q) pairs, for every negotiation."""

from __future__ import annotations

# PEP 691's `latest` names stand for the newest version lockgate serves.
ALIASES = {
    "application/vnd.pypi.simple.latest+json": "application/vnd.pypi.simple.v1+json",
    "application/vnd.pypi.simple.latest+html": "application/vnd.pypi.simple.v1+html",
}


def parse_accept(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value.strip())))
                except ValueError:
                    q = 0.0
        ranges.append((ALIASES.get(media, media), q))
    return ranges
