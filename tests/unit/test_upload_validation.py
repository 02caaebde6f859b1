"""Tests for :mod:`lockgate.uploads.validation`.

Wheels and sdists are built for real in ``tmp_path`` with :mod:`zipfile` and :mod:`tarfile`
(local helpers below, so each test can break the archive exactly the way it needs). Error
messages are asserted word for word where Warehouse has a message (docs/standards.md section 4).
"""

import hashlib
import io
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from lockgate.uploads import validation
from lockgate.uploads.validation import (
    CheckedDistribution,
    UploadForm,
    UploadRejected,
    check_distribution,
    check_filename,
    parse_upload_form,
)

SEE_CORE_METADATA = (
    "See https://packaging.python.org/specifications/core-metadata for more information."
)
WHEEL_FILE = (
    b"Wheel-Version: 1.0\nGenerator: lockgate-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def metadata_bytes(
    name: str = "foo_bar",
    version: str = "1.0",
    *,
    headers: str = "",
    metadata_version: str = "2.4",
    body: str = "A long description.\n",
) -> bytes:
    """A METADATA / PKG-INFO document."""
    return (
        f"Metadata-Version: {metadata_version}\nName: {name}\nVersion: {version}\n{headers}\n{body}"
    ).encode()


def build_wheel(
    directory: Path,
    filename: str | None = None,
    *,
    name: str = "foo_bar",
    version: str = "1.0",
    metadata: bytes | None = None,
    dist_info: str | None = None,
    omit: Iterable[str] = (),
    extra: Iterable[tuple[str | zipfile.ZipInfo, bytes]] = (),
) -> Path:
    """Write a small valid wheel, optionally without some dist-info files or with extras."""
    dist_info = dist_info or f"{name}-{version}.dist-info"
    filename = filename or f"{name}-{version}-py3-none-any.whl"
    members: list[tuple[str | zipfile.ZipInfo, bytes]] = [
        ("foo_bar/__init__.py", b"VALUE = 1\n"),
        (f"{dist_info}/WHEEL", WHEEL_FILE),
        (
            f"{dist_info}/METADATA",
            metadata if metadata is not None else metadata_bytes(name, version),
        ),
        (f"{dist_info}/RECORD", b""),
    ]
    omitted = set(omit)
    members = [m for m in members if str(m[0]).rsplit("/", 1)[-1] not in omitted]
    members.extend(extra)
    path = directory / filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members:
            archive.writestr(member, data)
    return path


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def build_sdist(
    directory: Path,
    filename: str | None = None,
    *,
    name: str = "foo_bar",
    version: str = "1.0",
    pkg_info: bytes | None = None,
    top: str | None = None,
    with_pkg_info: bool = True,
    extra: Iterable[tuple[tarfile.TarInfo, bytes | None]] = (),
) -> Path:
    """Write a small valid PEP 625 sdist, optionally with extra (possibly hostile) members."""
    top = top or f"{name}-{version}"
    filename = filename or f"{name}-{version}.tar.gz"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        tar_special(top, tarfile.DIRTYPE),
        tar_file(f"{top}/pyproject.toml", b"[project]\nname = 'foo_bar'\n"),
    ]
    if with_pkg_info:
        members.append(
            tar_file(
                f"{top}/PKG-INFO",
                pkg_info if pkg_info is not None else metadata_bytes(name, version),
            )
        )
    members.extend(extra)
    path = directory / filename
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def digests_of(path: Path) -> dict[str, str]:
    """What the server computes while streaming the upload to disk."""
    data = path.read_bytes()
    return {
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake2_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }


def fields(changes: dict[str, str | list[str] | None] | None = None) -> dict[str, list[str]]:
    """A valid wheel upload form (as twine sends it); `changes` overrides or (None) removes."""
    base: dict[str, str | list[str] | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.4",
        "name": "foo_bar",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": "a" * 64,
    }
    base.update(changes or {})
    return {k: [v] if isinstance(v, str) else list(v) for k, v in base.items() if v is not None}


def form_for(path: Path, changes: dict[str, str | list[str] | None] | None = None) -> UploadForm:
    """The form a client would send with the file at `path` (sha256 + blake2_256)."""
    sums = digests_of(path)
    base: dict[str, str | list[str] | None] = {
        "sha256_digest": sums["sha256"],
        "blake2_256_digest": sums["blake2_256"],
    }
    if path.name.endswith(".tar.gz"):
        base.update(filetype="sdist", pyversion="source")
    base.update(changes or {})
    return parse_upload_form(fields(base))


def check(
    path: Path, changes: dict[str, str | list[str] | None] | None = None
) -> CheckedDistribution:
    return check_distribution(form_for(path, changes), path.name, path, digests_of(path))


def rejected(call: Callable[..., Any], *args: Any) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        call(*args)
    return info.value


# --------------------------------------------------------------------------------------------
# UploadRejected
# --------------------------------------------------------------------------------------------


def test_upload_rejected_carries_status_and_message() -> None:
    exc = UploadRejected("nope", status=403)
    assert (exc.status, exc.message, str(exc)) == (403, "nope", "nope")
    assert UploadRejected("x").status == 400


# --------------------------------------------------------------------------------------------
# parse_upload_form
# --------------------------------------------------------------------------------------------


