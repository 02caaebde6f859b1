"""`lockgate test` (run a release's tests and post the results, what `devpi test`
does) and `lockgate push` (copy a release to another index, behind its gates).
Both talk to a running server over HTTP, authenticated like the admin commands."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import click
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from lockgate.cli.admin import call, server_options
from lockgate.errors import BadRequest
from lockgate.indexes.config import check_environment
from lockgate.workflow.results import ResultSpec, results_from_toxresult

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SDIST_SUFFIXES = (".tar.gz", ".zip")
CHUNK = 256 * 1024


def _split_requirement(requirement: str) -> tuple[str, str | None]:
    name, sep, version = requirement.partition("==")
    name = name.strip()
    if not name or (sep and not version.strip()):
        raise click.UsageError(f"give PROJECT or PROJECT==VERSION, not {requirement!r}")
    if not sep:
        return name, None
    try:
        return name, str(Version(version.strip()))
    except InvalidVersion:
        raise click.UsageError(f"{version.strip()!r} is not a valid version") from None


@dataclass(frozen=True)
class IndexLocation:
    base: str  # the server's URL (with any path prefix), no trailing slash
    path: str  # user/index

    @property
    def simple(self) -> str:
        return f"{self.base}/{self.path}/+simple/"


def _index_location(index: str, server_url: str) -> IndexLocation:
    """`--index` as a URL (http://host:3141/team/staging, with or without /+simple/)
    or as USER/INDEX on the --url server."""
    if "://" not in index:
        parts = index.strip("/").split("/")
        if len(parts) != 2:
            raise click.UsageError(f"--index must be USER/INDEX or the index's URL, not {index!r}")
        return IndexLocation(server_url.rstrip("/"), "/".join(parts))
    split = urlsplit(index)
    segments = [s for s in split.path.split("/") if s]
    if segments and segments[-1] == "+simple":
        segments.pop()
    if len(segments) < 2:
        raise click.UsageError(f"--index URL {index!r} does not name USER/INDEX")
    prefix = "/".join(segments[:-2])
    base = f"{split.scheme}://{split.netloc}" + (f"/{prefix}" if prefix else "")
    return IndexLocation(base, "/".join(segments[-2:]))


def _credentials(user: str, password: str | None) -> aiohttp.BasicAuth | None:
    return aiohttp.BasicAuth(user, password) if password else None


async def _fail(response: aiohttp.ClientResponse, what: str) -> None:
    text = await response.text()
    try:
        message = json.loads(text).get("message") or text
    except (json.JSONDecodeError, AttributeError):
        message = text
    raise click.ClickException(f"{what}: {response.status} {str(message).strip()}")


@dataclass(frozen=True)
class Candidate:
    filename: str
    url: str  # absolute, without the hash fragment: also where results are posted
    sha256: str | None
    version: Version
    is_sdist: bool
    yanked: bool


def _candidates(page: dict[str, Any], page_url: str, project: str) -> list[Candidate]:
    found = []
    for file in page.get("files", []):
        filename = file.get("filename", "")
        try:
            if filename.endswith(".whl"):
                name, version, _, _ = parse_wheel_filename(filename)
                is_sdist = False
            elif filename.endswith(SDIST_SUFFIXES):
                name, version = parse_sdist_filename(filename)
                is_sdist = True
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if canonicalize_name(name) != canonicalize_name(project):
            continue
        url = urldefrag(urljoin(page_url, file["url"]))[0]
        sha256 = (file.get("hashes") or {}).get("sha256")
        found.append(Candidate(filename, url, sha256, version, is_sdist, bool(file.get("yanked"))))
    return found


def _choose(candidates: list[Candidate], project: str, version: str | None) -> Candidate:
    if version is not None:
        matching = [c for c in candidates if c.version == Version(version)]
        if not matching:
            raise click.ClickException(f"{project} {version} has no files on this index")
    else:
        live = [c for c in candidates if not c.yanked] or candidates
        if not live:
            raise click.ClickException(f"{project} has no files on this index")
        stable = [c for c in live if not c.version.is_prerelease] or live
        newest = max(c.version for c in stable)
        matching = [c for c in stable if c.version == newest]
    # The sdist carries the tests and tox.ini; a wheel only when there is none.
    return sorted(matching, key=lambda c: (not c.is_sdist, c.filename))[0]


async def _find_and_download(
    location: IndexLocation, project: str, version: str | None, auth: Any, into: Path
) -> tuple[Candidate, Path]:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout, auth=auth) as session:
        page_url = f"{location.simple}{canonicalize_name(project)}/"
        async with session.get(page_url, headers={"Accept": SIMPLE_JSON}) as response:
            if response.status != 200:
                await _fail(response, f"cannot read {page_url}")
            page = await response.json(content_type=None)
        chosen = _choose(_candidates(page, page_url, project), project, version)
        target = into / chosen.filename
        digest = hashlib.sha256()
        async with session.get(chosen.url) as response:
            if response.status != 200:
                await _fail(response, f"cannot download {chosen.url}")
            with target.open("wb") as handle:
                async for chunk in response.content.iter_chunked(CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
    if chosen.sha256 and digest.hexdigest() != chosen.sha256:
        raise click.ClickException(f"{chosen.filename} does not match its sha256 on the index")
    return chosen, target


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack an sdist (or a wheel) safely; the project's directory inside it."""
    into.mkdir()
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            if not all(_safe_member(m.name) for m in tar.getmembers()):
                raise click.ClickException(f"{archive.name} holds paths outside itself")
            tar.extractall(into, filter="data")
    else:
        with zipfile.ZipFile(archive) as zipped:
            if not all(_safe_member(n) for n in zipped.namelist()):
                raise click.ClickException(f"{archive.name} holds paths outside itself")
            zipped.extractall(into)
    entries = list(into.iterdir())
    if archive.name.endswith(SDIST_SUFFIXES) and len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return into


def _find_tox() -> str:
    found = shutil.which("tox")
    if found:
        return found
    beside = Path(sys.executable).parent / ("tox.exe" if os.name == "nt" else "tox")
    if beside.is_file():
        return str(beside)
    raise click.ClickException(
        "tox was not found on PATH or next to this Python: pip install 'lockgate[ci]'"
    )


def _default_environment() -> str:
    return f"py{sys.version_info.major}{sys.version_info.minor}-{sys.platform}"


def _test_environ(location: IndexLocation) -> dict[str, str]:
    env = dict(os.environ)
    # Dependencies come from the index under test (as devpi test does), unless the
    # caller chose otherwise; no credentials are put into the environment.
    env.setdefault("PIP_INDEX_URL", location.simple)
    return env


def _run_tox(
    workdir: Path, archive: Path, location: IndexLocation, envs: str | None, tox_args: str
) -> tuple[int, list[ResultSpec]]:
    report = workdir.parent / "tox-result.json"
    command = [_find_tox(), "--result-json", str(report), "--installpkg", str(archive)]
    if envs:
        command += ["-e", envs]
    command += shlex.split(tox_args)
    click.echo(f"{workdir}$ {shlex.join(command)}")
    code = subprocess.call(command, cwd=workdir, env=_test_environ(location))
    if not report.is_file():
        raise click.ClickException(f"tox wrote no result (exit code {code}); nothing posted")
    try:
        return code, results_from_toxresult(json.loads(report.read_text("utf-8")))
    except (json.JSONDecodeError, BadRequest) as exc:
        message = exc.message if isinstance(exc, BadRequest) else str(exc)
        raise click.ClickException(f"tox's result could not be read: {message}") from None


def _run_command(
    workdir: Path, command: str, location: IndexLocation, environment: str
) -> tuple[int, list[ResultSpec]]:
    argv = shlex.split(command)
    click.echo(f"{workdir}$ {shlex.join(argv)}")
    started = time.monotonic()
    output: list[str] = []
    try:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=_test_environ(location),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise click.ClickException(f"cannot run {argv[0]!r}: {exc}") from None
    assert process.stdout is not None
    for line in process.stdout:
        click.echo(line, nl=False)
        output.append(line)
    code = process.wait()
    spec = ResultSpec(
        environment=environment,
        outcome="passed" if code == 0 else "failed",
        python=platform.python_version(),
        platform=sys.platform,
        duration=round(time.monotonic() - started, 3),
        log="".join(output),
    )
    return code, [spec]


async def _post(url: str, auth: Any, results: list[ResultSpec]) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=300)
    body = [spec.to_body() for spec in results]
    async with (
        aiohttp.ClientSession(timeout=timeout, auth=auth) as session,
        session.post(url, json=body, headers={"Accept": "application/json"}) as response,
    ):
        if response.status != 200:
            await _fail(response, f"posting the results to {url} failed")
        data: dict[str, Any] = (await response.json(content_type=None))["result"]
        return data


