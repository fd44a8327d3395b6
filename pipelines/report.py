"""Stage `report`: the model card a manager reads, as reports/model_card.md and model_card.html.

Thin: read the pipeline's outputs, hand them to `churnlight.models.report` (context, charts,
rendering: one template for both files) and write both files atomically. With
`report.screenshot: true` (the default) it also saves a PNG of the HTML card, taken with headless
Chromium, as reports/figures/card/model_card.png, so a reviewer sees what a manager sees. Without
Chromium the cards are still written, the folder stays empty (DVC accepts an empty folder out)
and a warning says how to get Chromium. The same Chromium helpers drive the card's browser test.

The SHAP figures come from the explain stage in reports/figures/shap/; a Chinese card uses
shap/zh/<name>.png where explain wrote one (it does when a CJK font is installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import html
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from churnlight.models.report import CardInputs, build_context, content_hash, render_card
from churnlight.pipelines.common import (
    atomic_dir,
    atomic_file,
    is_synthetic,
    load_params,
    setup_logging,
    write_text,
)

log = logging.getLogger("churnlight.report")

# inside the reports folder: the explain stage's figures, and the report stage's own (DVC outs)
SHAP_DIR = Path("figures", "shap")
CARD_DIR = Path("figures", "card")
SCREENSHOT = "model_card.png"
CHROMIUM_HINT = (
    "install Chromium (Debian/Ubuntu, as root: apt-get install chromium fonts-noto-cjk; "
    "`bash scripts/run.sh` does it when run as root) or set $CHROMIUM to a Chrome/Chromium "
    "binary; report.screenshot: false turns the screenshot off"
)


# --- reading -----------------------------------------------------------------------------------


def _git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
            cwd=cwd,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def _json(path: Path, default: dict | None = None) -> dict:
    if default is not None and not path.is_file():
        log.warning("model card: %s not found, its section stays short", path)
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def _csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        log.warning("model card: %s not found, its section stays short", path)
        return pd.DataFrame(columns=columns)
    try:
        return pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:  # e.g. no slice large enough to evaluate
        return pd.DataFrame(columns=columns)


def read_figures(reports: Path, lang: str) -> tuple[dict[str, bytes], dict[str, str]]:
    """The explain stage's figures by name (bytes, and the file as seen from the Markdown card).

    A Chinese card takes shap/zh/<name>.png where it exists, so its figures speak the card's
    language; any figure without a Chinese version stays English (with a warning)."""
    shap_dir = reports / SHAP_DIR
    figures: dict[str, bytes] = {}
    files: dict[str, str] = {}
    english_only = []
    for png in sorted(shap_dir.glob("*.png")) if shap_dir.is_dir() else []:
        src = png
        if lang == "zh":
            zh = shap_dir / "zh" / png.name
            if zh.is_file():
                src = zh
            else:
                english_only.append(png.stem)
        figures[png.stem] = src.read_bytes()
        files[png.stem] = Path(os.path.relpath(src, reports)).as_posix()
    if english_only:
        log.warning(
            "model card (zh): no Chinese version of %d SHAP figure(s) in %s (explain writes them "
            "when a CJK font such as fonts-noto-cjk is installed): using the English ones for %s",
            len(english_only),
            shap_dir / "zh",
            ", ".join(english_only),
        )
    return figures, files


def read_inputs(
    interim: Path, processed: Path, models: Path, reports: Path, params: dict, params_path: Path
) -> CardInputs:
    """Everything the card needs, read from the pipeline's files."""
    lang = str((params.get("report") or {}).get("language", "en"))
    figures, figure_files = read_figures(reports, lang)
    tree_path = models / "tree_rules.txt"
    data_files = [
        interim / "contract_report.json",
        *sorted(p for p in processed.iterdir() if p.is_file()),
    ]
    return CardInputs(
        params=params,
        contract=_json(interim / "contract_report.json"),
        features_report=_json(processed / "features_report.json"),
        metrics=_json(reports / "metrics.json"),
        train_report=_json(models / "train_report.json", default={}),
        registry=pd.read_csv(processed / "feature_registry.csv"),
        importance=pd.read_csv(reports / "importance.csv"),
        importance_by_family=pd.read_csv(reports / "importance_by_family.csv"),
        summary=pd.read_csv(reports / "segments" / "summary.csv", encoding="utf-8-sig"),
        scored=pd.read_parquet(reports / "segments" / "scored_customers.parquet"),
        slices=_csv(reports / "metrics_by_slice.csv", ["slice", "value", "rows", "churn_rate"]),
        drift=_csv(reports / "drift.csv", ["name", "psi", "drifted"]),
        calibration=_csv(reports / "plots" / "calibration.csv", ["predicted", "observed"]),
        gains=_csv(reports / "plots" / "gains.csv", ["share_contacted", "share_of_churners"]),
        tree_rules=tree_path.read_text(encoding="utf-8") if tree_path.is_file() else None,
        figures=figures,
        version={
            "commit": _git_commit(params_path.resolve().parent),
            "params_hash": content_hash([params_path.read_bytes()]),
            "data_hash": content_hash(_file_digest(p) for p in data_files),
        },
        generated=str(dt.date.today()),
        synthetic=is_synthetic(params["data"]),
        source=str(params["data"]["source"]),
        figure_files=figure_files,
    )


