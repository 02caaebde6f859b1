"""The layering rules of docs/architecture.md, enforced on the import graph.

- `changelog/` imports no domain: domains plug into it through the registry.
- The floor (`db`, `config`, `errors`, `names`, `urls`, `distfiles`, `logs`,
  `http`, `web`) imports no domain either.
- Views (every module the route table takes handlers from) import no models
  and never append to the changelog themselves: they call one service.
- Every entry kind is registered exactly once, by the domain that declares it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lockgate.changelog.payloads import Payload
from lockgate.domains import build_registry

PACKAGE = Path(__file__).resolve().parents[2] / "lockgate"
DOMAINS = {
    "accounts",
    "indexes",
    "packages",
    "catalog",
    "mirror",
    "namespaces",
    "uploads",
    "simple",
    "jsonapi",
    "replica",
    "transfer",
    "maintenance",
    "workflow",
    "devpi",
    "server",
    "cli",
}
FLOOR = ["db", "config", "errors", "names", "urls", "distfiles", "logs", "http", "web", "changelog"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every lockgate module a file imports (`from a import b` counts `a` and `a.b`)."""
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("lockgate")}


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def _files(subpath: str) -> list[Path]:
    target = PACKAGE / subpath
    if target.is_dir():
        return sorted(target.rglob("*.py"))
    return [target.with_suffix(".py")]


def _domain_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in DOMAINS else None


@pytest.mark.parametrize("floor", FLOOR)
def test_floor_and_changelog_import_no_domain(floor: str) -> None:
    offending = {
        f"{_module_name(path)} imports {module}"
        for path in _files(floor)
        for module in _imports(path)
        if _domain_of(module) is not None
    }
    assert not offending, sorted(offending)


def _view_modules() -> list[Path]:
    """The modules the route table takes its handlers from."""
    routes = PACKAGE / "server" / "routes.py"
    modules = []
    for module in _imports(routes):
        candidate = PACKAGE.parent / Path(*module.split("."))
        if candidate.with_suffix(".py").is_file() and _domain_of(module) is not None:
            modules.append(candidate.with_suffix(".py"))
    return sorted(set(modules))


def test_the_route_table_is_found() -> None:
    names = {_module_name(path) for path in _view_modules()}
    assert {
        "lockgate.packages.views",
        "lockgate.uploads.views",
        "lockgate.mirror.admin",
        "lockgate.namespaces.views",
    } <= names
    assert "lockgate.workflow.views" in names


@pytest.mark.parametrize("view", _view_modules(), ids=_module_name)
def test_views_import_no_models_and_never_record(view: Path) -> None:
    models = {module for module in _imports(view) if module.split(".")[-1] == "models"}
    assert not models, f"{_module_name(view)} imports {sorted(models)}: call a service instead"
    writer = {m for m in _imports(view) if m.startswith("lockgate.changelog.writer")}
    assert not writer, f"{_module_name(view)} writes the changelog itself: call a service"
    assert "record" not in _imported_names(view)


def _payload_types() -> set[type[Payload]]:
    found: set[type[Payload]] = set()
    pending = list(Payload.__subclasses__())
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_entry_kind_is_registered_once_by_its_domain() -> None:
    registry = build_registry()  # imports every domain's entries module
    kinds = registry.kinds
    declared = {cls for cls in _payload_types() if cls.__module__.startswith("lockgate.")}
    assert set(kinds.values()) == declared
    assert len({cls.KIND for cls in declared}) == len(declared), "a kind string is used twice"
    for kind, cls in kinds.items():
        domain = cls.__module__.split(".")[1]
        assert cls.__module__ == f"lockgate.{domain}.entries", (kind, cls.__module__)
        assert kind == cls.KIND


REPOSITORY = PACKAGE.parent
# The workplace's reference folder, spelled in parts so this file does not match itself.
_OUTSIDE = "/".join(("..", "shared"))
OUTSIDE_REFERENCES = (
    _OUTSIDE,
    *(
        f"{_OUTSIDE.removeprefix('../')}/{doc}"
        for doc in ("ARCHITECTURE", "STANDARDS", "RELIABILITY")
    ),
)


def _repository_text_files() -> list[Path]:
    skip = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache"}
    suffixes = {".py", ".md", ".toml", ".txt", ".sh", ".conf", ".yml", ".yaml", ".cfg", ".ini"}
    return [
        path
        for path in REPOSITORY.rglob("*")
        if path.is_file()
        and not skip & set(path.relative_to(REPOSITORY).parts)
        and (path.suffix in suffixes or path.name in ("Dockerfile", "run"))
    ]


def test_the_repository_points_at_nothing_outside_it() -> None:
    this = Path(__file__).resolve()
    offending = [
        f"{path.relative_to(REPOSITORY)}: {reference}"
        for path in _repository_text_files()
        if path.resolve() != this
        for reference in OUTSIDE_REFERENCES
        if reference in path.read_text("utf-8", errors="replace")
    ]
    assert not offending, offending


def test_cited_case_ids_exist_in_the_docs() -> None:
    """Every `docs/<name>.md ID` citation names an ID that document defines."""
    import re

    citation = re.compile(
        r"docs/(standards|reliability)\.md[ ,]+((?:[A-Z][A-Z-]*\d+(?:\.\d+)?[ ,/.]*(?:and )?)+)"
    )
    ids = re.compile(r"[A-Z][A-Z-]*\d+(?:\.\d+)?")
    docs = {
        name: (REPOSITORY / "docs" / f"{name}.md").read_text("utf-8")
        for name in ("standards", "reliability")
    }
    missing = []
    for path in _repository_text_files():
        if path.suffix != ".py":
            continue
        for match in citation.finditer(path.read_text("utf-8")):
            for case in ids.findall(match.group(2)):
                if f"**{case}**" not in docs[match.group(1)]:
                    missing.append(f"{path.relative_to(REPOSITORY)}: {match.group(1)} {case}")
    assert not missing, missing
