#!/usr/bin/env bash
# Quick start, command 1: install everything into .venv, then run the pipeline (dvc repro)
# on the synthetic default. Extra arguments go to `dvc repro` (e.g. --force, or a stage name).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
dvc repro "$@"
echo
echo "Done. Look at: reports/model_card.md, reports/segments/, 'dvc metrics show', 'dvc plots show'."