def test_parse_valid_wheel_form() -> None:
    form = parse_upload_form(
        fields(
            {
                "sha256_digest": "AB" * 32,
                "md5_digest": "0123456789abcdef0123456789ABCDEF",
                "summary": "A summary",
                "description": "Long\ntext",
                "author": "UNKNOWN",  # distutils' placeholder is dropped
                "license": "",  # empty counts as absent
                "classifiers": ["Programming Language :: Python", "License :: OSI Approved"],
                "requires_dist": ["requests>=2", "rich; extra == 'cli'"],
                "project_urls": ["Homepage, https://example.invalid"],
                "provides_extra": ["cli"],
                "requires_python": ">=3.9",
                "keywords": "a,b",
                "import_names": ["foo_bar"],  # uv's plural spelling
                "Description-Content-Type": "text/markdown",  # not a form name: ignored
                "comment": "built in CI",
                "gpg_signature": "ignored",
            }
        )
    )
    assert form.name == "foo_bar"
    assert form.version == "1.0"
    assert form.metadata_version == "2.4"
    assert form.filetype == "bdist_wheel"
    assert form.pyversion == "py3"
    assert form.digests == {"md5": "0123456789abcdef0123456789abcdef", "sha256": "ab" * 32}
    assert form.comment == "built in CI"
    assert form.metadata == {
        "metadata_version": "2.4",
        "name": "foo_bar",
        "version": "1.0",
        "summary": "A summary",
        "description": "Long\ntext",
        "classifiers": ["Programming Language :: Python", "License :: OSI Approved"],
        "requires_dist": ["requests>=2", "rich; extra == 'cli'"],
        "project_urls": ["Homepage, https://example.invalid"],
        "provides_extra": ["cli"],
        "requires_python": ">=3.9",
        "keywords": "a,b",
        "import_name": ["foo_bar"],
    }


def test_parse_accepts_singular_import_name_and_merges_spellings() -> None:
    form = parse_upload_form(fields({"import_name": ["a"], "import_names": ["b"]}))
    assert form.metadata["import_name"] == ["a", "b"]


def test_parse_sdist_defaults_pyversion_to_source() -> None:
    form = parse_upload_form(fields({"filetype": "sdist", "pyversion": None}))
    assert form.pyversion == "source"
    assert form.comment is None


def test_parse_escapes_nul() -> None:
    form = parse_upload_form(fields({"summary": "a\x00b"}))
    assert form.metadata["summary"] == "a\\x00b"


@pytest.mark.parametrize("action", [None, "", "frobnicate"])
def test_unknown_or_missing_action(action: str | None) -> None:
    exc = rejected(parse_upload_form, fields({":action": action}))
    assert (exc.status, exc.message) == (400, "Unknown or missing :action")


@pytest.mark.parametrize("action", ["submit", "submit_pkg_info"])
def test_pre_registration_is_gone(action: str) -> None:
    exc = rejected(parse_upload_form, fields({":action": action}))
    assert exc.status == 410
    assert exc.message == (
        "Project pre-registration is no longer required or supported, upload your files instead."
    )


def test_doc_upload_is_gone() -> None:
    exc = rejected(parse_upload_form, fields({":action": "doc_upload"}))
    assert exc.status == 410
    assert exc.message == (
        "Uploading documentation is no longer supported, we recommend using "
        "https://readthedocs.org/."
    )


def test_action_from_query_and_body_is_accepted() -> None:
    assert parse_upload_form(fields({":action": ["file_upload", "file_upload"]})).name == "foo_bar"


def test_protocol_version_defaults_to_one() -> None:
    assert parse_upload_form(fields({"protocol_version": None})).version == "1.0"


@pytest.mark.parametrize("protocol", ["2", "", "0"])
def test_unknown_protocol_version(protocol: str) -> None:
    exc = rejected(parse_upload_form, fields({"protocol_version": protocol}))
    assert (exc.status, exc.message) == (400, "Unknown protocol version.")


@pytest.mark.parametrize("version", sorted(validation.SUPPORTED_METADATA_VERSIONS))
def test_supported_metadata_versions(version: str) -> None:
    assert parse_upload_form(fields({"metadata_version": version})).metadata_version == version


def test_metadata_version_2_6_accepted() -> None:
    assert (
        parse_upload_form(fields({"metadata_version": "2.6"})).metadata["metadata_version"] == "2.6"
    )


@pytest.mark.parametrize("version", ["9.9", "2.0", "3.0", "1.3"])
def test_unsupported_metadata_version(version: str) -> None:
    exc = rejected(parse_upload_form, fields({"metadata_version": version}))
    assert exc.message == f"'{version}' is not a valid metadata version. {SEE_CORE_METADATA}"


def test_missing_metadata_version() -> None:
    exc = rejected(parse_upload_form, fields({"metadata_version": None}))
    assert exc.message == f"'metadata-version' is a required field. {SEE_CORE_METADATA}"


@pytest.mark.parametrize(
    "name", ["foo bar", "-foo", "foo-", "foo\n", "f\u212a", "ſoo", "foo/bar", "."]
)
def test_invalid_name(name: str) -> None:
    exc = rejected(parse_upload_form, fields({"name": name}))
    assert exc.message == (
        f"{name!r} is an invalid value for Name. Error: Start and end with a letter or numeral "
        "containing only ASCII numeric and '.', '_' and '-'. " + SEE_CORE_METADATA
    )


def test_invalid_long_name_is_shortened_in_message() -> None:
    name = "a" * 40 + " " + "b" * 40
    exc = rejected(parse_upload_form, fields({"name": name}))
    assert exc.message.startswith(f"'{'a' * 30}...{'b' * 30}' is an invalid value for Name.")


@pytest.mark.parametrize("name", [None, "UNKNOWN"])
def test_missing_name(name: str | None) -> None:
    exc = rejected(parse_upload_form, fields({"name": name}))
    assert exc.message == (
        f"'' is an invalid value for Name. Error: This field is required. {SEE_CORE_METADATA}"
    )