@click.command("test")
@click.argument("requirement", metavar="PROJECT[==VERSION]")
@click.option(
    "--index",
    "index",
    envvar="LOCKGATE_INDEX",
    required=True,
    help="The index: its URL (http://host:3141/team/staging) or USER/INDEX on --url.",
)
@click.option(
    "--runner",
    default="tox",
    show_default=True,
    help="'tox', or a command to run in the unpacked sdist (one result, named by --env).",
)
@click.option(
    "--env",
    "environment",
    default=None,
    help="With --runner COMMAND: the environment to post as (default: e.g. py311-linux). "
    "With tox: the tox environments to run (tox -e).",
)
@click.option("--tox-args", default="", help="More arguments for tox (one string).")
@click.option(
    "--ci-url",
    envvar="LOCKGATE_CI_URL",
    default=None,
    help="A link to the CI run, posted with every result.",
)
@server_options
def run_tests_command(
    requirement: str,
    index: str,
    runner: str,
    environment: str | None,
    tox_args: str,
    ci_url: str | None,
    **kw: Any,
) -> None:
    """Download a release's sdist (or a wheel when it has none) from an index, run its
    tests in a fresh temp directory (tox by default), post one result per test
    environment to the index, and exit with the tests' exit code."""
    project, version = _split_requirement(requirement)
    location = _index_location(index, kw["url"])
    auth = _credentials(kw["auth_user"], kw["auth_password"])
    if runner != "tox":
        environment = environment or _default_environment()
        try:
            check_environment(environment)
        except BadRequest as exc:
            raise click.UsageError(exc.message) from None
    with tempfile.TemporaryDirectory(prefix="lockgate-test-") as temp:
        root = Path(temp)
        try:
            chosen, archive = asyncio.run(
                _find_and_download(location, project, version, auth, root)
            )
        except aiohttp.ClientError as exc:
            raise click.ClickException(f"cannot reach {location.base}: {exc}") from None
        click.echo(f"testing {chosen.filename} from {location.path}")
        workdir = _unpack(archive, root / "unpacked")
        if runner == "tox":
            code, results = _run_tox(workdir, archive, location, environment, tox_args)
        else:
            assert environment is not None
            code, results = _run_command(workdir, runner, location, environment)
    if ci_url:
        results = [replace(spec, url=ci_url) for spec in results]
    try:
        posted = asyncio.run(_post(chosen.url, auth, results))
    except aiohttp.ClientError as exc:
        raise click.ClickException(f"cannot reach {location.base}: {exc}") from None
    click.echo(f"results for {chosen.filename} posted to {location.path}:")
    for spec in results:
        took = f" ({spec.duration:.1f} s)" if spec.duration is not None else ""
        click.echo(f"  {spec.environment}: {spec.outcome}{took}")
    for target in posted.get("promoted", []):
        click.echo(f"promoted to {target}")
    sys.exit(code)


@click.command("push")
@click.argument("requirement", metavar="PROJECT==VERSION")
@click.argument("target", metavar="USER/INDEX")
@click.option(
    "--index",
    "source",
    envvar="LOCKGATE_INDEX",
    required=True,
    help="The index to push from (USER/INDEX, or its URL).",
)
@server_options
def push_command(requirement: str, target: str, source: str, **kw: Any) -> None:
    """Push a release to another stage index (a server-side copy), if it meets that
    index's gates (push_requires, no overwrite on a non-volatile index)."""
    project, version = _split_requirement(requirement)
    if version is None:
        raise click.UsageError("give the release to push as PROJECT==VERSION")
    location = _index_location(source, kw["url"])
    destination = _index_location(target, kw["url"]).path
    body = {"name": project, "version": version, "targetindex": destination}
    data = call({**kw, "url": location.base}, "POST", f"/{location.path}", body)
    for action in data.get("result", []):
        click.echo(" ".join(map(str, action)))
