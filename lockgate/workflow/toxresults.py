"""A stored test result, answered in devpi's `toxresult` shape (what `devpi list -t`
and `devpi list -f` read from the `+links` of rel "toxresult"). Pure functions.

lockgate keeps one result per test environment (environment, outcome, python,
platform, the log), not the toxresult a client posted. devpi-client reads, per
environment, `host`, `platform`, `python.version` and the `setup` and `test`
commands (`command`, `retcode`, `output`); it says "tests failed" when a test
command's retcode is non-zero and prints that command's output with `-f`.

- A result posted as a toxresult keeps its commands in the log under
  `=== tox setup ===` / `=== tox test ===` (lockgate/workflow/results.py); they are
  read back from there, so devpi-client shows the same commands and outputs it
  would have shown from devpi.
- Any other result (lockgate's own shape, a truncated log, an older log without the
  section lines) becomes one test command without argv whose retcode is 0 or 1 by
  the result's outcome and whose output is the whole log: devpi-client then says
  "tests passed" or "tests failed" as lockgate's verdict is, and `-f` shows the log.
  Such a result has no setup commands, which devpi-client reports as "no setup was
  performed".
- `host` is who posted the result: lockgate does not keep the posting machine's
  host name. (devpi-client shows only the newest result per host, platform and
  environment, as it does with devpi.)
"""

from __future__ import annotations

import re
from typing import Any

from lockgate.workflow.results import SETUP_HEADER, TEST_HEADER

RETCODE_LINE = re.compile(r"\[retcode (-?\d+)\]\n?\Z")
Command = dict[str, Any]


def commands_from_log(log: str) -> dict[str, list[Command]] | None:
    """The setup and test commands of a log written from a toxresult, or None when
    the log is not one (or cannot be read back exactly)."""
    sections: dict[str, list[Command]] = {"setup": [], "test": []}
    section: str | None = None
    current: Command | None = None
    output: list[str] = []
    for line in log.splitlines(keepends=True):
        if current is None:
            if line == SETUP_HEADER:
                section = "setup"
            elif line == TEST_HEADER:
                section = "test"
            elif section is not None and line.startswith("$ "):
                current = {"command": line[2:].rstrip("\n").split(" ")}
                output = []
            else:
                return None
            continue
        match = RETCODE_LINE.match(line)
        if match:
            text = "".join(output)
            current["retcode"] = int(match.group(1))
            current["output"] = text[:-1] if text.endswith("\n") else text
            sections[section or "test"].append(current)
            current = None
        else:
            output.append(line)
    if current is not None or not (sections["setup"] or sections["test"]):
        return None
    return sections


def toxresult(result: dict[str, Any], basename: str, sha256: str, log: str) -> dict[str, Any]:
    """devpi's toxresult for one stored result (a dict as `results_of_files` gives
    it) of the file `basename`, with the result's log text."""
    failed = result["outcome"] == "failed"
    sections = commands_from_log(log)
    if sections is not None:
        any_failed = any(c["retcode"] != 0 for c in sections["setup"] + sections["test"])
        if any_failed != failed:
            sections = None  # tox said more than its retcodes (result.success): our verdict
    if sections is None:
        sections = {
            "setup": [],
            "test": [{"command": [], "retcode": 1 if failed else 0, "output": log}],
        }
    env: dict[str, Any] = {"setup": sections["setup"], "test": sections["test"]}
    if result.get("python"):
        env["python"] = {"version": result["python"]}
    return {
        "reportversion": "1",
        "host": result["posted_by"],
        "platform": result.get("platform") or "",
        "installpkg": {"basename": basename, "sha256": sha256},
        "testenvs": {result["environment"]: env},
        # lockgate's own record of the result (devpi-client reads none of it).
        "lockgate": {
            key: result[key]
            for key in ("outcome", "posted_at", "posted_by", "index", "url", "log_truncated")
        },
    }
