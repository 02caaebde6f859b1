"""`lockgate export` and `lockgate import`: bundles across an air gap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.progress import Progress

from lockgate.cli.common import SERVERDIR_OPTION, do_init, ready_settings, resolve_serverdir
from lockgate.config import Settings
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
@click.argument(
    "bundle", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=False
)
@click.option(
    "--from-devpi",
    "devpi_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Import the directory devpi-server's `devpi-export DIR` wrote, instead of a bundle.",
)
def import_command(serverdir: Path | None, bundle: Path | None, devpi_dir: Path | None) -> None:
    """Verify BUNDLE (or a devpi export, --from-devpi DIR) completely, then apply it
    (all or nothing). A server directory that does not exist yet is created first,
    so the closed side needs one command."""
    from lockgate.config import load_settings
    from lockgate.serverdir import is_serverdir
    from lockgate.transfer.importer import ImportRefused, import_bundle

    if (bundle is None) == (devpi_dir is None):
        raise click.UsageError("give a BUNDLE, or --from-devpi DIR (not both)")
    path = resolve_serverdir(serverdir)
    created = not is_serverdir(path)
    if created:
        # A full bundle (or a devpi export) brings root and every user with their
        # passwords: the root password made here is replaced, so it is not shown.
        do_init(
            load_settings(path),
            db_given=False,
            root_password=None,
            upstream=None,
            show_password=False,
        )
    settings = ready_settings(path)
    created_note = f" ({path} was created, empty)" if created else ""
    if devpi_dir is not None:
        _import_devpi(settings, devpi_dir, created_note)
        return
    assert bundle is not None

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


def _import_devpi(settings: Settings, directory: Path, created_note: str) -> None:
    from lockgate.transfer.devpi import import_devpi_export
    from lockgate.transfer.importer import ImportRefused

    async def run() -> None:
        db = Database(settings.db_url)
        try:
            result = await import_devpi_export(
                db, BlobStore(settings.blob_dir, settings.tmp_dir), directory
            )
        except ImportRefused as exc:
            raise click.ClickException(
                f"devpi import refused, nothing was changed{created_note}: {exc}"
            ) from None
        finally:
            await db.dispose()
        click.echo(
            f"imported from devpi-server {result.devpi_version}: {result.users} users, "
            f"{result.indexes} indexes, {result.projects} projects, {result.releases} "
            f"releases, {result.files} files, {result.yanks} yanks, "
            f"{result.test_results} test results, {result.docs} documentation zips"
        )
        if result.must_reset:
            click.echo(
                "users whose devpi password hash cannot be carried (set a new password for "
                f"each, as root: lockgate user modify NAME --password ...): "
                f"{', '.join(result.must_reset)}"
            )
        if result.docs_not_imported:
            click.echo(
                f"documentation not imported (lockgate keeps docs with a release's files), "
                f"{len(result.docs_not_imported)}: {'; '.join(result.docs_not_imported)}"
            )
        if result.mirror_files_skipped:
            click.echo(
                f"files of devpi mirror indexes not imported (lockgate fetches them from the "
                f"upstream again): {result.mirror_files_skipped}"
            )
        for note in result.notes:
            click.echo(f"note: {note}")

    asyncio.run(run())
