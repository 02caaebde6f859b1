"""Benchmark lockgate as a PyPI caching mirror (root/pypi) against devpi-server, proxpi,
a static nginx and a bare aiohttp app, in one run.

What it does (bench/README.md, "Mirror benchmark", says how to read the numbers):

1. builds a corpus of real wheels (no network): a few hundred projects with realistic sizes
   (most tens of KiB, some hundreds, a few of 1 MiB, one large wheel of --large-mib), half of
   them with PEP 658 `.metadata` files, plus `mb-app`, which requires a set of them;
2. serves it from a static nginx upstream (a PEP 503 tree) on 127.0.0.1, and points each
   mirror at it: lockgate's root/pypi (SQLite, one worker; SQLite with --workers 2;
   PostgreSQL when 127.0.0.1:5432 answers), devpi-server's root/pypi, proxpi;
3. measures, each server alternating with the others:
   cold installs (`uv pip install` and `pip install` of mb-app, each on a freshly started,
   empty server, --cold-runs times), warm installs (same, the server's cache full),
   resolve-only (`uv pip compile`), simple pages and the project list (wrk, after a
   warm-up), 1 MiB files and the large file (wrk), start-up to the first 200, RSS after
   the workloads; and uploads (one twine of the corpus, then --uploaders concurrent twines)
   to a stage index of lockgate (SQLite, PostgreSQL) and devpi;
4. prints one table with each server's values and lockgate's ratios to the others, the
   noise readings (CPU of the server / load generator / everything else per workload), and
   writes everything to bench/results/mirror-latest.json.

Every load loop is bounded by a duration and a request cap; only loopback is contacted.
`--quick` runs everything at a small scale (a minute or two) to check the harness end to end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bench as B  # the shared helpers (same directory)
from tests.support.dists import make_wheel, normalize_name, sha256_file

BIN = B.BIN
PIP_ACCEPT = B.PIP_ACCEPT
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
log = B.log


# --- corpus -------------------------------------------------------------------------------


class MirrorCorpus:
    """Wheels on disk, which of them have `.metadata`, and the requirement set."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root = root / "dist"
        rng = random.Random(1234)  # the same corpus on every run
        self.files: list[Path] = []
        self.projects: list[str] = []
        self.with_metadata: set[str] = set()  # projects whose upstream page offers PEP 658
        self.mib_files: list[str] = []
        for i in range(args.projects):
            name = f"mb-{i:03d}"
            self.projects.append(name)
            if i % 2 == 0:
                self.with_metadata.add(name)
            draw = rng.random()
            kib = 20 if draw < 0.7 else 200 if draw < 0.95 else 1024
            for version in range(1, args.versions + 1):
                wheel = make_wheel(self.root, name, f"{version}.0", payload_size=kib * 1024)
                self.files.append(wheel)
                if kib == 1024:
                    self.mib_files.append(wheel.name)
        if not self.mib_files:  # the 1 MiB workload needs some
            for i in range(min(4, args.projects)):
                wheel = make_wheel(self.root, self.projects[i], "9.0", payload_size=2**20)
                self.files.append(wheel)
                self.mib_files.append(wheel.name)
        self.large = make_wheel(self.root, "mb-large", "1.0", payload_size=args.large_mib * 2**20)
        self.files.append(self.large)
        self.projects.append("mb-large")
        wanted = [*self.projects[: args.requirements], "mb-large"]
        self.requirements = wanted
        app = make_wheel(self.root, "mb-app", "1.0", requires_dist=wanted)
        self.files.append(app)
        self.projects.append("mb-app")
        self.with_metadata.add("mb-app")
        self.sha256 = {f.name: sha256_file(f) for f in self.files}

    def project_of(self, filename: str) -> str:
        return normalize_name(filename.split("-")[0].replace("_", "-"))

    def describe(self) -> dict[str, Any]:
        sizes = sorted(f.stat().st_size for f in self.files)
        return {
            "projects": len(self.projects),
            "files": len(self.files),
            "with_pep658_metadata": len(self.with_metadata),
            "total_mib": round(sum(sizes) / 2**20, 1),
            "largest_mib": round(sizes[-1] / 2**20, 1),
            "requirement_set": len(self.requirements) + 1,
        }


def wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)


# --- servers ------------------------------------------------------------------------------


class Upstream(B.Server):
    """nginx over a static PEP 503 tree of the corpus: the upstream every mirror uses,
    and the ceiling for static files and pages."""

    label = "nginx"
    uploads = False
    list_path = "/simple/"

    def __init__(self, work: Path, corpus: MirrorCorpus) -> None:
        super().__init__(work)
        self.tree = self.work / "tree"
        files = self.tree / "files"
        files.mkdir(parents=True)
        by_project: dict[str, list[Path]] = {}
        for path in corpus.files:
            try:
                os.link(path, files / path.name)
            except OSError:
                shutil.copy2(path, files / path.name)
            by_project.setdefault(corpus.project_of(path.name), []).append(path)
        simple = self.tree / "simple"
        simple.mkdir()
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project))
        (simple / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"
        )
        for project, paths in by_project.items():
            anchors = []
            for p in sorted(paths):
                extra = ""
                if project in corpus.with_metadata:
                    metadata = wheel_metadata(p)
                    (files / f"{p.name}.metadata").write_bytes(metadata)
                    digest = hashlib.sha256(metadata).hexdigest()
                    extra = (
                        f' data-dist-info-metadata="sha256={digest}"'
                        f' data-core-metadata="sha256={digest}"'
                    )
                anchors.append(
                    f'<a href="../../files/{p.name}#sha256={corpus.sha256[p.name]}"{extra}>'
                    f"{p.name}</a><br/>\n"
                )
            (simple / project).mkdir()
            (simple / project / "index.html").write_text(
                '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" '
                f'content="1.0"><title>Links for {project}</title></head><body>\n'
                f"{''.join(anchors)}</body></html>\n"
            )

    @property
    def simple_root(self) -> str:
        return "/simple/"

    def start(self) -> None:
        conf = self.work / "nginx.conf"
        conf.write_text(B.NGINX_CONF.format(work=self.work, port=self.port, tree=self.tree))
        self.spawn(
            ["nginx", "-p", str(self.work), "-e", str(self.work / "error.log"), "-c", str(conf)]
        )
        B.wait_http(f"{self.base}/simple/", self.process, self.logfile, 30)  # type: ignore[arg-type]

    def fresh(self) -> None:
        """Nothing to forget: the upstream is static."""


BARE_APP = r'''
"""The ceiling for a Python page server: aiohttp answering each simple page from a
dict of bytes (read from the static tree at start), no middleware, no logging."""
import sys
from pathlib import Path
from aiohttp import web

tree = Path(sys.argv[1])
pages = {
    f"/simple/{p.parent.name}/": p.read_bytes()
    for p in (tree / "simple").glob("*/index.html")
}
pages["/simple/"] = (tree / "simple" / "index.html").read_bytes()


async def page(request: web.Request) -> web.Response:
    body = pages.get(request.path)
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type="text/html")


app = web.Application()
app.router.add_get("/simple/{tail:.*}", page)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
'''


class BareAiohttp(B.Server):
    label = "aiohttp-bare"
    uploads = False
    list_path = "/simple/"

    def __init__(self, work: Path, upstream: Upstream) -> None:
        super().__init__(work)
        self.tree = upstream.tree

    @property
    def simple_root(self) -> str:
        return "/simple/"

    def start(self) -> None:
        script = self.work / "bare.py"
        script.write_text(BARE_APP)
        self.spawn([sys.executable, str(script), str(self.tree), str(self.port)])
        B.wait_http(f"{self.base}/simple/", self.process, self.logfile, 60)  # type: ignore[arg-type]

    def fresh(self) -> None:
        pass


class MirrorServer(B.Server):
    """A caching mirror of the upstream: `fresh()` restarts it with an empty cache."""

    list_path = "/root/pypi/+simple/"

    def __init__(self, work: Path, upstream: Upstream) -> None:
        super().__init__(work)
        self.upstream = upstream

    @property
    def simple_root(self) -> str:
        return "/root/pypi/+simple/"

    def fresh(self) -> None:
        self.stop()
        self.reset()
        self.start()

    def reset(self) -> None:
        raise NotImplementedError


