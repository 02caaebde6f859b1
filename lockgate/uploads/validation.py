"""Validation of legacy upload forms and uploaded distribution files.

This module implements the checks of the legacy upload API (docs/standards.md section 4, "R4.x"):
the multipart form twine, uv and poetry send, the uploaded file's name, and the archive
itself. Error messages follow Warehouse (PyPI's "forklift") word for word wherever PyPI has a
message, because clients and users match on that wording (twine's ``--skip-existing`` for one).

The module is pure and synchronous: the only I/O is reading the uploaded file from the path
the server gives it, and nothing is ever extracted to disk. The server runs it in a thread.

Three entry points, called in this order by the upload view:

* :func:`parse_upload_form` -- the non-file form fields (docs/standards.md 4.4 steps 2-4);
* :func:`check_filename` -- the file part's name, before the body is stored (step 8);
* :func:`check_distribution` -- digests, archive validity and the name/version rules,
  after the body is stored in a temporary file (steps 11, 16, 17).
"""

import hashlib
import hmac
import pathlib
import re
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from lockgate.errors import LockgateError

__all__ = [
    "COMPRESSION_RATIO_MIN_SIZE",
    "COMPRESSION_RATIO_THRESHOLD",
    "MAX_FILENAME_LENGTH",
    "MAX_METADATA_SIZE",
    "SUPPORTED_METADATA_VERSIONS",
    "CheckedDistribution",
    "UploadForm",
    "UploadRejected",
    "check_distribution",
    "check_filename",
    "parse_upload_form",
]

MIB = 1024 * 1024

# Metadata versions accepted in the form (R4.9). PyPI stops at 2.5 in the snapshot we follow;
# the spec has allowed 2.6 since May 2026, and a private index should not lag behind builders.
# Kept as our own set so behaviour does not change with the installed `packaging` version.
SUPPORTED_METADATA_VERSIONS: frozenset[str] = frozenset(
    {"1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6"}
)

# Decompression-bomb guard, Warehouse's values (R4.15): an archive may expand to more than
# 50x its size only while it stays under 64 MiB, since small text-heavy wheels compress well.
COMPRESSION_RATIO_MIN_SIZE = 64 * MIB
COMPRESSION_RATIO_THRESHOLD = 50

# Upper bound on METADATA / PKG-INFO we are willing to read into memory. Real ones are a few
# KiB (the long description dominates); 10 MiB leaves room for huge READMEs.
MAX_METADATA_SIZE = 10 * MIB

# Most filesystems and object stores limit a path component to 255 bytes.
MAX_FILENAME_LENGTH = 255

# PyPI's policy limit on Summary (R4.10); it keeps index pages and the JSON API sane.
MAX_SUMMARY_LENGTH = 512

CORE_METADATA_URL = "https://packaging.python.org/specifications/core-metadata"

# R1.1. `\Z` rather than `$` so "foo\n" is refused; re.ASCII because with IGNORECASE alone
# `[A-Z]` also matches the Kelvin sign and the long s, which are not ASCII.
PROJECT_NAME_RE = re.compile(
    r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII
)

_DIGEST_RES: dict[str, tuple[re.Pattern[str], str]] = {
    # Warehouse checks sha256 and blake2 only; md5 is 32 hex digits and checking it too
    # turns a garbled value into a clear form error instead of a later digest mismatch.
    "blake2_256": (re.compile(r"[0-9a-f]{64}", re.I), "BLAKE2"),
    "md5": (re.compile(r"[0-9a-f]{32}", re.I), "MD5"),
    "sha256": (re.compile(r"[0-9a-f]{64}", re.I), "SHA256"),
}

# Which extensions each filetype may carry. `.zip` is still listed for sdist (as in Warehouse)
# so that a zip sdist gets the PEP 625 message, not a generic extension error.
_FILETYPE_EXTENSIONS: dict[str, frozenset[str]] = {
    "sdist": frozenset({".tar.gz", ".zip"}),
    "bdist_wheel": frozenset({".whl"}),
}
_DIST_FILE_RE = re.compile(r".+?(?P<extension>\.(tar\.gz|zip|whl))\Z", re.IGNORECASE)

