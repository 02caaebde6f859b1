"""`lockgate import --from-devpi DIR`: bring over what `devpi-export DIR` wrote.

devpi-server's export is a directory: `dataindex.json` ("dumpversion" 1 or 2,
"users", "indexes" each with "indexconfig", "projects" → versions → metadata, and
"files" whose "relpath" points into the directory, with the hashes devpi recorded
in "entrymapping") and the files themselves.

As with a lockgate bundle, everything is read and verified before anything
changes: the format version, every name, every index setting (translated to
lockgate's), every file against every hash devpi recorded (copied into verified
temp blobs while hashing), the distribution metadata of each release file (read
as an upload's is, in a thread). Then the blobs are committed and one write
transaction creates users, indexes, files, yanks and test results through the
domains' services and entries, with the `import` actor. Any refusal leaves the
server as it was.

What devpi's export cannot carry, or lockgate cannot take yet, is counted and
listed, never dropped silently: the mirror cache (devpi exports none unless
`--include-mirrored-files`, and lockgate refetches from the upstream anyway),
documentation of releases that have no files in the export (lockgate keeps docs
with a release), password hashes in a shape lockgate cannot verify (those users must be given a
new password), settings lockgate has no equivalent for.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockgate.accounts.entries import UserPut
from lockgate.accounts.passwords import devpi_legacy_hash, hash_password, is_verifiable
from lockgate.accounts.services import ROOT_USER, get_user, users_named_any_case
from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import lock_serial, record, utcnow_iso
from lockgate.config import DEFAULT_DOCS_MAX_MEMBERS, DEFAULT_DOCS_MAX_UNPACKED_BYTES
from lockgate.db.session import Database
from lockgate.distfiles import packagetype_of, version_from_filename
from lockgate.docs.archive import DocsLimits, DocsRejected, InspectedDocs, inspect_docs_zip
from lockgate.docs.entries import DocsPut, release_id_of
from lockgate.errors import LockgateError
from lockgate.indexes.config import MIRROR_KEYS, STAGE_KEYS, parse_config
from lockgate.indexes.services import (
    create_index,
    get_index,
    indexes_named_any_case,
    modify_index,
    precheck_config,
    require_index,
)
from lockgate.names import check_name, is_valid_project_name
from lockgate.packages.entries import FileAdd, ReleaseYank
from lockgate.storage.blobs import BlobStore, Digests, HashingWriter
from lockgate.transfer.importer import IMPORTER, ImportRefused
from lockgate.uploads.validation import UploadForm, UploadRejected, check_distribution
from lockgate.workflow.entries import PushedFile, ReleasePush, ResultPost
from lockgate.workflow.results import ResultSpec, bound_log, results_from_toxresult

# Recorded as the cause of everything a devpi import writes.
DEVPI_IMPORTER: Actor = IMPORTER
DUMPVERSIONS = ("1", "2")
MAX_DATAINDEX_BYTES = 1024 * 1024 * 1024
MAX_TOXRESULT_BYTES = 16 * 1024 * 1024
CHUNK = 1024 * 1024
# devpi settings lockgate has no equivalent for, at the value that changes nothing
# here: not worth a note.
_HARMLESS = {
    "mirror_whitelist_inheritance": "intersection",
    "acl_toxresult_upload": [":ANONYMOUS:"],
    "custom_data": None,
    "mirror_web_url_fmt": None,
    "mirror_use_external_urls": None,
    "mirror_ignore_serial_header": None,
    "mirror_frontend_url": None,
    "mirror_username": None,
    "mirror_password": None,
    "title": None,
    "description": None,
}
_FILE_TYPES = ("releasefile", "toxresult", "doczip")


@dataclass
class DevpiUser:
    name: str
    password_hash: str | None  # None: devpi's hash cannot be verified here
    email: str | None
    created_at: str


@dataclass
class DevpiIndex:
    user: str
    name: str
    type: str
    config: dict[str, Any]  # lockgate's settings
    dropped: list[str]  # devpi settings not carried

    @property
    def path(self) -> str:
        return f"{self.user}/{self.name}"


@dataclass
class DevpiFile:
    index: str
    project: str
    version: str
    filename: str
    source: Path
    recorded: dict[str, str]  # hash name -> hex, as devpi recorded them
    upload_time: str
    uploader: str | None
    pushed: Push | None = None  # how the file reached this index, when devpi pushed it
    temp: Path | None = None
    payload: FileAdd | None = None
    core_metadata: bytes | None = None


@dataclass(frozen=True)
class Push:
    source: str  # user/index
    by: str
    at: str


@dataclass
class DevpiResult:
    index: str
    for_filename: str
    source: Path
    recorded: dict[str, str]
    posted_at: str
    poster: str
    specs: list[ResultSpec] = field(default_factory=list)
    logs: list[tuple[str | None, int, bool]] = field(default_factory=list)  # sha256, size, cut


@dataclass
class DevpiDoc:
    index: str
    project: str
    version: str
    source: Path
    recorded: dict[str, str]
    temp: Path | None = None  # the verified copy, until its blob is committed
    digests: Digests | None = None
    inspected: InspectedDocs | None = None  # checked as an upload's docs are


@dataclass
class DevpiPlan:
    devpi_version: str
    users: list[DevpiUser]
    indexes: list[DevpiIndex]  # bases before the indexes that use them
    files: list[DevpiFile]
    results: list[DevpiResult]
    docs: list[DevpiDoc]
    yanks: list[tuple[str, str, str, str | None]]  # index, project, version, reason
    notes: list[str]
    mirror_files: int  # files of devpi mirror indexes in the export: not imported
    # Each stage index's version metadata (requires_python, yanked) by normalized
    # project and version.
    versions: dict[str, dict[tuple[str, str], dict[str, Any]]]


@dataclass(frozen=True)
class DevpiImportResult:
    devpi_version: str
    users: int
    must_reset: list[str]
    indexes: int
    projects: int
    releases: int
    files: int
    yanks: int
    test_results: int
    docs: int
    docs_not_imported: list[str]
    mirror_files_skipped: int
    notes: list[str]


# --- reading and checking dataindex.json ---------------------------------------


def _refuse(message: str) -> ImportRefused:
    return ImportRefused(message)


def _iso(value: Any) -> str | None:
    """devpi's times: "2026-12-07T23:39:23Z", an HTTP date, or [y, m, d, H, M, S]."""
    try:
        if isinstance(value, list) and len(value) >= 6:
            year, month, day, hour, minute, second = (int(v) for v in value[:6])
            when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        elif isinstance(value, str) and value[:1].isdigit():
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif isinstance(value, str):
            when = parsedate_to_datetime(value)
        else:
            return None
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _first_upload(log: Any) -> tuple[str | None, str | None]:
    """Who uploaded a file and when, from devpi's per-file log."""
    if isinstance(log, list):
        for item in log:
            if isinstance(item, dict) and item.get("what") in ("upload", "push"):
                who = item.get("who")
                return (who if isinstance(who, str) else None), _iso(item.get("when"))
    return None, None


