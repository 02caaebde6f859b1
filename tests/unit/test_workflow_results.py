"""What a posted test result may say (lockgate's shape, a list, tox 4's and devpi's
toxresult), the log cap, and the gate rule."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.errors import BadRequest
from lockgate.workflow.results import (
    MAX_LOG_BYTES,
    ResultSpec,
    bound_log,
    parse_results,
)
from lockgate.workflow.services import SourceFile, gate_problems
from lockgate.workflow.toxresults import commands_from_log, toxresult


def _tox4(*, failing: bool = False, skipped: bool = False) -> dict[str, Any]:
    """The shape `tox --result-json` (tox 4) writes."""
    return {
        "reportversion": "1",
        "toxversion": "4.12.0",
        "platform": "linux",
        "host": "runner",
        "testenvs": {
            "py311-linux": {
                "python": {"version": "3.11.7 (main, Dec  8 2023) [GCC 12.2.0]"},
                "installed_packages": ["pip==24.0"],
                "result": {
                    "success": not failing,
                    "exit_code": 3 if failing else 0,
                    "duration": 1.5,
                    "skipped": skipped,
                },
                "setup": [{"command": ["pip", "freeze"], "retcode": 0, "output": "", "err": ""}],
                "test": [
                    {
                        "command": ["python", "-c", "..."],
                        "retcode": 3 if failing else 0,
                        "output": "ran 3 tests\n",
                        "err": "boom\n" if failing else "",
                        "elapsed": 0.2,
                    }
                ],
            },
            ".pkg": {"setup": [{"command": ["build"], "retcode": 0, "output": ""}]},
        },
    }


def test_lockgate_shape_and_lists() -> None:
    [one] = parse_results({"environment": "py311-linux", "outcome": "passed"})
    assert one == ResultSpec("py311-linux", "passed")
    full = {
        "environment": "e",
        "outcome": "failed",
        "python": "3.11.7",
        "platform": "linux",
        "duration": 12,
        "log": "x",
        "url": "https://ci/run/1",
    }
    [spec] = parse_results(full)
    assert spec.duration == 12.0 and spec.to_body()["url"] == "https://ci/run/1"
    assert [s.environment for s in parse_results([full, {**full, "environment": "f"}])] == [
        "e",
        "f",
    ]


@pytest.mark.parametrize(
    "body",
    [
        None,
        "passed",
        [],
        [1],
        {"environment": "py311"},
        {"outcome": "passed"},
        {"environment": "", "outcome": "passed"},
        {"environment": "a/b", "outcome": "passed"},
        {"environment": "a" * 65, "outcome": "passed"},
        {"environment": "a", "outcome": "PASSED"},
        {"environment": "a", "outcome": "passed", "duration": True},
        {"environment": "a", "outcome": "passed", "duration": float("inf")},
        {"environment": "a", "outcome": "passed", "python": "3\x00"},
        {"environment": "a", "outcome": "passed", "url": "javascript:alert(1)"},
        {"environment": "a", "outcome": "passed", "log": 5},
        {"environment": "a", "outcome": "passed", "extra": 1},
        {"testenvs": {}},
        {"testenvs": {"py": []}},
        {"testenvs": {"py": {"test": [{"retcode": "zero"}]}}},
        {"testenvs": {"py": {"test": "pytest"}}},
    ],
)
def test_refused_bodies(body: Any) -> None:
    with pytest.raises(BadRequest):
        parse_results(body)


def test_tox4_result_json() -> None:
    [passed] = parse_results(_tox4())
    assert (passed.environment, passed.outcome) == ("py311-linux", "passed")
    assert passed.python == "3.11.7" and passed.platform == "linux" and passed.duration == 1.5
    assert "ran 3 tests" in passed.log and "$ python -c ..." in passed.log
    [failed] = parse_results(_tox4(failing=True))
    assert failed.outcome == "failed" and "boom" in failed.log
    with pytest.raises(BadRequest, match="skipped"):
        parse_results(_tox4(skipped=True))


def test_devpi_string_retcodes_and_output_lines() -> None:
    body = {
        "testenvs": {
            "py27": {"test": [{"command": "pytest", "retcode": "0", "output": ["a", "b"]}]},
            "py36": {"setup": [{"command": ["pip"], "retcode": "1", "output": "no"}]},
        }
    }
    outcomes = {spec.environment: spec.outcome for spec in parse_results(body)}
    assert outcomes == {"py27": "passed", "py36": "failed"}


def _stored(spec: ResultSpec) -> dict[str, Any]:
    """A result as `results_of_files` reads it back."""
    return {
        "environment": spec.environment,
        "outcome": spec.outcome,
        "python": spec.python,
        "platform": spec.platform,
        "posted_at": "2026-12-08T03:00:00Z",
        "posted_by": "alice",
        "index": "alice/dev",
        "url": None,
        "log_truncated": False,
    }


def test_toxresult_commands_come_back_from_the_log() -> None:
    """DV-7: a toxresult's setup and test commands are read back from the stored log
    exactly; anything else becomes one command carrying lockgate's verdict."""
    body = _tox4(failing=True)
    [failed] = parse_results(body)
    answer = toxresult(_stored(failed), "a-1.0.tar.gz", "0" * 64, failed.log)
    env = answer["testenvs"]["py311-linux"]
    original = body["testenvs"]["py311-linux"]
    for section in ("setup", "test"):
        assert [(c["command"], c["retcode"]) for c in env[section]] == [
            (c["command"], int(c["retcode"])) for c in original.get(section, [])
        ]
    assert env["python"] == {"version": "3.11.7"} and answer["host"] == "alice"
    # lockgate's own shape, a truncated or foreign log: one command, our verdict.
    for log in ("", "just text\n", "$ cut off\nno retcode line\n"):
        assert commands_from_log(log) is None
        spec = ResultSpec(environment="docs", outcome="failed", log=log)
        env = toxresult(_stored(spec), "a.whl", "0" * 64, log)["testenvs"]["docs"]
        assert env == {"setup": [], "test": [{"command": [], "retcode": 1, "output": log}]}


def test_long_logs_keep_their_end() -> None:
    assert bound_log("short") == bound_log("short")
    assert not bound_log("short").truncated
    text = "é" * MAX_LOG_BYTES + "THE END"
    bounded = bound_log(text)
    assert bounded.truncated and len(bounded.data) <= MAX_LOG_BYTES
    decoded = bounded.data.decode("utf-8")
    assert decoded.startswith("[lockgate: log truncated") and decoded.endswith("THE END")


def test_gate_counts_the_latest_result_per_file() -> None:
    files = [SourceFile(1, "a.tar.gz", "s1", None), SourceFile(2, "a.whl", "s2", None)]
    assert gate_problems(["e"], files, {}) == ["e has no passing result"]
    assert gate_problems(["e"], files, {1: {"e": "passed"}}) == []
    # A failure on any file blocks, even when another file passed.
    assert gate_problems(["e"], files, {1: {"e": "passed"}, 2: {"e": "failed"}}) == [
        "e failed (on a.whl)"
    ]
    assert gate_problems(["e", "f"], files, {1: {"e": "passed"}}) == ["f has no passing result"]
