"""Benchmark lockgate against devpi-server and nginx on the same files, in one run.

What it does (see bench/README.md for how to read the numbers):

1. builds one corpus of real wheels with tests.support.dists (no network);
2. starts lockgate (SQLite; and PostgreSQL too when 127.0.0.1:5432 answers), devpi-server
   (offline, no root/pypi) and nginx (a static PEP 503 tree of the same files), all on
   127.0.0.1, and uploads the corpus to lockgate and devpi with twine;
3. runs the same bounded workloads against each server in turn, after a warm-up:
   simple project pages with pip's Accept header, small file downloads and large file
   downloads (with wrk, one thread, a Lua script rotating over the paths), then a cold
   `pip download --no-deps` of 20 packages (wall time, median of a few runs);
4. prints a table with lockgate / devpi / nginx and the ratios lockgate/devpi and
   lockgate/nginx, and writes the same as JSON (bench/results/latest.json by default).

Run it through bench/run.sh, which installs devpi-server, nginx and wrk first. Every load
loop is bounded by a request count and a duration, whichever comes first; nothing but
loopback is contacted.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.support.dists import make_wheel, normalize_name, sha256_file  # noqa: E402

BIN = Path(sys.executable).parent
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
ROOT_PASSWORD = "bench-root-pw"
USER, USER_PASSWORD, INDEX = "bench", "bench-pw", "dev"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for servers and clients: no pip/twine/lockgate settings leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "TWINE_", "LOCKGATE_", "DEVPI_"))
    }
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    env.update(extra)
    return env


def fetch(
    method: str,
    url: str,
    *,
    body: Any = None,
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib (loopback only); returns status, headers and body."""
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", url
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
        hdrs.setdefault("Accept", "application/json")
    if auth:
        hdrs["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_http(url: str, process: subprocess.Popen[bytes], logfile: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({process.returncode}); see {logfile}")
        try:
            fetch("GET", url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {logfile}")


def check(status: int, body: bytes, what: str) -> None:
    if not 200 <= status < 300:
        raise RuntimeError(f"{what}: HTTP {status}: {body[:300]!r}")


# --- process accounting -------------------------------------------------------------------


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    children = _proc_children()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (threads included)."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def tree_rss_mib(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """CPU used by the server under test, by our waited-for children (the load generator)
    and by everything else on the machine, over one measured interval."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> Meter:
        self.t0 = time.monotonic()
        self.server0 = tree_cpu_seconds(self.server_pid)
        self.client0 = children_cpu_seconds()
        self.busy0 = machine_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.t0
        self.server = tree_cpu_seconds(self.server_pid) - self.server0
        self.client = children_cpu_seconds() - self.client0
        busy = machine_busy_seconds() - self.busy0
        self.other = max(0.0, busy - self.server - self.client)

    def as_dict(self) -> dict[str, float]:
        wall = max(self.wall, 1e-9)
        return {
            "wall_s": round(self.wall, 3),
            "server_cpu_s": round(self.server, 3),
            "server_cpu_pct": round(100 * self.server / wall, 1),
            "client_cpu_pct": round(100 * self.client / wall, 1),
            "other_cpu_pct": round(100 * self.other / wall, 1),
        }


# --- corpus -------------------------------------------------------------------------------


@dataclass
class Corpus:
    root: Path
    files: list[Path]
    small_projects: list[str]
    large_projects: list[str]
    sha256: dict[str, str] = field(default_factory=dict)  # filename -> hex digest
    large_files: set[str] = field(default_factory=set)  # filenames of the large wheels

    def describe(self) -> dict[str, Any]:
        sizes = sorted(f.stat().st_size for f in self.files)
        return {
            "files": len(self.files),
            "small_projects": len(self.small_projects),
            "large_projects": len(self.large_projects),
            "total_mib": round(sum(sizes) / 2**20, 1),
            "smallest_kib": round(sizes[0] / 1024, 1),
            "largest_mib": round(sizes[-1] / 2**20, 2),
        }


def build_corpus(root: Path, args: argparse.Namespace) -> Corpus:
    dist = root / "dist"
    files: list[Path] = []
    small = [f"bench-pkg-{i:03d}" for i in range(args.projects)]
    large = [f"bench-big-{i}" for i in range(args.large)]
    for name in small:
        for v in range(args.versions):
            files.append(make_wheel(dist, name, f"{v + 1}.0", payload_size=args.small_kib * 1024))
    large_files = {
        make_wheel(dist, name, "1.0", payload_size=args.large_mib * 2**20) for name in large
    }
    files += sorted(large_files)
    corpus = Corpus(dist, files, small, large, large_files={p.name for p in large_files})
    corpus.sha256 = {f.name: sha256_file(f) for f in files}
    return corpus


# --- servers ------------------------------------------------------------------------------


class Server:
    label = "?"
    uploads = True

    def __init__(self, work: Path) -> None:
        self.work = work / self.label
        self.work.mkdir(parents=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logfile = self.work / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    # paths as the server spells them
    @property
    def simple_root(self) -> str:
        return f"/{USER}/{INDEX}/+simple/"

    def project_path(self, project: str) -> str:
        return f"{self.simple_root}{project}/"

    @property
    def index_url(self) -> str:
        return self.base + self.simple_root

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log(f"{self.label}: starting on {self.base}")
        with open(self.logfile, "ab") as out:
            self.process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env or clean_env(),
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def start(self) -> None:
        raise NotImplementedError

    def upload(self, corpus: Corpus) -> float:
        """Upload the whole corpus with one twine command; returns its wall time."""
        cmd = [
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            f"{self.base}/{USER}/{INDEX}/",
            "-u",
            USER,
            "-p",
            USER_PASSWORD,
            *map(str, corpus.files),
        ]
        log(f"{self.label}: uploading {len(corpus.files)} files with twine")
        t0 = time.monotonic()
        result = subprocess.run(
            cmd, env=clean_env(), capture_output=True, text=True, timeout=900, check=False
        )
        elapsed = time.monotonic() - t0
        if result.returncode != 0:
            raise RuntimeError(f"{self.label}: twine failed:\n{result.stdout}\n{result.stderr}")
        return elapsed


class Lockgate(Server):
    def __init__(self, work: Path, label: str, db_url: str | None = None) -> None:
        self.label = label
        self.db_url = db_url
        super().__init__(work)

    def start(self) -> None:
        cmd = [
            str(BIN / "lockgate"),
            "serve",
            "--serverdir",
            str(self.work / "serverdir"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--root-password",
            ROOT_PASSWORD,
            "--log-format",
            "json",
        ]
        if self.db_url:
            cmd += ["--db", self.db_url]
        self.spawn(cmd)
        wait_http(f"{self.base}/+status", self.process, self.logfile, 60)  # type: ignore[arg-type]
        status, _, body = fetch(
            "PUT",
            f"{self.base}/{USER}",
            body={"password": USER_PASSWORD},
            auth=("root", ROOT_PASSWORD),
        )
        check(status, body, "lockgate: create user")
        status, _, body = fetch(
            "PUT",
            f"{self.base}/{USER}/{INDEX}",
            body={"type": "stage", "bases": [], "volatile": True},
            auth=(USER, USER_PASSWORD),
        )
        check(status, body, "lockgate: create index")


class Devpi(Server):
    label = "devpi"

    def __init__(self, work: Path, venv: Path) -> None:
        self.venv = venv
        super().__init__(work)

    def start(self) -> None:
        serverdir = str(self.work / "serverdir")
        bin_dir = self.venv / "bin"
        result = subprocess.run(
            [
                str(bin_dir / "devpi-init"),
                "--serverdir",
                serverdir,
                "--root-passwd",
                ROOT_PASSWORD,
                "--no-root-pypi",  # no mirror index at all: nothing to fetch from PyPI
            ],
            env=clean_env(),
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
                serverdir,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--offline-mode",  # never contact an upstream
                "--enable-core-metadata",  # PEP 658, as lockgate serves it
            ]
        )
        wait_http(f"{self.base}/+api", self.process, self.logfile, 180)  # type: ignore[arg-type]
        status, _, body = fetch(
            "PUT",
            f"{self.base}/{USER}",
            body={"password": USER_PASSWORD, "email": "bench@example.invalid"},
            auth=("root", ROOT_PASSWORD),
        )
        check(status, body, "devpi: create user")
        status, _, body = fetch(
            "PUT",
            f"{self.base}/{USER}/{INDEX}",
            body={"type": "stage", "bases": [], "volatile": True},
            auth=(USER, USER_PASSWORD),
        )
        check(status, body, "devpi: create index")


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {work}/access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {work}/tmp-body;
    proxy_temp_path {work}/tmp-proxy;
    types {{ text/html html; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {tree};
        index index.html;
    }}
}}
"""


class Nginx(Server):
    label = "nginx"
    uploads = False

    def __init__(self, work: Path, corpus: Corpus) -> None:
        super().__init__(work)
        self.tree = self.work / "tree"
        self._build_tree(corpus)

    @property
    def simple_root(self) -> str:
        return "/simple/"

    def _build_tree(self, corpus: Corpus) -> None:
        """A static PEP 503 tree: /simple/, /simple/{project}/ and /files/{filename}."""
        files_dir = self.tree / "files"
        files_dir.mkdir(parents=True)
        by_project: dict[str, list[Path]] = {}
        for path in corpus.files:
            target = files_dir / path.name
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
            project = normalize_name(path.name.split("-")[0])
            by_project.setdefault(project, []).append(path)
        simple = self.tree / "simple"
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project))
        simple.mkdir()
        (simple / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"
        )
        for project, paths in by_project.items():
            anchors = "".join(
                f'<a href="../../files/{p.name}#sha256={corpus.sha256[p.name]}">{p.name}</a><br/>\n'
                for p in sorted(paths)
            )
            (simple / project).mkdir()
            (simple / project / "index.html").write_text(
                '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" '
                f'content="1.0"><title>Links for {project}</title></head><body>\n'
                f"{anchors}</body></html>\n"
            )

    def start(self) -> None:
        conf = self.work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=self.work, port=self.port, tree=self.tree))
        self.spawn(
            ["nginx", "-p", str(self.work), "-e", str(self.work / "error.log"), "-c", str(conf)]
        )
        wait_http(f"{self.base}/simple/", self.process, self.logfile, 30)  # type: ignore[arg-type]


# --- load generation ----------------------------------------------------------------------

WRK_LUA = r"""
-- Rotates over the paths in $BENCH_PATHS (one per line), sends $BENCH_ACCEPT,
-- $BENCH_ENCODING and, when set, $BENCH_AUTH as the Authorization header, stops
-- the thread after $BENCH_LIMIT responses, counts non-200
-- answers, and writes a JSON summary to $BENCH_OUT.
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local headers = {}
if os.getenv("BENCH_ACCEPT") ~= "" then headers["Accept"] = os.getenv("BENCH_ACCEPT") end
headers["Accept-Encoding"] = os.getenv("BENCH_ENCODING")
headers["User-Agent"] = "lockgate-bench (wrk)"
if (os.getenv("BENCH_AUTH") or "") ~= "" then headers["Authorization"] = os.getenv("BENCH_AUTH") end
local limit = tonumber(os.getenv("BENCH_LIMIT"))
local threads = {}
local position = 0
responses = 0
not_ok = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time())
  position = math.random(#paths) - 1
end

function request()
  position = position % #paths + 1
  return wrk.format("GET", paths[position], headers)
end

function response(status, hdrs, body)
  responses = responses + 1
  if status ~= 200 then not_ok = not_ok + 1 end
  if responses >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("not_ok") end
  local e = summary.errors
  local f = io.open(os.getenv("BENCH_OUT"), "w")
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "not_200": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}',
    summary.requests, summary.duration, summary.bytes, bad, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
  f:close()
