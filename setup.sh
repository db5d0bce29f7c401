#!/usr/bin/env bash
# Set up lazarus_bench on a fresh machine: system OpenBLAS (Linux), a virtualenv in .venv, the package and its test extra.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(uname -s)" = "Linux" ] && ! ldconfig -p 2>/dev/null | grep -q "libopenblas.so.0"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libopenblas0-pthread >/dev/null
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements.lock -e ".[test]"  # the versions the records were made with
.venv/bin/lazarus-bench info --no-gemm >/dev/null
echo "lazarus_bench is set up in .venv"