@pytest.mark.parametrize("name", ["a", "A1", "foo.bar", "Foo_Bar-baz.9"])
def test_valid_names(name: str) -> None:
    assert parse_upload_form(fields({"name": name})).name == name


@pytest.mark.parametrize("version", ["not-a-version", "1.0-beta-x", " 1.0", "1.0\n", "1..0"])
def test_invalid_version(version: str) -> None:
    exc = rejected(parse_upload_form, fields({"version": version}))
    assert exc.message == f"{version!r} is invalid for 'version'. {SEE_CORE_METADATA}"


def test_missing_version() -> None:
    exc = rejected(parse_upload_form, fields({"version": None}))
    assert exc.message == f"'version' is a required field. {SEE_CORE_METADATA}"


@pytest.mark.parametrize("version", ["1.0+cpu", "2!1.0.post1.dev3", "1.0.0rc1", "v1.0"])
def test_valid_versions_including_local(version: str) -> None:
    assert parse_upload_form(fields({"version": version})).version == version


@pytest.mark.parametrize("filetype", ["bdist_egg", "bdist_wininst", "bdist_dumb", "wheel"])
def test_unknown_filetype(filetype: str) -> None:
    exc = rejected(parse_upload_form, fields({"filetype": filetype}))
    assert exc.message == "Invalid value for filetype. Error: Use a known file type."


def test_missing_filetype() -> None:
    exc = rejected(parse_upload_form, fields({"filetype": None}))
    assert exc.message == "Invalid value for filetype. Error: This field is required."


def test_sdist_pyversion_must_be_source() -> None:
    exc = rejected(parse_upload_form, fields({"filetype": "sdist", "pyversion": "py3"}))
    assert exc.message == "Error: Use 'source' as Python version for an sdist."


def test_wheel_requires_pyversion() -> None:
    exc = rejected(parse_upload_form, fields({"pyversion": None}))
    assert exc.message == "Error: Python version is required for binary distribution uploads."


def test_at_least_one_digest() -> None:
    exc = rejected(parse_upload_form, fields({"sha256_digest": ""}))
    assert exc.message == "Error: Include at least one message digest."


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("sha256_digest", "a" * 63, "SHA256"),
        ("sha256_digest", "g" * 64, "SHA256"),
        ("sha256_digest", "a" * 64 + "\n", "SHA256"),
        ("blake2_256_digest", "z" * 64, "BLAKE2"),
        ("md5_digest", "a" * 64, "MD5"),
    ],
)
def test_digest_format(field: str, value: str, label: str) -> None:
    exc = rejected(parse_upload_form, fields({field: value}))
    assert exc.message == (
        f"Invalid value for {field}. Error: Use a valid, hex-encoded, {label} message digest."
    )


def test_md5_only_is_enough() -> None:
    form = parse_upload_form(fields({"sha256_digest": None, "md5_digest": "f" * 32}))
    assert form.digests == {"md5": "f" * 32}


@pytest.mark.parametrize("field", ["summary", "name", "version", "filetype", "requires_python"])
def test_single_value_field_sent_twice(field: str) -> None:
    value = fields()[field][0] if field in fields() else "x"
    exc = rejected(parse_upload_form, fields({field: [value, value]}))
    assert exc.message == f"'{field}' has invalid data. {SEE_CORE_METADATA}"


def test_list_field_may_repeat() -> None:
    form = parse_upload_form(fields({"classifiers": ["A :: B", "C :: D"]}))
    assert form.metadata["classifiers"] == ["A :: B", "C :: D"]


def test_attestations_refused() -> None:
    exc = rejected(parse_upload_form, fields({"attestations": "[{}]"}))
    assert exc.message == (
        "Invalid attestations supplied during upload: this index does not verify attestations"
    )


def test_invalid_requires_dist() -> None:
    exc = rejected(parse_upload_form, fields({"requires_dist": ["requests>=2", "bad req >>"]}))
    assert exc.message == f"'bad req >>' is invalid for 'requires-dist'. {SEE_CORE_METADATA}"


def test_invalid_requires_python() -> None:
    exc = rejected(parse_upload_form, fields({"requires_python": ">=3.x"}))
    assert exc.message == f"'>=3.x' is invalid for 'requires-python'. {SEE_CORE_METADATA}"


def test_summary_too_long() -> None:
    exc = rejected(parse_upload_form, fields({"summary": "s" * 513}))
    assert exc.message == f"'summary' field must be 512 characters or less. {SEE_CORE_METADATA}"


def test_summary_must_be_one_line() -> None:
    exc = rejected(parse_upload_form, fields({"summary": "two\nlines"}))
    assert exc.message == f"'summary' is invalid: must be a single line. {SEE_CORE_METADATA}"


def test_error_order_metadata_version_name_version_first() -> None:
    # Everything is wrong; the metadata version is reported, then name, then version.
    bad = {"metadata_version": "9.9", "name": "-x", "version": "nope", "filetype": "egg"}
    assert "metadata version" in rejected(parse_upload_form, fields(bad)).message
    bad["metadata_version"] = "2.1"
    assert "for Name" in rejected(parse_upload_form, fields(bad)).message
    bad["name"] = "x"
    assert "for 'version'" in rejected(parse_upload_form, fields(bad)).message
    bad["version"] = "1"
    assert "filetype" in rejected(parse_upload_form, fields(bad)).message


def test_protocol_checked_before_form() -> None:
    exc = rejected(parse_upload_form, fields({"protocol_version": "2", "name": "-x"}))
    assert exc.message == "Unknown protocol version."


