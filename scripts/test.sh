#!/usr/bin/env bash
# Quick start, command 2: install everything into .venv, then lint and run the test suite.
# Extra arguments go to pytest (e.g. -k contract).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ruff check .
ruff format --check .
python -m pytest -n 2 "$@"
