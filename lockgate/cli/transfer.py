"""`lockgate export` and `lockgate import`: bundles across an air gap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.progress import Progress

from lockgate.cli.common import SERVERDIR_OPTION, do_init, ready_settings, resolve_serverdir
from lockgate.db.session import Database
from lockgate.domains import build_registry
from lockgate.storage.blobs import BlobStore


@click.command("export")
@SERVERDIR_OPTION
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--since",
    type=int,
    default=0,
    show_default=True,
    help="Only what came after this serial (the last one the target imported).",
)
def export_command(serverdir: Path | None, out: Path, since: int) -> None:
    """Write the changelog (after --since) and the files it needs to a bundle OUT."""
    from lockgate.transfer.exporter import ExportError, export_bundle

    settings = ready_settings(serverdir)

    async def run() -> None:
        db = Database(settings.db_url)
        try:
            with Progress() as progress:
                task = progress.add_task("exporting blobs", total=None)
                result = await export_bundle(
                    db,
                    BlobStore(settings.blob_dir, settings.tmp_dir),
                    build_registry(),
                    out,
                    since,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        except ExportError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await db.dispose()
        click.echo(
            f"exported serials {result.from_serial + 1}..{result.to_serial} "
            f"({result.entries} entries, {result.blobs} files) to {result.path}; "
            f"next time: --since {result.to_serial}"
        )

    asyncio.run(run())


@click.command("import")
@SERVERDIR_OPTION
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def import_command(serverdir: Path | None, bundle: Path) -> None:
    """Verify BUNDLE completely, then apply it (all or nothing). A server directory
    that does not exist yet is created first, so the closed side needs one command."""
    from lockgate.config import load_settings
    from lockgate.serverdir import is_serverdir
    from lockgate.transfer.importer import ImportRefused, import_bundle

    path = resolve_serverdir(serverdir)
    created = not is_serverdir(path)
    if created:
        # A full bundle brings root and every user with their passwords: the root
        # password made here is replaced by the source's, so it is not shown.
        do_init(
            load_settings(path),
            db_given=False,
            root_password=None,
            upstream=None,
            show_password=False,
        )
    settings = ready_settings(path)

    async def run() -> None:
        db = Database(settings.db_url)
        try:
            with Progress() as progress:
                task = progress.add_task("verifying blobs", total=None)
                result = await import_bundle(
                    db,
                    BlobStore(settings.blob_dir, settings.tmp_dir),
                    build_registry(),
                    bundle,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        except ImportRefused as exc:
            created_note = f" ({path} was created, empty)" if created else ""
            raise click.ClickException(
                f"import refused, nothing was changed{created_note}: {exc}"
            ) from None
        finally:
            await db.dispose()
        click.echo(
            f"imported serials {result.from_serial + 1}..{result.to_serial} of server "
            f"{result.source_server_id} ({result.entries} entries, {result.blobs} files)"
        )

    asyncio.run(run())
