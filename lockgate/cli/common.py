"""What several commands share: the --serverdir option and opening a server
directory that is ready to use (exists, schema current)."""

from __future__ import annotations

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

    settings = load_settings(resolve_serverdir(serverdir))
    try:
        check_serveable(settings)
    except ServerDirError as exc:
        raise click.ClickException(str(exc)) from None
    return settings
