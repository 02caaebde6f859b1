"""What a posted test result may say, in lockgate's own shape or in devpi's
`toxresult` shape (what `tox --result-json` writes and `devpi test` posts), and the
limits on it. Pure functions: the server validates with them, `lockgate test`
parses tox's output with them.

lockgate's shape: `{"environment": "py311-linux", "outcome": "passed"|"failed",
"python": "3.11.7", "platform": "linux", "duration": 12.5, "log": "…",
"url": "<link to the CI run>"}`, only the first two required.

devpi's shape: `{"reportversion": "1", "platform": "linux", "host": …,
"installpkg": {…}, "testenvs": {NAME: {"python": {"version": "3.11.7 …"},
"setup": [COMMAND…], "test": [COMMAND…], "result": {…}}}}` where a COMMAND is
`{"command": [argv…], "retcode": 0 or "0", "output": "…"}`. Each test environment
becomes one result: failed when any of its setup or test commands returned
non-zero (or tox 4's `result.success` is false), passed otherwise; environments
tox skipped, and its packaging environments (`.pkg`), give none. Its log is the
environment's commands (`$ argv`, output, `[retcode N]`) under a `=== tox setup ===`
and a `=== tox test ===` line, which is what lets lockgate answer devpi-client's
toxresult links in devpi's shape again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lockgate.errors import BadRequest
from lockgate.indexes.config import check_environment

OUTCOMES = ("passed", "failed")
# A log longer than this keeps its last MAX_LOG_BYTES (the end of a log is where a
# failure shows), behind a line saying how much was dropped.
MAX_LOG_BYTES = 1024 * 1024
# A result body (a toxresult carries every environment's output) may be this large;
# a larger one is refused with 413.
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_TEXT_CHARS = 64
MAX_URL_CHARS = 2000
MAX_DURATION = 10_000_000.0  # seconds (~115 days)
MAX_RESULTS = 1000  # results in one request
# The lines heading a toxresult's setup and test commands in the stored log.
SETUP_HEADER = "=== tox setup ===\n"
TEST_HEADER = "=== tox test ===\n"
RESULT_KEYS = {"environment", "outcome", "python", "platform", "duration", "log", "url"}


@dataclass(frozen=True)
class ResultSpec:
    """One environment's result, validated."""

    environment: str
    outcome: str
    python: str | None = None
    platform: str | None = None
    duration: float | None = None
    log: str = ""
    url: str | None = None

    def to_body(self) -> dict[str, Any]:
        """lockgate's shape, as `lockgate test` posts it."""
        body: dict[str, Any] = {"environment": self.environment, "outcome": self.outcome}
        for key in ("python", "platform", "duration", "url"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        if self.log:
            body["log"] = self.log
        return body


@dataclass(frozen=True)
class BoundedLog:
    data: bytes
    truncated: bool


def truncation_marker(dropped: int) -> bytes:
    return f"[lockgate: log truncated, its first {dropped} bytes were dropped]\n".encode()


def bound_log(text: str) -> BoundedLog:
    """The log as stored: UTF-8, at most MAX_LOG_BYTES, keeping its end."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= MAX_LOG_BYTES:
        return BoundedLog(data, False)
    marker_room = len(truncation_marker(len(data)))
    tail = data[len(data) - (MAX_LOG_BYTES - marker_room) :]
    # Do not start in the middle of a multi-byte character.
    tail = tail.decode("utf-8", errors="ignore").encode("utf-8")
    return BoundedLog(truncation_marker(len(data) - len(tail)) + tail, True)


def _text(value: Any, key: str, limit: int = MAX_TEXT_CHARS) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise BadRequest(f"{key!r} must be a string of at most {limit} characters")
    return value or None


def _duration(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("'duration' must be a number of seconds")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
        raise BadRequest(f"'duration' must be between 0 and {MAX_DURATION:.0f} seconds")
    return seconds


def _url(value: Any) -> str | None:
    url = _text(value, "url", MAX_URL_CHARS)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"'url' must be an http(s) link to the CI run, not {url!r}")
    return url


def _outcome(value: Any) -> str:
    if value not in OUTCOMES:
        raise BadRequest(f'\'outcome\' must be "passed" or "failed", not {value!r}')
    return str(value)


def parse_result(data: Mapping[str, Any]) -> ResultSpec:
    """One result in lockgate's shape."""
    unknown = set(data) - RESULT_KEYS
    if unknown:
        raise BadRequest(
            f"unknown key(s) in the test result: {', '.join(sorted(unknown))} "
            f"(send {', '.join(sorted(RESULT_KEYS))}, or a tox/devpi toxresult)"
        )
    if "environment" not in data or "outcome" not in data:
        raise BadRequest("a test result needs 'environment' and 'outcome'")
    log = data.get("log", "")
    if log is None:
        log = ""
    if not isinstance(log, str):
        raise BadRequest("'log' must be a string")
    return ResultSpec(
        environment=check_environment(data["environment"]),
        outcome=_outcome(data["outcome"]),
        python=_text(data.get("python"), "python"),
        platform=_text(data.get("platform"), "platform"),
        duration=_duration(data.get("duration")),
        log=log,
        url=_url(data.get("url")),
    )


def _retcode(command: Mapping[str, Any], where: str) -> int:
    code = command.get("retcode")
    if isinstance(code, bool):
        code = None
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        return int(code.strip())
    if isinstance(code, int):
        return code
    raise BadRequest(f"{where}: every command needs a 'retcode' (a number)")


def _commands(env: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    commands = env.get(key, [])
    if not isinstance(commands, list) or not all(isinstance(c, Mapping) for c in commands):
        raise BadRequest(f"{where}: '{key}' must be a list of command objects")
    return commands


def _section_log(header: str, commands: list[Mapping[str, Any]]) -> str:
    """A toxresult section's commands under a header line, so that devpi's setup/test
    split can be read back from the log (lockgate/workflow/toxresults.py)."""
    if not commands:
        return ""
    return header + "".join(_command_log(command) for command in commands)


def _command_log(command: Mapping[str, Any]) -> str:
    argv = command.get("command")
    line = " ".join(map(str, argv)) if isinstance(argv, list) else str(argv or "")
    parts = [f"$ {line}\n"]
    for key in ("output", "err"):
        text = command.get(key)
        if isinstance(text, list):  # devpi's own reports keep output as a list of lines
            text = "\n".join(map(str, text))
        if isinstance(text, str) and text:
            parts.append(text if text.endswith("\n") else text + "\n")
    parts.append(f"[retcode {command.get('retcode')}]\n")
    return "".join(parts)


def _python_version(env: Mapping[str, Any]) -> str | None:
    python = env.get("python")
    if isinstance(python, Mapping) and isinstance(python.get("version"), str):
        words = python["version"].split()
        return words[0][:MAX_TEXT_CHARS].replace("\x00", "") if words else None
    return None


def results_from_toxresult(data: Mapping[str, Any]) -> list[ResultSpec]:
    """One result per test environment of a tox/devpi toxresult."""
    envs = data.get("testenvs")
    if not isinstance(envs, Mapping) or not envs:
        raise BadRequest("a toxresult needs 'testenvs', an object of test environments")
    if len(envs) > MAX_RESULTS:
        raise BadRequest(f"a toxresult may hold at most {MAX_RESULTS} test environments")
    platform = data.get("platform")
    platform = platform[:MAX_TEXT_CHARS].replace("\x00", "") if isinstance(platform, str) else None
    results = []
    for name in sorted(envs):
        env = envs[name]
        where = f"testenvs.{name}"
        if isinstance(name, str) and name.startswith("."):
            continue  # tox's own packaging environments (.pkg): no tests ran there
        check_environment(name, "test environment")
        if not isinstance(env, Mapping):
            raise BadRequest(f"{where} must be an object")
        outcome = env.get("result")
        outcome = outcome if isinstance(outcome, Mapping) else {}
        if outcome.get("skipped") is True:
            continue
        setup, test = _commands(env, "setup", where), _commands(env, "test", where)
        commands = setup + test
        failed = any(_retcode(command, where) != 0 for command in commands)
        if outcome.get("success") is False:
            failed = True
        duration: Any = outcome.get("duration")
        if not isinstance(duration, int | float) or isinstance(duration, bool):
            elapsed = [c.get("elapsed") for c in commands]
            numbers = [e for e in elapsed if isinstance(e, int | float) and not isinstance(e, bool)]
            duration = sum(numbers) if numbers else None
        if isinstance(duration, int | float) and not 0 <= duration <= MAX_DURATION:
            duration = None
        results.append(
            ResultSpec(
                environment=name,
                outcome="failed" if failed else "passed",
                python=_python_version(env),
                platform=platform or None,
                duration=float(duration) if duration is not None else None,
                log=_section_log(SETUP_HEADER, setup) + _section_log(TEST_HEADER, test),
            )
        )
    if not results:
        raise BadRequest("the toxresult holds no environment that ran (all were skipped)")
    return results


def parse_results(data: Any) -> list[ResultSpec]:
    """The results a POST body holds: one (lockgate's shape), a list of them (all
    of one test run, recorded together), or one per test environment of a
    toxresult (recognised by its 'testenvs')."""
    if isinstance(data, list):
        if not data or len(data) > MAX_RESULTS:
            raise BadRequest(f"send 1 to {MAX_RESULTS} test results in a list")
        if not all(isinstance(item, Mapping) for item in data):
            raise BadRequest("each test result in the list must be a JSON object")
        return [parse_result(item) for item in data]
    if not isinstance(data, Mapping):
        raise BadRequest("the test result must be a JSON object (or a list of them)")
    if "testenvs" in data:
        return results_from_toxresult(data)
    return [parse_result(data)]
