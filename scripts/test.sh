#!/usr/bin/env bash
# Quick start, command 2: install everything into .venv, then lint and run the test suite.
# Extra arguments go to pytest (e.g. -k contract).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
# The model-card browser tests need Chromium, the Chinese charts a CJK font (Debian's packages).
# Installed where we may; elsewhere those tests are skipped and say why.
ensure_browser_packages "the model card's browser tests"
# The Spark engine (issue 18): its extra and Java 17, so that CI runs the parity, cluster and
# Spark Connect tests
python -c "import pyspark, sqlglot, grpc, grpc_status, zstandard" 2>/dev/null || python -m pip install --quiet --disable-pip-version-check -e ".[spark]"
ensure_java "the Spark engine's tests"
ruff check .
ruff format --check .
python -m pytest -n 2 "$@"
