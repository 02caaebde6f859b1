"""Content negotiation for the simple API (PEP 691), in one function."""

from __future__ import annotations

from lockgate.http.accept import ALIASES, parse_accept

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

# Ties at equal q go to the first entry: PyPI's order, so `*/*` yields text/html.
SERVED = (TEXT_HTML, HTML_V1, JSON_V1)


def _quality(served: str, ranges: list[tuple[str, float]]) -> float:
    """q of the most specific range matching `served` (exact > type/* > */*)."""
    main = served.split("/")[0]
    best_specificity, best_q = -1, 0.0
    for media, q in ranges:
        if media == served:
            specificity = 2
        elif media == f"{main}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def negotiate(accept: str | None, format_param: str | None = None) -> str | None:
    """The content type to send, or None when nothing acceptable (answer 406)."""
    if format_param:
        # `?format=application/vnd.pypi.simple.v1+json` written unencoded (as in the
        # spec's own example) arrives with the '+' decoded to a space: undo that.
        requested = format_param.strip().lower().replace(" ", "+")
        wanted = ALIASES.get(requested, requested)
        if wanted in SERVED:
            return wanted
    if accept is None or not accept.strip():
        return TEXT_HTML
    ranges = parse_accept(accept)
    best, best_q = None, 0.0
    for served in SERVED:
        q = _quality(served, ranges)
        if q > best_q:
            best, best_q = served, q
    return best
