# Sourced by scripts/run.sh and scripts/test.sh: make .venv with every pinned package.
# Re-installs only when requirements.lock or pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "churnlight needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.churnlight-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing pinned dependencies into .venv (about 2 minutes the first time)..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export MLFLOW_DISABLE_TELEMETRY=true
export DVC_NO_ANALYTICS=1

# Debian's chromium (the model card's screenshot and browser test) and fonts-noto-cjk (Chinese
# in the card's charts, the SHAP figures and the screenshot). Installed where we may (root with
# apt-get); elsewhere say what is missing and go on: the pipeline and the tests run without them.
# Usage: ensure_browser_packages "<what needs them>"
ensure_browser_packages() {
  local why="${1:-the model card}" missing=() b have_browser="" have_cjk=""
  for b in "${CHROMIUM:-}" "${CHROME_BIN:-}" chromium chromium-browser google-chrome google-chrome-stable chrome; do
    if [ -n "$b" ] && command -v "$b" >/dev/null 2>&1; then have_browser=1; break; fi
  done
  [ -n "$have_browser" ] || missing+=(chromium)
  if command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family 2>/dev/null)" ]; then
    have_cjk=1
  fi
  [ -n "$have_cjk" ] || missing+=(fonts-noto-cjk)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for ${why}..." >&2
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null); then
      return 0
    fi
    echo -n "could not install ${missing[*]}" >&2
  else
    echo -n "${missing[*]} not installed (as root: apt-get install ${missing[*]})" >&2
  fi
  [ -n "$have_browser" ] || echo -n "; no chromium: ${why} skipped" >&2
  [ -n "$have_cjk" ] || echo -n "; no CJK font: Chinese charts in English" >&2
  echo >&2
  return 0
}

# Java 17 for the Spark engine (features.engine: spark, issue 18; pyspark is the
# churnlight[spark] extra). Installed where we may (root with apt-get: a headless JRE);
# elsewhere say so and go on: DuckDB needs no Java, and the Spark tests skip and say why.
# Usage: ensure_java "<what needs it>"
ensure_java() {
  local why="${1:-the Spark engine}"
  if command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ]; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing a headless Java 17 runtime for ${why}..." >&2
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null); then
      return 0
    fi
    echo "could not install openjdk-17-jre-headless: ${why} skipped" >&2
  else
    echo "no Java 17 (as root: apt-get install openjdk-17-jre-headless): ${why} skipped" >&2
  fi
  return 0
}