class LockgateMirror(MirrorServer):
    def __init__(
        self,
        work: Path,
        upstream: Upstream,
        label: str,
        db_url: str | None = None,
        workers: int = 1,
        make_db: Callable[[], str] | None = None,
    ) -> None:
        self.label = label
        self.db_url = db_url
        self.workers = workers
        self.make_db = make_db
        super().__init__(work, upstream)
        self.serverdir = self.work / "serverdir"
        self.startup_s: float | None = None

    def command(self) -> list[str]:
        cmd = [
            str(BIN / "lockgate"),
            "serve",
            "--serverdir",
            str(self.serverdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--root-password",
            B.ROOT_PASSWORD,
            "--upstream",
            f"{self.upstream.base}/simple/",
            "--upstream-allow",
            "127.0.0.1",
            "--workers",
            str(self.workers),
            "--log-format",
            "json",
        ]
        return cmd + (["--db", self.db_url] if self.db_url else [])

    def start(self) -> None:
        self.spawn(self.command())
        B.wait_http(f"{self.base}/+status", self.process, self.logfile, 120)  # type: ignore[arg-type]

    def reset(self) -> None:
        shutil.rmtree(self.serverdir, ignore_errors=True)
        if self.make_db is not None:
            self.db_url = self.make_db()

    def measure_startup(self) -> float:
        """Wall time from exec to the first 200 of /+status, on an existing server dir."""
        self.stop()
        t0 = time.monotonic()
        self.spawn(self.command())
        while True:
            try:
                status, _, _ = B.fetch("GET", f"{self.base}/+status", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited; see {self.logfile}")
            time.sleep(0.005)
        return time.monotonic() - t0


class DevpiMirror(MirrorServer):
    label = "devpi"

    def __init__(self, work: Path, upstream: Upstream, venv: Path) -> None:
        self.venv = venv
        super().__init__(work, upstream)
        self.serverdir = self.work / "serverdir"

    def start(self) -> None:
        bin_dir = self.venv / "bin"
        if not self.serverdir.exists():
            result = subprocess.run(
                [
                    str(bin_dir / "devpi-init"),
                    "--serverdir",
                    str(self.serverdir),
                    "--root-passwd",
                    B.ROOT_PASSWORD,
                ],
                env=B.clean_env(),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"devpi-init failed:\n{result.stdout}\n{result.stderr}")
        self.spawn(
            [
                str(bin_dir / "devpi-server"),
                "--serverdir",
                str(self.serverdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--enable-core-metadata",  # PEP 658, as lockgate serves it
            ]
        )
        B.wait_http(f"{self.base}/+api", self.process, self.logfile, 180)  # type: ignore[arg-type]
        # root/pypi follows our upstream, never pypi.org (and so never the internet).
        status, _, body = B.fetch(
            "PATCH",
            f"{self.base}/root/pypi",
            body=[f"mirror_url={self.upstream.base}/simple/"],
            auth=("root", B.ROOT_PASSWORD),
        )
        B.check(status, body, "devpi: point root/pypi at the upstream")

    def reset(self) -> None:
        shutil.rmtree(self.serverdir, ignore_errors=True)


class Proxpi(MirrorServer):
    label = "proxpi"
    list_path = "/index/"

    def __init__(self, work: Path, upstream: Upstream, venv: Path) -> None:
        self.venv = venv
        super().__init__(work, upstream)
        self.cache = self.work / "cache"

    @property
    def simple_root(self) -> str:
        return "/index/"

    def start(self) -> None:
        self.cache.mkdir(exist_ok=True)
        env = B.clean_env(
            PROXPI_INDEX_URL=f"{self.upstream.base}/simple/",
            PROXPI_CACHE_DIR=str(self.cache),
            PROXPI_EXTRA_INDEX_URLS="",
        )
        # As its README runs it in production: gunicorn, here one process (like the others).
        self.spawn(
            [
                str(self.venv / "bin" / "gunicorn"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "proxpi.server:app",
            ],
            env=env,
        )
        B.wait_http(f"{self.base}/index/", self.process, self.logfile, 120)  # type: ignore[arg-type]

    def reset(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)


def tree_pss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# --- clients ------------------------------------------------------------------------------


def timed(cmd: list[str], what: str, pid: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    with B.Meter(pid) as meter:
        result = subprocess.run(
            cmd, env=env or B.clean_env(), capture_output=True, text=True, timeout=900
        )
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return meter.as_dict()


def install(client: str, server: B.Server, corpus: MirrorCorpus, scratch: Path) -> dict[str, Any]:
    target = Path(tempfile.mkdtemp(prefix=f"{client}-{server.label}-", dir=scratch))
    url = server.base + server.simple_root
    env = B.clean_env(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    if client == "uv":
        cmd = [
            str(BIN / "uv"),
            "pip",
            "install",
            "--no-cache",
            "--python",
            sys.executable,
            "--index-url",
            url,
            "--target",
            str(target),
            "mb-app",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "--index-url",
            url,
            "--target",
            str(target),
            "mb-app",
        ]
    try:
        result = timed(cmd, f"{client} install from {server.label}", server.pid, env)
        installed = {p.name for p in target.iterdir()}
        expected = {n.replace("-", "_") for n in corpus.requirements} | {"mb_app"}
        if not expected <= installed:
            raise RuntimeError(f"{client} from {server.label}: missing {expected - installed}")
        return result
    finally:
        shutil.rmtree(target, ignore_errors=True)


def resolve(server: B.Server, scratch: Path) -> dict[str, Any]:
    requirements = scratch / "requirements.in"
    requirements.write_text("mb-app\n")
    cmd = [
        str(BIN / "uv"),
        "pip",
        "compile",
        "--no-cache",
        "--quiet",
        "--python",
        sys.executable,
        "--index-url",
        server.base + server.simple_root,
        str(requirements),
    ]
    env = B.clean_env(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    return timed(cmd, f"uv pip compile from {server.label}", server.pid, env)


def discover(server: B.Server, corpus: MirrorCorpus) -> B.Target:
    """Page paths, the 1 MiB file URLs and the large file URL as the server links them;
    every page is fetched once (which fills a mirror's cache), every file it links checked
    for its sha256 link, and the files used by the file workloads fetched once and
    compared byte for byte."""
    target = B.Target(server)
    hrefs: dict[str, str] = {}
    for project in corpus.projects:
        path = f"{server.simple_root}{project}/"
        status, _, body = B.fetch("GET", server.base + path, headers={"Accept": "text/html"})
        B.check(status, body, f"{server.label}: {path}")
        for href in re.findall(r'href="([^"]+)"', body.decode()):
            url, _, fragment = urllib.parse.urljoin(server.base + path, href).partition("#")
            filename = urllib.parse.unquote(url.rsplit("/", 1)[1])
            if fragment.removeprefix("sha256=") != corpus.sha256.get(filename):
                raise RuntimeError(f"{server.label}: {filename}: wrong link hash {fragment!r}")
            hrefs[filename] = urllib.parse.urlsplit(url).path
        target.pages.append(path)
    if set(hrefs) != set(corpus.sha256):
        raise RuntimeError(f"{server.label}: links {len(hrefs)} files, not the corpus")
    target.lists = [server.list_path]  # type: ignore[attr-defined]
    if isinstance(server, BareAiohttp):
        return target  # pages only
    target.small_files = [hrefs[name] for name in corpus.mib_files]
    target.large_files = [hrefs[corpus.large.name]]
    for path in [*target.small_files, *target.large_files]:
        status, _, body = B.fetch("GET", server.base + path, timeout=600)
        B.check(status, body, f"{server.label}: {path}")
        if hashlib.sha256(body).hexdigest() != corpus.sha256[path.rsplit("/", 1)[1]]:
            raise RuntimeError(f"{server.label}: {path} does not have the upstream's bytes")
    return target


def upload_all(server: B.Server, files: list[Path], uploaders: int) -> dict[str, Any]:
    """One twine of every file, or `uploaders` concurrent twines sharing them."""

    def one(batch: list[Path]) -> None:
        cmd = [
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            f"{server.base}/{B.USER}/{B.INDEX}/",
            "-u",
            B.USER,
            "-p",
            B.USER_PASSWORD,
            *map(str, batch),
        ]
        result = subprocess.run(
            cmd, env=B.clean_env(), capture_output=True, text=True, timeout=1800
        )
        if result.returncode != 0:
            raise RuntimeError(f"{server.label}: twine failed:\n{result.stderr[-2000:]}")

    batches = [files[i::uploaders] for i in range(uploaders)]
    with B.Meter(server.pid) as meter, ThreadPoolExecutor(uploaders) as pool:
        list(pool.map(one, batches))
    return {**meter.as_dict(), "files": len(files), "uploaders": uploaders}


# --- report -------------------------------------------------------------------------------

# (row key, workload, field, unit, higher is better)
ROWS = [
    ("cold_uv", "cold_uv", "wall_s", "s (median)", False),
    ("cold_pip", "cold_pip", "wall_s", "s (median)", False),
    ("warm_uv", "warm_uv", "wall_s", "s (median)", False),
    ("warm_pip", "warm_pip", "wall_s", "s (median)", False),
    ("resolve", "resolve", "wall_s", "s (median)", False),
    ("pages_rps", "pages", "rps", "req/s", True),
    ("pages_p99", "pages", "p99_ms", "ms p99", False),
    ("pages_cpu", "pages", "server_cpu_ms_per_req", "srv CPU ms/req", False),
    ("list_rps", "list", "rps", "req/s", True),
    ("mib_mbps", "mib", "mb_per_s", "MB/s", True),
    ("mib_p99", "mib", "p99_ms", "ms p99", False),
    ("large_mbps", "large", "mb_per_s", "MB/s", True),
    ("large_p50", "large", "p50_ms", "ms p50", False),
    ("large_p99", "large", "p99_ms", "ms p99", False),
    ("startup", "startup", "wall_s", "s to first 200", False),
    ("rss", "rss", "mib_per_process", "MiB RSS/process", False),
    ("upload_one", "upload1", "wall_s", "s", False),
    ("upload_many", "uploadN", "wall_s", "s", False),
]
TITLES = {
    "cold_uv": "cold uv pip install (fresh server)",
    "cold_pip": "cold pip install (fresh server)",
    "warm_uv": "warm uv pip install",
    "warm_pip": "warm pip install",
    "resolve": "resolve only (uv pip compile)",
    "pages": "simple project pages, pip Accept",
    "list": "project list, c1",
    "mib": "1 MiB wheels",
    "large": "large wheel",
    "startup": "start-up",
    "rss": "memory after the workloads",
    "upload1": "twine upload of the corpus",
    "uploadN": "concurrent twine uploads",
}
COMPARE = ("devpi", "proxpi", "nginx", "aiohttp-bare")


def build_rows(results: dict[str, dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    # The lockgate the ratios are of: the single-worker SQLite one, or (with --only) the
    # first lockgate variant that ran.
    ref = (
        "lockgate"
        if "lockgate" in labels
        else next((label for label in labels if label.startswith("lockgate")), "lockgate")
    )
    rows = []
    for key, workload, fld, unit, higher in ROWS:
        values = {label: results.get(workload, {}).get(label, {}).get(fld) for label in labels}
        rows.append(
            {
                "row": key,
                "workload": workload,
                "unit": unit,
                "better": "higher" if higher else "lower",
                "values": values,
                **{f"lockgate/{o}": B.ratio(values.get(ref), values.get(o)) for o in COMPARE},
                "reference": ref,
                "lockgate-w2/lockgate": B.ratio(values.get("lockgate-w2"), values.get("lockgate")),
            }
        )
    return rows


def render_table(rows: list[dict[str, Any]], labels: list[str]) -> str:
    ratio_cols = [f"lockgate/{o}" for o in COMPARE if o in labels]
    if "lockgate-w2" in labels:
        ratio_cols.append("lockgate-w2/lockgate")
    short = {c: c.replace("lockgate", "lg").replace("aiohttp-bare", "bare") for c in ratio_cols}
    header = ["workload", "metric", *labels, *(short[c] for c in ratio_cols), "better"]
    lines = []
    last = None
    for row in rows:
        if all(v is None for v in row["values"].values()):
            continue
        title = TITLES[row["workload"]] if row["workload"] != last else ""
        last = row["workload"]
        lines.append(
            [
                title,
                row["unit"],
                *(B.fmt(row["values"][label]) for label in labels),
                *(B.fmt(row[c]) for c in ratio_cols),
                row["better"],
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, lines)])


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small, short run to check the harness")
    p.add_argument("--projects", type=int, default=300, help="projects in the corpus (300)")
    p.add_argument("--versions", type=int, default=2, help="versions per project (2)")
    p.add_argument("--large-mib", type=int, default=70, help="the large wheel (70 MiB)")
    p.add_argument("--requirements", type=int, default=30, help="projects mb-app requires (30)")
    p.add_argument("--cold-runs", type=int, default=3, help="cold installs per client (3)")
    p.add_argument("--warm-runs", type=int, default=3, help="warm installs per client (3)")
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk measurement (5)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of wrk warm-up (2)")
    p.add_argument("--rounds", type=int, default=2, help="wrk rounds per server, best kept (2)")
    p.add_argument("--concurrency", type=int, default=32, help="connections, pages/1 MiB (32)")
    p.add_argument("--large-concurrency", type=int, default=4, help="connections, large (4)")
    p.add_argument("--max-requests", type=int, default=500_000, help="cap per wrk run")
    p.add_argument("--uploaders", type=int, default=16, help="concurrent twine uploads (16)")
    p.add_argument("--pg", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--only", default="", help="comma-separated labels to run (default: all)")
    p.add_argument("--devpi-venv", type=Path, default=B.BENCH / ".venv-devpi")
    p.add_argument("--proxpi-venv", type=Path, default=B.BENCH / ".venv-proxpi")
    p.add_argument("--out", type=Path, default=B.BENCH / "results" / "mirror-latest.json")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (logs)")
    args = p.parse_args(argv)
    if args.quick:
        given = set(sys.argv[1:] if argv is None else argv)
        quick = {
            "projects": 30,
            "versions": 1,
            "large_mib": 8,
            "requirements": 8,
            "cold_runs": 1,
            "warm_runs": 1,
            "rounds": 1,
            "duration": 2,
            "warmup": 0.5,
            "uploaders": 4,
        }
        for key, value in quick.items():
            # An option given on the command line wins (`--quick --cold-runs 3`).
            if not any(arg.split("=")[0] == "--" + key.replace("_", "-") for arg in given):
                setattr(args, key, value)
    return args


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    middle = statistics.median(walls)
    closest = min(runs, key=lambda r: abs(r["wall_s"] - middle))
    return {**closest, "wall_s": round(middle, 3), "runs_s": walls}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: run bench/run.sh --mirror, which installs it")
    only = {x for x in args.only.split(",") if x}
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lockgate-mirror-bench-"))
    os.chmod(work, 0o755)  # nginx's worker (not root) reads the static tree
    scratch = work / "scratch"
    scratch.mkdir()
    created_dbs: list[str] = []
    servers: list[B.Server] = []

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log(f"working in {work}")
        corpus = MirrorCorpus(work / "corpus", args)
        log(f"corpus: {corpus.describe()}")
        upstream = Upstream(work, corpus)
        upstream.start()

        def new_pg() -> str:
            url = B.postgres_url("on", created_dbs)
            assert url is not None
            return url

        candidates: list[B.Server] = [LockgateMirror(work, upstream, "lockgate")]
        candidates.append(LockgateMirror(work, upstream, "lockgate-w2", workers=2))
        if B.postgres_url(args.pg, created_dbs):
            candidates.append(
                LockgateMirror(work, upstream, "lockgate-pg", new_pg(), make_db=new_pg)
            )
        if (args.devpi_venv / "bin" / "devpi-server").exists():
            candidates.append(DevpiMirror(work, upstream, args.devpi_venv))
        else:
            log(f"devpi left out: no devpi-server in {args.devpi_venv} (bench/run.sh installs it)")
        if (args.proxpi_venv / "bin" / "gunicorn").exists():
            candidates.append(Proxpi(work, upstream, args.proxpi_venv))
        else:
            log(f"proxpi left out: nothing in {args.proxpi_venv} (bench/run.sh installs it)")
        candidates += [upstream, BareAiohttp(work, upstream)]
        servers = [s for s in candidates if not only or s.label in only or s is upstream]
        clients_for = [s for s in servers if not isinstance(s, BareAiohttp)]
        labels = [s.label for s in servers]
        results: dict[str, dict[str, Any]] = {k: {} for k in TITLES}

        # Cold installs: each on a freshly started, empty server; servers interleaved.
        for client in ("uv", "pip"):
            runs: dict[str, list[dict[str, Any]]] = {s.label: [] for s in clients_for}
            for number in range(args.cold_runs):
                for server in clients_for:
                    if isinstance(server, MirrorServer):
                        if number == 0 and server.process is None:
                            server.reset()
                            server.start()
                        else:
                            server.fresh()
                    runs[server.label].append(install(client, server, corpus, scratch))
                    log(f"cold {client:3} {server.label:12} {runs[server.label][-1]['wall_s']} s")
            for label, measured in runs.items():
                results[f"cold_{client}"][label] = median_of(measured)
        for server in servers:
            if isinstance(server, BareAiohttp):
                server.start()

        # Warm: every page and the files fetched once; then installs, resolves, wrk.
        targets = [discover(server, corpus) for server in servers]
        log("every server links the corpus with the right hashes and serves its bytes")
        for client in ("uv", "pip"):
            runs = {s.label: [] for s in clients_for}
            for _ in range(args.warm_runs):
                for server in clients_for:
                    runs[server.label].append(install(client, server, corpus, scratch))
            for label, measured in runs.items():
                results[f"warm_{client}"][label] = median_of(measured)
                log(f"warm {client:3} {label:12} {results[f'warm_{client}'][label]['runs_s']} s")
        runs = {s.label: [] for s in clients_for}
        for _ in range(args.warm_runs):
            for server in clients_for:
                runs[server.label].append(resolve(server, scratch))
        for label, measured in runs.items():
            results["resolve"][label] = median_of(measured)

        workloads = [
            B.Workload(
                "pages",
                TITLES["pages"],
                "pages",
                PIP_ACCEPT,
                "gzip, deflate",
                args.concurrency,
                args.max_requests,
            ),
            B.Workload(
                "list",
                TITLES["list"],
                "lists",
                JSON_ACCEPT + ", text/html; q=0.01",
                "gzip, deflate",
                1,
                args.max_requests,
            ),
            B.Workload(
                "mib",
                TITLES["mib"],
                "small_files",
                "*/*",
                "identity",
                args.concurrency,
                max(1, args.max_requests // 10),
            ),
            B.Workload(
                "large",
                TITLES["large"],
                "large_files",
                "*/*",
                "identity",
                args.large_concurrency,
                max(1, args.max_requests // 100),
            ),
        ]
        for workload in workloads:
            rounds: dict[str, list[dict[str, Any]]] = {t.server.label: [] for t in targets}
            for number in range(args.rounds):
                for target in targets:
                    if workload.key in ("mib", "large") and isinstance(target.server, BareAiohttp):
                        continue  # pages only
                    if number == 0:
                        B.run_wrk(target, workload, args.warmup, workload.max_requests, scratch)
                    measured = B.run_wrk(
                        target, workload, args.duration, workload.max_requests, scratch
                    )
                    rounds[target.server.label].append(measured)
                    log(
                        f"{workload.key:5} {target.server.label:12} {measured['rps']:>9} req/s "
                        f"{measured['mb_per_s']:>8} MB/s p50 {measured['p50_ms']} ms "
                        f"p99 {measured['p99_ms']} ms  cpu srv/wrk/other "
                        f"{measured['server_cpu_pct']}/{measured['client_cpu_pct']}/"
                        f"{measured['other_cpu_pct']}%"
                        + (f"  NOT 200: {measured['not_200']}" if measured["not_200"] else "")
                    )
            for label, measured in rounds.items():
                if measured:
                    best = max(measured, key=lambda r: r["rps"])
                    results[workload.key][label] = {
                        **best,
                        "rounds_rps": [r["rps"] for r in measured],
                        "rounds_other_cpu_pct": [r["other_cpu_pct"] for r in measured],
                    }

        for server in servers:
            processes = B.process_tree(server.pid)
            results["rss"][server.label] = {
                "mib_total": round(B.tree_rss_mib(server.pid), 1),
                "processes": len(processes),
                # The supervisor of lockgate-w2 counts as a process too.
                "mib_per_process": round(B.tree_rss_mib(server.pid) / len(processes), 1),
                # PSS shares pages the forked workers have in common (what they really use).
                "pss_mib_total": round(tree_pss_mib(processes), 1),
            }
        for server in servers:
            if isinstance(server, LockgateMirror):
                walls = [server.measure_startup() for _ in range(3)]
                results["startup"][server.label] = {
                    "wall_s": round(statistics.median(walls), 3),
                    "runs_s": [round(w, 3) for w in walls],
                }

        # Writes: lockgate (SQLite, PostgreSQL) and devpi, each with a fresh stage index.
        uploadable = [s for s in servers if isinstance(s, LockgateMirror | DevpiMirror)]
        uploadable = [s for s in uploadable if s.label != "lockgate-w2"]
        files = [f for f in corpus.files if f != corpus.large]
        for server in uploadable:
            for key, count in (("upload1", 1), ("uploadN", args.uploaders)):
                server.fresh()
                make_stage_index(server)
                results[key][server.label] = upload_all(server, files, count)
                log(f"{key} {server.label:12} {results[key][server.label]['wall_s']} s")

        rows = build_rows(results, labels)
        table = render_table(rows, labels)
        report = {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                "cores": os.cpu_count(),
                "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
            },
            "versions": B.versions(args.devpi_venv),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "corpus": corpus.describe(),
            "rows": rows,
            "results": results,
            "runtime_s": round(time.monotonic() - started, 1),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print()
        print(f"lockgate mirror benchmark: {corpus.describe()}; {os.cpu_count()} cores shared")
        print()
        print(table)
        print()
        print("ratios: lockgate's value / the other's ('higher' rows: >1 is lockgate faster;")
        print("'lower' rows: <1 is lockgate faster); lg-w2/lg is --workers 2 over one worker.")
        print("noise: CPU % of one core in the kept wrk round, server / wrk / everything else:")
        for key in ("pages", "list", "mib", "large"):
            cells = [
                f"{label} {r['server_cpu_pct']:.0f}/{r['client_cpu_pct']:.0f}/"
                f"{r['other_cpu_pct']:.0f}"
                for label in labels
                if (r := results[key].get(label))
            ]
            print(f"  {key:5}: " + ", ".join(cells))
        print(
            "  installs, other CPU %: "
            + ", ".join(
                f"{label} {results['cold_uv'][label]['other_cpu_pct']:.0f}"
                for label in labels
                if label in results["cold_uv"]
            )
        )
        print(f"JSON: {args.out}   runtime {report['runtime_s']:.0f} s")
        return 0
    finally:
        for server in reversed(servers):
            server.stop()
        try:
            B.drop_databases(created_dbs)
        except Exception as exc:  # noqa: BLE001
            log(f"could not drop {created_dbs}: {exc}")
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def make_stage_index(server: B.Server) -> None:
    """User bench and a stage index bench/dev without bases, on lockgate or devpi."""
    body: dict[str, Any] = {"password": B.USER_PASSWORD}
    if isinstance(server, DevpiMirror):
        body["email"] = "bench@example.invalid"
    status, _, text = B.fetch(
        "PUT", f"{server.base}/{B.USER}", body=body, auth=("root", B.ROOT_PASSWORD)
    )
    B.check(status, text, f"{server.label}: create user")
    status, _, text = B.fetch(
        "PUT",
        f"{server.base}/{B.USER}/{B.INDEX}",
        body={"type": "stage", "bases": [], "volatile": True},
        auth=(B.USER, B.USER_PASSWORD),
    )
    B.check(status, text, f"{server.label}: create index")


if __name__ == "__main__":
    sys.exit(main())
