#!/usr/bin/env bash
# Quick start, command 1: install everything into .venv, then run the pipeline (dvc repro)
# on the synthetic default. Extra arguments go to `dvc repro` (e.g. --force, or a stage name).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
# the report stage screenshots the model card with headless Chromium (and draws Chinese with a
# CJK font): installed when running as root, else that screenshot is skipped with a warning
ensure_browser_packages "the model card's screenshot"
# features.engine: spark needs Java 17 (issue 18); the DuckDB default does not
if grep -Eq '^\s*engine:\s*spark' params.yaml; then ensure_java "features.engine: spark"; fi
dvc repro "$@"
echo
echo "Done. Look at: reports/model_card.html (and its screenshot reports/figures/card/model_card.png),"
echo "reports/segments/, 'dvc metrics show', 'dvc plots show'."