# Core-metadata form fields (R4.7): the metadata field name lowercased with '-' -> '_'.
_SINGLE_METADATA_FIELDS: frozenset[str] = frozenset(
    {
        "summary",
        "description",
        "description_content_type",
        "author",
        "author_email",
        "maintainer",
        "maintainer_email",
        "license",
        "license_expression",
        "home_page",
        "download_url",
        "requires_python",
        "keywords",  # a single comma-joined string on the wire
    }
)
_LIST_METADATA_FIELDS: frozenset[str] = frozenset(
    {
        "classifiers",
        "requires_dist",
        "provides_dist",
        "obsoletes_dist",
        "requires_external",
        "provides_extra",
        "dynamic",
        "project_urls",
        "platform",
        "supported_platform",
        "license_file",
        "import_name",
        "import_namespace",
        "requires",
        "provides",
        "obsoletes",
    }
)
# uv publish sends the PEP 794 fields in the plural; PyPI only knows the singular spelling.
_FIELD_ALIASES: dict[str, str] = {
    "import_names": "import_name",
    "import_namespaces": "import_namespace",
}
# Non-metadata form fields that may carry only one value.
_SINGLE_FORM_FIELDS: frozenset[str] = frozenset(
    {
        "metadata_version",
        "name",
        "version",
        "filetype",
        "pyversion",
        "md5_digest",
        "sha256_digest",
        "blake2_256_digest",
        "comment",
        "attestations",
    }
)

_PRE_REGISTRATION_MESSAGE = (
    "Project pre-registration is no longer required or supported, upload your files instead."
)
_DOC_UPLOAD_MESSAGE = (
    "Uploading documentation is no longer supported, we recommend using https://readthedocs.org/."
)
_PEP527_URL = "https://www.python.org/dev/peps/pep-0527"
_PEP715_URL = "https://peps.python.org/pep-0715/"


class UploadRejected(LockgateError):
    """A refused upload: `status` (400 or 403, ...) and a `message` worded as Warehouse words it.

    The server puts `message` both in the HTTP reason phrase and in the body (R4.4).
    """

    status = 400

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class UploadForm:
    """The validated non-file fields of a legacy upload (R4.1, R4.3, R4.7-R4.10)."""

    name: str  # as sent (twine sends "foo-bar" for a project named "foo_bar")
    version: str  # as sent
    metadata_version: str
    filetype: str  # "sdist" | "bdist_wheel"
    pyversion: str  # "source" for an sdist
    digests: dict[str, str]  # subset of {"sha256", "blake2_256", "md5"} -> lowercase hex
    # Core metadata from the form, keyed by form name (import_names folded into import_name);
    # list fields are lists; "UNKNOWN" and "" values are dropped. Includes metadata_version,
    # name and version.
    metadata: dict[str, str | list[str]]
    comment: str | None


@dataclass(frozen=True)
class CheckedDistribution:
    """What :func:`check_distribution` learned from a valid distribution file."""

    project: str  # display name from the file's METADATA / PKG-INFO Name
    normalized: str  # canonicalize_name(project)
    version: str  # str(Version) from the filename
    packagetype: str  # "sdist" | "bdist_wheel"
    python_version: str  # "source", or the wheel's python tag ("py3", "py2.py3", "cp312")
    requires_python: str | None  # from the file's metadata
    core_metadata: bytes | None  # wheels: exact bytes of *.dist-info/METADATA (PEP 658)
    # Form metadata merged with the file's; the file wins for name, version, requires_python
    # and requires_dist, which PEP 694 calls "famously unreliable" in the form.
    metadata: dict[str, str | list[str]]


# --------------------------------------------------------------------------------------------
# Message helpers
# --------------------------------------------------------------------------------------------


def _metadata_error(message: str) -> UploadRejected:
    """A metadata parser error, formatted as Warehouse does (R4.10)."""
    if not message.endswith("."):
        message += "."
    return UploadRejected(f"{message} See {CORE_METADATA_URL} for more information.")


def _form_field_error(value: str, description: str, reason: str) -> UploadRejected:
    """An error on a described form field, formatted as Warehouse does (R4.10)."""
    # Warehouse shortens long values so the reason phrase stays readable.
    shown = value[:30] + "..." + value[-30:] if len(value) > 60 else value
    return UploadRejected(
        f"{shown!r} is an invalid value for {description}. Error: {reason} "
        f"See {CORE_METADATA_URL} for more information."
    )


