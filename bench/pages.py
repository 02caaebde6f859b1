"""Cached project pages on one core: req/s of `/{user}/{index}/{project}` as a browser
asks for it (HTML) and as devpi-client asks for it (`Accept: application/json`),
against the goal of at least 1,000 req/s with the server pinned to one core.

One lockgate (SQLite; `--pg on` for PostgreSQL too) is started under `taskset -c
SERVER_CPU` and wrk under `taskset -c WRK_CPU`, so the server has one core and the load
generator the other. A corpus of `--projects` projects × `--versions` versions (small
wheels whose METADATA carries a Markdown description, keywords and classifiers, as a
real project's does) is uploaded with twine; every page is fetched once and checked
(status, content type, the project's name in it) before measuring, so the measured
requests hit the per-serial page cache (lockgate/http/pagecache.py) as a busy server's
would. Workloads, each rotating over every project:

- `html`: the project page with Chromium's Accept header (the browser page: the
  cached main part in the per-request layout);
- `json`: the same URL with `Accept: application/json` (devpi's project JSON);
- `release`: a release page `/{user}/{index}/{project}/{version}`, HTML;
- `simple`: the simple page with pip's Accept (the reference: the fastest path).

Each gets a warm-up, then `--rounds` rounds of `--duration` seconds, workloads
alternating; the fastest round is kept (other processes can only slow a round down).

    .venv/bin/python bench/pages.py                 # ~1 minute
    .venv/bin/python bench/pages.py --rounds 3 --duration 5 --pg on

Bounded: every measurement stops at `--max-requests` or its duration; only loopback
is contacted. Writes bench/results/pages-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402
    BENCH,
    INDEX,
    PIP_ACCEPT,
    USER,
    Corpus,
    Lockgate,
    Target,
    Workload,
    drop_databases,
    fetch,
    log,
    postgres_url,
    run_wrk,
)
from tests.support.dists import make_wheel, sha256_file  # noqa: E402

GOAL_RPS = 1000.0
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
DESCRIPTION = """# {name}

{name} parses, validates and renders **structured records** for the bench.

## Install

```sh
pip install {name}
```

## Use

- read a file with `{module}.load(path)`;
- check it with `{module}.validate(record)`;
- write it back with `{module}.dump(record, path)`.

| option | default | meaning |
| --- | --- | --- |
| `strict` | `False` | refuse unknown fields |
| `encoding` | `utf-8` | the text encoding |

