"""Authenticated page reads against anonymous ones, on one lockgate, in one run.

A private index costs one authentication per request: a token is one lookup of
its sha256, a password a remembered HMAC (scrypt runs once, not per request). This
measures simple project pages with pip's Accept header three ways, alternating
round after round: the index public and no credentials; the index private
(`acl_read`) and an API token (`Authorization: Basic __token__:…`); the index
private and the user's password. It prints each rate and its ratio to the
anonymous one (the goal is at least 0.8) and writes bench/results/auth-latest.json.

Run it through bench/run.sh (which installs wrk), or directly once wrk is there:
`.venv/bin/python bench/auth.py`. Bounded like bench.py: every measurement stops at a
request cap or after its duration; only loopback is contacted.
"""

from __future__ import annotations

import argparse
import base64
import json
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
    USER_PASSWORD,
    Lockgate,
    Workload,
    build_corpus,
    check,
    discover,
    drop_databases,
    fetch,
    log,
    postgres_url,
    run_wrk,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--projects", type=int, default=50, help="small projects (50)")
    p.add_argument("--duration", type=float, default=5, help="seconds per measurement (5)")
    p.add_argument("--rounds", type=int, default=3, help="measurements per mode, best kept (3)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up (2)")
    p.add_argument("--concurrency", type=int, default=16, help="connections (16)")
    p.add_argument("--max-requests", type=int, default=500_000, help="cap per measurement")
    p.add_argument("--pg", choices=["auto", "on", "off"], default="off", help="PostgreSQL (off)")
    p.add_argument("--out", type=Path, default=BENCH / "results" / "auth-latest.json")
    return p.parse_args(argv)


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _set_readers(server: Lockgate, readers: list[str]) -> None:
    status, _, body = fetch(
        "PATCH",
        f"{server.base}/{USER}/{INDEX}",
        body={"acl_read": readers},
        auth=(USER, USER_PASSWORD),
    )
    check(status, body, f"set acl_read {readers}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run bench/run.sh, which installs it")
    args.versions, args.small_kib, args.large, args.large_mib = 2, 20, 1, 1
    work = Path(tempfile.mkdtemp(prefix="lockgate-bench-auth-"))
    scratch = work / "scratch"
    scratch.mkdir()
    created: list[str] = []
    server = Lockgate(work, "lockgate", postgres_url(args.pg, created))
    try:
        corpus = build_corpus(work / "corpus", args)
        server.start()
        server.upload(corpus)
        target = discover(server, corpus)
        status, _, body = fetch(
            "POST",
            f"{server.base}/{USER}/+tokens",
            body={"name": "bench", "scopes": ["read"], "indexes": [f"{USER}/{INDEX}"]},
            auth=(USER, USER_PASSWORD),
        )
        check(status, body, "create a read token")
        token = json.loads(body)["result"]["token"]
        modes = {
            "anonymous": ([":ANONYMOUS:"], ""),
            "token": ([USER], _basic("__token__", token)),
            "password": ([USER], _basic(USER, USER_PASSWORD)),
        }
        rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for number in range(args.rounds):
            for mode, (readers, authorization) in modes.items():
                _set_readers(server, readers)
                workload = Workload(
                    f"pages-{mode}",
                    f"simple pages, {mode}",
                    "pages",
                    PIP_ACCEPT,
                    "gzip, deflate",
                    args.concurrency,
                    args.max_requests,
                    authorization,
                )
                run_wrk(target, workload, args.warmup, args.max_requests, scratch)
                measured = run_wrk(target, workload, args.duration, args.max_requests, scratch)
                if measured["not_200"] or measured["socket_errors"]:
                    raise RuntimeError(f"{mode}: {measured['not_200']} non-200 answers")
                rounds[mode].append(measured)
                log(
                    f"round {number + 1} {mode:9} {measured['rps']:>9} req/s  "
                    f"p50 {measured['p50_ms']} ms  p99 {measured['p99_ms']} ms  "
                    f"server CPU {measured['server_cpu_pct']}%"
                )
        best = {mode: max(runs, key=lambda r: r["rps"]) for mode, runs in rounds.items()}
        anonymous = best["anonymous"]["rps"]
        summary = {
            mode: {
                "rps": result["rps"],
                "ratio_to_anonymous": round(result["rps"] / anonymous, 3),
                "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"],
                "all_rounds_rps": [r["rps"] for r in rounds[mode]],
            }
            for mode, result in best.items()
        }
        print(f"\nsimple pages, c{args.concurrency}, best of {args.rounds} rounds:")
        for mode, row in summary.items():
            print(
                f"  {mode:9} {row['rps']:>9} req/s  ratio {row['ratio_to_anonymous']:.2f}  "
                f"(rounds: {', '.join(str(r) for r in row['all_rounds_rps'])})"
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **summary},
                indent=2,
            )
            + "\n"
        )
        log(f"wrote {args.out}")
    finally:
        server.stop()
        drop_databases(created)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