def _last_push(log: Any, index: str) -> Push | None:
    """The push that brought a file to `index`, from devpi's per-file log (its
    last entry naming `index` as the destination)."""
    if not isinstance(log, list):
        return None
    for item in reversed(log):
        if not isinstance(item, dict) or item.get("dst") != index:
            continue
        source, who, when = item.get("src"), item.get("who"), _iso(item.get("when"))
        if item.get("what") == "push" and isinstance(source, str) and source != index:
            return Push(source, who if isinstance(who, str) else "import", when or utcnow_iso())
        return None
    return None


def _recorded_hashes(desc: dict[str, Any]) -> dict[str, str]:
    mapping = desc.get("entrymapping")
    mapping = mapping if isinstance(mapping, dict) else {}
    recorded: dict[str, str] = {}
    hashes = mapping.get("hashes")
    if isinstance(hashes, dict):
        recorded.update({str(k): str(v).lower() for k, v in hashes.items() if isinstance(v, str)})
    for key in ("hash_spec", "_hash_spec"):
        spec = mapping.get(key)
        if isinstance(spec, str) and "=" in spec:
            name, _, value = spec.partition("=")
            recorded.setdefault(name, value.lower())
    if isinstance(mapping.get("md5"), str):  # dumpversion 1
        recorded.setdefault("md5", mapping["md5"].lower())
    return recorded


def _toxresult_hashes(relpath: str, recorded: dict[str, str]) -> dict[str, str]:
    """devpi-server 6.5 to 6.8 recorded the hash of the tested file for a toxresult,
    not of the toxresult itself (devpi's own import drops such hashes; so do we):
    the tested file's hash is the directory the toxresult lies in."""
    parts = PurePosixPath(relpath).parts
    if len(parts) == 5 and "=" in parts[3]:
        name, _, value = parts[3].partition("=")
        if recorded.get(name) == value.lower():
            return {}
    return recorded