end
"""


@dataclass
class Workload:
    key: str
    title: str
    paths_attr: str  # which path list of a Target to rotate over
    accept: str
    encoding: str
    concurrency: int
    max_requests: int
    authorization: str = ""  # an Authorization header to send with every request


@dataclass
class Target:
    server: Server
    pages: list[str] = field(default_factory=list)
    small_files: list[str] = field(default_factory=list)
    large_files: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)


def discover(server: Server, corpus: Corpus) -> Target:
    """Read each server's own HTML project pages to learn its file URLs, and check that
    it serves exactly the corpus (same filenames, same sha256, same bytes)."""
    target = Target(server)
    hrefs: dict[str, str] = {}
    for project in corpus.small_projects + corpus.large_projects:
        path = server.project_path(project)
        status, _, body = fetch("GET", server.base + path, headers={"Accept": "text/html"})
        check(status, body, f"{server.label}: {path}")
        for href in re.findall(r'href="([^"]+)"', body.decode()):
            url, _, fragment = urllib.parse.urljoin(server.base + path, href).partition("#")
            filename = urllib.parse.unquote(url.rsplit("/", 1)[1])
            digest = fragment.removeprefix("sha256=")
            if digest != corpus.sha256.get(filename):
                raise RuntimeError(f"{server.label}: {filename}: link hash {fragment!r} is wrong")
            hrefs[filename] = urllib.parse.urlsplit(url).path
        if project in corpus.small_projects:
            target.pages.append(path)
    if set(hrefs) != set(corpus.sha256):
        raise RuntimeError(f"{server.label}: serves {len(hrefs)} files, not the corpus")
    target.small_files = sorted(v for k, v in hrefs.items() if k not in corpus.large_files)
    target.large_files = sorted(v for k, v in hrefs.items() if k in corpus.large_files)
    for path in (target.small_files[0], target.large_files[0]):
        status, _, body = fetch("GET", server.base + path, timeout=60)
        check(status, body, f"{server.label}: {path}")
        filename = urllib.parse.unquote(path.rsplit("/", 1)[1])
        if hashlib.sha256(body).hexdigest() != corpus.sha256[filename]:
            raise RuntimeError(f"{server.label}: {path} does not have the uploaded bytes")
    target.probe = probe_page(server, target.pages[0])
    return target


def probe_page(server: Server, path: str) -> dict[str, Any]:
    """What a pip-like page request gets back, on a keep-alive connection like pip's."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(
            "GET", path, headers={"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip, deflate"}
        )
        response = conn.getresponse()
        body = response.read()
        return {
            "page_status": response.status,
            "page_content_type": response.getheader("Content-Type"),
            "page_content_encoding": response.getheader("Content-Encoding", "identity"),
            "page_bytes": len(body),
            "page_keeps_connection": not response.will_close,
            "server_header": response.getheader("Server"),
        }
    finally:
        conn.close()


