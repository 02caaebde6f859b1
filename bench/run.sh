#!/usr/bin/env bash
# One command: installs what the benchmark compares against (devpi-server from PyPI into
# bench/.venv-devpi, nginx and wrk from Debian), then runs bench/bench.py, which prints the
# table and writes bench/results/latest.json. Arguments are passed to bench.py
# (e.g. `bench/run.sh --duration 4 --pg off`; `bench/run.sh --help`).
#
# `bench/run.sh --mirror [ARGS]` runs the mirror benchmark instead (bench/mirror.py: root/pypi
# of lockgate, devpi and proxpi in front of a static nginx upstream, plus a bare aiohttp app);
# it also installs proxpi (and gunicorn, which serves it) from PyPI into bench/.venv-proxpi.
# `bench/run.sh --mirror --quick` checks that harness end to end in a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DEVPI_VENV=bench/.venv-devpi
PROXPI_VENV=bench/.venv-proxpi
MIRROR=""
if [ "${1:-}" = "--mirror" ]; then
  MIRROR=1
  shift
fi

# lockgate itself, with twine and pip, in the project venv (as .ci/run makes it).
if [ ! -x .venv/bin/lockgate ] || ! .venv/bin/python -c 'import twine' 2>/dev/null; then
  echo "[run.sh] installing lockgate and its test tools into .venv" >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet -e '.[test]'
fi

# devpi-server from PyPI, in its own venv (it must not share lockgate's dependencies).
if [ ! -x "$DEVPI_VENV/bin/devpi-server" ]; then
  echo "[run.sh] installing devpi-server into $DEVPI_VENV" >&2
  "$PYTHON" -m venv "$DEVPI_VENV"
  if ! { "$DEVPI_VENV/bin/python" -m pip install --quiet --upgrade pip &&
         "$DEVPI_VENV/bin/python" -m pip install --quiet devpi-server; } \
       >"$DEVPI_VENV/install.log" 2>&1; then
    cat "$DEVPI_VENV/install.log" >&2
    exit 1
  fi
fi

# proxpi from PyPI (mirror benchmark only), in its own venv, served by gunicorn.
if [ -n "$MIRROR" ] && [ ! -x "$PROXPI_VENV/bin/gunicorn" ]; then
  echo "[run.sh] installing proxpi into $PROXPI_VENV" >&2
  "$PYTHON" -m venv "$PROXPI_VENV"
  if ! "$PROXPI_VENV/bin/python" -m pip install --quiet proxpi gunicorn \
       >"$PROXPI_VENV/install.log" 2>&1; then
    cat "$PROXPI_VENV/install.log" >&2
    exit 1
  fi
fi

# nginx and wrk from Debian. A policy-rc.d keeps the package's default site (port 80 on
# all interfaces) from being started: the benchmark runs its own nginx on 127.0.0.1.
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "[run.sh] installing nginx and wrk with apt-get" >&2
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  trap 'if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wrk \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx wrk
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  trap - EXIT
fi

echo "[run.sh] note: this machine has $(nproc) cores; the servers, wrk and pip share them" >&2
# Compiled modules, as an installed lockgate has them (start-up is measured).
.venv/bin/python -m compileall -q lockgate >/dev/null
if [ -n "$MIRROR" ]; then
  exec .venv/bin/python bench/mirror.py "$@"
fi
.venv/bin/python bench/bench.py "$@"
# Authenticated page reads against anonymous ones (private indexes, tokens, passwords).
.venv/bin/python bench/auth.py
