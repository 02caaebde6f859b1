"""`lockgate` commands: init, serve, migrate, and the user/index admin wrappers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from lockgate import __version__
from lockgate.cli.common import SERVERDIR_OPTION, do_init, in_child_process, ready_settings
from lockgate.cli.common import resolve_serverdir as _serverdir
from lockgate.config import PRIMARY_PASSWORD_REFUSED, load_settings

# Commands from other modules, imported only when run (or listed in --help): their
# imports (rich, the HTTP client, the changelog replay) would double the start-up
# of `lockgate serve`, which needs none of them.
LAZY_COMMANDS = {
    "user": "lockgate.cli.admin:user_group",
    "index": "lockgate.cli.admin:index_group",
    "token": "lockgate.cli.admin:token_group",
    "hook": "lockgate.cli.admin:hook_group",
    "namespace": "lockgate.cli.admin:namespace_group",
    "mirror": "lockgate.cli.mirror:mirror_group",
    "export": "lockgate.cli.transfer:export_command",
    "import": "lockgate.cli.transfer:import_command",
    "log": "lockgate.cli.log:log_command",
    "test": "lockgate.cli.workflow:run_tests_command",
    "push": "lockgate.cli.workflow:push_command",
}


class LazyGroup(click.Group):
    """click's documented lazy-loading pattern: subcommands named in LAZY_COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="lockgate")
def main() -> None:
    """lockgate: a private Python package index for closed networks."""


@main.command()
@SERVERDIR_OPTION
@click.option("--db", envvar="LOCKGATE_DB", help="Database URL (default: SQLite in the serverdir).")
@click.option("--root-password", envvar="LOCKGATE_ROOT_PASSWORD", help="Password for 'root'.")
@click.option("--upstream", help="Upstream simple index for root/pypi (default: PyPI).")
@click.option(
    "--upstream-allow",
    multiple=True,
    help="Private host or network upstreams may use (repeat); kept in lockgate.toml.",
)
def init(
    serverdir: Path | None,
    db: str | None,
    root_password: str | None,
    upstream: str | None,
    upstream_allow: tuple[str, ...],
) -> None:
    """Create a server directory, its database, the root user and root/pypi."""
    settings = load_settings(
        _serverdir(serverdir), db=db, upstream_allow=",".join(upstream_allow) or None
    )
    do_init(settings, db_given=db is not None, root_password=root_password, upstream=upstream)


