#!/usr/bin/env bash
# Create .venv and install the project, on a fresh Debian machine with only
# Python 3.11 and make. Debian splits venv/ensurepip into python3-venv, so
# fall back to virtualenv (via pip), then to apt-get when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "bootstrap: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
make_venv() {
  rm -rf .venv
  "$PY" -m venv .venv >/dev/null 2>&1 && [ -x .venv/bin/pip ]
}
if [ ! -x .venv/bin/pip ]; then
  if ! make_venv; then
    if "$PY" -m pip --version >/dev/null 2>&1; then
      echo "bootstrap: venv unavailable; using virtualenv" >&2
      "$PY" -m pip install --quiet --user virtualenv
      "$PY" -m virtualenv --quiet .venv
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "bootstrap: installing python3-venv with apt-get" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
      make_venv || { echo "bootstrap: could not create a virtual environment" >&2; exit 1; }
    else
      echo "bootstrap: cannot create a virtual environment: install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