def _plain_field_error(field: str, reason: str) -> UploadRejected:
    """An error on an undescribed form field (filetype, digests), as Warehouse formats it."""
    return UploadRejected(f"Invalid value for {field}. Error: {reason}")


def _invalid_dist(reason: str) -> UploadRejected:
    return UploadRejected(f"Invalid distribution file. {reason}")


# --------------------------------------------------------------------------------------------
# The form
# --------------------------------------------------------------------------------------------


def _check_action(fields: Mapping[str, list[str]]) -> None:
    # The same action may legitimately arrive twice (query string and form body, R4.1).
    actions = {value for value in fields.get(":action", []) if value}
    action = actions.pop() if len(actions) == 1 else None
    if action in ("submit", "submit_pkg_info"):
        raise UploadRejected(_PRE_REGISTRATION_MESSAGE, status=410)
    if action == "doc_upload":
        raise UploadRejected(_DOC_UPLOAD_MESSAGE, status=410)
    if action != "file_upload":
        raise UploadRejected("Unknown or missing :action")


def _clean_fields(fields: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Apply Warehouse's sanitizing (R4.8) and fold field-name aliases, keeping order."""
    cleaned: dict[str, list[str]] = {}
    for raw_key, values in fields.items():
        if raw_key in (":action", "protocol_version"):
            continue
        key = _FIELD_ALIASES.get(raw_key, raw_key)
        kept: list[str] = []
        for value in values:
            # distutils filled required-but-unknown fields with "UNKNOWN"; it never means
            # anything, and an empty string counts as absent.
            if value == "" or value.strip() == "UNKNOWN":
                continue
            # NUL is escaped, not refused, as PyPI does (databases reject it in text).
            kept.append(value.replace("\x00", "\\x00"))
        if kept:
            cleaned.setdefault(key, []).extend(kept)
    return cleaned


def _check_single_valued(cleaned: Mapping[str, list[str]]) -> None:
    # Taking the first or last value silently would let two parsers of the same request
    # disagree; PyPI refuses instead (R4.8).
    for key, values in cleaned.items():
        if (key in _SINGLE_FORM_FIELDS or key in _SINGLE_METADATA_FIELDS) and len(values) > 1:
            raise _metadata_error(f"{key!r} has invalid data")


def _check_metadata_fields(cleaned: Mapping[str, list[str]]) -> None:
    """The few core-metadata checks that protect what we serve (R4.10), in field order."""
    for requirement in cleaned.get("requires_dist", []):
        try:
            Requirement(requirement)
        except InvalidRequirement:
            raise _metadata_error(f"{requirement!r} is invalid for 'requires-dist'") from None
    for specifier in cleaned.get("requires_python", []):
        try:
            SpecifierSet(specifier)
        except InvalidSpecifier:
            raise _metadata_error(f"{specifier!r} is invalid for 'requires-python'") from None
    for summary in cleaned.get("summary", []):
        if len(summary) > MAX_SUMMARY_LENGTH:
            raise _metadata_error(
                f"'summary' field must be {MAX_SUMMARY_LENGTH} characters or less."
            )
        if "\n" in summary or "\r" in summary:
            raise _metadata_error("'summary' is invalid: must be a single line")


def parse_upload_form(fields: Mapping[str, list[str]], digest_required: bool = True) -> UploadForm:
    """Validate the non-file fields of a legacy upload request.

    `digest_required=False` lets devpi-client's uploads through without a digest of
    the file (it never sends one; the server computes its own either way).

    `fields` maps each non-file multipart field (and, if the server merges them, query
    parameters) to its values in the order sent. Raises :class:`UploadRejected` on the first
    problem, in the order of docs/standards.md 4.4: action, protocol version, repeated fields,
    metadata-version, name, version, filetype, pyversion, digests, other metadata,
    attestations.
    """
    _check_action(fields)

    # R4.1: protocol_version defaults to 1; anything else (even "") is refused.
    if any(value != "1" for value in fields.get("protocol_version", [])):
        raise UploadRejected("Unknown protocol version.")

    cleaned = _clean_fields(fields)
    _check_single_valued(cleaned)

    def first(key: str) -> str | None:
        values = cleaned.get(key)
        return values[0] if values else None

    # metadata-version, name and version are reported before the other fields (docs/standards.md 4.4
    # step 3, Warehouse's `_error_message_order`): a wrong one usually explains the rest.
    metadata_version = first("metadata_version")
    if metadata_version is None:
        raise _metadata_error("'metadata-version' is a required field")
    if metadata_version not in SUPPORTED_METADATA_VERSIONS:
        raise _metadata_error(f"{metadata_version!r} is not a valid metadata version")

    name = first("name")
    if name is None:
        raise _form_field_error("", "Name", "This field is required.")
    if not PROJECT_NAME_RE.match(name):
        raise _form_field_error(
            name,
            "Name",
            "Start and end with a letter or numeral containing only ASCII numeric and "
            "'.', '_' and '-'.",
        )

    version = first("version")
    if version is None:
        raise _metadata_error("'version' is a required field")
    try:
        # packaging tolerates surrounding whitespace; a version as sent must not have any,
        # or it could never match the filename.
        if version != version.strip():
            raise InvalidVersion(version)
        Version(version)
    except InvalidVersion:
        raise _metadata_error(f"{version!r} is invalid for 'version'") from None
    # Local versions ("1.0+cpu") are a PyPI-only ban; a private index accepts them (R4.10).

    filetype = first("filetype")
    if filetype is None:
        raise _plain_field_error("filetype", "This field is required.")
    if filetype not in _FILETYPE_EXTENSIONS:
        # Eggs, bdist_wininst, bdist_dumb, ... are gone (PEP 527, PEP 715).
        raise _plain_field_error("filetype", "Use a known file type.")

    pyversion = first("pyversion")
    if filetype == "sdist":
        if pyversion is None:
            pyversion = "source"
        elif pyversion != "source":
            raise UploadRejected("Error: Use 'source' as Python version for an sdist.")
    elif pyversion is None:
        raise UploadRejected("Error: Python version is required for binary distribution uploads.")

    sent_digests = {
        algorithm: value
        for algorithm in _DIGEST_RES
        if (value := first(f"{algorithm}_digest")) is not None
    }
    if not sent_digests and digest_required:
        raise UploadRejected("Error: Include at least one message digest.")
    for algorithm, value in sent_digests.items():
        pattern, label = _DIGEST_RES[algorithm]
        if not pattern.fullmatch(value):
            raise _plain_field_error(
                f"{algorithm}_digest", f"Use a valid, hex-encoded, {label} message digest."
            )
    digests = {algorithm: value.lower() for algorithm, value in sent_digests.items()}

    _check_metadata_fields(cleaned)

    # PEP 740: we cannot verify attestations, and accepting them silently would suggest that
    # we did; clients only send them when asked to (twine --attestations).
    if first("attestations") is not None:
        raise UploadRejected(
            "Invalid attestations supplied during upload: this index does not verify attestations"
        )

    metadata: dict[str, str | list[str]] = {
        "metadata_version": metadata_version,
        "name": name,
        "version": version,
    }
    for key, values in cleaned.items():
        if key in _SINGLE_METADATA_FIELDS:
            metadata[key] = values[0]
        elif key in _LIST_METADATA_FIELDS:
            metadata[key] = list(values)
        # Anything else (Description-Content-Type spelled as a header, typos, ...) is
        # ignored silently, as PyPI does (R4.7).

    return UploadForm(
        name=name,
        version=version,
        metadata_version=metadata_version,
        filetype=filetype,
        pyversion=pyversion,
        digests=digests,
        metadata=metadata,
        comment=first("comment"),
    )


# --------------------------------------------------------------------------------------------
# The filename
# --------------------------------------------------------------------------------------------


def _underscored(name: str) -> str:
    """The filename form of a project name: normalized, with '-' as '_' (R4.16, R4.17)."""
    return canonicalize_name(name).replace("-", "_")


def check_filename(form: UploadForm, filename: str) -> None:
    """Refuse a file part name that is unsafe or does not fit the form's filetype (R4.11).

    Runs before the body is stored, so the name can be used as a storage path afterwards.
    """
    # Object stores and terminals mishandle control characters; no real dist has them.
    if any(ord(char) < 32 or ord(char) == 127 for char in filename):
        raise UploadRejected(
            "Cannot upload a file with non-printable characters (ordinals 0-31) "
            "or the DEL character (ordinal 127) in the name."
        )
    # A basename only: no directory parts on either platform.
    if "/" in filename or "\\" in filename:
        raise UploadRejected("Cannot upload a file with '/' or '\\' in the name.")
    # Without separators the only path tricks left are "." and ".."; hidden files are
    # refused with them because no distribution name starts with a dot.
    if filename.startswith("."):
        raise UploadRejected("Cannot upload a file whose name starts with '.'.")
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME_LENGTH:
        raise UploadRejected(f"Filename is too long: '{filename}'")

    # An empty name falls through to here, as on PyPI, and gets the extension message.
    match = _DIST_FILE_RE.match(filename)
    if match is None:
        raise UploadRejected(
            "Invalid file extension: Use .tar.gz, .whl or .zip extension. "
            f"See {_PEP527_URL} and {_PEP715_URL} for more information"
        )
    extension = match.group("extension")
    if extension not in _FILETYPE_EXTENSIONS[form.filetype]:
        raise UploadRejected(
            f"Invalid file extension: Extension {extension} is invalid for filetype "
            f"{form.filetype}. See {_PEP527_URL} for more information."
        )
    if extension == ".zip":
        # PEP 625: sdists are .tar.gz only. PyPI refuses .zip with its PEP 625 message,
        # which names the file the uploader should have built.
        raise UploadRejected(
            f"Filename {filename!r} is invalid, should be "
            f"{_underscored(form.name) + '-' + str(Version(form.version)) + '.tar.gz'!r}."
        )


# --------------------------------------------------------------------------------------------
# The archive
# --------------------------------------------------------------------------------------------


def _check_ratio(uncompressed: int, compressed: int) -> None:
    if (
        uncompressed > COMPRESSION_RATIO_MIN_SIZE
        and uncompressed / max(compressed, 1) > COMPRESSION_RATIO_THRESHOLD
    ):
        raise _invalid_dist(f"File exceeds compression ratio of {COMPRESSION_RATIO_THRESHOLD}")


def _path_parts(member: str) -> list[str]:
    """Split an archive member path into components, treating '\\' as a separator too."""
    return [part for part in re.split(r"[/\\]", member) if part not in ("", ".")]


def _check_member_path(member: str) -> None:
    # We never extract, but installers and later tooling do: refuse what would escape.
    if (
        member.startswith(("/", "\\"))
        or re.match(r"[A-Za-z]:", member)
        or ".." in _path_parts(member)
    ):
        raise _invalid_dist(f"File contains an unsafe member path: {member!r}")


def _too_large(member: str) -> UploadRejected:
    return _invalid_dist(f"{member} exceeds the {MAX_METADATA_SIZE // MIB} MiB size limit")


def _inspect_wheel(path: pathlib.Path) -> tuple[str, bytes]:
    """Validate a wheel's archive; return its .dist-info directory and METADATA bytes."""
    if not zipfile.is_zipfile(path):
        raise _invalid_dist("File is not a zipfile")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_ratio(sum(info.file_size for info in infos), path.stat().st_size)
            for info in infos:
                # bzip2/lzma are legal zip but not wheel (BDF), and costlier to inflate.
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise _invalid_dist("File does not use a supported compression type")
            names: set[str] = set()
            for info in infos:
                _check_member_path(info.filename)
                # Duplicate names let two readers see different files (parser differential).
                if info.filename in names:
                    raise _invalid_dist(f"File contains a duplicate member: {info.filename!r}")
                names.add(info.filename)

            dist_infos = sorted(
                {
                    info.filename.split("/", 1)[0]
                    for info in infos
                    if "/" in info.filename
                    and info.filename.split("/", 1)[0].endswith(".dist-info")
                }
            )
            if len(dist_infos) != 1:
                raise _invalid_dist(
                    "Wheel must contain exactly one top-level .dist-info directory, "
                    f"found {len(dist_infos)}"
                )
            dist_info = dist_infos[0]
            for required in ("WHEEL", "METADATA", "RECORD"):
                if f"{dist_info}/{required}" not in names:
                    raise _invalid_dist(f"{required} not found at {dist_info}/{required}")

            member = f"{dist_info}/METADATA"
            info = archive.getinfo(member)
            if info.file_size > MAX_METADATA_SIZE:
                raise _too_large(member)
            with archive.open(info) as stream:
                # Read at most one byte over the cap, whatever the header claims.
                data = stream.read(MAX_METADATA_SIZE + 1)
            if len(data) > MAX_METADATA_SIZE:
                raise _too_large(member)
            return dist_info, data
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise _invalid_dist(f"The zip archive is truncated or corrupt ({exc})") from None


def _read_tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo, label: str) -> bytes:
    if member.size > MAX_METADATA_SIZE:
        raise _too_large(label)
    stream = archive.extractfile(member)
    if stream is None:  # only for non-regular members, which callers exclude
        raise _invalid_dist(f"{label} is not a regular file")
    data = stream.read(MAX_METADATA_SIZE + 1)
    if len(data) > MAX_METADATA_SIZE:
        raise _too_large(label)
    return data