def run_wrk(
    target: Target,
    workload: Workload,
    duration: float,
    limit: int,
    scratch: Path,
    cpus: str | None = None,
) -> dict[str, Any]:
    """One wrk measurement (pinned to `cpus` with taskset when given)."""
    paths = getattr(target, workload.paths_attr)
    paths_file = scratch / f"{target.server.label}-{workload.key}.paths"
    paths_file.write_text("\n".join(paths) + "\n")
    script = scratch / "rotate.lua"
    script.write_text(WRK_LUA)
    out = scratch / f"{target.server.label}-{workload.key}.json"
    out.unlink(missing_ok=True)
    env = dict(
        os.environ,
        BENCH_PATHS=str(paths_file),
        BENCH_ACCEPT=workload.accept,
        BENCH_ENCODING=workload.encoding,
        BENCH_LIMIT=str(limit),
        BENCH_OUT=str(out),
        BENCH_AUTH=workload.authorization,
    )
    cmd = [
        *(["taskset", "-c", cpus] if cpus else []),
        "wrk",
        "-t1",
        f"-c{workload.concurrency}",
        f"-d{max(1, math.ceil(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        target.server.base,
    ]
    with Meter(target.server.pid) as meter:
        result = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    raw = json.loads(out.read_text())
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1),
        "mb_per_s": round(raw["bytes"] / seconds / 1e6, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "not_200": raw["not_200"],
        # wrk's main thread sleeps the whole -d even when the Lua cap stops the worker early,
        # so a capped run's duration is too long and its rate a lower bound.
        "capped": raw["requests"] >= limit,
        "socket_errors": errors,
        "server_cpu_ms_per_req": round(1000 * meter.server / max(raw["requests"], 1), 3),
        **meter.as_dict(),
    }


