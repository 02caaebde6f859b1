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
    does not use: Alembic, rich's progress bars, the admin commands' client, the
    description renderers (readme_renderer, docutils: imported on first use)."""
    code = (
        "import sys; import lockgate.cli.main, lockgate.server.app, lockgate.server.workers;"
        "from lockgate.serverdir import check_serveable;"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith("
        "('alembic', 'rich.progress', 'lockgate.cli.admin', 'lockgate.cli.mirror',"
        "'readme_renderer', 'docutils')))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