def _inspect_sdist(path: pathlib.Path) -> tuple[str, bytes]:
    """Validate an sdist's archive; return its PKG-INFO member name and bytes.

    One pass over the gzip stream: the archive is never extracted or read twice.
    """
    compressed = path.stat().st_size
    # Opened outside `with` so a failure to open gets its own message; the `with` below
    # closes it.
    try:
        archive = tarfile.open(path, mode="r:gz")  # noqa: SIM115
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        # Not gzip, or gzip without a tar inside (SDF: a gzip-compressed tar, R4.17).
        raise _invalid_dist("File is not a tarfile") from None
    tops: set[str] = set()
    names: set[str] = set()
    pkg_infos: dict[str, bytes] = {}
    with archive:
        try:
            for member in archive:
                # Guard against gzip bombs before tarfile inflates this member's data,
                # which happens when it seeks to the next header.
                _check_ratio(member.offset_data + member.size, compressed)
                _check_member_path(member.name)
                if member.issym() or member.islnk():
                    raise _invalid_dist(f"File contains a link member: {member.name!r}")
                if member.issparse() or not (member.isfile() or member.isdir()):
                    raise _invalid_dist(
                        f"File contains a device, FIFO or sparse member: {member.name!r}"
                    )
                parts = _path_parts(member.name)
                if not parts:
                    continue  # the "./" entry some tar tools write
                normalized = "/".join(parts)
                if member.isfile():
                    # Two PKG-INFOs would let two readers disagree (parser differential).
                    if normalized in names:
                        raise _invalid_dist(f"File contains a duplicate member: {member.name!r}")
                    names.add(normalized)
                tops.add(parts[0])
                # Any "<top>/PKG-INFO" may be the one; read it now, while the stream is
                # positioned on it, so the archive is inflated only once.
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    pkg_infos[normalized] = _read_tar_member(archive, member, normalized)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise _invalid_dist(f"The tar archive is truncated or corrupt ({exc})") from None

    if len(tops) != 1:
        raise _invalid_dist("Incorrect number of top-level directories in sdist")
    target = f"{tops.pop()}/PKG-INFO"
    if target not in pkg_infos:
        raise _invalid_dist(f"PKG-INFO not found at {target}")
    return target, pkg_infos[target]