# --------------------------------------------------------------------------------------------
# check_filename
# --------------------------------------------------------------------------------------------

WHEEL_FORM = parse_upload_form(fields())
SDIST_FORM = parse_upload_form(fields({"filetype": "sdist", "pyversion": None}))


@pytest.mark.parametrize(
    ("form", "filename"),
    [
        (WHEEL_FORM, "foo_bar-1.0-py3-none-any.whl"),
        (SDIST_FORM, "foo_bar-1.0.tar.gz"),
        (WHEEL_FORM, "foo_bar-1.0-1-cp312-cp312-linux_x86_64.whl"),
    ],
)
def test_filename_ok(form: UploadForm, filename: str) -> None:
    check_filename(form, filename)


@pytest.mark.parametrize("char", ["\x00", "\n", "\x1f", "\x7f"])
def test_filename_non_printable(char: str) -> None:
    exc = rejected(check_filename, WHEEL_FORM, f"foo_bar-1.0{char}-py3-none-any.whl")
    assert exc.message == (
        "Cannot upload a file with non-printable characters (ordinals 0-31) "
        "or the DEL character (ordinal 127) in the name."
    )


@pytest.mark.parametrize("filename", ["../foo_bar-1.0.tar.gz", "a/b.tar.gz", "a\\b.tar.gz"])
def test_filename_separators(filename: str) -> None:
    exc = rejected(check_filename, SDIST_FORM, filename)
    assert exc.message == "Cannot upload a file with '/' or '\\' in the name."


@pytest.mark.parametrize("filename", ["..", ".", "..tar.gz", ".foo_bar-1.0.tar.gz"])
def test_filename_dot_tricks(filename: str) -> None:
    exc = rejected(check_filename, SDIST_FORM, filename)
    assert exc.message == "Cannot upload a file whose name starts with '.'."


def test_filename_too_long() -> None:
    filename = "f" * 250 + ".tar.gz"
    exc = rejected(check_filename, SDIST_FORM, filename)
    assert exc.message == f"Filename is too long: '{filename}'"


def test_filename_length_counts_bytes() -> None:
    filename = "é" * 125 + ".tar.gz"  # 125 characters, 250 bytes + 7
    assert "too long" in rejected(check_filename, SDIST_FORM, filename).message


@pytest.mark.parametrize(
    "filename", ["", "foo_bar-1.0.egg", "foo_bar-1.0.exe", "foo_bar-1.0.tar.bz2", "whl"]
)
def test_filename_bad_extension(filename: str) -> None:
    exc = rejected(check_filename, WHEEL_FORM, filename)
    assert exc.message == (
        "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
        "See https://www.python.org/dev/peps/pep-0527 and https://peps.python.org/pep-0715/ "
        "for more information"
    )


@pytest.mark.parametrize(
    ("form", "filename", "extension"),
    [
        (SDIST_FORM, "foo_bar-1.0-py3-none-any.whl", ".whl"),
        (WHEEL_FORM, "foo_bar-1.0.tar.gz", ".tar.gz"),
        (WHEEL_FORM, "foo_bar-1.0.zip", ".zip"),
        (WHEEL_FORM, "foo_bar-1.0-py3-none-any.WHL", ".WHL"),
    ],
)
def test_filename_extension_vs_filetype(form: UploadForm, filename: str, extension: str) -> None:
    exc = rejected(check_filename, form, filename)
    assert exc.message == (
        f"Invalid file extension: Extension {extension} is invalid for filetype {form.filetype}. "
        "See https://www.python.org/dev/peps/pep-0527 for more information."
    )


def test_zip_sdist_refused_with_pep625_hint() -> None:
    form = parse_upload_form(
        fields({"filetype": "sdist", "pyversion": None, "name": "Foo.Bar", "version": "1.0.0"})
    )
    exc = rejected(check_filename, form, "Foo.Bar-1.0.0.zip")
    assert (
        exc.message == "Filename 'Foo.Bar-1.0.0.zip' is invalid, should be 'foo_bar-1.0.0.tar.gz'."
    )


# --------------------------------------------------------------------------------------------
# check_distribution: wheels
# --------------------------------------------------------------------------------------------


def test_valid_wheel(tmp_path: Path) -> None:
    # Odd but legal bytes (CRLF, trailing spaces, unknown fields) must come back unchanged.
    raw_metadata = (
        b"Metadata-Version: 2.4\r\nName: Foo_Bar\r\nVersion: 1.0\r\n"
        b"Requires-Python: >=3.10\r\nRequires-Dist: rich>=13\r\n"
        b"X-Unknown-Field: tolerated\r\nSummary: from the file  \r\n\r\nBody\r\n"
    )
    path = build_wheel(tmp_path, metadata=raw_metadata)
    result = check(
        path,
        {
            "summary": "from the form",
            "requires_python": ">=3.6",
            "requires_dist": ["requests"],
            "classifiers": ["Topic :: Utilities"],
        },
    )
    assert result == CheckedDistribution(
        project="Foo_Bar",
        normalized="foo-bar",
        version="1.0",
        packagetype="bdist_wheel",
        python_version="py3",
        requires_python=">=3.10",
        core_metadata=raw_metadata,
        metadata={
            "metadata_version": "2.4",
            "name": "Foo_Bar",
            "version": "1.0",
            "summary": "from the form",
            "requires_python": ">=3.10",
            "requires_dist": ["rich>=13"],
            "classifiers": ["Topic :: Utilities"],
        },
    )
    assert result.core_metadata == zipfile.ZipFile(path).read("foo_bar-1.0.dist-info/METADATA")


