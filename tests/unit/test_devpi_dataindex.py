"""Reading devpi-server's export directory (docs/reliability.md DX-4): an older
dumpversion 1 export (md5 only, no file versions) is read; a file that does not
match devpi's md5 is refused, and no temp file stays behind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lockgate.storage.blobs import BlobStore
from lockgate.transfer.devpi import read_dataindex, stage_files
from lockgate.transfer.importer import ImportRefused
from tests.support.dists import make_wheel


def _export(root: Path, md5: str | None = None) -> Path:
    wheel = make_wheel(root / "alice" / "dev" / "alpha" / "1.0", "alpha", "1.0")
    data = {
        "dumpversion": "1",
        "pythonversion": [2, 7, 18],
        "devpi_server": "2.6.0",
        "users": {
            "root": {"pwsalt": "c2FsdA==", "pwhash": "0" * 64, "username": "root"},
            "alice": {"pwsalt": "c2FsdA==", "pwhash": "1" * 64, "email": "a@example.org"},
        },
        "indexes": {
            "alice/dev": {
                "indexconfig": {
                    "type": "stage",
                    "bases": ["root/pypi", "root/gone"],
                    "volatile": True,
                    "acl_upload": ["alice"],
                    "pypi_whitelist": ["six"],
                    "uploadtrigger_jenkins": None,
                },
                "projects": {"alpha": {"1.0": {"name": "alpha", "version": "1.0"}}},
                "files": [
                    {
                        "type": "releasefile",
                        "projectname": "alpha",
                        "relpath": str(wheel.relative_to(root)),
                        "entrymapping": {
                            "md5": md5 or hashlib.md5(wheel.read_bytes()).hexdigest(),
                            "last_modified": "Tue, 01 Mar 2016 10:00:00 GMT",
                        },
                    }
                ],
            }
        },
    }
    (root / "dataindex.json").write_text(json.dumps(data))
    return root


def test_dumpversion_1_is_read(tmp_path: Path) -> None:
    root = _export(tmp_path / "export")
    plan = read_dataindex(root)
    assert [u.name for u in plan.users] == ["alice", "root"]
    assert all(u.password_hash and u.password_hash.startswith("devpi-sha256$") for u in plan.users)
    (index,) = plan.indexes
    # root/pypi stays (every lockgate server has it, as devpi's import assumes too).
    assert index.config["bases"] == ["root/pypi"]
    assert index.config["mirror_whitelist"] == ["six"]  # devpi 2's pypi_whitelist
    assert any("root/gone" in note for note in plan.notes)
    (item,) = plan.files
    assert (item.version, item.upload_time) == ("1.0", "2016-03-01T10:00:00.000000Z")
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    blobs.ensure_dirs()
    temps = stage_files(root, plan, blobs)
    assert item.payload is not None and item.payload.core_metadata_sha256
    for temp in temps:
        blobs.discard(temp)


def test_md5_mismatch_is_refused_leaving_no_temp(tmp_path: Path) -> None:
    root = _export(tmp_path / "export", md5="0" * 32)
    plan = read_dataindex(root)
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    blobs.ensure_dirs()
    with pytest.raises(ImportRefused, match="does not match the md5 devpi recorded"):
        stage_files(root, plan, blobs)
    assert list((tmp_path / "tmp").iterdir()) == []