@dataclass(frozen=True)
class _FileMetadata:
    name: str
    version: Version
    version_text: str
    requires_python: str | None
    requires_dist: list[str] | None


def _parse_file_metadata(data: bytes, member: str) -> _FileMetadata:
    """Parse METADATA / PKG-INFO leniently: unknown or malformed extra fields are ignored."""
    label = member.rsplit("/", 1)[-1]
    try:
        raw, _unparsed = parse_email(data)
    except (ValueError, LookupError) as exc:
        raise _invalid_dist(f"{label} could not be parsed ({exc})") from None

    metadata_version = raw.get("metadata_version")
    if not isinstance(metadata_version, str):
        raise _invalid_dist(f"{label} has no Metadata-Version field")
    # Minor versions are forward compatible; an unknown major version is not (R4.9).
    try:
        if Version(metadata_version).major not in (1, 2):
            raise InvalidVersion(metadata_version)
    except InvalidVersion:
        raise _invalid_dist(
            f"{label} has an unsupported Metadata-Version {metadata_version!r}"
        ) from None

    name = raw.get("name")
    # A repeated Name lands in `unparsed`, so it is refused here as well.
    if not isinstance(name, str) or not PROJECT_NAME_RE.match(name):
        raise _invalid_dist(f"{label} has no valid Name field")

    version_text = raw.get("version")
    if not isinstance(version_text, str):
        raise _invalid_dist(f"{label} has no Version field")
    try:
        version = Version(version_text)
    except InvalidVersion:
        raise _invalid_dist(f"{label} has an invalid Version {version_text!r}") from None

    requires_python = raw.get("requires_python")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise _metadata_error(f"{requires_python!r} is invalid for 'requires-python'") from None

    requires_dist = raw.get("requires_dist")
    for requirement in requires_dist or []:
        try:
            Requirement(requirement)
        except InvalidRequirement:
            raise _metadata_error(f"{requirement!r} is invalid for 'requires-dist'") from None

    return _FileMetadata(
        name=name,
        version=version,
        version_text=version_text,
        requires_python=requires_python,
        requires_dist=list(requires_dist) if requires_dist is not None else None,
    )