def test_wheel_without_requires_python_drops_form_value(tmp_path: Path) -> None:
    result = check(build_wheel(tmp_path), {"requires_python": ">=3.6", "requires_dist": ["x"]})
    assert result.requires_python is None
    assert "requires_python" not in result.metadata
    assert "requires_dist" not in result.metadata


def test_wheel_with_build_tag_and_compressed_python_tag(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "foo_bar-1.0-1build-py2.py3-none-any.whl")
    result = check(path, {"pyversion": "py2.py3"})
    assert (result.version, result.python_version) == ("1.0", "py2.py3")


def test_twine_style_name_accepted(tmp_path: Path) -> None:
    # twine sends re.sub("[^A-Za-z0-9.]+", "-", name): "foo-bar" for METADATA "foo_bar".
    result = check(build_wheel(tmp_path), {"name": "foo-bar"})
    assert (result.project, result.normalized) == ("foo_bar", "foo-bar")


def test_local_version_wheel_accepted(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, version="1.0+cpu")
    assert path.name == "foo_bar-1.0+cpu-py3-none-any.whl"
    result = check(path, {"version": "1.0+cpu"})
    assert result.version == "1.0+cpu"


def test_wheel_version_compared_as_pep440(tmp_path: Path) -> None:
    # Form and METADATA say 1.0.0, the filename 1.0: equal versions.
    path = build_wheel(
        tmp_path, "foo_bar-1.0-py3-none-any.whl", metadata=metadata_bytes(version="1.0.0")
    )
    result = check(path, {"version": "1.0.0"})
    assert result.version == "1.0"
    assert result.metadata["version"] == "1.0.0"


def test_metadata_version_2_6_wheel_accepted(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, metadata=metadata_bytes(metadata_version="2.6"))
    assert check(path, {"metadata_version": "2.6"}).project == "foo_bar"


def test_digest_mismatch(tmp_path: Path) -> None:
    path = build_wheel(tmp_path)
    form = form_for(path, {"blake2_256_digest": "0" * 64})
    exc = rejected(check_distribution, form, path.name, path, digests_of(path))
    assert exc.message == (
        "The digest supplied does not match a digest calculated from the uploaded file."
    )


def test_every_supplied_digest_must_match(tmp_path: Path) -> None:
    path = build_wheel(tmp_path)
    form = form_for(path, {"md5_digest": "0" * 32})
    assert (
        "digest supplied"
        in rejected(check_distribution, form, path.name, path, digests_of(path)).message
    )


def test_uppercase_md5_digest_matches(tmp_path: Path) -> None:
    path = build_wheel(tmp_path)
    md5 = digests_of(path)["md5"].upper()
    result = check(path, {"sha256_digest": None, "blake2_256_digest": None, "md5_digest": md5})
    assert result.project == "foo_bar"


def test_digests_missing_from_server_are_computed(tmp_path: Path) -> None:
    path = build_wheel(tmp_path)
    form = form_for(path, {"md5_digest": digests_of(path)["md5"]})
    assert check_distribution(form, path.name, path, {}).project == "foo_bar"
    bad = form_for(path, {"md5_digest": "0" * 32})
    assert "digest" in rejected(check_distribution, bad, path.name, path, {}).message


def test_filename_rechecked(tmp_path: Path) -> None:
    path = build_wheel(tmp_path)
    form = form_for(path)
    exc = rejected(check_distribution, form, "../" + path.name, path, digests_of(path))
    assert exc.message == "Cannot upload a file with '/' or '\\' in the name."


def test_zip_bomb(tmp_path: Path) -> None:
    # ~70 MiB of zeros deflates to ~70 KB: over 64 MiB in total and far over 50x.
    path = tmp_path / "foo_bar-1.0-py3-none-any.whl"
    build_wheel(tmp_path)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive,
        archive.open("foo_bar/zeros.bin", "w") as member,
    ):
        for _ in range(70):
            member.write(bytes(1024 * 1024))
    assert path.stat().st_size < 1024 * 1024
    exc = rejected(check, path)
    assert exc.message == "Invalid distribution file. File exceeds compression ratio of 50"


def test_large_but_incompressible_wheel_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Over the size floor but at a normal ratio: accepted (floor lowered to keep this fast).
    monkeypatch.setattr(validation, "COMPRESSION_RATIO_MIN_SIZE", 1024)
    path = build_wheel(
        tmp_path, extra=[("foo_bar/blob.bin", hashlib.shake_256(b"blob").digest(16384))]
    )
    assert check(path).project == "foo_bar"


def test_metadata_over_size_cap(tmp_path: Path) -> None:
    huge = metadata_bytes(body="x" * (validation.MAX_METADATA_SIZE + 1))
    path = build_wheel(tmp_path, metadata=huge)
    exc = rejected(check, path)
    assert exc.message == (
        "Invalid distribution file. foo_bar-1.0.dist-info/METADATA exceeds the 10 MiB size limit"
    )


@pytest.mark.parametrize(
    "member", ["../evil.py", "foo_bar/../../evil.py", "/etc/passwd", "C:/evil.py", "a\\..\\evil"]
)
def test_wheel_unsafe_member_path(tmp_path: Path, member: str) -> None:
    path = build_wheel(tmp_path, extra=[(member, b"boom")])
    exc = rejected(check, path)
    assert (
        exc.message == f"Invalid distribution file. File contains an unsafe member path: {member!r}"
    )


