"""Small request/response helpers shared by the views."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lockgate.errors import BadRequest, NotFound
from lockgate.names import is_valid_project_name

MAX_JSON_BODY = 1024 * 1024


def project_in_path(request: web.Request) -> str:
    """The `{project}` of the route as written; 404 when it cannot be a project name
    (nothing by that name can exist, so nothing is looked up)."""
    project = request.match_info["project"]
    if not is_valid_project_name(project):
        raise NotFound(f"{project!r} is not a valid project name")
    return project


async def read_json(request: web.Request) -> Any:
    """The JSON body (an empty body is `{}`); 400 when it is not JSON."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise BadRequest("request body too large for a JSON document")
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


async def read_json_object(request: web.Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def json_body(
    data: Any, status: int = 200, reason: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with `Content-Type: application/json` exactly: JSON is UTF-8 by
    definition, and devpi-client only reads an error's message from that type."""
    return web.Response(
        body=json.dumps(data).encode("utf-8"),
        status=status,
        reason=reason,
        content_type="application/json",
        headers=headers,
    )


def api_response(
    kind: str,
    result: Any,
    status: int = 200,
    serial: int | None = None,
    message: str | None = None,
) -> web.Response:
    headers = {"X-Lockgate-Serial": str(serial)} if serial is not None else None
    body: dict[str, Any] = {"type": kind, "result": result}
    if message is not None:
        body["message"] = message
    return json_body(body, status=status, headers=headers)


def wants_devpi_json(request: web.Request) -> bool:
    """A client asking for devpi's JSON API (devpi-client sends `Accept:
    application/json`) rather than a simple page (PEP 691's JSON type) or HTML."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "vnd.pypi.simple" not in accept


def wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


def is_devpi_client(request: web.Request) -> bool:
    """devpi-client (its User-Agent is `devpi-client/VERSION …`)."""
    return request.headers.get("User-Agent", "").startswith("devpi-client/")