def run_pip(target: Target, names: list[str], scratch: Path) -> dict[str, Any]:
    dest = Path(tempfile.mkdtemp(prefix=f"pip-{target.server.label}-", dir=scratch))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--isolated",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--index-url",
        target.server.index_url,
        "-d",
        str(dest),
        *names,
    ]
    with Meter(target.server.pid) as meter:
        result = subprocess.run(
            cmd, env=clean_env(), capture_output=True, text=True, timeout=300, check=False
        )
    got = sorted(p.name for p in dest.iterdir())
    shutil.rmtree(dest)
    if result.returncode != 0 or len(got) != len(names):
        raise RuntimeError(f"{target.server.label}: pip download failed:\n{result.stderr[-2000:]}")
    return meter.as_dict()


# --- report -------------------------------------------------------------------------------

# (row key, workload, field, unit, higher_is_better)
ROWS = [
    ("pages_rps", "pages", "rps", "req/s", True),
    ("pages_p50", "pages", "p50_ms", "ms p50", False),
    ("pages_p99", "pages", "p99_ms", "ms p99", False),
    ("pages_cpu", "pages", "server_cpu_ms_per_req", "srv CPU ms/req", False),
    ("small_rps", "small", "rps", "req/s", True),
    ("small_p99", "small", "p99_ms", "ms p99", False),
    ("small_cpu", "small", "server_cpu_ms_per_req", "srv CPU ms/req", False),
    ("large_mbps", "large", "mb_per_s", "MB/s", True),
    ("large_p99", "large", "p99_ms", "ms p99", False),
    ("pip_wall", "pip", "wall_s", "s (median)", False),
    ("upload_wall", "upload", "wall_s", "s", False),
]
TITLES = {
    "pages": "(a) simple project page, pip Accept",
    "small": "(b) small file download",
    "large": "(c) large file download",
    "pip": "(d) cold pip download --no-deps",
    "upload": "(e) twine upload of the corpus",
}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def build_rows(results: dict[str, dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    rows = []
    for key, workload, fld, unit, higher in ROWS:
        values = {label: results.get(workload, {}).get(label, {}).get(fld) for label in labels}
        rows.append(
            {
                "row": key,
                "workload": workload,
                "metric": fld,
                "unit": unit,
                "better": "higher" if higher else "lower",
                "values": values,
                "capped": [
                    label
                    for label in labels
                    if fld in ("rps", "mb_per_s")
                    and results.get(workload, {}).get(label, {}).get("capped")
                ],
                "lockgate/devpi": ratio(values.get("lockgate"), values.get("devpi")),
                "lockgate/nginx": ratio(values.get("lockgate"), values.get("nginx")),
                "lockgate-pg/devpi": ratio(values.get("lockgate-pg"), values.get("devpi")),
            }
        )
    return rows


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def render_table(rows: list[dict[str, Any]], labels: list[str]) -> str:
    header = ["workload", "metric", *labels, "lg/devpi", "lg/nginx", "better"]
    lines = []
    last = None
    for row in rows:
        title = TITLES[row["workload"]] if row["workload"] != last else ""
        last = row["workload"]
        lines.append(
            [
                title,
                row["unit"],
                *(
                    fmt(row["values"][label]) + ("*" if label in row["capped"] else "")
                    for label in labels
                ),
                fmt(row["lockgate/devpi"]),
                fmt(row["lockgate/nginx"]),
                row["better"],
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(cells) for cells in lines]
    return "\n".join(out)


# --- main ---------------------------------------------------------------------------------


def versions(devpi_venv: Path) -> dict[str, str]:
    def run(cmd: list[str]) -> str:
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            return (result.stdout + result.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return {
        "lockgate": run([str(BIN / "lockgate"), "--version"]),
        "devpi-server": run([str(devpi_venv / "bin" / "devpi-server"), "--version"]),
        "nginx": run(["nginx", "-v"]),
        "wrk": run(["wrk", "-v"]),
        "lockgate_commit": run(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "python": platform.python_version(),
        "pip": run([sys.executable, "-m", "pip", "--version"]).split(" from ")[0],
    }


def postgres_url(mode: str, created: list[str]) -> str | None:
    if mode == "off":
        return None
    try:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=5432,
            user="postgres",
            dbname="postgres",
            connect_timeout=3,
            autocommit=True,
        ) as conn:
            name = f"lockgate_bench_{os.getpid()}"
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
            created.append(name)
            return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        if mode == "on":
            raise
        log(f"PostgreSQL not used ({exc.__class__.__name__}: {exc})")
        return None


def drop_databases(created: list[str]) -> None:
    if not created:
        return
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--projects", type=int, default=100, help="small projects (default 100)")
    p.add_argument("--versions", type=int, default=3, help="versions per small project (3)")
    p.add_argument("--small-kib", type=int, default=50, help="payload of small wheels (50 KiB)")
    p.add_argument("--large", type=int, default=4, help="large projects, one wheel each (4)")
    p.add_argument("--large-mib", type=int, default=5, help="payload of large wheels (5 MiB)")
    p.add_argument("--duration", type=float, default=5, help="seconds per measurement (5)")
    p.add_argument("--rounds", type=int, default=2, help="measurements per server, best kept (2)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up (2)")
    p.add_argument("--concurrency", type=int, default=16, help="connections, pages/small (16)")
    p.add_argument("--large-concurrency", type=int, default=4, help="connections, large (4)")
    p.add_argument(
        "--max-requests",
        type=int,
        default=500_000,
        help="cap per page/small-file measurement, large files get 1/100 (500000); a safety "
        "bound: a capped run's rate is understated and flagged",
    )
    p.add_argument("--pip-packages", type=int, default=20, help="packages per pip download (20)")
    p.add_argument("--pip-runs", type=int, default=3, help="pip downloads per server (3)")
    p.add_argument(
        "--pg",
        choices=["auto", "on", "off"],
        default="auto",
        help="also run lockgate on PostgreSQL at 127.0.0.1:5432 (auto)",
    )
    p.add_argument("--devpi-venv", type=Path, default=BENCH / ".venv-devpi")
    p.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: run bench/run.sh, which installs it")
    if not (args.devpi_venv / "bin" / "devpi-server").exists():
        sys.exit(f"no devpi-server in {args.devpi_venv}: run bench/run.sh, which installs it")

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-"))
    os.chmod(work, 0o755)  # nginx's worker (not root) reads the static tree
    scratch = work / "scratch"
    scratch.mkdir()
    created_dbs: list[str] = []
    servers: list[Server] = []

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log(f"working in {work}")
        corpus = build_corpus(work / "corpus", args)
        log(f"corpus: {corpus.describe()}")

        servers.append(Lockgate(work, "lockgate"))
        pg_url = postgres_url(args.pg, created_dbs)
        if pg_url:
            servers.append(Lockgate(work, "lockgate-pg", pg_url))
        servers.append(Devpi(work, args.devpi_venv))
        servers.append(Nginx(work, corpus))
        labels = [s.label for s in servers]

        results: dict[str, dict[str, Any]] = {k: {} for k in TITLES}
        targets: list[Target] = []
        for server in servers:
            server.start()
            if server.uploads:
                with Meter(server.pid) as meter:
                    server.upload(corpus)
                results["upload"][server.label] = meter.as_dict()
            targets.append(discover(server, corpus))
            log(f"{server.label}: serves the corpus; {targets[-1].probe}")

        workloads = [
            Workload(
                "pages",
                TITLES["pages"],
                "pages",
                PIP_ACCEPT,
                "gzip, deflate",
                args.concurrency,
                args.max_requests,
            ),
            Workload(
                "small",
                TITLES["small"],
                "small_files",
                "*/*",
                "identity",
                args.concurrency,
                args.max_requests,
            ),
            Workload(
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
            for number in range(args.rounds):  # servers alternate, round after round
                for target in targets:
                    label = target.server.label
                    if number == 0:
                        run_wrk(target, workload, args.warmup, workload.max_requests, scratch)
                    measured = run_wrk(
                        target, workload, args.duration, workload.max_requests, scratch
                    )
                    rounds[label].append(measured)
                    log(
                        f"{workload.key:5} {label:11} {measured['rps']:>9} req/s "
                        f"{measured['mb_per_s']:>8} MB/s  p50 {measured['p50_ms']} ms  "
                        f"p99 {measured['p99_ms']} ms  server CPU {measured['server_cpu_pct']}%  "
                        f"wrk CPU {measured['client_cpu_pct']}%  "
                        f"other {measured['other_cpu_pct']}%"
                    )
                    if measured["capped"]:
                        log("  WARNING: hit the request cap, so this rate is understated")
                    if measured["not_200"] or measured["socket_errors"]:
                        log(
                            f"  WARNING: {measured['not_200']} non-200 answers, "
                            f"{measured['socket_errors']} socket errors"
                        )
            for label, measured in rounds.items():
                # Other processes only ever slow a round down: keep the fastest one.
                best = max(measured, key=lambda r: r["rps"])
                results[workload.key][label] = {
                    **best,
                    "rounds_rps": [r["rps"] for r in measured],
                    "rounds_other_cpu_pct": [r["other_cpu_pct"] for r in measured],
                }

        names = corpus.small_projects[:: max(1, len(corpus.small_projects) // args.pip_packages)]
        names = names[: args.pip_packages]
        runs: dict[str, list[dict[str, Any]]] = {t.server.label: [] for t in targets}
        for _ in range(args.pip_runs):  # interleaved, so a noisy moment hits every server
            for target in targets:
                runs[target.server.label].append(run_pip(target, names, scratch))
        for label, measured in runs.items():
            walls = [r["wall_s"] for r in measured]
            median = statistics.median(walls)
            results["pip"][label] = {
                **min(measured, key=lambda r: abs(r["wall_s"] - median)),
                "wall_s": round(median, 3),
                "runs_s": walls,
                "packages": len(names),
            }
            log(f"pip   {label:11} {walls} s")

        rss = {s.label: round(tree_rss_mib(s.pid), 1) for s in servers}
        rows = build_rows(results, labels)
        table = render_table(rows, labels)
        report = {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                "cores": os.cpu_count(),
                "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
                "kernel": platform.release(),
            },
            "versions": versions(args.devpi_venv),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "corpus": corpus.describe(),
            "servers": {t.server.label: t.probe for t in targets},
            "server_rss_mib_at_end": rss,
            "load_generator": "wrk, 1 thread, Lua path rotation; pip for (d), twine for (e)",
            "rows": rows,
            "results": results,
            "runtime_s": round(time.monotonic() - started, 1),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")

        print()
        print(
            f"lockgate benchmark: {corpus.describe()['files']} wheels "
            f"({len(corpus.small_projects)} projects x {args.versions} versions of "
            f"~{args.small_kib} KiB, {len(corpus.large_projects)} x ~{args.large_mib} MiB); "
            f"{os.cpu_count()} cores shared by server and load generator"
        )
        print(
            f"load: wrk -t1, {args.concurrency} connections ({args.large_concurrency} for large "
            f"files); {args.warmup:g} s warm-up, then {args.rounds} rounds of {args.duration:g} s "
            f"or the request cap per server, servers alternating, fastest round kept; "
            f"pip: median of {args.pip_runs}"
        )
        print()
        print(table)
        print()
        print("ratios are lockgate's value / the other's: for 'higher' rows >1 means lockgate is")
        print("faster, for 'lower' rows <1 means lockgate is faster.")
        if any(row["capped"] for row in rows):
            print("* hit the request cap (--max-requests): that rate is a lower bound")
        print("CPU in % of one core (200% = both), kept round: server / wrk / other processes")
        for workload in ("pages", "small", "large"):
            cpu = ", ".join(
                f"{label} {r['server_cpu_pct']:.0f}/{r['client_cpu_pct']:.0f}"
                f"/{r['other_cpu_pct']:.0f}"
                + (" (wrk-bound?)" if r["client_cpu_pct"] >= 90 else "")
                for label in labels
                for r in [results[workload][label]]
            )
            print(f"  {workload:5}: {cpu}")
        print("page answers to pip's Accept:")
        for t in targets:
            keep = "keep-alive" if t.probe["page_keeps_connection"] else "closes the connection"
            print(
                f"  {t.server.label}: {t.probe['page_content_type']}, {t.probe['page_bytes']} B, "
                f"{keep}"
            )
        print("server RSS at end (MiB): " + ", ".join(f"{k} {v}" for k, v in rss.items()))
        print(f"JSON: {args.out}   runtime {report['runtime_s']:.0f} s")
        return 0
    finally:
        for server in reversed(servers):
            server.stop()
        try:
            drop_databases(created_dbs)
        except Exception as exc:  # noqa: BLE001
            log(f"could not drop {created_dbs}: {exc}")
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
