"""`lockgate mirror refresh` and `lockgate mirror prefetch`: warming a mirror's cache.

Prefetch resolves with pip itself (`pip download`), through the server, for
each target Python version and platform: every file pip picks passes through
the mirror and stays cached, which is how the server in the DMZ is filled
before a site goes offline.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lockgate.cli.admin import call, server_options


@click.group("mirror")
def mirror_group() -> None:
    """Warm and refresh a mirror index's cache on a running server."""


@mirror_group.command("refresh")
@click.argument("projects", nargs=-1, required=True)
@click.option("--index", "index_path", default="root/pypi", show_default=True)
@server_options
def refresh(projects: tuple[str, ...], index_path: str, **kw: Any) -> None:
    """Ask the upstream for PROJECTS now (yanks, removals and new releases show at once)."""
    data = call(kw, "POST", f"/{index_path}/+mirror/refresh", {"projects": list(projects)})
    failed = False
    for project, outcome in sorted(data["result"].items()):
        click.echo(f"{project}: {outcome}")
        failed = failed or outcome.startswith("upstream unavailable")
    if failed:
        raise click.ClickException("some projects could not be refreshed")


def _pip_runs(
    python_versions: tuple[str, ...],
    platforms: tuple[str, ...],
    implementation: str | None,
    abis: tuple[str, ...],
) -> list[list[str]]:
    """One `pip download` target selection per (python version, platform)."""
    if not python_versions and not platforms and not implementation and not abis:
        return [[]]
    runs = []
    for version, platform in itertools.product(python_versions or (None,), platforms or (None,)):
        args = ["--only-binary=:all:"]
        if version:
            args += ["--python-version", version]
        if platform:
            args += ["--platform", platform]
        if implementation:
            args += ["--implementation", implementation]
        for abi in abis:
            args += ["--abi", abi]
        runs.append(args)
    return runs


@mirror_group.command("prefetch")
@click.argument("packages", nargs=-1)
@click.option("-r", "--requirement", "requirements", multiple=True, type=click.Path(exists=True))
@click.option("--index", "index_path", default="root/pypi", show_default=True)
@click.option("--python-version", "python_versions", multiple=True, help="e.g. 3.11 (repeat)")
@click.option("--platform", "platforms", multiple=True, help="e.g. manylinux_2_28_x86_64")
@click.option("--implementation", default=None, help="e.g. cp")
@click.option("--abi", "abis", multiple=True)
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the downloaded files here (default: discard them).",
)
@server_options
def prefetch(
    packages: tuple[str, ...],
    requirements: tuple[str, ...],
    index_path: str,
    python_versions: tuple[str, ...],
    platforms: tuple[str, ...],
    implementation: str | None,
    abis: tuple[str, ...],
    dest: Path | None,
    **kw: Any,
) -> None:
    """Fill the mirror with the whole dependency closure of PACKAGES / -r files."""
    if not packages and not requirements:
        raise click.UsageError("name packages or give -r requirements.txt")
    index_url = kw["url"].rstrip("/") + f"/{index_path}/+simple/"
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--isolated",
        "--no-cache-dir",
        "--progress-bar",
        "off",
        "--index-url",
        index_url,
    ]
    for requirement in requirements:
        base += ["-r", requirement]
    base += list(packages)
    with tempfile.TemporaryDirectory(prefix="lockgate-prefetch-") as scratch:
        target = dest or Path(scratch)
        runs = _pip_runs(python_versions, platforms, implementation, abis)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ) as progress:
            for selection in runs:
                label = " ".join(selection[1:]) or "this Python"
                task = progress.add_task(f"prefetch for {label}", total=None)
                collected = saved = 0
                process = subprocess.Popen(
                    [*base, "--dest", str(target), *selection],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                assert process.stdout is not None
                output: list[str] = []
                for line in process.stdout:
                    output.append(line)
                    stripped = line.strip()
                    if stripped.startswith("Collecting "):
                        collected += 1
                    elif stripped.startswith(("Saved ", "File was already downloaded")):
                        saved += 1
                    progress.update(task, total=max(collected, saved), completed=saved)
                if process.wait() != 0:
                    tail = "".join(output[-15:])
                    raise click.ClickException(f"pip download failed for {label}:\n{tail}")
                progress.update(task, total=saved, completed=saved)
    click.echo(f"prefetched into {index_path} for {len(runs)} target(s)")