# --------------------------------------------------------------------------------------------
# Name and version rules
# --------------------------------------------------------------------------------------------


def _check_sdist_filename(
    form: UploadForm, filename: str, form_version: Version, strict: bool = True
) -> None:
    """R4.12 / R4.17, as Warehouse applies them to sdists."""
    try:
        name_from_filename, _ = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        raise UploadRejected(f"Invalid source distribution filename: {filename}") from None

    # parse_sdist_filename splits on the last '-', so "foo-1.0-1.tar.gz" (a post-release
    # written with a hyphen) parses as "foo-1.0" / "1". Re-split on the second-to-last
    # hyphen so the user gets the PEP 625 hint below rather than a misleading name error.
    project = canonicalize_name(form.name)
    if form_version.is_postrelease and name_from_filename != project and filename.count("-") >= 2:
        candidate = filename.rpartition("-")[0].rpartition("-")[0]
        try:
            Version(filename[len(candidate) + 1 : -len(".tar.gz")])
        except InvalidVersion:
            pass
        else:
            name_from_filename = canonicalize_name(candidate)

    if name_from_filename != project:
        raise UploadRejected(f"Start filename for {form.name!r} with {_underscored(form.name)!r}.")

    expected = f"{_underscored(form.name)}-{form_version}.tar.gz"
    if not strict and filename.endswith(".tar.gz"):
        # A legacy spelling of the name is fine; the version must still be the form's.
        try:
            parsed = Version(filename[: -len(".tar.gz")].rpartition("-")[2])
        except InvalidVersion:
            parsed = None
        if parsed == form_version:
            return
    if filename != expected:
        raise UploadRejected(f"Filename {filename!r} is invalid, should be {expected!r}.")