def test_wheel_bzip2_member(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("foo_bar/data.txt")
    info.compress_type = zipfile.ZIP_BZIP2
    path = build_wheel(tmp_path, extra=[(info, b"hello" * 100)])
    exc = rejected(check, path)
    assert (
        exc.message == "Invalid distribution file. File does not use a supported compression type"
    )


def test_wheel_duplicate_member(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we want
        path = build_wheel(tmp_path, extra=[("foo_bar/__init__.py", b"OTHER = 2\n")])
    exc = rejected(check, path)
    assert (
        exc.message
        == "Invalid distribution file. File contains a duplicate member: 'foo_bar/__init__.py'"
    )


def test_truncated_wheel(tmp_path: Path) -> None:
    path = build_wheel(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    exc = rejected(check, path)
    assert exc.message == "Invalid distribution file. File is not a zipfile"


def test_corrupt_metadata_member(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, metadata=metadata_bytes(body="z" * 5000))
    data = bytearray(path.read_bytes())
    # Flip bytes inside METADATA's compressed data; the central directory stays intact.
    offset = data.index(b"foo_bar-1.0.dist-info/METADATA") + len("foo_bar-1.0.dist-info/METADATA")
    for i in range(offset + 5, offset + 25):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    exc = rejected(check, path)
    assert exc.message.startswith(
        "Invalid distribution file. The zip archive is truncated or corrupt"
    )


def test_non_zip_wheel(tmp_path: Path) -> None:
    path = tmp_path / "foo_bar-1.0-py3-none-any.whl"
    path.write_bytes(b"this is not a zip file" * 10)
    exc = rejected(check, path)
    assert exc.message == "Invalid distribution file. File is not a zipfile"


def test_wheel_that_is_a_tarball(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path)
    path = tmp_path / "foo_bar-1.0-py3-none-any.whl"
    path.write_bytes(sdist.read_bytes())
    assert rejected(check, path).message == "Invalid distribution file. File is not a zipfile"


@pytest.mark.parametrize("missing", ["WHEEL", "METADATA", "RECORD"])
def test_wheel_missing_dist_info_file(tmp_path: Path, missing: str) -> None:
    path = build_wheel(tmp_path, omit=[missing])
    exc = rejected(check, path)
    assert exc.message == (
        f"Invalid distribution file. {missing} not found at foo_bar-1.0.dist-info/{missing}"
    )


def test_wheel_without_dist_info(tmp_path: Path) -> None:
    path = tmp_path / "foo_bar-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("foo_bar/__init__.py", b"")
    exc = rejected(check, path)
    assert exc.message == (
        "Invalid distribution file. Wheel must contain exactly one top-level .dist-info "
        "directory, found 0"
    )


def test_wheel_with_two_dist_infos(tmp_path: Path) -> None:
    path = build_wheel(
        tmp_path, extra=[("other-2.0.dist-info/METADATA", metadata_bytes("other", "2.0"))]
    )
    assert "found 2" in rejected(check, path).message


def test_wheel_nested_dist_info_is_not_counted(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, extra=[("foo_bar/vendored/x-1.dist-info/METADATA", b"")])
    assert check(path).project == "foo_bar"


def test_wheel_dist_info_for_another_project(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, dist_info="other-1.0.dist-info")
    exc = rejected(check, path)
    assert exc.message == (
        "Invalid distribution file. .dist-info directory 'other-1.0.dist-info' does not match "
        "'foo_bar-1.0-py3-none-any.whl'"
    )


def test_invalid_wheel_filename(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "foo_bar-1.0-py3-none.whl")
    exc = rejected(check, path)
    # packaging's own text, passed through as PyPI does (it quotes the stem).
    assert exc.message.startswith("Invalid wheel filename (wrong number of parts): 'foo_bar-1.0")


def test_wheel_filename_for_another_project(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "other-1.0-py3-none-any.whl")
    exc = rejected(check, path, {"name": "Foo.Bar"})
    assert exc.message == "Start filename for 'Foo.Bar' with 'foo_bar'."


def test_wheel_filename_not_normalized(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "Foo_Bar-1.0-py3-none-any.whl")
    exc = rejected(check, path)
    assert exc.message == (
        "Filename 'Foo_Bar-1.0-py3-none-any.whl' should contain the normalized project name "
        "'foo_bar', not 'Foo_Bar'."
    )


def test_wheel_version_in_filename_mismatch(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "foo_bar-2.0-py3-none-any.whl")
    exc = rejected(check, path)
    assert exc.message == "Version in filename should be '1.0' not '2.0'."


def test_wheel_metadata_name_disagrees(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, metadata=metadata_bytes(name="something_else"))
    exc = rejected(check, path)
    assert exc.message == "Name in METADATA should be 'foo_bar' not 'something_else'."


def test_wheel_metadata_version_disagrees(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, metadata=metadata_bytes(version="1.1"))
    exc = rejected(check, path)
    assert exc.message == "Version in METADATA should be '1.0' not '1.1'."


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (b"Name: foo_bar\nVersion: 1.0\n", "METADATA has no Metadata-Version field"),
        (
            metadata_bytes(metadata_version="3.0"),
            "METADATA has an unsupported Metadata-Version '3.0'",
        ),
        (b"Metadata-Version: 2.1\nVersion: 1.0\n", "METADATA has no valid Name field"),
        (
            b"Metadata-Version: 2.1\nName: foo_bar\nName: foo_bar\nVersion: 1.0\n",
            "METADATA has no valid Name field",
        ),
        (b"Metadata-Version: 2.1\nName: foo_bar\n", "METADATA has no Version field"),
        (
            b"Metadata-Version: 2.1\nName: foo_bar\nVersion: one\n",
            "METADATA has an invalid Version 'one'",
        ),
    ],
)
def test_wheel_metadata_unusable(tmp_path: Path, metadata: bytes, reason: str) -> None:
    path = build_wheel(tmp_path, metadata=metadata)
    assert rejected(check, path).message == f"Invalid distribution file. {reason}"


def test_wheel_metadata_2_0_tolerated(tmp_path: Path) -> None:
    # Old bdist_wheel wrote Metadata-Version 2.0; the file's own version is only checked for
    # an unknown major version.
    path = build_wheel(tmp_path, metadata=metadata_bytes(metadata_version="2.0"))
    assert check(path).project == "foo_bar"


def test_wheel_metadata_invalid_requires_python(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, metadata=metadata_bytes(headers="Requires-Python: >=3.x\n"))
    assert rejected(check, path).message == (
        f"'>=3.x' is invalid for 'requires-python'. {SEE_CORE_METADATA}"
    )


def test_any_platform_tag_accepted(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "foo_bar-1.0-cp312-cp312-linux_x86_64.whl")
    assert check(path, {"pyversion": "cp312"}).python_version == "cp312"


# --------------------------------------------------------------------------------------------
# check_distribution: sdists
# --------------------------------------------------------------------------------------------


def test_valid_sdist(tmp_path: Path) -> None:
    pkg_info = metadata_bytes(name="Foo-Bar", headers="Requires-Python: >=3.9\nX-Custom: yes\n")
    path = build_sdist(tmp_path, pkg_info=pkg_info)
    result = check(path, {"name": "Foo-Bar", "summary": "S"})
    assert result == CheckedDistribution(
        project="Foo-Bar",
        normalized="foo-bar",
        version="1.0",
        packagetype="sdist",
        python_version="source",
        requires_python=">=3.9",
        core_metadata=None,
        metadata={
            "metadata_version": "2.4",
            "name": "Foo-Bar",
            "version": "1.0",
            "summary": "S",
            "requires_python": ">=3.9",
        },
    )


def test_sdist_with_dot_slash_names(tmp_path: Path) -> None:
    path = tmp_path / "foo_bar-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for info, data in [
            tar_special(".", tarfile.DIRTYPE),
            tar_file("./foo_bar-1.0/PKG-INFO", metadata_bytes()),
        ]:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    assert check(path).project == "foo_bar"


