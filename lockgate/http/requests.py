"""Small request/response helpers shared by the views."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lockgate.errors import BadRequest

MAX_JSON_BODY = 1024 * 1024


async def read_json_object(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise BadRequest("request body too large for a JSON document")
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def api_response(
    kind: str, result: Any, status: int = 200, serial: int | None = None
) -> web.Response:
    headers = {"X-Lockgate-Serial": str(serial)} if serial is not None else None
    return web.json_response({"type": kind, "result": result}, status=status, headers=headers)


def wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept
