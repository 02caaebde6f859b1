"""Tests for :mod:`tests.support.dists`: the wheels and sdists they build are real.

Filenames parse with :mod:`packaging`, ``RECORD`` hashes verify, metadata parses
and validates, and pip and uv install the wheels offline.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tomllib
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

try:
    from tests.support.dists import (
        PAYLOAD_FILENAME,
        make_sdist,
        make_wheel,
        sha256_file,
        wheel_metadata,
    )
except ModuleNotFoundError:  # pragma: no cover - rootdir not on sys.path (no tests/unit/__init__)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.dists import (
        PAYLOAD_FILENAME,
        make_sdist,
        make_wheel,
        sha256_file,
        wheel_metadata,
    )

VENV_BIN = Path(sys.executable).parent
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
UV = VENV_BIN / "uv"
SUBPROCESS_TIMEOUT = 120

NAME = "Lockgate_Test.Pkg"
MODULE = "lockgate_test_pkg"


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """Environment for pip/uv subprocesses: no user config, no network, private caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PIP_NO_CACHE_DIR="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_NO_CONFIG="1",
        UV_OFFLINE="1",
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _import_version(target: Path, module: str, env: dict[str, str]) -> str:
    """Import ``module`` from ``target`` in a fresh interpreter and return its __version__."""
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); "
        f"import {module}; assert {module}.__file__.startswith({str(target)!r}); "
        f"print({module}.__version__)"
    )
    return _run([PYTHON, "-I", "-c", code], env).stdout.strip()


def _verify_record(path: Path) -> dict[str, tuple[str, str]]:
    """Check every RECORD entry against the archive; return the parsed RECORD."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows: dict[str, tuple[str, str]] = {}
        for line in zf.read(record_name).decode("utf-8").splitlines():
            arcname, hash_, size = line.rsplit(",", 2)
            rows[arcname] = (hash_, size)
        assert set(rows) == set(names)
        assert rows[record_name] == ("", "")
        for arcname, (hash_, size) in rows.items():
            if arcname == record_name:
                continue
            algo, _, expected = hash_.partition("=")
            assert algo == "sha256"
            digest = hashlib.sha256()
            length = 0
            with zf.open(arcname) as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(chunk)
                    length += len(chunk)
            actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
            assert actual == expected, arcname
            assert int(size) == length, arcname
        return rows


def test_wheel_filename_parses(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, NAME, "1.2.0")
    assert wheel.name == f"{MODULE}-1.2.0-py3-none-any.whl"
    name, version, build, tags = parse_wheel_filename(wheel.name)
    assert name == canonicalize_name(NAME)
    assert version == Version("1.2.0")
    assert build == ()
    assert tags == frozenset({Tag("py3", "none", "any")})


def test_wheel_layout_and_record(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, NAME, "1.0")
    rows = _verify_record(wheel)
    assert set(rows) == {
        f"{MODULE}/__init__.py",
        f"{MODULE}-1.0.dist-info/METADATA",
        f"{MODULE}-1.0.dist-info/WHEEL",
        f"{MODULE}-1.0.dist-info/RECORD",
    }
    with zipfile.ZipFile(wheel) as zf:
        assert zf.testzip() is None
        wheel_file = zf.read(f"{MODULE}-1.0.dist-info/WHEEL").decode()
        init = zf.read(f"{MODULE}/__init__.py").decode()
    assert wheel_file.splitlines()[:4] == [
        "Wheel-Version: 1.0",
        wheel_file.splitlines()[1],
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
    ]
    assert wheel_file.splitlines()[1].startswith("Generator: ")
    assert "__version__ = '1.0'" in init


def test_wheel_metadata_fields(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        NAME,
        "2.0rc1",
        requires_python=">=3.9",
        requires_dist=["requests>=2", 'tomli; python_version < "3.11"'],
        summary="a summary",
        extra_metadata={"Author": "Somebody", "Keywords": "a,b"},
    )
    raw = wheel_metadata(wheel)
    assert raw.startswith(b"Metadata-Version: 2.1\n")
    meta = Metadata.from_email(raw, validate=True)
    assert meta.name == NAME  # as given, not normalized
    assert meta.version == Version("2.0rc1")
    assert meta.summary == "a summary"
    assert str(meta.requires_python) == ">=3.9"
    assert [str(r) for r in meta.requires_dist or []] == [
        "requests>=2",
        'tomli; python_version < "3.11"',
    ]
    assert meta.author == "Somebody"
    assert meta.keywords == ["a", "b"]


def test_wheel_metadata_minimal(tmp_path: Path) -> None:
    raw = wheel_metadata(make_wheel(tmp_path, "plain", "0.1"))
    assert raw == b"Metadata-Version: 2.1\nName: plain\nVersion: 0.1\nSummary: test package\n\n"


def test_wheel_custom_tag_and_module_source(tmp_path: Path) -> None:
    source = "__version__ = 'custom'\nVALUE = 42\n"
    wheel = make_wheel(tmp_path, "multi", "3.0", tag="py2.py3-none-any", module_source=source)
    assert wheel.name == "multi-3.0-py2.py3-none-any.whl"
    _, _, _, tags = parse_wheel_filename(wheel.name)
    assert tags == frozenset({Tag("py2", "none", "any"), Tag("py3", "none", "any")})
    _verify_record(wheel)
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("multi/__init__.py").decode() == source
        wheel_file = zf.read("multi-3.0.dist-info/WHEEL").decode()
    assert "Tag: py2-none-any\nTag: py3-none-any\n" in wheel_file


def test_wheel_is_deterministic(tmp_path: Path) -> None:
    kwargs = {"requires_python": ">=3.8", "requires_dist": ["attrs"]}
    a = make_wheel(tmp_path / "a", NAME, "1.0", **kwargs)
    b = make_wheel(tmp_path / "b", NAME, "1.0", **kwargs)
    assert a.read_bytes() == b.read_bytes()
    assert sha256_file(a) == hashlib.sha256(a.read_bytes()).hexdigest()
    c = make_wheel(tmp_path / "c", NAME, "1.1", **kwargs)
    assert sha256_file(a) != sha256_file(c)


def test_pip_installs_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "dist", NAME, "4.5.6", requires_python=">=3.8")
    target = tmp_path / "target"
    env = _isolated_env(tmp_path)
    _run([PYTHON, "-m", "pip", "install", "--no-index", "--target", str(target), str(wheel)], env)
    assert (target / MODULE / "__init__.py").is_file()
    installed = target / f"{MODULE}-4.5.6.dist-info"
    assert (installed / "METADATA").read_bytes() == wheel_metadata(wheel)
    assert _import_version(target, MODULE, env) == "4.5.6"


@pytest.mark.skipif(not UV.exists(), reason="uv is not installed in the venv")
def test_uv_installs_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "dist", NAME, "7.8.9")
    target = tmp_path / "target"
    env = _isolated_env(tmp_path)
    cmd = [str(UV), "pip", "install", "--no-index", "--python", PYTHON, "--target", str(target)]
    _run([*cmd, str(wheel)], env)
    assert (target / f"{MODULE}-7.8.9.dist-info" / "METADATA").is_file()
    assert _import_version(target, MODULE, env) == "7.8.9"


def test_large_payload_is_streamed(tmp_path: Path) -> None:
    size = 20 * 1024 * 1024
    tracemalloc.start()
    try:
        wheel = make_wheel(tmp_path, "bigpkg", "1.0", payload_size=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024, f"peak traced memory {peak} bytes"
    assert wheel.stat().st_size > size
    rows = _verify_record(wheel)
    assert rows[f"bigpkg/{PAYLOAD_FILENAME}"][1] == str(size)


def test_sdist_filename_and_contents(tmp_path: Path) -> None:
    sdist = make_sdist(
        tmp_path, NAME, "1.0.post1", requires_python=">=3.10", requires_dist=["click>=8"]
    )
    assert sdist.name == f"{MODULE}-1.0.post1.tar.gz"
    name, version = parse_sdist_filename(sdist.name)
    assert name == canonicalize_name(NAME)
    assert version == Version("1.0.post1")

    top = f"{MODULE}-1.0.post1"
    with tarfile.open(sdist, "r:gz") as tar:
        members = tar.getnames()
        assert {m.split("/", 1)[0] for m in members} == {top}
        pkg_info = tar.extractfile(f"{top}/PKG-INFO").read()  # type: ignore[union-attr]
        pyproject = tomllib.loads(tar.extractfile(f"{top}/pyproject.toml").read().decode())  # type: ignore[union-attr]
        init = tar.extractfile(f"{top}/{MODULE}/__init__.py").read().decode()  # type: ignore[union-attr]
    assert pkg_info.startswith(b"Metadata-Version: 2.1\n")
    meta = Metadata.from_email(pkg_info, validate=True)
    assert meta.name == NAME
    assert meta.version == Version("1.0.post1")
    assert str(meta.requires_python) == ">=3.10"
    assert [str(r) for r in meta.requires_dist or []] == ["click>=8"]
    assert pyproject["build-system"] == {
        "requires": ["setuptools>=61"],
        "build-backend": "setuptools.build_meta",
    }
    assert pyproject["project"]["name"] == NAME
    assert pyproject["project"]["version"] == "1.0.post1"
    assert pyproject["project"]["requires-python"] == ">=3.10"
    assert pyproject["project"]["dependencies"] == ["click>=8"]
    assert "__version__ = '1.0.post1'" in init


def test_sdist_is_deterministic(tmp_path: Path) -> None:
    a = make_sdist(tmp_path / "a", NAME, "1.0")
    b = make_sdist(tmp_path / "b", NAME, "1.0")
    assert a.read_bytes() == b.read_bytes()


def _setuptools_can_build_wheels() -> bool:
    """True when the venv's setuptools builds wheels without fetching anything."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    # setuptools < 70.1 needs the separate ``wheel`` package for bdist_wheel.
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.skipif(
    not _setuptools_can_build_wheels(), reason="setuptools cannot build wheels offline here"
)
def test_pip_installs_sdist_offline(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "dist", NAME, "0.3.0")
    target = tmp_path / "target"
    env = _isolated_env(tmp_path)
    cmd = [PYTHON, "-m", "pip", "install", "--no-index", "--no-build-isolation"]
    _run([*cmd, "--target", str(target), str(sdist)], env)
    assert _import_version(target, MODULE, env) == "0.3.0"