def test_sdist_local_version(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, version="1.0+cpu")
    assert check(path, {"version": "1.0+cpu"}).version == "1.0+cpu"


def test_sdist_twine_style_name(tmp_path: Path) -> None:
    assert check(build_sdist(tmp_path), {"name": "foo-bar"}).project == "foo_bar"


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        (tar_special("foo_bar-1.0/link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (tar_special("foo_bar-1.0/hard", tarfile.LNKTYPE, "foo_bar-1.0/PKG-INFO"), "link"),
        (tar_special("foo_bar-1.0/dev", tarfile.CHRTYPE), "device, FIFO or sparse"),
        (tar_special("foo_bar-1.0/blk", tarfile.BLKTYPE), "device, FIFO or sparse"),
        (tar_special("foo_bar-1.0/fifo", tarfile.FIFOTYPE), "device, FIFO or sparse"),
    ],
)
def test_sdist_special_members(
    tmp_path: Path, member: tuple[tarfile.TarInfo, None], kind: str
) -> None:
    path = build_sdist(tmp_path, extra=[member])
    exc = rejected(check, path)
    assert (
        exc.message
        == f"Invalid distribution file. File contains a {kind} member: {member[0].name!r}"
    )


def test_sdist_symlink_member(tmp_path: Path) -> None:
    path = build_sdist(
        tmp_path, extra=[tar_special("foo_bar-1.0/setup.py", tarfile.SYMTYPE, "../x")]
    )
    assert rejected(check, path).message == (
        "Invalid distribution file. File contains a link member: 'foo_bar-1.0/setup.py'"
    )


@pytest.mark.parametrize("member", ["foo_bar-1.0/../../evil", "/etc/cron.d/evil", "../evil"])
def test_sdist_unsafe_member_path(tmp_path: Path, member: str) -> None:
    path = build_sdist(tmp_path, extra=[tar_file(member, b"boom")])
    exc = rejected(check, path)
    assert (
        exc.message == f"Invalid distribution file. File contains an unsafe member path: {member!r}"
    )


def test_sdist_without_pkg_info(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, with_pkg_info=False)
    assert rejected(check, path).message == (
        "Invalid distribution file. PKG-INFO not found at foo_bar-1.0/PKG-INFO"
    )


def test_sdist_pkg_info_only_deeper(tmp_path: Path) -> None:
    path = build_sdist(
        tmp_path,
        with_pkg_info=False,
        extra=[tar_file("foo_bar-1.0/src/PKG-INFO", metadata_bytes())],
    )
    assert "PKG-INFO not found at foo_bar-1.0/PKG-INFO" in rejected(check, path).message


def test_sdist_two_top_level_dirs(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, extra=[tar_file("stray.txt", b"")])
    assert rejected(check, path).message == (
        "Invalid distribution file. Incorrect number of top-level directories in sdist"
    )


def test_sdist_empty_archive(tmp_path: Path) -> None:
    path = tmp_path / "foo_bar-1.0.tar.gz"
    with tarfile.open(path, "w:gz"):
        pass
    assert "Incorrect number of top-level directories" in rejected(check, path).message


def test_sdist_duplicate_pkg_info(tmp_path: Path) -> None:
    path = build_sdist(
        tmp_path, extra=[tar_file("foo_bar-1.0/PKG-INFO", metadata_bytes(name="evil"))]
    )
    assert rejected(check, path).message == (
        "Invalid distribution file. File contains a duplicate member: 'foo_bar-1.0/PKG-INFO'"
    )


