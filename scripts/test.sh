#!/usr/bin/env bash
# Quick start, command 2: install everything into .venv, then lint and run the test suite.
# Extra arguments go to pytest (e.g. -k contract).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
# The model-card browser test needs Chromium (Debian's package). Install it where we may;
# elsewhere that test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the model-card browser test..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium: the browser test will be skipped" >&2
fi
ruff check .
ruff format --check .
python -m pytest -n 2 "$@"
