"""What several commands share: the --serverdir option and opening a server
directory that is ready to use (exists, schema current)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from lockgate.config import Settings, default_serverdir, load_settings

SERVERDIR_OPTION = click.option(
    "--serverdir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="LOCKGATE_SERVERDIR",
    default=None,
    help="Server directory (default: a per-user data directory).",
)


def resolve_serverdir(value: Path | None) -> Path:
    return (value or default_serverdir()).expanduser().resolve()


def ready_settings(serverdir: Path | None) -> Settings:
    """Settings of an existing, migrated server directory, or a clear error."""
    from lockgate.serverdir import ServerDirError, check_serveable

    try:
        settings = load_settings(resolve_serverdir(serverdir))
    except ValueError as exc:  # a setting lockgate.toml spells wrong (docs_url)
        raise click.ClickException(str(exc)) from None
    try:
        check_serveable(settings)
    except ServerDirError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


def print_password(result_password: str) -> None:
    click.echo("")
    click.echo("  Generated password for the 'root' user (shown only this once):")
    click.echo(f"    {result_password}")
    click.echo("")


def in_child_process(work: Callable[[], None]) -> None:
    """Run `work` in a forked child and wait for it; its failure is this command's.

    `serve` initialises a new server directory this way: the migrations import
    Alembic and Mako and the bootstrap builds its own engine, ~10 MiB that a server
    process would otherwise carry for its whole life (bench/README.md, "Second pass").
    Called before any thread starts. Where there is no fork, `work` runs here."""
    if not hasattr(os, "fork"):
        work()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: report like the command would, then leave at once
        code = 0
        try:
            work()
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - anything else is shown as a traceback
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(code)


def do_init(
    settings: Settings,
    *,
    db_given: bool,
    root_password: str | None,
    upstream: str | None,
    show_password: bool = True,
) -> None:
    """Create the server directory `settings` names, printing a generated root password."""
    from lockgate.accounts.passwords import generate_password
    from lockgate.serverdir import ServerDirError, init_serverdir

    try:
        result = init_serverdir(
            settings,
            db_url_given=db_given,
            root_password=root_password,
            upstream=upstream,
            generate_password=generate_password,
        )
    except ServerDirError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Initialised lockgate server directory {settings.serverdir}")
    if result.generated and show_password:
        print_password(result.root_password)