# --- headless Chromium (the card's screenshot here, and the card's browser test) -------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PROBE_ID = "churnlight-probe"
# the card's own policy, plus inline scripts for the probe: anything fetched is a violation
PROBE_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
)
PROBE_SCRIPT = """<script>
(function () {
  var violations = [];
  document.addEventListener('securitypolicyviolation', function (e) {
    violations.push(e.violatedDirective + ' ' + e.blockedURI);
  });
  function report() {
    var images = Array.prototype.map.call(document.images, function (i) {
      return {src: i.getAttribute('src').slice(0, 40), complete: i.complete,
              width: i.naturalWidth, height: i.naturalHeight};
    });
    var resources = performance.getEntriesByType('resource').map(function (r) { return r.name; });
    var h1 = document.querySelector('h1');
    var out = {title: document.title, h1: h1 ? h1.textContent : '', images: images,
               violations: violations, resources: resources,
               height: document.documentElement.scrollHeight,
               text_length: document.body.innerText.length};
    var pre = document.getElementById('%(id)s') || document.createElement('pre');
    pre.id = '%(id)s';
    pre.style.display = 'none';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  window.addEventListener('load', function () { report(); setTimeout(report, 300); });
})();
</script>""" % {"id": PROBE_ID}  # noqa: UP031 (braces in JavaScript)


def find_chromium() -> str | None:
    """A Chromium/Chrome binary: $CHROMIUM or $CHROME_BIN if set, else the first on PATH."""
    for var in ("CHROMIUM", "CHROME_BIN"):
        if os.environ.get(var) and shutil.which(os.environ[var]):
            return shutil.which(os.environ[var])
    return next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)