def _check_wheel_filename(
    form: UploadForm, filename: str, form_version: Version, dist_info: str, strict: bool = True
) -> tuple[Version, str]:
    """R4.12 / R4.16 for wheels; return the filename's version and python tag."""
    try:
        wheel_name, wheel_version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise UploadRejected(str(exc)) from None
    # Any valid platform tag is accepted (R4.11 allows a private index to skip PyPI's
    # allow-list), so linux_x86_64 wheels built in-house can be published.

    if canonicalize_name(form.name) != wheel_name:
        raise UploadRejected(f"Start filename for {form.name!r} with {_underscored(form.name)!r}.")

    # parse_wheel_filename accepts legacy '.' and uppercase; uploads must be exact.
    name_from_filename = filename.split("-", 1)[0]
    if strict and name_from_filename != _underscored(form.name):
        raise UploadRejected(
            f"Filename {filename!r} should contain the normalized project name "
            f"{_underscored(form.name)!r}, not {name_from_filename!r}."
        )

    if form_version != wheel_version:
        raise UploadRejected(
            f"Version in filename should be {str(form_version)!r} not {str(wheel_version)!r}."
        )

    # Installers locate metadata through the .dist-info name; it must name this project.
    dist_info_name = dist_info[: -len(".dist-info")].split("-", 1)[0]
    if canonicalize_name(dist_info_name) != wheel_name:
        raise _invalid_dist(f".dist-info directory {dist_info!r} does not match {filename!r}")

    python_tag = filename[: -len(".whl")].split("-")[-3]
    return wheel_version, python_tag


def _check_file_agrees(form: UploadForm, file_meta: _FileMetadata, member: str) -> None:
    """R4.18: the metadata inside the file must describe what the form and filename say."""
    label = member.rsplit("/", 1)[-1]
    # Compared normalized: twine sends "foo-bar" for a METADATA Name of "foo_bar".
    if canonicalize_name(file_meta.name) != canonicalize_name(form.name):
        raise UploadRejected(f"Name in {label} should be {form.name!r} not {file_meta.name!r}.")
    form_version = Version(form.version)
    if file_meta.version != form_version:
        raise UploadRejected(
            f"Version in {label} should be {str(form_version)!r} not {str(file_meta.version)!r}."
        )


def _file_digests(path: pathlib.Path) -> dict[str, str]:
    hashers: dict[str, Any] = {
        "md5": hashlib.md5(usedforsecurity=False),
        "sha256": hashlib.sha256(),
        "blake2_256": hashlib.blake2b(digest_size=32),
    }
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def check_distribution(
    form: UploadForm,
    filename: str,
    path: pathlib.Path,
    digests: dict[str, str],
    *,
    strict_filenames: bool = True,
) -> CheckedDistribution:
    """Validate a stored upload against its form, in Warehouse's order (docs/standards.md 4.4).

    `digests` are the server-computed {"sha256", "blake2_256", "md5"} hex digests of the file
    at `path`. Checks: the filename again (so this function is safe on its own), every digest
    the client sent, archive validity, the filename name/version rules, and agreement of the
    file's own metadata with the form. Without `strict_filenames` (the index option; a
    private index's default), a file name whose project part is not in today's normalized
    form (`PyYAML-6.0.1-…whl`, `Django-4.2.7.tar.gz`) is accepted as the wheel
    specification asks of tools, as long as it normalizes to the project.
    """
    check_filename(form, filename)

    if any(algorithm not in digests for algorithm in form.digests):
        # Normally the server computed all three while streaming; fill any gap ourselves.
        digests = {**_file_digests(path), **digests}
    # Constant-time comparison costs nothing and removes a question from reviews.
    if not all(
        hmac.compare_digest(value, digests[algorithm].lower())
        for algorithm, value in form.digests.items()
    ):
        raise UploadRejected(
            "The digest supplied does not match a digest calculated from the uploaded file."
        )

    form_version = Version(form.version)
    if form.filetype == "bdist_wheel":
        dist_info, metadata_bytes = _inspect_wheel(path)
        member = f"{dist_info}/METADATA"
        file_meta = _parse_file_metadata(metadata_bytes, member)
        version, python_version = _check_wheel_filename(
            form, filename, form_version, dist_info, strict_filenames
        )
        core_metadata: bytes | None = metadata_bytes
    else:
        member, metadata_bytes = _inspect_sdist(path)
        file_meta = _parse_file_metadata(metadata_bytes, member)
        _check_sdist_filename(form, filename, form_version, strict_filenames)
        version, python_version = form_version, "source"
        core_metadata = None
    _check_file_agrees(form, file_meta, member)

    metadata = dict(form.metadata)
    metadata["name"] = file_meta.name
    metadata["version"] = file_meta.version_text
    # The file is authoritative: a form value the file does not carry is dropped.
    if file_meta.requires_python is None:
        metadata.pop("requires_python", None)
    else:
        metadata["requires_python"] = file_meta.requires_python
    if file_meta.requires_dist is None:
        metadata.pop("requires_dist", None)
    else:
        metadata["requires_dist"] = file_meta.requires_dist

    return CheckedDistribution(
        project=file_meta.name,
        normalized=canonicalize_name(file_meta.name),
        version=str(version),
        packagetype=form.filetype,
        python_version=python_version,
        requires_python=file_meta.requires_python,
        core_metadata=core_metadata,
        metadata=metadata,
    )
