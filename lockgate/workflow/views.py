"""Handlers of the release workflow: posting test results for a release file,
pushing a release to another index, and serving test logs and (for devpi-client's
`devpi list -t/-f`) each result in devpi's toxresult shape."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockgate.accounts.auth import require_login
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest, LockgateError, NotFound
from lockgate.http.files import blob_response
from lockgate.http.requests import api_response, read_json_object
from lockgate.indexes.access import require_read
from lockgate.names import NAME_RE, is_valid_project_name
from lockgate.storage.blobs import BLOBS
from lockgate.workflow.results import MAX_BODY_BYTES, parse_results
from lockgate.workflow.services import (
    log_of_index,
    post_results,
    push_release,
    results_of_own_file,
)
from lockgate.workflow.toxresults import toxresult

SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
# What devpi-client's push sends besides name, version and targetindex.
DEVPI_PUSH_OPTIONS = {"no_docs", "only_docs", "register_project"}


class PayloadTooLarge(LockgateError):
    status = 413


async def _read_result_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"test result too large: at most {MAX_BODY_BYTES // (1024 * 1024)} MiB per request"
        )
    raw = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"test result too large: at most {MAX_BODY_BYTES // (1024 * 1024)} MiB per request"
            )
    try:
        return json.loads(bytes(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the test result is not valid JSON: {exc}") from None


async def post_result_view(request: web.Request) -> web.Response:
    """`POST /{user}/{index}/+f/{hash}/{filename}`: test results for that file, in
    lockgate's shape or as a toxresult (what `devpi test` posts). A token needs
    the `test-results` scope; the user must be allowed to upload to the index."""
    user, name = request.match_info["user"], request.match_info["index"]
    key, filename = request.match_info["hash"], request.match_info["filename"]
    specs = parse_results(await _read_result_body(request))
    principal = await require_login(request)
    principal.require("test-results", f"{user}/{name}")
    posted = await post_results(
        request.app[DATABASE],
        request.app[BLOBS],
        principal.actor,
        user,
        name,
        key,
        filename,
        specs,
    )
    body = {"filename": posted.filename, "results": posted.results, "promoted": posted.promoted}
    return api_response("testresults", body, serial=posted.serial)


def _push_request(data: dict[str, Any]) -> tuple[str, str, str]:
    if "posturl" in data:
        raise BadRequest(
            "pushing to an external repository (posturl) is not supported: "
            "push to a lockgate index with 'targetindex'"
        )
    unknown = set(data) - {"name", "version", "targetindex"} - DEVPI_PUSH_OPTIONS
    if unknown:
        raise BadRequest(f"unknown key(s) in the push request: {', '.join(sorted(unknown))}")
    project, version, target = data.get("name"), data.get("version"), data.get("targetindex")
    if not isinstance(project, str) or not is_valid_project_name(project):
        raise BadRequest("'name' must be the project's name")
    if not isinstance(version, str):
        raise BadRequest("'version' must be the release's version")
    try:
        version = str(Version(version))
    except InvalidVersion:
        raise BadRequest(f"{version!r} is not a valid version") from None
    parts = target.strip("/").split("/") if isinstance(target, str) else []
    if len(parts) != 2 or not all(NAME_RE.match(part) for part in parts):
        raise BadRequest("'targetindex' must be an index written 'user/index'")
    return canonicalize_name(project), version, "/".join(parts)


async def push_view(request: web.Request) -> web.Response:
    """`POST /{user}/{index}` with devpi's JSON push body
    `{"name": …, "version": …, "targetindex": "user/index"}`: copy a release to
    another stage index. The push scope and upload rights on the target, read
    rights on the source; 409 naming the gates it misses."""
    user, name = request.match_info["user"], request.match_info["index"]
    project, version, target = _push_request(await read_json_object(request))
    principal = await require_login(request)
    principal.require("push", target)
    await require_read(request, user, name)
    db = request.app[DATABASE]
    async with db.write() as session:
        outcome = await push_release(session, principal.actor, user, name, project, version, target)
    # devpi-client prints this action log line by line.
    actions: list[list[Any]] = [[200, "register", project, version, "->", outcome.target]]
    actions += [[200, "store_releasefile", f"{outcome.target}/{f}"] for f in outcome.pushed]
    actions += [[200, "already_stored", f"{outcome.target}/{f}"] for f in outcome.held]
    actions += [[200, "promoted", project, version, "->", path] for path in outcome.promoted]
    return api_response("actionlog", actions, serial=outcome.serial)


async def serve_log(request: web.Request) -> web.StreamResponse:
    """`GET /{user}/{index}/+testlog/{sha256}`: the log of a test result of that index."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    sha256 = request.match_info["sha256"].lower()
    if not SHA256.match(sha256):
        raise NotFound("no such test log")
    async with request.app[DATABASE].read() as session:
        found = await log_of_index(session, user, name, sha256)
    if not found:
        raise NotFound(f"no test log {sha256} on index {user}/{name}")
    return blob_response(request, sha256, "text/plain; charset=utf-8")


async def serve_toxresult(request: web.Request) -> web.Response:
    """`GET /{user}/{index}/+f/{hash}/{filename}/+toxresult/{number}`: the file's
    test result `number` (0 = the oldest) as devpi's toxresult JSON, which the
    `rel: toxresult` links of devpi's version JSON point at (lockgate/devpi/views.py)."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    key, filename = request.match_info["hash"], request.match_info["filename"]
    number = int(request.match_info["number"])
    async with request.app[DATABASE].read() as session:
        file, results = await results_of_own_file(session, user, name, key, filename)
    if number >= len(results):
        raise NotFound(f"{file.filename} has no test result {number} on index {user}/{name}")
    result = results[number]
    log = ""
    if result["log_sha256"]:
        path = request.app[BLOBS].path(result["log_sha256"])
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(
                f"the log of test result {number} of {file.filename} is missing on this server"
            ) from None
        log = data.decode("utf-8", errors="replace")
    body = toxresult(result, file.filename, file.sha256, log)
    return web.json_response(body, dumps=lambda value: json.dumps(value, ensure_ascii=False))