def _export_path(root: Path, relpath: Any) -> Path:
    """A file the export names, never outside the export directory."""
    if not isinstance(relpath, str) or not relpath:
        raise _refuse("a file entry in dataindex.json has no 'relpath'")
    parts = PurePosixPath(relpath).parts
    if PurePosixPath(relpath).is_absolute() or ".." in parts or "\\" in relpath:
        raise _refuse(f"file path {relpath!r} in dataindex.json leads outside the export")
    path = root.joinpath(*parts)
    if not path.is_file():
        raise _refuse(f"the export lists {relpath}, but the file is missing")
    # A symbolic link out of the export is as bad as "..".
    if not path.resolve().is_relative_to(root.resolve()):
        raise _refuse(f"file path {relpath!r} in dataindex.json leads outside the export")
    return path


def _safe_filename(name: str) -> str:
    if (
        not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or len(name.encode("utf-8", "surrogatepass")) > 255
    ):
        raise _refuse(f"file name {name!r} in the export is not a safe file name")
    return name


def _user(name: Any, data: Any) -> DevpiUser:
    if not isinstance(name, str) or not isinstance(data, dict):
        raise _refuse(f"user entry {name!r} in dataindex.json is malformed")
    try:
        check_name("user", name)
    except LockgateError as exc:
        raise _refuse(f"devpi user {name!r} cannot be carried over: {exc}") from None
    pwhash, salt = data.get("pwhash"), data.get("pwsalt")
    stored: str | None = None
    if isinstance(pwhash, str) and isinstance(salt, str) and salt:
        stored = devpi_legacy_hash(salt, pwhash)
    elif isinstance(pwhash, str):
        stored = pwhash
    if stored is not None and not is_verifiable(stored):
        stored = None
    email = data.get("email")
    email = email if isinstance(email, str) and "@" in email and len(email) <= 255 else None
    return DevpiUser(name, stored, email, _iso(data.get("created")) or utcnow_iso())