See the [changelog](https://example.invalid/{name}/changes) for what changed.
"""


class PinnedLockgate(Lockgate):
    """lockgate started under `taskset -c cpus`: one core for the server."""

    def __init__(self, work: Path, label: str, db_url: str | None, cpus: str) -> None:
        self.cpus = cpus
        super().__init__(work, label, db_url)

    def spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        super().spawn(["taskset", "-c", self.cpus, *cmd], env)


def build_corpus(root: Path, projects: int, versions: int) -> Corpus:
    dist = root / "dist"
    files: list[Path] = []
    names = [f"page-pkg-{i:03d}" for i in range(projects)]
    for name in names:
        module = name.replace("-", "_")
        for v in range(versions):
            files.append(
                make_wheel(
                    dist,
                    name,
                    f"{v + 1}.0",
                    summary=f"{name}: structured records, parsed and rendered",
                    extra_metadata={
                        "Description": DESCRIPTION.format(name=name, module=module),
                        "Description-Content-Type": "text/markdown",
                        "Keywords": "records,parser,bench",
                        "Classifier": "Programming Language :: Python :: 3",
                    },
                    payload_size=4096,
                )
            )
    corpus = Corpus(dist, files, names, [])
    corpus.sha256 = {f.name: sha256_file(f) for f in files}
    return corpus


def check_page(server: Lockgate, path: str, accept: str, kind: str, name: str) -> None:
    status, headers, body = fetch("GET", server.base + path, headers={"Accept": accept})
    content_type = headers.get("Content-Type", "")
    if status != 200 or not content_type.startswith(kind) or name.encode() not in body:
        raise RuntimeError(
            f"{server.label}: {path} with Accept {accept[:30]}…: {status} {content_type}: "
            f"{body[:300]!r}"
        )


def measure_server(
    server: PinnedLockgate, corpus: Corpus, args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    server.start()
    server.upload(corpus)
    projects = corpus.small_projects
    last = f"{args.versions}.0"
    paths = {
        "html": [f"/{USER}/{INDEX}/{p}" for p in projects],
        "json": [f"/{USER}/{INDEX}/{p}" for p in projects],
        "release": [f"/{USER}/{INDEX}/{p}/{last}" for p in projects],
        "simple": [f"/{USER}/{INDEX}/+simple/{p}/" for p in projects],
    }
    workloads = {
        "html": Workload(
            "html",
            "project page, browser",
            "pages",
            BROWSER_ACCEPT,
            "gzip, deflate",
            args.concurrency,
            args.max_requests,
        ),  # fmt: skip
        "json": Workload(
            "json",
            "project page, JSON",
            "pages",
            "application/json",
            "gzip, deflate",
            args.concurrency,
            args.max_requests,
        ),  # fmt: skip
        "release": Workload(
            "release",
            "release page, browser",
            "pages",
            BROWSER_ACCEPT,
            "gzip, deflate",
            args.concurrency,
            args.max_requests,
        ),  # fmt: skip
        "simple": Workload(
            "simple",
            "simple page, pip",
            "pages",
            PIP_ACCEPT,
            "gzip, deflate",
            args.concurrency,
            args.max_requests,
        ),  # fmt: skip
    }
    kinds = {"html": "text/html", "json": "application/json", "release": "text/html",
             "simple": "application/vnd.pypi.simple.v1+json"}  # fmt: skip
    accepts = {key: workload.accept for key, workload in workloads.items()}
    for key, rotation in paths.items():
        for path, project in zip(rotation, projects, strict=True):
            check_page(server, path, accepts[key], kinds[key], project)
    rounds: dict[str, list[dict[str, Any]]] = {key: [] for key in workloads}
    for key, workload in workloads.items():
        run_wrk(Target(server, pages=paths[key]), workload, args.warmup, args.max_requests,
                scratch, args.wrk_cpu)  # fmt: skip
    for number in range(args.rounds):
        for key, workload in workloads.items():
            measured = run_wrk(Target(server, pages=paths[key]), workload, args.duration,
                               args.max_requests, scratch, args.wrk_cpu)  # fmt: skip
            if measured["not_200"] or measured["socket_errors"]:
                raise RuntimeError(f"{server.label} {key}: {measured['not_200']} non-200 answers")
            rounds[key].append(measured)
            log(
                f"{server.label} round {number + 1} {key:8} {measured['rps']:>8} req/s  "
                f"p50 {measured['p50_ms']} ms  p99 {measured['p99_ms']} ms  "
                f"server {measured['server_cpu_pct']}% wrk {measured['client_cpu_pct']}% "
                f"other {measured['other_cpu_pct']}%"
            )
    best = {key: max(runs, key=lambda r: r["rps"]) for key, runs in rounds.items()}
    return {
        key: {
            "title": workloads[key].title,
            **{
                k: result[k]
                for k in (
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "server_cpu_ms_per_req",
                    "server_cpu_pct",
                    "client_cpu_pct",
                    "other_cpu_pct",
                )
            },  # fmt: skip
            "vs_goal": round(result["rps"] / GOAL_RPS, 2),
            "all_rounds_rps": [r["rps"] for r in rounds[key]],
        }
        for key, result in best.items()
    }


def report(label: str, results: dict[str, Any]) -> None:
    print(f"\n{label}: one core for the server (goal: ≥ {GOAL_RPS:,.0f} req/s for project pages)")
    print(f"  {'workload':<24} {'req/s':>8} {'vs goal':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'CPU ms/req':>10}  server/wrk/other CPU %")  # fmt: skip
    for row in results.values():
        print(
            f"  {row['title']:<24} {row['rps']:>8,.0f} {row['vs_goal']:>8} {row['p50_ms']:>7} "
            f"{row['p99_ms']:>7} {row['server_cpu_ms_per_req']:>10}  "
            f"{row['server_cpu_pct']}/{row['client_cpu_pct']}/{row['other_cpu_pct']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--server-cpu", default="1", help="the core lockgate gets (1)")
    parser.add_argument("--wrk-cpu", default="0", help="the core wrk gets (0)")
    parser.add_argument("--pg", choices=("auto", "on", "off"), default="off")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "pages-latest.json")
    args = parser.parse_args(argv)
    if not 1 <= args.projects <= 1000 or not 1 <= args.versions <= 20:
        parser.error("--projects must be 1..1000 and --versions 1..20")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (bench/run.sh installs wrk; taskset is util-linux)")
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-pages-"))
    scratch = work / "scratch"
    scratch.mkdir()
    created: list[str] = []
    out: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "goal_rps": GOAL_RPS,
        "projects": args.projects,
        "versions": args.versions,
        "concurrency": args.concurrency,
        "server_cpu": args.server_cpu,
        "wrk_cpu": args.wrk_cpu,
        "load_average": os.getloadavg(),
    }
    try:
        corpus = build_corpus(work / "corpus", args.projects, args.versions)
        servers = [("lockgate", None)]
        pg = postgres_url(args.pg, created)
        if pg:
            servers.append(("lockgate-pg", pg))
        for label, url in servers:
            server = PinnedLockgate(work, label, url, args.server_cpu)
            try:
                results = measure_server(server, corpus, args, scratch)
            finally:
                server.stop()
            report(label, results)
            out[label] = results
    finally:
        drop_databases(created)
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
