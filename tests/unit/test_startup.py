"""What `lockgate serve` does at start-up without Alembic must agree with Alembic."""

from __future__ import annotations

import subprocess
import sys

from alembic.script import ScriptDirectory

from lockgate import migrations


def test_head_revision_read_from_the_files_is_alembics_head() -> None:
    alembic_head = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    assert migrations.head_revision() == alembic_head.get_current_head()


def test_current_revision_of_an_empty_and_a_migrated_database(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    assert migrations.current_revision(url) is None
    migrations.upgrade(url)
    assert migrations.current_revision(url) == migrations.head_revision()


def test_serve_imports_neither_alembic_nor_the_other_commands() -> None:
    """The start-up of `lockgate serve` (and so of every worker) pays for no module it
    does not use: Alembic, rich (neither its progress bars nor, through structlog.dev, its
    tracebacks and pygments), the admin commands' client, the description renderers
    (readme_renderer, docutils), Jinja2 (the first page rendered imports it) and the
    PostgreSQL dialect (imported by a server on PostgreSQL when it first needs it)."""
    code = (
        "import sys; import lockgate.cli.main, lockgate.server.app, lockgate.server.workers;"
        "from lockgate.serverdir import check_serveable;"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith("
        "('alembic', 'rich', 'pygments', 'lockgate.cli.admin', 'lockgate.cli.mirror',"
        "'readme_renderer', 'docutils', 'jinja2', 'sqlalchemy.dialects.postgresql')))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


def test_rich_stays_importable_and_console_logs_use_plain_tracebacks() -> None:
    """Hiding rich from structlog's import (lockgate/__init__.py) leaves rich importable
    for the commands that draw progress bars, and a console log renders an exception
    with the plain traceback formatter."""
    code = (
        "import lockgate, structlog.dev, rich.progress;"
        "from lockgate.logs import configure_logging;"
        "configure_logging('console');"
        "log = structlog.get_logger('t')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('boom')\n"
        "print(structlog.dev.rich is None, rich.progress.Progress.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "Progress"]
    assert "boom" in result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