def _chromium(binary: str, args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with nothing that phones home and every host name unresolvable."""
    with tempfile.TemporaryDirectory(prefix="churnlight-chromium-") as profile:
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--mute-audio",
            "--force-device-scale-factor=1",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            *args,
        ]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=profile
        )


def probe_page(html_path: Path, binary: str | None = None) -> dict:
    """Open a copy of the page with a probe script in headless Chromium and return what it saw:
    title, h1, every image's natural size, CSP violations (any attempted request), resource
    requests, page height and text length. The copy swaps the page's Content-Security-Policy for
    the same policy plus inline scripts, so any request the page tries is caught as a violation.
    """
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (install chromium, or set $CHROMIUM)")
    page = Path(html_path).read_text(encoding="utf-8")
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n?', "", page)
    probe = f'<meta http-equiv="Content-Security-Policy" content="{PROBE_CSP}">\n{PROBE_SCRIPT}\n'
    page = page.replace("<head>\n", "<head>\n" + probe, 1)
    with tempfile.TemporaryDirectory(prefix="churnlight-probe-") as tmp:
        copy = Path(tmp) / "probe.html"
        copy.write_text(page, encoding="utf-8")
        proc = _chromium(
            binary, ["--virtual-time-budget=5000", "--dump-dom", copy.resolve().as_uri()]
        )
    m = re.search(rf'<pre id="{PROBE_ID}"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    if m is None:
        raise RuntimeError(
            f"the probe did not report (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return json.loads(html.unescape(m.group(1)))


def screenshot(
    html_path: Path, png_path: Path, width: int = 1200, height: int | None = None
) -> Path:
    """A PNG of the page (the whole page when `height` is None: measured by a probe first)."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (install chromium, or set $CHROMIUM)")
    if height is None:
        height = min(int(probe_page(html_path, binary)["height"]) + 16, 20000)
    with atomic_file(png_path) as tmp:
        shot = tmp.with_name(tmp.name + ".png")  # Chromium picks the format by the extension
        try:
            proc = _chromium(
                binary,
                [
                    f"--window-size={width},{height}",
                    "--run-all-compositor-stages-before-draw",
                    "--virtual-time-budget=5000",
                    f"--screenshot={shot.resolve()}",
                    Path(html_path).resolve().as_uri(),
                ],
            )
            if not shot.is_file() or shot.stat().st_size == 0:
                raise RuntimeError(f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
            shot.replace(tmp)
        finally:
            shot.unlink(missing_ok=True)
    return png_path


# --- the stage ---------------------------------------------------------------------------------


def write_screenshot(html_path: Path, card_dir: Path, enabled: bool = True) -> Path | None:
    """Replace `card_dir` with one holding a screenshot of the card, or nothing.

    The folder is a DVC out, so it is always written, empty when the screenshot is off, when no
    Chromium is installed or when Chromium fails: a missing screenshot must not fail the run."""
    with atomic_dir(card_dir) as tmp:
        if not enabled:
            log.info("model card screenshot off (report.screenshot): %s left empty", card_dir)
            return None
        if find_chromium() is None:
            log.warning(
                "model card screenshot skipped: no Chromium found, %s left empty; to get it, %s",
                card_dir,
                CHROMIUM_HINT,
            )
            return None
        try:
            screenshot(html_path, tmp / SCREENSHOT)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            log.warning("model card screenshot failed, %s left empty: %s", card_dir, exc)
            return None
    log.info("model card screenshot: %s", card_dir / SCREENSHOT)
    return card_dir / SCREENSHOT


def run(
    interim: Path, processed: Path, models: Path, reports: Path, params: dict, params_path: Path
) -> str:
    """Write reports/model_card.md, model_card.html and (report.screenshot, on by default)
    figures/card/model_card.png; returns the Markdown card."""
    context = build_context(read_inputs(interim, processed, models, reports, params, params_path))
    card_md = render_card(context, "md")
    card_html = render_card(context, "html")
    write_text(card_md, reports / "model_card.md")
    write_text(card_html, reports / "model_card.html")
    log.info("model card: %s, %s", reports / "model_card.md", reports / "model_card.html")
    write_screenshot(
        reports / "model_card.html",
        reports / CARD_DIR,
        bool((params.get("report") or {}).get("screenshot", True)),
    )
    return card_md


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--interim", default="data/interim")
    ap.add_argument("--processed", default="data/processed")
    ap.add_argument("--models", default="data/artifacts/models")
    ap.add_argument("--reports", default="reports")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    setup_logging(params["base"].get("log_level", "INFO"))
    run(
        Path(args.interim),
        Path(args.processed),
        Path(args.models),
        Path(args.reports),
        params,
        Path(args.params),
    )


if __name__ == "__main__":
    main()