def test_sdist_pkg_info_name_disagrees(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, pkg_info=metadata_bytes(name="other"))
    assert rejected(check, path).message == "Name in PKG-INFO should be 'foo_bar' not 'other'."


def test_sdist_pkg_info_version_disagrees(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, pkg_info=metadata_bytes(version="1.0.1"))
    assert rejected(check, path).message == "Version in PKG-INFO should be '1.0' not '1.0.1'."


def test_sdist_pkg_info_over_size_cap(tmp_path: Path) -> None:
    path = build_sdist(
        tmp_path, pkg_info=metadata_bytes(body="x" * (validation.MAX_METADATA_SIZE + 1))
    )
    assert rejected(check, path).message == (
        "Invalid distribution file. foo_bar-1.0/PKG-INFO exceeds the 10 MiB size limit"
    )


def test_sdist_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "foo_bar-1.0.tar.gz"
    with tarfile.open(path, "w") as archive:  # a plain, uncompressed tar
        info, data = tar_file("foo_bar-1.0/PKG-INFO", metadata_bytes())
        archive.addfile(info, io.BytesIO(data))
    assert rejected(check, path).message == "Invalid distribution file. File is not a tarfile"


def test_sdist_that_is_a_zip(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    path = tmp_path / "foo_bar-1.0.tar.gz"
    path.write_bytes(wheel.read_bytes())
    assert rejected(check, path).message == "Invalid distribution file. File is not a tarfile"


def test_truncated_sdist(tmp_path: Path) -> None:
    noise = hashlib.shake_256(b"seed").digest(200_000)  # incompressible
    path = build_sdist(tmp_path, extra=[tar_file("foo_bar-1.0/noise.bin", noise)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    exc = rejected(check, path)
    assert exc.message.startswith(
        "Invalid distribution file. The tar archive is truncated or corrupt"
    )


def test_sdist_gzip_bomb(tmp_path: Path) -> None:
    class Zeros:
        """An endless file of zero bytes, so the 70 MiB never sit in memory."""

        def read(self, size: int = -1) -> bytes:
            return bytes(max(size, 0))

    info = tarfile.TarInfo("foo_bar-1.0/zeros.bin")
    info.size = 70 * 1024 * 1024
    path = tmp_path / "foo_bar-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in [
            tar_special("foo_bar-1.0", tarfile.DIRTYPE),
            tar_file("foo_bar-1.0/PKG-INFO", metadata_bytes()),
        ]:
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
        archive.addfile(info, Zeros())  # type: ignore[arg-type]
    assert path.stat().st_size < 1024 * 1024
    exc = rejected(check, path)
    assert exc.message == "Invalid distribution file. File exceeds compression ratio of 50"


def test_invalid_sdist_filename(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, "foo_bar.tar.gz")
    assert rejected(check, path).message == "Invalid source distribution filename: foo_bar.tar.gz"


def test_sdist_filename_for_another_project(tmp_path: Path) -> None:
    path = build_sdist(tmp_path, "other-1.0.tar.gz")
    assert rejected(check, path, {"name": "Foo-Bar"}).message == (
        "Start filename for 'Foo-Bar' with 'foo_bar'."
    )


@pytest.mark.parametrize(
    ("filename", "version"),
    [
        ("Foo-Bar-1.0.tar.gz", "1.0"),
        ("foo.bar-1.0.tar.gz", "1.0"),
        ("foo_bar-1.0.tar.gz", "1.0.0"),  # form/metadata 1.0.0: PyPI keeps str(Version)
        ("foo_bar-01.0.tar.gz", "1.0"),
    ],
)
def test_sdist_filename_not_pep625(tmp_path: Path, filename: str, version: str) -> None:
    path = build_sdist(tmp_path, filename, pkg_info=metadata_bytes(version=version))
    exc = rejected(check, path, {"version": version})
    assert exc.message == f"Filename {filename!r} is invalid, should be 'foo_bar-{version}.tar.gz'."


def test_sdist_hyphenated_post_release(tmp_path: Path) -> None:
    # "1.0-1" is PEP 440 for 1.0.post1; the filename must use the normalized form.
    path = build_sdist(tmp_path, "foo_bar-1.0-1.tar.gz", pkg_info=metadata_bytes(version="1.0-1"))
    exc = rejected(check, path, {"version": "1.0-1"})
    assert exc.message == (
        "Filename 'foo_bar-1.0-1.tar.gz' is invalid, should be 'foo_bar-1.0.post1.tar.gz'."
    )


def test_sdist_digest_checked_before_archive(tmp_path: Path) -> None:
    path = tmp_path / "foo_bar-1.0.tar.gz"
    path.write_bytes(b"garbage")
    form = form_for(path, {"sha256_digest": "0" * 64, "blake2_256_digest": None})
    exc = rejected(check_distribution, form, path.name, path, digests_of(path))
    assert "digest supplied" in exc.message


def test_legacy_wheel_and_sdist_names_pass_when_not_strict(tmp_path: Path) -> None:
    """Without strict_filenames a legacy spelling of the project passes; the version and
    the project (normalized) must still be right."""
    wheel = build_wheel(tmp_path, "Foo_Bar-1.0-py3-none-any.whl")
    checked = check_distribution(
        form_for(wheel, None), wheel.name, wheel, digests_of(wheel), strict_filenames=False
    )
    assert checked.version == "1.0"
    exc = rejected(
        lambda: check_distribution(
            form_for(wheel, {"version": "2.0"}),
            wheel.name,
            wheel,
            digests_of(wheel),
            strict_filenames=False,
        )
    )
    assert exc.message == "Version in filename should be '2.0' not '1.0'."
