"""A hook's configuration, by kind, validated once when it is saved.

- `generic`: a POST of the event as JSON, signed `X-Lockgate-Signature: sha256=<hex
  HMAC-SHA256 of the raw body with the hook's secret>` (GitHub's and Gitea's shape);
- `jenkins`: Jenkins' remote build trigger (`…/job/NAME/buildWithParameters`):
  `token=<trigger_token>` in the query, HTTP Basic with a user's API token, the
  values as form parameters;
- `gitlab`: a pipeline trigger (`…/api/v4/projects/ID/trigger/pipeline`): `token`,
  `ref` and the values as `variables[…]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lockgate.errors import BadRequest

KINDS = ("generic", "jenkins", "gitlab")
EVENTS = ("upload", "push", "yank", "delete", "test-result", "promote")
MASK = "****"
SECRET_KEYS = ("secret", "trigger_token", "api_token")
MAX_SECRET = 512
KIND_KEYS = {
    "generic": {"url", "secret"},
    "jenkins": {"url", "trigger_token", "user", "api_token"},
    "gitlab": {"url", "trigger_token", "ref"},
}


@dataclass(frozen=True)
class HookConfig:
    kind: str
    settings: dict[str, Any]  # url and the kind's keys, secrets included
    events: tuple[str, ...]

    @property
    def url(self) -> str:
        return str(self.settings["url"])

    def shown(self) -> dict[str, Any]:
        """As the API shows it: secrets masked, never echoed back."""
        settings = {
            key: (MASK if key in SECRET_KEYS and value else value)
            for key, value in self.settings.items()
        }
        return {"kind": self.kind, **settings, "events": list(self.events)}


def _text(data: dict[str, Any], key: str, required: bool, limit: int = MAX_SECRET) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"a {data.get('kind')} hook needs {key!r}")
        return None
    if not isinstance(value, str) or len(value) > limit or "\n" in value:
        raise BadRequest(f"{key!r} must be a single-line string of at most {limit} characters")
    return value


def parse_hook(data: dict[str, Any], current: HookConfig | None = None) -> HookConfig:
    """Validate a hook body. A secret sent back masked (as the API shows it) keeps
    the stored one, so a read-modify-write never wipes a secret."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise BadRequest(f"'kind' must be one of {', '.join(KINDS)}")
    unknown = set(data) - KIND_KEYS[kind] - {"kind", "events"}
    if unknown:
        raise BadRequest(f"unknown key(s) for a {kind} hook: {', '.join(sorted(unknown))}")
    if current is not None and current.kind == kind:
        data = {
            key: (current.settings.get(key) if value == MASK else value)
            for key, value in data.items()
        }
    url = _text(data, "url", True, 2000)
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"'url' must be an http(s) URL, not {url!r}")
    if parts.username or parts.password:
        raise BadRequest("put credentials in the hook's own keys, not in 'url'")
    settings: dict[str, Any] = {"url": url}
    if kind == "generic":
        settings["secret"] = _text(data, "secret", True)
    elif kind == "jenkins":
        settings["trigger_token"] = _text(data, "trigger_token", True)
        user, api_token = _text(data, "user", False, 128), _text(data, "api_token", False)
        if (user is None) != (api_token is None):
            raise BadRequest("a jenkins hook needs both 'user' and 'api_token', or neither")
        settings["user"], settings["api_token"] = user, api_token
    else:
        settings["trigger_token"] = _text(data, "trigger_token", True)
        settings["ref"] = _text(data, "ref", False, 255) or "main"
    events = data.get("events", list(EVENTS))
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise BadRequest(f"'events' must be a non-empty list of: {', '.join(EVENTS)}")
    wrong = sorted(set(events) - set(EVENTS))
    if wrong:
        raise BadRequest(f"unknown event(s) {', '.join(wrong)}: use any of {', '.join(EVENTS)}")
    return HookConfig(kind, settings, tuple(e for e in EVENTS if e in events))