@main.command()
@SERVERDIR_OPTION
@click.option("--db", envvar="LOCKGATE_DB", help="Database URL (only used when initialising).")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 3141).")
@click.option(
    "--root-password", envvar="LOCKGATE_ROOT_PASSWORD", help="Root password (first start only)."
)
@click.option("--upstream", help="Upstream for root/pypi (first start only).")
@click.option(
    "--upstream-allow",
    multiple=True,
    help="Private host or network upstreams may use (repeat).",
)
@click.option(
    "--hook-allow",
    multiple=True,
    help="Private host or network webhooks may target (repeat), e.g. a Jenkins on the LAN.",
)
@click.option(
    "--allow-self-registration/--no-allow-self-registration",
    default=None,
    help="Let anyone create a user (default: only root).",
)
@click.option(
    "--max-upload-bytes", type=int, default=None, help="Largest file accepted (default 100 MiB)."
)
@click.option(
    "--primary",
    "primary_url",
    default=None,
    help="Run as a read-only replica following this primary (or replica) URL.",
)
@click.option(
    "--primary-token",
    envvar="LOCKGATE_PRIMARY_TOKEN",
    default=None,
    help="A token of the primary's root with the 'replicate' scope.",
)
@click.option("--primary-password", envvar="LOCKGATE_PRIMARY_PASSWORD", hidden=True)
@click.option(
    "--public-url",
    default=None,
    help="URL clients use to reach this server, behind a TLS proxy (e.g. https://pypi.corp).",
)
@click.option(
    "--docs-url",
    default=None,
    help="Origin that serves documentation pages (e.g. https://docs.pypi.corp, the same "
    "server under another host name); doc requests on other hosts are redirected there.",
)
@click.option(
    "--docs-max-upload-bytes",
    type=int,
    default=None,
    help="Largest documentation zip accepted (default 50 MiB).",
)
@click.option(
    "--docs-max-unpacked-bytes",
    type=int,
    default=None,
    help="Most a documentation zip may unpack to (default 200 MiB).",
)
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]), default=None)
@click.option(
    "--workers",
    envvar="LOCKGATE_WORKERS",
    type=click.IntRange(min=1, max=256),
    default=None,
    help="Processes serving the port (default: the number of cores; 1 runs no supervisor).",
)
def serve(
    serverdir: Path | None,
    db: str | None,
    host: str | None,
    port: int | None,
    root_password: str | None,
    upstream: str | None,
    upstream_allow: tuple[str, ...],
    hook_allow: tuple[str, ...],
    allow_self_registration: bool | None,
    max_upload_bytes: int | None,
    primary_url: str | None,
    primary_token: str | None,
    primary_password: str | None,
    public_url: str | None,
    docs_url: str | None,
    docs_max_upload_bytes: int | None,
    docs_max_unpacked_bytes: int | None,
    log_format: str | None,
    workers: int | None,
) -> None:
    """Serve the index until SIGINT/SIGTERM (initialising a new directory first)."""
    import asyncio

    from lockgate.logs import configure_logging
    from lockgate.server.app import create_app
    from lockgate.server.workers import (
        Supervisor,
        WorkersFailed,
        check_port_free,
        default_workers,
        limit_malloc_arenas,
        serve_app,
    )
    from lockgate.serverdir import ServerDirError, check_serveable, clean_tmp, is_serverdir

    path = _serverdir(serverdir)
    flags = {
        "db": db,
        "host": host,
        "port": port,
        "allow_self_registration": allow_self_registration,
        "upstream_allow": ",".join(upstream_allow) or None,
        "hook_allow": ",".join(hook_allow) or None,
        "max_upload_bytes": max_upload_bytes,
        "public_url": public_url,
        "primary_url": primary_url,
        "primary_token": primary_token,
        "primary_password": primary_password,
        "log_format": log_format,
        "docs_url": docs_url,
        "docs_max_upload_bytes": docs_max_upload_bytes,
        "docs_max_unpacked_bytes": docs_max_unpacked_bytes,
    }
    try:
        settings = load_settings(path, **flags)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if settings.primary_password_given:
        raise click.ClickException(PRIMARY_PASSWORD_REFUSED)
    if settings.is_replica and not settings.primary_token:
        raise click.ClickException(
            f"a replica needs a token to follow {settings.primary_url}: on the primary, as "
            "root, run `lockgate token create --name replica --scope replicate` and pass it "
            "with --primary-token or LOCKGATE_PRIMARY_TOKEN"
        )
    if not is_serverdir(path):
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise click.ClickException(
                f"{path} is not empty and is not a lockgate server directory; refusing to use it"
            )
        if settings.is_replica:

            def init() -> None:
                from lockgate.serverdir import init_replica

                try:
                    init_replica(settings, db_url_given=db is not None)
                except ServerDirError as exc:
                    raise click.ClickException(str(exc)) from None
                click.echo(f"Initialised replica {path} of {settings.primary_url}")

        else:

            def init() -> None:
                do_init(
                    settings,
                    db_given=db is not None,
                    root_password=root_password,
                    upstream=upstream,
                )

        in_child_process(init)
        settings = load_settings(path, **flags)
    try:
        check_serveable(settings)
    except ServerDirError as exc:
        raise click.ClickException(str(exc)) from None
    clean_tmp(settings)
    configure_logging(settings.log_format)
    limit_malloc_arenas()
    count = workers or default_workers()
    where = f"http://{settings.host}:{settings.port}/"
    if count == 1:
        click.echo(f"lockgate {__version__} serving {path} on {where}")
        sys.stdout.flush()
        asyncio.run(serve_app(lambda: create_app(settings), settings))
        return
    try:
        check_port_free(settings.host, settings.port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {where}: {exc.strerror or exc}") from None
    click.echo(f"lockgate {__version__} serving {path} on {where} with {count} workers")

    def run_worker(index: int, ready: Callable[[], None]) -> None:
        # Worker 0 leads: it alone runs the once-per-server loops.
        app = lambda: create_app(settings, leader=index == 0)  # noqa: E731
        asyncio.run(serve_app(app, settings, reuse_port=True, ready=ready))

    try:
        Supervisor(count, run_worker).run()
    except WorkersFailed as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@SERVERDIR_OPTION
def migrate(serverdir: Path | None) -> None:
    """Upgrade the server directory's database schema to this version of lockgate."""
    from lockgate import migrations
    from lockgate.serverdir import is_serverdir

    path = _serverdir(serverdir)
    if not is_serverdir(path):
        raise click.ClickException(f"{path} is not a lockgate server directory")
    settings = load_settings(path)
    before = migrations.current_revision(settings.db_url)
    migrations.upgrade(settings.db_url)
    after = migrations.current_revision(settings.db_url)
    click.echo(f"schema {before} -> {after}" if before != after else f"schema already at {after}")
    _check_case_lookalikes(settings.db_url)


def _check_case_lookalikes(db_url: str) -> None:
    """After upgrading: list names that differ only in case (left from before names
    became case-insensitive), and enforce uniqueness in the database where none are
    left."""
    import asyncio

    from lockgate import migrations
    from lockgate.accounts.services import case_lookalike_users
    from lockgate.db.session import Database
    from lockgate.indexes.services import case_lookalike_indexes

    async def find() -> tuple[list[list[str]], list[list[str]]]:
        db = Database(db_url)
        try:
            async with db.read() as session:
                return await case_lookalike_users(session), await case_lookalike_indexes(session)
        finally:
            await db.dispose()

    users, indexes = asyncio.run(find())
    for plural, singular, groups in (("users", "user", users), ("indexes", "index", indexes)):
        for group in groups:
            click.echo(
                f"warning: {plural} differing only in case: {', '.join(group)}. Delete all "
                "but one, then run `lockgate migrate` again; until then the database does "
                f"not enforce unique {singular} names regardless of case (lockgate still "
                "refuses new look-alikes)",
                err=True,
            )
    for name in migrations.enforce_case_indexes(db_url, users=not users, indexes=not indexes):
        click.echo(f"created unique index {name}: look-alike names resolved")


@main.command()
@SERVERDIR_OPTION
@click.option("--dry-run", is_flag=True, help="Report what would be removed; change nothing.")
@click.option(
    "--min-age",
    type=float,
    default=3600.0,
    show_default=True,
    help="Keep unreferenced blobs and temp files younger than this many seconds.",
)
def gc(serverdir: Path | None, dry_run: bool, min_age: float) -> None:
    """Remove blobs nothing references (and mirrored files the upstream dropped)."""
    import asyncio

    from rich.progress import Progress

    from lockgate.db.session import Database
    from lockgate.domains import build_registry
    from lockgate.maintenance.gc import collect_garbage
    from lockgate.storage.blobs import BlobStore

    settings = ready_settings(serverdir)

    async def run() -> None:
        db = Database(settings.db_url)
        await db.load_serial()
        try:
            with Progress() as progress:
                task = progress.add_task("checking blobs", total=None)
                report = await collect_garbage(
                    db,
                    BlobStore(settings.blob_dir, settings.tmp_dir),
                    build_registry(),
                    dry_run=dry_run,
                    min_age=min_age,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        finally:
            await db.dispose()
        verb = "would remove" if dry_run else "removed"
        click.echo(
            f"{verb} {report.blobs_removed} blob(s), {report.bytes_removed} bytes; "
            f"kept {report.blobs_kept}; {verb} {report.temp_removed} temp file(s); "
            f"forgot {report.forgotten_files} mirrored file(s) no longer listed upstream"
        )

    asyncio.run(run())


@main.command()
@SERVERDIR_OPTION
def fsck(serverdir: Path | None) -> None:
    """Check the changelog chain and every referenced blob; exit 1 on a problem."""
    import asyncio

    from rich.progress import Progress

    from lockgate.db.session import Database
    from lockgate.domains import build_registry
    from lockgate.maintenance.fsck import fsck as run_fsck
    from lockgate.storage.blobs import BlobStore

    settings = ready_settings(serverdir)

    async def run() -> bool:
        db = Database(settings.db_url)
        try:
            with Progress() as progress:
                task = progress.add_task("verifying blobs", total=None)
                report = await run_fsck(
                    db,
                    BlobStore(settings.blob_dir, settings.tmp_dir),
                    build_registry(),
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        finally:
            await db.dispose()
        for problem in report.problems:
            click.echo(f"PROBLEM {problem}")
        for orphan in report.orphans:
            click.echo(f"orphan blob {orphan} (lockgate gc removes it)")
        for temp in report.temp_files:
            click.echo(f"temp file {temp}")
        click.echo(
            f"{report.entries} changelog entries, {report.blobs_checked} blobs verified, "
            f"{len(report.problems)} problem(s), {len(report.orphans)} orphan(s)"
        )
        return report.ok

    if not asyncio.run(run()):
        sys.exit(1)


@main.command()
@SERVERDIR_OPTION
def reindex(serverdir: Path | None) -> None:
    """Rebuild the search index from the current state (only to repair a damaged one:
    uploads, replicas and imports keep it current by themselves)."""
    import asyncio

    from lockgate.db.session import Database
    from lockgate.search.services import rebuild

    settings = ready_settings(serverdir)

    async def run() -> None:
        db = Database(settings.db_url)
        try:
            counts = await rebuild(db)
        finally:
            await db.dispose()
        click.echo(
            f"search index rebuilt: {counts.stage} stage project(s), {counts.mirror} cached "
            f"mirror project(s) (was {counts.before} row(s))"
        )

    asyncio.run(run())


@main.command()
@SERVERDIR_OPTION
def promote(serverdir: Path | None) -> None:
    """Turn a (stopped) replica into a primary: it stops following and takes writes."""
    from lockgate.serverdir import ServerDirError
    from lockgate.serverdir import promote as promote_serverdir

    path = _serverdir(serverdir)
    try:
        primary = promote_serverdir(path)
    except (ServerDirError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{path} no longer follows {primary}; start it with `lockgate serve` to take writes "
        "(and point clients and other replicas at it)"
    )