def _index_config(path: str, devpi: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """devpi's indexconfig as lockgate's settings, and the devpi settings dropped."""
    kind = devpi.get("type")
    if kind not in ("stage", "mirror"):
        raise _refuse(
            f"index {path} has type {kind!r} (a devpi plugin's); lockgate imports stage "
            "and mirror indexes only"
        )
    devpi = dict(devpi)
    if "pypi_whitelist" in devpi:  # renamed in devpi-server 3.0
        whitelist = devpi.pop("pypi_whitelist")
        devpi.setdefault("mirror_whitelist", whitelist)
    allowed = STAGE_KEYS if kind == "stage" else MIRROR_KEYS
    config = {key: value for key, value in devpi.items() if key in allowed}
    if kind == "mirror":
        config.pop("bases", None)  # older devpi kept an empty list on mirrors
        # Settings only root may choose; the ca bundle is a path on the old server.
        config.pop("mirror_ca_bundle", None)
    dropped = []
    for key, value in sorted(devpi.items()):
        if key in config or key in ("type", "bases"):
            continue
        if key in _HARMLESS and (_HARMLESS[key] is None or _HARMLESS[key] == value or not value):
            continue
        dropped.append(f"{key}={json.dumps(value, sort_keys=True)}")
    for key in ("title", "description"):
        if isinstance(devpi.get(key), str):
            config[key] = devpi[key]
    return kind, config, dropped


def _order_indexes(indexes: dict[str, DevpiIndex], notes: list[str]) -> list[DevpiIndex]:
    """Bases first; bases the export does not hold are dropped (devpi warns about
    them too), a cycle of bases is refused."""
    for index in indexes.values():
        bases = index.config.get("bases") or []
        if not isinstance(bases, list):
            raise _refuse(f"index {index.path}: 'bases' must be a list")
        kept = [b for b in bases if b in indexes or b == "root/pypi"]
        missing = [b for b in bases if b not in kept]
        if missing:
            notes.append(
                f"index {index.path}: base(s) {', '.join(missing)} are not in the export "
                "and were left out of its bases"
            )
        if "bases" in index.config or index.type == "stage":
            index.config["bases"] = kept
    ordered: list[DevpiIndex] = []
    state: dict[str, str] = {}

    def visit(path: str, trail: tuple[str, ...]) -> None:
        if state.get(path) == "done" or path not in indexes:
            return
        if state.get(path) == "visiting":
            raise _refuse(f"the bases of devpi indexes make a cycle: {' -> '.join((*trail, path))}")
        state[path] = "visiting"
        for base in indexes[path].config.get("bases", []):
            visit(base, (*trail, path))
        state[path] = "done"
        ordered.append(indexes[path])

    for path in sorted(indexes):
        visit(path, ())
    return ordered


def read_dataindex(root: Path) -> DevpiPlan:
    """Parse and check dataindex.json and that every file it names is there
    (hashes are checked while the files are copied, `stage_files`)."""
    if not root.is_dir():
        raise _refuse(f"{root} is not a directory (give the directory devpi-export wrote)")
    index_path = root / "dataindex.json"
    if not index_path.is_file():
        raise _refuse(f"{root} holds no dataindex.json: is it a devpi-export directory?")
    if index_path.stat().st_size > MAX_DATAINDEX_BYTES:
        raise _refuse("dataindex.json is too large")
    try:
        data = json.loads(index_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse(f"dataindex.json is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _refuse("dataindex.json does not hold a JSON object")
    dumpversion = data.get("dumpversion")
    if str(dumpversion) not in DUMPVERSIONS or not isinstance(dumpversion, str | int):
        raise _refuse(
            f"unsupported devpi export format: dumpversion {dumpversion!r} (lockgate reads "
            f"dumpversion {' and '.join(DUMPVERSIONS)}, written by devpi-server 2.x to 6.x)"
        )
    users_data, indexes_data = data.get("users"), data.get("indexes")
    if not isinstance(users_data, dict) or not isinstance(indexes_data, dict):
        raise _refuse("dataindex.json lacks its 'users' or 'indexes' object")
    notes: list[str] = []
    users = [_user(name, value) for name, value in sorted(users_data.items())]
    user_names = {u.name for u in users}

    indexes: dict[str, DevpiIndex] = {}
    for path, meta in sorted(indexes_data.items()):
        if not isinstance(meta, dict) or not isinstance(meta.get("indexconfig"), dict):
            raise _refuse(f"index {path!r} in dataindex.json has no 'indexconfig'")
        parts = path.split("/") if isinstance(path, str) else []
        if len(parts) != 2:
            raise _refuse(f"index name {path!r} in dataindex.json is not 'user/index'")
        try:
            check_name("index", parts[1])
        except LockgateError as exc:
            raise _refuse(f"devpi index {path!r} cannot be carried over: {exc}") from None
        if parts[0] not in user_names:
            raise _refuse(f"index {path} belongs to user {parts[0]!r}, who is not in the export")
        kind, config, dropped = _index_config(path, meta["indexconfig"])
        try:
            # Refused now, naming the index, rather than half-way through the copy.
            parse_config(parts[0], parts[1], {"type": kind, **config})
        except LockgateError as exc:
            raise _refuse(f"the settings of devpi index {path} are not valid here: {exc}") from None
        indexes[path] = DevpiIndex(parts[0], parts[1], kind, config, dropped)
        if dropped:
            notes.append(f"index {path}: devpi settings not carried: {', '.join(dropped)}")
    ordered = _order_indexes(indexes, notes)

    files: list[DevpiFile] = []
    results: list[DevpiResult] = []
    docs: list[DevpiDoc] = []
    yanks: list[tuple[str, str, str, str | None]] = []
    mirror_files = 0
    all_versions: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for path, meta in sorted(indexes_data.items()):
        index = indexes[path]
        descs = meta.get("files") or []
        projects = meta.get("projects") or {}
        if not isinstance(descs, list) or not isinstance(projects, dict):
            raise _refuse(f"index {path}: 'files' or 'projects' is malformed")
        if index.type == "mirror":
            mirror_files += len(descs)
            continue
        versions = all_versions[path] = _versiondata(path, projects)
        with_files: set[tuple[str, str]] = set()
        for desc in descs:
            if not isinstance(desc, dict) or desc.get("type") not in _FILE_TYPES:
                what = desc.get("type") if isinstance(desc, dict) else desc
                raise _refuse(f"index {path}: unknown file type {what!r} in the export")
            source = _export_path(root, desc.get("relpath"))
            project = desc.get("projectname")
            version = desc.get("version")
            if version is None and desc["type"] == "releasefile":
                # dumpversion 1 left it out; devpi's own import reads it from the name.
                version = version_from_filename(source.name) or None
            if not isinstance(project, str) or not isinstance(version, str):
                raise _refuse(f"{desc.get('relpath')}: no 'projectname' or 'version'")
            if not is_valid_project_name(project):
                raise _refuse(f"{desc['relpath']}: invalid project name {project!r}")
            who, when = _first_upload(desc.get("log"))
            mapping = desc.get("entrymapping") if isinstance(desc.get("entrymapping"), dict) else {}
            when = when or _iso((mapping or {}).get("last_modified")) or utcnow_iso()
            recorded = _recorded_hashes(desc)
            if desc["type"] == "releasefile":
                if not recorded:
                    raise _refuse(
                        f"devpi recorded no hash for {desc['relpath']}: it cannot be verified"
                    )
                files.append(
                    DevpiFile(
                        path,
                        project,
                        version,
                        _safe_filename(source.name),
                        source,
                        recorded,
                        when,
                        who,
                        _last_push(desc.get("log"), path),
                    )
                )
                with_files.add((canonicalize_name(project), version))
            elif desc["type"] == "toxresult":
                target = desc.get("for_entrypath")
                if not isinstance(target, str):
                    raise _refuse(f"{desc['relpath']}: a toxresult without 'for_entrypath'")
                results.append(
                    DevpiResult(
                        path,
                        PurePosixPath(target).name,
                        source,
                        _toxresult_hashes(desc["relpath"], recorded),
                        when,
                        who or "import",
                    )
                )
            else:
                docs.append(DevpiDoc(path, project, version, source, recorded))
        for (project, version), vdata in sorted(versions.items()):
            # devpi keeps a mirror's yank as True (PEP 691), "" (data-yanked="") or
            # the reason; None or False (or no key) means not yanked.
            yanked = vdata.get("yanked")
            if yanked is not None and yanked is not False and (project, version) in with_files:
                reason = yanked if isinstance(yanked, str) and yanked else None
                yanks.append((path, project, version, reason))
        bare = sorted(f"{p} {v}" for p, v in versions if (p, v) not in with_files)
        if bare:
            notes.append(
                f"index {path}: release(s) registered without files, not carried "
                f"(lockgate keeps releases by their files): {', '.join(bare)}"
            )
    return DevpiPlan(
        str(data.get("devpi_server") or "unknown"),
        users,
        ordered,
        files,
        results,
        docs,
        yanks,
        notes,
        mirror_files,
        all_versions,
    )


def _versiondata(path: str, projects: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for project, versions in projects.items():
        if not isinstance(versions, dict):
            raise _refuse(f"index {path}: project {project!r} is malformed")
        for version, vdata in versions.items():
            if isinstance(vdata, dict):
                found[(canonicalize_name(str(project)), str(version))] = vdata
    return found


# --- verifying and staging the files --------------------------------------------


def _check_recorded(
    what: str, recorded: dict[str, str], computed: dict[str, str], temp: Path
) -> None:
    """Every hash devpi recorded must match; one lockgate cannot compute counts only
    when another one (sha256 or md5) was checked."""
    checked = 0
    for name, expected in recorded.items():
        actual = computed.get(name)
        if actual is None and name in hashlib.algorithms_available:
            hasher = hashlib.new(name)
            with temp.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    hasher.update(chunk)
            actual = hasher.hexdigest()
        if actual is None:
            continue
        checked += 1
        if not hmac.compare_digest(actual, expected):
            raise _refuse(
                f"{what} does not match the {name} devpi recorded for it "
                f"(recorded {expected}, found {actual}): the export is damaged or was "
                "tampered with"
            )
    if recorded and not checked:
        raise _refuse(
            f"{what}: lockgate cannot check any hash devpi recorded ({', '.join(recorded)})"
        )


def _copy_verified(
    blobs: BlobStore, source: Path, recorded: dict[str, str], what: str
) -> tuple[Path, Digests]:
    out, temp = blobs.new_temp()
    try:
        with out, source.open("rb") as handle:
            writer = HashingWriter(out)
            while chunk := handle.read(CHUNK):
                writer.write(chunk)
        digests = writer.digests()
        _check_recorded(what, recorded, {"sha256": digests.sha256, "md5": digests.md5}, temp)
    except BaseException:
        blobs.discard(temp)
        raise
    return temp, digests


def _file_payload(
    item: DevpiFile,
    digests: Digests,
    versions: dict[tuple[str, str], dict[str, Any]],
    notes: list[str],
) -> tuple[FileAdd, bytes | None]:
    """The `file.add` an upload of this file would have recorded: its metadata read
    from the archive as an upload's is; devpi's requires_python (what its pages said)
    wins over the file's when devpi recorded one."""
    vdata = versions.get((canonicalize_name(item.project), item.version), {})
    packagetype, python_version = packagetype_of(item.filename)
    is_wheel = item.filename.endswith(".whl")
    form = UploadForm(
        name=item.project,
        version=item.version,
        metadata_version="2.1",
        filetype="bdist_wheel" if is_wheel else "sdist",
        pyversion=python_version if is_wheel else "source",
        digests={},
        metadata={},
        comment=None,
    )
    requires_python: str | None = None
    core_metadata: bytes | None = None
    metadata: dict[str, Any] = {
        k: v
        for k, v in vdata.items()
        if isinstance(v, str | list) and v and k != "yanked" and not k.startswith(("+", ":"))
    }
    try:
        Version(item.version)
        assert item.temp is not None
        checked = check_distribution(
            form,
            item.filename,
            item.temp,
            {"sha256": digests.sha256, "blake2_256": digests.blake2_256, "md5": digests.md5},
            strict_filenames=False,
        )
    except (UploadRejected, InvalidVersion) as exc:
        notes.append(
            f"{item.index}: {item.filename} imported without its metadata (lockgate would "
            f"refuse it as an upload: {exc})"
        )
    else:
        packagetype, python_version = checked.packagetype, checked.python_version
        requires_python = checked.requires_python
        core_metadata = checked.core_metadata
        metadata = {**metadata, **checked.metadata}
    devpi_requires = vdata.get("requires_python")
    if isinstance(devpi_requires, str) and devpi_requires.strip():
        requires_python = devpi_requires.strip()
    payload = FileAdd(
        user=item.index.split("/")[0],
        index=item.index.split("/")[1],
        project=item.project,
        version=item.version,
        filename=item.filename,
        sha256=digests.sha256,
        blake2_256=digests.blake2_256,
        md5=digests.md5,
        size=digests.size,
        packagetype=packagetype,
        python_version=python_version,
        requires_python=requires_python,
        core_metadata_sha256=(
            hashlib.sha256(core_metadata).hexdigest() if core_metadata is not None else None
        ),
        upload_time=item.upload_time,
        uploader=item.uploader,
        metadata=metadata,
    )
    return payload, core_metadata


def _toxresult_specs(item: DevpiResult, notes: list[str]) -> list[ResultSpec]:
    if item.source.stat().st_size > MAX_TOXRESULT_BYTES:
        notes.append(f"{item.index}: toxresult {item.source.name} is too large, not carried")
        return []
    try:
        return results_from_toxresult(json.loads(item.source.read_bytes()))
    except (ValueError, UnicodeDecodeError, LockgateError) as exc:
        notes.append(f"{item.index}: toxresult {item.source.name} not carried: {exc}")
        return []


def stage_files(root: Path, plan: DevpiPlan, blobs: BlobStore) -> list[Path]:
    """Copy every file into a temp blob while checking devpi's hashes, read the
    release files' metadata; returns the temps (the caller discards them on failure)."""
    temps: list[Path] = []
    versions = plan.versions
    try:
        for item in plan.files:
            item.temp, digests = _copy_verified(
                blobs, item.source, item.recorded, f"{item.index}: {item.filename}"
            )
            temps.append(item.temp)
            item.payload, item.core_metadata = _file_payload(
                item, digests, versions.get(item.index, {}), plan.notes
            )
        for result in plan.results:
            temp, _ = _copy_verified(
                blobs, result.source, result.recorded, f"{result.index}: {result.source.name}"
            )
            blobs.discard(temp)  # only the parsed results are kept, as a post's are
            result.specs = _toxresult_specs(result, plan.notes)
        limits = DocsLimits(DEFAULT_DOCS_MAX_UNPACKED_BYTES, DEFAULT_DOCS_MAX_MEMBERS)
        for doc in plan.docs:
            doc.temp, doc.digests = _copy_verified(
                blobs, doc.source, doc.recorded, f"{doc.index}: {doc.source.name}"
            )
            temps.append(doc.temp)
            try:
                # The same checks as a documentation upload (names, links, caps).
                doc.inspected = inspect_docs_zip(doc.temp, limits)
            except DocsRejected as exc:
                raise _refuse(
                    f"{doc.index}: the documentation of {doc.project} {doc.version} "
                    f"({doc.source.name}) is refused: {exc}"
                ) from None
        seen: dict[tuple[str, str], str] = {}
        for item in plan.files:
            key = (item.index, item.filename)
            assert item.payload is not None
            if key in seen and seen[key] != item.payload.sha256:
                raise _refuse(f"{item.index} lists {item.filename} twice, with different contents")
            seen[key] = item.payload.sha256
    except BaseException:
        for temp in temps:
            blobs.discard(temp)
        raise
    return temps


# --- applying -------------------------------------------------------------------


async def _check_target_empty(db: Database, plan: DevpiPlan) -> None:
    """A devpi import fills a new server: users and indexes it brings must not exist
    yet (root, and a root/pypi mirror, are updated)."""
    async with db.read() as session:
        for user in plan.users:
            if user.name == ROOT_USER:
                continue
            existing = await users_named_any_case(session, user.name)
            if existing:
                raise _refuse(
                    f"this server already has user {existing[0]!r}: import a devpi export "
                    "into a new server directory"
                )
        for index in plan.indexes:
            existing = await indexes_named_any_case(session, index.user, index.name)
            if not existing:
                continue
            current = await get_index(session, index.user, existing[0])
            if index.path == "root/pypi" and current is not None and current.is_mirror:
                continue
            raise _refuse(
                f"this server already has index {index.user}/{existing[0]}: import a devpi "
                "export into a new server directory"
            )


async def _import_docs(session: Any, plan: DevpiPlan) -> tuple[int, list[str]]:
    """Each documentation zip (verified and checked before the transaction) as a
    `docs.put` of its release; docs of a release without files in the export have no
    release to belong to in lockgate, and are listed instead."""
    stored = 0
    skipped: list[str] = []
    for doc in sorted(plan.docs, key=lambda d: (d.index, d.project, d.version)):
        assert doc.digests is not None and doc.inspected is not None
        owner, name = doc.index.split("/")
        index = await require_index(session, owner, name)
        if await release_id_of(session, index.id, doc.project, doc.version) is None:
            skipped.append(f"{doc.index} {doc.project} {doc.version} (the release has no files)")
            continue
        await record(
            session,
            DocsPut(
                user=owner,
                index=name,
                project=str(canonicalize_name(doc.project)),
                version=doc.version,
                sha256=doc.digests.sha256,
                size=doc.digests.size,
                members=doc.inspected.members,
                unpacked_bytes=doc.inspected.unpacked_bytes,
                uploaded_at=utcnow_iso(),
                uploader=DEVPI_IMPORTER.name,
                text=doc.inspected.text,
                text_truncated=doc.inspected.text_truncated,
            ),
            DEVPI_IMPORTER,
        )
        stored += 1
    return stored, skipped


async def _apply(session: Any, plan: DevpiPlan, reset_hashes: dict[str, str]) -> tuple[int, int]:
    await lock_serial(session)
    for user in plan.users:
        password_hash = user.password_hash or reset_hashes[user.name]
        current = await get_user(session, user.name)
        if user.name != ROOT_USER and await users_named_any_case(session, user.name):
            # Created since the check before the copy (a server running meanwhile).
            raise _refuse(f"this server already has user {user.name!r}")
        await record(
            session,
            UserPut(
                name=user.name,
                password_hash=password_hash,
                email=user.email,
                created_at=current.created_at if current else user.created_at,
            ),
            DEVPI_IMPORTER,
        )
    for index in plan.indexes:
        data = {"type": index.type, **index.config}
        if index.path == "root/pypi" and await get_index(session, "root", "pypi"):
            await modify_index(session, index.user, index.name, data, DEVPI_IMPORTER)
        else:
            await create_index(session, index.user, index.name, data, DEVPI_IMPORTER)
    files = await _add_files(session, plan)
    for path, project, version, reason in plan.yanks:
        owner, name = path.split("/")
        await record(
            session,
            ReleaseYank(
                user=owner, index=name, project=project, version=version, yanked=True, reason=reason
            ),
            DEVPI_IMPORTER,
        )
    by_file = {(f.index, f.filename): f.payload for f in plan.files}
    posted = 0
    for result in plan.results:
        target = by_file.get((result.index, result.for_filename))
        if target is None:
            plan.notes.append(
                f"{result.index}: toxresult {result.source.name} is for {result.for_filename}, "
                "which the export does not hold there; not carried"
            )
            continue
        for spec, log in zip(result.specs, result.logs, strict=True):
            await record(
                session,
                ResultPost(
                    user=target.user,
                    index=target.index,
                    filename=target.filename,
                    sha256=target.sha256,
                    environment=spec.environment,
                    outcome=spec.outcome,
                    posted_at=result.posted_at,
                    poster=result.poster,
                    python=spec.python,
                    platform=spec.platform,
                    duration=spec.duration,
                    url=spec.url,
                    log_sha256=log[0],
                    log_size=log[1],
                    log_truncated=log[2],
                ),
                DEVPI_IMPORTER,
            )
            posted += 1
    return files, posted


async def _add_files(session: Any, plan: DevpiPlan) -> int:
    """Uploaded files as `file.add`; files devpi pushed as one `release.push` per push
    (so lockgate shows where the release came from), in the order devpi pushed them;
    a push whose source files the export no longer holds becomes plain `file.add`s."""
    unique: dict[tuple[str, str], DevpiFile] = {}
    for item in plan.files:
        unique.setdefault((item.index, item.filename), item)
    present: set[tuple[str, str, str]] = set()  # index, filename, sha256
    pushes: dict[tuple[str, str, str, str, str], list[DevpiFile]] = defaultdict(list)
    for item in sorted(unique.values(), key=lambda f: (f.upload_time, f.index, f.filename)):
        assert item.payload is not None
        if item.pushed is not None:
            push = item.pushed
            key = (
                push.at,
                item.index,
                push.source,
                str(canonicalize_name(item.project)),
                item.version,
            )
            pushes[key].append(item)
            continue
        await record(session, item.payload, DEVPI_IMPORTER)
        present.add((item.index, item.filename, item.payload.sha256))
    for key in sorted(pushes):
        at, target, source, _, version = key
        group = pushes[key]
        payloads = [f.payload for f in group if f.payload is not None]
        if all((source, p.filename, p.sha256) in present for p in payloads):
            owner, name = target.split("/")
            source_owner, source_name = source.split("/")
            await record(
                session,
                ReleasePush(
                    user=owner,
                    index=name,
                    source_user=source_owner,
                    source_index=source_name,
                    project=group[0].project,
                    version=version,
                    files=tuple(
                        PushedFile(p.filename, p.sha256, p.core_metadata_sha256) for p in payloads
                    ),
                    pushed_at=at,
                    pushed_by=group[0].pushed.by if group[0].pushed else "import",
                ),
                DEVPI_IMPORTER,
            )
        else:
            for payload in payloads:
                await record(session, payload, DEVPI_IMPORTER)
        present.update((target, p.filename, p.sha256) for p in payloads)
    return len(unique)


def _commit_blobs(plan: DevpiPlan, blobs: BlobStore) -> None:
    """Verified blobs first (a crash from here on leaves unreferenced blobs at most,
    which gc removes), the rows after, in one transaction."""
    for item in plan.files:
        assert item.temp is not None and item.payload is not None
        blobs.commit_temp(item.temp, item.payload.sha256)
        item.temp = None
        if item.core_metadata is not None:
            blobs.put_bytes(item.core_metadata)
    for doc in plan.docs:
        assert doc.temp is not None and doc.digests is not None
        blobs.commit_temp(doc.temp, doc.digests.sha256)
        doc.temp = None
    for result in plan.results:
        logs: list[tuple[str | None, int, bool]] = []
        for spec in result.specs:
            if spec.log:
                bounded = bound_log(spec.log)
                logs.append((blobs.put_bytes(bounded.data), len(bounded.data), bounded.truncated))
            else:
                logs.append((None, 0, False))
        result.logs = logs


async def import_devpi_export(db: Database, blobs: BlobStore, root: Path) -> DevpiImportResult:
    """Verify the whole export, then apply it in one transaction (all or nothing)."""
    plan = await asyncio.to_thread(read_dataindex, root)
    await _check_target_empty(db, plan)
    for index in plan.indexes:
        await precheck_config({"type": index.type, **index.config})
    temps = await asyncio.to_thread(stage_files, root, plan, blobs)
    try:
        # Users whose devpi hash cannot be verified get a password nobody knows:
        # hashed here, before the write transaction.
        reset_hashes = {
            user.name: await asyncio.to_thread(hash_password, secrets.token_urlsafe(32))
            for user in plan.users
            if user.password_hash is None
        }
        await asyncio.to_thread(_commit_blobs, plan, blobs)
    except BaseException:
        for temp in temps:
            blobs.discard(temp)
        raise
    try:
        async with db.write() as session:
            files, posted = await _apply(session, plan, reset_hashes)
            docs, docs_skipped = await _import_docs(session, plan)
    except LockgateError as exc:
        raise _refuse(f"the export could not be applied, nothing was changed: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any failure rolls the whole import back
        raise _refuse(f"the export could not be applied, nothing was changed: {exc}") from exc
    projects: dict[str, set[str]] = defaultdict(set)
    releases: set[tuple[str, str, str]] = set()
    for item in plan.files:
        projects[item.index].add(canonicalize_name(item.project))
        releases.add((item.index, canonicalize_name(item.project), item.version))
    return DevpiImportResult(
        devpi_version=plan.devpi_version,
        users=len(plan.users),
        must_reset=sorted(u.name for u in plan.users if u.password_hash is None),
        indexes=len(plan.indexes),
        projects=sum(len(p) for p in projects.values()),
        releases=len(releases),
        files=files,
        yanks=len(plan.yanks),
        test_results=posted,
        docs=docs,
        docs_not_imported=docs_skipped,
        mirror_files_skipped=plan.mirror_files,
        notes=plan.notes,
    )
